"""Microcanonical Langevin Monte Carlo (BlackJAX `mclmc`), full batch, unadjusted.

L (momentum decoherence length) and the step size are tuned per chain by
`blackjax.mclmc_find_L_and_step_size` unless given: its first stages set the step size so
that the per-dimension variance of the energy error per step is `desired_energy_var`
(the bias of this unadjusted sampler grows with it) and fit a diagonal preconditioner; the
last stage sets L from the autocorrelation of the tuning draws. Tuning draws are discarded.
The realised energy error is recorded (E[ΔE²]/d per chain, its median, and the mean over
all draws, which the run warning uses): it is the only check on the step size, since no
Metropolis step corrects it. On DLNs ΔE² is heavy-tailed (rare large errors at the valley
walls); BlackJAX's tuner down-weights such steps, so it tunes to the typical error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from ..settings import AUTO, bounded, is_auto
from .base import FullBatchSettings, Kernel, no_check, no_pilot, no_remedy, no_setup

MARKOV_CHAIN = True
FAILURE_HINT = "lower step_size"
LOSS_TRACE = "full_data"
LEAPFROG = False
CAN_BE_REFERENCE = False
setup, pilot, check, remedy = no_setup, no_pilot, no_check, no_remedy
GRADS_PER_STEP = 2
"""The default isokinetic McLachlan integrator takes two gradients per step (the third is
the first of the next step, cached in the state)."""


@dataclass(frozen=True)
class Settings(FullBatchSettings):
    kind: Literal["mclmc"] = "mclmc"
    warmup: int = bounded(1000, minimum=0)
    draws: int = bounded(4000, minimum=1)
    L: float | AUTO | None = bounded("auto", exclusiveMinimum=0)
    step_size: float | AUTO | None = bounded("auto", exclusiveMinimum=0)
    desired_energy_var: float = bounded(5.0e-4, exclusiveMinimum=0)
    diagonal_preconditioning: bool = True


class Params(NamedTuple):
    """Tuned per chain (or given): decoherence length, step size, diagonal preconditioner."""

    L: object
    step_size: object
    inverse_mass_matrix: object


class WarmupInfo(NamedTuple):
    grad_evals: object
    tuning_steps: object


class StepInfo(NamedTuple):
    """One draw: L_n, the step's energy error ΔE (the only check of an unadjusted step)."""

    loss: object
    energy_change: object
    grad_evals: object


def build(settings: Settings, posterior, setup=()) -> Kernel:
    import blackjax
    import jax
    import jax.numpy as jnp

    logdensity = posterior.logdensity
    tuned = is_auto(settings.L) or is_auto(settings.step_size)

    def init(key, position):
        init_key, tune_key = jax.random.split(key)
        state = blackjax.mcmc.mclmc.init(position, logdensity, init_key)
        dtype, dim = position.dtype, position.size
        if not tuned:
            return state, Params(jnp.asarray(settings.L, dtype),
                                 jnp.asarray(settings.step_size, dtype),
                                 jnp.ones(dim, dtype)), WarmupInfo(0.0, 0)
        # The tuner reads its stage lengths as fractions of `num_steps`: three equal stages.
        state, params, tuning_steps = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=blackjax.mcmc.mclmc.build_kernel(), num_steps=settings.warmup,
            state=state, rng_key=tune_key, logdensity_fn=logdensity, frac_tune1=1 / 3,
            frac_tune2=1 / 3, frac_tune3=1 / 3, desired_energy_var=settings.desired_energy_var,
            diagonal_preconditioning=settings.diagonal_preconditioning)
        L = params.L if is_auto(settings.L) else jnp.asarray(settings.L, dtype)
        step = params.step_size if is_auto(settings.step_size) \
            else jnp.asarray(settings.step_size, dtype)
        imm = jnp.broadcast_to(jnp.asarray(params.inverse_mass_matrix, dtype), (dim,))
        return state, Params(L, step, imm), WarmupInfo(GRADS_PER_STEP * tuning_steps,
                                                       tuning_steps)

    def step(key, state, params):
        kernel = blackjax.mclmc(logdensity, L=params.L, step_size=params.step_size,
                                inverse_mass_matrix=params.inverse_mass_matrix).step
        state, info = kernel(key, state)
        loss = posterior.loss_from_logdensity(state.logdensity, state.position)
        return state, StepInfo(loss, info.energy_change, GRADS_PER_STEP)

    return Kernel(init=init, step=step, vectorized=False)


def summarize(settings, output) -> dict:
    # BlackJAX's tuning target: E[ΔE²]/d per step (ΔE = energy error of one step).
    dim = output.params.inverse_mass_matrix.shape[-1]
    squared = np.square(output.traces["energy_change"]) / dim
    return {
        "L": output.params.L.tolist(),
        "step_size": output.params.step_size.tolist(),
        "tuned": bool(is_auto(settings.L) or is_auto(settings.step_size)),
        "tuning_steps_discarded": int(np.mean(output.warmup.tuning_steps)),
        "energy_variance": np.mean(squared, axis=1).tolist(),
        "energy_variance_median": np.median(squared, axis=1).tolist(),
        "energy_variance_mean": float(np.mean(squared)) if np.all(np.isfinite(squared))
        else None,
        "desired_energy_var": settings.desired_energy_var,
    }


ENERGY_VARIANCE_RATIO_MAX = 10.0
"""The check uses the mean of ΔE²/d over all kept draws of all chains: rare wall hits on DLNs
lift single chains far above the target without visible bias, but a pooled mean 10× the
target is no longer the regime the sampler was tuned for."""


def warnings(stats: dict) -> list[str]:
    energy, desired = stats["energy_variance_mean"], stats["desired_energy_var"]
    if energy is not None and energy > ENERGY_VARIANCE_RATIO_MAX * desired:
        return [f"MCLMC energy variance {energy:.2g} per dimension is "
                f"{energy / desired:.0f}× the target {desired:.2g}: the step size is too "
                "large; raise warmup or set a smaller step_size"]
    return []
