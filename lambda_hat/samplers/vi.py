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
(number of such coordinates)/2. `whitening: none` (T = σ₀ I, σ₀ = (nβ λ_max + γ)^{-1/2})
keeps the raw family for comparison.

The draws are not a Markov chain. Each chain is an independent fit (its own seed: the
driver's warmup); its `draws` steps are independent samples w ~ q with their full-data
L_n(w), so the estimator's nβ(mean L_n − L_n(w*)) is the Monte Carlo λ̂ = nβ(E_q[L_n] −
L_n(w*)) and its iid standard error is the MCSE. The fit history (minibatch ELBO averaged over
`eval_every` steps) is kept with the warmup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from ..settings import bounded
from .base import BatchSettings, Kernel, no_pilot, no_remedy

MARKOV_CHAIN = False
FAILURE_HINT = "lower learning_rate"
LOSS_TRACE = "iid_draws"
LEAPFROG = False
CAN_BE_REFERENCE = False
pilot, remedy = no_pilot, no_remedy


@dataclass(frozen=True)
class Settings(BatchSettings):
    kind: Literal["vi"] = "vi"
    components: int = bounded(4, minimum=1)
    rank: int = bounded(2, minimum=1)
    whitening: Literal["hessian", "none"] = "hessian"
    init_sigma: float = bounded(0.3, exclusiveMinimum=0)
    steps: int = bounded(3000, minimum=1)
    learning_rate: float = bounded(1.0e-2, exclusiveMinimum=0)
    learning_rate_decay: Literal["cosine", "none"] = "cosine"
    samples: int = bounded(4, minimum=1)
    draws: int = bounded(1000, minimum=1)
    eval_every: int = bounded(10, minimum=1)


    @property
    def warmup_steps(self) -> int:
        """The fit: each chain's `steps` of ELBO ascent before its draws."""
        return self.steps


def check(settings) -> list[tuple[str, str]]:
    if settings.steps < settings.eval_every:
        return [("steps", "must be at least eval_every")]
    return []


class Setup(NamedTuple):
    """The whitening w = w* + T u, shared by all fits, and its cost."""

    T: object
    log_det: object
    grad_evals: object


class WarmupInfo(NamedTuple):
    grad_evals: object
    elbo: object
    mixture_weights: object
    sigma: object


class StepInfo(NamedTuple):
    loss: object
    log_weight: object
    grad_evals: object


def whitening(posterior, settings, key):
    """(T, log|det T|): w = w* + T u maps the quadratic part of the target to N(0, I)."""
    import jax
    import jax.numpy as jnp

    from .step_size import top_curvature

    w_star = posterior.w_star
    if settings.whitening == "none":
        curvature = top_curvature(posterior.loss, w_star, key)
        scale = 1.0 / jnp.sqrt(posterior.nbeta * curvature + posterior.gamma)
        return scale * jnp.eye(w_star.size, dtype=w_star.dtype), w_star.size * jnp.log(scale)
    hessian = jax.hessian(posterior.loss)(w_star)
    eigenvalues, vectors = jnp.linalg.eigh(0.5 * (hessian + hessian.T))
    precision = posterior.nbeta * jnp.maximum(eigenvalues, 0.0) + posterior.gamma
    # γ = 0 leaves flat directions improper; floor them so T stays finite.
    precision = jnp.maximum(precision, 1e-6 * jnp.max(precision))
    scales = 1.0 / jnp.sqrt(precision)
    return vectors * scales, jnp.sum(jnp.log(scales))


def elbo_estimate(params, key, posterior, settings, transform):
    """Minibatch ELBO: Σ_m π_m mean_s[log p̃(w_ms) − log q(w_ms)] on one shared minibatch."""
    import jax
    import jax.numpy as jnp

    from .mixture import component_draws, mixture_logpdf

    draw_key, batch_key = jax.random.split(key)
    T, log_det = transform
    u = component_draws(draw_key, params, settings.samples)

    def log_ratio(u):
        w = posterior.w_star + T @ u
        log_target = -posterior.minibatch_potential(w, batch_key, settings.batch_size,
                                                    settings.replacement)
        return log_target - (mixture_logpdf(u, params) - log_det)

    values = jax.vmap(jax.vmap(log_ratio))(u)  # (M, S)
    weights = jax.nn.softmax(params.logits)
    return jnp.sum(weights * jnp.mean(values, axis=1))


