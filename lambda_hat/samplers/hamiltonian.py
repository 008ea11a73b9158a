"""What HMC and NUTS share: BlackJAX's Stan-style window adaptation in front of a HMC-family
kernel, their statistics (acceptance, divergences, leapfrog steps) and their warnings.

Adaptation (step size by dual averaging, diagonal mass matrix from windowed variances) is
either per chain (`per_chain`, the default: independent warmups, so R-hat also sees a chain
whose adaptation went wrong) or `shared`: one warmup, whose final state and parameters all
chains start from, its cost spread over the chains; cheaper, but the chains share one start
and one step size, so they cannot disagree about adaptation. (BlackJAX's pooled multi-chain
adaptation exists only for its experimental metric="auto".) Warmups start at w*.

BlackJAX is imported where the program is traced: a job whose traced program is cached
(`lambda_hat.programs`) never imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from ..settings import bounded
from .base import FullBatchSettings, Kernel, no_check, no_pilot, no_setup

MARKOV_CHAIN = True
FAILURE_HINT = "lower step_size or raise warmup"
LOSS_TRACE = "full_data"
LEAPFROG = True
"""A draw's `grad_evals` counts its leapfrog steps, one gradient each."""
setup, pilot, check = no_setup, no_pilot, no_check
"""Each chain adapts on its own in its warmup: nothing shared to set up or pilot."""


@dataclass(frozen=True)
class WindowAdapted(FullBatchSettings):
    """What HMC and NUTS share: window adaptation towards an acceptance rate."""

    target_accept: float = bounded(0.8, exclusiveMinimum=0, exclusiveMaximum=1)
    adaptation: Literal["per_chain", "shared"] = "per_chain"
    """Independent warmups per chain, or one warmup that every chain starts from."""
    remedy: bool = True
    """When more than DIVERGENCE_FRACTION_MAX of the transitions diverge, adapt and sample
    again at the next rung of REMEDY_LADDER (recorded in the summary's `remediation`);
    False: warn only."""

    @property
    def shared_adaptation(self) -> bool:
        return self.adaptation == "shared"


class Params(NamedTuple):
    """What window adaptation tunes, per chain."""

    step_size: object
    inverse_mass_matrix: object


class WarmupInfo(NamedTuple):
    grad_evals: object


class StepInfo(NamedTuple):
    """One draw: L_n at the new state, Metropolis acceptance, divergence, leapfrog steps."""

    loss: object
    acceptance: object
    divergent: object
    grad_evals: object


def adapted_kernel(algorithm, settings, posterior, extra: dict, jitter: float,
                   warmup_cost, step_cost, vectorized: bool) -> Kernel:
    """A BlackJAX HMC-family kernel behind window adaptation.

    `extra` are the algorithm's own keyword arguments (trajectory length or tree depth);
    `warmup_cost(info)` and `step_cost(info)` count leapfrog steps, one gradient each (the
    gradient at a trajectory's end is cached in the state).
    """
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    logdensity = posterior.logdensity
    kernel = algorithm.build_kernel()

    def init(key, position):
        if settings.warmup == 0:
            state = blackjax.hmc.init(position, logdensity)
            return state, Params(jnp.ones((), position.dtype),
                                 jnp.ones((position.size,), position.dtype)), WarmupInfo(0.0)
        adaptation = blackjax.window_adaptation(
            algorithm, logdensity, target_acceptance_rate=settings.target_accept,
            adaptation_info_fn=get_filter_adapt_info_fn(
                info_keys={"num_integration_steps"} if step_cost is None else set()),
            **extra)
        (state, params), info = adaptation.run(key, position, num_steps=settings.warmup)
        return (state, Params(params["step_size"], params["inverse_mass_matrix"]),
                WarmupInfo(warmup_cost(info)))

    def step(key, state, params):
        jitter_key, kernel_key = jax.random.split(key)
        scale = 1.0 + jitter * jax.random.uniform(jitter_key, (), params.step_size.dtype,
                                                  -1.0, 1.0)
        state, info = kernel(kernel_key, state, logdensity, params.step_size * scale,
                             params.inverse_mass_matrix, **extra)
        loss = posterior.loss_from_logdensity(state.logdensity, state.position)
        cost = info.num_integration_steps if step_cost is None else step_cost
        return state, StepInfo(loss, info.acceptance_rate, info.is_divergent, cost)

    return Kernel(init=init, step=step, vectorized=vectorized)


def summarize(settings, output) -> dict:
    divergent = output.traces["divergent"]  # per kept draw: the fraction of its block
    transitions = divergent.size * settings.thin
    return {
        "adaptation": settings.adaptation,
        "target_accept": settings.target_accept,
        "warmup_discarded": settings.warmup,
        "adapted_step_size": output.params.step_size.tolist(),
        "inverse_mass_range": [float(np.min(output.params.inverse_mass_matrix)),
                               float(np.max(output.params.inverse_mass_matrix))],
        "acceptance_mean": float(np.nanmean(output.traces["acceptance"])),
        "divergences": int(round(float(np.sum(divergent)) * settings.thin)),
        "divergences_per_chain": np.rint(np.sum(divergent, axis=1) * settings.thin)
        .astype(int).tolist(),
        "divergence_fraction": float(np.mean(divergent)),
        "transitions": int(transitions),
        "integration_steps_mean": float(np.mean(output.traces["grad_evals"])) / settings.thin,
    }


DIVERGENCE_FRACTION_MAX = 0.01
"""A few divergences are common on singular posteriors (DLN walls) without visible bias; more
than 1% of transitions means the step size misses a region."""


REMEDY_LADDER = ((0.95, 1), (0.99, 1), (0.995, 4))
"""(target acceptance, warmup factor) a run with too many divergences is adapted and sampled
again with, in turn: a higher target adapts a smaller step, which the stiff neck of a
funnel-shaped posterior (a singularity's shape) needs, and the last rung's longer warmup
lets each chain's adaptation reach the neck. At most three reruns; with the default warmup
and draws they cost about 1, 1 and 2 times the first run (HMC; NUTS's trees grow as the
step shrinks)."""


def _diverging(stats: dict) -> bool:
    return bool(stats["divergences"]) and stats["divergence_fraction"] > DIVERGENCE_FRACTION_MAX


def remedy(settings, stats: dict):
    """The next rung of REMEDY_LADDER above the run's target acceptance while too many
    transitions diverge."""
    if not settings.remedy or not _diverging(stats):
        return None
    higher = [rung for rung in REMEDY_LADDER if rung[0] > settings.target_accept]
    if not higher:
        return None
    target, factor = higher[0]
    return dataclasses.replace(settings, target_accept=target, warmup=settings.warmup * factor)


def warnings(stats: dict) -> list[str]:
    """Divergences past the threshold, with their count per chain: divergences bunched in a
    few chains mean those chains reached a stiffer region than their warmup saw."""
    if _diverging(stats):
        per_chain = stats.get("divergences_per_chain")
        where = f"; per chain {', '.join(map(str, per_chain))}" if per_chain else ""
        target = stats.get("target_accept")
        advice = ("raise target_accept" if target is None
                  else f"raise target_accept (this run's: {target:g}) or warmup")
        return [f"{stats['divergences']} divergent transitions "
                f"({stats['divergence_fraction']:.1%} of transitions{where}): {advice}"]
    return []
