"""Grids at scale: planning a 1,000-run grid and aggregating 1,000 run summaries.

    python bench/grid.py           # about a minute on 2 cores; writes bench/grid.json and
                                   # the "Grids at scale" section of bench/results.md
    python bench/grid.py --render bench/grid.json   # rewrite the section only, measuring nothing

1. `snakemake -n` of two 1,000-run grids, each from a fresh copy of the workflow: many
   targets (500 DLN targets, 50 n values × 10 replicates, × 2 samplers) and many samplers
   (2 targets × 500 SGLD samplers, 50 step sizes × 10 replicates).
2. `lambda-hat aggregate` (the CLI, start-up included) and the library's `aggregate_runs`
   on 1,000 summaries written for the purpose (no sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
sys.path.insert(0, str(REPO / "tests"))
SECTION = "## Grids at scale (`python bench/grid.py`)"
GENERATED = generated_by("bench/grid.py", "bench/grid.json")

def _dln_targets(n_values: int, replicates: int) -> dict:
    return {"dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
                    "grid": {"data.n": [300 + 100 * i for i in range(n_values)]},
                    "replicates": replicates}}


def _sgld_samplers(step_sizes: int, replicates: int) -> dict:
    return {"sgld": {"kind": "sgld", "steps": 1000,
                     "grid": {"step_size": [1.0e-5 * (i + 1) for i in range(step_sizes)]},
                     "replicates": replicates}}


GRIDS = {
    "many targets": {"experiment": "targets1000", "targets": _dln_targets(50, 10),
                     "samplers": {**_sgld_samplers(1, 1), "hmc": {"kind": "hmc"}}},
    "many samplers": {"experiment": "samplers1000", "targets": _dln_targets(2, 1),
                      "samplers": _sgld_samplers(50, 10)},
}
"""Two 1,000-run grids: 500 targets × 2 samplers, and 2 targets × 500 samplers."""


def timed(command, cwd) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return time.perf_counter() - started, done.stdout


def plan(work: Path, grid: dict) -> tuple[float, int]:
    """(seconds, jobs) of `snakemake -n` of `grid` from a fresh copy of the workflow."""
    for name in ("workflow", "config"):
        shutil.copytree(REPO / name, work / name, symlinks=False)
    (work / "config" / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    seconds, out = timed([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules",
                          "--configfile", "config/grid.yaml"], work)
    totals = [line.split()[1] for line in out.splitlines()
              if line.startswith("total") and len(line.split()) == 2]
    return seconds, int(totals[0])


def summaries(directory: Path, count: int) -> list[Path]:
    from lambda_hat.summary import write_summary
    from records import run_summary

    paths = []
    for index in range(count):
        target, sampler = f"dln.n-{300 + 100 * (index // 100 % 10)}.rep-{index // 10 % 10}", \
            f"sgld.step_size-{index % 10}"
        path = directory / target / sampler / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_summary(path, run_summary(
            target=target, sampler=sampler, llc_mean=4.0 + 0.01 * index, llc_mcse=0.1,
            llc_std=0.2, ess=400.0, r_hat=1.01, grad_evals=2000.0, true_llc=4.5,
            grid_of="dln", grid_point={"target.data.n": 300 + 100 * (index // 100 % 10),
                                       "target.replicate": index // 10 % 10,
                                       "sampler.step_size": 1.0e-5 * (index % 10 + 1)},
            settings={"kind": "sgld", "sweep_of": "sgld", "step_size": 1e-5 * (index % 10 + 1)}))
        paths.append(path)
    return paths


def table(results: dict) -> str:
    lines = [SECTION, "", GENERATED, "",
             f"{results['date']}. Machine: {results['machine']}. Command: "
             f"`{results['command']}`. Two grids of 1,000 runs: 500 DLN targets (50 `data.n` "
             "values × 10 replicates) × 2 samplers, and 2 targets × 500 samplers (50 SGLD step "
             "sizes × 10 replicates).", "",
             "| measure | value | target |", "|---|---|---|",
             *(f"| `snakemake -n`, {name} ({plan['jobs']:,} jobs), fresh copy of the workflow "
               f"| {plan['seconds']:.1f} s | ≤ 10 s |" for name, plan in results["plans"].items()),
             f"| `lambda-hat aggregate` of 1,000 summaries → Parquet (CLI, start-up included) | "
             f"{results['cli_seconds']:.2f} s | ≤ 5 s |",
             f"| the same, library call only | {results['library_seconds']:.2f} s | — |",
             f"| `lambda-hat aggregate` of 1,000 summaries → HTML | "
             f"{results['html_seconds']:.2f} s | — |",
             "", END_GENERATED]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path, metavar="JSON", help=RENDER_HELP)
    args = parser.parse_args()
    if args.render:
        return render(SECTION, table, args.render)
    from lambda_hat.aggregate import aggregate_runs

    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.platform()}",
               "command": " ".join(["python bench/grid.py", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["plans"] = {}
        for index, (name, grid) in enumerate(GRIDS.items()):
            seconds, jobs = plan(tmp / f"work{index}", grid)
            results["plans"][name] = {"seconds": seconds, "jobs": jobs}
            print(f"planning {name}: {jobs} jobs in {seconds:.1f} s", flush=True)
        paths = summaries(tmp / "runs", 1000)
        results["cli_seconds"], _ = timed([sys.executable, "-m", "lambda_hat.cli", "aggregate",
                                           *map(str, paths), "--out", str(tmp / "llc.parquet")],
                                          tmp)
        started = time.perf_counter()
        aggregate_runs(paths, tmp / "again.parquet")
        results["library_seconds"] = time.perf_counter() - started
        results["html_seconds"], _ = timed([sys.executable, "-m", "lambda_hat.cli", "aggregate",
                                            *map(str, paths), "--out", str(tmp / "llc.html")],
                                           tmp)
    (BENCH / "grid.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    write_section(SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
