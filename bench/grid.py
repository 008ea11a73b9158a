"""Grids at scale: planning a 1,000-run grid and aggregating 1,000 run summaries.

    python bench/grid.py           # about a minute on 2 cores; prints a markdown table

1. `snakemake -n` of a grid of 100 targets (10 n values × 10 replicates) × 10 samplers (a
   step-size grid), from a fresh copy of the workflow: the DAG of 1,000 runs (≈ 2,200 jobs).
2. `lambda-hat aggregate` (the CLI, start-up included) and the library's `aggregate_runs`
   on 1,000 summaries written for the purpose (no sampling).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

GRID = {
    "experiment": "grid1000",
    "targets": {"dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
                        "grid": {"data.n": [300 + 100 * i for i in range(10)]},
                        "replicates": 10}},
    "samplers": {"sgld": {"kind": "sgld", "steps": 1000,
                          "grid": {"step_size": [1.0e-5 * (i + 1) for i in range(10)]}}},
}


def timed(command, cwd) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return time.perf_counter() - started, done.stdout


def plan(work: Path) -> tuple[float, int]:
    for name in ("workflow", "config"):
        shutil.copytree(REPO / name, work / name, symlinks=False)
    (work / "config" / "grid1000.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    seconds, out = timed([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules",
                          "--configfile", "config/grid1000.yaml"], work)
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


def main() -> None:
    from lambda_hat.aggregate import aggregate_runs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plan_seconds, jobs = plan(tmp / "work")
        paths = summaries(tmp / "runs", 1000)
        cli_seconds, _ = timed([sys.executable, "-m", "lambda_hat.cli", "aggregate",
                                *map(str, paths), "--out", str(tmp / "llc.parquet")], tmp)
        started = time.perf_counter()
        aggregate_runs(paths, tmp / "again.parquet")
        library_seconds = time.perf_counter() - started
        html_seconds, _ = timed([sys.executable, "-m", "lambda_hat.cli", "aggregate",
                                 *map(str, paths), "--out", str(tmp / "llc.html")], tmp)
    print("| measure | value | target |\n|---|---|---|")
    print(f"| `snakemake -n` of a 1,000-run grid ({jobs} jobs) | {plan_seconds:.1f} s | ≤ 10 s |")
    print(f"| `lambda-hat aggregate` of 1,000 summaries → Parquet (CLI, start-up included) | "
          f"{cli_seconds:.2f} s | ≤ 5 s |")
    print(f"| the same, library call only | {library_seconds:.2f} s | — |")
    print(f"| `lambda-hat aggregate` of 1,000 summaries → HTML | {html_seconds:.2f} s | — |")


if __name__ == "__main__":
    main()
