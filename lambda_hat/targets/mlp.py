"""Teacher–student MLP regression: the student (trained to w* by default) may be wider than
the teacher (`teacher_widths`). No exact λ is known; the HMC estimate is the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models import Network
from ..settings import bounded
from .common import Built, Regression, teacher_student

WIDTHS = {"minItems": 1, "items": {"type": "integer", "minimum": 1}}


@dataclass(frozen=True)
class Model:
    kind: Literal["mlp"]
    in_dim: int = bounded(minimum=1)
    widths: tuple[int, ...] = bounded(**WIDTHS)
    out_dim: int = bounded(minimum=1)
    activation: Literal["relu", "tanh", "gelu", "identity"] = "tanh"
    bias: bool = True
    teacher_widths: tuple[int, ...] | None = bounded(None, **WIDTHS)


DEFAULTS = {
    "data": {"n": 5000, "noise": {"sigma": 0.1}},
    "w_star": "trained",
}


def check(model: Model) -> list[tuple[str, str]]:
    return []


def _network(model: Model, widths) -> Network:
    return Network(sizes=(model.in_dim, *widths, model.out_dim), activation=model.activation,
                   bias=model.bias)


def likelihood(model: Model, seed: int = 0) -> Regression:
    return Regression(_network(model, model.widths))


def build(model: Model, config: dict, where: str, dtype) -> Built:
    network = likelihood(model).network
    teacher = network if model.teacher_widths is None else _network(model, model.teacher_widths)
    arrays, _, final_loss = teacher_student(config, network, teacher,
                                            lambda key: teacher.init(key, dtype), where, dtype)
    return Built(arrays, training_final_loss=final_loss)
