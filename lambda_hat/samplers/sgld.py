"""Stochastic gradient Langevin dynamics (BlackJAX kernel), minibatches with replacement.

Δw = −(ε/2)(nβ ∇L_batch(w) + γ(w − w*)) + √ε ξ. BlackJAX's overdamped Langevin step is
w + h ∇log p + √(2h) ξ, so h = ε/2. Full-data L_n is evaluated only every `eval_every` steps.
"""

from __future__ import annotations

from functools import partial

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from .common import SamplerOutput, chain_keys, compile_and_run


def _chain(posterior, settings, data, key, position):
    batch_size = settings["batch_size"]
    dtype = data["w_star"].dtype
    half_step = jnp.asarray(settings["step_size"] / 2, dtype)

    def grad_estimator(w, step_key):
        def log_density(w):
            loss = posterior.minibatch_loss(w, data, step_key, batch_size)
            return -(posterior.nbeta * loss + posterior.localizer(w, data))

        return jax.grad(log_density)(w)

    kernel = blackjax.sgld(grad_estimator).step

    def one_step(w, step_key):
        batch_key, noise_key = jax.random.split(step_key)
        return kernel(noise_key, w, batch_key, half_step), None

    def one_block(w, block_key):
        w, _ = jax.lax.scan(one_step, w, jax.random.split(block_key, settings["eval_every"]))
        return w, posterior.loss(w, data)

    blocks = settings["steps"] // settings["eval_every"]
    _, loss = jax.lax.scan(one_block, position, jax.random.split(key, blocks))
    return loss


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    if settings["steps"] < settings["eval_every"]:
        raise ValueError("steps must be at least eval_every")
    keys = chain_keys(seed, settings["chains"])
    loss, seconds_compile, seconds_sample = compile_and_run(
        lambda data, keys: jax.vmap(
            lambda key: _chain(posterior, settings, data, key, data["w_star"])
        )(keys),
        data,
        keys,
    )
    blocks = loss.shape[1]
    per_step = settings["batch_size"] / posterior.n
    grad_evals_at = np.arange(1, blocks + 1) * settings["eval_every"] * per_step
    return SamplerOutput(
        loss=loss,
        burn_in=int(settings["burn_in"] * blocks),
        grad_evals_at=grad_evals_at,
        stats={"step_size": settings["step_size"], "batch_size": settings["batch_size"]},
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )
