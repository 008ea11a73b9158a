"""Every registered plug-in meets its contract: each sampler module `samplers.base.Sampler`,
each target kind module `targets.base.TargetKind`; and no sampler module imports another
(families share library modules such as `momentum` and `hamiltonian` instead)."""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from lambda_hat.samplers import REGISTRY as SAMPLERS
from lambda_hat.samplers.base import LossTrace, Sampler, SamplerSettings
from lambda_hat.targets import REGISTRY as TARGETS
from lambda_hat.targets.base import Checkpoints, Likelihood, ObservableLikelihood, TargetKind

HOOK_PARAMETERS = {
    Sampler: {"check": 1, "setup": 3, "build": 3, "pilot": 5, "summarize": 2, "warnings": 1,
              "remedy": 2},
    TargetKind: {"check": 1, "sources": 1, "likelihood": 2, "build": 4},
}
"""Positional parameters each hook is called with."""


def _problems(module, contract) -> list[str]:
    """What `module` lacks or has of the wrong type, by the contract's annotations."""
    problems = []
    for name, annotation in typing.get_type_hints(contract).items():
        if not hasattr(module, name):
            problems.append(f"{name} missing")
            continue
        value = getattr(module, name)
        origin = typing.get_origin(annotation)
        if origin is collections.abc.Callable:
            if not callable(value):
                problems.append(f"{name} is not callable")
                continue
            wanted = HOOK_PARAMETERS[contract][name]
            try:
                inspect.signature(value).bind(*range(wanted))
            except TypeError as exc:
                problems.append(f"{name} cannot take {wanted} arguments: {exc}")
        elif origin is typing.Literal:
            if value not in typing.get_args(annotation):
                problems.append(f"{name} = {value!r} not one of {typing.get_args(annotation)}")
        elif isinstance(annotation, type) and not isinstance(value, annotation):
            problems.append(f"{name} is {type(value).__name__}, not {annotation.__name__}")
    return problems


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_sampler_module_meets_the_contract(kind):
    module = SAMPLERS[kind]
    assert _problems(module, Sampler) == []
    assert typing.get_type_hints(Sampler)["LOSS_TRACE"] == LossTrace
    assert issubclass(module.Settings, SamplerSettings)
    assert dataclasses.is_dataclass(module.Settings)
    assert module.Settings().kind == kind, "the registry key is the settings' kind"


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_target_kind_meets_the_contract(kind):
    module = TARGETS[kind]
    assert _problems(module, TargetKind) == []
    assert typing.get_type_hints(TargetKind)["CHECKPOINTS"] == Checkpoints
    assert dataclasses.is_dataclass(module.Model)
    assert typing.get_args(typing.get_type_hints(module.Model)["kind"]) == (kind,)
    assert isinstance(module.DEFAULTS, dict)


def test_a_contract_check_finds_what_is_missing():
    """The check itself: a module without a hook or with a wrong one is reported."""

    class Broken:
        Settings = SAMPLERS["sgld"].Settings
        MARKOV_CHAIN = "yes"
        LOSS_TRACE = "every step"

        @staticmethod
        def build(settings):
            return None

    problems = _problems(Broken, Sampler)
    assert "MARKOV_CHAIN is str, not bool" in problems
    assert "FAILURE_HINT missing" in problems and "pilot missing" in problems
    assert any(problem.startswith("LOSS_TRACE = 'every step'") for problem in problems)
    assert any(problem.startswith("build cannot take 3 arguments") for problem in problems)


def _likelihood_of(kind):
    """A likelihood of each kind, from its smallest valid model (a python target's from
    the example file its tests use)."""
    from lambda_hat.settings import make

    models = {"dln": {"widths": [2, 2], "rank": 1}, "mlp": {"in_dim": 1, "widths": [3], "out_dim": 1},
              "quadratic": {"d": 2},
              "python": {"entry": "examples/linear_regression.py:make_target",
                         "options": {"n": 10}}}
    config = {"loss": {"kind": "mse"}, "data": {"n": 10}, "seed": 0}
    return TARGETS[kind].likelihood(make(TARGETS[kind].Model, {"kind": kind, **models[kind]}),
                                    config)


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_each_likelihood_meets_its_contract(kind):
    likelihood = _likelihood_of(kind)
    assert isinstance(likelihood, Likelihood)
    assert isinstance(likelihood.parameter_groups(), list)
    assert isinstance(likelihood, ObservableLikelihood) == TARGETS[kind].OBSERVABLE


def _sibling_imports(path: Path) -> set[str]:
    """Registered sampler modules that the module at `path` imports (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found |= {name.split(".")[0] for name in names}
    return found & set(SAMPLERS) - {path.stem}


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_no_sampler_imports_another(kind):
    assert _sibling_imports(Path(SAMPLERS[kind].__file__)) == set()


def test_the_import_check_sees_a_sibling(tmp_path):
    module = tmp_path / "nuts.py"
    module.write_text("from . import hmc\nfrom .hmc import Settings\nfrom .base import Kernel\n")
    assert _sibling_imports(module) == {"hmc"}
