"""Deep linear network: widths [H_0, ..., H_L], a teacher whose end-to-end product has rank r.

Its exact λ is Aoyagi's (`lambda_hat.theory`). Its loss depends on the data only through
second moments, so a full-data L_n costs O(d·H_0), not O(n·d).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..models import Network
from ..settings import bounded
from ..theory import dln_learning_coefficient
from .base import no_sources
from .common import LOSS_DEFAULTS, Built, Regression, point_loss, teacher_student


@dataclass(frozen=True)
class Model:
    kind: Literal["dln"]
    widths: tuple[int, ...] = bounded(minItems=1, items={"type": "integer", "minimum": 1})
    rank: int = bounded(minimum=0)


DEFAULTS = {
    "data": {"n": 10000},
    "w_star": "teacher",
    "loss": LOSS_DEFAULTS,
}


TAKES_DATA = True
SIZE_KEY = "data.n"
OBSERVABLE = True
PROPER_WITHOUT_LOCALIZER = False
CHECKPOINTS = "training_steps"
"""`checkpoints:` are steps of the student's training (`teacher_student`)."""


def check(model: Model) -> list[tuple[str, str]]:
    if len(model.widths) < 2:
        return [("widths", "a DLN needs [H_0, ..., H_L] with L >= 1")]
    if model.rank > min(model.widths):
        return [("rank", f"rank {model.rank} exceeds the smallest width {min(model.widths)}")]
    return []


@dataclass(frozen=True)
class SufficientStatistics(Regression):
    """L_n(w) = ||Cᵀ(P(w) − B)||²_F + L_min with XᵀX/n = CCᵀ, B the least-squares map:
    never negative, and independent of n."""

    loss_eval_cost = 0.0

    def loss(self, w, data):
        gap = self.network.end_to_end(w) - data["B"]
        projected = data["chol_t"] @ gap
        return (projected * projected).sum() + data["loss_min"]

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        X = np.asarray(arrays["X"], np.float64)
        Y = np.asarray(arrays["Y"], np.float64)
        second_moment = X.T @ X / len(X)
        B, *_ = np.linalg.lstsq(X, Y, rcond=None)
        residual = Y - X @ B
        chol = np.linalg.cholesky(second_moment + 1e-12 * np.eye(len(second_moment)))
        return {**super().prepare(arrays, dtype),
                "chol_t": jnp.asarray(chol.T, dtype), "B": jnp.asarray(B, dtype),
                "loss_min": jnp.asarray(np.mean(np.sum(residual**2, axis=-1)), dtype)}


COMPARISON_DATA = "held-out inputs"
sources = no_sources


def likelihood(model: Model, config: dict) -> Regression:
    """The squared error through the data's second moments; another loss through the data."""
    network = Network(sizes=tuple(model.widths))
    if config["loss"]["kind"] == "mse":
        return SufficientStatistics(network)
    return Regression(network, point_loss(config["loss"]))


def _teacher(key, network: Network, rank: int, dtype):
    """Random layers; the first factorised through rank r so the product has rank r."""
    import jax

    keys = jax.random.split(key, len(network.layer_shapes) + 1)
    layers = []
    for index, (fan_in, fan_out) in enumerate(network.layer_shapes):
        weight = jax.random.normal(keys[index], (fan_in, fan_out), dtype) / np.sqrt(fan_in)
        if index == 0:
            left = jax.random.normal(keys[-1], (fan_in, rank), dtype)
            weight = left @ (weight[:rank] if rank else weight[:0]) / np.sqrt(max(rank, 1))
        layers.append((weight, None))
    return network.flatten(layers)


def build(model: Model, config: dict, where: str, dtype) -> Built:
    from ..errors import ArtifactError

    student = likelihood(model, config)
    network = student.network
    arrays, w_teacher, final_loss = teacher_student(
        config, student, network, lambda key: _teacher(key, network, model.rank, dtype),
        where, dtype)
    product_rank = int(np.linalg.matrix_rank(np.asarray(network.end_to_end(w_teacher))))
    if product_rank != model.rank:
        raise ArtifactError(f"{where}: the random teacher has rank {product_rank}, not "
                            f"{model.rank}; change {where}.seed")
    coefficient = dln_learning_coefficient(list(model.widths), model.rank)
    return Built(arrays, coefficient.llc, coefficient.multiplicity, final_loss)
