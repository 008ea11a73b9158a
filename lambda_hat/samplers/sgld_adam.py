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
from . import sgld_rmsprop
from .base import Kernel
from .minibatch import FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, check, warnings

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check", "pilot",
           "setup", "summarize", "warnings"]
summarize = sgld_rmsprop.summarize


@dataclass(frozen=True)
class Settings(sgld_rmsprop.Settings):
    kind: Literal["sgld_adam"] = "sgld_adam"
    beta1: float = bounded(0.5, minimum=0, exclusiveMaximum=1)
    beta2: float = bounded(0.9999, exclusiveMinimum=0, exclusiveMaximum=1)


def setup(settings: Settings, posterior, key):
    beta1 = settings.beta1
    return sgld_rmsprop.preconditioned_setup(
        settings, posterior, key, lambda step: step * (1 - beta1) / (1 + beta1))


def pilot(settings: Settings, posterior, setup, states, key):
    """RMSProp-SGLD's pilot on this kernel (the probe ignores the drift's lag, so the
    (1 − β1)/(1 + β1) factor stays)."""
    from . import langevin

    return langevin.pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    from . import langevin

    preconditioner = langevin.with_first_moment(
        langevin.rmsprop(settings.beta2, setup.stabilizer), settings.beta1)
    return langevin.langevin_kernel(settings, posterior, preconditioner, setup.step_size)
