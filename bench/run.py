"""lambda-hat benchmarks: one run prints every ratio the performance issue asks for.

    python bench/run.py            # about 5-8 minutes on 2 cores; writes bench/results.json
                                   # and the top of bench/results.md (other sections stay)
    python bench/run.py --only overhead   # section 3 alone (~15 s), printed as JSON

Each figure is measured in this run, on this machine, beside the reference it is compared
with (the machine's own matmul peak, devinterp on the same workload, the jobs' own sampling
time). Kernel measurements run in subprocesses because JAX's precision is per process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
DEVINTERP_VENV = BENCH / ".venv-devinterp"
DEVINTERP_REFERENCE_SECONDS = 10.1  # the measurement, used only if devinterp can't run
SMOKE4_SAMPLERS = {"hmc": {"kind": "hmc"}, "mclmc": {"kind": "mclmc"},
                   "sgld": {"kind": "sgld"}, "vi": {"kind": "vi"}}


def run(command, env=None, cwd=None, timeout=900) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, wall seconds, CPU seconds of the child and its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}")
    return done, wall, cpu


def kernels(x64: bool, full_batch: list[str], sgld: list[str]) -> dict:
    command = [sys.executable, str(BENCH / "kernels.py"), "--full-batch", *full_batch,
               "--sgld", *sgld]
    done, _, _ = run(command, env={"JAX_ENABLE_X64": "1" if x64 else "0"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def devinterp_seconds() -> tuple[float, str]:
    """devinterp 1.3.2 on the SGLD workload, in its own venv (made once, reused)."""
    python = DEVINTERP_VENV / "bin" / "python"
    try:
        if not python.exists():
            run([sys.executable, "-m", "venv", str(DEVINTERP_VENV)])
            run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "devinterp==1.3.2"],
                timeout=1800)
        done, _, _ = run([str(python), str(BENCH / "devinterp_sgld.py")], timeout=900)
        return json.loads(done.stdout.strip().splitlines()[-1])["seconds"], "measured now"
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"devinterp could not run ({str(exc).splitlines()[0]}); using the reference",
              file=sys.stderr)
        return DEVINTERP_REFERENCE_SECONDS, "issue's reference (not re-measured)"


def workspace(root: Path, samplers: dict) -> Path:
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, root / part)
    experiment = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    experiment["experiment"] = "bench"
    experiment["samplers"] = samplers
    (root / "bench.yaml").write_text(yaml.safe_dump(experiment))
    return root


def job_overhead(root: Path) -> dict:
    """`lambda-hat sample` wall time minus its in-kernel sampling time, cold and warm cache."""
    build = ["lambda-hat", "--threads", "1", "build", "--config", "bench.yaml", "--target",
             "dln_small", "--out", "target"]
    run(build, env={"JAX_ENABLE_X64": "1"}, cwd=root)
    result = {}
    cache = root / "jax-cache"
    for label in ("cold", "warm"):
        out = root / f"run-{label}"
        command = ["lambda-hat", "--threads", "1", "sample", "--config", "bench.yaml",
                   "--target-dir", "target", "--sampler", "hmc", "--out", str(out)]
        _, wall, _ = run(command, cwd=root, env={
            "JAX_ENABLE_X64": "1", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
        summary = json.loads((out / "summary.json").read_text())
        result[label] = {"wall": wall, "sample_seconds": summary["sample_seconds"],
                         "compile_seconds": summary["compile_seconds"],
                         "overhead": wall - summary["sample_seconds"]}
    return result


def slurm_probe_seconds() -> float | None:
    """Time of `scontrol show config`, which the Slurm executor plugin runs at every
    `snakemake` start: ~0 without a Slurm client, ~9 s when a client finds no controller."""
    if shutil.which("scontrol") is None:
        return None
    started = time.perf_counter()
    subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=120)
    return time.perf_counter() - started


def pipeline(root: Path, cores: int) -> dict:
    """The four-sampler smoke grid end to end, a no-op rerun, CPU use, RSS and sizes."""
    snakemake = [sys.executable, "-m", "snakemake", "--cores", str(cores),
                 "--configfile", "bench.yaml"]
    _, cold_wall, _ = run(snakemake, cwd=root)
    _, noop_wall, _ = run(snakemake, cwd=root)
    _, wall, cpu = run([*snakemake, "--forceall"], cwd=root)  # same jobs, warm JAX cache
    results = root / "results" / "bench"
    summaries = [json.loads(p.read_text()) for p in results.glob("runs/*/*/summary.json")]
    rss = {}
    for tsv in (root / "benchmarks" / "bench").rglob("*.tsv"):
        with tsv.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss[str(tsv.relative_to(root / "benchmarks" / "bench").with_suffix(""))] = float(
            row["max_rss"])
    sizes = {str(p.relative_to(results)): p.stat().st_size
             for p in results.rglob("*") if p.is_file() and p.suffix in (".npz", ".json")}
    return {
        "slurm_probe": slurm_probe_seconds(),
        "cold_wall": cold_wall, "wall": wall, "noop_wall": noop_wall, "cpu": cpu, "cores": cores,
        "sampling_sum": sum(s["sample_seconds"] for s in summaries),
        "compile_sum": sum(s["compile_seconds"] for s in summaries),
        "jobs": len(summaries), "peak_rss_mb": rss, "artifact_bytes": sizes,
    }


def table(results: dict) -> str:
    k64, k32 = results["kernels_f64"], results["kernels_f32"]
    lines = [
        f"# lambda-hat benchmarks — {results['date']}",
        "",
        f"Machine: {results['machine']}. Command: `python bench/run.py`.",
        "",
        "| # | measure | value | reference | ratio | target |",
        "|---|---|---|---|---|---|",
        f"| 1 | matmul peak f64 / f32 | {k64['peak_gflops']:.0f} / {k32['peak_gflops']:.0f} "
        "GFLOP/s | — | — | — |",
    ]
    for label, kern in (("f64", k64), ("f32", k32)):
        peak = kern["peak_gflops"]
        bare = kern.get("bare_gradient_gflops")
        for kind in results["full_batch"]:
            if kind in kern:
                floor = f"; {kern[kind]['gflops'] / bare['activation']:.0%} of the bare gradient" \
                    if bare else ""
                lines.append(f"| 1 | {kind} full-batch gradient FLOP rate ({label}, MLP d={kern['d']}) "
                             f"| {kern[kind]['gflops']:.1f} GFLOP/s | {peak:.0f} peak{floor} "
                             f"| {kern[kind]['fraction_of_peak']:.0%} | ≥ 70% |")
        if bare:
            lines += [
                f"| 1 | bare value-and-grad of the same loss, one chain ({label}) | "
                f"{bare['activation']:.1f} GFLOP/s | {peak:.0f} peak | "
                f"{bare['activation'] / peak:.0%} | — |",
                f"| 1 | the same matmul shapes with the identity for tanh ({label}) | "
                f"{bare['identity']:.1f} GFLOP/s | {peak:.0f} peak | "
                f"{bare['identity'] / peak:.0%} | — |",
            ]
    dev = results["devinterp_seconds"]
    bare_sgld = k32.get("bare_sgld_seconds")
    if bare_sgld:
        lines.append(
            f"| 2 | bare SGLD step floor: vmap + scan of one minibatch value-and-grad and one "
            f"Gaussian draw, no trace (gradient alone {bare_sgld['gradient_only']:.2f} s, noise "
            f"alone {bare_sgld['noise_only']:.2f} s) | {bare_sgld['step']:.2f} s | devinterp "
            f"{dev:.2f} s | {dev / bare_sgld['step']:.1f}× faster | — |")
    for kind in results["sgld"]:
        s = k32[kind]["sample_seconds"]
        floor = f"; {s / bare_sgld['step']:.2f}× the bare step" if bare_sgld else ""
        lines.append(f"| 2 | {kind}: 4 chains × 2000 steps, batch 256 | {s:.2f} s "
                     f"({k32[kind]['steps_per_second']:.0f} steps/s) | devinterp {dev:.2f} s "
                     f"({results['devinterp_source']}){floor} | {dev / s:.1f}× faster | ≥ 10× |")
    fixed = k32.get("sgld_fixed_step")
    if fixed:
        s = fixed["sample_seconds"]
        floor = f"; {s / bare_sgld['step']:.2f}× the bare step" if bare_sgld else ""
        lines.append(f"| 2 | sgld at devinterp's step (ε = 1e-5 given: no step search, no "
                     f"pilot; devinterp's own work) | {s:.2f} s "
                     f"({fixed['steps_per_second']:.0f} steps/s) | devinterp {dev:.2f} s"
                     f"{floor} | {dev / s:.1f}× faster | ≥ 10× |")
    for label in ("cold", "warm"):
        o = results["overhead"][label]
        lines.append(f"| 3 | per-job overhead, {label} cache | {o['overhead']:.2f} s | "
                     f"wall {o['wall']:.2f} s − sampling {o['sample_seconds']:.2f} s | — | "
                     f"{'≤ 1.5 s' if label == 'warm' else '—'} |")
    p = results["pipeline"]
    probe = p.get("slurm_probe")
    lines += [
        "| 4 | `scontrol show config` (the Slurm plugin's probe in every `snakemake` start) | "
        + ("no Slurm client | — | — | — |" if probe is None else f"{probe:.2f} s | — | — | — |"),
        f"| 4 | smoke grid end to end, cold JAX cache | {p['cold_wall']:.1f} s | — | — | — |",
        f"| 4 | smoke grid end to end (1 target × {p['jobs']} samplers, --cores {p['cores']}, "
        f"warm cache) | {p['wall']:.1f} s | sampling {p['sampling_sum']:.1f} s, compile {p['compile_sum']:.1f} s "
        f"| {p['wall'] / max(p['sampling_sum'], 1e-9):.1f}× | ≤ 20 s |",
        f"| 4 | no-op rerun | {p['noop_wall']:.2f} s | — | — | ≤ 2 s |",
        f"| 4 | CPU time / (cores × wall) | {p['cpu']:.1f} s CPU | {p['cores']} × {p['wall']:.1f} s "
        f"| {p['cpu'] / (p['cores'] * p['wall']):.2f} | ≤ 1.05 |",
        f"| 5 | peak RSS per job (max) | {max(p['peak_rss_mb'].values()):.0f} MB | "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(p["peak_rss_mb"].items())) + " | — | — |",
        f"| 5 | largest artifact | {max(p['artifact_bytes'].values()) / 1024:.0f} KiB | total "
        f"{sum(p['artifact_bytes'].values()) / 1024:.0f} KiB | — | — |",
    ]
    return "\n".join(lines) + "\n"


def write_head(text: str) -> None:
    """Replace the top of bench/results.md, keeping the other benches' "## " sections."""
    path = BENCH / "results.md"
    old = path.read_text() if path.exists() else ""
    sections = old[old.index("\n## "):] if "\n## " in old else ""
    path.write_text(text.rstrip("\n") + "\n" + sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-batch", nargs="*", default=["hmc", "nuts", "mclmc"])
    parser.add_argument("--sgld", nargs="*", default=["sgld", "sgld_rmsprop", "sgld_adam", "sgnht"])
    parser.add_argument("--no-devinterp", action="store_true")
    parser.add_argument("--only", choices=["overhead"],
                        help="measure one section, print it as JSON and write no results file")
    args = parser.parse_args()
    if args.only == "overhead":
        with tempfile.TemporaryDirectory(prefix="lambda-hat-bench-") as tmp:
            print(json.dumps(job_overhead(workspace(Path(tmp), SMOKE4_SAMPLERS)), indent=2))
        return
    sys.path.insert(0, str(REPO))
    from lambda_hat.samplers import REGISTRY

    full_batch = [k for k in args.full_batch if k in REGISTRY]
    sgld = [k for k in args.sgld if k in REGISTRY]
    samplers = {name: spec for name, spec in SMOKE4_SAMPLERS.items() if spec["kind"] in REGISTRY}
    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
               "full_batch": full_batch, "sgld": sgld}
    results["kernels_f64"] = kernels(True, full_batch, [])
    results["kernels_f32"] = kernels(False, full_batch, sgld)
    if args.no_devinterp:
        results["devinterp_seconds"], results["devinterp_source"] = (
            DEVINTERP_REFERENCE_SECONDS, "issue's reference (not re-measured)")
    else:
        results["devinterp_seconds"], results["devinterp_source"] = devinterp_seconds()
    with tempfile.TemporaryDirectory(prefix="lambda-hat-bench-") as tmp:
        root = workspace(Path(tmp), samplers)
        results["overhead"] = job_overhead(root)
        results["pipeline"] = pipeline(root, cores=2)
    text = table(results)
    write_head(text)
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
