"""RMSProp-SGLD: SGLD with a per-coordinate step ε_t = ε/(√v̂_t + a) (Hitchcock & Hoogland,
arXiv 2507.21449: the most faithful local sampler at scale).

`auto` makes the stiffest direction's dimensionless step ε c/√v̂ equal τ, with
v̂ ≈ λ_max/nβ (the loss-gradient variance at equilibrium along a direction of curvature
λ_max, noiseless data), and the stabilizer a = `stabilizer_scale` · √(λ_max/nβ); the pilot
(`langevin.pilot`) then lowers ε until the MALA probe accepts `target_acceptance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import AUTO, bounded, is_auto
from .base import Kernel
from .minibatch import FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, PilotedSettings, check, warnings
from .minibatch import summarize as minibatch_summary

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check", "pilot",
           "setup", "summarize", "warnings"]


@dataclass(frozen=True)
class Settings(PilotedSettings):
    kind: Literal["sgld_rmsprop"] = "sgld_rmsprop"
    stabilizer: float | AUTO | None = bounded("auto", minimum=0)
    stabilizer_scale: float = bounded(0.1, minimum=0)
    beta2: float = bounded(0.999, exclusiveMinimum=0, exclusiveMaximum=1)


def preconditioned_setup(settings, posterior, key, adjust=lambda step: step):
    """The setup of a moment-preconditioned sampler: ε = adjust(τ√v̂/c) (the pilot's start)
    and a."""
    from . import langevin

    curvature, cost = langevin.curvature_at_w_star(
        posterior, key, is_auto(settings.step_size) or is_auto(settings.stabilizer))
    step = langevin.step_size(
        settings, curvature, lambda tau, c: adjust(tau * c.grad_rms / c.stiffest))
    stabilizer = settings.stabilizer
    if is_auto(stabilizer):
        stabilizer = settings.stabilizer_scale * curvature.grad_rms
    return langevin.make_setup(settings, step, stabilizer, curvature, cost)


def setup(settings: Settings, posterior, key):
    return preconditioned_setup(settings, posterior, key)


def pilot(settings: Settings, posterior, setup, states, key):
    """`step_size: auto`: lower ε (the preconditioned step's scale) until the MALA probe,
    which uses the per-coordinate step ε/(√v̂ + a), accepts `target_acceptance`."""
    from . import langevin

    return langevin.pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    from . import langevin

    return langevin.langevin_kernel(
        settings, posterior, langevin.rmsprop(settings.beta2, setup.stabilizer), setup.step_size)


def summarize(settings, output) -> dict:
    return {**minibatch_summary(settings, output), "stabilizer": float(output.setup.stabilizer)}
