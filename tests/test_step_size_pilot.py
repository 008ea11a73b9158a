"""The pilot behind `step_size: auto` of the minibatch samplers (issue 12).

The curvature rule sets the step from w* alone; the chains meet larger curvature away from
w* (singular models), so a pilot on all chains lowers the step until the MALA probe accepts
`target_acceptance` (`step_size.pilot`). Checked here:

- on a Gaussian potential whose curvature-based step is far too large (τ = 2), the pilot
  lands near the target, for a Langevin (SGLD), a preconditioned (RMSProp) and a momentum
  (SGHMC, probe step h²) sampler, and the kept draws stay there;
- an explicit `step_size` (and `pilot_steps: 0`) skips it: checked on runs other modules
  make anyway (the smoke experiment's SGLD in test_workflow.py, the too-large step in
  test_samplers.py);
- its steps and probes are counted in `grad_evals`;
- default SGLD on small reduced-rank DLN regressions (n = 1000) lands within 10% of the
  exact λ without a MALA warning (before the pilot, [3, 3, 3, 3] at rank 0 read up to +15%
  at MALA acceptance 0.85-0.88; bench/step_size_pilot.py has the table).

Sampler runs happen in float32 subprocesses (`isolated.run_isolated`), one per DLN shape
and seed, two at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from isolated import run_isolated, run_isolated_many

pytestmark = [pytest.mark.slow, pytest.mark.heavy(minutes=1.5)]

TARGET_ACCEPTANCE = 0.95  # the settings' default (minibatch.PilotedSettings)
_rng = np.random.default_rng(0)
GAUSSIAN = {"type": "gaussian", "diagonal": list(_rng.uniform(0.5, 2.0, 6)),
            "factor": list(_rng.normal(0, 1.0, 6)), "nbeta": 500.0, "gamma": 0.0}
# τ = 2 puts the curvature rule's step far above the target's (MALA ≈ 0.6-0.7).
# SGHMC: with α = 1 (so h = τ/√c, the friction bound inactive), τ = 1.5 makes the probe's
# Langevin step h²c = 2.25.
# The pilot tunes the chain's own step, so these runs leave out the half-step twins of
# `bias_correction: richardson` (a third of the cost; the correction is tested in
# test_samplers.py) and are judged as the uncorrected SGLD the pilot was measured on.
UNCORRECTED = {"bias_correction": "none"}
PILOTED = [{"kind": kind, "steps": 3000, "step_size_scale": 2.0, "pilot_steps": 1000,
            **UNCORRECTED} for kind in ("sgld", "sgld_rmsprop")] + [
    {"kind": "sghmc", "steps": 3000, "alpha": 1.0, "step_size_scale": 1.5, "pilot_steps": 1000}]
# Three shapes × two seeds (target and sampler seed): a rank-0 DLN with a singular w*
# (the shape the curvature rule handled worst), a rank-1 and a rank-2 one.
SHAPES = {"dln3333": ([3, 3, 3, 3], 0), "dln4324": ([4, 3, 2, 4], 1), "dln848": ([8, 4, 8], 2)}
SEEDS = (2, 3)
N = 1000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("pilot-targets")
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    targets = {f"{name}_{seed}": {"widths": widths, "rank": rank, "n": N, "seed": seed}
               for name, (widths, rank) in SHAPES.items() for seed in SEEDS}
    run_isolated("build_dln_targets", "float64", env=env, out_dir=str(out), targets=targets)
    calls = {(name, seed): ("run_kinds_on_target", "float32", {
        "target_dir": str(out / f"{name}_{seed}"), "runs": [{"kind": "sgld", "seed": seed, **UNCORRECTED}]})
        for seed in SEEDS for name in SHAPES}
    calls["gaussian"] = ("run_kinds_on_potential", "float32", {"spec": GAUSSIAN,
                                                               "runs": PILOTED})
    return dict(zip(calls, run_isolated_many(list(calls.values()), env=env)))


def _get(runs, key):
    value = runs[key]
    if isinstance(value, Exception):
        raise AssertionError(f"run {key} failed: {value}")
    return value


def test_the_pilot_reaches_the_target_acceptance_on_a_gaussian(runs):
    for run, result in zip(PILOTED, _get(runs, "gaussian")):
        stats = result["stats"]
        assert stats["pilot_steps"] == run["pilot_steps"], run
        assert stats["pilot_target_acceptance"] == TARGET_ACCEPTANCE
        # The curvature rule's step was too large; the pilot only ever lowers it.
        assert stats["step_size"] < 0.8 * stats["step_size_curvature"], (run, stats)
        assert abs(stats["pilot_acceptance"] - TARGET_ACCEPTANCE) < 0.03, (run, stats)
        # The kept draws (after the pilot and burn-in) accept near the target as well.
        assert abs(stats["mala_acceptance_mean"] - TARGET_ACCEPTANCE) < 0.03, (run, stats)
        assert np.isfinite(result["llc_mean"]), run


def test_the_pilot_cost_is_counted(runs):
    """Default SGLD: 40000 steps, eval_every 50, a 4000-step pilot probing every 10 steps,
    and the curvature's power iteration (full batch on a DLN) shared by the chains."""
    (summary,) = _get(runs, ("dln4324", SEEDS[0]))
    stats = summary["stats"]
    assert stats["pilot_steps"] == 4000
    chains, per_step = summary["chains_total"], 256 / N
    draws = 40000 + 2 * 40000 // 50
    pilot = 4000 + 2 * 4000 // 10
    curvature = summary["grad_evals"] - chains * per_step * (draws + pilot)
    assert 0 < curvature < 100, summary["grad_evals"]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_default_sgld_recovers_small_reduced_rank_regressions(runs, shape):
    for seed in SEEDS:
        summary = _get(runs, (shape, seed))[0]
        assert summary["n"] == N and summary["chains_failed"] == 0
        stats = summary["stats"]
        assert stats["step_size_auto"] and stats["pilot_steps"] > 0
        assert stats["step_size"] <= stats["step_size_curvature"]
        rel = abs(summary["llc_mean"] - summary["true_llc"]) / summary["true_llc"]
        assert rel < 0.10, (shape, seed, summary["llc_mean"], summary["true_llc"], stats)
        assert not any("MALA" in warning for warning in summary["warnings"]), (
            shape, seed, summary["warnings"])
        assert stats["mala_acceptance_mean"] > 0.85, (shape, seed, stats)
