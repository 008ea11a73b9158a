"""Finite-n reference λ̂ for the DLN targets of the accuracy tests and the coverage bench.

    python bench/finite_n_reference.py --out tests/references/finite_n.json
    python bench/finite_n_reference.py --out /tmp/ref.json --only coverage_regular --scale 0.1

The estimand of a run is the expectation under the localized tempered posterior at the run's
own n, β = 1/log n, γ = 1 and data (target seed), not the asymptotic λ: at finite n the two
differ (docs/theory.md §4), and a test against λ must leave room for that. Here
each target gets one long NUTS run (many chains × many draws, at a higher target acceptance
than the default), so that its MCSE is at most 1/4 of a default run's. NUTS is
Metropolis-adjusted, so its stationary law is the posterior itself: the reference's bias
bound is 0 beyond its MCSE (given converged chains, which R-hat, ESS and the agreement of two
halves of the chains check; divergences are counted). Its MCSE is the larger of the
library's (ESS-based) and the between-chain one (std of the chains' means / √chains), so it
does not rest on one estimator of the autocorrelation.

Also recorded per target: three default-HMC runs (seeds 0, 1, 2; the runs the accuracy test
makes) and the ratio of the reference's MCSE to theirs; the Hessian spectrum of L_n at w*
(for the SGLD discretization-bias bound: docs/theory.md §6.1, a quadratic direction of curvature
c_i = nβh_i + γ has variance 1/(c_i(1 − εc_i/4)) under Euler–Maruyama); and for a
one-layer DLN, whose L_n is exactly quadratic in w, the exact finite-n value
Σ_i ½·nβh_i/(nβh_i + γ), which the NUTS reference must match (a check of the procedure).

Each target runs in its own float64 subprocess (JAX's x64 switch is per process), two at a
time, one XLA thread each; the runs are seeded, so a rerun on the same code gives the same
numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

POSTERIOR = {"beta": "auto", "gamma": 1.0}
# NUTS for the references: the default tree depth (6; deeper trees cost 4× per draw for
# 3× the ESS on the 6-5-4-6 DLN), a longer warmup and a higher target acceptance than the
# defaults (0.95: no divergences on the singular coverage DLN, where 0.9 had 1%).
NUTS = {"kind": "nuts", "warmup": 1000, "target_accept": 0.95}
REFERENCE_SEED = 1000
"""The references' sampler seed: not one the tests or the coverage bench use."""
CHECK_SEEDS = (0, 1, 2)
"""Default-HMC runs whose MCSE the reference's must be ≤ 1/4 of (the accuracy test's seeds)."""
MCSE_RATIO_MAX = 0.25

TARGETS = {
    "accuracy_regular": {
        "entry": {"model": {"kind": "dln", "widths": [6, 4], "rank": 4},
                  "data": {"n": 20000}, "seed": 0},
        "nuts": {"chains": 16, "draws": 4000},
        "used_by": "tests/test_accuracy.py"},
    "accuracy_singular": {
        "entry": {"model": {"kind": "dln", "widths": [6, 5, 4, 6], "rank": 3},
                  "data": {"n": 20000}, "seed": 0},
        "nuts": {"chains": 32, "draws": 6000},
        "used_by": "tests/test_accuracy.py"},
    "coverage_regular": {
        "entry": {"model": {"kind": "dln", "widths": [4, 3], "rank": 3},
                  "data": {"n": 2000}, "seed": 0},
        "nuts": {"chains": 16, "draws": 4000},
        "used_by": "bench/coverage.py"},
    "coverage_singular": {
        "entry": {"model": {"kind": "dln", "widths": [4, 3, 2, 4], "rank": 1},
                  "data": {"n": 2000}, "seed": 0},
        "nuts": {"chains": 32, "draws": 5000},
        "used_by": "bench/coverage.py"},
}
ORDER = ("accuracy_singular", "coverage_singular", "accuracy_regular", "coverage_regular")
"""Longest first, so the two workers finish together."""


def _experiment(runs: dict):
    from lambda_hat.config import Experiment

    raw = {"targets": {"t": {"model": {"kind": "dln", "widths": [1, 1], "rank": 0}}},
           "posterior": POSTERIOR, "samplers": runs}
    return Experiment(raw, "<finite_n_reference>")


def build(name: str, entry: dict, out_dir: Path):
    """Build the target as the pipeline does (float64) and load it back."""
    from lambda_hat.config import Experiment
    from lambda_hat.targets import build_target, load_target, save_target

    raw = {"targets": {name: entry}, "samplers": {"any": {"kind": "hmc"}}}
    record, arrays = build_target(name, Experiment(raw, f"<{name}>").target(name), "reference")
    save_target(out_dir / name, record, arrays)
    return load_target(out_dir / name)


