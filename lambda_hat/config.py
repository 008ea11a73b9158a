"""Experiment files: loading, checking and resolving defaults, without importing JAX.

The same checks run in the workflow (before any job starts) and in the CLI (when it is run
by hand), so a bad value is reported once, naming the file and the key path. The keys of each
sampler and of each target kind's model are typed by their dataclasses (`Settings`, `Model`),
so a new kind's keys are checked without editing the schema file, which types the rest.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError
from .samplers import REGISTRY as SAMPLERS
from .settings import field_names, make, schema_of
from .grid import NAME_PATTERN, expand_grids
from .targets import CHECKPOINT_MARK, COMMON_DEFAULTS, REGISTRY as TARGETS

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"

POSTERIOR_DEFAULTS = {"beta": "auto", "gamma": 1.0}


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
    """The schema file, with the registered target kinds as the words of `model.kind`."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    model = schema["$defs"]["target"]["properties"]["model"]
    model["properties"]["kind"] = {"enum": sorted(TARGETS)}
    return schema


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


def _message(error) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key(s) {', '.join(map(repr, extra))}"
    if error.validator in ("type", "anyOf", "pattern") and isinstance(error.instance, str):
        message = f"{error.instance!r} is text, expected a number"
        if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", error.instance):
            message += " (YAML reads 1e-5 as text: write 1.0e-5)"
        return message
    if error.validator == "enum":
        return f"{error.instance!r} is not one of " + ", ".join(map(str, error.validator_value))
    return error.message


def _validate(instance, schema, where: list) -> list[tuple[list, str]]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [([*where, *error.absolute_path], _message(error))
            for error in validator.iter_errors(instance)]


def _typed_entry(given: dict, cls, where: list, what: str, unknown: str) -> list:
    """Problems of one entry typed by a dataclass: unknown keys, missing ones, bad values."""
    schema = schema_of(cls)
    known = set(schema["properties"])
    problems = [([*where, key], f"{unknown}; known: {', '.join(sorted(known - {'kind'}))}")
                for key in sorted(set(given) - known)]
    problems += [([*where, key], f"required for a {what}")
                 for key in schema["required"] if key not in given]
    values = {key: value for key, value in given.items() if key in known and key != "kind"}
    properties = {key: schema["properties"][key] for key in values}
    return problems + _validate(values, {"type": "object", "properties": properties}, where)


def _entries(raw: dict, section: str):
    entries = raw.get(section)
    if not isinstance(entries, dict):
        return []
    return [(name, entry) for name, entry in entries.items() if isinstance(entry, dict)]


def _entry_problems(raw: dict) -> list:
    """Kind-specific keys of every sampler and target model (after the schema file's check)."""
    problems = []
    for name, sampler in _entries(raw, "samplers"):
        kind = sampler.get("kind")
        if not isinstance(kind, str):
            continue  # the schema file's check names it
        if kind not in SAMPLERS:
            problems.append((["samplers", name, "kind"], f"unknown sampler kind {kind!r}; "
                             f"known: {', '.join(sorted(SAMPLERS))}"))
            continue
        problems += _typed_entry(sampler, SAMPLERS[kind].Settings, ["samplers", name],
                                 f"{kind} sampler", f"not a setting of a {kind} sampler")
    for name, target in _entries(raw, "targets"):
        model = target.get("model")
        kind = model.get("kind") if isinstance(model, dict) else None
        if kind not in TARGETS:
            continue  # the schema file's check names it
        problems += _typed_entry(model, TARGETS[kind].Model, ["targets", name, "model"],
                                 f"{kind} model", f"not a key of a {kind} model")
    return problems


