"""Full-batch HMC and NUTS (BlackJAX) with Stan-style window adaptation.

Adaptation (step size by dual averaging, diagonal mass matrix from windowed variances) is
either per chain (`per_chain`, the default: independent warmups, so R-hat also sees a chain
whose adaptation went wrong) or `shared`: one warmup, whose final state and parameters all
chains start from, its cost spread over the chains; cheaper, but the chains share one start
and one step size, so they cannot disagree about adaptation. (BlackJAX's pooled multi-chain
adaptation exists only for its experimental metric="auto".) Warmup draws are discarded;
warmups start at w*. NUTS caps trees at `max_tree_depth` doublings: on DLNs untruncated trees
ran to 1023 leapfrog steps per draw (60 s on an 8-6-7-5-6 DLN); a cap keeps detailed balance.

HMC draws jitter the step size uniformly by ±`step_size_jitter` per transition: with a fixed
trajectory length a near-Gaussian posterior can resonate (the trajectory returns close to a
half or full period) and the L_n trace then mixes very slowly (on a regular DLN the ESS of
L_n fell to ~20 of 4000 draws; ±20% jitter restored ~1200). NUTS needs no jitter.

BlackJAX is imported by the functions that trace it: a job whose traced program is cached
(`lambda_hat.programs`) never imports it (~0.2 s).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .common import SamplerOutput, broadcast_chains, chain_keys, compile_and_run, over_chains


def _extra_parameters(kind, settings):
    if kind == "hmc":
        return {"num_integration_steps": settings["num_integration_steps"]}
    return {"max_num_doublings": settings["max_tree_depth"]}


def _adaptation(kind, logdensity, settings):
    import blackjax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    algorithm = blackjax.hmc if kind == "hmc" else blackjax.nuts
    # Keep only the integration-step count of warmup transitions: it is the work done.
    info_fn = get_filter_adapt_info_fn(
        info_keys={"num_integration_steps"} if kind == "nuts" else set())
    return blackjax.window_adaptation(
        algorithm, logdensity, target_acceptance_rate=settings["target_accept"],
        adaptation_info_fn=info_fn, **_extra_parameters(kind, settings))


def _adapt_one(kind, logdensity, settings, key, position):
    """(state, step size, inverse mass, warmup integration steps) of one warmup."""
    (state, params), info = _adaptation(kind, logdensity, settings).run(
        key, position, num_steps=settings["warmup"])
    if kind == "nuts":
        steps = jnp.sum(info.info.num_integration_steps)
    else:
        steps = jnp.asarray(settings["warmup"] * settings["num_integration_steps"])
    return state, params["step_size"], params["inverse_mass_matrix"], steps


def _adapt(kind, logdensity, settings, keys, position):
    """Per-chain warmups, or (`shared`) one warmup whose end state and parameters every
    chain starts from; its cost is then spread over the chains."""
    import blackjax

    chains = keys.shape[0]
    if settings["warmup"] == 0:
        state = blackjax.hmc.init(position, logdensity)
        return (broadcast_chains(state, chains), jnp.ones((chains,), position.dtype),
                jnp.ones((chains, position.size), position.dtype), jnp.zeros((chains,)))
    if settings["adaptation"] == "per_chain":
        return over_chains(lambda key: _adapt_one(kind, logdensity, settings, key, position),
                           keys)
    state, step_size, mass, steps = _adapt_one(kind, logdensity, settings, keys[0], position)
    return (broadcast_chains(state, chains), jnp.full((chains,), step_size),
            broadcast_chains(mass, chains), jnp.full((chains,), steps / chains))


def _draws(kind, posterior, data, logdensity, settings, key, state, step_size, inverse_mass):
    import blackjax

    if kind == "hmc":
        kernel = blackjax.hmc.build_kernel()
        extra = {"num_integration_steps": settings["num_integration_steps"]}
    else:
        kernel = blackjax.nuts.build_kernel()
        extra = {"max_num_doublings": settings["max_tree_depth"]}
    jitter = settings.get("step_size_jitter", 0.0)

    def one_draw(state, step_key):
        jitter_key, kernel_key = jax.random.split(step_key)
        scale = 1.0 + jitter * jax.random.uniform(jitter_key, (), step_size.dtype, -1.0, 1.0)
        state, info = kernel(kernel_key, state, logdensity, step_size * scale, inverse_mass,
                             **extra)
        loss = posterior.loss_from_logdensity(state.logdensity, state.position, data)
        steps = info.num_integration_steps if kind == "nuts" else extra["num_integration_steps"]
        return state, (loss, info.acceptance_rate, info.is_divergent, steps)

    _, trace = jax.lax.scan(one_draw, state, jax.random.split(key, settings["draws"]))
    return trace


def _sample(kind, posterior, settings, data, keys):
    logdensity = partial(posterior.logdensity, data=data)
    adapt_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    states, step_sizes, masses, warmup_steps = _adapt(
        kind, logdensity, settings, adapt_keys, data["w_star"])
    # Fixed-length HMC vectorises well across chains; NUTS trees differ in length per chain.
    chain_map = over_chains if kind == "nuts" else lambda fn, xs: jax.vmap(fn)(xs)
    trace = chain_map(
        lambda args: _draws(kind, posterior, data, logdensity, settings, *args),
        (draw_keys, states, step_sizes, masses))
    return trace, step_sizes, masses, warmup_steps


def _run(kind, posterior, data, settings, seed) -> SamplerOutput:
    if settings["adaptation"] not in ("per_chain", "shared"):
        raise ValueError(f"adaptation must be per_chain or shared, not {settings['adaptation']!r}")
    keys = chain_keys(seed, settings["chains"])
    result, seconds_compile, seconds_sample = compile_and_run(
        partial(_sample, kind, posterior, settings), data, keys
    )
    (loss, acceptance, divergent, steps), step_sizes, masses, warmup_steps = result
    # Cost in gradient evaluations: one per leapfrog step (the gradient at the end of a
    # trajectory is cached in the state), warmup included, averaged over chains.
    per_chain = np.mean(warmup_steps) + np.cumsum(np.mean(steps, axis=0))
    stats = {
        "adaptation": settings["adaptation"],
        "warmup_discarded": settings["warmup"],
        "adapted_step_size": step_sizes.tolist(),
        "inverse_mass_range": [float(np.min(masses)), float(np.max(masses))],
        "acceptance_mean": float(np.nanmean(acceptance)),
        "divergences": int(np.sum(divergent)),
        "divergence_fraction": float(np.mean(divergent)),
        "transitions": int(divergent.size),
        "integration_steps_mean": float(np.mean(steps)),
    }
    traces = {"acceptance": acceptance, "divergent": divergent}
    if kind == "nuts":
        traces["integration_steps"] = steps
    return SamplerOutput(
        loss=loss,
        burn_in=0,
        grad_evals_at=per_chain.astype(np.float64),
        traces=traces,
        stats=stats,
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    """Fixed-length HMC."""
    return _run("hmc", posterior, data, settings, seed)


def run_nuts(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    """NUTS: trajectory length chosen per draw by the U-turn criterion."""
    return _run("nuts", posterior, data, settings, seed)
