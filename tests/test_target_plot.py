"""The target plot's data: the student at w* against its teacher on held-out inputs, and the
training curve that produced w*."""

from __future__ import annotations

import json

import numpy as np

from support import run_cli, write_config


def build(tmp_path, **entry) -> tuple[dict, dict]:
    config = write_config(tmp_path, {"targets": {"t": {
        "model": {"kind": "mlp", "in_dim": 3, "widths": [6], "out_dim": 2}, "data": {"n": 300},
        "seed": 2, **entry}}, "samplers": {}})
    out = tmp_path / "t"
    done = run_cli("build", "--config", config, "--target", "t", "--out", out, x64=True)
    assert done.returncode == 0, done.stderr
    with np.load(out / "target.npz") as arrays:
        return json.loads((out / "target.json").read_text()), dict(arrays)


def test_a_student_at_its_teacher_matches_it_on_held_out_inputs(tmp_path):
    record, arrays = build(tmp_path, w_star="teacher")
    assert arrays["plot_reference"].shape == (300, 2)
    np.testing.assert_array_equal(arrays["plot_prediction"], arrays["plot_reference"])
    assert "training_loss" not in arrays and record["training_final_loss"] is None


def test_a_trained_student_records_its_training_curve_and_is_plotted(tmp_path):
    record, arrays = build(tmp_path, training={"steps": 500})
    history = arrays["training_loss"]
    assert history.shape == (500,) and history[-1] < 0.1 * history[0]
    assert history[-1] == record["training_final_loss"]
    # A student trained on noisy data is near its teacher on fresh inputs, not equal to it.
    gap = np.abs(arrays["plot_prediction"] - arrays["plot_reference"])
    assert 0 < gap.mean() < 0.3 * np.abs(arrays["plot_reference"]).mean()
    png = tmp_path / "t.png"
    done = run_cli("plot-target", "--target-dir", tmp_path / "t", "--out", png, x64=False,
                   threads=None)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
