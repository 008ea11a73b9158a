"""Typed settings: a frozen dataclass is the one description of a component's keys.

Each sampler and each target kind declares its settings as a frozen dataclass. The field
types (int, float, bool, str, `Literal[...]` words, unions with `Literal["auto"]` or None,
nested settings dataclasses)
and optional `field(metadata=...)` bounds give a JSON schema (`schema_of`), so the config
check types every key, rejects unknown ones and names the allowed words without a hand-written
schema. JAX-free: the workflow checks an experiment before any job starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Literal, Union, get_args, get_origin, get_type_hints

MISSING = dataclasses.MISSING


def bounded(default=MISSING, **bounds):
    """A field with JSON-schema bounds (minimum, exclusiveMinimum, exclusiveMaximum, ...)."""
    return dataclasses.field(default=default, metadata=bounds)


JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number",
              str: "string", dict: "object"}


def _schema_of_type(annotation) -> dict:
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return {**schema_of(annotation), "additionalProperties": False}
    if annotation in JSON_TYPES:
        return {"type": JSON_TYPES[annotation]}
    if origin is Literal:
        return {"enum": list(get_args(annotation))}
    if origin in (tuple, list):
        (item, *_) = get_args(annotation) or (int,)
        return {"type": "array", "items": _schema_of_type(item)}
    if origin in (Union, types.UnionType):
        return _union([_schema_of_type(arg) for arg in get_args(annotation)])
    raise TypeError(f"no schema for annotation {annotation!r}")


def _union(branches: list[dict]) -> dict:
    """One schema with a list of types where the branches are plain types or words (the
    words become a pattern on strings), so an error names the bound that failed; else anyOf."""
    objects = [branch for branch in branches if branch.get("type") == "object"]
    if len(objects) == 1 and len(branches) == 2 and {"type": "null"} in branches:
        return {**objects[0], "type": ["object", "null"]}  # errors then name the inner key
    types_, words = [], []
    for branch in branches:
        if set(branch) == {"type"}:
            types_.append(branch["type"])
        elif set(branch) == {"enum"} and all(isinstance(word, str) for word in branch["enum"]):
            words.extend(branch["enum"])
        else:
            return {"anyOf": branches}
    schema = {"type": types_ + (["string"] if words and "string" not in types_ else [])}
    if words and "string" not in types_:
        schema["pattern"] = "^(" + "|".join(words) + ")$"
    return schema


def _with_bounds(schema: dict, bounds: dict) -> dict:
    """Bounds apply to the branch that is neither null nor words (`auto` stays allowed)."""
    if not bounds:
        return schema
    if "anyOf" in schema:
        return {"anyOf": [branch if branch.get("type") == "null" or "enum" in branch
                          else {**branch, **bounds} for branch in schema["anyOf"]]}
    return {**schema, **bounds}


@lru_cache(maxsize=None)
def hints(cls) -> dict:
    return get_type_hints(cls, include_extras=False)


@lru_cache(maxsize=None)
def schema_of(cls) -> dict:
    """JSON schema of a settings dataclass: typed keys, no others, required = no default."""
    properties, required = {}, []
    for item in dataclasses.fields(cls):
        properties[item.name] = _with_bounds(_schema_of_type(hints(cls)[item.name]),
                                             dict(item.metadata))
        if item.default is MISSING and item.default_factory is MISSING:
            required.append(item.name)
    return {"type": "object", "properties": properties, "required": required}


def defaults_of(cls) -> dict:
    """Every field that has a default, with it."""
    return {item.name: item.default for item in dataclasses.fields(cls)
            if item.default is not MISSING}


def field_names(cls) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]


def words_of(cls) -> dict[str, tuple]:
    """Settings that take one of a few words (a plain `Literal`), with the words."""
    return {name: get_args(annotation) for name, annotation in hints(cls).items()
            if get_origin(annotation) is Literal}


def _typed(annotation, value):
    if isinstance(value, dict):
        nested = [arg for arg in (get_args(annotation) or (annotation,))
                  if dataclasses.is_dataclass(arg)]
        if nested:  # a nested settings dataclass, or one of a union (`Until | None`)
            return make(nested[0], value)
    return tuple(value) if isinstance(value, list) else value


def make(cls, values: dict):
    """An instance from checked values: lists become tuples (frozen, hashable), mappings
    the nested settings their field names."""
    return cls(**{name: _typed(hints(cls)[name], value)
                  for name, value in values.items() if name in hints(cls)})


def as_dict(settings) -> dict:
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(settings).items()}


def is_auto(value) -> bool:
    """Settings that a component tunes itself are written null or "auto"."""
    return value is None or value == "auto"


AUTO = typing.Literal["auto"]
