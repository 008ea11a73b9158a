"""Experiment files: loading, checking and resolving defaults, without importing JAX.

The same checks run in the workflow (before any job starts) and in the CLI (when it is run
by hand), so a bad value is reported once, naming the file and the key path. The keys of each
sampler and of each target kind's model are typed by their dataclasses (`Settings`, `Model`),
so a new kind's keys are checked without editing the schema file, which types the rest.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError
from .samplers import REGISTRY as SAMPLERS
from .samplers.base import SamplerSettings
from .settings import as_dict, defaults_of, make, schema_of
from .grid import NAME_PATTERN, expand_grids, has_grids
from .targets import CHECKPOINT_MARK, COMMON_DEFAULTS, REGISTRY as TARGETS

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"

SAMPLER_DEFAULTS = defaults_of(SamplerSettings)
POSTERIOR_KEYS = ("beta", "gamma")
"""The `posterior:` keys with a default: the samplers' (β and γ are declared once, in
`SamplerSettings`)."""


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
        words = re.fullmatch(r"\^\((.*)\)\$", error.schema.get("pattern", ""))
        message = f"{error.instance!r} is text, expected a number" + (
            f" or {words.group(1).replace('|', ', ')}" if words else "")
        if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", error.instance):
            message += " (YAML reads 1e-5 as text: write 1.0e-5)"
        return message
    if error.validator == "enum":
        return f"{error.instance!r} is not one of " + ", ".join(map(str, error.validator_value))
    return error.message


def _validate(instance, schema, where: list, typed: dict | None = None) -> list:
    """Problems of `instance` by `schema`, as (key path, message). `typed` maps the key path
    of an entry typed by a dataclass to what it is ("sgld sampler") and the word for a key
    it lacks ("not a setting of"): its unknown and missing keys are then named one by one,
    with the keys it knows."""
    import jsonschema

    typed = typed or {}
    problems = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(instance):
        path = [*where, *error.absolute_path]
        entry = typed.get(tuple(path))
        if entry and error.validator == "additionalProperties":
            what, unknown = entry
            known = sorted(set(error.schema["properties"]) - {"kind"})
            problems += [([*path, key], f"{unknown} a {what}; known: {', '.join(known)}")
                         for key in sorted(set(error.instance) - set(error.schema["properties"]))]
        elif entry and error.validator == "required":
            problems += [([*path, key], f"required for a {entry[0]}")
                         for key in error.validator_value if key not in error.instance]
        else:
            problems.append((path, _message(error)))
    return problems


def _closed(cls) -> dict:
    """The schema of a settings dataclass that refuses keys it does not have."""
    return {**schema_of(cls), "additionalProperties": False}


def _entries(raw: dict, section: str):
    entries = raw.get(section)
    if not isinstance(entries, dict):
        return []
    return [(name, entry) for name, entry in entries.items() if isinstance(entry, dict)]


def _typed_schema(raw: dict) -> tuple[dict, dict, list]:
    """(schema, typed entries, problems): the file's schema with every sampler entry typed
    by its kind's `Settings` and every target's model by its kind's `Model`, so one pass
    checks every key of the file; an unknown sampler kind is a problem of its own (an
    unknown target kind is the file schema's)."""
    schema = copy.deepcopy(load_schema())
    samplers, targets, typed, problems = {}, {}, {}, []
    for name, sampler in _entries(raw, "samplers"):
        kind = sampler.get("kind")
        if not isinstance(kind, str):
            continue  # the schema file's check names it
        if kind not in SAMPLERS:
            problems.append((["samplers", name, "kind"], f"unknown sampler kind {kind!r}; "
                             f"known: {', '.join(sorted(SAMPLERS))}"))
            continue
        samplers[name] = _closed(SAMPLERS[kind].Settings)
        typed[("samplers", name)] = (f"{kind} sampler", "not a setting of")
    for name, target in _entries(raw, "targets"):
        model = target.get("model")
        kind = model.get("kind") if isinstance(model, dict) else None
        if kind not in TARGETS:
            continue  # the schema file's check names it
        targets[name] = {"allOf": [{"$ref": "#/$defs/target"},
                                   {"properties": {"model": _closed(TARGETS[kind].Model)}}]}
        typed[("targets", name, "model")] = (f"{kind} model", "not a key of")
    schema["properties"]["samplers"]["properties"] = samplers
    schema["properties"]["targets"]["properties"] = targets
    return schema, typed, problems


def _semantic_problems(raw: dict, samplers: dict) -> list:
    """Problems between values, once every key has its type; `samplers` are the typed
    settings of each entry."""
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
        if "data" in target and not kind.TAKES_DATA:
            problems.append((["targets", name, "data"], f"a {target['model']['kind']} target "
                             "makes its own data: set its size and noise in model.options, "
                             "which its function takes"))
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
    sizes = {target_name: _resolve_target(raw, target_name).get("data", {}).get("n")
             for target_name in raw.get("targets") or {}}  # None: the target makes its own
    kinds = {target_name: target["model"]["kind"]
             for target_name, target in (raw.get("targets") or {}).items()}
    for name, given in (raw.get("samplers") or {}).items():
        problems += [(["samplers", name, *path], message) for path, message
                     in _sampler_problems(given, samplers[name], sizes)]
        if samplers[name].observe is not None:
            problems += [(["samplers", name, "observe"], f"target {target_name!r} is a {kind} "
                          "target: it has no data points whose losses a run could record")
                         for target_name, kind in kinds.items()
                         if not TARGETS[kind].OBSERVABLE]
    return problems


def _sampler_problems(given: dict, settings, sizes: dict) -> list:
    """Problems between one sampler entry's values, as (key path within it, message);
    `sizes` are the n of the targets it runs on, by name (None: unknown)."""
    problems = [([key], "must be a finite number") for key, value in given.items()
                if isinstance(value, float) and not math.isfinite(value)]
    problems += [([key], message) for key, message in SAMPLERS[settings.kind].check(settings)]
    if settings.smallest_n is not None:
        problems += [(["batch_size"], f"batch {settings.batch_size} > n = {n} of target "
                      f"{target_name!r} needs replacement: true")
                     for target_name, n in sizes.items()
                     if n is not None and settings.smallest_n > n]
    if settings.observe is not None and not SAMPLERS[settings.kind].MARKOV_CHAIN:
        problems.append((["observe"], f"a {settings.kind} run has no chain of draws to "
                         "observe; use an MCMC sampler"))
    if isinstance(settings.observe, int):
        problems += [(["observe"], f"{settings.observe} points asked but target "
                      f"{target_name!r} has n = {n}")
                     for target_name, n in sizes.items()
                     if n is not None and settings.observe > n]
    return problems


MASK_STANDIN = "*"
"""What a mask function of `restrict` is checked as (a path), before its own check."""


def sampler_settings(given: dict, where: str, n: int | None = None):
    """The typed settings of one sampler entry given outside a file (`lambda_hat.estimate`),
    checked as an entry of a file is; ConfigError lists every problem, each naming `where`
    and the key. `n`: the size of the data it runs on."""
    kind = given.get("kind")
    if kind not in SAMPLERS:
        raise ConfigError([f"{where}: unknown sampler kind {kind!r}; known: "
                           f"{', '.join(sorted(SAMPLERS))}"])
    restrict = given.get("restrict")
    masks = isinstance(restrict, (list, tuple)) and any(map(callable, restrict))
    if masks:  # mask functions are checked against the leaves when the posterior is made
        given = {**given, "restrict": [MASK_STANDIN if callable(entry) else entry
                                       for entry in restrict]}
    plain = json.loads(json.dumps(given, default=list))  # tuples as the lists a file has
    problems = _validate(plain, _closed(SAMPLERS[kind].Settings), [],
                         {(): (f"{kind} sampler", "not a setting of")})
    if not problems:
        settings = make(SAMPLERS[kind].Settings, {**posterior_of({}), **plain})
        problems = _sampler_problems(plain, settings, {"data": n})
    if problems:
        raise ConfigError(_lines(problems, where))
    return dataclasses.replace(settings, restrict=tuple(restrict)) if masks else settings


def _checkpoint_problems(raw: dict, name: str) -> list:
    """Checkpoints of a built-in target are training steps of a student it trains (a python
    target's names are checked against what its function returns, when it is built)."""
    target = _resolve_target(raw, name)
    checkpoints = target.get("checkpoints")
    kind = target["model"]["kind"]
    if not checkpoints or TARGETS[kind].CHECKPOINTS == "checked_at_build":
        return []
    where = ["targets", name, "checkpoints"]
    if TARGETS[kind].CHECKPOINTS == "none":
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
    posterior_gamma = posterior_of(raw)["gamma"]
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
            if not TARGETS[kind].PROPER_WITHOUT_LOCALIZER:
                problems.append((list(path), f"gamma = 0 leaves the posterior of target "
                                 f"{target!r} ({kind}) improper along its flat directions; "
                                 "set gamma > 0"))
    return problems


def _lines(problems, source: str) -> list[str]:
    ordered = sorted(problems, key=lambda item: [str(part) for part in item[0]])
    return [f"{source}: {_key_path(path)}: {message}" for path, message in ordered]


def _checked(raw: dict, source: str) -> tuple[dict, dict]:
    """(the experiment with its grids expanded, each sampler's typed settings with the
    posterior's β and γ resolved), after one check of every key; or ConfigError listing
    every problem, one line each, naming the file and the key path.

    Grids (and calibration sweeps) are expanded first, so each grid point is checked as an
    entry of its own (the file's own keys are checked before, since the grids' are). Type
    problems of every entry are reported together; the checks between values (a rank above
    a width, a batch above n) run once the types are right."""
    expanded = raw
    if has_grids(raw):
        problems = _lines(_validate(raw, load_schema(), []), source)
        try:
            expanded = expand_grids(raw, source)
        except ConfigError as exc:
            problems += exc.problems
        if problems:
            raise ConfigError(problems)
    schema, typed, problems = _typed_schema(expanded)
    problems += _validate(expanded, schema, [], typed)
    if problems:
        raise ConfigError(_lines(problems, source))
    posterior = posterior_of(expanded)
    samplers = {name: make(SAMPLERS[given["kind"]].Settings, {**posterior, **given})
                for name, given in expanded["samplers"].items()}
    problems = _semantic_problems(expanded, samplers)
    if problems:
        raise ConfigError(_lines(problems, source))
    return expanded, samplers


def check_experiment(raw: dict, source: str) -> list[str]:
    """Every problem in an experiment, one line each, naming the file and the key path."""
    try:
        _checked(raw, source)
    except ConfigError as exc:
        return exc.problems
    return []


def posterior_of(raw: dict) -> dict:
    """The experiment's `posterior:` with its defaults: the samplers' own (`SamplerSettings`),
    which an entry may override."""
    return {**{key: SAMPLER_DEFAULTS[key] for key in POSTERIOR_KEYS},
            **(raw.get("posterior") or {})}


def _resolve_target(raw: dict, name: str) -> dict:
    target = raw["targets"][name]
    kind = TARGETS[target["model"]["kind"]]
    common = COMMON_DEFAULTS if kind.TAKES_DATA else {
        key: value for key, value in COMMON_DEFAULTS.items() if key != "data"}
    return deep_merge(deep_merge(common, kind.DEFAULTS), target)


RESOLVED_FORMAT = 1
"""The layout of a job's resolved experiment (`Experiment.resolved`)."""
DEFAULT_NAME = "default"
"""The experiment's name when the file gives none: its results go to results/default/."""


def _digest(body: dict) -> str:
    import hashlib

    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@lru_cache(maxsize=1)
def _package_version() -> str:
    from importlib.metadata import version

    return version("lambda-hat")


class Experiment:
    """A checked experiment; each sampler's settings typed and resolved once per process.

    From a user's file (`Experiment(raw, source)`, `load`) every key is checked. The
    workflow then hands each job the part it needs, resolved (`resolved`): defaults filled
    in, grids expanded, β and γ in every sampler's settings, with a digest; the job's
    process trusts that (`from_resolved`) instead of checking it again."""

    def __init__(self, raw: dict, source: str):
        expanded, samplers = _checked(raw, source)
        self._adopt(expanded, source, samplers)

    def _adopt(self, raw: dict, source: str, samplers: dict) -> None:
        self.raw = raw
        self.source = source
        self.name = raw.get("experiment", DEFAULT_NAME)
        self._targets = {named: None for name, entry in raw["targets"].items()
                         for named in [name, *(f"{name}{CHECKPOINT_MARK}{checkpoint}"
                                               for checkpoint in entry.get("checkpoints", []))]}
        """Target name -> its resolved entry, resolved on first use."""
        self._samplers = samplers

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        """A user's experiment file, or a job's resolved one (`resolved`)."""
        raw = read_yaml(path)
        if "resolved" in raw:
            return cls.from_resolved(raw, str(path))
        return cls(raw, str(path))

    def resolved(self, target: str, sampler: str | None = None) -> dict:
        """What one job needs, resolved: target `target` (a checkpoint's: its declared target
        with only that checkpoint) and, for a run, sampler `sampler`'s typed settings; the
        source it came from, and a digest that `from_resolved` checks."""
        body = {"experiment": self.name, "source": self.source,
                "targets": self.entry(target),
                "samplers": {} if sampler is None else {sampler: as_dict(self.sampler(sampler))}}
        return {**body, "resolved": {"format": RESOLVED_FORMAT, "lambda_hat": _package_version(),
                                     "digest": _digest(body)}}

    @classmethod
    def from_resolved(cls, data: dict, path: str) -> "Experiment":
        """The experiment of a job's resolved file, trusted once its format, the lambda-hat
        that wrote it and its digest match: the settings are typed without another check."""
        stamp = data.get("resolved")
        body = {key: value for key, value in data.items() if key != "resolved"}
        if not isinstance(stamp, dict) or stamp.get("format") != RESOLVED_FORMAT:
            raise ConfigError([f"{path}: resolved: not a job's experiment of format "
                               f"{RESOLVED_FORMAT}; plan the run again (snakemake)"])
        if stamp.get("lambda_hat") != _package_version():
            raise ConfigError([f"{path}: resolved.lambda_hat: planned by lambda-hat "
                               f"{stamp.get('lambda_hat')}, this is {_package_version()}; "
                               "plan the run again (snakemake)"])
        if stamp.get("digest") != _digest(body):
            raise ConfigError([f"{path}: resolved.digest: the file was changed after it was "
                               "planned; plan the run again (snakemake), or give your own "
                               "experiment file"])
        experiment = cls.__new__(cls)
        samplers = {name: make(SAMPLERS[given["kind"]].Settings, given)
                    for name, given in body["samplers"].items()}
        experiment._adopt(body, body["source"], samplers)
        return experiment

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
