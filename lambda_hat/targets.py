"""Targets: a model, its data and its optimum w*, built once and stored as a directory.

`target.npz` holds w*, X, Y; `target.json` records how they were made (resolved config, seed,
precision, versions, a content hash) and what is known exactly about them (true λ).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .artifacts import hash_arrays, package_versions, read_json, read_npz, write_json, write_npz
from .errors import ArtifactError
from .models import Network, network_from_config, teacher_network
from .theory import dln_learning_coefficient

TARGET_JSON = "target.json"
TARGET_NPZ = "target.npz"
TARGET_ARRAYS = ("w_star", "X", "Y")


@dataclass
class Target:
    record: dict
    w_star: np.ndarray
    X: np.ndarray
    Y: np.ndarray

    @property
    def network(self) -> Network:
        return network_from_config(self.record["config"]["model"])


def squared_error_loss(network: Network, w, X, Y):
    """L_n(w): mean over data points of the squared error summed over outputs."""
    residual = network.apply(w, X) - Y
    return jnp.mean(jnp.sum(residual * residual, axis=-1))


def _sample_inputs(key, data: dict, dim: int, n: int, dtype):
    spec = data["x"]
    if spec["kind"] == "uniform":
        return jax.random.uniform(key, (n, dim), dtype, -spec["scale"], spec["scale"])
    x = jax.random.normal(key, (n, dim), dtype) * spec["scale"]
    if spec["kind"] == "gaussian_anisotropic":
        x = x * jnp.logspace(0.0, -np.log10(spec["condition"]), dim, dtype=dtype)
    return x


def _sample_noise(key, data: dict, shape, dtype):
    spec = data["noise"]
    if spec["sigma"] == 0:
        return jnp.zeros(shape, dtype)
    if spec["kind"] == "student_t":
        return spec["sigma"] * jax.random.t(key, spec["df"], shape, dtype)
    return spec["sigma"] * jax.random.normal(key, shape, dtype)


def _dln_teacher(key, network: Network, rank: int, dtype):
    """Random layers; the first factorised through rank r so the product has rank r."""
    keys = jax.random.split(key, len(network.layer_shapes) + 1)
    layers = []
    for index, (fan_in, fan_out) in enumerate(network.layer_shapes):
        weight = jax.random.normal(keys[index], (fan_in, fan_out), dtype) / np.sqrt(fan_in)
        if index == 0:
            left = jax.random.normal(keys[-1], (fan_in, rank), dtype)
            weight = left @ (weight[:rank] if rank else weight[:0]) / np.sqrt(max(rank, 1))
        layers.append((weight, None))
    return network.flatten(layers)


def _train(network: Network, w0, X, Y, training: dict):
    import optax  # only building an MLP target trains: `sample` need not import it (~0.1 s)

    optimizer = {"adam": optax.adam, "sgd": optax.sgd}[training["optimizer"]](
        training["learning_rate"]
    )
    loss = lambda w: squared_error_loss(network, w, X, Y)  # noqa: E731

    def step(carry, _):
        w, opt_state = carry
        value, grad = jax.value_and_grad(loss)(w)
        updates, opt_state = optimizer.update(grad, opt_state, w)
        return (optax.apply_updates(w, updates), opt_state), value

    (w, _), history = jax.lax.scan(step, (w0, optimizer.init(w0)), None, length=training["steps"])
    return w, history


def build_target(name: str, config: dict, experiment: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Make (record, arrays) for one resolved target config; pure given the seed."""
    started = time.perf_counter()
    dtype = jnp.float64 if config["dtype"] == "float64" else jnp.float32
    model, data = config["model"], config["data"]
    network = network_from_config(model)
    teacher = teacher_network(model)
    key_teacher, key_x, key_noise, key_init = jax.random.split(jax.random.key(config["seed"]), 4)

    if model["kind"] == "dln":
        w_teacher = _dln_teacher(key_teacher, teacher, model["rank"], dtype)
    else:
        w_teacher = teacher.init(key_teacher, dtype)
    X = _sample_inputs(key_x, data, network.sizes[0], data["n"], dtype)
    clean = teacher.apply(w_teacher, X)
    Y = clean + _sample_noise(key_noise, data, clean.shape, dtype)

    true_llc = multiplicity = None
    training_loss_history = None
    if config["w_star"] == "teacher":
        if teacher != network:
            raise ArtifactError(f"targets.{name}.w_star: 'teacher' needs the teacher's architecture")
        w_star = w_teacher
    else:
        w_star, training_loss_history = _train(
            network, network.init(key_init, dtype), X, Y, config["training"]
        )
    if model["kind"] == "dln":
        coefficient = dln_learning_coefficient(model["widths"], model["rank"])
        true_llc, multiplicity = coefficient.llc, coefficient.multiplicity
        product_rank = int(np.linalg.matrix_rank(np.asarray(teacher.end_to_end(w_teacher))))
        if product_rank != model["rank"]:
            raise ArtifactError(
                f"targets.{name}: the random teacher has rank {product_rank}, not {model['rank']}; "
                "change targets.{name}.seed"
            )

    loss_star = float(squared_error_loss(network, w_star, X, Y))
    arrays = {"w_star": np.asarray(w_star), "X": np.asarray(X), "Y": np.asarray(Y)}
    record = {
        "name": name,
        "experiment": experiment,
        "config": config,
        "n": int(data["n"]),
        "d": int(network.num_params),
        "loss_star": loss_star,
        "true_llc": true_llc,
        "multiplicity": multiplicity,
        "seed": int(config["seed"]),
        "dtype": config["dtype"],
        "training_final_loss": (
            None if training_loss_history is None else float(training_loss_history[-1])
        ),
        "versions": package_versions(),
        "hash": hash_arrays(arrays),
        "build_seconds": time.perf_counter() - started,
    }
    return record, arrays


def save_target(directory: str | Path, record: dict, arrays: dict[str, np.ndarray]) -> None:
    """Arrays first, record last: a directory with target.json holds a complete target."""
    directory = Path(directory)
    write_npz(directory / TARGET_NPZ, arrays)
    write_json(directory / TARGET_JSON, record)


def load_target(directory: str | Path) -> Target:
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: target directory not found (run `lambda-hat build`)")
    record = read_json(directory / TARGET_JSON)
    arrays = read_npz(directory / TARGET_NPZ, required=TARGET_ARRAYS)
    arrays = {name: arrays[name] for name in TARGET_ARRAYS}
    if hash_arrays(arrays) != record.get("hash"):
        raise ArtifactError(
            f"{directory / TARGET_NPZ}: content hash does not match {TARGET_JSON} "
            "(the file was changed or belongs to another target); rebuild the target"
        )
    return Target(record=record, **arrays)
