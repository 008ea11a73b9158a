"""What the Slurm tests leave behind, checked once their work has stopped the cluster (conftest
orders `after_slurm` last; under xdist it may run on another worker, so it waits for the
work's outcomes)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_slurm import REPO, snakemake


@pytest.mark.after_slurm
def test_the_machine_is_left_as_found(tmp_path, slurm_in_background):
    """After the cluster is stopped, no config the tests wrote stays in /etc/slurm: a
    slurm.conf naming a stopped controller made every Slurm client, and so every
    `snakemake` start (the Slurm plugin runs `scontrol show config`), wait ~9 s."""
    if slurm_in_background is not None:
        slurm_in_background.wait()
    marker = "# Written by lambda-hat tools/slurm-local.sh"
    for path in (Path("/etc/slurm/slurm.conf"), Path("/etc/slurm/slurmdbd.conf")):
        assert not (path.is_file() and path.read_text().startswith(marker)), path
    if shutil.which("scontrol"):
        started = time.perf_counter()
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=60)
        assert time.perf_counter() - started < 5.0  # a controller wait is ~9 s
    workspace = tmp_path / "w"
    workspace.mkdir()
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, workspace / part)
    (workspace / "experiment.yaml").write_text((REPO / "config" / "smoke.yaml").read_text())
    started = time.perf_counter()
    done = snakemake(workspace, "-n", "--cores", "1")
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - started < 8.0  # the plan itself takes ~1.5 s here