def _semantic_problems(raw: dict) -> list:
    problems = []
    lowered: dict[str, str] = {}
    for section in ("targets", "samplers"):
        for name in raw.get(section) or {}:
            if not NAME_PATTERN.match(str(name)):
                problems.append(([section, name], "name must be letters, digits, '_', '.', "
                                 "'-' (it becomes a directory name)"))
            if section == "samplers":
                clash = lowered.setdefault(str(name).lower(), str(name))
                if clash != str(name):
                    problems.append(([section, name], f"writes the same path as sampler "
                                     f"{clash!r} on a case-insensitive file system"))
    for name, target in (raw.get("targets") or {}).items():
        kind = TARGETS[target["model"]["kind"]]
        problems += [(["targets", name, "model", key], message)
                     for key, message in kind.check(make(kind.Model, target["model"]))]
        problems += _checkpoint_problems(raw, name)
        if "loss" in target and "loss" not in kind.DEFAULTS:
            takers = ", ".join(sorted(other for other, module in TARGETS.items()
                                      if "loss" in module.DEFAULTS))
            problems.append((["targets", name, "loss"], f"a {target['model']['kind']} target "
                             f"has no loss setting (only {takers} take one; a python target's "
                             "function returns its loss)"))
    problems += _improper_posteriors(raw)
    if (raw.get("exports") or {}).get("arviz") and importlib.util.find_spec("arviz") is None:
        problems.append((["exports", "arviz"], "the ArviZ export needs the optional extra: "
                         "pip install 'lambda-hat[arviz]'"))
    for name, given in (raw.get("samplers") or {}).items():
        module = SAMPLERS[given["kind"]]
        settings = make(module.Settings, given)
        for key in field_names(module.Settings):
            value = getattr(settings, key)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append((["samplers", name, key], "must be a finite number"))
        check = getattr(module, "check", None)
        problems += [(["samplers", name, key], message)
                     for key, message in (check(settings) if check else [])]
        if getattr(settings, "replacement", True) is False:
            for target_name in raw.get("targets") or {}:
                n = _resolve_target(raw, target_name)["data"].get("n")  # None: the file's
                if n is not None and settings.batch_size > n:
                    problems.append((["samplers", name, "batch_size"],
                                     f"batch {settings.batch_size} > n = {n} of target "
                                     f"{target_name!r} needs replacement: true"))
    return problems


def _checkpoint_problems(raw: dict, name: str) -> list:
    """Checkpoints of a built-in target are training steps of a student it trains (a python
    target's names are checked against what its function returns, when it is built)."""
    target = _resolve_target(raw, name)
    checkpoints = target.get("checkpoints")
    kind = target["model"]["kind"]
    if not checkpoints or kind == "python":
        return []
    where = ["targets", name, "checkpoints"]
    if not getattr(TARGETS[kind], "TRAINING_CHECKPOINTS", False):
        return [(where, f"a {kind} target is not trained, so it has no checkpoints")]
    if target.get("w_star") != "trained":
        return [(where, "checkpoints are steps of training: set w_star: trained")]
    steps = target["training"]["steps"]
    return [(where, f"{step!r} is not a training step in 0..{steps} (training.steps)")
            for step in checkpoints
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= steps]


def _improper_posteriors(raw: dict) -> list:
    """γ = 0 leaves a network's posterior improper (flat directions extend to infinity): named
    at the key that set it, once per target kind that needs the localizer."""
    posterior_gamma = (raw.get("posterior") or {}).get("gamma", POSTERIOR_DEFAULTS["gamma"])
    sources = {("posterior", "gamma"): posterior_gamma} if any(
        "gamma" not in sampler for sampler in (raw.get("samplers") or {}).values()) else {}
    sources.update({("samplers", name, "gamma"): sampler["gamma"]
                    for name, sampler in (raw.get("samplers") or {}).items() if "gamma" in sampler})
    problems = []
    for path, gamma in sources.items():
        if gamma != 0:
            continue
        for target, entry in (raw.get("targets") or {}).items():
            kind = entry["model"]["kind"]
            if not getattr(TARGETS[kind], "PROPER_WITHOUT_LOCALIZER", False):
                problems.append((list(path), f"gamma = 0 leaves the posterior of target "
                                 f"{target!r} ({kind}) improper along its flat directions; "
                                 "set gamma > 0"))
    return problems


def _lines(problems, source: str) -> list[str]:
    ordered = sorted(problems, key=lambda item: [str(part) for part in item[0]])
    return [f"{source}: {_key_path(path)}: {message}" for path, message in ordered]


