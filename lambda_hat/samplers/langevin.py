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

import math
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


def langevin_move(settings, posterior, preconditioner: Preconditioner) -> Callable:
    """`move(state, batch_key, noise, step) -> (state, L_batch)`: one Langevin step of step
    `step` (before the preconditioner's per-coordinate scale) from a given Gaussian draw,
    BlackJAX's overdamped update w + h ∇log p + √(2h) ξ with h = ε/2 written out so that
    two chains can share their draws."""
    loss_grad = loss_and_gradient(posterior, settings)

    def move(state, batch_key, noise, step):
        loss, grad = loss_grad(state.position, batch_key)
        moments, drift, scale = preconditioner.update(state.preconditioner, grad)
        w = state.position
        half = step * scale / 2
        w = w + half * log_density_gradient(posterior, w, drift) + jnp.sqrt(2 * half) * noise
        return LangevinState(w, moments), loss

    return move


def _gaussian(key, w):
    return jax.random.normal(key, w.shape, w.dtype)


def langevin_kernel(settings, posterior, preconditioner_for: Callable[[int], Preconditioner],
                    step) -> Kernel:
    """SGLD with a preconditioner: per step one minibatch gradient and one Gaussian draw;
    under `bias_correction: richardson`, with its half-step twin (`extrapolated`).
    `preconditioner_for(k)` is the preconditioner of a chain taking k steps per step ε: its
    long moving moments span the same stretch of the chain's time whatever k."""
    preconditioner = preconditioner_for(1)
    move = langevin_move(settings, posterior, preconditioner)
    if settings.bias_correction == "richardson":
        twin = preconditioner_for(2)
        return extrapolated(settings, posterior, (preconditioner, twin),
                            (move, langevin_move(settings, posterior, twin)), step)
    cost = settings.batch_size / posterior.n

    def init(key, position):
        return LangevinState(position, preconditioner.init(position)), (), NoWarmup()

    def one_step(key, state, params):
        batch_key, noise_key = jax.random.split(key)
        state, loss = move(state, batch_key, _gaussian(noise_key, state.position), step)
        return state, StepInfo(loss, cost)

    def current(state):
        return state.position, step * preconditioner.scale(state.preconditioner)

    return Kernel(init=init, step=one_step, probe=mala_probe(posterior, settings, current))


class TwinState(NamedTuple):
    chain: LangevinState
    """The chain at step ε (its draws are the ones observables see)."""
    half: LangevinState
    """Its twin at ε/2, two steps per step of the chain."""

    @property
    def position(self):
        return self.chain.position


class TwinInfo(NamedTuple):
    loss: object
    half_step_loss: object
    grad_evals: object


def extrapolated(settings, posterior, preconditioners, moves, step) -> Kernel:
    """The chain at ε and a twin at ε/2 (Richardson extrapolation, docs/theory.md §6.4).

    The Euler–Maruyama bias of λ̂ is a ε + O(ε²), so 2·λ̂(ε/2) − λ̂(ε) has none of the first
    order. Per step of the chain the twin takes two, with Gaussian draws ξ₁, ξ₂ and the
    chain's minibatch for the first; the chain's draw is (ξ₁ + ξ₂)/√2, the same Brownian
    increment. So the two paths stay close and their difference, the bias, is measured
    with little noise: the extrapolated trace 2·L(ε/2) − L(ε) has about the chain's own
    variance. Trace `loss` is the chain's (λ̂ uncorrected), `half_step_loss` the twin's
    mean over its two steps. `preconditioners` and `moves` are the chain's and the twin's:
    a moving second moment over a fixed number of steps would follow the twin's position
    twice as closely, a state-dependent step whose bias does not vanish with ε.
    """
    cost = settings.batch_size / posterior.n
    preconditioner, twin = preconditioners
    move, twin_move = moves

    def init(key, position):
        return TwinState(LangevinState(position, preconditioner.init(position)),
                         LangevinState(position, twin.init(position))), (), NoWarmup()

    def one_step(key, state, params):
        first, second = jax.random.split(key)
        first_batch, first_noise = jax.random.split(first)
        second_batch, second_noise = jax.random.split(second)
        w = state.position
        xi1, xi2 = _gaussian(first_noise, w), _gaussian(second_noise, w)
        half, first_loss = twin_move(state.half, first_batch, xi1, step / 2)
        half, second_loss = twin_move(half, second_batch, xi2, step / 2)
        chain, loss = move(state.chain, first_batch, (xi1 + xi2) / math.sqrt(2.0), step)
        return (TwinState(chain, half),
                TwinInfo(loss, (first_loss + second_loss) / 2, 3 * cost))

    def current(state):
        return state.position, step * preconditioner.scale(state.chain.preconditioner)

    return Kernel(init=init, step=one_step, probe=mala_probe(posterior, settings, current))
