"""Helpers for tests that drive the `lambda-hat` CLI in a subprocess.

JAX's x64 switch is process-global and read from the environment, so each precision gets its
own process, exactly as the workflow runs it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "lambda_hat.cli"]

# One persistent compilation cache for the test session, as the workflow shares one between
# jobs: repeated runs of a sampler then skip XLA compilation.
COMPILATION_CACHE = tempfile.mkdtemp(prefix="lambda-hat-test-jax-cache-")
atexit.register(shutil.rmtree, COMPILATION_CACHE, ignore_errors=True)


def run_cli(*args, x64: bool, cwd=None, threads: int | None = 1,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in its own process; `env` adds to or overrides the test environment."""
    env = {**os.environ, "JAX_ENABLE_X64": "1" if x64 else "0",
           "JAX_COMPILATION_CACHE_DIR": COMPILATION_CACHE,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **(env or {})}
    prefix = ["--threads", str(threads)] if threads else []
    return subprocess.run([*CLI, *prefix, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def write_config(directory: Path, config: dict, name: str = "experiment.yaml") -> Path:
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build_and_sample(tmp_path: Path, config: dict, target: str, samplers: dict[str, bool]):
    """Build `target`, run each sampler (name -> x64) on it; return {sampler: summary}."""
    path = write_config(tmp_path, config)
    target_dir = tmp_path / "targets" / target
    done = run_cli("build", "--config", path, "--target", target, "--out", target_dir, x64=True)
    assert done.returncode == 0, done.stderr
    summaries = {}
    for sampler, x64 in samplers.items():
        out = tmp_path / "runs" / target / sampler
        done = run_cli("sample", "--config", path, "--target-dir", target_dir,
                       "--sampler", sampler, "--out", out, x64=x64)
        assert done.returncode == 0, done.stderr
        summaries[sampler] = json.loads((out / "summary.json").read_text())
    return summaries
