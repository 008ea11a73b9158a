"""Sampler accuracy on exact ground truths, and the diagnostics that must react.

Precision: JAX's x64 flag is process-global and this pytest process may run either way, so
every sampler run happens in a fresh interpreter with JAX_ENABLE_X64 set for the sampler's
declared dtype (`isolated.run_isolated`), exactly as the CLI runs it.
Runs are batched (one JAX import per precision and target) and two subprocesses run at a
time. Nothing here imports JAX in the test process except the pure-numpy diagnostics checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lambda_hat.samplers import REGISTRY, momentum
from isolated import run_isolated, run_isolated_many
from lambda_hat.theory import dln_learning_coefficient

pytestmark = pytest.mark.heavy(minutes=5)

FULL_BATCH = ("hmc", "nuts", "mclmc")
MINIBATCH = ("sgld", "sgld_rmsprop", "sgld_adam", "sgnht", "sghmc", "vi")
N = 10000

# Targets: x ~ N(0, I), noiseless, n = 10000, γ = 1, β = 1/log n, w* = teacher.
# `regular`: one linear layer, λ = d/2 = 12. `dln3`: 5→4→6→5 with a rank-2 teacher
# (rank < every width), λ = 10.5 with multiplicity 1 (d = 74), so the finite-n bias of an
# exact sampler is small (docs/theory.md §4.2: it is the m > 1 cases that converge slowly in n).
TARGETS = {
    "regular": {"widths": [6, 4], "rank": 4, "n": N},
    "dln3": {"widths": [5, 4, 6, 5], "rank": 2, "n": N},
}

# Tolerances on |λ̂ − λ|/λ. Full-batch samplers target the exact posterior: 10% leaves room
# for MCSE (≈ 1-2%) and the finite-n / γ = 1 offset (HMC with long runs gives ≈ −2% on dln3).
# Minibatch samplers carry a step-size bias (SGLD family: ≈ +τ/4 on well-determined
# directions, +5% on the regular model with the default τ = 0.2) plus slow mixing along
# singular directions: 20%.
TOLERANCE = {kind: 0.10 for kind in FULL_BATCH} | {kind: 0.20 for kind in MINIBATCH}

# The exact finite-n identity (docs/theory.md §3.4): γ = 0, flat prior, K = Σ c_i w_i^{2k_i}
# gives nβ E[K] = Σ 1/(2k_i) = 1.5 here, for any nβ. Mixed powers and unequal c_i make the
# posterior non-Gaussian and anisotropic, so step size and mass matrix must adapt.
IDENTITY = {"type": "potential", "coefficients": [1.0, 3.0, 0.5, 2.0], "powers": [1, 1, 2, 2],
            "nbeta": 1000.0, "gamma": 0.0}


# The `quadratic` target: L_n = ½||w − w*||², d = 10, n = 1000, γ = 1, β = 1/log n. Every
# direction has curvature c = nβ + γ of −log p; the exact finite-n answer of a perfect
# sampler is nβ E[L_n] = (d/2) nβ/c (not d/2: the localizer). A discretised sampler's
# stationary law on this Gaussian is itself Gaussian, with a variance that follows from its
# linear update (a discrete Lyapunov equation), so the references below are exact for the
# step size the run used; runs on two seeds.
QUADRATIC = {"model": {"kind": "quadratic", "d": 10}, "data": {"n": 1000}}
# Low curvature (issue 12): a regular 6→4 linear model on 200 points with x ~ N(0, 0.1²), so
# nβ times the Hessian's eigenvalues is below γ = 1. SGNHT's automatic step ignored its
# friction here (2αh > 1) and every chain diverged; HMC on the same posterior is the reference.
LOW_CURVATURE = {"model": {"kind": "dln", "widths": [6, 4], "rank": 4},
                 "data": {"n": 200, "x": {"kind": "gaussian", "scale": 0.1}}}
# Minibatch noise (issue 17): the same regular 6→4 model with noisy outputs (σ = 0.5) and
# batches of 32, so each minibatch gradient carries noise of covariance V that SGHMC at the
# old fixed α = 10 turns into heat (its first-order excess h·tr V/(4α) is about 20% of λ̂).
# The model is exactly quadratic, so the exact finite-n answer is d/2 − the localizer's
# suppression − the stationarity drop (closed forms in `lambda_hat.optimum`, checked against
# HMC in tests/test_optimum.py).
NOISY = {"model": {"kind": "dln", "widths": [6, 4], "rank": 4},
         "data": {"n": 1000, "noise": {"kind": "gaussian", "sigma": 0.5}}}
NOISY_RUN = {"kind": "sghmc", "batch_size": 32, "steps": 20000}
SEEDS = (0, 1)
GAUSSIAN_D = 6
_rng = np.random.default_rng(0)
GAUSSIAN = {"type": "gaussian", "diagonal": list(_rng.uniform(0.5, 2.0, GAUSSIAN_D)),
            "factor": list(_rng.normal(0, 1.0, GAUSSIAN_D)), "nbeta": 500.0, "gamma": 0.0}
TARGET_RUNS = "run_kinds_on_target"
POTENTIAL_RUNS = "run_kinds_on_potential"
# A moderately too large step (τ = εc_max = 3: MALA ≈ 0.63, λ̂ ≈ 2× on dln3; without the
# pilot, which would lower it) and a hopeless one (every chain reaches NaN).
TOO_LARGE = [{"kind": "sgld", "steps": 2000, "step_size_scale": 3.0, "pilot_steps": 0},
             {"kind": "sgld", "steps": 2000, "step_size": 1.0e-3}]
VI_GAUSSIAN = [{"kind": "vi", "whitening": w, "steps": 1500, "gamma": 0.0}
               for w in ("none", "hessian")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every sampler run this module checks, in float32/float64 subprocesses, two at a time.

    One pool, longest jobs first, so the two cores stay busy (≈ 2 minutes in all).
    """
    out = tmp_path_factory.mktemp("targets")
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    run_isolated("build_dln_targets", "float64", env=env,
                 out_dir=str(out), targets=TARGETS)
    run_isolated("build_targets", "float64", env=env, out_dir=str(out),
                 targets={"quadratic": QUADRATIC, "low_curvature": LOW_CURVATURE,
                          "noisy": NOISY})
    dirs = {name: str(out / name)
            for name in (*TARGETS, "quadratic", "low_curvature", "noisy")}

    def on(target, dtype, kinds):
        return (TARGET_RUNS, dtype, {"target_dir": dirs[target],
                                     "runs": [{"kind": kind} for kind in kinds]})

    jobs = {
        ("dln3", "vi+sgnht"): on("dln3", "float32", ["vi", "sgnht", "sghmc"]),
        ("dln3", "sgld+rmsprop+adam"): on("dln3", "float32", ["sgld", "sgld_rmsprop",
                                                              "sgld_adam"]),
        ("dln3", "full"): on("dln3", "float64", FULL_BATCH),
        ("regular", "vi+sgnht"): on("regular", "float32", ["vi", "sgnht", "sghmc"]),
        ("regular", "sgld+rmsprop+adam"): on("regular", "float32", ["sgld", "sgld_rmsprop",
                                                                    "sgld_adam"]),
        ("regular", "full"): on("regular", "float64", FULL_BATCH),
        "identity": (POTENTIAL_RUNS, "float64", {"spec": IDENTITY, "runs": [
            {"kind": kind, "gamma": 0.0} for kind in FULL_BATCH]}),
        "vi_gaussian": (POTENTIAL_RUNS, "float32", {"spec": GAUSSIAN, "runs": VI_GAUSSIAN}),
        "too_large": (TARGET_RUNS, "float32", {"target_dir": dirs["dln3"], "runs": TOO_LARGE}),
        "quadratic_full": (TARGET_RUNS, "float64", {"target_dir": dirs["quadratic"], "runs": [
            {"kind": "hmc", "seed": seed} for seed in SEEDS]}),
        "low_curvature_hmc": (TARGET_RUNS, "float64", {"target_dir": dirs["low_curvature"],
                                                       "runs": [{"kind": "hmc"}]}),
        "low_curvature_momentum": (TARGET_RUNS, "float32", {
            "target_dir": dirs["low_curvature"],
            "runs": [{"kind": kind, "seed": seed} for kind in ("sgnht", "sghmc")
                     for seed in SEEDS]}),
        "noisy_momentum": (TARGET_RUNS, "float32", {
            "target_dir": dirs["noisy"],
            "runs": [{**NOISY_RUN, "seed": seed, **alpha} for alpha in ({}, {"alpha": 10.0})
                     for seed in SEEDS]}),
        "noisy_sgld": (TARGET_RUNS, "float32", {
            "target_dir": dirs["noisy"],
            "runs": [{"kind": "sgld", "batch_size": 32, "seed": seed} for seed in SEEDS]}),
        "quadratic_minibatch": (TARGET_RUNS, "float32", {
            "target_dir": dirs["quadratic"],
            "runs": [{"kind": kind, "seed": seed} for kind in ("sgld", "sghmc") for seed in SEEDS]}),
    }
    outputs = dict(zip(jobs, run_isolated_many(list(jobs.values()), env=env)))
    results = {}
    for key, output in outputs.items():
        if isinstance(key, tuple) and not isinstance(output, Exception):
            for run, summary in zip(jobs[key][2]["runs"], output):
                results[key[0], run["kind"]] = summary
        else:
            results[key] = output
    return results


