"""Acceptance tests of the Snakemake workflow, driven for real in a copy of the repository.

One smoke run (module fixture) serves most assertions; later tests edit that copy's config
and must leave it consistent (every output up to date) for the tests after them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lambda_hat.config import Experiment
from lambda_hat.theory import dln_learning_coefficient

pytestmark = [pytest.mark.workflow, pytest.mark.heavy(minutes=4)]

SUMMARY_JOBS = {("aggregate", ()), ("table", ()), ("plot_summary", ()), ("all", ())}
REQUIRED_COLUMNS = [
    "experiment", "target", "sampler", "kind", "dtype", "n", "d", "beta", "gamma",
    "llc_mean", "llc_std", "llc_mcse", "ess", "r_hat", "true_llc", "rel_error", "ref_llc",
    "grad_evals", "sample_seconds", "status",
]


def copy_repo(repo_root: Path, destination: Path, jax_cache_dir: Path) -> Path:
    """workflow/, config/, profiles/ and examples/ into a fresh directory; the schema symlink is
    copied as a file. The package itself is installed, so the CLI is on PATH."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "config", "profiles", "examples"):
        if (repo_root / name).is_dir():
            shutil.copytree(repo_root / name, destination / name)
    (destination / ".jax_cache").symlink_to(jax_cache_dir, target_is_directory=True)
    return destination


def snakemake(workdir: Path, *args, x64: str | None = None, check: bool = True,
              env_extra: dict | None = None):
    env = {**os.environ, **(env_extra or {})}
    if x64 is not None:
        env["JAX_ENABLE_X64"] = x64
    result = subprocess.run([sys.executable, "-m", "snakemake", *map(str, args)], cwd=workdir,
                            env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")


def planned_jobs(output: str) -> set[tuple[str, tuple]]:
    """(rule, sorted wildcard items without the experiment) for each job a dry run lists."""
    jobs, rule, wildcards = set(), None, ()
    for line in output.splitlines() + [""]:
        header = JOB_HEADER.match(line.strip())  # indented: a job of a group
        if header or not line.strip():
            if rule is not None:
                jobs.add((rule, wildcards))
            rule, wildcards = (header.group(1) if header else None), ()
        elif rule is not None and line.strip().startswith("wildcards:"):
            items = dict(part.strip().split("=", 1) for part in line.split(":", 1)[1].split(","))
            items.pop("experiment", None)
            wildcards = tuple(sorted(items.items()))
    return jobs


def job_stats(output: str) -> dict[str, int]:
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return {}
    counts = {}
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def run_jobs(targets, samplers, arviz: bool = True) -> set:
    """The jobs of these runs: sampling, the run's plot and (the smoke experiment) its
    ArviZ export."""
    rules = ("sample", "plot_run", *(("export_arviz",) if arviz else ()))
    return {(rule, (("sampler", s), ("target", t)))
            for t in targets for s in samplers for rule in rules}


def target_jobs(targets) -> set:
    """The jobs of these targets: the build and the target's plot."""
    return {(rule, (("target", t),)) for t in targets for rule in ("build_target", "plot_target")}


def edit_config(path: Path, change) -> str:
    """Apply change(dict) to a YAML file; returns the old text to restore."""
    old = path.read_text()
    config = yaml.safe_load(old)
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return old


def test_dry_run_of_default_experiment_lists_every_job(repo_root, jax_cache_dir, tmp_path):
    work = copy_repo(repo_root, tmp_path / "repo", jax_cache_dir)
    experiment = Experiment.load(work / "config" / "config.yaml")
    targets, samplers = experiment.target_names, experiment.sampler_names
    result = snakemake(work, "-n", "--cores", "2")
    assert job_stats(result.stdout) == {
        "build_target": len(targets), "plot_target": len(targets),
        "sample": len(targets) * len(samplers),
        "plot_run": len(targets) * len(samplers), "aggregate": 1, "table": 1,
        "plot_summary": 1, "all": 1,
    }
    assert planned_jobs(result.stdout) == (
        target_jobs(targets) | run_jobs(targets, samplers, arviz=False) | SUMMARY_JOBS
    )
    assert not (work / "results").exists()


@pytest.fixture(scope="module")
def smoke(repo_root, jax_cache_dir, tmp_path_factory):
    """The smoke experiment run end to end with --cores 2, from a shell with x64 on; every
    Python process it starts counts its checks of sampler settings (tests/instrument)."""
    work = copy_repo(repo_root, tmp_path_factory.mktemp("smoke") / "repo", jax_cache_dir)
    path = os.pathsep.join(filter(None, [str(repo_root / "tests" / "instrument"),
                                         os.environ.get("PYTHONPATH")]))
    snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml", x64="1",
              env_extra={"PYTHONPATH": path,
                         "LAMBDA_HAT_COUNT_FILE": str(work / VALIDATION_COUNTS)})
    return work


