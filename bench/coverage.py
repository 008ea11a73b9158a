"""Coverage of λ̂ ± MCSE: every sampler kind at its default settings, R seeds per target.

    python bench/coverage.py                  # R = 10: writes bench/coverage.json, docs/coverage.md
                                              # (minutes; the last run's wall time: docs/coverage.md)
    python bench/coverage.py --quick          # R = 3 (~4-7 min), prints only (unless --json/--markdown)
    python bench/coverage.py --replicates 20 --kinds sgld hmc
    python bench/coverage.py --render bench/coverage.json   # rewrite docs/coverage.md only

For each kind and target, R runs that differ only in the sampler seed are compared with the
target's finite-n answer: exact for the Gaussian potential (the `quadratic` target:
nβ E[L_n − L_n(w*)] = (d/2)·nβ/(nβ + γ)) and for the one-layer (regular) DLN, whose L_n is
exactly quadratic; the long NUTS run of bench/finite_n_reference.py (stored in
tests/references/finite_n.json) for the singular DLN. Per kind and target: the mean bias and
its standard error over the replicates, the coverage (the fraction of runs whose interval
λ̂ ± 2·MCSE, widened by the reference's own MCSE, holds the reference: 95% for a
calibrated, unbiased sampler), the mean MCSE against the replicates' actual spread, and the
coverage once the sampler's bias is removed (each run against the reference plus the mean
bias of the other R − 1 runs): a biased sampler with an honest MCSE recovers ~95% there.

Runs happen in-process (`lambda_hat.runner.sample_run`, as a job runs them), one subprocess
per kind with JAX's precision set for its dtype and one XLA thread, `--jobs` (2) at a time;
seeds are fixed (replicate r uses sampler seed 100 + r), so a rerun on the same code and
machine gives the same numbers.
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
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCES = REPO / "tests" / "references" / "finite_n.json"
POSTERIOR = {"beta": "auto", "gamma": 1.0}
SEED_BASE = 100
"""Replicate r runs with sampler seed SEED_BASE + r (not the tests' 0-2 nor the references')."""
REPLICATES = 10
QUICK_REPLICATES = 3
COVERAGE_MIN = 0.90
INTERVAL = 2.0
"""Half-width of the interval in MCSE: 2 → 95.4% nominal coverage."""

KINDS = ("hmc", "nuts", "mclmc", "sgld", "sgld_rmsprop", "sgld_adam", "sghmc", "sgnht", "vi")
LONGEST_FIRST = ("sghmc", "sgld", "sgnht", "sgld_adam", "sgld_rmsprop", "vi", "nuts", "mclmc",
                 "hmc")
"""The order the kinds start in (measured: 240 s each for the SGLD family at R = 10 on a
busy 2-core machine, 200 s VI and NUTS, 170 s MCLMC, 40 s HMC), so both workers end together."""
SGLD_FAMILY = ("sgld", "sgld_rmsprop", "sgld_adam", "sghmc", "sgnht")

TARGETS = {
    "dln_regular": {"entry": {"model": {"kind": "dln", "widths": [4, 3], "rank": 3},
                              "data": {"n": 2000}, "seed": 0},
                    "reference": "coverage_regular"},
    "dln_singular": {"entry": {"model": {"kind": "dln", "widths": [4, 3, 2, 4], "rank": 1},
                               "data": {"n": 2000}, "seed": 0},
                     "reference": "coverage_singular"},
    "gaussian": {"entry": {"model": {"kind": "quadratic", "d": 10}, "data": {"n": 2000},
                           "seed": 0},
                 "reference": None},
    "funnel": {"entry": {"model": {"kind": "python", "entry": "examples/funnel.py:make_target"},
                         "seed": 0},
               "reference": "quadrature", "llc": 1 / 6},
}
"""`reference`: a key of tests/references/finite_n.json, None for the Gaussian's closed form,
or `quadrature` (the funnel's `finite_n_reference`, computed on the built data); `llc`: the
asymptotic λ where the target record has none."""


# --- in the subprocesses -------------------------------------------------------------------

def _limit_threads() -> None:
    from lambda_hat.threads import limit_xla_threads

    limit_xla_threads(1)


def _funnel():
    import importlib.util

    spec = importlib.util.spec_from_file_location("funnel", REPO / "examples" / "funnel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_all(out_dir: str, records_path: str) -> None:
    """Build every target (float64, as the pipeline's build jobs do); write their records."""
    from lambda_hat.config import Experiment
    from lambda_hat.targets import build_target, save_target

    records = {}
    for name, spec in TARGETS.items():
        raw = {"targets": {name: spec["entry"]}, "samplers": {"any": {"kind": "hmc"}}}
        record, arrays = build_target(name, Experiment(raw, f"<{name}>").target(name),
                                      "coverage")
        save_target(Path(out_dir) / name, record, arrays)
        records[name] = {key: record[key] for key in ("hash", "n", "d", "true_llc")}
        if spec["reference"] == "quadrature":
            records[name]["quadrature"] = _funnel().finite_n_reference(
                arrays["X"], arrays["Y"], record["n"] / math.log(record["n"]),
                POSTERIOR["gamma"])
    Path(records_path).write_text(json.dumps(records))


def run_kind(kind: str, targets: list[str], seeds: list[int], target_root: str,
             results_path: str) -> None:
    """Every (target, seed) run of one kind, in this process; each record is appended to
    `results_path` as a JSON line as soon as it exists (a crash keeps the finished ones)."""
    from lambda_hat.config import Experiment
    from lambda_hat.runner import sample_run
    from lambda_hat.targets import load_target

    for target_name in targets:
        target = load_target(Path(target_root) / target_name)
        for seed in seeds:
            name = f"{kind}_{seed}"
            raw = {"targets": {"t": {"model": {"kind": "dln", "widths": [1, 1], "rank": 0}}},
                   "posterior": POSTERIOR, "samplers": {name: {"kind": kind, "seed": seed}}}
            record = {"kind": kind, "target": target_name, "seed": seed}
            started = time.perf_counter()
            try:
                summary, _ = sample_run(Experiment(raw, "<coverage>"), name, target)
                stats = summary.stats
                record.update(
                    llc=summary.llc_mean, mcse=summary.llc_mcse, llc_std=summary.llc_std,
                    ess=summary.ess, r_hat=summary.r_hat, status=summary.status,
                    warnings=list(summary.warnings), chains_failed=summary.chains_failed,
                    nbeta=summary.nbeta, dtype=summary.dtype,
                    step_size=stats.get("step_size"),
                    llc_uncorrected=summary.llc_uncorrected, step_bias=summary.step_bias,
                    compile_seconds=summary.compile_seconds,
                    sample_seconds=summary.sample_seconds)
            except Exception as exc:  # noqa: BLE001 - a failed run is a result here
                record.update(llc=None, mcse=None, status="error",
                              error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                traceback.print_exc()
            record["wall_seconds"] = time.perf_counter() - started
            with open(results_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"{kind:13s} {target_name:13s} seed {seed:4d}: λ̂ = {record['llc']} "
                  f"({record['status']}, {record['wall_seconds']:.1f} s)", file=sys.stderr,
                  flush=True)


# --- in the driver --------------------------------------------------------------------------

def dtype_of(kind: str) -> str:
    from lambda_hat.samplers import REGISTRY

    return REGISTRY[kind].Settings.dtype


def subprocess_call(function: str, dtype: str, kwargs: dict, log_path: Path,
                    timeout: float) -> None:
    env = {**os.environ, "JAX_ENABLE_X64": "1" if dtype == "float64" else "0",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    request = json.dumps({"function": function, "kwargs": kwargs})
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, __file__, "--call", request], env=env,
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout)
    if done.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{function} ({dtype}) exited with {done.returncode}:\n{tail}")


def load_references(records: dict) -> dict:
    """{target: (reference, its MCSE, source)}; the DLNs' from the stored NUTS references,
    refused when the built target is not the one the reference was computed on."""
    stored = json.loads(REFERENCES.read_text())["targets"] if REFERENCES.exists() else {}
    out = {}
    for name, spec in TARGETS.items():
        record = records[name]
        if spec["reference"] == "quadrature":
            out[name] = {"llc": record["quadrature"], "mcse": 0.0, "bias_bound": 0.0,
                         "source": "quadrature: w₁ integrated in closed form, w₂ on a grid "
                                   "(examples/funnel.py, checked in tests/test_remediation.py)"}
            continue
        if spec["reference"] is None:
            model = spec["entry"]["model"]
            n = record["n"]
            nbeta = n / math.log(n)
            exact = 0.5 * model["d"] * nbeta / (nbeta + POSTERIOR["gamma"])
            out[name] = {"llc": exact, "mcse": 0.0, "bias_bound": 0.0,
                         "source": "exact: (d/2)·nβ/(nβ + γ)"}
            continue
        entry = stored.get(spec["reference"])
        if entry is None:
            raise SystemExit(f"{REFERENCES} has no {spec['reference']!r}: run "
                             "python bench/finite_n_reference.py first")
        if entry["target_hash"] != record["hash"] or entry["target"] != spec["entry"]:
            raise SystemExit(f"target {name} is not the one {REFERENCES}:{spec['reference']} "
                             "was computed on: rerun bench/finite_n_reference.py")
        out[name] = {"llc": entry["llc"], "mcse": entry["mcse"],
                     "bias_bound": entry["bias_bound"],
                     "source": f"{entry['reference']} ({REFERENCES.relative_to(REPO)}: "
                               f"{spec['reference']}, {entry['date']}, "
                               f"{entry['lambda_hat_commit'][:10]})",
                     "hessian_eigenvalues": entry["hessian_eigenvalues"],
                     "nbeta": entry["nbeta"], "gamma": entry["gamma"]}
    return out


def predicted_sgld_bias(reference: dict, step_size: float, d: int | None = None) -> float:
    """Euler–Maruyama's bias of nβ E[ΔL] on the quadratic directions (docs/theory.md §6.1): a
    direction of curvature c = nβh + γ has variance 1/(c(1 − εc/4)) instead of 1/c."""
    if "hessian_eigenvalues" in reference:
        nbeta, gamma, hs = reference["nbeta"], reference["gamma"], reference["hessian_eigenvalues"]
    else:  # the Gaussian potential: d directions of curvature 1
        nbeta, gamma, hs = reference["nbeta"], reference["gamma"], [1.0] * d
    total = 0.0
    for h in hs:
        c = nbeta * h + gamma
        total += 0.5 * (nbeta * h / c) * (1 / (1 - step_size * c / 4) - 1)
    return total


def aggregate(runs: list[dict], reference: dict) -> dict:
    ref, ref_mcse = reference["llc"], reference["mcse"]
    total = len(runs)
    good = [r for r in runs if r.get("llc") is not None and r.get("mcse") is not None
            and math.isfinite(r["llc"]) and math.isfinite(r["mcse"])]
    values = [r["llc"] for r in good]
    k = len(values)
    mean = sum(values) / k if k else None
    sd = (math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) if k > 1 else None)
    half = [INTERVAL * math.hypot(r["mcse"], ref_mcse) for r in good]
    covered = sum(abs(r["llc"] - ref) <= w for r, w in zip(good, half))
    # Bias removed: each run against ref + the mean bias of the other runs (leave-one-out,
    # so a run does not centre its own interval), widened by that mean's standard error.
    corrected = None
    if k >= 3:
        hits = 0
        for i, r in enumerate(good):
            others = values[:i] + values[i + 1:]
            centre = sum(others) / len(others)
            spread = math.sqrt(sum((v - centre) ** 2 for v in others) / (len(others) - 1))
            width = INTERVAL * math.sqrt(r["mcse"] ** 2 + spread ** 2 / len(others))
            hits += abs(r["llc"] - centre) <= width
        corrected = hits / total
    mean_mcse = sum(r["mcse"] for r in good) / k if k else None
    statuses = {s: sum(r["status"] == s for r in runs) for s in ("ok", "warning", "failed",
                                                                 "error")}
    return {
        "replicates": total,
        "finite": k,
        "reference": ref,
        "reference_mcse": ref_mcse,
        "mean": mean,
        "bias": None if mean is None else mean - ref,
        "bias_se": None if sd is None else math.sqrt(sd ** 2 / k + ref_mcse ** 2),
        "relative_bias": None if mean is None or not ref else (mean - ref) / ref,
        "coverage": covered / total if total else None,
        "coverage_bias_corrected": corrected,
        "mean_mcse": mean_mcse,
        "sd_over_replicates": sd,
        "sd_over_mean_mcse": (sd / mean_mcse) if sd is not None and mean_mcse else None,
        "status_counts": statuses,
        "mean_wall_seconds": sum(r["wall_seconds"] for r in runs) / total if total else None,
    }


def _fmt(value, spec: str, none: str = "—") -> str:
    return none if value is None else format(value, spec)


def markdown_table(cells: dict, kinds: list[str], targets: list[str]) -> str:
    lines = ["| sampler | target | reference | mean λ̂ | bias ± SE | bias % | coverage | "
             "coverage, bias removed | mean MCSE | SD over runs | SD / MCSE | ok runs | "
             "s / run |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
             "---: | ---: |"]
    for kind in kinds:
        for target in targets:
            c = cells.get(f"{kind}/{target}")
            if c is None:
                continue
            low = c["coverage"] is not None and c["coverage"] < COVERAGE_MIN
            mark = " **(< 90%)**" if low else ""
            lines.append(
                f"| {kind} | {target} | {c['reference']:.3f} | {_fmt(c['mean'], '.3f')} | "
                f"{_fmt(c['bias'], '+.3f')} ± {_fmt(c['bias_se'], '.3f')} | "
                f"{_fmt(None if c['relative_bias'] is None else 100 * c['relative_bias'], '+.1f')} | "
                f"{_fmt(None if c['coverage'] is None else 100 * c['coverage'], '.0f')}%{mark} | "
                f"{_fmt(None if c['coverage_bias_corrected'] is None else 100 * c['coverage_bias_corrected'], '.0f')}% | "
                f"{_fmt(c['mean_mcse'], '.3f')} | {_fmt(c['sd_over_replicates'], '.3f')} | "
                f"{_fmt(c['sd_over_mean_mcse'], '.2f')} | "
                f"{c['status_counts']['ok']}/{c['replicates']} | "
                f"{_fmt(c['mean_wall_seconds'], '.1f')} |")
    return "\n".join(lines)


def _percent(fraction) -> str:
    return "—: no finite run" if fraction is None else f"{100 * fraction:+.1f}%"


def summary_lines(cells: dict, kinds: list[str], targets: list[str]) -> list[str]:
    lines = []
    for kind in kinds:
        row = [cells[f"{kind}/{t}"] for t in targets if f"{kind}/{t}" in cells]
        if not row:
            continue
        cover = [c["coverage"] for c in row]
        fixed = [c["coverage_bias_corrected"] for c in row]
        low = [t for t, c in zip(targets, row) if c["coverage"] is None
               or c["coverage"] < COVERAGE_MIN]
        parts = ", ".join(f"{t} {100 * c['coverage']:.0f}% (bias {_percent(c['relative_bias'])})"
                          for t, c in zip(targets, row))
        corrected = ", ".join("—" if v is None else f"{100 * v:.0f}%" for v in fixed)
        flag = f"  BELOW {COVERAGE_MIN:.0%} on {', '.join(low)}" if low else "  ok"
        lines.append(f"{kind}: coverage {parts}; bias removed {corrected};"
                     f" min {100 * min(c for c in cover if c is not None):.0f}%{flag}")
    return lines


def _mean_se(values: list[float]) -> tuple[float | None, float | None]:
    if len(values) < 2:
        return (values[0] if values else None), None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                           / len(values))


