"""Scale table: deep linear networks of d ≈ 10⁴, 10⁵, 10⁶ through the CLI the workflow calls.

    python bench/scale.py                        # every size and sampler (about an hour)
    python bench/scale.py --sizes 1e4 --samplers sgld_rmsprop
    python bench/scale.py --steps 1e6=6000       # a shorter budget where a size needs one
    python bench/scale.py --sizes 4e2 1.6e3 1e4 --samplers nuts sghmc:alpha=100 --merge
    python bench/scale.py --render bench/scale.json   # rewrite the section only, measuring nothing

Each target is a DLN of five equal widths H (four H×H layers), a teacher of rank H/5,
n = 10⁵ Gaussian inputs, noiseless, `lambda-hat build` in float64; each sampler runs with its
registry defaults (`kind:` only, in its registry precision: float32, float64 for HMC/NUTS)
unless `--steps` sets a budget for a size or the sampler is given as `kind:key=value,...`.
The small sizes (d = 400, 1600) have a NUTS reference at the same n, β, γ. One
process at a time with all cores (`--threads`), so a row's time is the machine's, not shared
with another job. Peak memory is the process's own maximum RSS (`os.wait4`). Writes
bench/scale.json and the "Scale" section of bench/results.md (replacing an older one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from results_md import END_GENERATED, RENDER_HELP, generated_by, render, write_section

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WIDTHS = {"4e2": 10, "1.6e3": 20, "1e4": 50, "1e5": 158, "1e6": 500}
"""H per size: d = 4H² = 400, 1600, 10,000, 99,856 and 1,000,000."""
N = 100_000
SAMPLERS = ("sgld", "sgld_rmsprop", "sghmc")
FULL_BATCH = ("nuts", "hmc")
"""Kinds run in float64 (their registry precision)."""
SECTION = "## Scale: deep linear networks of 10⁴–10⁶ parameters"
GENERATED = generated_by("bench/scale.py", "bench/scale.json")


def experiment(sizes, samplers, steps: dict, until: dict | None = None) -> dict:
    targets = {f"dln_{size}": {"model": {"kind": "dln", "widths": [WIDTHS[size]] * 5,
                                         "rank": WIDTHS[size] // 5},
                               "data": {"n": N}, "seed": 0} for size in sizes}
    entries = {}
    for spec in samplers:
        name, entry = sampler_entry(spec, until)
        entries[name] = entry
        for size, budget in steps.items():
            entries[f"{name}_{size}"] = {**entry, "steps": budget}
    return {"experiment": "scale", "posterior": {"beta": "auto", "gamma": 1.0},
            "targets": targets, "samplers": entries}


def sampler_entry(spec: str, until: dict | None = None) -> tuple[str, dict]:
    """`kind` or `kind:key=value,...` (values parsed as YAML), and `until` if given ->
    (entry name, entry)."""
    kind, _, assignments = spec.partition(":")
    entry = {"kind": kind}
    for assignment in filter(None, assignments.split(",")):
        key, value = assignment.split("=")
        entry[key] = yaml.safe_load(value)
    name = "_".join([kind] + [f"{k}{v}" for k, v in entry.items() if k != "kind"])
    if until:
        entry["until"] = until
        name += "_until"
    return name, entry


def run_measured(command: list, x64: bool, log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one CLI process; its output goes to `log`."""
    env = {**os.environ, "JAX_ENABLE_X64": "1" if x64 else "0"}
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed; its log:\n"
                           + log.read_text()[-3000:])
    return wall, usage.ru_maxrss / 1024


def row(size: str, sampler: str, summary: dict, wall: float, rss: float) -> dict:
    """One table row. A step is a minibatch step (pilot included) or, for HMC/NUTS, a draw
    (warmup included; `grad_evals` counts its leapfrog steps)."""
    stats, stopping = summary["stats"], summary["stopping"] or {}
    steps = stopping.get("trace_points", 0) * summary["trace_every"]
    warmup = stats.get("pilot_steps", stats.get("warmup_discarded", 0))
    return {"size": size, "d": summary["d"], "n": summary["n"], "sampler": sampler,
            "kind": summary["kind"], "dtype": summary["dtype"], "steps": steps,
            "budget": stopping.get("budget", 0) * summary["trace_every"],
            "stopped_by": stopping.get("stopped_by"),
            "pilot_steps": warmup, "step_size": stats.get("step_size"),
            "llc": summary["llc_mean"], "mcse": summary["llc_mcse"],
            "true_llc": summary["true_llc"], "rel_error": summary["rel_error"],
            "r_hat": summary["r_hat"], "ess": summary["ess"],
            "grad_evals": summary["grad_evals"],
            "mala_acceptance": stats.get("mala_acceptance_mean"),
            "seconds_per_step": summary["sample_seconds"] / (steps + warmup),
            "sample_seconds": summary["sample_seconds"],
            "compile_seconds": summary["compile_seconds"], "wall_seconds": wall,
            "peak_rss_mb": rss, "status": summary["status"],
            "warnings": summary["warnings"]}


