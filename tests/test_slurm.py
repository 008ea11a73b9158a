"""The workflow on a real (local, single-node) Slurm through `profiles/slurm`.

Starts Slurm with accounting (tools/slurm-local.sh). The profile reads job states from
`squeue` (a `scancel`led job is retried; sacct's `CANCELLED by <uid>` is not noticed by the
plugin); the smoke test runs with the plugin's default, `sacct`, so both paths are tested.
Skips only where that is impossible (not root, no apt-get).

The profile batches runs: group `runs` (sample, plot_run, export_arviz) with
`group-components: runs=N`, so up to N runs share one Slurm job (a "group job", whose sacct
comment is `rule_runs_<rules>`, without wildcards). `test_smoke_experiment_on_slurm` runs the
smoke experiment through the profile as it is; the grid tests share what
`grid_workflows` records, three workflows run at once to overlap their waits:

- `grid`: 16 small runs through the profile (its N = 8 and runtimes): 2 group jobs; in one
  of them the process of a run is SIGKILLed mid-write (as the OOM killer or a crash would),
  and the group is resubmitted;
- `faults`: 4 of the same runs with N = 2 and `runtime: attempt * 1` for `sample` (a group
  of 2 asks for 2 minutes): in one group job a run hangs until Slurm's time limit kills the
  job (TIMEOUT), the other group job is cancelled with `scancel` mid-write; both groups are
  resubmitted (attempt 2: twice the time) and complete;
- `local`: the 16 runs with `snakemake --cores 2` (no profile), the reference.

Every workspace links the session's JAX compilation cache (as the workflow's jobs share
`.jax_cache`), so a program is compiled once, not once per workspace.

The misbehaving first attempts come from a stand-in `lambda-hat` first on PATH (sbatch
exports the environment to the jobs): it runs the real CLI into a scratch directory, then
leaves the run directory as a run killed while writing summary.json would (a complete
trace.npz, half a summary in a temporary file, no summary.json) and sleeps until killed.

Most of this module's time is waiting: for Slurm's time limit, for the plugin's status
rounds. So the cluster and all four workflows start in the background as the test session
begins (`SlurmWork`, started by conftest's `slurm_in_background` when a Slurm test is
selected) and run beside the other tests; the tests here, ordered last, wait for them and
assert on what they recorded. The cluster stops as soon as the workflows are done.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
# the background work: the cluster's start (apt included) and two workflows in a row
WORK_TIMEOUT = 2 * SNAKEMAKE_TIMEOUT + 1500
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
# runs per Slurm job (the profile's batch size)
RUNS_PER_JOB = int(dict(g.split("=") for g in PROFILE["group-components"])["runs"])
# Slurm slots for the tests: their jobs mostly wait (a hung run, the queue) and the smoke
# experiment's run beside the grid fixture's, so the 2-core machine offers more CPUs to Slurm
# than it has (slurmd's config_overrides).
SLURM_CPUS = 8


def start_cluster() -> dict:
    """The local cluster's settings (partition, account), or {"skip": why} where a local
    Slurm is impossible."""
    if os.geteuid() != 0:
        return {"skip": "a local Slurm needs root (tools/slurm-local.sh)"}
    if shutil.which("apt-get") is None:
        return {"skip": "a local Slurm needs apt-get to install slurm-wlm"}
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                             timeout=1200, env={**os.environ, "SLURM_LOCAL_CPUS": str(SLURM_CPUS)})
    if started.returncode == 2:
        return {"skip": started.stderr.strip().splitlines()[-1]}
    assert started.returncode == 0, started.stdout + started.stderr
    return dict(line.split("=", 1) for line in (STATE_DIR / "env").read_text().split()
                if "=" in line)


def stop_cluster() -> None:
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=300)


class SlurmWork:
    """The cluster and the workflows of this module, run in a background thread: the smoke
    experiment's passes (`smoke_on_slurm`) beside the grid fixture's three workflows
    (`grid_workflows`); then the cluster stops. Each outcome is kept, exceptions included,
    for the tests to read.

    Under pytest-xdist every worker makes one of these on the same `shared` directory (the
    workers' common temporary directory): the first to claim it runs the work, and every
    worker reads the outcomes from the file that the work writes last (`outcomes.pickle`),
    so the Slurm tests and the `after_slurm` checks may run on any worker."""

    OUTCOMES = "outcomes.pickle"

    def __init__(self, shared: Path, jax_cache: Path):
        self.shared = shared
        self.jax_cache = jax_cache
        self.root = shared / "workspaces"
        self.stopping = threading.Event()
        self.cluster_started = False
        self.outcomes: dict[str, object] = {}
        self.thread: threading.Thread | None = None

    def start(self) -> "SlurmWork":
        """Start the work unless another process has claimed it (mkdir is atomic)."""
        self.shared.mkdir(parents=True, exist_ok=True)
        try:
            self.root.mkdir()
        except FileExistsError:
            return self
        self.thread = threading.Thread(target=self._run, name="slurm-tests", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self._work()
        finally:
            if self.cluster_started:
                stop_cluster()
                self.cluster_started = False
            written = self.shared / f".{self.OUTCOMES}.tmp"
            written.write_bytes(pickle.dumps(self.outcomes))
            written.rename(self.shared / self.OUTCOMES)

    def _work(self) -> None:
        try:
            cluster = start_cluster()
        except Exception as exc:  # noqa: BLE001 - re-raised by the test that reads it
            self.outcomes["cluster"] = exc
            return
        self.outcomes["cluster"] = cluster
        if "skip" in cluster:
            return
        self.cluster_started = True
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {"smoke": pool.submit(smoke_on_slurm, self.root / "smoke", cluster,
                                            self.jax_cache),
                       "grid": pool.submit(grid_workflows, self.root / "grid", cluster,
                                           self.jax_cache, self.stopping)}
            for name, future in futures.items():
                try:
                    self.outcomes[name] = future.result()
                except Exception as exc:  # noqa: BLE001 - re-raised by the tests that read it
                    self.outcomes[name] = exc

    def wait(self) -> dict:
        """Every outcome, once the work is done and the cluster stopped, in whichever
        process ran it."""
        path = self.shared / self.OUTCOMES
        deadline = time.monotonic() + WORK_TIMEOUT
        while not path.exists():
            assert time.monotonic() < deadline, "the Slurm tests' workflows hang"
            time.sleep(1)
        return pickle.loads(path.read_bytes())

    def outcome(self, name: str):
        """What `name` recorded (waiting for the work to finish), or its error."""
        outcomes = self.wait()
        cluster = outcomes["cluster"]
        if isinstance(cluster, Exception):
            raise cluster
        if "skip" in cluster:
            pytest.skip(cluster["skip"])
        value = outcomes[name]
        if isinstance(value, Exception):
            raise value
        return value

    def finish(self, interrupted: bool) -> None:
        """At the end of the session: wait for the work, or, after an interrupt, stop it; the
        cluster is stopped either way. The workspaces stay in pytest's temporary directory,
        which keeps the last three sessions."""
        if self.thread is None:
            return
        if interrupted:
            self.stopping.set()
        self.thread.join(timeout=WORK_TIMEOUT)
        if self.cluster_started:
            stop_cluster()
            self.cluster_started = False


@pytest.fixture(scope="module")
def work(slurm_in_background):
    """The background work (conftest starts it as the session begins)."""
    return slurm_in_background


def make_workspace(root: Path, cluster: dict, jax_cache: Path, experiment: dict,
                   profile_overrides: dict | None = None,
                   set_resources: dict | None = None) -> Path:
    """A copy of the workflow with `experiment` and a test overlay of the profile: the local
    cluster's partition/account, a short first status check, then the overrides."""
    root.mkdir(parents=True)
    for part in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / part, root / part)  # follows the schema's symlink
    (root / ".jax_cache").symlink_to(jax_cache, target_is_directory=True)
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition=cluster["SLURM_LOCAL_PARTITION"],
                                        slurm_account=cluster["SLURM_LOCAL_ACCOUNT"])
    profile["slurm-init-seconds-before-status-checks"] = 5
    profile.update(profile_overrides or {})
    for rule, resources in (set_resources or {}).items():
        profile["set-resources"].setdefault(rule, {}).update(resources)
    (root / "profiles" / "slurm-test").mkdir()
    (root / "profiles" / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(profile))
    (root / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    return root


def smoke_experiment(extra_samplers: dict | None = None) -> dict:
    experiment = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    experiment["samplers"].update(extra_samplers or {})
    return experiment


def snakemake_command(*args: str) -> list[str]:
    return ["timeout", "-k", "30", str(SNAKEMAKE_TIMEOUT), sys.executable, "-m", "snakemake",
            *args, "--configfile", "experiment.yaml"]


def snakemake(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(*args), cwd=workspace, capture_output=True,
                          text=True, timeout=SNAKEMAKE_TIMEOUT + 60)


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


def minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + math.ceil(s / 60)


def sacct_jobs(since: str, workdir: Path) -> list[dict]:
    """This workspace's jobs only: `-S` also lists older jobs still running at `since`."""
    done = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-S", since,
                           "-o", "JobID,State,Comment,Timelimit,AllocCPUS,WorkDir"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    return [{"id": r[0], "state": r[1].split()[0],  # "CANCELLED by 0" -> "CANCELLED"
             "comment": r[2], "limit": r[3], "cpus": r[4]}
            for r in rows if Path(r[5]) == workdir]


def by_comment(jobs: list[dict]) -> dict[str, list[dict]]:
    """{rule_<name> or rule_<group>_<rules>: [jobs]}: the plugin's comment is
    rule_<name>_wildcards_<values> for a single job and rule_<group>_<rules> for a group."""
    grouped: dict[str, list[dict]] = {}
    for job in jobs:
        if job["comment"].startswith("rule_"):
            grouped.setdefault(job["comment"].split("_wildcards_")[0], []).append(job)
    return grouped


def wait_for_sacct(since: str, workdir: Path, expected: dict[str, int],
                   deadline: float = 60) -> dict[str, list[dict]]:
    """by_comment() once sacct shows the expected number of jobs per comment: it shows a
    job's comment only once the job has ended, and lags squeue a little."""
    stop = time.monotonic() + deadline
    while True:
        found = by_comment(sacct_jobs(since, workdir))
        if all(len(found.get(key, [])) >= count for key, count in expected.items()) \
                or time.monotonic() > stop:
            return found
        time.sleep(1)


def states(jobs: list[dict]) -> list[str]:
    return [job["state"] for job in jobs]


def estimates(workspace: Path) -> dict:
    table = pd.read_parquet(workspace / "results" / "smoke" / "llc.parquet")
    return {(row.target, row.sampler): row.llc_mean for row in table.itertuples()}


def smoke_on_slurm(root: Path, cluster: dict, jax_cache: Path) -> dict:
    """The smoke experiment's passes through the profile (with a broken sampler, then
    without), the same experiment run locally, and a rerun with nothing changed; what each
    left behind is recorded for `test_smoke_experiment_on_slurm`."""
    broken = {"broken": {"kind": "sgld", "chains": 2, "steps": 200, "batch_size": 64,
                         "step_size": 1.0}}
    workspace = make_workspace(root / "slurm", cluster, jax_cache, smoke_experiment(broken),
                               profile_overrides={"slurm-status-command": "sacct"})
    record = {"workspace": workspace, "planned": planned_jobs(workspace)}
    record["group_jobs"] = math.ceil(record["planned"]["sample"] / RUNS_PER_JOB)
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)

    started = time.monotonic()
    record["failed"] = slurm(workspace)
    record["first_wall"] = time.monotonic() - started
    log = workspace / "logs" / "smoke" / "sample" / "dln_small" / "broken.log"
    record["broken_log"] = (log.relative_to(workspace), log.read_text() if log.exists() else "")
    runs = workspace / "results" / "smoke" / "runs" / "dln_small"
    record["summaries_after_failure"] = sorted(str(p) for p in runs.glob("*/summary.json"))
    record["target_plot_after_failure"] = (
        workspace / "results" / "smoke" / "plots" / "targets" / "dln_small.png").exists()

    experiment = yaml.safe_load((workspace / "experiment.yaml").read_text())
    del experiment["samplers"]["broken"]
    (workspace / "experiment.yaml").write_text(yaml.safe_dump(experiment))
    started = time.monotonic()
    record["completed"] = slurm(workspace)
    record["second_wall"] = time.monotonic() - started
    group = "rule_runs_export_arviz_plot_run_sample"
    record["found"] = wait_for_sacct(
        since, workspace, {"rule_build_target": record["planned"]["build_target"],
                           group: record["group_jobs"] * (2 + PROFILE["retries"])})

    local = make_workspace(root / "local", cluster, jax_cache, smoke_experiment())
    record["local"] = snakemake(local, "results/smoke/llc.parquet", "--cores", "2")
    record["estimates"] = (estimates(workspace) if record["completed"].returncode == 0
                           else None)
    record["local_estimates"] = estimates(local) if record["local"].returncode == 0 else None

    record["count_before"] = len(sacct_jobs(since, workspace))
    record["again"] = slurm(workspace)
    time.sleep(2)
    record["count_after"] = len(sacct_jobs(since, workspace))
    return record


