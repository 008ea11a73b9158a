"""Default HMC and SGLD against finite-n references (issue 12).

Targets: x ~ N(0, I), noiseless teacher, n = 20000, γ = 1, β = 1/log n (nβ ≈ 2019), data
seed 0: a regular DLN [6, 4] of rank 4 (λ = d/2 = 12) and a singular one [6, 5, 4, 6] of
rank 3 (λ = 14.5, multiplicity 1).

A run estimates the posterior expectation at its own n, β, γ and data, which is not λ (the
localizer and finite n shift it: docs/theory.md §4-5), so each is compared with that finite-n value,
`tests/references/finite_n.json` (made by `python bench/finite_n_reference.py`): for the
one-layer DLN, whose L_n is exactly quadratic in w, the exact Gaussian value
Σ_i ½·nβh_i/(nβh_i + γ) (MCSE 0; the long NUTS run there agrees with it); for the singular
DLN a long NUTS run (32 chains; its MCSE is under 1/4 of a default HMC run's, checked here).
NUTS is Metropolis-adjusted, so the reference's bias bound is 0 beyond its MCSE.

Each run (sampler seeds 0, 1, 2, same target) must satisfy
    |λ̂ − ref| < 4·√(MCSE² + MCSE_ref²) + bias bound,
with the bias bound stated per sampler:
- HMC: 0. Metropolis-adjusted, so its stationary law is exact; its error is its MCSE.
- SGLD: its Euler–Maruyama bias at the run's own step ε (docs/theory.md §6.1: a direction
  of curvature c = nβh + γ has variance 1/(c(1 − εc/4)) instead of 1/c, so its share of λ̂ is inflated by 1/(1 − εc/4)). Bounded by that factor
  at the stiffest curvature at w*, c_max = nβh_max + γ (h_max from the Hessian spectrum
  stored with the reference), applied to the whole estimate: ref·k/(1 − k), k = εc_max/4
  (≈ 5% at the default τ = εc_max = 0.2; 0.75 here). Summing the formula over the quadratic
  directions alone (0.06 here) would understate it on a singular DLN: bench/coverage.py
  measured +3.0% (SGLD), +4.5% (RMSProp), +4.2% (Adam) on its singular DLN against +1.4%
  from the quadratic directions, and +5.4% on its regular one (+5.0% predicted; the rest is
  minibatch noise). Here SGLD reads low instead (−5% to −8% at seeds 0-2: its chains mix
  slowly along the singular valleys, R-hat 1.04-1.07), inside its larger MCSE.
Status: default HMC on the regular DLN must be `ok` (no warning). On the singular DLN the
default runs (4 × 1000 HMC draws, 4 × 40000 SGLD steps) are too short for R-hat ≤ 1.01
(HMC 1.02-1.03, SGLD 1.04-1.07 measured), so there only convergence warnings (R-hat,
ESS) are allowed and no chain may fail. Default HMC's chains also diverge now and then there
as they reach stiffer parts of the valley than their warmup saw: divergence fractions at
seeds 0-5 were 0, 0, 1.35%, 0.10%, 0, 0 (seed 2: 19 and 35 in two chains, all after draw
645, λ̂ 14.21 ± 0.22 against 14.33; at target_accept 0.9 still 0.65%), so one run's
divergence warning is allowed, but the fraction pooled over the seeds must stay under the
warning's threshold. (A run past 1% now samples again at a higher target acceptance, its
remediation; the kept run's divergences are the ones counted.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from isolated import run_isolated, run_isolated_many
from lambda_hat.samplers.hamiltonian import DIVERGENCE_FRACTION_MAX
from lambda_hat.theory import dln_learning_coefficient

pytestmark = [pytest.mark.slow, pytest.mark.heavy(minutes=1)]

REFERENCES = Path(__file__).parent / "references" / "finite_n.json"
N = 20000
TARGETS = {
    "accuracy_regular": {"model": {"kind": "dln", "widths": [6, 4], "rank": 4},
                         "data": {"n": N}, "seed": 0},
    "accuracy_singular": {"model": {"kind": "dln", "widths": [6, 5, 4, 6], "rank": 3},
                          "data": {"n": N}, "seed": 0},
}
SEEDS = (0, 1, 2)
GAMMA = 1.0
CONVERGENCE_WARNINGS = ("R-hat", "ESS")
"""Warnings that say the run is too short, not that it is wrong."""
DIVERGENCE_WARNING = "divergent transitions"


def reference(name: str) -> dict:
    return json.loads(REFERENCES.read_text())["targets"][name]


def sgld_bias_bound(ref: dict, step_size: float) -> float:
    """ref·k/(1 − k), k = εc_max/4: Euler–Maruyama's relative inflation of a direction's
    variance at the stiffest curvature at w* (docs/theory.md §6.1), applied to all of λ̂."""
    c_max = ref["nbeta"] * max(ref["hessian_eigenvalues"]) + ref["gamma"]
    k = step_size * c_max / 4
    assert k < 1, "beyond the Euler–Maruyama stability limit"
    return ref["llc"] * k / (1 - k)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(target, kind): [summary per seed]} and the built targets' records; float64 and
    float32 runs in their own processes, two at a time (≈ 1 minute on 2 cores)."""
    out = tmp_path_factory.mktemp("targets")
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    run_isolated("build_targets", "float64", env=env, out_dir=str(out), targets=TARGETS)
    jobs = {
        ("accuracy_singular", "sgld"): "float32",
        ("accuracy_singular", "hmc"): "float64",
        ("accuracy_regular", "hmc"): "float64",
    }
    calls = [("run_kinds_on_target", dtype,
              {"target_dir": str(out / target),
               "runs": [{"kind": kind, "seed": seed} for seed in SEEDS]})
             for (target, kind), dtype in jobs.items()]
    results = dict(zip(jobs, run_isolated_many(calls, env=env)))
    records = {name: json.loads((out / name / "target.json").read_text()) for name in TARGETS}
    return results, records


