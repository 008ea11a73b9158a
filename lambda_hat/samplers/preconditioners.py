"""Preconditioners of the Langevin step: identity (SGLD), RMSProp, and Adam = RMSProp with a
first-moment drift (JAX; imported by the samplers' `build` only).

A preconditioner gives a per-coordinate step h = ε_t/2, ε_t = ε/(√v̂_t + a) (Hitchcock &
Hoogland, arXiv 2507.21449, App. D). v̂_t (and Adam's m̂_t) are bias-corrected moving
moments of the minibatch LOSS gradient only: the localizer would otherwise dominate them far
from w* and freeze the sampler.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp


class Preconditioner(NamedTuple):
    """`init(position) -> state`; `update(state, grad) -> (state, drift gradient, scale)`, the
    scale multiplying the step; `scale(state)`, the current scale (for the probe)."""

    init: Callable
    update: Callable
    scale: Callable


def identity() -> Preconditioner:
    return Preconditioner(init=lambda position: (), update=lambda state, grad: (state, grad, 1.0),
                          scale=lambda state: 1.0)


class Moments(NamedTuple):
    v: object
    count: object


def rmsprop(beta2: float, stabilizer) -> Preconditioner:
    """ε_t = ε/(√v̂_t + a), v̂_t the bias-corrected moving second moment of the gradient."""

    def scale_of(v, count):
        b2 = jnp.asarray(beta2, v.dtype)
        return 1 / (jnp.sqrt(v / (1 - b2 ** count.astype(v.dtype))) + stabilizer)

    def update(state, grad):
        b2 = jnp.asarray(beta2, grad.dtype)
        count = state.count + 1
        v = b2 * state.v + (1 - b2) * grad * grad
        return Moments(v, count), grad, scale_of(v, count)

    return Preconditioner(
        init=lambda position: Moments(jnp.zeros_like(position), jnp.zeros((), jnp.int32)),
        update=update, scale=lambda state: scale_of(state.v, jnp.maximum(state.count, 1)))


class WithFirstMoment(NamedTuple):
    inner: object
    m: object


def with_first_moment(inner: Preconditioner, beta1: float) -> Preconditioner:
    """Drift along the bias-corrected moving mean m̂_t of the gradient (Adam = RMSProp + this)."""

    def update(state, grad):
        inner_state, _, scale = inner.update(state.inner, grad)
        b1 = jnp.asarray(beta1, grad.dtype)
        m = b1 * state.m + (1 - b1) * grad
        drift = m / (1 - b1 ** inner_state.count.astype(grad.dtype))
        return WithFirstMoment(inner_state, m), drift, scale

    return Preconditioner(
        init=lambda position: WithFirstMoment(inner.init(position), jnp.zeros_like(position)),
        update=update, scale=lambda state: inner.scale(state.inner))