def setup(settings: Settings, posterior, key) -> Setup:
    import jax.numpy as jnp

    from .step_size import POWER_ITERATIONS

    T, log_det = whitening(posterior, settings, key)
    # d Hessian-vector products of 2 gradients each, or the power iteration.
    d = posterior.w_star.size
    cost = 2.0 * (d if settings.whitening == "hessian" else POWER_ITERATIONS + 1)
    return Setup(T, log_det, jnp.asarray(cost))


def build(settings: Settings, posterior, setup: Setup) -> Kernel:
    import jax
    import jax.numpy as jnp
    import optax

    from .mixture import init_params, mixture_draws, mixture_logpdf

    transform = (setup.T, setup.log_det)
    T = setup.T
    d = posterior.w_star.size
    learning_rate = settings.learning_rate
    if settings.learning_rate_decay == "cosine":
        # Late steps then average out the minibatch noise instead of riding it.
        learning_rate = optax.cosine_decay_schedule(learning_rate, settings.steps, alpha=0.01)
    optimizer = optax.adam(learning_rate)
    # M·S minibatch gradients per step (one per reparameterised draw).
    fit_cost = (settings.steps * settings.components * settings.samples * settings.batch_size
                / posterior.n)

    def objective(params, key):
        return -elbo_estimate(params, key, posterior, settings, transform)

    def one_step(carry, step_key):
        params, state = carry
        value, grad = jax.value_and_grad(objective)(params, step_key)
        updates, state = optimizer.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), -value

    def one_block(carry, block_key):
        carry, elbo = jax.lax.scan(one_step, carry,
                                   jax.random.split(block_key, settings.eval_every))
        return carry, jnp.mean(elbo)

    def init(key, position):
        """The fit: ELBO maximisation from a small mixture around w*."""
        init_key, fit_key = jax.random.split(key)
        params = init_params(init_key, d, settings.components, settings.rank, position.dtype,
                             settings.init_sigma)
        (params, _), elbo = jax.lax.scan(one_block, (params, optimizer.init(params)),
                                         jax.random.split(fit_key,
                                                          settings.steps // settings.eval_every))
        info = WarmupInfo(fit_cost, elbo, jax.nn.softmax(params.logits),
                          jnp.exp(params.log_sigma))
        return params, (), info

    def step(key, params, _):
        """One independent draw w ~ q, its full-data L_n and its log importance weight."""
        u = mixture_draws(key, params, 1)[0]
        w = posterior.w_star + T @ u
        loss = posterior.loss(w)
        log_target = -(posterior.nbeta * loss + posterior.localizer(w))
        return params, StepInfo(loss, log_target - mixture_logpdf(u, params),
                                posterior.loss_eval_cost)

    return Kernel(init=init, step=step, position=None)


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


def summarize(settings, output) -> dict:
    elbo = output.warmup.elbo
    sigma = output.warmup.sigma
    return {
        "elbo_final": [float(v) for v in np.mean(elbo[:, -max(1, elbo.shape[1] // 10):],
                                                 axis=1)],
        "components": settings.components,
        "rank": settings.rank,
        "mixture_weights": output.warmup.mixture_weights.tolist(),
        "whitening": settings.whitening,
        **importance_check(output.loss, output.traces["log_weight"],
                           output.nbeta),
        "whitened_sigma_range": [float(sigma.min()), float(sigma.max())],
    }


IMPORTANCE_ESS_MIN = 0.01
"""If fewer than 1% of the draws from q carry the importance weight p/q, E_q[L_n] is not
E_p[L_n] and λ̂ reflects the variational family, not the posterior."""


def warnings(stats: dict) -> list[str]:
    importance = stats["importance_ess_fraction"]
    if importance is not None and importance < IMPORTANCE_ESS_MIN:
        return [f"VI: importance-weight ESS is {importance:.2%} of the draws: q is far from "
                "the posterior, so λ̂ reflects the variational family"]
    return []