def _get(results, key):
    value = results.get(key)
    if isinstance(value, Exception) or value is None:
        raise AssertionError(f"run {key} failed: {value}")
    return value


def test_registry_covers_the_issue():
    assert set(FULL_BATCH + MINIBATCH) <= set(REGISTRY)
    assert not REGISTRY["vi"].MARKOV_CHAIN
    for kind, module in REGISTRY.items():
        assert module.Settings.dtype in ("float32", "float64"), kind
        assert callable(module.build), kind


def test_every_kind_validates_with_its_defaults():
    from lambda_hat.config import Experiment

    raw = {"targets": {"t": {"model": {"kind": "dln", "widths": [3, 2], "rank": 1}}},
           "samplers": {kind: {"kind": kind} for kind in REGISTRY}}
    experiment = Experiment(raw, "<test>")
    for kind in REGISTRY:
        assert experiment.sampler(kind).dtype == REGISTRY[kind].Settings.dtype


def test_true_llc_of_the_targets():
    assert dln_learning_coefficient(TARGETS["regular"]["widths"], 4).llc == 12.0
    coefficient = dln_learning_coefficient(TARGETS["dln3"]["widths"], 2)
    assert (coefficient.llc, coefficient.multiplicity) == (10.5, 1)


@pytest.mark.slow
def test_full_batch_samplers_pass_the_exact_identity(results):
    for kind, result in zip(FULL_BATCH, _get(results, "identity")):
        assert result["dtype"] == "float64", kind
        error = result["llc_mean"] - result["exact"]
        # 4 MCSE: |z| > 4 has probability < 1e-4 for an unbiased sampler. MCLMC is unadjusted
        # (relative bias ≈ √(energy variance per dim) ≈ 2% at BlackJAX's target), which is
        # inside 4 MCSE at this run length (ESS ≈ 6000, MCSE ≈ 1%).
        assert abs(error) < 4 * result["llc_mcse"], (kind, result["llc_mean"], result["llc_mcse"])
        assert result["r_hat"] < 1.05, kind


VI_ON_A_SINGULAR_DLN = pytest.mark.xfail(
    strict=True, reason="no variational family tried follows the DLN's curved valley of minima: "
    "λ̂ ≈ 19-23 for λ = 10.5 (bench/vi_singular.py, docs/samplers.md); the importance-weight "
    "check must say so")


@pytest.mark.slow
@pytest.mark.parametrize("kind, target", [
    pytest.param(kind, target, marks=[VI_ON_A_SINGULAR_DLN] if (kind, target) == ("vi", "dln3")
                 else []) for target in TARGETS for kind in FULL_BATCH + MINIBATCH])
def test_defaults_recover_the_exact_llc(results, kind, target):
    summary = _get(results, (target, kind))
    assert summary["dtype"] == REGISTRY[kind].Settings.dtype
    assert summary["chains_failed"] == 0
    rel = abs(summary["llc_mean"] - summary["true_llc"]) / summary["true_llc"]
    assert rel < TOLERANCE[kind], (kind, target, summary["llc_mean"], summary["true_llc"])


@pytest.mark.slow
def test_vi_on_the_singular_dln_is_flagged(results):
    summary = _get(results, ("dln3", "vi"))
    assert summary["stats"]["importance_ess_fraction"] < 0.01
    assert any("VI" in warning for warning in summary["warnings"])


@pytest.mark.slow
def test_summaries_carry_the_diagnostics(results):
    for target in TARGETS:
        for kind in FULL_BATCH + MINIBATCH:
            _check_diagnostics(target, kind, _get(results, (target, kind)))


def _check_diagnostics(target, kind, summary):
    stats = summary["stats"]
    assert summary["grad_evals"] > 0 and summary["wall_seconds"] > 0, kind
    if REGISTRY[kind].MARKOV_CHAIN:
        assert summary["ess"] and summary["r_hat"], kind
        assert summary["ess_per_grad_eval"] > 0, kind
    else:
        assert summary["r_hat"] is None, kind
    if kind in ("hmc", "nuts"):
        assert {"acceptance_mean", "divergences", "adaptation"} <= set(stats), kind
    if kind == "mclmc":
        assert stats["tuned"] and len(stats["energy_variance"]) == 4
    if kind.startswith("sgld") or kind == "sgnht":
        # Default step sizes keep the Langevin proposal where MALA accepts (≥ 0.93 seen).
        assert stats["mala_acceptance_mean"] > 0.8, (kind, target)


@pytest.mark.slow
def test_vi_elbo_and_llc_on_a_gaussian(results):
    """q can equal the target (rank-1 + diagonal covariance): ELBO → log Z, λ̂ → d/2."""
    d = GAUSSIAN_D
    cov = np.diag(GAUSSIAN["diagonal"]) + np.outer(GAUSSIAN["factor"], GAUSSIAN["factor"])
    log_z = 0.5 * d * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(cov)[1]
    # `none` makes the mixture learn the factor itself; `hessian` checks the whitening's
    # log-determinant bookkeeping (the target is N(0, I) in whitened coordinates).
    for run, result in zip(VI_GAUSSIAN, _get(results, "vi_gaussian")):
        elbo = np.asarray(result["stats"]["elbo_final"])
        # ELBO ≤ log Z always; at the optimum log p̃ − log q is constant, so the estimate is
        # nearly noiseless: within 0.05 nats (d = 6) of log Z means KL(q‖p) < 0.05.
        assert np.all(elbo < log_z + 0.02), (run, elbo, log_z)
        assert np.all(elbo > log_z - 0.05), (run, elbo, log_z)
        # λ̂ from 4 × 1000 iid draws: MCSE ≈ √(d/2)/√4000 ≈ 0.03, plus the KL-limited misfit.
        assert abs(result["llc_mean"] - d / 2) < 4 * result["llc_mcse"] + 0.05, (run, result)
        assert result["stats"]["importance_ess_fraction"] > 0.9


@pytest.mark.slow
def test_too_large_sgld_step_is_flagged(results):
    moderate, hopeless = _get(results, "too_large")
    assert any("MALA acceptance" in warning for warning in moderate["warnings"]), moderate
    # pilot_steps: 0 keeps the curvature rule's step as it is, however poor.
    stats = moderate["stats"]
    assert stats["pilot_steps"] == 0 and stats["pilot_acceptance"] is None
    assert stats["pilot_target_acceptance"] is None and stats["step_size_auto"]
    assert stats["step_size"] == stats["step_size_curvature"]
    assert "NaN/Inf" in hopeless["error"], hopeless


def test_nan_chain_is_excluded_and_counted():
    from lambda_hat.estimator import estimate_llc

    rng = np.random.default_rng(1)
    loss = 0.01 + 0.001 * rng.standard_normal((4, 200))
    loss[2, 150] = np.nan
    result = estimate_llc(loss, 50, 0.0, 100.0)
    assert result.chains_failed == 1 and result.chains_total == 4
    assert result.llc_per_chain[2] is None
    expected = 100.0 * loss[[0, 1, 3], 50:].mean(axis=1).mean()
    assert result.llc_mean == pytest.approx(expected)


def _warnings(estimate, stats):
    """The run's warnings as the runner collects them: generic checks, then each sampler
    module's own on its statistics."""
    from lambda_hat.diagnostics import run_warnings

    found = run_warnings(estimate, True, 0.0)
    for kind, keys in (("hmc", ("divergences", "divergence_fraction",
                                 "divergences_per_chain")),
                       ("sgld", ("mala_acceptance_mean", "nonfinite_trace_points")),
                       ("mclmc", ("energy_variance_mean", "desired_energy_var")),
                       ("vi", ("importance_ess_fraction",))):
        found += REGISTRY[kind].warnings({key: stats.get(key, 0) for key in keys})
    return found


