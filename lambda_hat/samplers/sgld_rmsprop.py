"""RMSProp-SGLD: SGLD with a per-coordinate step ε_t = ε/(√v̂_t + a) (Hitchcock & Hoogland,
arXiv 2507.21449: the most faithful local sampler at scale).

`auto` makes the stiffest direction's dimensionless step ε c/√v̂ equal τ, with
v̂ ≈ λ_max/nβ (the loss-gradient variance at equilibrium along a direction of curvature
λ_max, noiseless data), and the stabilizer a = `stabilizer_scale` · √(λ_max/nβ); the pilot
(`step_size.pilot`) then lowers ε until the MALA probe accepts `target_acceptance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import Kernel
from .minibatch import (CAN_BE_REFERENCE, FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN,
                        PreconditionedSettings, check, preconditioned_summary as summarize,
                        remedy, warnings)



@dataclass(frozen=True)
class Settings(PreconditionedSettings):
    kind: Literal["sgld_rmsprop"] = "sgld_rmsprop"


def setup(settings: Settings, posterior, key):
    from .step_size import preconditioned_setup

    return preconditioned_setup(settings, posterior, key)


def pilot(settings: Settings, posterior, setup, states, key):
    """`step_size: auto`: lower ε (the preconditioned step's scale) until the MALA probe,
    which uses the per-coordinate step ε/(√v̂ + a), accepts `target_acceptance`."""
    from .step_size import pilot

    return pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    from .langevin import langevin_kernel
    from .preconditioners import rmsprop

    return langevin_kernel(
        settings, posterior,
        lambda steps: rmsprop(settings.beta2 ** (1 / steps), setup.stabilizer), setup.step_size)
