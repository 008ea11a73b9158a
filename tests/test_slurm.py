"""The smoke experiment on a real (local, single-node) Slurm through `profiles/slurm`.

Starts Slurm with accounting (tools/slurm-local.sh), so the plugin's default `sacct` status
path is the one tested. Skips only where that is impossible (not root, no apt-get).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "slurm-local.sh"
STATE_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/lib/lambda-hat-slurm"))
SNAKEMAKE_TIMEOUT = 600


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("a local Slurm needs root (tools/slurm-local.sh)")
    if shutil.which("apt-get") is None:
        pytest.skip("a local Slurm needs apt-get to install slurm-wlm")
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                             timeout=1200)
    if started.returncode == 2:
        pytest.skip(started.stderr.strip().splitlines()[-1])
    assert started.returncode == 0, started.stdout + started.stderr
    settings = dict(line.split("=", 1) for line in (STATE_DIR / "env").read_text().split()
                    if "=" in line)
    yield settings
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=300)


def make_workspace(root: Path, cluster: dict, extra_samplers: dict | None = None) -> Path:
    """A copy of the workflow with the smoke experiment and a test overlay of the profile:
    the local cluster's partition/account and a short first status check."""
    root.mkdir(parents=True)
    for part in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / part, root / part)  # follows the schema's symlink
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition=cluster["SLURM_LOCAL_PARTITION"],
                                        slurm_account=cluster["SLURM_LOCAL_ACCOUNT"])
    profile["slurm-init-seconds-before-status-checks"] = 5
    (root / "profiles" / "slurm-test").mkdir()
    (root / "profiles" / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(profile))
    experiment = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    experiment["samplers"].update(extra_samplers or {})
    (root / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    return root


def snakemake(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    command = ["timeout", "-k", "30", str(SNAKEMAKE_TIMEOUT), sys.executable, "-m", "snakemake",
               "--configfile", "experiment.yaml", *args]
    return subprocess.run(command, cwd=workspace, capture_output=True, text=True,
                          timeout=SNAKEMAKE_TIMEOUT + 60)


def slurm(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return snakemake(workspace, "--profile", "profiles/slurm-test", *args)


def planned_jobs(workspace: Path) -> dict[str, int]:
    done = snakemake(workspace, "-n", "--cores", "1", "--quiet", "rules")
    assert done.returncode == 0, done.stderr
    counts = {}
    for line in (done.stdout + done.stderr).splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) not in ("total", "job", "count"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def sacct_jobs(since: str, workdir: Path) -> list[dict]:
    """This workspace's jobs only: `-S` also lists older jobs still running at `since`."""
    done = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-S", since,
                           "-o", "JobID,State,Comment,WorkDir"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    return [{"id": r[0], "state": r[1], "comment": r[2]} for r in rows
            if Path(r[3]) == workdir]


def wait_for_sacct(since: str, workdir: Path, expected: dict[str, int],
                   deadline: float = 60) -> dict:
    """{comment: [states]} once sacct shows the expected number of jobs per rule comment:
    it shows a job's comment only once the job has ended, and lags squeue a little."""
    stop = time.monotonic() + deadline
    while True:
        by_rule: dict[str, list[str]] = {}
        for job in sacct_jobs(since, workdir):
            if job["comment"].startswith("rule_"):  # rule_<name>_wildcards_<values>
                rule = job["comment"].split("_wildcards_")[0]
                by_rule.setdefault(rule, []).append(job["state"])
        if all(len(by_rule.get(rule, [])) >= count for rule, count in expected.items()) \
                or time.monotonic() > stop:
            return by_rule
        time.sleep(1)


def estimates(workspace: Path) -> dict:
    table = pd.read_parquet(workspace / "results" / "smoke" / "llc.parquet")
    return {(row.target, row.sampler): row.llc_mean for row in table.itertuples()}


def test_smoke_experiment_on_slurm(cluster, tmp_path):
    broken = {"broken": {"kind": "sgld", "chains": 2, "steps": 200, "batch_size": 64,
                         "step_size": 1.0}}
    workspace = make_workspace(tmp_path / "slurm", cluster, broken)
    planned = planned_jobs(workspace)
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)

    # 1. A failing rule is reported with its log; the other jobs still finish (keep-going).
    started = time.monotonic()
    failed = slurm(workspace)
    first_wall = time.monotonic() - started
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "Error in rule sample" in output
    log = workspace / "logs" / "smoke" / "sample" / "dln_small" / "broken.log"
    assert str(log.relative_to(workspace)) in output
    assert "all 2 chains produced NaN/Inf" in log.read_text()
    runs = workspace / "results" / "smoke" / "runs" / "dln_small"
    assert (runs / "hmc" / "summary.json").exists() and (runs / "sgld" / "summary.json").exists()
    assert not (runs / "broken" / "summary.json").exists()

    # 2. Without the broken sampler the run completes; every build/sample job was its own
    #    Slurm job, visible to sacct with the plugin's rule_<name> comment.
    experiment = yaml.safe_load((workspace / "experiment.yaml").read_text())
    del experiment["samplers"]["broken"]
    (workspace / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    started = time.monotonic()
    completed = slurm(workspace)
    second_wall = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout + completed.stderr
    retries = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["retries"]
    by_rule = wait_for_sacct(since, workspace, {"rule_build_target": planned["build_target"],
                                     "rule_sample": planned["sample"] + retries})
    assert by_rule["rule_build_target"] == ["COMPLETED"] * planned["build_target"]
    sample_states = by_rule["rule_sample"]
    assert sample_states.count("COMPLETED") == planned["sample"] - 1  # all but broken
    assert sample_states.count("FAILED") == 1 + retries  # broken: first try and each retry
    slurm_jobs = sum(len(states) for states in by_rule.values())

    # 3. Same seeds, same numbers as the local run.
    local = make_workspace(tmp_path / "local", cluster)
    done = snakemake(local, "--cores", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert estimates(workspace) == estimates(local)

    # 4. A rerun with nothing changed submits nothing.
    count_before = len(sacct_jobs(since, workspace))
    again = slurm(workspace)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    time.sleep(2)
    assert len(sacct_jobs(since, workspace)) == count_before
    print(f"\nslurm: first pass {first_wall:.1f}s, completing pass {second_wall:.1f}s, "
          f"{slurm_jobs} Slurm jobs")