def test_warnings_fire_on_sampler_statistics():
    from lambda_hat.estimator import Estimate

    base = Estimate(chains_total=4, chains_failed=0, draws_per_chain=100, burn_in=0,
                    llc_per_chain=[], r_hat=1.0, ess=1000.0)
    quiet = {"divergences": 3, "divergence_fraction": 0.001, "mala_acceptance_mean": 0.95,
             "energy_variance_mean": 6e-4, "desired_energy_var": 5e-4,
             "importance_ess_fraction": 0.5}
    assert _warnings(base, quiet) == []
    loud = {"divergences": 80, "divergence_fraction": 0.02, "divergences_per_chain": [0, 80],
            "mala_acceptance_mean": 0.3, "energy_variance_mean": 1e-2, "desired_energy_var": 5e-4,
            "importance_ess_fraction": 0.001, "nonfinite_trace_points": 5}
    failed = Estimate(**{**vars(base), "chains_failed": 1})
    text = " ".join(_warnings(failed, loud))
    for needle in ("divergent", "per chain 0, 80", "MALA", "energy variance", "importance",
                   "NaN/Inf", "1 of 4 chains"):
        assert needle in text, needle


def _stationary_position_variance(kind, stats, c, alpha):
    """Var(w) of the chain's stationary law on −log p = c w²/2 (one direction)."""
    from scipy.linalg import solve_discrete_lyapunov

    h = stats["step_size"]
    if kind == "sgld":  # w' = (1 − εc/2) w + √ε η
        return 1 / (c * (1 - h * c / 4))
    # SGHMC: p' = (1 − hα) p − h c w + √(2αh) η;  w' = w + h p'
    A = np.array([[1 - h * h * c, h * (1 - h * alpha)], [-h * c, 1 - h * alpha]])
    B = np.sqrt(2 * alpha * h) * np.array([[h], [1.0]])
    return solve_discrete_lyapunov(A, B @ B.T)[0, 0]


@pytest.mark.slow
def test_quadratic_target_matches_its_exact_finite_n_answer(results):
    """λ̂ within 4 MCSE (+0.5% for float32 rounding and the finite burn-in) of the exact
    answer at the same n, β, γ, and for SGLD/SGHMC the same step size."""
    d, n = QUADRATIC["model"]["d"], QUADRATIC["data"]["n"]
    runs = _get(results, "quadratic_full") + _get(results, "quadratic_minibatch")
    kinds = ["hmc"] * len(SEEDS) + ["sgld"] * len(SEEDS) + ["sghmc"] * len(SEEDS)
    for kind, summary in zip(kinds, runs):
        nbeta = summary["nbeta"]
        assert summary["n"] == n and summary["true_llc"] == d / 2
        c = nbeta + 1.0
        if kind == "hmc":
            variance = 1 / c
        else:
            variance = _stationary_position_variance(kind, summary["stats"], c,
                                                     summary["stats"].get("alpha"))
        reference = d * nbeta * variance / 2
        if kind == "sgld":
            # the run's λ̂ is Richardson's 2·λ̂(ε/2) − λ̂(ε); λ̂(ε) is kept uncorrected
            assert summary["bias_correction"] == "richardson"
            uncorrected = reference
            half = summary["stats"]["step_size"] / 2
            reference = d * nbeta * (2 / (c * (1 - half * c / 4)) - variance) / 2
            error = abs(summary["llc_uncorrected"] - uncorrected)
            assert error < 4 * summary["llc_uncorrected_mcse"] + 0.005 * uncorrected
        error = abs(summary["llc_mean"] - reference)
        assert error < 4 * summary["llc_mcse"] + 0.005 * reference, (kind, summary["llc_mean"],
                                                                      reference, summary["llc_mcse"])


