"""What the momentum samplers (SGHMC, SGNHT) share: the time step, the symplectic momentum
step, the friction that keeps the minibatch noise's heating in budget, their pilot, kernel,
statistics and warnings. JAX is imported inside the functions that trace, so the settings
stay JAX-free.

One step, unit mass, time step h, friction ξ (α for SGHMC; a thermostat for SGNHT):

    p ← p − h ξ p + h ∇log p̃_batch(w) + √(2αh) ζ,   w ← w + h p

The momentum is updated first and the position moves with the new momentum (symplectic
Euler, stable for h√c < 2 on a direction of curvature c).

`step_size: auto` sets h = τ / max(√c, α), c = nβ λ_max + γ: h√c = τ keeps the stiffest
direction's oscillation resolved, and hα ≤ τ keeps the friction's damping per step small
(the discretised friction factor 1 − hα must stay well inside (0, 1)). The pilot
(`step_size.pilot`, probe step h²) then lowers h until the MALA probe accepts
`target_acceptance`; it never raises it, so hα ≤ τ stays.

The minibatch gradient's noise, of covariance V, adds h²V to the momentum's variance per
step beside the injected 2αh: direction i runs at temperature 1 + hVᵢᵢ/(2α), and λ̂ reads
high by at most h·tr V/(4α) (docs/theory.md §6). `alpha: auto` measures tr V and λ̂ where
the pilot leaves the chains and raises α from ALPHA_FLOOR until that bound is `heating` of
λ̂ (lowering an automatic h to τ/α if needed); a fixed α that leaves the bound above
HEATING_WARN is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from ..settings import bounded, is_auto
from . import minibatch
from .base import Kernel, NoWarmup
from .minibatch import PilotedSettings


@dataclass(frozen=True)
class MomentumSettings(PilotedSettings):
    """What SGHMC and SGNHT share: the time step's scale τ (h√c = τ under `auto`)."""

    step_size_scale: float = bounded(0.1, exclusiveMinimum=0)


ALPHA_FLOOR = 10.0
"""`alpha: auto` starts here and never goes below: where the minibatch noise is small (small
data sets, the test targets) α stays what the fixed default was."""
HEATING_WARN = 0.01
"""Flag a run whose heating bound h·tr V/(4α) exceeds this fraction of λ̂ (the measured
excess can be a few times the bound)."""
LLC_FLOOR = 0.5
"""The λ̂ the heating bound is measured against is at least this (one curved direction's
share): a chain still at w* reads λ̂ ≈ 0."""
FRICTION_PER_STEP_MAX = 0.5
"""Above α·h = 0.5 the discretised friction (momentum × (1 − αh) per step) no longer
approximates the continuous one; past 1 it flips the momentum's sign each step, and past 2
the chain diverges."""


class State(NamedTuple):
    position: object
    momentum: object


class Friction(NamedTuple):
    """A momentum method's part of the setup (`step_size.Setup.family`): the friction α and
    what set it, the minibatch gradient's noise tr Cov(∇log p̃) and λ̂ at the chains' states
    after the pilot (NaN where not measured)."""

    alpha: object
    gradient_noise: object
    pilot_llc: object


def summarize(settings, output) -> dict:
    """The minibatch statistics, the friction α and α·h (its damping per step), and the
    heating bound h·tr V/(4α) with what it was measured from."""
    stats = minibatch.summarize(settings, output)
    friction_ = output.setup.family
    alpha = float(friction_.alpha)
    noise, llc = float(friction_.gradient_noise), float(friction_.pilot_llc)
    bound = stats["step_size"] * noise / (4 * alpha)
    return {**stats, "alpha": alpha,
            "friction_per_step": alpha * stats["step_size"], "gradient_noise": noise,
            "pilot_llc": llc, "heating_bound": bound,
            "heating_bound_fraction": bound / max(llc, LLC_FLOOR)}


def warnings(stats: dict, heating_advice: str) -> list[str]:
    """The minibatch warnings, the friction per step, and the heating bound past
    HEATING_WARN in `heating_advice` (its `{bound}` filled in: each sampler knows its
    remedy)."""
    found = minibatch.warnings(stats)
    if stats["friction_per_step"] > FRICTION_PER_STEP_MAX:
        found.append(f"friction per step α·h = {stats['friction_per_step']:.2g} > "
                     f"{FRICTION_PER_STEP_MAX}: lower step_size or alpha")
    fraction = stats.get("heating_bound_fraction")
    if fraction is not None and fraction > HEATING_WARN:
        found.append(heating_advice.format(
            bound=f"h·tr V/(4α) is {fraction:.1%} of λ̂ at α = {stats['alpha']:.3g}"))
    return found


def step(noise_key, position, momentum, friction_, log_density_grad, h, alpha):
    """One step: momentum first (gradient at the current position, friction, noise
    √(2αh)), then the position with the NEW momentum. Returns (position, momentum)."""
    import jax
    import jax.numpy as jnp

    dtype = position.dtype
    noise = jax.random.normal(noise_key, position.shape, dtype)
    momentum = (momentum - h * friction_ * momentum + h * log_density_grad
                + jnp.sqrt(jnp.asarray(2 * alpha, dtype) * h) * noise)
    return position + h * momentum, momentum


def initial_friction(settings) -> float:
    """The α the automatic step and the pilot use: the configured one, or ALPHA_FLOOR."""
    return ALPHA_FLOOR if is_auto(settings.alpha) else settings.alpha