def sgld_bias_table(cells: dict, runs: list[dict], references: dict, records: dict) -> str:
    """Plain SGLD: the uncorrected bias against the Euler–Maruyama prediction, what
    Richardson extrapolation removed, and what is left (the corrected λ̂'s bias)."""
    lines = ["| target | step ε | predicted bias (quadratic directions) | uncorrected bias ± SE "
             "| removed by extrapolation | left ± SE |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for target, reference in references.items():
        cell = cells.get(f"sgld/{target}")
        mine = [r for r in runs if r["kind"] == "sgld" and r["target"] == target
                and r.get("llc_uncorrected") is not None and r.get("step_bias") is not None
                and math.isfinite(r["llc_uncorrected"])]
        steps = [r["step_size"] for r in runs if r["kind"] == "sgld" and r["target"] == target
                 and r.get("step_size")]
        if cell is None or not steps or TARGETS[target]["reference"] == "quadrature":
            continue  # the funnel has no quadratic part to predict from
        eps = sum(steps) / len(steps)
        ref = {**reference}
        if "nbeta" not in ref:
            n = records[target]["n"]
            ref.update(nbeta=n / math.log(n), gamma=POSTERIOR["gamma"])
        predicted = predicted_sgld_bias(ref, eps, d=records[target]["d"])
        raw, raw_se = _mean_se([r["llc_uncorrected"] - reference["llc"] for r in mine])
        removed, _ = _mean_se([r["step_bias"] for r in mine])
        lines.append(f"| {target} | {eps:.3g} | {predicted:+.3f} | "
                     f"{_fmt(raw, '+.3f')} ± {_fmt(raw_se, '.3f')} | {_fmt(removed, '+.3f')} | "
                     f"{_fmt(cell['bias'], '+.3f')} ± {_fmt(cell['bias_se'], '.3f')} |")
    return "\n".join(lines)


def chance_below(replicates: int, p: float = 0.9545) -> float:
    """P(coverage < COVERAGE_MIN) for a calibrated sampler: binomial(R, p) hits."""
    return sum(math.comb(replicates, k) * p ** k * (1 - p) ** (replicates - k)
               for k in range(replicates + 1) if k / replicates < COVERAGE_MIN)


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def document(meta: dict, cells: dict, runs: list[dict], references: dict, records: dict,
             kinds: list[str], targets: list[str]) -> str:
    ref_lines = "\n".join(
        f"| {t} | `{json.dumps(TARGETS[t]['entry']['model'])}`, n = {records[t]['n']} | "
        f"{records[t]['true_llc'] or TARGETS[t].get('llc'):.4g} | "
        f"{references[t]['llc']:.4f} ± "
        f"{references[t]['mcse']:.4f} | {references[t]['source']} |" for t in targets)
    dirty = " (with uncommitted changes to lambda_hat/)" if meta["lambda_hat_dirty"] else ""
    return f"""# Coverage of λ̂ ± MCSE per sampler (default settings)

<!-- generated by bench/coverage.py from bench/coverage.json: do not edit -->

- command: `{meta['command']}` (raw numbers: `bench/coverage.json`)
- date: {meta['date']}; lambda_hat commit `{meta['lambda_hat_commit']}`{dirty}
- machine: {meta['machine']}; wall time {meta['wall_seconds']:.0f} s
- {meta['replicates']} replicate runs per sampler and target, sampler seeds
  {SEED_BASE}–{SEED_BASE + meta['replicates'] - 1}

Rerun after any change to a sampler, its defaults or the estimator's MCSE. Every run uses
the sampler's defaults (4 chains; docs/samplers.md) on the localized tempered posterior with
β = 1/log n, γ = 1. A run's "interval" is λ̂ ± 2·√(MCSE² + MCSE_ref²): it holds the
reference in 95% of runs for an unbiased sampler whose MCSE is right.

## References

| target | model | λ (asymptotic) | finite-n reference | source |
| --- | --- | ---: | ---: | --- |
{ref_lines}

The one-layer DLN's L_n is exactly quadratic in w, so its localized posterior is Gaussian
and nβ E[L_n − L_n(w*)] = Σ_i ½·nβh_i/(nβh_i + γ) over the Hessian's eigenvalues h_i is
exact (the long NUTS run agrees with it: tests/references/finite_n.json). The singular DLN's
reference is that NUTS run (bias bound 0 beyond its MCSE: NUTS is Metropolis-adjusted).
Gaussian: L_n = ½‖w − w*‖², every direction of curvature 1. Funnel: y = x·w₁·w₂³ + noise
with w* = 0 (examples/funnel.py), a singularity's funnel-shaped posterior; given w₂, L_n is
quadratic in w₁, so the reference is a one-dimensional quadrature (no sampling error).

## Columns

- **reference**: the finite-n answer above. **mean λ̂**: over the replicates.
- **bias ± SE**: mean λ̂ − reference, ± the standard error of that mean (the replicates' SD
  / √R, combined with the reference's MCSE). **bias %**: relative to the reference.
- **coverage**: fraction of the R runs whose interval holds the reference (a failed run
  counts as a miss). Nominal 95.4%; with R = {meta['replicates']} a calibrated, unbiased
  sampler still shows < 90% in {100 * chance_below(meta['replicates']):.0f}% of cells (binomial), so one
  low cell is weak evidence, a low row strong.
  **(< 90%)** marks cells below 90%.
- **coverage, bias removed**: the same, with each run compared with reference + the mean
  bias of the *other* R − 1 runs (interval widened by that mean's SE). It separates the two
  failure modes: low coverage but ~95% here = a biased sampler with an honest MCSE
  (the SGLD family's step-size bias); low here too = the MCSE understates the run's error.
- **mean MCSE**, **SD over runs**: the reported MCSE against the actual spread of λ̂ across
  seeds; **SD / MCSE** ≈ 1 when the MCSE is calibrated, > 1 when it is too small.
- **ok runs**: runs with status `ok` (no warning). **s / run**: wall seconds per run
  (compilation included; runs of one kind share a process, so later ones hit the caches).

## Results

{markdown_table(cells, kinds, targets)}

Per sampler:

```
{chr(10).join(summary_lines(cells, kinds, targets))}
```

## Plain SGLD's step-size bias, and what extrapolation leaves

The SGLD family's λ̂ above is Richardson's 2·λ̂(ε/2) − λ̂(ε) (`bias_correction: richardson`,
the default; docs/theory.md §6.4). Its chains' own λ̂(ε) is kept as `llc_uncorrected`.
Euler–Maruyama inflates the variance of a quadratic direction of curvature c = nβh + γ by
1/(1 − εc/4) (docs/theory.md §6.1), so the predicted uncorrected bias is
Σ_i ½(nβh_i/c_i)·(1/(1 − εc_i/4) − 1) over the Hessian's eigenvalues at w* (exact for the
Gaussian and the one-layer DLN apart from minibatch noise; the quadratic part only for the
singular DLN). "Removed" is the runs' mean `step_bias`, λ̂(ε) − λ̂; "left" the corrected
λ̂'s bias from the table above.

{sgld_bias_table(cells, runs, references, records)}

<!-- end generated -->
"""


def render(json_path: Path, markdown: Path) -> int:
    """The Markdown page and the printed table of a saved run, without sampling."""
    saved = json.loads(json_path.read_text())
    meta = {key: saved[key] for key in ("command", "date", "lambda_hat_commit",
                                        "lambda_hat_dirty", "machine", "replicates",
                                        "wall_seconds")}
    targets = list(saved["targets"])
    kinds = [k for k in KINDS if any(c.startswith(f"{k}/") for c in saved["cells"])]
    references = saved["references"]
    stored = json.loads(REFERENCES.read_text())["targets"]
    records = saved.get("records") or {  # JSONs made before records were stored
        t: {"n": e["data"]["n"],
            **({"d": e["model"]["d"], "true_llc": e["model"]["d"] / 2}
               if e["model"]["kind"] == "quadratic" else
               {k: stored[TARGETS[t]["reference"]][k] for k in ("d", "true_llc")})}
        for t, e in saved["targets"].items()}
    for name, reference in references.items():  # the spectra the SGLD table needs
        if TARGETS[name]["reference"] in stored:
            reference["hessian_eigenvalues"] = stored[TARGETS[name]["reference"]][
                "hessian_eigenvalues"]
    print(markdown_table(saved["cells"], kinds, targets))
    for line in summary_lines(saved["cells"], kinds, targets):
        print(line)
    markdown.write_text(document(meta, saved["cells"], saved["runs"], references, records,
                                 kinds, targets))
    print(f"wrote {markdown}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, help=f"R (default {REPLICATES})")
    parser.add_argument("--quick", action="store_true",
                        help=f"R = {QUICK_REPLICATES}; writes files only where --json / "
                             "--markdown say")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--jobs", type=int, default=2, help="subprocesses at once")
    parser.add_argument("--json", type=Path, help="default bench/coverage.json (not --quick)")
    parser.add_argument("--markdown", type=Path, help="default docs/coverage.md (not --quick)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per kind")
    parser.add_argument("--cache-dir", type=Path,
                        help="JAX compilation cache to reuse (default: a fresh one, so the "
                             "wall time is a cold run's)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rewrite --markdown (docs/coverage.md) from a saved JSON")
    parser.add_argument("--call", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.call:
        _limit_threads()
        request = json.loads(args.call)
        globals()[request["function"]](**request["kwargs"])
        return 0

    if args.render:
        return render(args.render, args.markdown or REPO / "docs" / "coverage.md")
    replicates = args.replicates or (QUICK_REPLICATES if args.quick else REPLICATES)
    if not args.quick:
        args.json = args.json or REPO / "bench" / "coverage.json"
        args.markdown = args.markdown or REPO / "docs" / "coverage.md"
    seeds = [SEED_BASE + r for r in range(replicates)]
    kinds = [k for k in LONGEST_FIRST if k in args.kinds]
    command = "python bench/coverage.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lambda-hat-coverage-") as tmp:
        tmp = Path(tmp)
        env_cache = {"JAX_COMPILATION_CACHE_DIR": str(args.cache_dir or tmp / "jax-cache"),
                     "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
        os.environ.update(env_cache)
        records_path = tmp / "records.json"
        subprocess_call("build_all", "float64", {"out_dir": str(tmp / "targets"),
                                                 "records_path": str(records_path)},
                        tmp / "build.log", args.timeout)
        records = json.loads(records_path.read_text())
        references = load_references(records)
        print(f"built {len(records)} targets in {time.perf_counter() - started:.0f} s; "
              f"{len(kinds)} kinds × {len(args.targets)} targets × {replicates} seeds",
              flush=True)

        def one(kind):
            results = tmp / f"{kind}.jsonl"
            error = None
            try:
                subprocess_call("run_kind", dtype_of(kind), {
                    "kind": kind, "targets": args.targets, "seeds": seeds,
                    "target_root": str(tmp / "targets"), "results_path": str(results)},
                    tmp / f"{kind}.log", args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                error = str(exc)
            done = ([json.loads(line) for line in results.read_text().splitlines()]
                    if results.exists() else [])
            return kind, done, error

        runs, errors = [], {}
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(one, kind) for kind in kinds]):
                kind, done, error = future.result()
                runs.extend(done)
                if error:
                    errors[kind] = error
                    print(f"{kind}: FAILED after {len(done)} runs:\n{error}", flush=True)
                print(f"{kind}: {len(done)} runs, {time.perf_counter() - started:.0f} s "
                      "elapsed", flush=True)
    # A run a crashed process never made is a miss, not a gap.
    for kind in errors:
        for target in args.targets:
            for seed in seeds:
                if not any(r["kind"] == kind and r["target"] == target and r["seed"] == seed
                           for r in runs):
                    runs.append({"kind": kind, "target": target, "seed": seed, "llc": None,
                                 "mcse": None, "status": "error", "wall_seconds": 0.0,
                                 "error": "process failed before this run"})
    order = {k: i for i, k in enumerate(KINDS)}
    runs.sort(key=lambda r: (order[r["kind"]], list(TARGETS).index(r["target"]), r["seed"]))
    kinds_shown = [k for k in KINDS if k in args.kinds]
    cells = {}
    for kind in kinds_shown:
        for target in args.targets:
            mine = [r for r in runs if r["kind"] == kind and r["target"] == target]
            if mine:
                cells[f"{kind}/{target}"] = aggregate(mine, references[target])
    wall = time.perf_counter() - started
    meta = {"command": command.strip(), "date": datetime.now(timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"),
            "lambda_hat_commit": git("rev-parse", "HEAD"),
            "lambda_hat_dirty": bool(git("status", "--porcelain", "--", "lambda_hat")),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.jobs} jobs",
            "replicates": replicates, "seeds": seeds, "wall_seconds": wall,
            "interval_mcse": INTERVAL, "coverage_min": COVERAGE_MIN}
    print()
    print(markdown_table(cells, kinds_shown, args.targets))
    print()
    for line in summary_lines(cells, kinds_shown, args.targets):
        print(line)
    print(f"\n{len(runs)} runs in {wall:.0f} s")
    if args.json:
        public_refs = {t: {k: v for k, v in r.items() if k != "hessian_eigenvalues"}
                       for t, r in references.items()}
        args.json.write_text(json.dumps({**meta, "targets": {t: TARGETS[t]["entry"]
                                                              for t in args.targets},
                                         "records": records, "references": public_refs,
                                         "cells": cells, "errors": errors, "runs": runs},
                                        indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(document(meta, cells, runs, references, records,
                                          kinds_shown, args.targets))
        print(f"wrote {args.markdown}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
