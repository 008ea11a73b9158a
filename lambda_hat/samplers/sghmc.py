"""SGHMC: stochastic-gradient HMC with friction (Chen, Fox & Guestrin 2014), unit mass.

    p ← p − h α p + h ∇log p̃_batch(w) + √(2αh) ξ,   w ← w + h p

with time step h and friction α (the injected noise matches the friction, so the target
temperature is 1; the minibatch gradient's own noise is not subtracted). The momentum is
updated first and the position moves with the new momentum (symplectic Euler, stable for
h√c < 2 on a direction of curvature c).

`step_size: auto` sets h = τ / max(√c, α), c = nβ λ_max + γ: h√c = τ keeps the stiffest
direction's oscillation resolved, and hα ≤ τ keeps the friction's damping per step small
(the discretised friction factor 1 − hα must stay well inside (0, 1)). The pilot
(`langevin.pilot`, probe step h²) then lowers h until the MALA probe accepts
`target_acceptance`; it never raises it, so hα ≤ τ stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..settings import bounded, is_auto
from .base import Kernel
from . import minibatch
from .minibatch import FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, PilotedSettings, check

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check",
           "momentum_step", "pilot", "setup", "summarize", "warnings"]


@dataclass(frozen=True)
class Settings(PilotedSettings):
    kind: Literal["sghmc"] = "sghmc"
    step_size_scale: float = bounded(0.1, exclusiveMinimum=0)
    alpha: float = bounded(10.0, exclusiveMinimum=0)
    """Friction α (and the injected noise's scale √(2αh))."""


class State(NamedTuple):
    position: object
    momentum: object


def summarize(settings, output) -> dict:
    """The minibatch statistics and α·h, the friction's damping per step."""
    stats = minibatch.summarize(settings, output)
    return {**stats, "friction_per_step": settings.alpha * stats["step_size"]}


FRICTION_PER_STEP_MAX = 0.5
"""Above α·h = 0.5 the discretised friction (momentum × (1 − αh) per step) no longer
approximates the continuous one; past 1 it flips the momentum's sign each step, and past 2
the chain diverges."""


def warnings(stats: dict) -> list[str]:
    found = minibatch.warnings(stats)
    if stats["friction_per_step"] > FRICTION_PER_STEP_MAX:
        found.append(f"friction per step α·h = {stats['friction_per_step']:.2g} > "
                     f"{FRICTION_PER_STEP_MAX}: lower step_size or alpha")
    return found


def momentum_step(noise_key, position, momentum, friction, log_density_grad, h, alpha):
    """One SGHMC / SGNHT step: momentum first (gradient at the current position, friction,
    noise √(2αh)), then the position with the NEW momentum. Returns (position, momentum)."""
    import jax
    import jax.numpy as jnp

    dtype = position.dtype
    noise = jax.random.normal(noise_key, position.shape, dtype)
    momentum = (momentum - h * friction * momentum + h * log_density_grad
                + jnp.sqrt(jnp.asarray(2 * alpha, dtype) * h) * noise)
    return position + h * momentum, momentum


def momentum_setup(settings, posterior, key, auto_rule):
    """The time step h: configured, or `auto_rule(τ, curvature)` (the pilot's start)."""
    from . import langevin

    curvature, cost = langevin.curvature_at_w_star(posterior, key,
                                                   is_auto(settings.step_size))
    h = langevin.step_size(settings, curvature, auto_rule)
    return langevin.make_setup(settings, h, 0.0, curvature, cost)


def momentum_pilot(settings, posterior, setup, states, key, build):
    """The pilot on a momentum method: its probe's Langevin step is h², and the pilot only
    ever lowers h, so the automatic bound h ≤ τ/α stays."""
    from . import langevin

    return langevin.pilot(settings, posterior, setup, states, key, build, exponent=2)


def momentum_kernel(settings, posterior, h, init, update) -> Kernel:
    """A momentum method over the minibatch gradient: `init(key, position) -> state`,
    `update(noise_key, state, log_density_grad, h) -> state`. Its probe treats one step as
    a Langevin proposal of step ε = h² (one leapfrog step is MALA with that step)."""
    from . import langevin
    from .base import NoWarmup

    loss_grad = langevin.loss_and_gradient(posterior, settings)
    step_cost = settings.batch_size / posterior.n
    def step(key, state, params):
        import jax

        batch_key, noise_key = jax.random.split(key)
        loss, grad = loss_grad(state.position, batch_key)
        gradient = langevin.log_density_gradient(posterior, state.position, grad)
        return update(noise_key, state, gradient, h), langevin.StepInfo(loss, step_cost)

    return Kernel(init=lambda key, position: (init(key, position), (), NoWarmup()), step=step,
                  probe=langevin.mala_probe(posterior, settings,
                                            lambda state: (state.position, h * h)))


def setup(settings: Settings, posterior, key):
    """h = τ / max(√c, α)."""
    import jax.numpy as jnp

    alpha = settings.alpha
    return momentum_setup(settings, posterior, key,
                          lambda tau, c: tau / jnp.maximum(jnp.sqrt(c.stiffest), alpha))


def pilot(settings: Settings, posterior, setup, states, key):
    return momentum_pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    import jax

    alpha = settings.alpha

    def init(key, position):
        return State(position, jax.random.normal(key, position.shape, position.dtype))

    def update(noise_key, state, gradient, h):
        return State(*momentum_step(noise_key, state.position, state.momentum, alpha,
                                    gradient, h, alpha))

    return momentum_kernel(settings, posterior, setup.step_size, init, update)
