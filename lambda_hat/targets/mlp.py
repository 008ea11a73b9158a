"""Teacher–student MLP regression: the student (trained to w* by default) may be wider than
the teacher (`teacher_widths`). No exact λ is known; the HMC estimate is the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models import Network
from ..settings import bounded
from .base import no_sources
from .common import LOSS_DEFAULTS, Built, Regression, point_loss, teacher_student

WIDTHS = {"minItems": 1, "items": {"type": "integer", "minimum": 1}}


@dataclass(frozen=True)
class Init:
    """How the teacher's weights and the student's starting point are drawn: normal, with
    the variance of `kind` (lecun 1/fan_in, he 2/fan_in, xavier 2/(fan_in + fan_out), normal
    1) and the standard deviation times `scale`."""

    kind: Literal["lecun", "he", "xavier", "normal"] = "lecun"
    scale: float = bounded(1.0, exclusiveMinimum=0)


@dataclass(frozen=True)
class Model:
    kind: Literal["mlp"]
    in_dim: int = bounded(minimum=1)
    widths: tuple[int, ...] = bounded(**WIDTHS)
    out_dim: int = bounded(minimum=1)
    activation: Literal["relu", "tanh", "gelu", "identity"] = "tanh"
    bias: bool = True
    teacher_widths: tuple[int, ...] | None = bounded(None, **WIDTHS)
    layer_norm: bool = False
    init: Init = Init()


DEFAULTS = {
    "data": {"n": 5000, "noise": {"sigma": 0.1}},
    "w_star": "trained",
    "loss": LOSS_DEFAULTS,
}


TAKES_DATA = True
SIZE_KEY = "data.n"
OBSERVABLE = True
PROPER_WITHOUT_LOCALIZER = False
CHECKPOINTS = "training_steps"
"""`checkpoints:` are steps of the student's training (`teacher_student`)."""


def check(model: Model) -> list[tuple[str, str]]:
    return []


def _network(model: Model, widths) -> Network:
    return Network(sizes=(model.in_dim, *widths, model.out_dim), activation=model.activation,
                   bias=model.bias, layer_norm=model.layer_norm, init_kind=model.init.kind,
                   init_scale=model.init.scale)


COMPARISON_DATA = "held-out inputs"
sources = no_sources


def likelihood(model: Model, config: dict) -> Regression:
    return Regression(_network(model, model.widths), point_loss(config["loss"]))


def build(model: Model, config: dict, where: str, dtype) -> Built:
    student = likelihood(model, config)
    network = student.network
    teacher = network if model.teacher_widths is None else _network(model, model.teacher_widths)
    arrays, _, final_loss = teacher_student(config, student, teacher,
                                            lambda key: teacher.init(key, dtype), where, dtype)
    return Built(arrays, training_final_loss=final_loss)
