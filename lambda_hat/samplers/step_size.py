"""The automatic step size of the minibatch samplers: the curvature rule, then the pilot
(JAX; imported by their `setup` and `pilot` only).

- the curvature: the top Hessian eigenvalue λ_max of L_n at w* by power iteration (on a
  fixed subset of the data when a full-data L_n is not cheap), giving the stiffest
  curvature c = nβ λ_max + γ of −log p;
- the rule: each sampler maps τ = `step_size_scale` and c to its step (SGLD ε = τ/c; see
  each sampler's docstring and docs/theory.md §6);
- the pilot: under `step_size: auto`, all chains run a short stretch that lowers the rule's
  step until the MALA probe accepts `target_acceptance`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ..settings import is_auto
from .minibatch import PILOT_ROUND

POWER_ITERATIONS = 30
CURVATURE_SUBSET = 2048


def top_curvature(loss_fn, w, key, iterations: int = POWER_ITERATIONS):
    """Largest |eigenvalue| of the Hessian of `loss_fn` at `w` by power iteration (HVPs)."""
    hvp = lambda v: jax.jvp(jax.grad(loss_fn), (w,), (v,))[1]  # noqa: E731
    v0 = jax.random.normal(key, w.shape, w.dtype)

    def body(v, _):
        hv = hvp(v)
        return hv / (jnp.linalg.norm(hv) + jnp.finfo(w.dtype).tiny), None

    v, _ = jax.lax.scan(body, v0 / jnp.linalg.norm(v0), None, length=iterations)
    return jnp.abs(jnp.vdot(v, hvp(v)))


def _curvature_on_subset(posterior) -> bool:
    return posterior.loss_eval_cost != 0 and posterior.n > CURVATURE_SUBSET


def curvature_loss(posterior, key):
    """The loss whose top Hessian eigenvalue sets `step_size: auto`.

    Full-data L_n where it is cheap; otherwise L on a fixed random subset of CURVATURE_SUBSET
    points, so the power iteration costs a fraction of a short run. λ_max of a subsample's
    Hessian is, if anything, above the full one's (λ_max is convex), which errs towards a
    smaller, safer step.
    """
    if not _curvature_on_subset(posterior):
        return posterior.loss
    return lambda w: posterior.minibatch_loss(w, key, CURVATURE_SUBSET)


def curvature_cost(posterior) -> float:
    """Full-gradient equivalents of the power iteration (one HVP = two gradients each)."""
    per_product = 2.0 * CURVATURE_SUBSET / posterior.n if _curvature_on_subset(posterior) else 2.0
    return per_product * (POWER_ITERATIONS + 1)


class Curvature(NamedTuple):
    """c = nβ λ_max + γ, the stiffest curvature of −log p, and √(λ_max/nβ), the loss-gradient
    scale along that direction at equilibrium (noiseless data)."""

    top: object
    stiffest: object
    grad_rms: object


def curvature_at_w_star(posterior, key, needed: bool) -> tuple[Curvature, float]:
    """(curvature, its cost); NaN and no cost when every step setting is a number."""
    dtype = posterior.w_star.dtype
    if needed:
        top = top_curvature(curvature_loss(posterior, key), posterior.w_star, key)
    else:
        top = jnp.asarray(jnp.nan, dtype)
    curvature = Curvature(top, posterior.nbeta * top + posterior.gamma,
                          jnp.sqrt(top / posterior.nbeta))
    return curvature, curvature_cost(posterior) if needed else 0.0


class Setup(NamedTuple):
    """Shared by all chains: the step (ε, or h for momentum methods), the preconditioner's
    stabilizer (0 without one), the curvature that set them, and the cost of both.

    Under `step_size: auto`, `curvature_step_size` is the curvature rule's step and
    `step_size` the pilot's (the same without a pilot); the pilot's last-half mean MALA
    acceptance and its steps per chain are recorded (NaN and 0 without one). `family` is
    what a family of kernels adds (momentum methods: `momentum.Friction`)."""

    step_size: object
    stabilizer: object
    curvature: Curvature
    grad_evals: object
    curvature_step_size: object = float("nan")
    pilot_acceptance: object = float("nan")
    pilot_steps: object = 0
    family: object = ()


def make_setup(settings, step, stabilizer, curvature: Curvature, cost) -> Setup:
    """The setup before any pilot: the rule's step is recorded under `step_size: auto`."""
    dtype = step.dtype
    nan = jnp.asarray(jnp.nan, dtype)
    return Setup(step, jnp.asarray(stabilizer, dtype), curvature, jnp.asarray(cost),
                 step if is_auto(settings.step_size) else nan, nan, jnp.zeros((), jnp.int32))


def step_size(settings, curvature: Curvature, auto_rule: Callable):
    """The configured step, or `auto_rule(τ, curvature)` under `step_size: auto`."""
    dtype = curvature.top.dtype
    if not is_auto(settings.step_size):
        return jnp.asarray(settings.step_size, dtype)
    return auto_rule(settings.step_size_scale, curvature).astype(dtype)


