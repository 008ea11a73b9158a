"""SGHMC: stochastic-gradient HMC with friction (Chen, Fox & Guestrin 2014), unit mass.

    p ← p − h α p + h ∇log p̃_batch(w) + √(2αh) ξ,   w ← w + h p

with time step h and friction α (the injected noise matches the friction, so the target
temperature is 1; the minibatch gradient's own noise is not subtracted). The step, the
automatic h = τ / max(√c, α), the pilot and `alpha: auto`'s heating budget are the momentum
family's (`momentum`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from ..settings import AUTO, bounded, is_auto
from . import momentum
from .base import Kernel, no_check
from .minibatch import (CAN_BE_REFERENCE, FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN,
                        remedy)

HEATING_ADVICE = ("the minibatch gradient's noise heats the chain: its first-order bound "
                  "{bound} (the excess can be a few times that, so λ̂ may read high); use "
                  "alpha: auto, or raise alpha or batch_size")
setup, check = momentum.setup, no_check
warnings = partial(momentum.warnings, heating_advice=HEATING_ADVICE)


@dataclass(frozen=True)
class Settings(momentum.MomentumSettings):
    kind: Literal["sghmc"] = "sghmc"
    alpha: float | AUTO = bounded("auto", exclusiveMinimum=0)
    """Friction α (and the injected noise's scale √(2αh)); `auto`: ALPHA_FLOOR, raised
    after the pilot until the minibatch noise's heating bound is `heating` of λ̂."""
    heating: float = bounded(0.005, exclusiveMinimum=0, exclusiveMaximum=1)
    """`alpha: auto`'s budget for the heating bound h·tr V/(4α), as a fraction of λ̂. The
    bound is first order: on DLNs at n = 10⁵ the measured excess was a few times it
    (docs/samplers.md), hence a budget well under the error one would accept."""


def summarize(settings: Settings, output) -> dict:
    return {**momentum.summarize(settings, output), "alpha_auto": is_auto(settings.alpha)}




def pilot(settings: Settings, posterior, setup, states, key):
    return momentum.pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    import jax

    alpha = setup.family.alpha

    def init(key, position):
        return momentum.State(position, jax.random.normal(key, position.shape, position.dtype))

    def update(noise_key, state, gradient, h):
        return momentum.State(*momentum.step(noise_key, state.position, state.momentum, alpha,
                                             gradient, h, alpha))

    return momentum.kernel(settings, posterior, setup.step_size, init, update)
