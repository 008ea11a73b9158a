"""Full-batch HMC (BlackJAX) behind window adaptation (`hamiltonian`).

Draws jitter the step size uniformly by ±`step_size_jitter` per transition: with a fixed
trajectory length a near-Gaussian posterior can resonate (the trajectory returns close to a
half or full period) and the L_n trace then mixes very slowly; jitter breaks the resonance
(docs/samplers.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import bounded
from .base import Kernel
from .hamiltonian import (FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN, WindowAdapted,
                          adapted_kernel, check, pilot, remedy, setup, summarize,
                          warnings)

CAN_BE_REFERENCE = True
"""The aggregate table compares every run of a target with its HMC run."""


@dataclass(frozen=True)
class Settings(WindowAdapted):
    kind: Literal["hmc"] = "hmc"
    num_integration_steps: int = bounded(16, minimum=1)
    step_size_jitter: float = bounded(0.2, minimum=0, exclusiveMaximum=1)
    """Each draw's step size is scaled by a uniform factor in 1 ± this."""


def build(settings: Settings, posterior, setup=()) -> Kernel:
    import blackjax

    steps = settings.num_integration_steps
    return adapted_kernel(blackjax.hmc, settings, posterior, {"num_integration_steps": steps},
                          settings.step_size_jitter, lambda info: settings.warmup * steps,
                          steps, vectorized=True)
