"""SGNHT (Ding et al. 2014): SGHMC whose friction ξ is a thermostat, adapted so that the
kinetic energy per coordinate stays ½ whatever the minibatch noise: ξ ← ξ + h(mean p² − 1),
with injected noise √(2αh) and ξ starting at α.

BlackJAX's `sgnht` moves the position with the old momentum (explicit Euler), which amplifies
every mode by √(1 + h²c) per step; its thermostat (rate h) reacts too slowly, so chains blew
up and then froze on a DLN. This order (`sghmc.momentum_step`, symplectic Euler) is stable
for h√c < 2. `step_size: auto` is SGHMC's, h = τ / max(√c, α): h√c = τ alone ignored the
friction, and where the curvature is low (a small, low-variance data set) 2αh exceeded 1 and
every chain diverged. SGHMC's pilot then only lowers h, so that bound stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from . import sghmc
from ..settings import bounded
from .base import Kernel
from .minibatch import FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, check

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check", "pilot",
           "setup", "summarize", "warnings"]


@dataclass(frozen=True)
class Settings(sghmc.MomentumSettings):
    """SGHMC's time step; α is the injected noise's scale and the thermostat's start. It
    is a number: the thermostat adapts the friction, and a large injected noise (what
    SGHMC's `alpha: auto` would set) outruns a thermostat that reacts at rate h."""

    kind: Literal["sgnht"] = "sgnht"
    alpha: float = bounded(sghmc.ALPHA_FLOOR, exclusiveMinimum=0)


class State(NamedTuple):
    """SGHMC's state and the thermostat ξ, the friction it adapts."""

    dynamics: sghmc.State
    xi: object

    @property
    def position(self):
        return self.dynamics.position


setup = sghmc.setup
summarize = sghmc.summarize
warnings = sghmc.warnings


def pilot(settings: Settings, posterior, setup, states, key):
    """SGHMC's pilot on this kernel (thermostat included); h only ever goes down, so the
    friction bound h ≤ τ/α of the automatic step stays."""
    return sghmc.momentum_pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    import jax
    import jax.numpy as jnp

    alpha = setup.friction

    def init(key, position):
        momentum = jax.random.normal(key, position.shape, position.dtype)
        return State(sghmc.State(position, momentum), jnp.asarray(alpha, position.dtype))

    def update(noise_key, state, gradient, h):
        position, momentum = sghmc.momentum_step(noise_key, state.position,
                                                 state.dynamics.momentum, state.xi, gradient, h,
                                                 alpha)
        return State(sghmc.State(position, momentum),
                     state.xi + h * (jnp.mean(momentum * momentum) - 1))

    return sghmc.momentum_kernel(settings, posterior, setup.step_size, init, update)