def check_experiment(raw: dict, source: str) -> list[str]:
    """Every problem in an experiment, one line each, naming the file and the key path.

    Grids (and calibration sweeps) are expanded first, so each grid point is checked as an
    entry of its own. Type problems of every entry are reported together; the checks between
    values (a rank above a width, a batch above n) run once the types are right."""
    problems = _validate(raw, load_schema(), [])
    try:
        expanded = expand_grids(raw, source)
    except ConfigError as exc:
        return _lines(problems, source) + exc.problems
    if expanded is not raw and not problems:
        problems = _validate(expanded, load_schema(), [])
    raw = expanded
    problems += _entry_problems(raw)
    if problems:
        return _lines(problems, source)
    return _lines(_semantic_problems(raw), source)


def _resolve_target(raw: dict, name: str) -> dict:
    target = raw["targets"][name]
    kind = TARGETS[target["model"]["kind"]]
    return deep_merge(deep_merge(COMMON_DEFAULTS, kind.DEFAULTS), target)


class Experiment:
    """A checked experiment file; each sampler's settings typed and resolved once."""

    def __init__(self, raw: dict, source: str):
        problems = check_experiment(raw, source)
        if problems:
            raise ConfigError(problems)
        self.raw = expand_grids(raw, source)
        self.source = source
        self.name = raw.get("experiment", "default")
        self.posterior = {**POSTERIOR_DEFAULTS, **(raw.get("posterior") or {})}
        self._targets = {named: None for name, entry in self.raw["targets"].items()
                         for named in [name, *(f"{name}{CHECKPOINT_MARK}{checkpoint}"
                                               for checkpoint in entry.get("checkpoints", []))]}
        """Target name -> its resolved entry, resolved on first use."""
        self._samplers = {name: make(SAMPLERS[given["kind"]].Settings,
                                     {**self.posterior, **given})
                          for name, given in self.raw["samplers"].items()}

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        return cls(read_yaml(path), str(path))

    @property
    def has_grid(self) -> bool:
        """Whether any target or sampler is a grid point (the workflow then plots the grid)."""
        return (any("grid_point" in entry for entry in self.raw["targets"].values())
                or any(settings.grid_point for settings in self._samplers.values()))

    @property
    def arviz_export(self) -> bool:
        return bool((self.raw.get("exports") or {}).get("arviz", False))

    @property
    def declared_targets(self) -> list[str]:
        """The targets the file names (each built, and plotted, once)."""
        return list(self.raw["targets"])

    @property
    def target_names(self) -> list[str]:
        """Every target runs are made on: each declared one, then each of its checkpoints
        as `<name>@<checkpoint>` (its own target, so adding a checkpoint adds only its jobs)."""
        return list(self._targets)

    @property
    def sampler_names(self) -> list[str]:
        return list(self.raw["samplers"])

    def target(self, name: str) -> dict:
        """The resolved entry of target `name` (a copy: the caller may change it)."""
        if name not in self._targets:
            raise ConfigError([f"{self.source}: targets.{name}: no such target; "
                               f"known: {', '.join(self.target_names)}"])
        if self._targets[name] is None:
            declared, _, checkpoint = name.partition(CHECKPOINT_MARK)
            resolved = _resolve_target(self.raw, declared)
            given = resolved.pop("checkpoints", [])
            if checkpoint:
                resolved["checkpoint"] = next(c for c in given if str(c) == checkpoint)
            self._targets[name] = resolved
        return copy.deepcopy(self._targets[name])

    def entry(self, name: str) -> dict:
        """{declared name: resolved entry} that makes target `name` alone in an experiment
        file (a checkpoint's: its declared target with only that checkpoint)."""
        declared, _, checkpoint = name.partition(CHECKPOINT_MARK)
        resolved = self.target(name)
        if checkpoint:
            resolved["checkpoints"] = [resolved.pop("checkpoint")]
        return {declared: resolved}

    def sampler(self, name: str):
        """The typed settings (`Settings` of the sampler's module) of one sampler entry."""
        if name not in self._samplers:
            raise ConfigError([f"{self.source}: samplers.{name}: no such sampler; "
                               f"known: {', '.join(self.sampler_names)}"])
        return self._samplers[name]
