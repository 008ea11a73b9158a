"""`until: {r_hat, ess}`: a run stops at the first chunk whose kept draws pass both checks,
and its draws are those of the full-length run with the same seed, cut there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lambda_hat.config import check_experiment
from support import run_cli, write_config

pytestmark = pytest.mark.slow

TARGET = {"model": {"kind": "dln", "widths": [4, 3, 2, 4], "rank": 1}, "data": {"n": 1000},
          "seed": 0}  # config/smoke.yaml's dln_small
RULE = {"r_hat": 1.01, "ess": 400}
SAMPLERS = {
    "hmc_fixed": {"kind": "hmc", "chains": 2, "warmup": 200, "draws": 2000},
    "hmc_until": {"kind": "hmc", "chains": 2, "warmup": 200, "draws": 2000, "until": RULE},
    "hmc_never": {"kind": "hmc", "chains": 2, "warmup": 200, "draws": 2000,
                  "until": {"r_hat": 1.01, "ess": 1.0e9}},
}
EXPERIMENT = {"experiment": "stopping", "posterior": {"beta": "auto", "gamma": 1.0},
              "targets": {"dln_small": TARGET}, "samplers": SAMPLERS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stopping")
    config = write_config(root, EXPERIMENT)
    done = run_cli("build", "--config", config, "--target", "dln_small", "--out",
                   root / "target", x64=True)
    assert done.returncode == 0, done.stderr
    found = {}
    for name in SAMPLERS:
        done = run_cli("sample", "--config", config, "--target-dir", root / "target",
                       "--sampler", name, "--out", root / name, x64=True)
        assert done.returncode == 0, done.stderr
        with np.load(root / name / "trace.npz") as trace:
            found[name] = (json.loads((root / name / "summary.json").read_text()),
                           trace["loss"], done.stderr)
    return found


def test_a_run_stops_once_its_draws_pass(runs):
    summary, loss, log = runs["hmc_until"]
    stopping = summary["stopping"]
    assert stopping["stopped_by"] == "criterion" and stopping["rule"] == RULE
    assert stopping["trace_points"] == loss.shape[1] < stopping["budget"] == 2000
    assert loss.shape[1] % (2000 // 10) == 0  # at a chunk's end
    # the summary's diagnostics are the check's: same kept draws
    assert summary["r_hat"] == stopping["r_hat"] <= RULE["r_hat"]
    assert summary["ess"] == stopping["ess"] >= RULE["ess"]
    assert "the until rule passed" in log
    assert not [w for w in summary["warnings"] if "R-hat" in w or "ESS" in w]
    assert summary["grad_evals"] < runs["hmc_fixed"][0]["grad_evals"]


def test_a_stopped_run_is_the_full_run_cut_short(runs):
    """Same seed, same keys: the stopped run's trace is the fixed run's first points, and
    its λ̂ is the estimate from those points (burn-in as a fraction of what ran)."""
    _, loss, _ = runs["hmc_until"]
    fixed_summary, fixed, _ = runs["hmc_fixed"]
    assert fixed_summary["stopping"]["stopped_by"] == "fixed"
    np.testing.assert_array_equal(loss, fixed[:, :loss.shape[1]])


def test_a_rule_that_never_passes_runs_the_budget(runs):
    summary, loss, _ = runs["hmc_never"]
    _, fixed, _ = runs["hmc_fixed"]
    assert summary["stopping"]["stopped_by"] == "budget"
    assert summary["stopping"]["trace_points"] == loss.shape[1] == 2000
    np.testing.assert_array_equal(loss, fixed)
    assert summary["llc_mean"] == runs["hmc_fixed"][0]["llc_mean"]


def test_a_bad_rule_is_named():
    experiment = {**EXPERIMENT, "samplers": {"s": {"kind": "sgld",
                                                   "until": {"r_hat": 0.9, "eff": 3}}}}
    problems = check_experiment(experiment, "x.yaml")
    assert "x.yaml: samplers.s.until: unknown key(s) 'eff'" in problems
    assert any(p.startswith("x.yaml: samplers.s.until.r_hat: 0.9") for p in problems)