def preconditioned_setup(settings, posterior, key, adjust=lambda step: step) -> Setup:
    """The setup of a moment-preconditioned sampler: ε = adjust(τ√v̂/c) (the pilot's start)
    and the stabilizer a (`stabilizer_scale` · √v̂ under `stabilizer: auto`)."""
    curvature, cost = curvature_at_w_star(
        posterior, key, is_auto(settings.step_size) or is_auto(settings.stabilizer))
    step = step_size(settings, curvature, lambda tau, c: adjust(tau * c.grad_rms / c.stiffest))
    stabilizer = settings.stabilizer
    if is_auto(stabilizer):
        stabilizer = settings.stabilizer_scale * curvature.grad_rms
    return make_setup(settings, step, stabilizer, curvature, cost)


PILOT_PROBE_EVERY = 10
"""Pilot steps between MALA probes."""
PILOT_MAX_SHRINK = 1.0e-3
"""The pilot's step stays within [this, 1] × the curvature rule's."""
PILOT_MAX_MOVE = math.log(4.0)
"""The largest change of a probe's log step in one round."""


def pilot(settings, posterior, setup: Setup, states, key, build: Callable, exponent: int = 1):
    """Tune the automatic step on all chains at once: (setup with the tuned step, the
    chains' states at the pilot's end).

    From the curvature rule's step ε₀ (`setup.step_size`), the chains (a leading chain axis
    in `states`, vmapped) run `settings.pilot_steps_per_chain` in rounds of PILOT_ROUND, with a
    MALA probe every PILOT_PROBE_EVERY steps. After each round the log step moves towards
    the target: the probes' rejection rate r = 1 − a of a Langevin proposal grows like
    ε^{3/2} (ε the probe's step: h^`exponent` for a momentum method's time step h), so a
    Newton step is Δlog ε = (2/3) log(r*/r) ≈ (2/3)(â − a*)/r* near the target a*; the
    linear form (clipped to ±log 4) is used because the mean acceptance â over chains and
    probes is unbiased and its logarithm is not. Gain g_t = 1/√(t + 1): slow enough to
    average the probes' noise, fast enough to follow the chains as they spread from w* into
    stiffer regions (a 1/t gain settled on steps the spreading chains no longer accepted).
    The step never goes above ε₀ (the rule is an upper bound) nor below
    PILOT_MAX_SHRINK ε₀. The tuned step is the geometric mean of the last half's steps; the
    acceptance recorded is that half's mean. A chain whose state turns non-finite in a round
    returns to its state before that round (its probes count as rejections). Every pilot
    step and probe is counted in `grad_evals` (all chains). The pilot's draws are warmup:
    the estimate never sees them, and the chains continue from where the pilot left them.
    Minibatch kernels take no per-chain params (`()`).
    """
    total = settings.pilot_steps_per_chain
    if total == 0:
        return setup, states
    rounds = total // PILOT_ROUND
    probes = PILOT_ROUND // PILOT_PROBE_EVERY
    dtype = setup.step_size.dtype
    start = setup.step_size
    target = settings.target_acceptance
    slope = 2.0 / 3.0
    lowest = math.log(PILOT_MAX_SHRINK)

    def one_chain(kernel, key, state):
        def block(state, block_key):
            steps_key, probe_key = jax.random.split(block_key)
            state, infos = jax.lax.scan(lambda s, k: kernel.step(k, s, ()), state,
                                        jax.random.split(steps_key, PILOT_ROUND // probes))
            probe = kernel.probe(probe_key, state, ())
            cost = jnp.sum(jnp.asarray(infos.grad_evals)) + probe.grad_evals
            return state, (probe.mala_acceptance, cost)

        return jax.lax.scan(block, state, jax.random.split(key, probes))

    def one_round(carry, round_key):
        states, log_shrink, t = carry
        kernel = build(settings, posterior,
                       setup._replace(step_size=(start * jnp.exp(log_shrink)).astype(dtype)))
        chain_keys = jax.random.split(round_key, settings.chains)
        new, (acceptance, cost) = jax.vmap(lambda k, s: one_chain(kernel, k, s))(
            chain_keys, states)
        finite = jax.vmap(lambda leaves: jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(leaves)])))(new)
        acceptance = jnp.where(finite[:, None], jnp.nan_to_num(acceptance), 0.0)
        states = jax.tree.map(
            lambda a, b: jnp.where(finite.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
            new, states)
        mean = jnp.mean(acceptance)
        newton = jnp.clip(slope * (mean - target) / (1.0 - target), -PILOT_MAX_MOVE,
                          PILOT_MAX_MOVE)
        moved = log_shrink + jax.lax.rsqrt(t + 1.0) * newton / exponent
        moved = jnp.clip(moved, lowest, 0.0).astype(log_shrink.dtype)
        return (states, moved, t + 1.0), (log_shrink, mean, jnp.sum(cost))

    init = (states, jnp.zeros((), dtype), jnp.zeros((), dtype))
    (states, _, _), (log_shrinks, means, costs) = jax.lax.scan(
        one_round, init, jax.random.split(key, rounds))
    half = rounds // 2
    step = (start * jnp.exp(jnp.mean(log_shrinks[half:]))).astype(dtype)
    return setup._replace(
        step_size=step, grad_evals=setup.grad_evals + jnp.sum(costs),
        pilot_acceptance=jnp.mean(means[half:]).astype(dtype),
        pilot_steps=jnp.asarray(total, jnp.int32)), states
