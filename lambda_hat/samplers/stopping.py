"""When a run may stop before its budget: the kept draws pass R-hat and ESS (JAX-free).

The driver runs a chain's trace in chunks (a tenth of the budget each); with an `until`
rule it checks the kept draws (after the run's burn-in fraction of what has run) after each
chunk from the second on, and stops at the first that passes. The checks are the ones every
run gets (`lambda_hat.diagnostics`), so a run stopped by the rule does not warn on them. The
rule is deterministic: the same config and seed stop at the same chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..settings import bounded

MIN_CHUNKS = 2
"""Chunks run before the first check: a fifth of the budget at least."""


@dataclass(frozen=True)
class Until:
    """Stop once the kept draws have R-hat ≤ `r_hat` and ESS ≥ `ess` (the split-chain ESS of
    the pooled L_n trace); `steps` (or `draws`) is then the budget."""

    r_hat: float = bounded(1.01, exclusiveMinimum=1)
    ess: float = bounded(400, minimum=1)


@dataclass(frozen=True)
class Stopping:
    """How a run ended, for its summary."""

    rule: dict | None
    """The `until` rule; None: the run had a fixed length."""
    stopped_by: str
    """`criterion` (the rule passed), `budget` (all trace points ran) or `fixed`."""
    trace_points: int
    """Trace points run per chain."""
    budget: int
    """Trace points the settings allowed per chain."""
    r_hat: float | None = None
    ess: float | None = None
    """The check's values at the end (None without a rule)."""


def check(loss_so_far: np.ndarray, burn_in_fraction: float, rule: Until) -> tuple[bool, dict]:
    """(passes, diagnostics) for a (chains, points) trace: the kept draws must be finite in
    every chain, and pass both thresholds."""
    from ..diagnostics import chain_diagnostics

    kept = loss_so_far[:, int(burn_in_fraction * loss_so_far.shape[1]):]
    if not np.all(np.isfinite(kept)):
        return False, {"r_hat": None, "ess": None}
    found = chain_diagnostics(kept)
    r_hat, ess = found["r_hat"], found["ess"]
    passes = (ess is not None and ess >= rule.ess
              and (r_hat is None and kept.shape[0] == 1 or r_hat is not None
                   and r_hat <= rule.r_hat))
    return passes, {"r_hat": r_hat, "ess": ess}
