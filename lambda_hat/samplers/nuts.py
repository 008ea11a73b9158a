"""NUTS (BlackJAX): HMC whose trajectory length is chosen per draw by the U-turn criterion,
behind the same window adaptation as `hmc`.

Trees are capped at `max_tree_depth` doublings: on DLNs untruncated trees ran to 1023
leapfrog steps per draw; a cap keeps detailed balance. Trees differ in length per chain, so
chains run one after another rather than vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import bounded
from . import hmc
from .base import Kernel

MARKOV_CHAIN = True
FAILURE_HINT = hmc.FAILURE_HINT
LOSS_TRACE = hmc.LOSS_TRACE
summarize = hmc.summarize
warnings = hmc.warnings


@dataclass(frozen=True)
class Settings(hmc.WindowAdapted):
    kind: Literal["nuts"] = "nuts"
    max_tree_depth: int = bounded(6, minimum=1)
    target_accept: float = bounded(0.9, exclusiveMinimum=0, exclusiveMaximum=1)


def build(settings: Settings, posterior, setup=()) -> Kernel:
    import blackjax
    import jax.numpy as jnp

    return hmc.adapted_kernel(
        blackjax.nuts, settings, posterior, {"max_num_doublings": settings.max_tree_depth},
        0.0, lambda info: jnp.sum(info.info.num_integration_steps), None, vectorized=False)
