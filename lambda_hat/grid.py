"""Experiment grids: one target or sampler entry expanded into many, named and recorded.

Any entry under `targets:` or `samplers:` may carry

    grid: {data.n: [1000, 3000, 10000], model.rank: [1, 2]}   # every combination
    zip: {data.n: [1000, 3000], training.steps: [500, 1500]}  # values paired, one axis
    replicates: 3                                             # seeds seed, seed+1, seed+2

Keys are dotted paths into the entry (`data.n`, `model.rank`, `step_size`); `grid` axes,
the one `zip` axis and the replicates combine as a product. Each point becomes an entry of
its own, named `<name>.<key>-<value>...` (the key's last part, or its whole path where two
would read alike; `.rep-<r>` for replicates) and carrying `grid_point` (the values it set,
`replicate` included) and `grid_of` (the entry it came from; samplers: `sweep_of`). Adding a
value adds only that value's entries, so only their jobs run. A sampler's `sweep:` (a
calibration grid over step sizes, γ, β) is a `grid:` whose values must be positive numbers.

Pure and JAX-free: the configuration layer expands grids before checking an experiment.
"""

from __future__ import annotations

import copy
import math
import re
from itertools import product

from .errors import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
GRID_KEYS = ("grid", "zip", "replicates", "sweep")
FIXED = {"targets": ("model.kind", "grid_of", "grid_point"),
         "samplers": ("kind", "sweep_of", "grid_point")}
"""Keys no grid may set: what the entry is, and what expansion records."""


def format_value(value) -> str:
    """A value as it appears in a grid point's name (a valid path component)."""
    if isinstance(value, (list, tuple)):
        return "_".join(format_value(item) for item in value)
    text = repr(value) if isinstance(value, float) else str(value)
    return text.replace("+", "")


def _set(entry: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = entry
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError([f"{path}: {part} is not a mapping"])
    node[last] = copy.deepcopy(value)


def _labels(keys: list[str]) -> dict[str, str]:
    """Each key's label in names: its last part, unless that is ambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: short if last.count(short) == 1 else key for key, short in zip(keys, last)}


def _axes(entry: dict, section: str, where: str) -> tuple[list, list[str]]:
    """[(keys, [value tuples])]: one axis per grid key, the zip as one axis, replicates."""
    problems, axes = [], []
    sources = [("grid", entry.get("grid")), ("sweep", entry.get("sweep"))]
    for label, grid in sources:
        if grid is None:
            continue
        if not isinstance(grid, dict) or not grid:
            problems.append(f"{where}.{label}: expected a mapping of setting -> list of values")
            continue
        for key, values in grid.items():
            problem = _axis_problem(section, key, values, label == "sweep")
            if problem:
                problems.append(f"{where}.{label}.{key}: {problem}")
            else:
                axes.append(((key,), [(value,) for value in values]))
    zipped = entry.get("zip")
    if zipped is not None:
        lengths = {len(v) for v in zipped.values() if isinstance(v, list)} \
            if isinstance(zipped, dict) else set()
        if not isinstance(zipped, dict) or not zipped:
            problems.append(f"{where}.zip: expected a mapping of setting -> list of values")
        elif len(lengths) != 1:
            problems.append(f"{where}.zip: every list must have the same length (they are "
                            "paired value by value)")
        else:
            bad = [(key, _axis_problem(section, key, values, False))
                   for key, values in zipped.items()]
            problems += [f"{where}.zip.{key}: {problem}" for key, problem in bad if problem]
            if not any(problem for _, problem in bad):
                axes.append((tuple(zipped), list(zip(*zipped.values()))))
    keys = [key for names, _ in axes for key in names]
    problems += [f"{where}: {key} is swept twice" for key in sorted(set(keys))
                 if keys.count(key) > 1]
    return axes, problems


def _axis_problem(section: str, key: str, values, positive: bool) -> str | None:
    if key in FIXED[section] or key in GRID_KEYS:
        return "cannot be swept"
    if not isinstance(values, list) or not values:
        return "expected a non-empty list of values"
    if positive and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v) and v > 0 for v in values):
        return "values must be positive numbers (YAML reads 1e-5 as text: write 1.0e-5)"
    if len({repr(value) for value in values}) != len(values):
        return "repeated values"
    return None


def _replicates(entry: dict, where: str) -> tuple[int, list[str]]:
    count = entry.get("replicates", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return 1, [f"{where}.replicates: expected a whole number >= 1"]
    if count > 1 and "seed" in ((entry.get("grid") or {}) | (entry.get("zip") or {})):
        return 1, [f"{where}.replicates: replicates set the seed, which is also swept"]
    return count, []


def expand_entry(name: str, entry: dict, section: str, where: str) -> tuple[dict, list[str]]:
    """{point name: entry} for one entry (itself when it has no grid), and problems."""
    if not isinstance(entry, dict) or not any(key in entry for key in GRID_KEYS):
        return {name: entry}, []
    axes, problems = _axes(entry, section, where)
    count, more = _replicates(entry, where)
    problems += more
    if problems:
        return {}, problems
    base = {key: value for key, value in entry.items() if key not in GRID_KEYS}
    labels = _labels([key for keys, _ in axes for key in keys])
    points = {}
    for combination in product(*(values for _, values in axes)):
        settings = {key: value for (keys, _), values in zip(axes, combination)
                    for key, value in zip(keys, values)}
        for replicate in range(count):
            point = copy.deepcopy(base)
            parts = [f"{labels[key]}-{format_value(value)}" for key, value in settings.items()]
            recorded = dict(settings)
            if count > 1:
                _set(point, "seed", base.get("seed", 0) + replicate)
                parts.append(f"rep-{replicate}")
                recorded["replicate"] = replicate
            for key, value in settings.items():
                _set(point, key, value)
            point_name = ".".join([name, *parts])
            if not NAME_PATTERN.match(point_name):
                problems.append(f"{where}: grid point name {point_name!r} is not a valid "
                                "path component")
                continue
            point["grid_point"] = recorded
            point["sweep_of" if section == "samplers" else "grid_of"] = name
            points[point_name] = point
    return points, problems


def has_grids(raw: dict) -> bool:
    """Whether any target or sampler entry has a grid to expand."""
    return any(isinstance(raw.get(section), dict) and any(
        isinstance(entry, dict) and any(key in entry for key in GRID_KEYS)
        for entry in raw[section].values()) for section in ("targets", "samplers"))


def expand_grids(raw: dict, source: str = "<experiment>") -> dict:
    """A copy of `raw` with every grid of a target or sampler expanded into its points
    (`raw` itself when it has none)."""
    if not has_grids(raw):
        return raw
    problems, expanded = [], dict(raw)
    for section in ("targets", "samplers"):
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        result = {}
        for name, entry in entries.items():
            points, more = expand_entry(name, entry, section, f"{source}: {section}.{name}")
            problems += more
            for point_name, point in points.items():
                if point_name in result or (point_name != name and point_name in entries):
                    problems.append(f"{source}: {section}.{name}: grid point {point_name!r} "
                                    f"clashes with another entry")
                result[point_name] = point
        expanded[section] = result
    if problems:
        raise ConfigError(problems)
    return expanded
