"""Figures, one module each, all written as PNG by the CLI's `plot-*` commands:

- `run.plot_run`: diagnostics of one run: the running λ̂ per chain and pooled (± 2 s.e.),
  the loss per chain with the discarded warmup or burn-in shaded, the ELBO of a VI fit.
- `target.plot_target`: what a target is: the student at w* against its reference (teacher
  or data; a confusion matrix for class labels), and the training curve that produced w*.
- `summary.plot_summary`: λ̂ per sampler, one panel per target, next to the exact λ and the
  HMC reference.
- `checkpoints.plot_checkpoints`: λ̂ along training for targets with checkpoints, beside the
  training loss.
- `grid.plot_grid`: λ̂ against each swept axis of a grid.

`figure` holds what they share: Matplotlib's object API (no pyplot, no GUI backend, no global
state, imported only when a figure is drawn), and the atomic write, so a crashed job never
leaves half a PNG.
"""

from .checkpoints import plot_checkpoints
from .grid import plot_grid
from .run import plot_run
from .summary import plot_summary
from .target import plot_target

__all__ = ["plot_checkpoints", "plot_grid", "plot_run", "plot_summary", "plot_target"]
