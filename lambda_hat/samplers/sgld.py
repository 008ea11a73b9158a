"""Minibatch samplers: SGLD, RMSProp-SGLD, Adam-SGLD (BlackJAX Langevin step) and SGNHT.

SGLD:  Δw = −(ε/2)(nβ ∇L_batch(w) + γ(w − w*)) + √ε ξ; BlackJAX's overdamped Langevin step is
w + h ∇log p + √(2h) ξ with h = ε/2, and takes h elementwise, so the preconditioned variants
use the same step with a per-coordinate h = ε_t/2, ε_t = ε/(√v̂_t + a) (Hitchcock & Hoogland,
arXiv 2507.21449, App. D): v̂_t (and Adam's m̂_t) are bias-corrected moving moments of the
minibatch LOSS gradient only — the localizer would otherwise dominate them far from w* and
freeze the sampler. Adam-SGLD drifts along nβ m̂_t + γ(w − w*). SGNHT (Ding et al. 2014) has a
time step h, unit mass, friction ξ adapted by a thermostat so that the kinetic energy per
coordinate stays ½ whatever the minibatch noise, and injected noise √(2αh).

`step_size: auto` sets the step from the problem (`resolve_step_size`): for SGLD
ε = τ/(nβ λ_max + γ), λ_max the top Hessian eigenvalue of L_n at w* (power iteration, full
batch, counted in the cost). Euler–Maruyama inflates the variance of a quadratic direction
of curvature c by 1/(1 − εc/4), so τ bounds the relative bias of the stiffest direction by
about τ/4 whatever the model's scale (a fixed ε does not: at n = 20000, ε = 1e-5 is τ ≈ 0.04
on a 6→4 linear model and τ ≈ 2.3 on the 8-6-7-5-6 DLN).

Every step's minibatch loss comes free with its gradient, and L_batch(w_t) on a batch drawn
independently of w_t is an unbiased estimate of L_n(w_t). A trace point is the mean of
`eval_every` consecutive minibatch losses, so λ̂ averages over every step at no extra cost, and
no full-data pass is needed; the minibatch noise adds a variance that averages out over the
run. Burn-in is a fraction of the trace points. At each trace point a MALA probe (below)
checks the step size.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .common import (POWER_ITERATIONS, SamplerOutput, chain_keys, compile_and_run, is_auto,
                     loss_eval_cost, top_curvature)


class SGNHTState(NamedTuple):
    position: jnp.ndarray
    momentum: jnp.ndarray
    xi: jnp.ndarray


def sgnht_step(key, state, logdensity_grad, h, alpha):
    """Ding et al. (2014), Alg. 1: momentum first (gradient at the current position), then
    position with the NEW momentum, then the thermostat.

    BlackJAX's `sgnht` moves the position with the old momentum (explicit Euler), which
    amplifies every mode by √(1 + h²c) per step; its thermostat (rate h) reacts too slowly,
    so chains blew up and then froze on a DLN. This order (symplectic Euler) is stable for
    h√c < 2.
    """
    dtype = state.position.dtype
    noise = jax.random.normal(key, state.position.shape, dtype)
    momentum = (state.momentum - h * state.xi * state.momentum + h * logdensity_grad
                + jnp.sqrt(jnp.asarray(2 * alpha, dtype) * h) * noise)
    position = state.position + h * momentum
    xi = state.xi + h * (jnp.mean(momentum * momentum) - 1)
    return SGNHTState(position, momentum, xi)


class PreconditionedState(NamedTuple):
    position: jnp.ndarray
    m: jnp.ndarray
    v: jnp.ndarray
    count: jnp.ndarray


def resolve_step_size(kind, posterior, data, settings, key):
    """(ε or h, stabilizer a, λ_max): configured numbers, or set from the curvature (`auto`).

    With c = nβ λ_max + γ the stiffest direction's curvature of −log p, `auto` makes the
    dimensionless step of that direction equal to τ = `step_size_scale`:
      sgld          ε c = τ                      (ε = τ / c)
      rmsprop, adam ε c / √v̂ = τ, v̂ ≈ λ_max/nβ (the loss-gradient variance at equilibrium
                    along a direction of curvature λ_max, noiseless data), a = α √(λ_max/nβ);
                    Adam's ε is further multiplied by (1 − β1)/(1 + β1) (see below)
      sgnht         h √c = τ                     (h is a time step; ε ≈ h²)
    """
    dtype = data["w_star"].dtype
    need = is_auto(settings["step_size"]) or is_auto(settings.get("stabilizer", 0.0))
    if need:
        curvature = top_curvature(curvature_loss(posterior, data, key), data["w_star"], key)
    else:
        curvature = jnp.asarray(jnp.nan, dtype)
    c = posterior.nbeta * curvature + posterior.gamma
    grad_rms = jnp.sqrt(curvature / posterior.nbeta)
    tau = settings.get("step_size_scale", 0.0)
    if not is_auto(settings["step_size"]):
        step = jnp.asarray(settings["step_size"], dtype)
    elif kind == "sgld":
        step = tau / c
    elif kind == "sgnht":
        step = tau / jnp.sqrt(c)
    else:
        step = tau * grad_rms / c
        if kind == "sgld_adam":
            # The drift m̂ lags the position by ~1/(1 − β1) steps and a delayed restoring
            # force heats the chain: on a quadratic the stationary variance is inflated by
            # ≈ (k/2)(1 + β1)/(1 − β1) (k = εc/2) instead of SGLD's k/2 (exact 2×2 Lyapunov
            # solution); λ̂ was +95% on a regular model at τ = 0.3. Scale ε to match SGLD.
            step = step * (1 - settings["beta1"]) / (1 + settings["beta1"])
    stabilizer = settings.get("stabilizer", 0.0)
    if is_auto(stabilizer):
        stabilizer = settings["stabilizer_scale"] * grad_rms
    return step.astype(dtype), jnp.asarray(stabilizer, dtype), curvature.astype(dtype)


CURVATURE_SUBSET = 2048


def curvature_loss(posterior, data, key):
    """The loss whose top Hessian eigenvalue sets `step_size: auto`.

    Full-data L_n where it is cheap (a DLN's sufficient statistics); otherwise L on a fixed
    random subset of CURVATURE_SUBSET points, so the power iteration costs a fraction of a
    short run instead of ~60 full gradients. λ_max of a subsample's Hessian is, if anything,
    above the full one's (λ_max is convex), which errs towards a smaller, safer step.
    """
    if loss_eval_cost(posterior) == 0 or posterior.n <= CURVATURE_SUBSET:
        return lambda w: posterior.loss(w, data)
    return lambda w: posterior.minibatch_loss(w, data, key, CURVATURE_SUBSET)


def curvature_cost(posterior) -> float:
    """Full-gradient equivalents of one Hessian-vector product of `curvature_loss`."""
    if loss_eval_cost(posterior) == 0 or posterior.n <= CURVATURE_SUBSET:
        return 2.0
    return 2.0 * CURVATURE_SUBSET / posterior.n


def _loss_grad_fn(posterior, data, settings):
    """Minibatch (L_batch, ∇L_batch) at w for the batch drawn by `key`."""
    return lambda w, key: jax.value_and_grad(
        lambda w: posterior.minibatch_loss(w, data, key, settings["batch_size"],
                                           settings["replacement"]))(w)


def _precondition(kind, settings, stabilizer, state, grad):
    """Update the moments with the loss gradient; return (state, drift gradient, ε_t/ε)."""
    dtype = state.position.dtype
    b2 = jnp.asarray(settings["beta2"], dtype)
    count = state.count + 1
    v = b2 * state.v + (1 - b2) * grad * grad
    v_hat = v / (1 - b2 ** count.astype(dtype))
    scale = 1 / (jnp.sqrt(v_hat) + stabilizer)
    m, drift = state.m, grad
    if kind == "sgld_adam":
        b1 = jnp.asarray(settings["beta1"], dtype)
        m = b1 * state.m + (1 - b1) * grad
        drift = m / (1 - b1 ** count.astype(dtype))
    return PreconditionedState(state.position, m, v, count), drift, scale


def _mala_acceptance(posterior, data, settings, w, key, step):
    """MALA acceptance probability of one Langevin proposal from w with step(s) `step`.

    Both log densities and both gradients use the SAME minibatch, so the ratio estimates the
    full-data one without the batch-to-batch noise; it is still an approximation (the
    minibatch potential is not the target) used only as a step-size check.
    """
    batch_key, noise_key = jax.random.split(key)

    def potential(w):
        loss = posterior.minibatch_loss(w, data, batch_key, settings["batch_size"],
                                        settings["replacement"])
        return posterior.nbeta * loss + posterior.localizer(w, data)

    u0, g0 = jax.value_and_grad(potential)(w)
    mean0 = w - 0.5 * step * g0
    proposal = mean0 + jnp.sqrt(step) * jax.random.normal(noise_key, w.shape, w.dtype)
    u1, g1 = jax.value_and_grad(potential)(proposal)
    mean1 = proposal - 0.5 * step * g1
    log_forward = -jnp.sum((proposal - mean0) ** 2 / step) / 2
    log_backward = -jnp.sum((w - mean1) ** 2 / step) / 2
    log_ratio = u0 - u1 + log_backward - log_forward
    return jnp.exp(jnp.minimum(0.0, jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)))


def _chain(kind, posterior, settings, data, step_size, stabilizer, key):
    """One chain's trace: per block of `eval_every` steps, (mean minibatch loss, MALA
    acceptance, mean step). Each step returns (state, its minibatch loss)."""
    # At trace time: a job whose program is cached never imports BlackJAX.
    from blackjax.sgmcmc.diffusions import overdamped_langevin

    dtype = data["w_star"].dtype
    loss_grad = _loss_grad_fn(posterior, data, settings)
    position = data["w_star"]
    langevin = overdamped_langevin()

    def log_density_grad(w, loss_gradient):
        localizer_gradient = jax.grad(posterior.localizer)(w, data)
        return -(posterior.nbeta * loss_gradient + localizer_gradient)

    if kind == "sgnht":
        init_key, key = jax.random.split(key)
        state = SGNHTState(position, jax.random.normal(init_key, position.shape, dtype),
                           jnp.asarray(settings["alpha"], dtype))

        def one_step(state, step_key):
            batch_key, noise_key = jax.random.split(step_key)
            loss, grad = loss_grad(state.position, batch_key)
            return sgnht_step(noise_key, state, log_density_grad(state.position, grad),
                              step_size, settings["alpha"]), loss

        def current(state):
            return state.position, step_size * step_size  # one leapfrog step ≡ MALA, ε = h²
    elif kind == "sgld":
        # blackjax.sgld's step is this diffusion applied to a gradient estimator; calling the
        # diffusion directly keeps the minibatch loss that came with the gradient.
        state = position

        def one_step(w, step_key):
            batch_key, noise_key = jax.random.split(step_key)
            loss, grad = loss_grad(w, batch_key)
            return langevin(noise_key, w, log_density_grad(w, grad), step_size / 2), loss

        def current(w):
            return w, step_size
    else:
        zeros = jnp.zeros_like(position)
        state = PreconditionedState(position, zeros, zeros, jnp.zeros((), jnp.int32))

        def one_step(state, step_key):
            batch_key, noise_key = jax.random.split(step_key)
            loss, grad = loss_grad(state.position, batch_key)
            state, drift, scale = _precondition(kind, settings, stabilizer, state, grad)
            w = state.position
            w = langevin(noise_key, w, log_density_grad(w, drift), step_size * scale / 2)
            return state._replace(position=w), loss

        def current(state):
            scale = 1 / (jnp.sqrt(state.v / (1 - jnp.asarray(settings["beta2"], dtype)
                                             ** jnp.maximum(state.count, 1).astype(dtype)))
                         + stabilizer)
            return state.position, step_size * scale

    def one_block(state, block_key):
        steps_key, probe_key = jax.random.split(block_key)
        state, losses = jax.lax.scan(one_step, state,
                                     jax.random.split(steps_key, settings["eval_every"]))
        w, step = current(state)
        acceptance = _mala_acceptance(posterior, data, settings, w, probe_key, step)
        return state, (jnp.mean(losses), acceptance, jnp.mean(step))

    blocks = settings["steps"] // settings["eval_every"]
    _, trace = jax.lax.scan(one_block, state, jax.random.split(key, blocks))
    return trace


def _sample(kind, posterior, settings, data, keys):
    step_size, stabilizer, curvature = resolve_step_size(
        kind, posterior, data, settings, jax.random.fold_in(keys[0], 1))
    trace = jax.vmap(lambda key: _chain(kind, posterior, settings, data, step_size, stabilizer,
                                        key))(keys)
    return trace, step_size, stabilizer, curvature


AUTO_EVAL_EVERY = 50
"""Steps per trace point under `eval_every: auto`: the MALA probe at each trace point (two
minibatch gradients) then costs 4% of the sampling. Runs shorter than 5000 steps get 100 trace
points (probe cost up to 2/(steps/100)), so that the ESS, counted in trace points, can reach
the 100 below which a run is flagged."""


def resolve_eval_every(settings) -> int:
    if settings["eval_every"] != "auto":
        return int(settings["eval_every"])
    return max(1, min(AUTO_EVAL_EVERY, settings["steps"] // 100))


def _run(kind, posterior, data, settings, seed) -> SamplerOutput:
    settings = {**settings, "eval_every": resolve_eval_every(settings)}
    if settings["steps"] < settings["eval_every"]:
        raise ValueError("steps must be at least eval_every")
    keys = chain_keys(seed, settings["chains"])
    result, seconds_compile, seconds_sample = compile_and_run(
        partial(_sample, kind, posterior, settings), data, keys)
    (loss, acceptance, mean_step), step_size, stabilizer, curvature = result
    blocks = loss.shape[1]
    burn_in = int(settings["burn_in"] * blocks)
    per_step = settings["batch_size"] / posterior.n
    # Cost: one minibatch gradient per step and two per MALA probe; the power iteration of
    # `step_size: auto` runs once for all chains.
    per_block = (settings["eval_every"] + 2) * per_step
    setup = (0.0 if np.isnan(curvature)
             else curvature_cost(posterior) * (POWER_ITERATIONS + 1) / settings["chains"])
    grad_evals_at = setup + np.arange(1, blocks + 1) * per_block
    kept = acceptance[:, burn_in:]
    stats = {
        "step_size": float(step_size),
        "step_size_auto": bool(is_auto(settings["step_size"])),
        **({"stabilizer": float(stabilizer)} if kind in ("sgld_rmsprop", "sgld_adam") else {}),
        "top_curvature": None if np.isnan(curvature) else float(curvature),
        "batch_size": settings["batch_size"],
        "burn_in_discarded": burn_in * settings["eval_every"],
        "eval_every": settings["eval_every"],
        "loss_trace": "mean minibatch loss over each eval_every steps (unbiased for L_n)",
        "mala_acceptance_mean": float(np.nanmean(kept)) if np.any(np.isfinite(kept)) else None,
        "mala_probes": int(kept.size),
        "nonfinite_trace_points": int(np.sum(~np.isfinite(loss))),
    }
    if kind != "sgld":
        stats["mean_effective_step"] = float(np.nanmean(mean_step[:, burn_in:]))
    return SamplerOutput(
        loss=loss,
        burn_in=burn_in,
        grad_evals_at=grad_evals_at.astype(np.float64),
        traces={"mala_acceptance": acceptance},
        stats=stats,
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    return _run("sgld", posterior, data, settings, seed)


def run_rmsprop(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    return _run("sgld_rmsprop", posterior, data, settings, seed)


def run_adam(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    return _run("sgld_adam", posterior, data, settings, seed)


def run_sgnht(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    return _run("sgnht", posterior, data, settings, seed)
