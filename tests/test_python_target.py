"""A user's own JAX model as a target (`kind: python`): built from the returned params or
trained, sampled like any other, checked against an exact finite-n answer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lambda_hat.config import Experiment, check_experiment
from support import run_cli, write_config

LINEAR = {"model": {"kind": "python", "entry": "examples/linear_regression.py:make_target",
                    "options": {"inputs": 3, "outputs": 2, "n": 1500}}, "seed": 2}
CLASSIFIER = {"model": {"kind": "python", "entry": "examples/mlp_classifier.py:make_target",
                        "options": {"hidden": 4, "n": 300}}, "training": {"steps": 500}}


@pytest.fixture(scope="module")
def workspace(repo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("python-target")
    shutil.copytree(repo_root / "examples", root / "examples")
    config = write_config(root, {"targets": {"linear": LINEAR, "classifier": CLASSIFIER},
                                 "samplers": {f"hmc{seed}": {"kind": "hmc", "seed": seed}
                                              for seed in (0, 1)}})
    for target in ("linear", "classifier"):
        done = run_cli("build", "--config", config, "--target", target, "--out", root / target,
                       x64=True, cwd=root)
        assert done.returncode == 0, done.stderr
    return root, config


def test_hmc_matches_the_exact_localized_answer_on_linear_regression(workspace):
    """L_n is exactly quadratic in w, so the localized posterior is Gaussian and
    nβ E[L_n − L_n(w*)] = Σ_i ½ nβh_i/(nβh_i + γ) over the Hessian's eigenvalues h_i
    (the eigenvalues of 2XᵀX/n, once per output) exactly: within 4 MCSE, two seeds."""
    root, config = workspace
    record = json.loads((root / "linear" / "target.json").read_text())
    assert (record["n"], record["d"], record["true_llc"]) == (1500, 6, None)
    with np.load(root / "linear" / "target.npz") as arrays:
        X = arrays["X"]
    h = np.repeat(np.linalg.eigvalsh(2 * X.T @ X / len(X)), 2)
    for seed in (0, 1):
        out = root / f"run{seed}"
        done = run_cli("sample", "--config", config, "--target-dir", root / "linear",
                       "--sampler", f"hmc{seed}", "--out", out, x64=True, cwd=root)
        assert done.returncode == 0, done.stderr
        summary = json.loads((out / "summary.json").read_text())
        nbeta, gamma = summary["nbeta"], summary["gamma"]
        reference = float(np.sum(0.5 * nbeta * h / (nbeta * h + gamma)))
        assert abs(summary["llc_mean"] - reference) < 4 * summary["llc_mcse"], \
            (summary["llc_mean"], reference, summary["llc_mcse"])


def test_a_classifier_is_trained_to_w_star_with_the_cross_entropy(workspace):
    """No params returned: lambda-hat trains from init_params; L_n(w*) is the mean negative
    log-likelihood of the integer labels under the logits."""
    import importlib.util

    root, _ = workspace
    record = json.loads((root / "classifier" / "target.json").read_text())
    assert record["d"] == 2 * 4 + 4 + 4 * 3 + 3 and record["n"] == 300
    spec = importlib.util.spec_from_file_location("clf", root / "examples" / "mlp_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with np.load(root / "classifier" / "target.npz") as arrays:
        w, X, Y = arrays["w_star"], arrays["X"], arrays["Y"]
    made = module.make_target(seed=0, hidden=4, n=300)
    sizes = [("w1", (2, 4)), ("b1", (4,)), ("b2", (3,)), ("w2", (4, 3))]  # ravel: key order
    params, offset = {}, 0
    for name, shape in sorted(sizes):
        size = int(np.prod(shape))
        params[name] = w[offset:offset + size].reshape(shape)
        offset += size
    logits = np.array(made["apply"](params, X), np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    nll = -np.mean(logits[np.arange(len(Y)), Y] - np.log(np.exp(logits).sum(axis=1)))
    assert record["loss_star"] == pytest.approx(nll, rel=1e-6)
    assert record["training_final_loss"] == pytest.approx(record["loss_star"], rel=0.05)


def test_a_missing_file_is_named_before_any_work(tmp_path):
    raw = {"targets": {"mine": {"model": {"kind": "python", "entry": "nowhere.py:make"}}},
           "samplers": {}}
    (problem,) = check_experiment(raw, "exp.yaml")
    assert problem.startswith("exp.yaml: targets.mine.model.entry: nowhere.py: file not found")


def test_data_settings_on_a_python_target_are_refused_naming_the_key():
    """Its function makes the data: `data:` would be ignored, so it is an error instead, and
    the resolved entry carries no data defaults that look as if they applied."""
    entry = {"model": LINEAR["model"]}
    raw = {"targets": {"mine": {**entry, "data": {"n": 20000}}}, "samplers": {}}
    (problem,) = check_experiment(raw, "exp.yaml")
    assert problem.startswith("exp.yaml: targets.mine.data: a python target makes its own "
                              "data") and "model.options" in problem
    assert "data" not in Experiment({"targets": {"mine": entry}, "samplers": {}},
                                    "exp.yaml").target("mine")