VALIDATION_COUNTS = "validation_counts.jsonl"


def test_each_process_checks_each_sampler_setting_at_most_once(smoke):
    """Planning checks every sampler's settings once; each job trusts the resolved
    experiment it is handed (`Experiment.from_resolved`) and only types it."""
    lines = [json.loads(line) for line in (smoke / VALIDATION_COUNTS).read_text().splitlines()]
    by_role = {}
    for line in lines:
        by_role.setdefault(line["role"], []).append(line)
    (planning,) = by_role["snakemake"]
    for count in ("schema", "check", "typed"):
        assert planning[count] == {"hmc": 1, "sgld": 1}, (count, planning)
    assert planning["snakemake_validate"] == {}
    jobs = by_role["lambda-hat sample"] + by_role["lambda-hat build"]
    assert len(by_role["lambda-hat sample"]) == 2 and len(by_role["lambda-hat build"]) == 1
    for job in jobs:
        assert job["schema"] == job["check"] == job["snakemake_validate"] == {}, job
        assert all(count == 1 for count in job["typed"].values()), job


def smoke_args(*args):
    return [*args, "--configfile", "config/smoke.yaml"]


def read_table(work: Path):
    import pandas as pd

    return pd.read_parquet(work / "results" / "smoke" / "llc.parquet")


def test_smoke_table_has_one_finite_row_per_run(smoke):
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    table = read_table(smoke)
    assert set(REQUIRED_COLUMNS) <= set(table.columns)
    # --configfile replaced the default experiment: none of its targets leaked in.
    expected = {(t, s) for t in config["targets"] for s in config["samplers"]}
    assert set(zip(table["target"], table["sampler"])) == expected
    assert len(table) == len(expected)
    assert all(math.isfinite(value) for value in table["llc_mean"])
    for column in ("wnv", "ess_per_grad_eval", "ess_per_second"):  # docs/workflow.md#files
        assert all(math.isfinite(value) and value > 0 for value in table[column]), column
    assert (table["wnv"] == table["llc_mcse"] ** 2 * table["grad_evals"]).all()
    assert (table["ess_per_grad_eval"] == table["ess"] / table["grad_evals"]).all()
    for name, target in config["targets"].items():
        rows = table[table["target"] == name]
        exact = dln_learning_coefficient(target["model"]["widths"], target["model"]["rank"])
        assert rows["true_llc"].tolist() == pytest.approx([exact.llc] * len(rows))
        hmc = rows[rows["kind"] == "hmc"]["llc_mean"].iloc[0]
        assert rows["ref_llc"].tolist() == pytest.approx([hmc] * len(rows))
    plots = smoke / "results" / "smoke" / "plots"
    assert (plots / "summary.png").stat().st_size > 0
    assert {p.name for p in (plots / "runs" / "dln_small").iterdir()} == {"hmc.png", "sgld.png"}
    assert [p.name for p in (plots / "targets").iterdir()] == ["dln_small.png"]
    assert (smoke / "results" / "smoke" / "llc.html").read_text().count("<tr") == len(expected) + 1


def test_an_explicit_step_size_skips_the_pilot(smoke):
    """smoke.yaml gives SGLD a step size: no pilot runs, and the step is the one given."""
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    summary = json.loads((smoke / "results" / "smoke" / "runs" / "dln_small" / "sgld"
                          / "summary.json").read_text())
    stats = summary["stats"]
    assert stats["pilot_steps"] == 0 and stats["pilot_acceptance"] is None
    assert stats["pilot_target_acceptance"] is None
    assert stats["step_size"] == pytest.approx(config["samplers"]["sgld"]["step_size"], rel=1e-6)
    assert stats["step_size_curvature"] is None and not stats["step_size_auto"]
    # three minibatch gradients per step: the chain's and its half-step twin's two
    # (bias_correction: richardson, the default), two per MALA probe
    assert summary["bias_correction"] == "richardson"
    assert summary["grad_evals"] == pytest.approx(
        summary["chains_total"] * (config["samplers"]["sgld"]["steps"]
                                   * (3 + 2 / stats["eval_every"])
                                   * config["samplers"]["sgld"]["batch_size"]
                                   / config["targets"]["dln_small"]["data"]["n"]), rel=1e-6)


