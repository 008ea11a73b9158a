"""What every figure shares: a new figure, the atomic write, the styles of the exact λ and
the HMC reference, the legend's place and the way numbers are written."""

from __future__ import annotations

import io
import math

from ..artifacts import atomic_write_bytes

TRUTH_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
REFERENCE_STYLE = {"color": "tab:green", "linestyle": ":", "linewidth": 1.5}


def new_figure(width: float, height: float):
    """A figure of Matplotlib's object API (no pyplot), imported here, when one is drawn."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(figure, out) -> None:
    """Render to memory, then write atomically: a crashed job never leaves half a PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(out, buffer.getvalue())


def number(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, where it cannot cover data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0,
              **kwargs)