@pytest.mark.slow
def test_momentum_samplers_on_a_low_curvature_target_match_hmc(results):
    """The automatic time step is bounded by the friction (h ≤ τ/α): finite estimates
    within 10% of HMC's on the same posterior (issue 12's acceptance), on two seeds."""
    (reference,) = _get(results, "low_curvature_hmc")
    assert reference["chains_failed"] == 0
    for summary in _get(results, "low_curvature_momentum"):
        assert summary["chains_failed"] == 0, summary
        assert summary["stats"]["friction_per_step"] <= 0.1 + 1e-6
        rel = abs(summary["llc_mean"] - reference["llc_mean"]) / reference["llc_mean"]
        assert rel < 0.10, (summary["kind"], summary["llc_mean"], reference["llc_mean"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sgld", "sgld_rmsprop", "sgld_adam"])
def test_the_sgld_familys_corrected_estimate_is_the_exact_finite_n_answer(results, kind):
    """Richardson's 2·λ̂(ε/2) − λ̂(ε) against the exact finite-n answer of two exactly
    quadratic models (d/2 − the localizer's suppression − the stationarity drop, at the same
    n, β, γ): the noiseless one-layer DLN `regular` at the defaults (n = 10⁴), and, for SGLD,
    the noisy one (σ = 0.5, batches of 32: minibatch noise's bias too) on two seeds. Within
    4 MCSE + a bias bound: what extrapolation leaves is λx²/2 per direction of dimensionless
    step x ≤ τ/4 = 0.05, so at most 2.5% of the bias it removed; the bound takes 10% of it
    (Adam's lag, RMSProp's moving step), plus 0.5% for float32 and the finite burn-in. The
    uncorrected λ̂ must miss by more than it, so the test sees the correction work."""
    runs = [_get(results, ("regular", kind))]
    if kind == "sgld":
        runs += _get(results, "noisy_sgld")
    for summary in runs:
        exact = _exact_quadratic_llc(summary)
        assert summary["bias_correction"] == "richardson" and summary["chains_failed"] == 0
        removed = summary["step_bias"]
        assert removed > 4 * summary["step_bias_mcse"], summary  # there was a bias to remove
        error = abs(summary["llc_mean"] - exact)
        bound = 4 * summary["llc_mcse"] + 0.1 * abs(removed) + 0.005 * exact
        assert error < bound, (summary["target"], summary["llc_mean"], exact, bound)
        assert abs(summary["llc_uncorrected"] - exact) > error, summary


def _exact_quadratic_llc(summary) -> float:
    """d/2 − suppression − drop: exact for a model whose loss is quadratic in w."""
    optimum = summary["optimum"]
    return summary["d"] / 2 - optimum["localizer_suppression"] - optimum["stationarity_drop"]


@pytest.mark.slow
def test_automatic_friction_removes_the_minibatch_heating(results):
    """`alpha: auto` raises α until the heating bound h·tr V/(4α) is 0.5% of λ̂: λ̂ within
    4 MCSE + 1.5% of the exact answer on two seeds (1.5%: that budget plus the symplectic
    step's O((h√c)²) ≤ 1% at h√c ≤ 0.1). At a fixed α = 10 the same runs read high by about
    the bound (it is exact to first order for additive noise on a quadratic) and say so."""
    runs = _get(results, "noisy_momentum")
    automatic, fixed = runs[:len(SEEDS)], runs[len(SEEDS):]
    sghmc = REGISTRY["sghmc"]
    for summary in automatic:
        exact, stats = _exact_quadratic_llc(summary), summary["stats"]
        assert stats["alpha_auto"] and stats["alpha"] > momentum.ALPHA_FLOOR, stats
        assert stats["heating_bound_fraction"] <= sghmc.Settings.heating * 1.001
        assert stats["friction_per_step"] <= 0.1 * 1.001
        error = abs(summary["llc_mean"] - exact)
        assert error < 4 * summary["llc_mcse"] + 0.015 * exact, (summary["llc_mean"], exact)
        assert not any("heats the chain" in w for w in summary["warnings"])
    for summary in fixed:
        exact, stats = _exact_quadratic_llc(summary), summary["stats"]
        assert stats["alpha"] == 10.0 and not stats["alpha_auto"]
        excess = summary["llc_mean"] - exact
        bound = stats["heating_bound"]
        assert 0.6 * bound < excess < 1.2 * bound + 4 * summary["llc_mcse"], (excess, bound)
        assert any("heats the chain" in w and "alpha: auto" in w
                   for w in summary["warnings"]), summary["warnings"]


def test_a_large_friction_step_is_flagged():
    stats = {"mala_acceptance_mean": 0.95, "nonfinite_trace_points": 0}
    assert REGISTRY["sgnht"].warnings({**stats, "friction_per_step": 0.1}) == []
    (warning,) = REGISTRY["sghmc"].warnings({**stats, "friction_per_step": 0.8})
    assert "α·h = 0.8" in warning and "lower step_size or alpha" in warning
