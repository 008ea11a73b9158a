"""The stochastic-gradient Langevin kernel over any preconditioner, with its MALA probe (JAX;
imported by the samplers' `build` only).

SGLD:  Δw = −(ε/2)(nβ ∇L_batch(w) + γ(w − w*)) + √ε ξ; BlackJAX's overdamped Langevin step is
w + h ∇log p + √(2h) ξ with h = ε/2, and takes h elementwise, so a preconditioner
(`preconditioners`) gives a per-coordinate h.

Every step's minibatch loss comes free with its gradient and, on a batch drawn independently
of w_t, is an unbiased estimate of L_n(w_t): the driver averages them into trace points. The
MALA probe at each trace point checks the step size (`mala_acceptance`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .base import Kernel, NoWarmup
from .preconditioners import Preconditioner


def loss_and_gradient(posterior, settings):
    """(L_batch, ∇L_batch) at w for the minibatch drawn by `key`."""
    return lambda w, key: jax.value_and_grad(
        lambda w: posterior.minibatch_loss(w, key, settings.batch_size, settings.replacement))(w)


def log_density_gradient(posterior, w, loss_gradient):
    """∇log p from a loss gradient (minibatch or moment estimate) and the exact localizer."""
    return -(posterior.nbeta * loss_gradient + jax.grad(posterior.localizer)(w))


class LangevinState(NamedTuple):
    position: object
    preconditioner: object


class StepInfo(NamedTuple):
    loss: object
    grad_evals: object


class ProbeInfo(NamedTuple):
    mala_acceptance: object
    effective_step: object
    grad_evals: object


def mala_acceptance(posterior, settings, w, key, step):
    """MALA acceptance probability of one Langevin proposal from w with step(s) `step`.

    Both log densities and both gradients use the SAME minibatch, so the ratio estimates the
    full-data one without the batch-to-batch noise; it is still an approximation (the
    minibatch potential is not the target) used only as a step-size check.
    """
    batch_key, noise_key = jax.random.split(key)

    def potential(w):
        return posterior.minibatch_potential(w, batch_key, settings.batch_size,
                                             settings.replacement)

    u0, g0 = jax.value_and_grad(potential)(w)
    mean0 = w - 0.5 * step * g0
    proposal = mean0 + jnp.sqrt(step) * jax.random.normal(noise_key, w.shape, w.dtype)
    u1, g1 = jax.value_and_grad(potential)(proposal)
    mean1 = proposal - 0.5 * step * g1
    log_forward = -jnp.sum((proposal - mean0) ** 2 / step) / 2
    log_backward = -jnp.sum((w - mean1) ** 2 / step) / 2
    log_ratio = u0 - u1 + log_backward - log_forward
    return jnp.exp(jnp.minimum(0.0, jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)))


def mala_probe(posterior, settings, current: Callable):
    """The probe at a trace point: `current(state) -> (position, step)` gives the step a
    Langevin proposal would take there (for a momentum method: ε = h²)."""
    cost = 2 * settings.batch_size / posterior.n

    def probe(key, state, params):
        w, step = current(state)
        return ProbeInfo(mala_acceptance(posterior, settings, w, key, step), jnp.mean(step),
                         cost)

    return probe


def langevin_kernel(settings, posterior, preconditioner: Preconditioner, step) -> Kernel:
    """SGLD with a preconditioner: per step one minibatch gradient and one Gaussian draw."""
    from blackjax.sgmcmc.diffusions import overdamped_langevin

    langevin = overdamped_langevin()
    loss_grad = loss_and_gradient(posterior, settings)
    cost = settings.batch_size / posterior.n

    def init(key, position):
        return LangevinState(position, preconditioner.init(position)), (), NoWarmup()

    def one_step(key, state, params):
        batch_key, noise_key = jax.random.split(key)
        loss, grad = loss_grad(state.position, batch_key)
        moments, drift, scale = preconditioner.update(state.preconditioner, grad)
        w = state.position
        w = langevin(noise_key, w, log_density_gradient(posterior, w, drift), step * scale / 2)
        return LangevinState(w, moments), StepInfo(loss, cost)

    def current(state):
        return state.position, step * preconditioner.scale(state.preconditioner)

    return Kernel(init=init, step=one_step, probe=mala_probe(posterior, settings, current))
