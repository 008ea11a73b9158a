"""Interruption and determinism through Snakemake itself.

A SIGKILL of the whole Snakemake process group (a crashed login node, a killed allocation)
while a sample job runs must leave no output that looks complete; a plain rerun refuses and
names the incomplete job; after `--unlock` (the killed run's lock remains), a run with
`--rerun-incomplete` redoes exactly the interrupted work.
Results must not depend on --cores.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNS = Path("results/smoke/runs/dln_small")
# The runs and their table: what the kill interrupts and the comparison reads (the plots and
# exports would only add jobs after the sampling).
TABLE = "results/smoke/llc.parquet"


def workspace(root: Path, jax_cache_dir: Path) -> Path:
    root.mkdir(parents=True)
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, root / part)  # follows the schema's symlink
    (root / ".jax_cache").symlink_to(jax_cache_dir, target_is_directory=True)
    return root


def snakemake_command(*args) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args, "--configfile", "config/smoke.yaml"]


def snakemake(root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(*args), cwd=root, capture_output=True, text=True,
                          timeout=900)


def estimates(root: Path) -> dict:
    table = pd.read_parquet(root / "results" / "smoke" / "llc.parquet")
    return {(row.target, row.sampler): row.llc_mean for row in table.itertuples()}


def planned(output: str) -> list[str]:
    """The rules of the jobs a dry run lists (indented: a job of a group)."""
    return sorted(re.findall(r"^\s*(?:local)?rule (\w+):$", output, flags=re.MULTILINE))


def test_sigkill_mid_sample_then_rerun_incomplete(tmp_path, jax_cache_dir):
    killed = workspace(tmp_path / "killed", jax_cache_dir)
    job = subprocess.Popen(snakemake_command(TABLE, "--cores", "1"), cwd=killed,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    running = None
    deadline = time.monotonic() + 300
    while running is None and time.monotonic() < deadline and job.poll() is None:
        for log in (killed / "logs" / "smoke" / "sample" / "dln_small").glob("*.log"):
            if not (killed / RUNS / log.stem / "summary.json").exists():
                running = log.stem
        time.sleep(0.05)
    assert running is not None, "no sample job was seen running"
    time.sleep(1.0)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)

    run_dir = killed / RUNS / running
    assert not (run_dir / "summary.json").exists()
    assert not (run_dir / "trace.npz").exists()

    blocked = snakemake(killed, TABLE, "--cores", "2")  # without the flag: refused, not guessed
    assert blocked.returncode != 0
    message = blocked.stdout + blocked.stderr
    assert "--rerun-incomplete" in message
    assert f"Incomplete files:\n{RUNS / running}/" in message

    dry = snakemake(killed, TABLE, "-n", "--cores", "2", "--rerun-incomplete")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    jobs = planned(dry.stdout + dry.stderr)
    assert jobs.count("sample") == sum(
        not (killed / RUNS / s / "summary.json").exists() for s in ("hmc", "sgld"))
    assert "build_target" not in jobs

    # the killed run's lock
    locked = snakemake(killed, TABLE, "--cores", "2", "--rerun-incomplete")
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    assert snakemake(killed, "--unlock").returncode == 0
    resumed = snakemake(killed, TABLE, "--cores", "2", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (run_dir / "summary.json").exists()

    clean = workspace(tmp_path / "clean", jax_cache_dir)
    done = snakemake(clean, TABLE, "--cores", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert estimates(killed) == estimates(clean)  # --cores 2 after a kill == --cores 1
