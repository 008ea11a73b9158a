"""SGLD: Δw = −(ε/2)(nβ ∇L_batch(w) + γ(w − w*)) + √ε ξ (BlackJAX's overdamped Langevin step).

`step_size: auto` sets ε = τ/(nβ λ_max + γ), λ_max the top Hessian eigenvalue of L_n at w*
(counted in the cost). Euler–Maruyama inflates the variance of a quadratic direction of
curvature c by 1/(1 − εc/4), so τ = `step_size_scale` bounds the relative bias of the
stiffest direction by about τ/4 whatever the model's scale (docs/theory.md §6); a fixed ε
does not. The chains meet larger curvature away from w* (singular models), so a pilot
(`step_size.pilot`) then lowers ε until the MALA probe's acceptance along the chains is
`target_acceptance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import is_auto
from .base import Kernel
from .minibatch import (CAN_BE_REFERENCE, FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN,
                        LangevinSettings, check, remedy, summarize, warnings)



@dataclass(frozen=True)
class Settings(LangevinSettings):
    kind: Literal["sgld"] = "sgld"


def setup(settings: Settings, posterior, key):
    """ε = τ/c under `step_size: auto`, c the stiffest curvature of −log p at w* (the
    pilot's start)."""
    from . import step_size

    curvature, cost = step_size.curvature_at_w_star(posterior, key,
                                                    is_auto(settings.step_size))
    step = step_size.step_size(settings, curvature, lambda tau, c: tau / c.stiffest)
    return step_size.make_setup(settings, step, 0.0, curvature, cost)


def pilot(settings: Settings, posterior, setup, states, key):
    """`step_size: auto`: lower ε until the MALA probe accepts `target_acceptance`."""
    from .step_size import pilot

    return pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    from .langevin import langevin_kernel
    from .preconditioners import identity

    return langevin_kernel(settings, posterior, lambda steps: identity(), setup.step_size)
