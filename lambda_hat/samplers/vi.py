"""Variational inference: a mixture of factor analyzers around w*, fitted by minibatch ELBO.

q(w) = Σ_m π_m N(w* + μ_m, F_m F_mᵀ + diag σ²): M components of rank r sharing one diagonal.
The ELBO of the unnormalised target p̃(w) = exp(−nβ L_n(w) − (γ/2)||w − w*||²),

    ELBO(q) = Σ_m π_m E_{q_m}[log p̃(w) − log q(w)] ≤ log ∫ p̃,

is estimated with reparameterised draws from every component (so π gets gradients through
its weights, not through a discrete choice) and one minibatch per step shared by all draws,
and maximised with optax Adam.

The mixture lives in whitened coordinates u, w = w* + T u. With `whitening: hessian` (the
default) T = (nβ H + γ I)^{-1/2} from the full-data Hessian H of L_n at w* (one d×d
eigendecomposition), so the quadratic part of the target is N(0, I) in u and the mixture
only has to learn what the quadratic approximation misses. This is needed, not cosmetic: a
factor-analyzer covariance FFᵀ + diag σ² can widen a diagonal but never narrow it, so in raw
coordinates every coordinate that touches a stiff direction stays narrow and λ̂ tends to
(number of such coordinates)/2 (34.8 instead of 10.5 on a 5-4-6-5 DLN). `whitening: none`
(T = σ₀ I, σ₀ = (nβ λ_max + γ)^{-1/2}) keeps the raw family for comparison.

The "trace" is not a Markov chain. Each chain is an independent fit (its own seed); after
fitting, `draws` independent samples w ~ q give full-data L_n(w), and those iid values are
`loss[chain, :]` with burn_in = 0, so the estimator's nβ(mean L_n − L_n(w*)) is the Monte
Carlo λ̂ = nβ(E_q[L_n] − L_n(w*)) and its iid standard error is the MCSE. The fit history
(minibatch ELBO averaged over `eval_every` steps) is the trace `elbo`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import REGISTRY
from .common import (POWER_ITERATIONS, SamplerOutput, chain_keys, compile_and_run,
                     loss_eval_cost, over_chains, top_curvature)


class MixtureParams(NamedTuple):
    logits: jnp.ndarray  # (M,)
    means: jnp.ndarray  # (M, d), in whitened coordinates u
    factors: jnp.ndarray  # (M, d, r)
    log_sigma: jnp.ndarray  # (d,)


def init_params(key, d, components, rank, dtype, init_sigma=0.3):
    mean_key, factor_key = jax.random.split(key)
    return MixtureParams(
        logits=jnp.zeros((components,), dtype),
        # Small distinct offsets break the symmetry between components.
        means=0.1 * init_sigma * jax.random.normal(mean_key, (components, d), dtype),
        factors=0.1 * init_sigma * jax.random.normal(factor_key, (components, d, rank), dtype),
        # Start narrower than the quadratic approximation: directions that are flat to second
        # order are not flat at unit whitened distance, and a too-wide start costs thousands
        # of steps of shrinking (ELBO −7.6e4 at step 0 on a DLN).
        log_sigma=jnp.full((d,), jnp.log(init_sigma), dtype),
    )


def component_logpdf(u, factor, sigma):
    """log N(u; 0, F Fᵀ + diag σ²) by Woodbury: O(d r²), never a d×d matrix."""
    d, r = factor.shape
    inv_var = 1.0 / (sigma * sigma)
    scaled = factor * inv_var[:, None]  # D⁻¹F
    capacitance = jnp.eye(r, dtype=u.dtype) + factor.T @ scaled  # I + FᵀD⁻¹F
    chol = jnp.linalg.cholesky(capacitance)
    projected = jax.scipy.linalg.solve_triangular(chol, scaled.T @ u, lower=True)
    quadratic = jnp.sum(u * u * inv_var) - jnp.sum(projected * projected)
    logdet = 2 * jnp.sum(jnp.log(sigma)) + 2 * jnp.sum(jnp.log(jnp.diag(chol)))
    return -0.5 * (quadratic + logdet + d * jnp.log(2 * jnp.pi).astype(u.dtype))


def mixture_logpdf(u, params):
    """log q_u(u) of the mixture in whitened coordinates."""
    sigma = jnp.exp(params.log_sigma)
    log_weights = jax.nn.log_softmax(params.logits)
    per_component = jax.vmap(
        lambda mean, factor: component_logpdf(u - mean, factor, sigma)
    )(params.means, params.factors)
    return jax.scipy.special.logsumexp(log_weights + per_component)


def component_draws(key, params, samples):
    """(M, S, d) whitened draws: S reparameterised draws from each component."""
    components, d, rank = params.factors.shape
    z_key, e_key = jax.random.split(key)
    z = jax.random.normal(z_key, (components, samples, rank), params.means.dtype)
    e = jax.random.normal(e_key, (components, samples, d), params.means.dtype)
    return (params.means[:, None, :] + jnp.einsum("mdr,msr->msd", params.factors, z)
            + jnp.exp(params.log_sigma) * e)


def mixture_draws(key, params, count):
    """(count, d) whitened draws from q itself (component chosen by π)."""
    choice_key, z_key, e_key = jax.random.split(key, 3)
    components, d, rank = params.factors.shape
    choice = jax.random.categorical(choice_key, params.logits, shape=(count,))
    z = jax.random.normal(z_key, (count, rank), params.means.dtype)
    e = jax.random.normal(e_key, (count, d), params.means.dtype)
    return (params.means[choice] + jnp.einsum("ndr,nr->nd", params.factors[choice], z)
            + jnp.exp(params.log_sigma) * e)


def whitening(posterior, data, settings, key):
    """(T, log|det T|): w = w* + T u maps the quadratic part of the target to N(0, I)."""
    w_star = data["w_star"]
    loss = lambda w: posterior.loss(w, data)  # noqa: E731
    if settings["whitening"] == "none":
        curvature = top_curvature(loss, w_star, key)
        scale = 1.0 / jnp.sqrt(posterior.nbeta * curvature + posterior.gamma)
        return scale * jnp.eye(w_star.size, dtype=w_star.dtype), w_star.size * jnp.log(scale)
    hessian = jax.hessian(loss)(w_star)
    eigenvalues, vectors = jnp.linalg.eigh(0.5 * (hessian + hessian.T))
    precision = posterior.nbeta * jnp.maximum(eigenvalues, 0.0) + posterior.gamma
    # γ = 0 leaves flat directions improper; floor them so T stays finite.
    precision = jnp.maximum(precision, 1e-6 * jnp.max(precision))
    scales = 1.0 / jnp.sqrt(precision)
    return vectors * scales, jnp.sum(jnp.log(scales))


def elbo_estimate(params, key, posterior, data, settings, transform):
    """Minibatch ELBO: Σ_m π_m mean_s[log p̃(w_ms) − log q(w_ms)] on one shared minibatch."""
    draw_key, batch_key = jax.random.split(key)
    T, log_det = transform
    u = component_draws(draw_key, params, settings["samples"])
    w_star = data["w_star"]

    def log_ratio(u):
        w = w_star + T @ u
        loss = posterior.minibatch_loss(w, data, batch_key, settings["batch_size"],
                                        settings["replacement"])
        log_target = -(posterior.nbeta * loss + posterior.localizer(w, data))
        return log_target - (mixture_logpdf(u, params) - log_det)

    values = jax.vmap(jax.vmap(log_ratio))(u)  # (M, S)
    weights = jax.nn.softmax(params.logits)
    return jnp.sum(weights * jnp.mean(values, axis=1))


def _fit(posterior, settings, data, transform, key):
    init_key, fit_key, draw_key = jax.random.split(key, 3)
    d = data["w_star"].size
    dtype = data["w_star"].dtype
    params = init_params(init_key, d, settings["components"], settings["rank"], dtype,
                         settings["init_sigma"])
    learning_rate = settings["learning_rate"]
    if settings["learning_rate_decay"] == "cosine":
        # Late steps then average out the minibatch noise instead of riding it: on the
        # 5-4-6-5 DLN the ELBO rose from −120 to −117 and λ̂ fell from 25 to 23 (no other change).
        learning_rate = optax.cosine_decay_schedule(learning_rate, settings["steps"], alpha=0.01)
    optimizer = optax.adam(learning_rate)

    def objective(params, key):
        return -elbo_estimate(params, key, posterior, data, settings, transform)

    def one_step(carry, step_key):
        params, state = carry
        value, grad = jax.value_and_grad(objective)(params, step_key)
        updates, state = optimizer.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), -value

    def one_block(carry, block_key):
        carry, elbo = jax.lax.scan(one_step, carry,
                                   jax.random.split(block_key, settings["eval_every"]))
        return carry, jnp.mean(elbo)

    blocks = settings["steps"] // settings["eval_every"]
    (params, _), elbo = jax.lax.scan(one_block, (params, optimizer.init(params)),
                                     jax.random.split(fit_key, blocks))
    T = transform[0]
    u = mixture_draws(draw_key, params, settings["draws"])

    def evaluate(u):
        w = data["w_star"] + T @ u
        loss = posterior.loss(w, data)
        log_target = -(posterior.nbeta * loss + posterior.localizer(w, data))
        return loss, log_target - mixture_logpdf(u, params)

    loss, log_weight = jax.lax.map(evaluate, u, batch_size=min(settings["draws"], 256))
    return loss, log_weight, elbo, params


def _sample(posterior, settings, data, keys):
    transform = whitening(posterior, data, settings, jax.random.fold_in(keys[0], 1))
    return over_chains(lambda key: _fit(posterior, settings, data, transform, key), keys)


def importance_check(loss, log_weight, nbeta) -> dict:
    """Self-normalised importance weights p̃/q of each fit's own draws: how far q is from p.

    `importance_ess_fraction` (the smallest over fits) is 1 when q = p and near 0 when
    E_q[L_n] is not E_p[L_n]; `llc_importance_shift` (mean over fits) is nβ(Σ wL/Σ w − mean L),
    how far reweighting would move λ̂ — itself unreliable when the ESS is small.
    """
    fractions, shifts = [], []
    for chain_loss, chain_log_weight in zip(np.asarray(loss, np.float64),
                                            np.asarray(log_weight, np.float64)):
        ok = np.isfinite(chain_log_weight) & np.isfinite(chain_loss)
        if not np.any(ok):
            continue
        w = np.exp(chain_log_weight[ok] - chain_log_weight[ok].max())
        fractions.append(w.sum() ** 2 / np.sum(w * w) / ok.sum())
        shifts.append(nbeta * (np.sum(w * chain_loss[ok]) / w.sum() - chain_loss[ok].mean()))
    if not fractions:
        return {"importance_ess_fraction": None, "llc_importance_shift": None}
    return {"importance_ess_fraction": float(min(fractions)),
            "llc_importance_shift": float(np.mean(shifts))}


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    for key, words in REGISTRY["vi"].choices.items():  # for callers that skip the config check
        if settings[key] not in words:
            raise ValueError(f"{key} must be one of {', '.join(words)}, not {settings[key]!r}")
    if settings["steps"] < settings["eval_every"]:
        raise ValueError("steps must be at least eval_every")
    keys = chain_keys(seed, settings["chains"])
    result, seconds_compile, seconds_sample = compile_and_run(
        partial(_sample, posterior, settings), data, keys)
    loss, log_weight, elbo, params = result
    d = data["w_star"].size
    # Cost: M·S minibatch gradients per step (one per reparameterised draw), per fit, plus
    # the whitening (d Hessian-vector products of 2 gradients each, or the power iteration)
    # and the final L_n of every draw.
    per_step = settings["components"] * settings["samples"] * settings["batch_size"] / posterior.n
    setup = 2.0 * (d if settings["whitening"] == "hessian" else POWER_ITERATIONS + 1)
    fit_cost = (settings["steps"] * per_step + setup / settings["chains"]
                + settings["draws"] * loss_eval_cost(posterior))
    weights = np.exp(params.logits - params.logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    sigma = np.exp(params.log_sigma)
    return SamplerOutput(
        loss=loss,
        burn_in=0,
        grad_evals_at=np.full(settings["draws"], fit_cost, np.float64),
        traces={"elbo": elbo},
        stats={
            "elbo_final": [float(v) for v in np.mean(elbo[:, -max(1, elbo.shape[1] // 10):], axis=1)],
            "loss_draws_are": "iid draws from the fitted q, one fit per chain",
            "components": settings["components"],
            "rank": settings["rank"],
            "mixture_weights": weights.tolist(),
            "whitening": settings["whitening"],
            **importance_check(loss, log_weight, posterior.nbeta),
            "whitened_sigma_range": [float(sigma.min()), float(sigma.max())],
        },
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )
