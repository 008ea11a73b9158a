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

The minibatch gradient's noise, of covariance V, adds h²V to the momentum's variance per
step beside the injected 2αh: direction i runs at temperature 1 + hVᵢᵢ/(2α), and λ̂ reads
high by at most h·tr V/(4α). `alpha: auto` measures tr V and λ̂ where the pilot leaves the
chains and raises α from ALPHA_FLOOR until that bound is `heating` of λ̂ (lowering an
automatic h to τ/α if needed); a fixed α that leaves the bound above HEATING_WARN is
flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..settings import AUTO, bounded, is_auto
from .base import Kernel
from . import minibatch
from .minibatch import FAILURE_HINT, LOSS_TRACE, MARKOV_CHAIN, PilotedSettings, check

__all__ = ["FAILURE_HINT", "LOSS_TRACE", "MARKOV_CHAIN", "Settings", "build", "check",
           "momentum_step", "pilot", "setup", "summarize", "warnings"]


@dataclass(frozen=True)
class MomentumSettings(PilotedSettings):
    """What SGHMC and SGNHT share: the time step's scale τ (h√c = τ under `auto`)."""

    step_size_scale: float = bounded(0.1, exclusiveMinimum=0)


@dataclass(frozen=True)
class Settings(MomentumSettings):
    kind: Literal["sghmc"] = "sghmc"
    alpha: float | AUTO = bounded("auto", exclusiveMinimum=0)
    """Friction α (and the injected noise's scale √(2αh)); `auto`: ALPHA_FLOOR, raised
    after the pilot until the minibatch noise's heating bound is `heating` of λ̂."""
    heating: float = bounded(0.005, exclusiveMinimum=0, exclusiveMaximum=1)
    """`alpha: auto`'s budget for the heating bound h·tr V/(4α), as a fraction of λ̂. The
    bound is first order: on DLNs at n = 10⁵ the measured excess was a few times it
    (docs/samplers.md), hence a budget well under the error one would accept."""


ALPHA_FLOOR = 10.0
"""`alpha: auto` starts here and never goes below: where the minibatch noise is small (small
data sets, the test targets) α stays what the fixed default was."""
HEATING_WARN = 0.01
"""Flag a run whose heating bound h·tr V/(4α) exceeds this fraction of λ̂ (the measured
excess can be a few times the bound)."""
LLC_FLOOR = 0.5
"""The λ̂ the heating bound is measured against is at least this (one curved direction's
share): a chain still at w* reads λ̂ ≈ 0."""


class State(NamedTuple):
    position: object
    momentum: object


def summarize(settings, output) -> dict:
    """The minibatch statistics, the friction α and α·h (its damping per step), and the
    heating bound h·tr V/(4α) with what it was measured from."""
    stats = minibatch.summarize(settings, output)
    setup = output.setup
    alpha = float(setup.friction)
    noise, llc = float(setup.gradient_noise), float(setup.pilot_llc)
    bound = stats["step_size"] * noise / (4 * alpha)
    auto = {"alpha_auto": is_auto(settings.alpha)} if settings.kind == "sghmc" else {}
    return {**stats, "alpha": alpha, **auto,
            "friction_per_step": alpha * stats["step_size"], "gradient_noise": noise,
            "pilot_llc": llc, "heating_bound": bound,
            "heating_bound_fraction": bound / max(llc, LLC_FLOOR)}


FRICTION_PER_STEP_MAX = 0.5
"""Above α·h = 0.5 the discretised friction (momentum × (1 − αh) per step) no longer
approximates the continuous one; past 1 it flips the momentum's sign each step, and past 2
the chain diverges."""


def warnings(stats: dict) -> list[str]:
    found = minibatch.warnings(stats)
    if stats["friction_per_step"] > FRICTION_PER_STEP_MAX:
        found.append(f"friction per step α·h = {stats['friction_per_step']:.2g} > "
                     f"{FRICTION_PER_STEP_MAX}: lower step_size or alpha")
    fraction = stats.get("heating_bound_fraction")
    if fraction is not None and fraction > HEATING_WARN:
        bound = (f"h·tr V/(4α) is {fraction:.1%} of λ̂ at α = {stats['alpha']:.3g}")
        if "alpha_auto" in stats:
            found.append(f"the minibatch gradient's noise heats the chain: its first-order "
                         f"bound {bound} (the excess can be a few times that, so λ̂ may read "
                         "high); use alpha: auto, or raise alpha or batch_size")
        else:
            found.append(f"the minibatch gradient's noise is large beside the injected "
                         f"noise ({bound}): the thermostat holds the mean temperature but "
                         "not each direction's, so λ̂ is biased; raise batch_size, or use "
                         "sghmc")
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

    import jax.numpy as jnp

    curvature, cost = langevin.curvature_at_w_star(posterior, key,
                                                   is_auto(settings.step_size))
    h = langevin.step_size(settings, curvature, auto_rule)
    return langevin.make_setup(settings, h, 0.0, curvature, cost)._replace(
        friction=jnp.asarray(initial_friction(settings), h.dtype))


