"""Your own JAX model: `model: {kind: python, entry: "models/mine.py:make_target", options}`.

The file (a path relative to the working directory) defines a function called as
`make_target(seed=<the target's seed>, **options)`, which returns a mapping with

- `apply(params, x) -> outputs`: a pure JAX function;
- `params`: any pytree (Flax and Equinox parameters are pytrees of arrays too), taken as w*;
  flattened to one vector (`lambda_hat.functional.Layout`). Without it, w* is
  `init_params` trained with the target's `training:` settings (Adam by default);
- `init_params`: the pytree training starts from, when `params` is absent;
- `x` and `y`: arrays, one row per data point (a sequence, for a sequence model);
- `loss`: `"mse"` (squared error summed over outputs, averaged over points) or
  `"cross_entropy"` (integer labels `y`, logit outputs; logits [n, seq, vocab] with labels
  [n, seq] for a sequence model, with an optional `mask` [n, seq] of the tokens that count);
- `checkpoints` (optional): a mapping from a name to params, the points along training that
  the target's `checkpoints: [names]` select. Without it, a target trained here takes
  training steps as its checkpoints.

The function runs again in every sample job (it must be deterministic given the seed and
cheap: train in lambda-hat, not in it). No exact λ is known; the HMC estimate is the reference.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from ..functional import LOSSES
from .common import HELDOUT_POINTS, Built, train


@dataclass(frozen=True)
class Model:
    kind: Literal["python"]
    entry: str
    """`path/to/file.py:function`, the path relative to the working directory."""
    options: dict = field(default_factory=dict)
    """Keyword arguments of the function."""


DEFAULTS = {"w_star": "teacher"}
"""`w_star: teacher` (the default) takes the returned `params` as they are; `trained` trains
from them. Without `params`, w* is always trained (from `init_params`)."""

PROPER_WITHOUT_LOCALIZER = False
TAKES_DATA = False
"""The function returns x and y: their size is whatever its options make."""
SIZE_KEY = "model.options (the n your function makes)"
OBSERVABLE = True
CHECKPOINTS = "checked_at_build"
"""Names the function returns under `checkpoints`, or steps of the training run here."""
COMPARISON_DATA = "training data"


def entry_file(model) -> Path:
    return Path(model.entry.rpartition(":")[0])


def sources(model: Model) -> list[Path]:
    """The files the target is made from: the workflow reruns the build when one changes."""
    return [entry_file(model)]


def check(model: Model) -> list[tuple[str, str]]:
    path, _, function = model.entry.rpartition(":")
    if not path or not function:
        return [("entry", f"{model.entry!r} is not 'path/to/file.py:function'")]
    if not Path(path).is_file():
        return [("entry", f"{path}: file not found (paths are relative to the working "
                          "directory)")]
    return []


@lru_cache(maxsize=8)
def _load(entry: str, digest: str):
    """The user's function (one import per process and file content)."""
    path, _, function = entry.rpartition(":")
    spec = importlib.util.spec_from_file_location(f"lambda_hat_user_{digest[:16]}", path)
    module = importlib.util.module_from_spec(spec)
    from ..errors import ArtifactError

    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ArtifactError(f"{path}: importing it raised {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(module, function, None)):
        raise ArtifactError(f"{path}: defines no function {function!r}")
    return getattr(module, function)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=8)
