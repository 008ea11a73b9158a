"""Microcanonical Langevin Monte Carlo (BlackJAX `mclmc`), full batch, unadjusted.

L (momentum decoherence length) and the step size are tuned per chain by
`blackjax.mclmc_find_L_and_step_size` unless given: its first stages set the step size so
that the per-dimension variance of the energy error per step is `desired_energy_var`
(the bias of this unadjusted sampler grows with it) and fit a diagonal preconditioner; the
last stage sets L from the autocorrelation of the tuning draws. Tuning draws are discarded.
The realised energy error is recorded (E[ΔE²]/d per chain, its median, and the mean over
all draws, which the run warning uses): it is the only check on the step size, since no
Metropolis step corrects it. On DLNs ΔE² is heavy-tailed (rare large errors at the valley
walls: per-chain means up to 25× the target with medians 100× below it); BlackJAX's tuner
down-weights such steps, so it tunes to the typical error, and λ̂ stayed within 3%.

BlackJAX is imported where the program is traced: a job whose traced program is cached
(`lambda_hat.programs`) never imports it (~0.2 s).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .common import SamplerOutput, chain_keys, compile_and_run, is_auto, over_chains

GRADS_PER_STEP = 2
"""The default isokinetic McLachlan integrator takes two gradients per step (the third is
the first of the next step, cached in the state)."""


def _tune(logdensity, settings, key, position):
    import blackjax

    init_key, tune_key = jax.random.split(key)
    state = blackjax.mcmc.mclmc.init(position, logdensity, init_key)
    dim = position.size
    if not (is_auto(settings["L"]) or is_auto(settings["step_size"])):
        return state, jnp.asarray(settings["L"], position.dtype), \
            jnp.asarray(settings["step_size"], position.dtype), jnp.ones(dim, position.dtype), 0
    # The tuner reads its stage lengths as fractions of `num_steps`: three equal stages.
    state, params, tuning_steps = blackjax.mclmc_find_L_and_step_size(
        mclmc_kernel=blackjax.mcmc.mclmc.build_kernel(),
        num_steps=settings["warmup"],
        state=state,
        rng_key=tune_key,
        logdensity_fn=logdensity,
        frac_tune1=1 / 3,
        frac_tune2=1 / 3,
        frac_tune3=1 / 3,
        desired_energy_var=settings["desired_energy_var"],
        diagonal_preconditioning=settings["diagonal_preconditioning"],
    )
    L = params.L if is_auto(settings["L"]) else jnp.asarray(settings["L"], position.dtype)
    step = params.step_size if is_auto(settings["step_size"]) \
        else jnp.asarray(settings["step_size"], position.dtype)
    imm = jnp.broadcast_to(jnp.asarray(params.inverse_mass_matrix, position.dtype), (dim,))
    return state, L, step, imm, tuning_steps


def _chain(posterior, settings, data, key):
    import blackjax

    logdensity = partial(posterior.logdensity, data=data)
    tune_key, draw_key = jax.random.split(key)
    state, L, step_size, imm, tuning_steps = _tune(logdensity, settings, tune_key,
                                                   data["w_star"])
    kernel = blackjax.mclmc(logdensity, L=L, step_size=step_size, inverse_mass_matrix=imm).step

    def one_step(state, step_key):
        state, info = kernel(step_key, state)
        loss = posterior.loss_from_logdensity(state.logdensity, state.position, data)
        return state, (loss, info.energy_change)

    _, (loss, energy_change) = jax.lax.scan(
        one_step, state, jax.random.split(draw_key, settings["draws"]))
    return loss, energy_change, L, step_size, tuning_steps


def run(posterior, data, settings: dict, seed: int) -> SamplerOutput:
    keys = chain_keys(seed, settings["chains"])
    result, seconds_compile, seconds_sample = compile_and_run(
        lambda data, keys: over_chains(lambda key: _chain(posterior, settings, data, key), keys),
        data, keys)
    loss, energy_change, L, step_size, tuning_steps = result
    dim = data["w_star"].size
    # BlackJAX's tuning target: E[ΔE²]/d per step (ΔE = energy error of one step).
    squared = np.square(energy_change) / dim
    energy_var = np.mean(squared, axis=1)
    tuning = float(np.mean(tuning_steps))
    grad_evals_at = GRADS_PER_STEP * (tuning + np.arange(1, settings["draws"] + 1))
    return SamplerOutput(
        loss=loss,
        burn_in=0,
        grad_evals_at=grad_evals_at.astype(np.float64),
        traces={"energy_change": energy_change},
        stats={
            "L": L.tolist(),
            "step_size": step_size.tolist(),
            "tuned": bool(is_auto(settings["L"]) or is_auto(settings["step_size"])),
            "tuning_steps_discarded": int(tuning),
            "energy_variance": energy_var.tolist(),
            "energy_variance_median": np.median(squared, axis=1).tolist(),
            "energy_variance_mean": float(np.mean(squared)) if np.all(np.isfinite(squared))
            else None,
            "desired_energy_var": settings["desired_energy_var"],
        },
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )
