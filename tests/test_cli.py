"""The CLI end to end: files written, precision guard, determinism, clear errors."""

import json

import numpy as np
import pytest

from support import run_cli, write_config

TINY = {
    "experiment": "tiny",
    "targets": {
        "dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1}, "data": {"n": 500},
                "seed": 3},
        "mlp": {"model": {"kind": "mlp", "in_dim": 2, "widths": [4], "out_dim": 1},
                "data": {"n": 200}, "training": {"steps": 200}, "seed": 4},
    },
    "samplers": {
        "hmc": {"kind": "hmc", "warmup": 60, "draws": 60, "chains": 2,
                "num_integration_steps": 4},
        "sgld": {"kind": "sgld", "steps": 400, "batch_size": 32, "chains": 2},
    },
}
SUMMARY_KEYS = {"llc_mean", "llc_std", "llc_mcse", "ess", "r_hat", "true_llc", "n", "d", "beta",
                "gamma", "dtype", "grad_evals", "compile_seconds", "sample_seconds", "seed",
                "settings"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = write_config(root, TINY)
    for target in TINY["targets"]:
        done = run_cli("build", "--config", config, "--target", target,
                       "--out", root / "targets" / target, x64=True)
        assert done.returncode == 0, done.stderr
    return root, config


def sample(root, config, target, sampler, out, x64):
    return run_cli("sample", "--config", config, "--target-dir", root / "targets" / target,
                   "--sampler", sampler, "--out", out, x64=x64)


def test_build_writes_a_described_target(built):
    root, _ = built
    record = json.loads((root / "targets" / "dln" / "target.json").read_text())
    assert record["n"] == 500 and record["d"] == 3 * 2 + 2 * 3
    assert record["true_llc"] == pytest.approx(3.5)  # reduced-rank regression (3, 2, 3), r = 1
    assert record["loss_star"] == pytest.approx(0.0, abs=1e-20)
    assert record["dtype"] == "float64" and record["seed"] == 3
    assert {"jax", "blackjax", "numpy", "python"} <= set(record["versions"])
    with np.load(root / "targets" / "dln" / "target.npz") as arrays:
        assert arrays["X"].shape == (500, 3) and arrays["w_star"].shape == (12,)
    mlp = json.loads((root / "targets" / "mlp" / "target.json").read_text())
    assert mlp["true_llc"] is None and mlp["d"] == 2 * 4 + 4 + 4 + 1
    assert mlp["training_final_loss"] == pytest.approx(mlp["loss_star"], rel=0.05)


def test_a_build_by_hand_gives_the_pipelines_w_star(built, tmp_path):
    """`lambda-hat build` without --threads takes the workflow's one thread, so a trained w*
    made by hand is the pipeline's bit for bit (the fixture built with --threads 1)."""
    root, config = built
    done = run_cli("build", "--config", config, "--target", "mlp", "--out", tmp_path / "mlp",
                   x64=True, threads=None)
    assert done.returncode == 0, done.stderr
    by_hand = json.loads((tmp_path / "mlp" / "target.json").read_text())
    piped = json.loads((root / "targets" / "mlp" / "target.json").read_text())
    assert by_hand["threads"] == piped["threads"] == 1
    assert by_hand["hash"] == piped["hash"] and by_hand["loss_star"] == piped["loss_star"]


def test_build_writes_a_quadratic_target(tmp_path):
    """L_n = ½||w − w*||²: no data columns, λ = d/2 exactly, L_n(w*) = 0."""
    config = write_config(tmp_path, {"targets": {"q": {"model": {"kind": "quadratic", "d": 7},
                                                       "data": {"n": 300}, "seed": 2}},
                                     "samplers": {}})
    done = run_cli("build", "--config", config, "--target", "q", "--out", tmp_path / "q",
                   x64=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "q" / "target.json").read_text())
    assert (record["n"], record["d"], record["true_llc"]) == (300, 7, 3.5)
    assert record["loss_star"] == 0.0
    with np.load(tmp_path / "q" / "target.npz") as arrays:
        assert arrays["X"].shape == (300, 0) and arrays["w_star"].shape == (7,)
        assert np.all(arrays["w_star"] != 0)


