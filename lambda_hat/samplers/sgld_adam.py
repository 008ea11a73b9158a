"""Adam-SGLD: RMSProp-SGLD drifting along the moving mean m̂_t of the loss gradient,
nβ m̂_t + γ(w − w*).

The drift m̂ lags the position by ~1/(1 − β1) steps and a delayed restoring force heats the
chain: on a quadratic the stationary variance is inflated by ≈ (k/2)(1 + β1)/(1 − β1)
(k = εc/2) instead of SGLD's k/2 (exact 2×2 Lyapunov solution). So `auto` scales RMSProp's ε
by (1 − β1)/(1 + β1), and β1 defaults to 0.5 (docs/samplers.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import bounded
from .base import Kernel
from .minibatch import (CAN_BE_REFERENCE, FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN,
                        PreconditionedSettings, check, preconditioned_summary as summarize,
                        remedy, warnings)



@dataclass(frozen=True)
class Settings(PreconditionedSettings):
    kind: Literal["sgld_adam"] = "sgld_adam"
    beta1: float = bounded(0.5, minimum=0, exclusiveMaximum=1)
    beta2: float = bounded(0.9999, exclusiveMinimum=0, exclusiveMaximum=1)


def setup(settings: Settings, posterior, key):
    from .step_size import preconditioned_setup

    beta1 = settings.beta1
    return preconditioned_setup(settings, posterior, key,
                                lambda step: step * (1 - beta1) / (1 + beta1))


def pilot(settings: Settings, posterior, setup, states, key):
    """RMSProp-SGLD's pilot on this kernel (the probe ignores the drift's lag, so the
    (1 − β1)/(1 + β1) factor stays)."""
    from .step_size import pilot

    return pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    from .langevin import langevin_kernel
    from .preconditioners import rmsprop, with_first_moment

    # β1's short lag is part of the step's discretization (its heat is O(ε)), so the
    # half-step twin keeps it per step; β2's long moment spans the same time.
    return langevin_kernel(
        settings, posterior,
        lambda steps: with_first_moment(rmsprop(settings.beta2 ** (1 / steps), setup.stabilizer),
                                        settings.beta1),
        setup.step_size)