def table(results: dict) -> str:
    lines = [SECTION, "", GENERATED, "",
             f"{results['date']}. Machine: {results['machine']}. Command: `{results['command']}`"
             f" ({results['minutes']:.0f} min). DLN widths [H]×5 (four H×H layers), teacher "
             f"rank H/5, n = {N:,}, noiseless, γ = 1, β = 1/log n; minibatch samplers in float32, "
             "NUTS in float64, 4 chains, one process at a time with both cores. Time per step: "
             "sampling seconds over the steps of all 4 chains (pilot included; for NUTS a "
             "draw, warmup included). vs NUTS: the error against NUTS at the same size, the "
             "finite-n reference (same n, β, γ). Peak RSS: the sample process's. "
             "Build: " + ", ".join(f"d = {b['d']:,} {b['wall_seconds']:.0f} s, "
                                   f"{b['peak_rss_mb']:.0f} MB"
                                   for b in results["builds"].values()) + ".", "",
             "| d | sampler | steps | ms / step | peak RSS | λ̂ ± MCSE | exact λ | rel. error "
             "| vs NUTS | R-hat | ESS | MALA acc. | sampling | total | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    nuts = {r["size"]: r["llc"] for r in results["rows"] if r["kind"] == "nuts"}
    for r in results["rows"]:
        versus = (f"{100 * (r['llc'] / nuts[r['size']] - 1):+.1f}%"
                  if r["size"] in nuts and r["kind"] != "nuts" else "—")
        warmup = "warmup" if r["kind"] in FULL_BATCH else "pilot"
        acceptance = "—" if r["mala_acceptance"] is None else f"{r['mala_acceptance']:.2f}"
        steps = f"{r['steps']:,}"
        if r.get("stopped_by") not in (None, "fixed"):
            steps += f" of {r['budget']:,} ({r['stopped_by']})"
        lines.append(
            f"| {r['d']:,} | {r['sampler']} | {steps} + {r['pilot_steps']:,} {warmup} | "
            f"{1e3 * r['seconds_per_step']:.2f} | {r['peak_rss_mb']:.0f} MB | "
            f"{r['llc']:.1f} ± {r['mcse']:.1f} | {r['true_llc']:g} | {100 * r['rel_error']:+.1f}% "
            f"| {versus} | {r['r_hat']:.3f} | {r['ess']:.0f} | {acceptance} | "
            f"{r['sample_seconds']:.0f} s | {r['wall_seconds']:.0f} s | {r['status']} |")
    lines += ["", END_GENERATED]
    return "\n".join(lines) + "\n"


def merged(old: dict, new: dict) -> dict:
    """The rows of an earlier bench/scale.json that this run did not remeasure, then this
    run's (`--merge`: sizes measured in separate sittings)."""
    done = {(r["size"], r["sampler"]) for r in new["rows"]}
    rows = [r for r in old["rows"] if (r["size"], r["sampler"]) not in done] + new["rows"]
    order, kinds = list(WIDTHS), FULL_BATCH + SAMPLERS
    rows.sort(key=lambda r: (order.index(r["size"]), kinds.index(r["kind"])
                             if r["kind"] in kinds else len(kinds), r["sampler"]))
    return {**new, "rows": rows, "builds": {**old["builds"], **new["builds"]},
            "command": f"{old['command']}; {new['command']}",
            "minutes": old["minutes"] + new["minutes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=list(WIDTHS), choices=list(WIDTHS))
    parser.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    parser.add_argument("--steps", nargs="*", default=[], metavar="SIZE=STEPS",
                        help="a step budget for one size instead of the default")
    parser.add_argument("--until", nargs=2, type=float, metavar=("R_HAT", "ESS"),
                        help="stop each run once its kept draws pass R-hat and ESS (its steps "
                             "are then a budget)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--keep", type=Path, help="keep targets and runs here")
    parser.add_argument("--merge", action="store_true",
                        help="keep bench/scale.json's rows of other sizes and samplers")
    parser.add_argument("--render", type=Path, metavar="JSON", help=RENDER_HELP)
    args = parser.parse_args()
    if args.render:
        return render(SECTION, table, args.render)
    steps = {size: int(float(value)) for size, value in (s.split("=") for s in args.steps)}
    started = time.perf_counter()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lambda-hat-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    config = root / "scale.yaml"
    until = {"r_hat": args.until[0], "ess": int(args.until[1])} if args.until else None
    config.write_text(yaml.safe_dump(experiment(args.sizes, args.samplers, steps, until),
                                     sort_keys=False))
    cli = [sys.executable, "-m", "lambda_hat.cli", "--threads", str(args.threads)]
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(root / "jax-cache"))
    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.platform()}",
               "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
               "builds": {}, "rows": []}
    for size in args.sizes:
        target_dir = root / "targets" / f"dln_{size}"
        wall, rss = run_measured([*cli, "build", "--config", config, "--target",
                                  f"dln_{size}", "--out", target_dir], True,
                                 root / f"build_{size}.log")
        record = json.loads((target_dir / "target.json").read_text())
        results["builds"][size] = {"d": record["d"], "wall_seconds": wall, "peak_rss_mb": rss}
        for spec in args.samplers:
            entry_name, entry = sampler_entry(spec, until)
            name = f"{entry_name}_{size}" if size in steps else entry_name
            out = root / "runs" / f"dln_{size}" / name
            wall, rss = run_measured([*cli, "sample", "--config", config, "--target-dir",
                                      target_dir, "--sampler", name, "--out", out],
                                     entry["kind"] in FULL_BATCH,
                                     root / f"sample_{size}_{name}.log")
            summary = json.loads((out / "summary.json").read_text())
            results["rows"].append(row(size, entry_name, summary, wall, rss))
            print(json.dumps(results["rows"][-1]), flush=True)
    results["minutes"] = (time.perf_counter() - started) / 60
    if args.merge and (BENCH / "scale.json").exists():
        results = merged(json.loads((BENCH / "scale.json").read_text()), results)
    (BENCH / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    write_section(SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