def test_smoke_experiment_on_slurm(work):
    """The smoke experiment through the profile, with the plugin's default status command
    (sacct, which the profile replaces by squeue): its 3 runs fit in one group job. A
    failing run fails its whole group job (documented in docs/slurm.md): the group is retried, and
    its other runs' outputs are not kept."""
    record = work.outcome("smoke")
    planned, group_jobs = record["planned"], record["group_jobs"]
    group = "rule_runs_export_arviz_plot_run_sample"

    # 1. A failing run is reported with its log; the jobs outside its group still finish
    #    (keep-going), the other runs of its group do not.
    failed = record["failed"]
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "Error in group runs" in output and "Error in rule sample" in output
    log, log_text = record["broken_log"]
    assert str(log) in output
    assert "all 2 chains produced NaN/Inf" in log_text
    assert not record["summaries_after_failure"]  # the group's outputs were removed
    assert record["target_plot_after_failure"]

    # 2. Without the broken sampler the run completes. sacct shows each build as its own
    #    Slurm job, the runs as group jobs: the failed one tried 1 + retries times.
    completed = record["completed"]
    assert completed.returncode == 0, completed.stdout + completed.stderr
    retries = PROFILE["retries"]
    found = record["found"]
    assert states(found["rule_build_target"]) == ["COMPLETED"] * planned["build_target"]
    assert sorted(states(found[group])) == (["COMPLETED"] * group_jobs
                                            + ["FAILED"] * group_jobs * (1 + retries))
    assert "rule_sample" not in found  # no run went out on its own
    slurm_jobs = sum(len(jobs) for jobs in found.values())

    # 3. Same seeds, same numbers as the local run.
    done = record["local"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert record["estimates"] == record["local_estimates"]

    # 4. A rerun with nothing changed submits nothing.
    again = record["again"]
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert record["count_after"] == record["count_before"]
    print(f"\nslurm: first pass {record['first_wall']:.1f}s, completing pass "
          f"{record['second_wall']:.1f}s, {slurm_jobs} Slurm jobs")


# --- the grid fixture: batching, a time limit, a killed job, scancel --------------------------

TARGET = {"model": {"kind": "dln", "widths": [4, 3, 2, 4], "rank": 1}, "data": {"n": 1000},
          "seed": 0}  # config/smoke.yaml's dln_small


def tiny_sgld(seed: int) -> dict:
    return {"kind": "sgld", "chains": 1, "steps": 200, "step_size": 1.0e-4, "batch_size": 64,
            "seed": seed}


# 16 runs written out one by one (one target × 16 sampler entries with distinct seeds, about
# 3 s each). The fault workflow runs four of them: same names and settings, same results.
GRID = {"experiment": "grid", "posterior": {"beta": "auto", "gamma": 1.0},
        "targets": {"dln_small": TARGET},
        "samplers": {f"s{seed:02d}": tiny_sgld(seed) for seed in range(16)}}
FAULTS = {**GRID, "samplers": {f"s{seed:02d}": GRID["samplers"][f"s{seed:02d}"]
                               for seed in range(4)}}
FAULT_RUNS_PER_JOB = 2
RESULT = "results/grid/llc.parquet"  # the runs and the table, not the per-run plots
SMALL_MEMORY = {"build_target": {"mem_mb": "attempt * 1000"},
                "sample": {"mem_mb": "attempt * 1000"}}

# Stand-in for `lambda-hat`, first on PATH. ROLES go, in order, to the first `sample` call in
# each Slurm job that has none yet (a group job runs several runs), one run per role.
SHIM = r"""#!/usr/bin/env bash
set -euo pipefail
real=@REAL@
marks=@MARKS@
roles=(@ROLES@)
args=("$@") sub='' sampler='' out=''
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    sample) sub=sample ;;
    --sampler) sampler=${args[i + 1]} ;;
    --out) out=${args[i + 1]} ;;
  esac
done
[[ $sub == sample && -n ${SLURM_JOB_ID:-} ]] || exec "$real" "$@"
exec 9>>"$marks/lock"
flock 9
role=pass
if ! grep -qsx "[^ ]* $SLURM_JOB_ID" "$marks"/*.job; then
  for r in "${roles[@]}"; do
    if [[ ! -e $marks/$r.job ]]; then role=$r; echo "$sampler $SLURM_JOB_ID" >"$marks/$r.job"; break; fi
  done
fi
echo "$sampler $SLURM_JOB_ID $role" >>"$marks/calls"
exec 9>&-
[[ $role == pass ]] && exec "$real" "$@"
# A run killed while writing summary.json: the real outputs made elsewhere, trace.npz moved
# in, half a summary in a temporary file; then wait to be killed.
scratch=$marks/$role.out
mkdir -p "$scratch"
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == --out ]] && args[i + 1]=$scratch; done
"$real" "${args[@]}"
mv "$scratch/trace.npz" "$out/trace.npz"
head -c 200 "$scratch/summary.json" >"$out/.summary.json.killed.tmp"
echo "$sampler $SLURM_JOB_ID $$" >"$marks/$role.ready"
exec sleep 600
"""


def install_shim(workspace: Path, roles: list[str]) -> dict:
    """Put the stand-in `lambda-hat` in workspace/bin; the environment to run Snakemake in."""
    marks = workspace / "marks"
    marks.mkdir()
    real = shutil.which("lambda-hat")
    assert real, "the lambda-hat CLI is not on PATH (pip install -e .)"
    text = (SHIM.replace("@REAL@", shlex.quote(real)).replace("@MARKS@", shlex.quote(str(marks)))
            .replace("@ROLES@", " ".join(roles)))
    (workspace / "bin").mkdir()
    shim = workspace / "bin" / "lambda-hat"
    shim.write_text(text)
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{workspace / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def run_dir(workspace: Path, sampler: str) -> Path:
    return workspace / "results" / "grid" / "runs" / "dln_small" / sampler


def active_jobs(workspace: Path) -> list[str]:
    """This workspace's Slurm jobs that are pending or running (squeue)."""
    done = subprocess.run(["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split("|")[0] for line in done.stdout.splitlines()
            if line.strip() and Path(line.split("|", 1)[1]) == workspace]


def child_pid(proc: subprocess.Popen) -> int:
    """The PID of the command that `timeout` (proc) runs."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def grid_workflows(root: Path, cluster: dict, jax_cache: Path,
                   stopping: threading.Event) -> dict:
    """The three workflows at once; acts on the stand-in's signals. grid's `crash` run: its
    process is SIGKILLed (as the OOM killer or a crash would). faults' `hang` run: left to
    Slurm's time limit; its `park` run: `scancel`.
    Meanwhile every summary.json that appears is read (each must be complete), and the
    directory of every run is listed when it is killed. `stopping` ends it early (the
    session was interrupted)."""
    ws = {"grid": make_workspace(root / "grid", cluster, jax_cache, GRID,
                                 set_resources=SMALL_MEMORY),
          "faults": make_workspace(root / "faults", cluster, jax_cache, FAULTS,
                                   profile_overrides={"group-components":
                                                      [f"runs={FAULT_RUNS_PER_JOB}"]},
                                   set_resources={**SMALL_MEMORY, "sample": {
                                       "runtime": "attempt * 1", "mem_mb": "attempt * 1000"}}),
          "local": make_workspace(root / "local", cluster, jax_cache, GRID)}
    env = {"grid": install_shim(ws["grid"], ["crash"]),
           "faults": install_shim(ws["faults"], ["hang", "park"]), "local": dict(os.environ)}
    args = {"grid": ["--profile", "profiles/slurm-test"],
            "faults": ["--profile", "profiles/slurm-test"], "local": ["--cores", "2"]}
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)
    started = time.monotonic()
    procs: dict[str, tuple[subprocess.Popen, object]] = {}
    for name in ws:
        log = (ws[name] / "snakemake.out").open("w")
        procs[name] = (subprocess.Popen(snakemake_command(RESULT, *args[name]), cwd=ws[name],
                                        env=env[name], stdout=log, stderr=subprocess.STDOUT,
                                        text=True), log)
    walls: dict[str, float] = {}
    seen: dict[tuple[str, str], set[str]] = {}  # (workspace, sampler) -> summary texts
    unreadable: list[str] = []
    killed: dict[tuple[str, str], dict] = {}  # (workspace, role) -> sampler, job, files
    try:
        while any(proc.poll() is None for proc, _ in procs.values()):
            assert not stopping.is_set(), "interrupted"
            now = time.monotonic()
            assert now - started < SNAKEMAKE_TIMEOUT, "the grid fixture's workflows hang"
            for name, (proc, _) in procs.items():
                if name not in walls and proc.poll() is not None:
                    walls[name] = now - started
            for name in ("grid", "faults"):
                for ready in sorted((ws[name] / "marks").glob("*.ready")):
                    if (name, ready.stem) in killed:
                        continue
                    sampler, job, pid = ready.read_text().split()
                    killed[(name, ready.stem)] = {
                        "sampler": sampler, "job": job, "at": now,
                        "files": sorted(p.name for p in run_dir(ws[name], sampler).iterdir())}
                    if ready.stem == "crash":
                        os.kill(int(pid), signal.SIGKILL)
                    elif ready.stem == "park":
                        subprocess.run(["scancel", job], check=True, timeout=60)
                for path in (ws[name] / "results" / "grid" / "runs").glob("*/*/summary.json"):
                    try:
                        text = path.read_text()
                        json.loads(text)
                    except FileNotFoundError:
                        continue
                    except ValueError:
                        unreadable.append(f"{name}: {path}")
                        continue
                    seen.setdefault((name, path.parent.name), set()).add(text)
            time.sleep(0.25)
        for name in procs:
            walls.setdefault(name, time.monotonic() - started)
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=120)
            log.close()
        for name in ("grid", "faults"):  # after a failure: no stand-in left sleeping
            left = active_jobs(ws[name])
            if left:
                subprocess.run(["scancel", *left], timeout=60)
    outputs = {name: (ws[name] / "snakemake.out").read_text() for name in procs}
    for name, (proc, _) in procs.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-6000:]}"
    # grid: its batches and the killed one again; faults: both batches twice (hang, park)
    group_jobs = {"grid": math.ceil(len(GRID["samplers"]) / RUNS_PER_JOB) + 1,
                  "faults": 2 * math.ceil(len(FAULTS["samplers"]) / FAULT_RUNS_PER_JOB)}
    jobs = {name: wait_for_sacct(since, ws[name], {"rule_build_target": 1,
                                                   "rule_runs_sample": group_jobs[name]})
            for name in ("grid", "faults")}
    print("\ngrid fixture: " + ", ".join(f"{name} {wall:.1f}s" for name, wall in walls.items())
          + f", all {time.monotonic() - started:.1f}s")
    return {"workspaces": ws, "jobs": jobs, "walls": walls, "seen": seen, "outputs": outputs,
            "unreadable": unreadable, "killed": killed}


@pytest.fixture(scope="module")
def grid_runs(work):
    return work.outcome("grid")


def calls(workspace: Path) -> list[tuple[str, str, str]]:
    """Every `sample` call under Slurm: (sampler, Slurm job id, role)."""
    return [tuple(line.split()) for line in
            (workspace / "marks" / "calls").read_text().splitlines()]


def summaries(workspace: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in (workspace / "results" / "grid" / "runs").glob("*/*/summary.json")}


def llc(summary: dict) -> tuple:
    return summary["llc_mean"], summary["llc_mcse"], tuple(summary["llc_per_chain"])


def assert_same_results(runs: dict, name: str) -> None:
    """The workspace's λ̂ per run equal the local run's, every summary.json ever seen there
    was complete and final, and no temporary file stayed behind."""
    local = summaries(runs["workspaces"]["local"])
    mine = summaries(runs["workspaces"][name])
    assert set(mine) == set((GRID if name == "grid" else FAULTS)["samplers"])
    assert {s: llc(mine[s]) for s in mine} == {s: llc(local[s]) for s in mine}
    assert not runs["unreadable"]
    for (workspace, sampler), texts in runs["seen"].items():
        if workspace == name:  # a failed group's runs may have written theirs before
            assert {llc(json.loads(text)) for text in texts} == {llc(mine[sampler])}, sampler
    assert not list((runs["workspaces"][name] / "results").glob("grid/runs/*/*/.*.tmp"))


def killed_run(runs: dict, name: str, role_name: str) -> tuple[str, str]:
    """(sampler, Slurm job) of the run given the role. Its directory when it was killed: a
    complete-looking trace.npz, half a summary in a temporary file, no summary.json."""
    killed = runs["killed"][(name, role_name)]
    assert "summary.json" not in killed["files"]
    assert {"trace.npz", ".summary.json.killed.tmp"} <= set(killed["files"])
    return killed["sampler"], killed["job"]


def retry_of(runs: dict, name: str, sampler: str, job: str) -> dict:
    """The one other Slurm job that ran `sampler`, as sacct has it."""
    (retry,) = {j for s, j, _ in calls(runs["workspaces"][name]) if s == sampler} - {job}
    return {j["id"]: j for j in runs["jobs"][name]["rule_runs_sample"]}[retry]


def test_grid_of_small_runs_is_batched(grid_runs):
    """16 runs through the profile (runs=8) go out as 2 group jobs of 1 CPU, each asking for
    the sum of its runs' runtimes (8 × 20 min); the 16 λ̂ equal those of
    `snakemake --cores 2`. With the resubmitted group (the killed job below): 3 Slurm jobs
    for the 16 runs."""
    jobs = grid_runs["jobs"]["grid"]
    first = math.ceil(len(GRID["samplers"]) / RUNS_PER_JOB)
    sample_jobs = jobs["rule_runs_sample"]
    assert len(sample_jobs) == first + 1
    assert "rule_sample" not in jobs
    assert states(jobs["rule_build_target"]) == ["COMPLETED"]
    assert sorted(states(sample_jobs)) == ["COMPLETED"] * first + ["FAILED"]
    runtime = eval(PROFILE["set-resources"]["sample"]["runtime"], {"attempt": 1})  # noqa: S307
    limits = sorted(minutes(job["limit"]) for job in sample_jobs)
    assert limits == [RUNS_PER_JOB * runtime] * first + [2 * RUNS_PER_JOB * runtime]
    assert {job["cpus"] for job in sample_jobs} == {"1"}
    assert_same_results(grid_runs, "grid")


def runs_in(runs: dict, name: str, job: str) -> set[str]:
    """The runs (samplers) a Slurm job ran `sample` for."""
    return {s for s, j, _ in calls(runs["workspaces"][name]) if j == job}


def test_timeout_is_resubmitted_with_more_time(grid_runs):
    """A group job of 2 runs (`runtime: attempt * 1` each: a 2-minute limit) whose run hangs
    is killed by Slurm (TIMEOUT, up to 30 s late: slurmctld checks limits every 30 s), and
    resubmitted with twice the time; both runs run again and complete. Killed mid-write, the
    run had no summary.json; the results equal the local run's."""
    sampler, job = killed_run(grid_runs, "faults", "hang")
    jobs = {j["id"]: j for j in grid_runs["jobs"]["faults"]["rule_runs_sample"]}
    assert jobs[job]["state"] == "TIMEOUT"
    assert minutes(jobs[job]["limit"]) == FAULT_RUNS_PER_JOB * 1
    retry = retry_of(grid_runs, "faults", sampler, job)
    assert retry["state"] == "COMPLETED" and minutes(retry["limit"]) == 2 * FAULT_RUNS_PER_JOB
    assert len(runs_in(grid_runs, "faults", retry["id"])) == FAULT_RUNS_PER_JOB
    assert_same_results(grid_runs, "faults")


def test_killed_group_job_is_resubmitted(grid_runs):
    """A group job of 8 runs whose run is SIGKILLed mid-write (as the OOM killer or a crash
    would) ends FAILED and is resubmitted (attempt 2, twice the time): all 8 runs run again
    and complete; results equal the local run's and nothing half-written was kept."""
    sampler, job = killed_run(grid_runs, "grid", "crash")
    jobs = {j["id"]: j for j in grid_runs["jobs"]["grid"]["rule_runs_sample"]}
    assert jobs[job]["state"] == "FAILED"
    retry = retry_of(grid_runs, "grid", sampler, job)
    assert retry["state"] == "COMPLETED"
    assert minutes(retry["limit"]) == 2 * minutes(jobs[job]["limit"])
    assert len(runs_in(grid_runs, "grid", retry["id"])) == RUNS_PER_JOB
    assert_same_results(grid_runs, "grid")


def test_scancelled_group_job_is_resubmitted(grid_runs):
    """A group job cancelled with `scancel` mid-write (as an admin or a node failure would)
    is seen as CANCELLED through squeue (the profile's `slurm-status-command`), reported and
    resubmitted (attempt 2: twice the time) within the same Snakemake call; its runs
    complete, nothing half-written was kept, the results equal the local run's."""
    assert PROFILE["slurm-status-command"] == "squeue"
    sampler, job = killed_run(grid_runs, "faults", "park")
    jobs = {j["id"]: j for j in grid_runs["jobs"]["faults"]["rule_runs_sample"]}
    assert jobs[job]["state"] == "CANCELLED"
    # reported as the group's error, with the cancelled job's Slurm log
    output = grid_runs["outputs"]["faults"]
    assert re.search(rf"message: Error in group runs\n\s+log: \S+/group_runs_sample/{job}\.log",
                     output), output[-8000:]
    retry = retry_of(grid_runs, "faults", sampler, job)
    assert retry["state"] == "COMPLETED"
    assert minutes(retry["limit"]) == 2 * minutes(jobs[job]["limit"])
    assert len(runs_in(grid_runs, "faults", retry["id"])) == FAULT_RUNS_PER_JOB
    assert_same_results(grid_runs, "faults")