def initial_friction(settings) -> float:
    """The α the automatic step and the pilot use: the configured one, or ALPHA_FLOOR."""
    return ALPHA_FLOOR if is_auto(settings.alpha) else settings.alpha


def momentum_pilot(settings, posterior, setup, states, key, build):
    """The pilot on a momentum method (its probe's Langevin step is h², and the pilot only
    ever lowers h, so the automatic bound h ≤ τ/α stays), then the friction (`friction`).
    Under `alpha: auto` the friction is also set halfway: the first half runs at
    ALPHA_FLOOR, which a large noise heats (λ̂ twice its value at d = 10⁵), and the noise
    grows with that heat, so the second half cools the chains under the first estimate and
    the final α is measured where they are then."""
    from dataclasses import replace

    import jax
    import jax.numpy as jnp

    from . import langevin

    first, rest = jax.random.split(key)
    total = langevin.pilot_steps(settings)
    if is_auto(getattr(settings, "alpha", None)) and total >= 2 * langevin.PILOT_ROUND:
        half = total // (2 * langevin.PILOT_ROUND) * langevin.PILOT_ROUND
        setup, states = langevin.pilot(replace(settings, pilot_steps=half), posterior, setup,
                                       states, first, build, exponent=2)
        setup = friction(settings, posterior, setup, states, first)
        setup, states = langevin.pilot(replace(settings, pilot_steps=total - half), posterior,
                                       setup, states, rest, build, exponent=2)
        setup = setup._replace(pilot_steps=jnp.asarray(total, jnp.int32))
    else:
        setup, states = langevin.pilot(settings, posterior, setup, states, first, build,
                                       exponent=2)
    return friction(settings, posterior, setup, states, rest), states


def friction(settings, posterior, setup, states, key):
    """The setup with α and what set it. At each chain's state (where the pilot left it; w*
    without a pilot): tr V = E|ĝ₁ − ĝ₂|²/2 from two independent minibatch gradients of
    log p̃, and λ̂ = nβ(L_n(w) − L_n(w*)), both averaged over chains. `alpha: auto` takes
    α = max(ALPHA_FLOOR, h·tr V/(4·heating·λ̂)); an automatic h must also keep αh ≤ τ, so
    where that α breaks it, h = τ/α with α = √(τ·tr V/(4·heating·λ̂)) (both bounds met)."""
    import jax
    import jax.numpy as jnp

    from . import langevin

    loss_grad = langevin.loss_and_gradient(posterior, settings)
    loss_star = posterior.loss(posterior.w_star)

    def one_chain(chain_key, w):
        first, second = jax.random.split(chain_key)
        difference = loss_grad(w, first)[1] - loss_grad(w, second)[1]
        noise = posterior.nbeta ** 2 * jnp.sum(difference * difference) / 2
        return noise, posterior.nbeta * (posterior.loss(w) - loss_star)

    noise, llc = jax.vmap(one_chain)(jax.random.split(jax.random.fold_in(key, 1),
                                                      settings.chains), states.position)
    noise, llc = jnp.mean(noise), jnp.mean(llc)
    h, alpha = setup.step_size, jnp.asarray(initial_friction(settings), setup.step_size.dtype)
    if is_auto(getattr(settings, "alpha", None)):
        budget = 4 * settings.heating * jnp.maximum(llc, LLC_FLOOR)
        needed = h * noise / budget
        if is_auto(settings.step_size):
            tau = settings.step_size_scale
            needed = jnp.where(needed * h <= tau, needed, jnp.sqrt(tau * noise / budget))
            h = jnp.minimum(h, tau / jnp.maximum(needed, alpha))
        alpha = jnp.maximum(alpha, jnp.where(jnp.isfinite(needed), needed, alpha))
    cost = settings.chains * (2 * settings.batch_size / posterior.n + posterior.loss_eval_cost)
    dtype = h.dtype
    return setup._replace(step_size=h.astype(dtype), friction=alpha.astype(dtype),
                          gradient_noise=noise.astype(dtype), pilot_llc=llc.astype(dtype),
                          grad_evals=setup.grad_evals + cost)


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

    alpha = initial_friction(settings)
    return momentum_setup(settings, posterior, key,
                          lambda tau, c: tau / jnp.maximum(jnp.sqrt(c.stiffest), alpha))


def pilot(settings: Settings, posterior, setup, states, key):
    return momentum_pilot(settings, posterior, setup, states, key, build)


def build(settings: Settings, posterior, setup) -> Kernel:
    import jax

    alpha = setup.friction

    def init(key, position):
        return State(position, jax.random.normal(key, position.shape, position.dtype))

    def update(noise_key, state, gradient, h):
        return State(*momentum_step(noise_key, state.position, state.momentum, alpha,
                                    gradient, h, alpha))

    return momentum_kernel(settings, posterior, setup.step_size, init, update)
