"""The worked examples of docs/adding-a-sampler.md and docs/adding-a-target.md
(`examples/plugins/`, registered only inside these tests) meet their contracts and work, and
the pages stay true to the code.

- each example against its contract (`test_contracts._problems`, as every registered module);
- the example sampler run by the runner, in process, on the quadratic target and on the
  example target: λ̂ against the exact finite-n value (d/2)·nβ/(nβ + γ) within 4 MCSE plus
  ULA's stated step bias, and within 4 MCSE of the biased value itself (exact on a Gaussian);
- the example target built, its exact λ and w*, and the config check derived from both
  examples' dataclasses;
- the pages quote the examples verbatim (the fenced block after `<!-- example: PATH -->`),
  name every member of the contracts, and name only files, tests and objects that exist.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from lambda_hat.samplers import REGISTRY as SAMPLERS
from lambda_hat.samplers.base import (BatchSettings, FullBatchSettings, Kernel,
                                      MinibatchSettings, Sampler, SamplerSettings)
from lambda_hat.samplers.step_size import POWER_ITERATIONS
from lambda_hat.targets import REGISTRY as TARGETS
from lambda_hat.targets.base import Likelihood, TargetKind
from lambda_hat.targets.common import Built
from test_contracts import _problems

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLER_DOC = "docs/adding-a-sampler.md"
TARGET_DOC = "docs/adding-a-target.md"
SAMPLER_EXAMPLE = "examples/plugins/langevin_sampler.py"
TARGET_EXAMPLE = "examples/plugins/gaussian_target.py"


def _load(relative: str):
    """The example module at `relative`, imported under its file's stem (once)."""
    path = REPO_ROOT / relative
    if path.stem not in sys.modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses and type hints look their module up
        spec.loader.exec_module(module)
    return sys.modules[path.stem]


ULA = _load(SAMPLER_EXAMPLE)
GAUSSIAN = _load(TARGET_EXAMPLE)

QUADRATIC_ENTRY = {"model": {"kind": "quadratic", "d": 10}, "data": {"n": 1000}}
GAUSSIAN_ENTRY = {"model": {"kind": "gaussian_mean", "d": 10,
                            "mean": [1.0, -2.0, 0.5, 0.0, 3.0, 1.0, -1.0, 0.0, 2.0, -0.5]},
                  "data": {"n": 1000}}
RUN = {"chains": 4, "warmup": 200, "draws": 10000}


@pytest.fixture
def registered(monkeypatch):
    """Both examples in the registries for one test (and the schema's target kinds with
    them), as their one registration line would put them."""
    from lambda_hat.config import load_schema

    monkeypatch.setitem(SAMPLERS, "ula", ULA)
    monkeypatch.setitem(TARGETS, "gaussian_mean", GAUSSIAN)
    load_schema.cache_clear()
    yield
    monkeypatch.undo()
    load_schema.cache_clear()


def _experiment(target: dict, **sampler):
    from lambda_hat.config import Experiment
    from lambda_hat.runner import process_dtype

    dtype = process_dtype()  # float32 unless JAX_ENABLE_X64 is set
    raw = {"targets": {"t": {**target, "dtype": dtype}},
           "samplers": {"ula": {"kind": "ula", "dtype": dtype, **sampler}}}
    return Experiment(raw, "<test>")


def _built(experiment):
    from lambda_hat.targets import Target, build_target

    record, arrays = build_target("t", experiment.target("t"), "test")
    return Target(record, arrays)