def _runs(runs, target, kind) -> list[dict]:
    results, _ = runs
    value = results[target, kind]
    if isinstance(value, Exception):
        raise AssertionError(f"{kind} on {target} failed: {value}")
    assert len(value) == len(SEEDS)
    for summary in value:
        assert "error" not in summary, summary
    return value


def _check_against_reference(summaries, ref, bias_bound, kind):
    for seed, summary in zip(SEEDS, summaries):
        bound = bias_bound(summary) if callable(bias_bound) else bias_bound
        sigma = math.hypot(summary["llc_mcse"], ref["mcse"])
        error = summary["llc_mean"] - ref["llc"]
        assert abs(error) < 4 * sigma + bound, (
            f"{kind} seed {seed}: λ̂ = {summary['llc_mean']:.3f}, reference "
            f"{ref['llc']:.3f}: off by {error:+.3f} > 4·{sigma:.3f} + {bound:.3f}")
        assert summary["chains_failed"] == 0, summary


def test_references_belong_to_these_targets(runs):
    """Same data (content hash), n, β = 1/log n, γ as the reference; its MCSE ≤ 1/4 of the
    test runs' (median over seeds), and the NUTS run converged."""
    _, records = runs
    for name, entry in TARGETS.items():
        ref, record = reference(name), records[name]
        assert ref["target"] == entry
        assert ref["target_hash"] == record["hash"], (
            f"{name}: the data changed since {REFERENCES} was made: rerun "
            "python bench/finite_n_reference.py --out tests/references/finite_n.json")
        assert ref["n"] == N and ref["beta"] == pytest.approx(1 / math.log(N))
        assert ref["gamma"] == GAMMA and ref["bias_bound"] == 0.0
        assert ref["nuts"]["r_hat"] < 1.01 and ref["nuts"]["halves_agree"], ref["nuts"]
        hmc = sorted(s["llc_mcse"] for s in _runs(runs, name, "hmc"))[len(SEEDS) // 2]
        assert ref["mcse"] <= hmc / 4, (name, ref["mcse"], hmc)
        if ref["exact_finite_n"] is not None:  # the NUTS run agrees with the exact value
            assert abs(ref["nuts"]["llc"] - ref["exact_finite_n"]) < 4 * ref["nuts"]["mcse"]


def test_default_hmc_matches_the_exact_finite_n_value_of_a_regular_dln(runs):
    ref = reference("accuracy_regular")
    summaries = _runs(runs, "accuracy_regular", "hmc")
    for summary in summaries:
        assert summary["true_llc"] == summary["d"] / 2 == 12.0
        assert summary["dtype"] == "float64" and summary["n"] == N
        assert summary["nbeta"] == pytest.approx(ref["nbeta"])
        assert summary["warnings"] == [], summary["warnings"]  # status ok
    _check_against_reference(summaries, ref, 0.0, "hmc")


def test_default_hmc_matches_the_nuts_reference_on_a_singular_dln(runs):
    ref = reference("accuracy_singular")
    exact = dln_learning_coefficient([6, 5, 4, 6], 3)
    assert exact.multiplicity == 1 and exact.llc == 14.5
    summaries = _runs(runs, "accuracy_singular", "hmc")
    for summary in summaries:
        assert summary["true_llc"] == exact.llc and summary["dtype"] == "float64"
        assert all(w.startswith(CONVERGENCE_WARNINGS) or DIVERGENCE_WARNING in w
                   for w in summary["warnings"]), summary["warnings"]
    divergences = sum(s["stats"]["divergences"] for s in summaries)
    transitions = sum(s["stats"]["transitions"] for s in summaries)
    assert divergences / transitions <= DIVERGENCE_FRACTION_MAX, (divergences, transitions)
    _check_against_reference(summaries, ref, 0.0, "hmc")


def test_default_sgld_matches_the_nuts_reference_on_a_singular_dln(runs):
    ref = reference("accuracy_singular")
    summaries = _runs(runs, "accuracy_singular", "sgld")
    for summary in summaries:
        assert summary["dtype"] == "float32"
        assert all(w.startswith(CONVERGENCE_WARNINGS) for w in summary["warnings"]), summary
        assert 0 < sgld_bias_bound(ref, summary["stats"]["step_size"]) < 0.1 * ref["llc"]
    _check_against_reference(
        summaries, ref, lambda s: sgld_bias_bound(ref, s["stats"]["step_size"]), "sgld")
