"""SGLD: Δw = −(ε/2)(nβ ∇L_batch(w) + γ(w − w*)) + √ε ξ (BlackJAX's overdamped Langevin step).

`step_size: auto` sets ε = τ/(nβ λ_max + γ), λ_max the top Hessian eigenvalue of L_n at w*
(counted in the cost). Euler–Maruyama inflates the variance of a quadratic direction of
curvature c by 1/(1 − εc/4), so τ = `step_size_scale` bounds the relative bias of the
stiffest direction by about τ/4 whatever the model's scale; a fixed ε does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import is_auto
from .base import Kernel, MinibatchSettings
from .minibatch import (FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, check, summarize, warnings)

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check", "setup",
           "summarize", "warnings"]


@dataclass(frozen=True)
class Settings(MinibatchSettings):
    kind: Literal["sgld"] = "sgld"


def setup(settings: Settings, posterior, key):
    """ε = τ/c under `step_size: auto`, c the stiffest curvature of −log p at w*."""
    import jax.numpy as jnp

    from . import langevin

    curvature, cost = langevin.curvature_at_w_star(posterior, key,
                                                   is_auto(settings.step_size))
    step = langevin.step_size(settings, curvature, lambda tau, c: tau / c.stiffest)
    return langevin.Setup(step, jnp.zeros((), step.dtype), curvature, jnp.asarray(cost))


def build(settings: Settings, posterior, setup) -> Kernel:
    from . import langevin

    return langevin.langevin_kernel(settings, posterior, langevin.identity(), setup.step_size)