def _made(entry: str, digest: str, options: str, seed: int) -> dict:
    """The function's checked return value: every problem is one line naming the entry."""
    from collections.abc import Mapping

    from ..errors import ArtifactError

    function = _load(entry, digest)
    try:
        made = function(seed=seed, **json.loads(options))
    except Exception as exc:
        raise ArtifactError(f"{entry} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(made, Mapping):
        raise ArtifactError(f"{entry} returned a {type(made).__name__}, not a mapping with "
                            "apply, params (or init_params), x, y")
    made = dict(made)
    missing = [key for key in ("apply", "x", "y") if key not in made]
    if "params" not in made and "init_params" not in made:
        missing.append("params or init_params")
    if missing:
        raise ArtifactError(f"{entry}: the returned mapping lacks {', '.join(missing)}")
    made.setdefault("loss", "mse")
    if made["loss"] not in LOSSES:
        raise ArtifactError(f"{entry}: loss {made['loss']!r} is not one of {', '.join(LOSSES)}")
    _check_shapes(made, entry)
    return made


def _check_shapes(made: dict, entry: str) -> None:
    """x, y, the mask and apply's outputs agree (abstractly: no computation), and labels
    are classes."""
    from ..errors import ArtifactError
    from ..functional import check_points

    problems = check_points(made["apply"], made.get("params", made.get("init_params")),
                            made["x"], made["y"], made["loss"], made.get("mask"))
    if problems:
        raise ArtifactError(f"{entry}: {problems[0]}")


@lru_cache(maxsize=8)
def _function(entry: str, digest: str, options: str, seed: int):
    """The returned function and params as a likelihood (one per process and content)."""
    from ..functional import FunctionLikelihood, Layout

    made = _made(entry, digest, options, seed)
    return FunctionLikelihood(made["apply"], made["loss"],
                              Layout.of(made.get("params", made.get("init_params"))))


@dataclass(frozen=True)
class UserModel:
    """The user's model with its loss over one flat parameter vector
    (`lambda_hat.functional`). `digest` (of the file) and the options identify it, for
    caches and reruns."""

    entry: str
    options: str
    """The options as canonical JSON."""
    seed: int
    digest: str

    @property
    def made(self) -> dict:
        return _made(self.entry, self.digest, self.options, self.seed)

    @property
    def function(self):
        return _function(self.entry, self.digest, self.options, self.seed)

    @property
    def unravel(self):
        return self.function.layout.unflatten

    @property
    def num_params(self) -> int:
        return self.function.num_params

    def parameter_groups(self) -> list:
        """Each leaf of the params pytree, by its path (`params/Dense_0/kernel`), in
        `jax.tree` order; the layer is the first path entry when that is a list index."""
        return self.function.parameter_groups()

    loss_eval_cost = 0.5

    def loss(self, w, data):
        return self.function.loss(w, data)

    def batch_loss(self, w, data, index):
        return self.function.batch_loss(w, data, index)

    def point_losses(self, w, data):
        return self.function.point_losses(w, data)

    @property
    def mask(self):
        """The tokens that count, [points, tokens] (None: all)."""
        return self.made.get("mask")

    def observed_losses(self, w, points: dict, data: dict):
        return self.function.observed_losses(w, points, data)

    def prepare_points(self, arrays: dict, dtype) -> dict:
        return self.function.prepare_points(arrays, dtype)

    def prepare(self, arrays: dict, dtype) -> dict:
        return self.function.prepare({**arrays, "mask": self.mask}, dtype)


def likelihood(model: Model, config: dict) -> UserModel:
    return UserModel(model.entry, json.dumps(model.options, sort_keys=True), config["seed"],
                     _digest(entry_file(model)))


def _returned_checkpoint(made: dict, name, layout, where: str, dtype):
    """The flat params of the checkpoint the config names, from the returned mapping."""
    import jax

    from ..errors import ArtifactError

    by_name = {str(key): value for key, value in made["checkpoints"].items()}
    if str(name) not in by_name:
        raise ArtifactError(f"{where}.checkpoints: {name!r} is not a checkpoint the function "
                            f"returns ({', '.join(by_name)})")
    params = by_name[str(name)]
    if jax.tree.structure(params) != layout.treedef:
        raise ArtifactError(f"{where}.checkpoints: checkpoint {name!r} is a "
                            f"{jax.tree.structure(params)}, the params a {layout.treedef}")
    flat = layout.flatten(params, dtype)
    if flat.size != layout.size:
        raise ArtifactError(f"{where}.checkpoints: checkpoint {name!r} has {flat.size} "
                            f"parameters, the model {layout.size}")
    return flat


def build(model: Model, config: dict, where: str, dtype) -> Built:
    import jax.numpy as jnp

    from ..errors import ArtifactError

    user = likelihood(model, config)
    try:
        made = user.made
    except ArtifactError as exc:
        raise ArtifactError(f"{where}.model.entry: {exc}") from None
    X, Y = np.asarray(made["x"]), np.asarray(made["y"])
    data = user.prepare({"X": X, "Y": Y, "w_star": np.zeros(user.num_params)}, dtype)
    final_loss = None
    trained_here = "params" not in made or config["w_star"] == "trained"
    training = config["training"]
    if "checkpoint" in config and "checkpoints" in made:
        w_star = _returned_checkpoint(made, config["checkpoint"], user.function.layout, where,
                                      dtype)
        trained_here = False
    elif "checkpoint" in config:
        if not trained_here or not isinstance(config["checkpoint"], int):
            raise ArtifactError(
                f"{where}.checkpoints: {model.entry} returns no `checkpoints` mapping, so a "
                "checkpoint is a training step of a w* trained here (w_star: trained, or "
                "no params returned)")
        training = {**training, "steps": config["checkpoint"]}
    elif not trained_here:
        w_star = user.function.layout.flatten(made["params"], dtype)
    if trained_here:
        start = user.function.layout.flatten(made.get("params", made.get("init_params")),
                                             dtype)
        w_star, history = train(lambda w: user.loss(w, data), jnp.asarray(start), training)
        final_loss = float(history[-1]) if len(history) else None
        trained_history = np.asarray(history)
    arrays = {"w_star": np.asarray(w_star, np.dtype(dtype)), "X": X, "Y": Y}
    if trained_here:
        arrays["training_loss"] = trained_history
    shown = slice(0, HELDOUT_POINTS)
    outputs = np.asarray(made["apply"](user.unravel(jnp.asarray(w_star, dtype)),
                                       data["X"][shown]))
    if made["loss"] == "cross_entropy":
        arrays["plot_reference"], arrays["plot_prediction"] = Y[shown], outputs.argmax(-1)
    else:
        arrays["plot_reference"] = Y[shown].reshape(len(outputs), -1)
        arrays["plot_prediction"] = outputs.reshape(len(outputs), -1)
    return Built(arrays, training_final_loss=final_loss)
