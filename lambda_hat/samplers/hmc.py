"""Full-batch HMC (BlackJAX) with window adaptation of step size and diagonal mass matrix."""

from __future__ import annotations

from functools import partial

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn

from .common import SamplerOutput, chain_keys, compile_and_run


def _adapt(logdensity, settings, key, position):
    adaptation = blackjax.window_adaptation(
        blackjax.hmc,
        logdensity,
        num_integration_steps=settings["num_integration_steps"],
        target_acceptance_rate=settings["target_accept"],
        adaptation_info_fn=get_filter_adapt_info_fn(),
    )
    (state, parameters), _ = adaptation.run(key, position, num_steps=settings["warmup"])
    return state, parameters["step_size"], parameters["inverse_mass_matrix"]


def _draws(posterior, data, logdensity, settings, key, state, step_size, inverse_mass_matrix):
    """Draws with the step size jittered uniformly by ±step_size_jitter per transition.

    A fixed trajectory length resonates with near-Gaussian posteriors once the mass matrix
    is adapted (every direction has a similar period): on a regular DLN the ESS of L_n fell
    to ~20 of 4000 draws; ±20% jitter restored ~1200.
    """
    kernel = blackjax.mcmc.hmc.build_kernel()
    jitter = settings["step_size_jitter"]

    def one_draw(state, step_key):
        jitter_key, step_key = jax.random.split(step_key)
        scale = jax.random.uniform(jitter_key, (), step_size.dtype, 1 - jitter, 1 + jitter)
        state, info = kernel(step_key, state, logdensity, step_size * scale, inverse_mass_matrix,
                             settings["num_integration_steps"])
        loss = posterior.loss_from_logdensity(state.logdensity, state.position, data)
        return state, (loss, info.acceptance_rate, info.is_divergent)

    _, trace = jax.lax.scan(one_draw, state, jax.random.split(key, settings["draws"]))
    return trace


def _sample(posterior, settings, data, keys):
    logdensity = partial(posterior.logdensity, data=data)
    w_star = data["w_star"]
    adapt_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    if settings["adaptation"] == "per_chain":
        states, step_sizes, masses = jax.vmap(
            lambda key: _adapt(logdensity, settings, key, w_star)
        )(adapt_keys)
    else:
        state, step_size, mass = _adapt(logdensity, settings, adapt_keys[0], w_star)
        chains = keys.shape[0]
        states = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (chains, *leaf.shape)), state)
        step_sizes = jnp.full((chains,), step_size)
        masses = jnp.broadcast_to(mass, (chains, *mass.shape))
    trace = jax.vmap(
        lambda key, state, step, mass: _draws(posterior, data, logdensity, settings, key, state, step, mass)
    )(draw_keys, states, step_sizes, masses)
    return trace, step_sizes


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    keys = chain_keys(seed, settings["chains"])
    result, seconds_compile, seconds_sample = compile_and_run(
        partial(_sample, posterior, settings), data, keys
    )
    (loss, acceptance, divergent), step_sizes = result
    steps = settings["num_integration_steps"]
    # Each warmup step is one HMC transition; shared adaptation spreads its cost over chains.
    adaptation_cost = settings["warmup"] * steps
    if settings["adaptation"] == "shared":
        adaptation_cost /= settings["chains"]
    grad_evals_at = adaptation_cost + np.arange(1, settings["draws"] + 1) * steps
    return SamplerOutput(
        loss=loss,
        burn_in=0,
        grad_evals_at=grad_evals_at.astype(np.float64),
        traces={"acceptance": acceptance, "divergent": divergent},
        stats={
            "adaptation": settings["adaptation"],
            "adapted_step_size": step_sizes.tolist(),
            "acceptance_mean": float(np.nanmean(acceptance)),
            "divergences": int(np.sum(divergent)),
        },
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )
