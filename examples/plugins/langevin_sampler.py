"""ULA: the unadjusted Langevin algorithm on the full-data gradient, a worked example of a
sampler module (docs/adding-a-sampler.md; not registered).

    Δw = (ε/2) ∇log p(w) + √ε ξ,   ξ ~ N(0, I)

`step_size: auto` sets ε = τ/c, c the stiffest curvature of −log p at w*, so that direction's
variance is inflated by 1/(1 − τ/4) (docs/theory.md §6.1); without an accept step that bias
stays. The first `warmup` steps of each chain are discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from lambda_hat.samplers.base import FullBatchSettings, Kernel, no_pilot, no_remedy
from lambda_hat.settings import AUTO, bounded, is_auto

MARKOV_CHAIN = True
FAILURE_HINT = "lower step_size (or step_size_scale under step_size: auto)"
LOSS_TRACE = "full_data"
LEAPFROG = False
CAN_BE_REFERENCE = False
"""Unadjusted: its step's bias stays in the estimate."""
BIAS_WARN = 0.1
"""Flag a run whose stiffest direction's variance is inflated by more than this."""


@dataclass(frozen=True)
class Settings(FullBatchSettings):
    kind: Literal["ula"] = "ula"
    step_size: float | AUTO = bounded("auto", exclusiveMinimum=0)
    """ε; `auto`: τ/c, c the stiffest curvature of −log p at w*."""
    step_size_scale: float = bounded(0.2, exclusiveMinimum=0, exclusiveMaximum=4)
    """τ of `step_size: auto` (the chain is unstable at εc ≥ 4)."""


def check(settings: Settings) -> list[tuple[str, str]]:
    if not is_auto(settings.step_size) and settings.step_size_scale != Settings.step_size_scale:
        return [("step_size_scale", "is used only with step_size: auto")]
    return []


class Setup(NamedTuple):
    step_size: object
    stiffest: object
    """c at w*; NaN when the step size is given."""
    grad_evals: object


def setup(settings: Settings, posterior, key) -> Setup:
    """ε, from the curvature at w* under `step_size: auto` (`step_size.curvature_at_w_star`)."""
    import jax.numpy as jnp

    from lambda_hat.samplers import step_size

    curvature, cost = step_size.curvature_at_w_star(posterior, key, is_auto(settings.step_size))
    step = step_size.step_size(settings, curvature, lambda tau, c: tau / c.stiffest)
    return Setup(step, curvature.stiffest, jnp.asarray(cost, step.dtype))


pilot, remedy = no_pilot, no_remedy


class State(NamedTuple):
    position: object
    logdensity: object
    gradient: object


class Warmup(NamedTuple):
    grad_evals: object


class StepInfo(NamedTuple):
    loss: object
    grad_evals: object


def build(settings: Settings, posterior, setup: Setup) -> Kernel:
    import jax
    import jax.numpy as jnp

    value_and_grad = jax.value_and_grad(posterior.logdensity)
    step = setup.step_size

    def at(position):
        return State(position, *value_and_grad(position))

    def transition(key, state, params):
        noise = jax.random.normal(key, state.position.shape, state.position.dtype)
        state = at(state.position + step / 2 * state.gradient + jnp.sqrt(step) * noise)
        return state, StepInfo(posterior.loss_from_logdensity(state.logdensity,
                                                              state.position), 1.0)

    def init(key, position):
        state, _ = jax.lax.scan(lambda state, key: transition(key, state, ()), at(position),
                                jax.random.split(key, settings.warmup))
        return state, (), Warmup(settings.warmup + 1.0)

    return Kernel(init=init, step=transition)


def summarize(settings: Settings, output) -> dict:
    step, stiffest = float(output.setup.step_size), float(output.setup.stiffest)
    measured = bool(np.isfinite(stiffest))  # not under a given step size
    return {"step_size": step, "step_size_auto": is_auto(settings.step_size),
            "stiffest_curvature": stiffest if measured else None,
            "stiffest_step": step * stiffest if measured else None,
            "warmup_discarded": settings.warmup,
            "nonfinite_trace_points": int(np.sum(~np.isfinite(output.loss)))}


def warnings(stats: dict) -> list[str]:
    """The stiffest direction's variance inflation εc/(4 − εc) past BIAS_WARN (at w*), and
    chains that diverged."""
    found = []
    product = stats["stiffest_step"]
    if product is not None and (product >= 4 or product / (4 - product) > BIAS_WARN):
        inflation = "unbounded" if product >= 4 else f"{product / (4 - product):.0%}"
        found.append(f"εc = {product:.2g} at the stiffest direction: its variance is "
                     f"inflated by {inflation}; lower step_size or step_size_scale")
    if stats["nonfinite_trace_points"]:
        found.append(f"{stats['nonfinite_trace_points']} trace points are NaN/Inf: the chain "
                     "diverged; lower step_size")
    return found