def curvature(target, beta, gamma):
    """(nβ, L_n(w*), ‖∇L_n(w*)‖, Hessian eigenvalues of L_n at w*) in float64."""
    import jax
    import numpy as np

    from lambda_hat.posterior import make_posterior

    posterior, data, loss_star, _ = make_posterior(target, beta, gamma, "float64")
    w_star = data["w_star"]
    gradient = jax.grad(posterior.loss)(w_star, data)
    hessian = jax.hessian(posterior.loss)(w_star, data)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian, np.float64))
    return (posterior.nbeta, float(loss_star), float(np.linalg.norm(np.asarray(gradient))),
            [float(v) for v in np.clip(eigenvalues, 0.0, None)])


def reference_run(target, settings: dict):
    """The long NUTS run: the library's estimate, the between-chain MCSE, halves, stats."""
    import numpy as np

    from lambda_hat.estimator import estimate_llc
    from lambda_hat.runner import sample_run

    started = time.perf_counter()
    summary, traces = sample_run(_experiment({"reference": settings}), "reference", target)
    wall = time.perf_counter() - started
    per_chain = np.asarray([v for v in summary.llc_per_chain if v is not None], np.float64)
    between = float(per_chain.std(ddof=1) / math.sqrt(len(per_chain)))
    loss, burn_in = np.asarray(traces["loss"]), int(traces["burn_in"])
    half = loss.shape[0] // 2
    halves = [estimate_llc(part, burn_in, summary.loss_star, summary.nbeta)
              for part in (loss[:half], loss[half:])]
    halves_gap = abs(halves[0].llc_mean - halves[1].llc_mean)
    halves_se = math.hypot(*(max(h.llc_mcse or 0.0, float(np.std(h.llc_per_chain, ddof=1))
                                 / math.sqrt(len(h.llc_per_chain))) for h in halves))
    stats = summary.stats
    return {
        "llc": summary.llc_mean,
        "mcse": max(summary.llc_mcse or 0.0, between),
        "mcse_library": summary.llc_mcse,
        "mcse_between_chains": between,
        "llc_std_over_chains": summary.llc_std,
        "ess": summary.ess,
        "ess_bulk": summary.ess_bulk,
        "ess_tail": summary.ess_tail,
        "r_hat": summary.r_hat,
        "chains": summary.chains_total,
        "chains_failed": summary.chains_failed,
        "draws_per_chain": summary.draws_per_chain,
        "draws": summary.draws_per_chain * (summary.chains_total - summary.chains_failed),
        "halves": [h.llc_mean for h in halves],
        "halves_agree": bool(halves_gap < 3 * halves_se),
        "divergences": stats.get("divergences"),
        "divergence_fraction": stats.get("divergence_fraction"),
        "acceptance_mean": stats.get("acceptance_mean"),
        "integration_steps_mean": stats.get("integration_steps_mean"),
        "status": summary.status,
        "warnings": list(summary.warnings),
        "settings": settings,
        "grad_evals": summary.grad_evals,
        "wall_seconds": wall,
    }


def default_hmc_runs(target):
    """The accuracy test's runs: default HMC, seeds 0, 1, 2."""
    from lambda_hat.runner import sample_run

    runs = {f"hmc{seed}": {"kind": "hmc", "seed": seed} for seed in CHECK_SEEDS}
    experiment = _experiment(runs)
    out = []
    for name in runs:
        summary, _ = sample_run(experiment, name, target)
        out.append({"seed": summary.seed, "llc": summary.llc_mean, "mcse": summary.llc_mcse,
                    "ess": summary.ess, "r_hat": summary.r_hat, "status": summary.status})
    return out