def setup(settings, posterior, key):
    """The time step h = τ / max(√c, α) under `step_size: auto` (the pilot's start), or the
    configured one; α the initial friction."""
    import jax.numpy as jnp

    from . import step_size

    alpha = initial_friction(settings)
    curvature, cost = step_size.curvature_at_w_star(posterior, key,
                                                    is_auto(settings.step_size))
    h = step_size.step_size(settings, curvature,
                            lambda tau, c: tau / jnp.maximum(jnp.sqrt(c.stiffest), alpha))
    nan = jnp.asarray(jnp.nan, h.dtype)
    return step_size.make_setup(settings, h, 0.0, curvature, cost)._replace(
        family=Friction(jnp.asarray(alpha, h.dtype), nan, nan))


def pilot(settings, posterior, setup_, states, key, build):
    """The pilot on a momentum method (its probe's Langevin step is h², and the pilot only
    ever lowers h, so the automatic bound h ≤ τ/α stays), then the friction (`friction`).
    Under `alpha: auto` the friction is also set halfway: the first half runs at
    ALPHA_FLOOR, which a large noise heats (λ̂ twice its value at d = 10⁵), and the noise
    grows with that heat, so the second half cools the chains under the first estimate and
    the final α is measured where they are then."""
    import jax
    import jax.numpy as jnp

    from . import step_size

    first, rest = jax.random.split(key)
    total = settings.pilot_steps_per_chain
    if is_auto(settings.alpha) and total >= 2 * minibatch.PILOT_ROUND:
        half = total // (2 * minibatch.PILOT_ROUND) * minibatch.PILOT_ROUND
        setup_, states = step_size.pilot(replace(settings, pilot_steps=half), posterior,
                                         setup_, states, first, build, exponent=2)
        setup_ = friction(settings, posterior, setup_, states, first)
        setup_, states = step_size.pilot(replace(settings, pilot_steps=total - half),
                                         posterior, setup_, states, rest, build, exponent=2)
        setup_ = setup_._replace(pilot_steps=jnp.asarray(total, jnp.int32))
    else:
        setup_, states = step_size.pilot(settings, posterior, setup_, states, first, build,
                                         exponent=2)
    return friction(settings, posterior, setup_, states, rest), states


def friction(settings, posterior, setup_, states, key):
    """The setup with α and what set it. At each chain's state (where the pilot left it; w*
    without a pilot): tr V = E|ĝ₁ − ĝ₂|²/2 from two independent minibatch gradients of
    log p̃, and λ̂ = nβ(L_n(w) − L_n(w*)), both averaged over chains. `alpha: auto` takes
    α = max(ALPHA_FLOOR, h·tr V/(4·heating·λ̂)); an automatic h must also keep αh ≤ τ, so
    where that α breaks it, h = τ/α with α = √(τ·tr V/(4·heating·λ̂)) (both bounds met)."""
    import jax
    import jax.numpy as jnp

    from .langevin import loss_and_gradient

    loss_grad = loss_and_gradient(posterior, settings)
    loss_star = posterior.loss(posterior.w_star)

    def one_chain(chain_key, w):
        first, second = jax.random.split(chain_key)
        difference = loss_grad(w, first)[1] - loss_grad(w, second)[1]
        noise = posterior.nbeta ** 2 * jnp.sum(difference * difference) / 2
        return noise, posterior.nbeta * (posterior.loss(w) - loss_star)

    noise, llc = jax.vmap(one_chain)(jax.random.split(jax.random.fold_in(key, 1),
                                                      settings.chains), states.position)
    noise, llc = jnp.mean(noise), jnp.mean(llc)
    h = setup_.step_size
    alpha = jnp.asarray(initial_friction(settings), h.dtype)
    if is_auto(settings.alpha):
        budget = 4 * settings.heating * jnp.maximum(llc, LLC_FLOOR)
        needed = h * noise / budget
        if is_auto(settings.step_size):
            tau = settings.step_size_scale
            needed = jnp.where(needed * h <= tau, needed, jnp.sqrt(tau * noise / budget))
            h = jnp.minimum(h, tau / jnp.maximum(needed, alpha))
        alpha = jnp.maximum(alpha, jnp.where(jnp.isfinite(needed), needed, alpha))
    cost = settings.chains * (2 * settings.batch_size / posterior.n + posterior.loss_eval_cost)
    dtype = h.dtype
    return setup_._replace(step_size=h.astype(dtype),
                           family=Friction(alpha.astype(dtype), noise.astype(dtype),
                                           llc.astype(dtype)),
                           grad_evals=setup_.grad_evals + cost)


def kernel(settings, posterior, h, init, update) -> Kernel:
    """A momentum method over the minibatch gradient: `init(key, position) -> state`,
    `update(noise_key, state, log_density_grad, h) -> state`. Its probe treats one step as
    a Langevin proposal of step ε = h² (one leapfrog step is MALA with that step)."""
    import jax

    from .langevin import StepInfo, log_density_gradient, loss_and_gradient, mala_probe

    loss_grad = loss_and_gradient(posterior, settings)
    step_cost = settings.batch_size / posterior.n

    def one_step(key, state, params):
        batch_key, noise_key = jax.random.split(key)
        loss, grad = loss_grad(state.position, batch_key)
        gradient = log_density_gradient(posterior, state.position, grad)
        return update(noise_key, state, gradient, h), StepInfo(loss, step_cost)

    return Kernel(init=lambda key, position: (init(key, position), (), NoWarmup()),
                  step=one_step,
                  probe=mala_probe(posterior, settings, lambda state: (state.position, h * h)))
