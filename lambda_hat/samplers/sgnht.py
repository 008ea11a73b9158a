"""SGNHT (Ding et al. 2014): SGHMC whose friction ξ is a thermostat, adapted so that the
kinetic energy per coordinate stays ½ whatever the minibatch noise: ξ ← ξ + h(mean p² − 1),
with injected noise √(2αh) and ξ starting at α.

BlackJAX's `sgnht` moves the position with the old momentum (explicit Euler), which amplifies
every mode by √(1 + h²c) per step; its thermostat (rate h) reacts too slowly, so chains blew
up and then froze on a DLN. This order (`momentum.step`, symplectic Euler) is stable for
h√c < 2. `step_size: auto` is SGHMC's, h = τ / max(√c, α): h√c = τ alone ignored the
friction, and where the curvature is low (a small, low-variance data set) 2αh exceeded 1 and
every chain diverged. The pilot then only lowers h, so that bound stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple

from ..settings import bounded
from . import momentum
from .base import Kernel, no_check
from .minibatch import (CAN_BE_REFERENCE, FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN,
                        remedy)

HEATING_ADVICE = ("the minibatch gradient's noise is large beside the injected noise "
                  "({bound}): the thermostat holds the mean temperature but not each "
                  "direction's, so λ̂ is biased; raise batch_size, or use sghmc")
setup, summarize, check = momentum.setup, momentum.summarize, no_check
warnings = partial(momentum.warnings, heating_advice=HEATING_ADVICE)


@dataclass(frozen=True)
class Settings(momentum.MomentumSettings):
    """SGHMC's time step; α is the injected noise's scale and the thermostat's start. It
    is a number: the thermostat adapts the friction, and a large injected noise (what
    SGHMC's `alpha: auto` would set) outruns a thermostat that reacts at rate h."""

    kind: Literal["sgnht"] = "sgnht"
    alpha: float = bounded(momentum.ALPHA_FLOOR, exclusiveMinimum=0)


class State(NamedTuple):
    """The momentum state and the thermostat ξ, the friction it adapts."""

    dynamics: momentum.State
    xi: object

    @property
    def position(self):
        return self.dynamics.position




def pilot(settings: Settings, posterior, setup, states, key):
    """The momentum pilot on this kernel (thermostat included)."""
    return momentum.pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    import jax
    import jax.numpy as jnp

    alpha = setup.family.alpha

    def init(key, position):
        velocity = jax.random.normal(key, position.shape, position.dtype)
        return State(momentum.State(position, velocity), jnp.asarray(alpha, position.dtype))

    def update(noise_key, state, gradient, h):
        position, velocity = momentum.step(noise_key, state.position, state.dynamics.momentum,
                                           state.xi, gradient, h, alpha)
        return State(momentum.State(position, velocity),
                     state.xi + h * (jnp.mean(velocity * velocity) - 1))

    return momentum.kernel(settings, posterior, setup.step_size, init, update)