@pytest.mark.parametrize("target", ["dln", "mlp"])
def test_sample_writes_trace_and_summary_and_is_deterministic(built, target):
    root, config = built
    for sampler, x64 in (("hmc", True), ("sgld", False)):
        first, second = root / "a" / target / sampler, root / "b" / target / sampler
        for out in (first, second):
            done = sample(root, config, target, sampler, out, x64)
            assert done.returncode == 0, done.stderr
        summary = json.loads((first / "summary.json").read_text())
        assert SUMMARY_KEYS <= set(summary)
        assert np.isfinite(summary["llc_mean"])
        assert summary["dtype"] == ("float64" if x64 else "float32")
        assert summary["settings"]["kind"] == sampler and summary["seed"] == 0
        with np.load(first / "trace.npz") as a, np.load(second / "trace.npz") as b:
            assert a["loss"].dtype == np.dtype(summary["dtype"])
            assert a["loss"].shape[0] == 2
            np.testing.assert_array_equal(a["loss"], b["loss"])
        again = json.loads((second / "summary.json").read_text())
        assert again["llc_mean"] == summary["llc_mean"]


@pytest.mark.parametrize("sampler, x64", [("hmc", False), ("sgld", True)])
def test_precision_guard_refuses_a_mismatched_process(built, sampler, x64):
    root, config = built
    out = root / "guard" / sampler
    done = sample(root, config, "dln", sampler, out, x64)
    assert done.returncode != 0
    wanted = "float64" if sampler == "hmc" else "float32"
    assert f"declares dtype {wanted}" in done.stderr
    assert f"JAX_ENABLE_X64={'1' if wanted == 'float64' else '0'}" in done.stderr
    assert not out.exists()


def _one_line_error(done):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_unknown_target_and_sampler_names(built):
    root, config = built
    out = root / "bad" / "x"
    line = _one_line_error(run_cli("build", "--config", config, "--target", "nope",
                                   "--out", out, x64=True))
    assert "targets.nope" in line and "known: dln, mlp" in line
    line = _one_line_error(sample(root, config, "dln", "nope", out, x64=True))
    assert "samplers.nope" in line and "known: hmc, sgld" in line
    assert not out.exists()


def test_missing_files(built, tmp_path):
    root, config = built
    out = tmp_path / "out"
    line = _one_line_error(run_cli("build", "--config", tmp_path / "missing.yaml",
                                   "--target", "dln", "--out", out, x64=True))
    assert "missing.yaml: file not found" in line
    line = _one_line_error(run_cli("sample", "--config", config, "--target-dir",
                                   tmp_path / "no-target", "--sampler", "hmc", "--out", out,
                                   x64=True))
    assert "no-target" in line and "not found" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "edit, key, message",
    [
        (lambda c: c["targets"]["dln"]["model"].update(rank=5), "targets.dln.model.rank",
         "exceeds the smallest width 2"),
        (lambda c: c["samplers"]["sgld"].update(step_size="1e-5"), "samplers.sgld.step_size",
         "write 1.0e-5"),
        (lambda c: c["samplers"]["sgld"].update(step_size="fast"), "samplers.sgld.step_size",
         "expected a number"),
    ],
)
def test_bad_values_are_named_and_nothing_is_written(tmp_path, edit, key, message):
    config = json.loads(json.dumps(TINY))
    edit(config)
    path = write_config(tmp_path, config)
    out = tmp_path / "out"
    line = _one_line_error(run_cli("build", "--config", path, "--target", "dln", "--out", out,
                                   x64=True))
    assert str(path) in line and key in line and message in line
    assert not out.exists()


def test_help_everywhere():
    for args in ([], ["build"], ["sample"], ["check"]):
        done = run_cli(*args, "--help", x64=False, threads=None)
        assert done.returncode == 0 and "usage:" in done.stdout


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_take_the_users_umask(tmp_path, umask):
    """Results are shared on clusters: every file written gets 0o666 less the umask, as any
    new file would (the atomic write's temporary file starts at 0o600)."""
    import os
    import stat

    config = write_config(tmp_path, {"targets": {"q": {"model": {"kind": "quadratic", "d": 3},
                                                       "data": {"n": 50}}},
                                     "samplers": {"sgld": {"kind": "sgld", "steps": 200,
                                                           "chains": 2}}})
    previous = os.umask(umask)
    try:
        steps = [("build", "--config", config, "--target", "q", "--out", tmp_path / "t"),
                 ("sample", "--config", config, "--target-dir", tmp_path / "t",
                  "--sampler", "sgld", "--out", tmp_path / "r"),
                 ("plot-run", "--run-dir", tmp_path / "r", "--out", tmp_path / "r.png"),
                 ("aggregate", tmp_path / "r" / "summary.json", "--out", tmp_path / "llc.parquet")]
        for args in steps:
            done = run_cli(*args, x64=args[0] == "build")
            assert done.returncode == 0, done.stderr
    finally:
        os.umask(previous)
    written = [tmp_path / "t" / "target.json", tmp_path / "t" / "target.npz",
               tmp_path / "r" / "summary.json", tmp_path / "r" / "trace.npz",
               tmp_path / "r.png", tmp_path / "llc.parquet"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