def worker(name: str, scale: float, out_dir: Path) -> dict:
    """One target, in this (float64) process."""
    from lambda_hat.threads import limit_xla_threads

    limit_xla_threads(1)
    spec = TARGETS[name]
    started = time.perf_counter()
    target = build(name, spec["entry"], out_dir)
    nbeta, loss_star, gradient_norm, eigenvalues = curvature(
        target, POSTERIOR["beta"], POSTERIOR["gamma"])
    gamma = POSTERIOR["gamma"]
    settings = {**NUTS, **spec["nuts"], "seed": REFERENCE_SEED}
    settings["draws"] = max(100, int(settings["draws"] * scale))
    nuts = reference_run(target, settings)
    hmc = default_hmc_runs(target)
    widths = spec["entry"]["model"]["widths"]
    # One layer: L_n is exactly quadratic in w (and ∇L_n(w*) = 0 for the noiseless teacher),
    # so the localized posterior is Gaussian and its nβ E[L_n − L_n(w*)] is exact.
    exact = (sum(0.5 * nbeta * h / (nbeta * h + gamma) for h in eigenvalues)
             if len(widths) == 2 else None)
    hmc_mcse = sorted(run["mcse"] for run in hmc)[len(hmc) // 2]
    record = {
        "target": spec["entry"],
        "used_by": spec["used_by"],
        "target_hash": target.record["hash"],
        "n": target.record["n"],
        "d": target.record["d"],
        "beta": 1.0 / math.log(target.record["n"]),
        "gamma": gamma,
        "nbeta": nbeta,
        "seed": spec["entry"]["seed"],
        "true_llc": target.record["true_llc"],
        "multiplicity": target.record.get("multiplicity"),
        "loss_star": loss_star,
        "grad_norm_at_w_star": gradient_norm,
        "hessian_eigenvalues": eigenvalues,
        "exact_finite_n": exact,
        "nuts": nuts,
        "default_hmc": hmc,
        "default_hmc_median_mcse": hmc_mcse,
        "nuts_mcse_ratio_to_default_hmc": nuts["mcse"] / hmc_mcse,
    }
    if exact is not None:
        # The exact value is the reference; the NUTS run is its check.
        record.update(llc=exact, mcse=0.0, reference="exact Gaussian (one-layer DLN)",
                      nuts_minus_exact_in_mcse=(nuts["llc"] - exact) / nuts["mcse"])
    else:
        record.update(llc=nuts["llc"], mcse=nuts["mcse"], reference="long NUTS run")
    record["mcse_ratio_to_default_hmc"] = record["mcse"] / hmc_mcse
    record["bias_bound"] = 0.0
    record["bias_bound_note"] = (
        "exact: no bias" if exact is not None else
        "NUTS is Metropolis-adjusted (exact stationary law): bias 0 beyond its MCSE, "
        "given converged chains (r_hat, halves_agree, divergences)")
    record["wall_seconds"] = time.perf_counter() - started
    return record


def _git(*args) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def provenance(command: str) -> dict:
    from lambda_hat.artifacts import package_versions

    dirty = _git("status", "--porcelain", "--", "lambda_hat")
    return {"command": command,
            "lambda_hat_commit": _git("rev-parse", "HEAD"),
            "lambda_hat_dirty": bool(dirty),
            "lambda_hat_dirty_files": dirty.splitlines(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "versions": package_versions()}


def run_worker(name: str, scale: float, out_dir: str) -> dict:
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, __file__, "--worker", name, "--scale", str(scale),
               "--tmp", out_dir]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"reference {name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(references: dict) -> str:
    lines = ["| target | n | d | λ (asymptotic) | reference λ̂ | MCSE | source | NUTS λ̂ | "
             "NUTS MCSE | ESS | R-hat | draws | divergences | NUTS MCSE / default HMC's |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | "
             "---: | ---: | ---: |"]
    for name, r in references.items():
        nuts = r["nuts"]
        lines.append(
            f"| {name} | {r['n']} | {r['d']} | {r['true_llc']:g} | {r['llc']:.3f} | "
            f"{r['mcse']:.3f} | {r['reference']} | {nuts['llc']:.3f} | {nuts['mcse']:.3f} | "
            f"{nuts['ess']:.0f} | {nuts['r_hat']:.4f} | {nuts['draws']} | "
            f"{nuts['divergences']} | {r['nuts_mcse_ratio_to_default_hmc']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/references/finite_n.json")
    parser.add_argument("--only", nargs="*", choices=list(TARGETS),
                        help="recompute these targets; the others are kept from --out")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the reference draws (a quick trial of the script)")
    parser.add_argument("--jobs", type=int, default=2, help="targets run at once")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.scale, Path(args.tmp))))
        return 0

    command = "python bench/finite_n_reference.py " + " ".join(
        os.path.relpath(a, REPO) if a.startswith("/") else a for a in sys.argv[1:])
    names = [name for name in ORDER if not args.only or name in args.only]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="finite-n-reference-") as tmp, \
            ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {name: pool.submit(run_worker, name, args.scale, tmp) for name in names}
        computed = {name: future.result() for name, future in futures.items()}
    kept = {}
    if args.only and args.out.exists():
        kept = json.loads(args.out.read_text())["targets"]
    meta = provenance(command.strip())
    for record in computed.values():
        record.update({key: meta[key] for key in ("command", "lambda_hat_commit",
                                                  "lambda_hat_dirty", "date")})
    references = {name: (computed.get(name) or kept[name]) for name in TARGETS
                  if name in computed or name in kept}
    document = {
        "description": (
            "Finite-n references: nβ(E[L_n] − L_n(w*)) under the localized tempered "
            "posterior at the target's own n, β = 1/log n, γ, data seed; use `llc` ± `mcse` "
            "(plus `bias_bound`, 0). Made by bench/finite_n_reference.py; see its docstring."),
        **meta,
        "wall_seconds": time.perf_counter() - started,
        "targets": references,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(table(references))
    problems = []
    for name, r in computed.items():
        nuts = r["nuts"]
        if r["nuts_mcse_ratio_to_default_hmc"] > MCSE_RATIO_MAX:
            problems.append(f"{name}: NUTS MCSE / default HMC's "
                            f"{r['nuts_mcse_ratio_to_default_hmc']:.2f} > {MCSE_RATIO_MAX}: "
                            "raise its draws or chains")
        if (nuts["r_hat"] or 2) > 1.01 or not nuts["halves_agree"]:
            problems.append(f"{name}: not converged (R-hat {nuts['r_hat']}, halves "
                            f"{nuts['halves']})")
        if r.get("exact_finite_n") is not None and abs(r["nuts_minus_exact_in_mcse"]) > 4:
            problems.append(f"{name}: NUTS is {r['nuts_minus_exact_in_mcse']:.1f} MCSE from "
                            "the exact value")
    for line in problems:
        print("WARNING:", line)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
