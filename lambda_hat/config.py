"""Experiment files: loading, checking and resolving defaults, without importing JAX.

The same checks run in the workflow (before any job starts) and in the CLI (when it is run
by hand), so a bad value is reported once, naming the file and the key path.
"""

from __future__ import annotations

import copy
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError
from .samplers import REGISTRY
from .sweep import expand_sweeps

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

POSTERIOR_DEFAULTS = {"beta": "auto", "gamma": 1.0}
TARGET_DEFAULTS = {
    "dln": {
        "model": {"kind": "dln"},
        "data": {
            "n": 10000,
            "x": {"kind": "gaussian", "scale": 1.0, "condition": 10.0},
            "noise": {"kind": "gaussian", "sigma": 0.0, "df": 4.0},
        },
        "seed": 0,
        "dtype": "float64",
        "w_star": "teacher",
        "training": {"optimizer": "adam", "learning_rate": 1.0e-2, "steps": 2000},
    },
    "mlp": {
        "model": {"kind": "mlp", "activation": "tanh", "bias": True, "teacher_widths": None},
        "data": {
            "n": 5000,
            "x": {"kind": "gaussian", "scale": 1.0, "condition": 10.0},
            "noise": {"kind": "gaussian", "sigma": 0.1, "df": 4.0},
        },
        "seed": 0,
        "dtype": "float64",
        "w_star": "trained",
        "training": {"optimizer": "adam", "learning_rate": 1.0e-2, "steps": 2000},
    },
}
MODEL_KEYS = {"dln": {"kind", "widths", "rank"}, "mlp": {"kind", "in_dim", "widths", "out_dim",
                                                         "activation", "bias", "teacher_widths"}}
MODEL_REQUIRED = {"dln": ("widths", "rank"), "mlp": ("in_dim", "widths", "out_dim")}


def canonical_json(obj) -> str:
    """Key-order independent text: Snakemake compares params by repr, so order must not matter."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: file not found"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping with 'targets' and 'samplers'"])
    return data


def _key_path(parts) -> str:
    return ".".join(str(part) for part in parts) or "<top level>"


def _schema_problems(raw: dict, source: str) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        where = _key_path(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            message = f"unknown key(s) {', '.join(map(repr, extra))}"
        elif error.validator in ("type", "anyOf", "pattern") and isinstance(error.instance, str):
            message = f"{error.instance!r} is text, expected a number"
            if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", error.instance):
                message += " (YAML reads 1e-5 as text: write 1.0e-5)"
        else:
            message = error.message
        problems.append(f"{source}: {where}: {message}")
    return problems


def _semantic_problems(raw: dict, source: str) -> list[str]:
    problems = []

    def report(parts, message):
        problems.append(f"{source}: {_key_path(parts)}: {message}")

    lowered: dict[str, str] = {}
    for section in ("targets", "samplers"):
        for name in raw.get(section) or {}:
            if not NAME_PATTERN.match(str(name)):
                report([section, name], "name must be letters, digits, '_', '.', '-' "
                       "(it becomes a directory name)")
            if section == "samplers":
                clash = lowered.setdefault(str(name).lower(), str(name))
                if clash != str(name):
                    report([section, name], f"writes the same path as sampler {clash!r} "
                           "on a case-insensitive file system")

    for name, target in (raw.get("targets") or {}).items():
        model = target.get("model") or {}
        kind = model.get("kind")
        if kind not in MODEL_KEYS:
            continue
        for key in sorted(set(model) - MODEL_KEYS[kind]):
            report(["targets", name, "model", key], f"not a key of a {kind} model")
        for key in MODEL_REQUIRED[kind]:
            if key not in model:
                report(["targets", name, "model", key], f"required for a {kind} model")
        widths = model.get("widths")
        if kind == "dln" and isinstance(widths, list) and widths and len(widths) < 2:
            report(["targets", name, "model", "widths"], "a DLN needs [H_0, ..., H_L] with L >= 1")
        rank = model.get("rank")
        if kind == "dln" and isinstance(rank, int) and isinstance(widths, list) and widths:
            if all(isinstance(w, int) for w in widths) and rank > min(widths):
                report(["targets", name, "model", "rank"],
                       f"rank {rank} exceeds the smallest width {min(widths)}")

    for name, sampler in (raw.get("samplers") or {}).items():
        kind = sampler.get("kind")
        spec = REGISTRY.get(kind)
        if spec is None:
            report(["samplers", name, "kind"],
                   f"unknown sampler kind {kind!r}; known: {', '.join(sorted(REGISTRY))}")
            continue
        allowed = set(spec.all_defaults) | {"kind", "beta", "gamma"}
        for key in sorted(set(sampler) - allowed):
            report(["samplers", name, key], f"not a setting of a {kind} sampler; "
                   f"known: {', '.join(sorted(allowed - {'kind'}))}")
        for key, words in spec.choices.items():
            if key in sampler and sampler[key] not in words:
                report(["samplers", name, key], f"{sampler[key]!r} is not one of "
                       + ", ".join(map(str, words)))
        for key, value in sampler.items():
            default = spec.all_defaults.get(key)
            if isinstance(default, float) and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and not math.isfinite(value):
                report(["samplers", name, key], "must be a finite number")
        batch = sampler.get("batch_size")
        if isinstance(batch, int) and sampler.get("replacement", True) is False:
            for target_name in raw.get("targets") or {}:
                n = _resolve_target_raw(raw, target_name)["data"].get("n")
                if isinstance(n, int) and batch > n:
                    report(["samplers", name, "batch_size"],
                           f"batch {batch} > n = {n} of target {target_name!r} needs "
                           "replacement: true")
    return problems


def check_experiment(raw: dict, source: str) -> list[str]:
    """Every problem in an experiment, one line each, naming the file and the key path.

    Calibration sweeps are expanded first, so each grid point is checked as a sampler."""
    problems = _schema_problems(raw, source)
    if problems:
        return problems
    try:
        raw = expand_sweeps(raw, source)
    except ConfigError as exc:
        return exc.problems
    return _semantic_problems(raw, source)


def _resolve_target_raw(raw: dict, name: str) -> dict:
    target = raw["targets"][name]
    kind = (target.get("model") or {}).get("kind", "dln")
    return deep_merge(TARGET_DEFAULTS.get(kind, TARGET_DEFAULTS["dln"]), target)


class Experiment:
    """A checked experiment file with defaults resolved on request."""

    def __init__(self, raw: dict, source: str):
        problems = check_experiment(raw, source)
        if problems:
            raise ConfigError(problems)
        self.raw = expand_sweeps(raw, source)
        self.source = source
        self.name = raw.get("experiment", "default")
        self.posterior = {**POSTERIOR_DEFAULTS, **(raw.get("posterior") or {})}

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        return cls(read_yaml(path), str(path))

    @property
    def target_names(self) -> list[str]:
        return list(self.raw["targets"])

    @property
    def sampler_names(self) -> list[str]:
        return list(self.raw["samplers"])

    def target(self, name: str) -> dict:
        if name not in self.raw["targets"]:
            raise ConfigError([f"{self.source}: targets.{name}: no such target; "
                               f"known: {', '.join(self.target_names)}"])
        return _resolve_target_raw(self.raw, name)

    def sampler(self, name: str) -> dict:
        if name not in self.raw["samplers"]:
            raise ConfigError([f"{self.source}: samplers.{name}: no such sampler; "
                               f"known: {', '.join(self.sampler_names)}"])
        given = self.raw["samplers"][name]
        spec = REGISTRY[given["kind"]]
        return {"kind": spec.kind, **spec.all_defaults, **self.posterior, **given}
