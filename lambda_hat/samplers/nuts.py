"""NUTS (BlackJAX): HMC whose trajectory length is chosen per draw by the U-turn criterion,
behind the same window adaptation as HMC (`hamiltonian`).

Trees are capped at `max_tree_depth` doublings: on DLNs untruncated trees ran to 1023
leapfrog steps per draw; a cap keeps detailed balance. Trees differ in length per chain, so
chains run one after another rather than vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import bounded
from .base import Kernel
from .hamiltonian import (FAILURE_HINT, LEAPFROG, LOSS_TRACE, MARKOV_CHAIN, WindowAdapted,
                          adapted_kernel, check, pilot, remedy, setup, summarize,
                          warnings)

@dataclass(frozen=True)
class Settings(WindowAdapted):
    kind: Literal["nuts"] = "nuts"
    max_tree_depth: int = bounded(6, minimum=1)
    target_accept: float = bounded(0.9, exclusiveMinimum=0, exclusiveMaximum=1)


def build(settings: Settings, posterior, setup=()) -> Kernel:
    import blackjax
    import jax.numpy as jnp

    return adapted_kernel(
        blackjax.nuts, settings, posterior, {"max_num_doublings": settings.max_tree_depth},
        0.0, lambda info: jnp.sum(info.info.num_integration_steps), None, vectorized=False)


CAN_BE_REFERENCE = False
"""HMC is the reference (one per target, so the table compares like with like)."""
