"""What the minibatch samplers (SGLD family, SGNHT, SGHMC) share outside the trace: the trace
spacing, their statistics and their warnings. JAX-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..settings import AUTO, bounded, is_auto
from .base import MinibatchSettings, no_remedy

MARKOV_CHAIN = True
remedy = no_remedy
"""A minibatch run's faults (a step too large for the curvature it meets) are fixed inside it,
by the pilot; nothing to rerun."""
FAILURE_HINT = "lower step_size"
LOSS_TRACE = "minibatch_mean"
LEAPFROG = False
CAN_BE_REFERENCE = False
"""A minibatch chain carries its step's discretization bias: never the reference."""


PILOT_ROUND = 50
"""Pilot steps per adaptation of the step (5 probes per chain)."""
PILOT_FRACTION = 0.1
"""`pilot_steps: auto`: this fraction of `steps`, at most PILOT_AUTO_MAX, in whole rounds."""
PILOT_AUTO_MAX = 4000
"""The cap of `pilot_steps: auto` (so a long `steps` budget, as under `until`, does not buy
a long pilot)."""


@dataclass(frozen=True)
class PilotedSettings(MinibatchSettings):
    """The minibatch settings and the pilot that tunes `step_size: auto`
    (`step_size.pilot`)."""

    pilot_steps: int | AUTO = bounded("auto", minimum=0)
    """Pilot steps per chain under `step_size: auto` (in whole rounds of 50; 0: no pilot,
    the curvature rule's step as it is); `auto`: 10% of `steps`, at most 4000."""
    target_acceptance: float = bounded(0.95, exclusiveMinimum=0, exclusiveMaximum=1)
    """The pilot lowers the step until the MALA probe's mean acceptance is this."""

    @property
    def pilot_steps_per_chain(self) -> int:
        """0 for an explicit step (no pilot), else `pilot_steps` (auto: PILOT_FRACTION of
        `steps`, at most PILOT_AUTO_MAX), in whole rounds of PILOT_ROUND."""
        if not is_auto(self.step_size):
            return 0
        steps = self.pilot_steps
        if is_auto(steps):
            steps = min(PILOT_AUTO_MAX, int(PILOT_FRACTION * self.steps))
        return PILOT_ROUND * (int(steps) // PILOT_ROUND)

    @property
    def warmup_steps(self) -> int:
        return self.pilot_steps_per_chain


@dataclass(frozen=True)
class LangevinSettings(PilotedSettings):
    """The SGLD family's settings: the piloted minibatch ones and the removal of the step's
    bias (`langevin.extrapolated`)."""

    bias_correction: Literal["richardson", "none"] = "richardson"
    """`richardson`: each chain has a twin at half the step, coupled to it (the same
    minibatches and Gaussian draws), and λ̂ is 2·λ̂(ε/2) − λ̂(ε): the step's first-order
    bias removed, at three gradients per step instead of one; the uncorrected λ̂(ε) is
    kept beside it. `none`: λ̂(ε) alone."""


@dataclass(frozen=True)
class PreconditionedSettings(LangevinSettings):
    """The RMSProp moment (`preconditioners.rmsprop`) and its stabilizer a: `auto` sets
    a = `stabilizer_scale` · √(λ_max/nβ)."""

    stabilizer: float | AUTO | None = bounded("auto", minimum=0)
    stabilizer_scale: float = bounded(0.1, minimum=0)
    beta2: float = bounded(0.999, exclusiveMinimum=0, exclusiveMaximum=1)


def check(settings) -> list[tuple[str, str]]:
    if settings.steps < settings.trace_every:
        return [("steps", "must be at least eval_every")]
    return []


def summarize(settings, output) -> dict:
    """Statistics of a run; `output.setup` holds the step size, the curvature rule's step,
    the pilot's acceptance and steps, and the curvature."""
    kept = output.traces["mala_acceptance"][:, output.burn_in:]
    setup = output.setup
    curvature = float(setup.curvature.top)
    pilot = int(setup.pilot_steps)
    return {
        "step_size": float(setup.step_size),
        "step_size_auto": bool(is_auto(settings.step_size)),
        "step_size_curvature": _finite(setup.curvature_step_size),
        "pilot_steps": pilot,
        "pilot_acceptance": _finite(setup.pilot_acceptance),
        "pilot_target_acceptance": settings.target_acceptance if pilot else None,
        "top_curvature": None if np.isnan(curvature) else curvature,
        "batch_size": settings.batch_size,
        "burn_in_discarded": output.burn_in * settings.trace_every,
        "eval_every": settings.trace_every,
        "mala_acceptance_mean": float(np.nanmean(kept)) if np.any(np.isfinite(kept)) else None,
        "mala_probes": int(kept.size),
        "nonfinite_trace_points": int(np.sum(~np.isfinite(output.loss))),
        "mean_effective_step": float(np.nanmean(
            output.traces["effective_step"][:, output.burn_in:])),
    }


def preconditioned_summary(settings, output) -> dict:
    return {**summarize(settings, output), "stabilizer": float(output.setup.stabilizer)}


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None


MALA_ACCEPTANCE_MIN = 0.8
"""The MALA acceptance of a Langevin proposal at the run's step size is a blunt instrument
with one stiff direction among many (docs/samplers.md has the measured relation to λ̂'s
bias); automatic steps are piloted to 0.95 (kept draws 0.87-0.99 on small DLNs), and below
0.8 the step size dominates λ̂."""


def warnings(stats: dict) -> list[str]:
    found = []
    acceptance = stats["mala_acceptance_mean"]
    if acceptance is not None and acceptance < MALA_ACCEPTANCE_MIN:
        found.append(f"MALA acceptance {acceptance:.2f} < {MALA_ACCEPTANCE_MIN}: the step "
                     "size is too large for this posterior (aim near 0.9); lower step_size")
    if stats["nonfinite_trace_points"]:
        found.append(f"{stats['nonfinite_trace_points']} trace points are NaN/Inf: the "
                     "sampler diverged; lower step_size")
    return found
