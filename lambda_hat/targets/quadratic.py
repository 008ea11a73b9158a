"""The simplest sanity check: L_n(w) = ½||w − w*||² on a d-dimensional parameter.

Regular with every direction of curvature 1, so λ = d/2 exactly; at finite n the localized
posterior gives nβ E[L_n] = (d/2)·nβ/(nβ + γ). There is no data (X and Y have no columns):
a minibatch loss is the exact loss, which isolates a stochastic-gradient sampler's
discretisation error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..settings import bounded
from .base import no_sources
from .common import Built


@dataclass(frozen=True)
class Model:
    kind: Literal["quadratic"]
    d: int = bounded(minimum=1)


DEFAULTS = {"data": {"n": 1000}, "w_star": "teacher"}
TAKES_DATA = True
SIZE_KEY = "data.n"
OBSERVABLE = False
PROPER_WITHOUT_LOCALIZER = True
CHECKPOINTS = "none"
"""Every direction is curved, so γ = 0 (no localizer) still gives a proper posterior."""


def check(model: Model) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class HalfSquaredDistance:
    num_params: int

    loss_eval_cost = 0.0

    def loss(self, w, data):
        delta = w - data["w_star"]
        return 0.5 * (delta * delta).sum()

    def batch_loss(self, w, data, index):
        return self.loss(w, data)

    def parameter_groups(self) -> list:
        """One vector, no layers: nothing to restrict to."""
        return []

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        return {"w_star": jnp.asarray(arrays["w_star"], dtype)}


COMPARISON_DATA = "no inputs"
sources = no_sources


def likelihood(model: Model, config: dict) -> HalfSquaredDistance:
    return HalfSquaredDistance(model.d)


def build(model: Model, config: dict, where: str, dtype) -> Built:
    import jax
    import numpy as np

    w_star = jax.random.normal(jax.random.key(config["seed"]), (model.d,), dtype)
    n = config["data"]["n"]
    empty = np.zeros((n, 0), np.dtype(dtype))
    return Built({"w_star": np.asarray(w_star), "X": empty, "Y": empty}, model.d / 2, 1)
