"""Targets: a model, its data and its optimum w*, built once and stored as a directory.

One module per target kind, registered below by one line; what a kind module exports is
the contract `lambda_hat.targets.base.TargetKind` (checked for every registered kind by the
test suite).

`target.npz` holds w*, X, Y (and what the target plot shows); `target.json` records how
they were made (resolved config, seed, precision, versions, a content hash) and what is
known exactly about them (true λ).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from . import dln, mlp, python, quadratic

REGISTRY = {
    "dln": dln,
    "mlp": mlp,
    "quadratic": quadratic,
    "python": python,
}

COMMON_DEFAULTS = {
    "data": {
        "x": {"kind": "gaussian", "scale": 1.0, "condition": 10.0, "components": 3,
              "spread": 2.0, "rank": 1, "off_noise": 0.0, "df": 4.0},
        "noise": {"kind": "gaussian", "sigma": 0.0, "df": 4.0, "slope": 1.0, "fraction": 0.05,
                  "outlier_sigma": 10.0},
    },
    "seed": 0,
    "dtype": "float64",
    "training": {"optimizer": "adam", "learning_rate": 1.0e-2, "steps": 2000},
}

CHECKPOINT_MARK = "@"
"""Between a target's name and a checkpoint's (`mlp@500`): names in a file cannot contain it."""

TARGET_JSON = "target.json"
TARGET_NPZ = "target.npz"
TARGET_ARRAYS = ("w_star", "X", "Y")


def model_of(model: dict):
    """The typed `model:` settings of a checked target entry."""
    from ..settings import make

    return make(REGISTRY[model["kind"]].Model, model)


@dataclass
class Target:
    record: dict
    arrays: dict

    @property
    def kind(self) -> str:
        return self.record["config"]["model"]["kind"]

    @property
    def size_key(self) -> str:
        """The setting that sets n, for warnings that ask for more data."""
        return REGISTRY[self.kind].SIZE_KEY

    @property
    def likelihood(self):
        config = self.record["config"]
        return REGISTRY[self.kind].likelihood(model_of(config["model"]), config)


def _training_step(config: dict, arrays: dict) -> int | None:
    """How many training steps made w*: those trained here, or a returned checkpoint's name
    when it is a step; None when w* was given (a teacher, params)."""
    if "training_loss" in arrays:
        return len(arrays["training_loss"])
    checkpoint = config.get("checkpoint")
    return checkpoint if isinstance(checkpoint, int) else None


def build_target(name: str, config: dict, experiment: str,
                 threads: int | None = None) -> tuple[dict, dict]:
    """Make (record, arrays) for one resolved target config; pure given the seed and the
    CPU threads XLA was given (`threads`, recorded; None: all), by which a trained w*'s
    sums are split."""
    import jax.numpy as jnp

    from ..artifacts import hash_arrays, package_versions
    from ..runner import check_precision

    check_precision(config["dtype"], f"target {name!r}")
    started = time.perf_counter()
    dtype = jnp.float64 if config["dtype"] == "float64" else jnp.float32
    model = model_of(config["model"])
    kind = REGISTRY[model.kind]
    built = kind.build(model, config, f"targets.{name}", dtype)
    likelihood = kind.likelihood(model, config)
    data = likelihood.prepare(built.arrays, dtype)
    loss_star = float(likelihood.loss(data["w_star"], data))
    if not math.isfinite(loss_star):
        from ..errors import ArtifactError

        sources = kind.sources(model)
        origin = f" (the model of {', '.join(map(str, sources))})" if sources else ""
        raise ArtifactError(f"targets.{name}: L_n(w*) is {loss_star}{origin}: the loss at "
                            "the optimum must be finite (check the data and the outputs)")
    declared, _, _ = name.partition(CHECKPOINT_MARK)
    record = {
        "name": name,
        "experiment": experiment,
        "config": config,
        "checkpoint": str(config["checkpoint"]) if "checkpoint" in config else None,
        "checkpoint_of": declared if "checkpoint" in config else None,
        "training_step": _training_step(config, built.arrays),
        "n": int(len(built.arrays["X"])),
        "d": int(likelihood.num_params),
        "loss_star": loss_star,
        "true_llc": built.true_llc,
        "multiplicity": built.multiplicity,
        "seed": int(config["seed"]),
        "dtype": config["dtype"],
        "threads": threads,
        "training_final_loss": built.training_final_loss,
        "versions": package_versions(),
        "hash": hash_arrays(built.arrays),
        "build_seconds": time.perf_counter() - started,
    }
    return record, built.arrays


def save_target(directory: str | Path, record: dict, arrays: dict) -> None:
    """Arrays first, record last: a directory with target.json holds a complete target."""
    from ..artifacts import write_json, write_npz

    directory = Path(directory)
    write_npz(directory / TARGET_NPZ, arrays)
    write_json(directory / TARGET_JSON, record)


def load_target(directory: str | Path) -> Target:
    from ..artifacts import hash_arrays, read_json, read_npz
    from ..errors import ArtifactError

    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: target directory not found (run `lambda-hat build`)")
    record = read_json(directory / TARGET_JSON)
    arrays = read_npz(directory / TARGET_NPZ, required=TARGET_ARRAYS)
    if hash_arrays(arrays) != record.get("hash"):
        raise ArtifactError(
            f"{directory / TARGET_NPZ}: content hash does not match {TARGET_JSON} "
            "(the file was changed or belongs to another target); rebuild the target")
    return Target(record=record, arrays=arrays)