def test_every_job_has_a_log_and_a_benchmark(smoke):
    logs = list((smoke / "logs" / "smoke").rglob("*.log"))
    benchmarks = list((smoke / "benchmarks" / "smoke").rglob("*.tsv"))
    # build, its plot, 2 samples, 2 plots, 2 ArviZ exports, 3 summary jobs
    assert len(logs) == len(benchmarks) == 11


def test_sample_logs_show_progress_and_end_with_the_estimate(smoke):
    """A sample job's log: what runs, the warmup, then progress lines over warmup and
    sampling with an ETA: once the warmup is done (from its pace) and at every 10% of the
    trace, then the estimate."""
    # smoke's sgld has a fixed step: no pilot, so no warmup
    for sampler, points, warmup, every in (("hmc", 200, 100, 1), ("sgld", 100, 0, 20)):
        lines = (smoke / "logs" / "smoke" / "sample" / "dln_small" / f"{sampler}.log") \
            .read_text().splitlines()
        assert f"{points} trace points" in lines[0] and "compiling" in lines[0]
        warming = [line for line in lines if f"{sampler}: warmup:" in line]
        assert warming == ([] if not warmup else [
            f"INFO {sampler}: warmup: {warmup} steps × 2 chains, then {points} trace points"])
        total = warmup + points * every
        progress = [re.search(rf"{sampler}: +(\d+)% of {total} steps × 2 chains \((.*)\) in "
                              r"[\d.]+ s, about ([\d.]+) s left$", line) for line in lines]
        progress = [match.groups() for match in progress if match]
        if warmup:
            assert progress[0][:2] == (f"{round(100 * warmup / total)}", "warmup done")
            progress = progress[1:]
        trace = [int(what.split()[0]) for _, what, _ in progress]
        assert trace == [points * tenth // 10 for tenth in range(1, 11)]
        assert progress[-1][0] == "100" and float(progress[-1][2]) == 0
        assert re.search(r"llc = [\d.]+ ± [\d.]+ \(mcse\), exact 4.5, .* status (ok|warning)$",
                         lines[-1]), lines[-1]


def test_rerun_without_change_has_nothing_to_do(smoke):
    result = snakemake(smoke, *smoke_args("-n", "--cores", "2"))
    assert "Nothing to be done" in result.stdout + result.stderr
    assert planned_jobs(result.stdout) == set()


RECAP = re.compile(r"^λ̂ of \d+ of \d+ runs:$", re.MULTILINE)


def test_a_run_ends_with_the_recap_of_estimates_and_warnings(smoke):
    """Snakemake's own output says "100% done"; after a run that sampled, the onsuccess
    handler adds λ̂ per run and every warning with the log to read."""
    sgld = "results/smoke/runs/dln_small/sgld/summary.json"
    result = snakemake(smoke, *smoke_args("--cores", "2", "--forcerun", sgld))
    assert job_stats(result.stderr)["sample"] == 1
    lines = result.stderr.splitlines()
    start = lines.index("λ̂ of 2 of 2 runs:")
    rows = {line.split()[1]: line.split() for line in lines[start + 2:start + 4]}
    assert set(rows) == {"hmc", "sgld"} and all(row[0] == "dln_small" for row in rows.values())
    warnings = [line for line in lines[start:] if line.startswith("  dln_small/sgld: ")]
    assert warnings and all(line.endswith("(log: logs/smoke/sample/dln_small/sgld.log)")
                            for line in warnings)
    assert rows["sgld"][-1] == "warning"


def test_runs_that_do_not_sample_print_no_recap(smoke):
    """The recap says nothing new unless runs were sampled: not after a replotted summary,
    a no-op run, a dry run or a report."""
    report = smoke / "results" / "smoke" / "report.html"
    calls = {"replot": ["--cores", "2", "--forcerun", "plot_summary"],
             "no-op": ["--cores", "2"], "dry run": ["-n", "--cores", "2"],
             "report": ["--report", report]}
    outputs = {}
    for name, args in calls.items():
        result = snakemake(smoke, *smoke_args(*args))
        outputs[name] = result.stdout + result.stderr
        assert not RECAP.search(outputs[name]), (name, outputs[name])
    assert job_stats(outputs["replot"]) == {"plot_summary": 1, "all": 1}
    assert "Nothing to be done" in outputs["no-op"]


def test_changing_one_sampler_reruns_only_its_runs(smoke):
    path = smoke / "config" / "smoke.yaml"
    old = edit_config(path, lambda c: c["samplers"]["sgld"].update(step_size=2.0e-4))
    try:
        result = snakemake(smoke, *smoke_args("-n", "--cores", "2"))
    finally:
        path.write_text(old)
    assert planned_jobs(result.stdout) == run_jobs(["dln_small"], ["sgld"]) | SUMMARY_JOBS
    # The rerun reason names the setting that changed, and nothing else.
    (reason,) = [line for line in result.stdout.splitlines() if "Params have changed" in line]
    assert "before: 'sampler.step_size=0.0001' now: 'sampler.step_size=0.0002'" in reason


@pytest.mark.slow
def test_added_target_runs_alone_and_each_run_keeps_its_declared_precision(smoke):
    """Adding a target adds only its jobs; run from a shell with x64 OFF, while the first
    target was run with x64 ON: each run still records its sampler's declared dtype."""
    path = smoke / "config" / "smoke.yaml"
    edit_config(path, lambda c: c["targets"].update(
        dln_b={"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
               "data": {"n": 500}, "seed": 3}))
    plan = snakemake(smoke, *smoke_args("-n", "--cores", "2"))
    assert planned_jobs(plan.stdout) == (
        target_jobs(["dln_b"]) | run_jobs(["dln_b"], ["hmc", "sgld"]) | SUMMARY_JOBS
    )
    snakemake(smoke, *smoke_args("--cores", "2"), x64="0")
    table = read_table(smoke)
    assert len(table) == 4
    declared = {"hmc": "float64", "sgld": "float32"}
    for _, row in table.iterrows():
        assert row["dtype"] == declared[row["sampler"]], (row["target"], row["sampler"])

    # A target's seed changes: its build and runs rerun, the other target's do not.
    old = edit_config(path, lambda c: c["targets"]["dln_b"].update(seed=4))
    try:
        result = snakemake(smoke, *smoke_args("-n", "--cores", "2"))
    finally:
        path.write_text(old)
    assert planned_jobs(result.stdout) == (
        target_jobs(["dln_b"]) | run_jobs(["dln_b"], ["hmc", "sgld"]) | SUMMARY_JOBS
    )


def test_lint_reports_only_the_conda_or_container_suggestion(smoke):
    result = snakemake(smoke, *smoke_args("--lint"), check=False)
    output = result.stdout + result.stderr
    lints = [line.strip() for line in output.splitlines() if line.strip().startswith("* ")]
    assert lints, output
    assert all("conda environment or container" in lint for lint in lints), output


def test_report_contains_the_summary_figure_and_table(smoke):
    report = smoke / "results" / "smoke" / "report.html"
    snakemake(smoke, *smoke_args("--report", report))
    text = report.read_text()
    assert "summary.png" in text and "llc.html" in text and "dln_small.png" in text


@pytest.mark.slow
def test_table_and_report_render_in_a_browser(smoke):
    """What a person sees in headless Chromium: the HTML table has a row per run and no raw
    Python values; in the Snakemake report every item of every category opens, its images
    load and its text holds no raw Python values."""
    from browser import RAW_VALUE, broken_images, chromium, visible_text, wait_for

    report = smoke / "results" / "smoke" / "report.html"
    snakemake(smoke, *smoke_args("--report", report))
    table = read_table(smoke)  # earlier tests may have added a target to the smoke copy
    targets, samplers = list(dict.fromkeys(table["target"])), list(dict.fromkeys(table["sampler"]))
    with chromium() as driver:
        driver.get((smoke / "results" / "smoke" / "llc.html").as_uri())
        rows = wait_for(driver, "return document.querySelectorAll('tbody tr').length")
        assert rows == len(table)
        text = visible_text(driver)
        assert not RAW_VALUE.search(text), RAW_VALUE.findall(text)
        assert "hmc" in text and "sgld" in text and "4.5" in text
        # sorting by a column orders its numbers; typing filters the rows
        column = [h.text for h in driver.find_elements("tag name", "th")].index("λ̂ ± MCSE")
        driver.find_elements("tag name", "th")[column].click()
        shown = driver.execute_script(
            f"return [...document.querySelectorAll('tbody tr')].map(r => "
            f"parseFloat(r.cells[{column}].dataset.value))")
        assert shown == sorted(table["llc_mean"].astype(float).tolist())
        driver.find_element("id", "filter").send_keys("sgld")
        visible = driver.execute_script("return [...document.querySelectorAll('tbody tr')]"
                                        ".filter(r => r.style.display !== 'none').length")
        assert visible == int((table["sampler"] == "sgld").sum())
        assert driver.find_element("id", "shown").text == f"{visible} of {len(table)}"

        def links():
            return {a.text: a for a in driver.find_elements("tag name", "a") if a.text}

        def open_items(path, label=None):
            """Open every item under a category (for one value of a label toggle)."""
            driver.get(report.as_uri())
            wait_for(driver, "return document.body.innerText.includes('Runs')")
            for name in path:
                links()[name].click()
                time.sleep(0.5)
            if label is not None:
                driver.find_element("xpath", f"//*[text()='{label}']").click()
                time.sleep(0.5)
            eyes = driver.find_elements("css selector", "a[iconname=eye]")
            for index in range(len(eyes)):
                driver.find_elements("css selector", "a[iconname=eye]")[index].click()
                time.sleep(1.0)
                assert broken_images(driver) == [], (path, index)
                text = visible_text(driver)
                assert not RAW_VALUE.search(text), (path, index, RAW_VALUE.findall(text))
            return len(eyes)

        assert open_items(["Summary"]) == 2  # the summary figure and the table
        # one figure per run: the sampler is a label toggle; the target a subcategory (a
        # row when there is only one)
        for target in targets:
            path = ["Runs", target] if len(targets) > 1 else ["Runs"]
            assert [open_items(path, sampler) for sampler in samplers] == [1] * len(samplers)


@pytest.mark.parametrize("change, keys", [
    # a typo'd key and a wrong type, both caught by the schema and both named at once
    (lambda c: (c["targets"]["dln_small"].update(sed=1),
                c["samplers"]["hmc"].update(draws="many")),
     ["targets.dln_small", "'sed'", "samplers.hmc.draws"]),
    # a key the sampler kind does not know (checked against the sampler registry)
    (lambda c: c["samplers"]["sgld"].update(step_sze=1.0e-4), ["samplers.sgld.step_sze"]),
    # an unknown top-level key hides nothing: the sampler-kind typo is named with it
    (lambda c: (c.update(posterier={}), c["samplers"]["sgld"].update(kind="sgdl")),
     ["<top level>: unknown key(s) 'posterier'", "samplers.sgld.kind: unknown sampler kind"]),
], ids=["schema", "sampler-key", "top-level-key"])
def test_invalid_config_names_the_bad_keys_and_starts_no_job(smoke, tmp_path, change, keys):
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    change(config)
    work = tmp_path / "repo"
    shutil.copytree(smoke / "workflow", work / "workflow")
    (work / "config").mkdir()
    (work / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(work, "--cores", "1", "--configfile", "config/bad.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for key in keys:
        assert key in output, output
    assert "config/bad.yaml" in output
    assert "Traceback" not in output and 'File "' not in output  # the problems, nothing else
    assert not (work / "results").exists() and not (work / "logs").exists()


def fake_run(run_dir: Path, target: str, sampler: str, kind: str, llc: float, *,
             true_llc=None, elbo: bool = False, warnings: tuple[str, ...] = ()) -> Path:
    """A run directory as `lambda-hat sample` writes it (no sampling: plots and table only)."""
    import numpy as np

    from lambda_hat.artifacts import write_npz
    from lambda_hat.summary import write_summary
    from records import run_summary

    rng = np.random.default_rng(0)
    loss = 0.01 + 0.001 * rng.random((3, 200))
    loss[2, 150] = np.nan  # a failed chain must not break the plot
    traces = {"loss": loss, "grad_evals_at": np.arange(1, 201) * 0.25,
              "burn_in": np.asarray(100), "loss_star": np.asarray(0.01)}
    if elbo:
        traces["warmup_elbo"] = -np.linspace(10, 1, 50)[None, :]
    write_npz(run_dir / "trace.npz", traces)
    write_summary(run_dir / "summary.json", run_summary(
        experiment="unit", target=target, sampler=sampler, kind=kind,
        dtype="float32", n=100, d=10, beta=0.2, gamma=1.0, nbeta=20.0,
        llc_mean=llc, llc_std=0.1, llc_mcse=None if elbo else 0.05,
        ess=None if elbo else 150.0, r_hat=None, true_llc=true_llc,
        rel_error=None if true_llc is None else (llc - true_llc) / true_llc,
        grad_evals=150.0, sample_seconds=0.5, status="warning" if warnings else "ok",
        warnings=warnings,
        settings={"kind": kind, "step_size": 1.0e-5}, markov_chain=not elbo,
        loss_trace="iid_draws" if elbo else "minibatch_mean"))
    return run_dir / "summary.json"


def test_table_and_figures_without_truth_or_hmc_reference(tmp_path):
    """No exact λ and no HMC run: true_llc and ref_llc are nulls; VI's ELBO is drawn."""
    import pandas as pd

    from lambda_hat.aggregate import aggregate_runs
    from lambda_hat.plots import plot_run, plot_summary

    summaries = [fake_run(tmp_path / "a" / "sgld", "a", "sgld", "sgld", 3.0),
                 fake_run(tmp_path / "a" / "vi", "a", "vi", "vi", 2.5, elbo=True)]
    aggregate_runs(summaries, tmp_path / "llc.parquet")
    aggregate_runs(summaries, tmp_path / "llc.html")
    table = pd.read_parquet(tmp_path / "llc.parquet")
    assert set(REQUIRED_COLUMNS) <= set(table.columns) and len(table) == 2
    assert table["true_llc"].isna().all() and table["ref_llc"].isna().all()
    assert table["llc_mcse"].isna().tolist() == [False, True]
    assert table["wnv"].iloc[0] == pytest.approx(0.05**2 * 150.0)  # MCSE² × grad evals
    assert table["wnv"].isna().tolist() == [False, True]
    plot_run(tmp_path / "a" / "vi", tmp_path / "vi.png")
    plot_summary(tmp_path / "llc.parquet", tmp_path / "summary.png")
    for name in ("vi.png", "summary.png", "llc.html"):
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(Exception, match="unknown table format"):
        aggregate_runs(summaries, tmp_path / "llc.xlsx")


def test_warnings_are_a_list_of_strings_in_every_output(tmp_path):
    """A warning's text may hold "; " (or any separator): the table keeps each warning whole,
    in Parquet a list<string> column (also when no run warns), in summary.json an array, in
    CSV a JSON array, in the HTML table one escaped line each."""
    import pandas as pd
    import pyarrow.parquet as pq

    from lambda_hat.aggregate import aggregate_runs

    warnings = ("R-hat 1.0418 > 1.01: chains disagree; sample longer (more steps)",
                "ESS 51 < 100: the MCSE is unreliable")
    warned = fake_run(tmp_path / "a" / "sgld", "a", "sgld", "sgld", 3.0, warnings=warnings)
    quiet = fake_run(tmp_path / "a" / "hmc", "a", "hmc", "hmc", 3.1)
    assert json.loads(warned.read_text())["warnings"] == list(warnings)
    for summaries, name in (([warned, quiet], "llc"), ([quiet], "quiet")):
        for suffix in (".parquet", ".csv", ".html"):
            aggregate_runs(summaries, tmp_path / f"{name}{suffix}")
        field = pq.read_schema(tmp_path / f"{name}.parquet").field("warnings")
        assert str(field.type) == "list<element: string>", (name, field.type)
    table = pd.read_parquet(tmp_path / "llc.parquet")
    assert [list(found) for found in table["warnings"]] == [list(warnings), []]
    csv = pd.read_csv(tmp_path / "llc.csv")
    assert [json.loads(found) for found in csv["warnings"]] == [list(warnings), []]
    page = (tmp_path / "llc.html").read_text()
    assert ("<td>R-hat 1.0418 &gt; 1.01: chains disagree; sample longer (more steps)<br>"
            "ESS 51 &lt; 100: the MCSE is unreliable</td></tr>") in page


def test_gallery_is_opt_in_and_lists_every_sampler(smoke):
    """`snakemake gallery` copies each run's figure into results/<experiment>/gallery/ and
    writes a page with one row per sampler, whose λ̂ is the table's; `all` never writes there,
    and neither writes into the checkout's docs/."""
    gallery = smoke / "results" / "smoke" / "gallery"
    assert not gallery.exists()
    result = snakemake(smoke, *smoke_args("--cores", "2", "gallery"))
    assert not (smoke / "docs").exists()
    assert not RECAP.search(result.stderr)  # it sampled nothing
    page = (gallery / "index.md").read_text()
    table = read_table(smoke)
    rows, target = [], None
    for line in page.splitlines():
        if line.startswith("## Target "):
            target = line.split("`")[1]
        elif line.startswith("| ") and not line.startswith(("| sampler", "| ---")):
            rows.append((target, *line.strip("| ").split(" | ")))
    assert sorted((row[0], row[1]) for row in rows) == sorted(
        zip(table["target"], table["sampler"]))
    for target, sampler, _, estimate, *_, figure in rows:
        llc = table.loc[(table["sampler"] == sampler) & (table["target"] == target),
                        "llc_mean"].iloc[0]
        assert float(estimate.split(" ± ")[0]) == pytest.approx(llc, rel=1e-3)
        assert figure == f"[figure](runs/{target}/{sampler}.png)"
        assert (gallery / "runs" / target / f"{sampler}.png").stat().st_size
        assert (gallery / "targets" / f"{target}.png").is_file()
    assert (gallery / "summary.png").is_file()


def test_arviz_export_of_every_run(smoke):
    """exports: {arviz: true} gives each run a trace.nc holding its kept L_n draws."""
    az = pytest.importorskip("arviz")
    for sampler in ("hmc", "sgld"):
        run = smoke / "results" / "smoke" / "runs" / "dln_small" / sampler
        data = az.from_netcdf(run / "trace.nc")
        with np.load(run / "trace.npz") as trace:
            kept = trace["loss"][:, int(trace["burn_in"]):]
        np.testing.assert_array_equal(data.posterior["L_n"].values, kept)
        assert data.attrs["sampler"] == sampler


DIGITS_TEST_STEPS = 4000
"""SGLD steps per digits run here (the example's default is 40,000): a tenth of the draws
still puts the final run's MCSE under a tenth of λ̂, the bound the test asserts."""


@pytest.fixture(scope="module")
def digits(repo_root, jax_cache_dir, tmp_path_factory):
    """The digits example (a python target on real data, with checkpoints) end to end, with
    short sampler runs: the test is of the example's plumbing, not of its λ̂."""
    pytest.importorskip("sklearn")
    work = copy_repo(repo_root, tmp_path_factory.mktemp("digits") / "repo", jax_cache_dir)
    edit_config(work / "config" / "digits.yaml",
                lambda c: c["samplers"]["sgld"].update(steps=DIGITS_TEST_STEPS))
    started = time.monotonic()
    snakemake(work, "--cores", "2", "--configfile", "config/digits.yaml")
    print(f"\ndigits example: {time.monotonic() - started:.1f} s with --cores 2")
    return work


@pytest.mark.slow
def test_digits_example_estimates_along_training(digits):
    """One run per checkpoint with its training step; L_n falls along training; λ̂ at w* is
    positive with an MCSE; the report carries the trajectory plot."""
    import pandas as pd

    table = pd.read_parquet(digits / "results" / "digits" / "llc.parquet")
    assert table["target"].tolist() == ["digits", "digits@30", "digits@100", "digits@400"]
    assert table["checkpoint"].tolist()[1:] == ["30", "100", "400"]
    assert table["checkpoint_of"].tolist()[1:] == ["digits"] * 3
    assert table["training_step"].tolist() == [1500, 30, 100, 400]
    assert table["d"].tolist() == [64 * 16 + 16 + 16 * 10 + 10] * 4 and set(table["n"]) == {1797}
    by_step = table.sort_values("training_step")
    assert by_step["loss_star"].is_monotonic_decreasing
    final = table.iloc[0]
    assert final["llc_mean"] > 0 and 0 < final["llc_mcse"] < 0.1 * final["llc_mean"]
    report = digits / "results" / "digits" / "report.html"
    snakemake(digits, "--report", report, "--configfile", "config/digits.yaml")
    assert "checkpoints.png" in report.read_text()


@pytest.mark.slow
def test_adding_a_checkpoint_runs_only_its_jobs(digits):
    path = digits / "config" / "digits.yaml"
    old = edit_config(path, lambda c: c["targets"]["digits"]["checkpoints"].append(200))
    try:
        result = snakemake(digits, "-n", "--cores", "2", "--configfile", "config/digits.yaml")
    finally:
        path.write_text(old)
    assert planned_jobs(result.stdout) == (
        {("build_target", (("target", "digits@200"),))}
        | run_jobs(["digits@200"], ["sgld"], arviz=False)
        | SUMMARY_JOBS | {("plot_checkpoints", ())})


@pytest.mark.slow
def test_editing_a_python_target_file_reruns_its_builds_and_runs(digits):
    """The model file is an input of every build of its target (checkpoints included)."""
    path = digits / "examples" / "digits.py"
    old = path.read_text()
    path.write_text(old + "\n# edited\n")
    try:
        result = snakemake(digits, "-n", "--cores", "2", "--configfile", "config/digits.yaml")
    finally:
        path.write_text(old)
    targets = ["digits", "digits@30", "digits@100", "digits@400"]
    assert planned_jobs(result.stdout) == (
        target_jobs(["digits"]) | {("build_target", (("target", t),)) for t in targets}
        | run_jobs(targets, ["sgld"], arviz=False) | SUMMARY_JOBS | {("plot_checkpoints", ())})


GRID = {
    "experiment": "grid",
    "targets": {"dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
                        "grid": {"data.n": [300, 1000]}, "replicates": 2}},
    "samplers": {"hmc": {"kind": "hmc", "chains": 2, "warmup": 50, "draws": 100}},
}


@pytest.fixture(scope="module")
def grid(repo_root, jax_cache_dir, tmp_path_factory):
    """A 2-value × 2-replicate grid of targets, run end to end."""
    work = copy_repo(repo_root, tmp_path_factory.mktemp("grid") / "repo", jax_cache_dir)
    (work / "config" / "grid.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    snakemake(work, "--cores", "2", "--configfile", "config/grid.yaml")
    return work


@pytest.mark.slow
def test_a_grid_gives_one_run_per_point_with_its_values_as_columns(grid):
    import pandas as pd

    table = pd.read_parquet(grid / "results" / "grid" / "llc.parquet")
    assert table["target"].tolist() == ["dln.n-300.rep-0", "dln.n-300.rep-1",
                                        "dln.n-1000.rep-0", "dln.n-1000.rep-1"]
    assert table["target.data.n"].tolist() == [300, 300, 1000, 1000]
    assert table["n"].tolist() == [300, 300, 1000, 1000]
    assert table["target.replicate"].tolist() == [0, 1, 0, 1]
    assert set(table["grid_of"]) == {"dln"} and table["seed"].notna().all()
    # distinct seeds per replicate: different data, so different L_n(w*) at the same n
    assert table["loss_star"].nunique() == 4
    assert (grid / "results" / "grid" / "plots" / "grid.png").stat().st_size > 0


@pytest.mark.slow
def test_adding_a_grid_value_runs_only_its_jobs(grid):
    path = grid / "config" / "grid.yaml"
    old = edit_config(path, lambda c: c["targets"]["dln"]["grid"]["data.n"].append(500))
    try:
        result = snakemake(grid, "-n", "--cores", "2", "--configfile", "config/grid.yaml")
    finally:
        path.write_text(old)
    added = ["dln.n-500.rep-0", "dln.n-500.rep-1"]
    assert planned_jobs(result.stdout) == (
        target_jobs(added) | run_jobs(added, ["hmc"], arviz=False) | SUMMARY_JOBS
        | {("plot_grid", ())})