def _imports(path: Path) -> set[str]:
    """Every module the file imports, and every name it imports from a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0])
    return found


def test_the_example_sampler_meets_the_contract():
    assert _problems(ULA, Sampler) == []
    assert issubclass(ULA.Settings, SamplerSettings)
    assert dataclasses.is_dataclass(ULA.Settings)
    assert ULA.Settings().kind == "ula" and "ula" not in SAMPLERS
    path = REPO_ROOT / SAMPLER_EXAMPLE
    assert not {f"lambda_hat.samplers.{kind}" for kind in SAMPLERS} & _imports(path), \
        "a sampler imports no other sampler"
    assert not {"jax", "blackjax", "optax"} & _top_level_imports(path), "JAX inside functions"


def test_the_example_target_meets_the_contract():
    assert _problems(GAUSSIAN, TargetKind) == []
    assert dataclasses.is_dataclass(GAUSSIAN.Model)
    assert typing.get_args(typing.get_type_hints(GAUSSIAN.Model)["kind"]) == ("gaussian_mean",)
    assert "gaussian_mean" not in TARGETS
    likelihood = GAUSSIAN.likelihood(GAUSSIAN.Model(kind="gaussian_mean", d=3), {})
    assert isinstance(likelihood, Likelihood) and likelihood.parameter_groups() == []
    assert not {"jax", "blackjax", "optax"} & _top_level_imports(REPO_ROOT / TARGET_EXAMPLE)


@pytest.mark.parametrize("target", [QUADRATIC_ENTRY, GAUSSIAN_ENTRY],
                         ids=lambda entry: entry["model"]["kind"])
def test_the_example_sampler_recovers_the_exact_finite_n_llc(registered, target):
    """ULA at τ = 0.2 on a target whose Hessian is the identity: every direction has
    c = nβ + γ, the measured curvature sets εc = τ, and the stationary variance is
    1/(c(1 − τ/4)), so λ̂ reads (d/2)·nβ/(nβ + γ)/(1 − τ/4), 5.3% high (docs/theory.md §6.1)."""
    from lambda_hat.runner import sample_run

    experiment = _experiment(target, **RUN)
    summary, traces = sample_run(experiment, "ula", _built(experiment))
    d = target["model"]["d"]
    assert summary.true_llc == d / 2 and summary.d == d
    exact = d / 2 * summary.nbeta / (summary.nbeta + summary.gamma)
    step_times_curvature = summary.stats["stiffest_step"]
    assert step_times_curvature == pytest.approx(ULA.Settings.step_size_scale, rel=1e-3)
    inflation = 1 / (1 - step_times_curvature / 4)
    error, mcse = summary.llc_mean - exact, summary.llc_mcse
    assert abs(error) <= 4 * mcse + exact * (inflation - 1), (summary.llc_mean, exact, mcse)
    biased = exact * inflation
    assert abs(summary.llc_mean - biased) <= 4 * mcse + 0.005 * biased, \
        (summary.llc_mean, biased, mcse)
    assert summary.status == "ok" and summary.warnings == ()
    assert summary.loss_trace == "full_data" and summary.markov_chain
    assert traces["loss"].shape == (RUN["chains"], RUN["draws"])
    # one gradient per step, the start's and the warmup's included, and the power
    # iteration of `step_size: auto` (two gradients per Hessian-vector product)
    assert summary.grad_evals == pytest.approx(
        2 * (POWER_ITERATIONS + 1) + RUN["chains"] * (RUN["warmup"] + 1 + RUN["draws"]))


def test_the_example_sampler_thins_and_warns():
    """`thin: 3` runs three transitions (three gradients) per kept draw. A step near the
    stability edge (εc = 3.6 at the stiffest direction) is flagged, a given step (εc not
    measured) is not, and a diverged chain is."""
    import jax.numpy as jnp

    from lambda_hat.samplers.driver import run
    from lambda_hat.settings import make
    from potentials import PotentialPosterior

    posterior = PotentialPosterior(coefficients=(0.5, 1.5), powers=(1, 1), nbeta=100.0,
                                   gamma=1.0)
    c = 2 * 1.5 * 100.0 + 1.0  # −log p = nβ Σ c_i w_i² + (γ/2)‖w‖²: stiffest 2·1.5·nβ + γ
    settings = make(ULA.Settings, {"chains": 2, "warmup": 10, "draws": 50, "thin": 3,
                                   "dtype": "float32", "step_size_scale": 3.6})
    output = run(ULA, settings, posterior, posterior.data(jnp.float32))
    assert output.loss.shape == (2, 50)
    np.testing.assert_allclose(np.diff(output.grad_evals_at), 3.0)
    stats = ULA.summarize(settings, output)
    assert stats["stiffest_curvature"] == pytest.approx(c, rel=1e-3)
    assert stats["stiffest_step"] == pytest.approx(3.6, rel=1e-3)
    (warning,) = ULA.warnings(stats)
    assert "εc = 3.6" in warning and "900%" in warning
    quiet = {"stiffest_step": 0.2, "nonfinite_trace_points": 0}
    assert ULA.warnings(quiet) == []
    assert ULA.warnings({**quiet, "stiffest_step": None}) == []  # a given step: not measured
    assert "unbounded" in ULA.warnings({**quiet, "stiffest_step": 4.5})[0]
    assert "NaN/Inf" in ULA.warnings({**quiet, "nonfinite_trace_points": 3})[0]


def test_the_example_target_builds_with_its_exact_llc(registered):
    from lambda_hat.errors import ArtifactError
    from lambda_hat.targets import build_target

    target = _built(_experiment(GAUSSIAN_ENTRY))
    record, arrays = target.record, target.arrays
    d, n = GAUSSIAN_ENTRY["model"]["d"], GAUSSIAN_ENTRY["data"]["n"]
    assert (record["true_llc"], record["multiplicity"], record["d"], record["n"]) == (
        d / 2, 1, d, n)
    X = np.asarray(arrays["X"], np.float64)
    np.testing.assert_allclose(arrays["w_star"], X.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(arrays["w_star"] - GAUSSIAN_ENTRY["model"]["mean"])) < 5 / np.sqrt(n)
    spread = 0.5 * np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=-1))
    assert record["loss_star"] == pytest.approx(spread, rel=1e-4)
    likelihood = target.likelihood
    data = likelihood.prepare(arrays, arrays["X"].dtype)
    every = np.arange(n)
    assert float(likelihood.batch_loss(data["w_star"], data, every)) == pytest.approx(
        float(likelihood.loss(data["w_star"], data)), rel=1e-4)
    teacher = _experiment({**GAUSSIAN_ENTRY, "w_star": "teacher"})
    with pytest.raises(ArtifactError, match=r"targets\.t\.w_star"):
        build_target("t", teacher.target("t"), "test")


def test_the_config_check_is_derived_from_the_examples(registered):
    from lambda_hat.config import check_experiment

    def problems(target=None, sampler=None, posterior=None):
        raw = {"targets": {"g": target or GAUSSIAN_ENTRY},
               "samplers": {"ula": sampler or {"kind": "ula"}},
               "posterior": posterior or {}}
        return check_experiment(raw, "<test>")

    assert problems(posterior={"gamma": 0}) == []  # PROPER_WITHOUT_LOCALIZER
    network = {"model": {"kind": "dln", "widths": [2, 2], "rank": 1}}
    assert "<test>: posterior.gamma: gamma = 0 leaves" in problems(network, None,
                                                                    {"gamma": 0})[0]
    model = GAUSSIAN_ENTRY["model"]
    typed = problems({"model": {**model, "dim": 3}},
                     {"kind": "ula", "step_size": -1.0, "thin": 0, "step_size_scale": 4.0})
    for key in ("targets.g.model.dim", "samplers.ula.step_size:", "samplers.ula.thin",
                "samplers.ula.step_size_scale"):
        assert any(f"<test>: {key}" in line for line in typed), (key, typed)
    checked = problems({**GAUSSIAN_ENTRY, "model": {**model, "mean": [1.0]},
                        "checkpoints": [10]},
                       {"kind": "ula", "step_size": 1.0e-3, "step_size_scale": 0.1})
    assert checked == [
        "<test>: samplers.ula.step_size_scale: is used only with step_size: auto",
        "<test>: targets.g.checkpoints: a gaussian_mean target is not trained, so it has no "
        "checkpoints",
        "<test>: targets.g.model.mean: needs d = 10 entries, not 1"]


# The pages.

EXAMPLE_BLOCK = re.compile(r"^<!-- example: (\S+) -->\n```python\n(.*?)^```$", re.S | re.M)


def _page(doc: str) -> str:
    return (REPO_ROOT / doc).read_text()


@pytest.mark.parametrize("doc, example", [(SAMPLER_DOC, SAMPLER_EXAMPLE),
                                          (TARGET_DOC, TARGET_EXAMPLE)])
def test_the_page_quotes_its_example_verbatim(doc, example):
    blocks = EXAMPLE_BLOCK.findall(_page(doc))
    assert [path for path, _ in blocks] == [example]
    assert blocks[0][1] == (REPO_ROOT / example).read_text(), \
        f"{doc} no longer quotes {example}: paste the file between the marker's fences"


def _members(cls) -> set[str]:
    """A Protocol's or class's annotated names and methods."""
    return set(typing.get_type_hints(cls)) | {
        name for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)}


def _properties(*classes) -> set[str]:
    return {name for cls in classes for name, value in vars(cls).items()
            if isinstance(value, property)}


def _fields(*classes) -> set[str]:
    return {item.name for cls in classes for item in dataclasses.fields(cls)}


NAMED = {
    SAMPLER_DOC: lambda: (_members(Sampler) | set(Kernel._fields)
                          | _fields(FullBatchSettings, MinibatchSettings)
                          | _properties(SamplerSettings, FullBatchSettings, BatchSettings,
                                        MinibatchSettings)),
    TARGET_DOC: lambda: _members(TargetKind) | _members(Likelihood) | set(Built._fields),
}


@pytest.mark.parametrize("doc", sorted(NAMED))
def test_the_page_names_every_member_of_its_contract(doc):
    page = _page(doc)
    missing = sorted(name for name in NAMED[doc]()
                     if not re.search(rf"`{re.escape(name)}\b", page))
    assert missing == [], f"{doc} does not name {missing}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        return True
    return False


@pytest.mark.parametrize("doc", [SAMPLER_DOC, TARGET_DOC])
def test_the_page_names_only_what_exists(doc):
    page = _page(doc)
    paths = re.findall(r"`((?:lambda_hat|tests|examples|docs)/[\w./-]+)(?:::(\w+))?`", page)
    assert paths
    for path, test in paths:
        assert (REPO_ROOT / path).exists(), path
        if test:
            assert f"def {test}(" in (REPO_ROOT / path).read_text(), f"{path}::{test}"
    dotted = re.findall(r"`(lambda_hat(?:\.\w+)+)", page)
    assert dotted
    assert [name for name in dotted if not _resolves(name)] == []
