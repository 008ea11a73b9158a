"""The teacher–student MLP's `layer_norm` and `init` options, measured on built targets."""

from __future__ import annotations

import numpy as np
import pytest

from support import run_cli, write_config

IN, HIDDEN, OUT = 20, 60, 2


def build_teacher(tmp_path, **options) -> dict:
    """A noiseless MLP target at its teacher (w* = the teacher's weights)."""
    config = write_config(tmp_path, {"targets": {"t": {
        "model": {"kind": "mlp", "in_dim": IN, "widths": [HIDDEN], "out_dim": OUT, **options},
        "data": {"n": 500, "noise": {"sigma": 0.0}}, "w_star": "teacher", "seed": 3}},
        "samplers": {}})
    done = run_cli("build", "--config", config, "--target", "t", "--out", tmp_path / "t",
                   x64=True)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "t" / "target.npz") as arrays:
        return dict(arrays)


def layers(w):
    """(W1, b1, W2, b2) of the flat vector: weights (fan_in, fan_out), then biases."""
    sizes = [IN * HIDDEN, HIDDEN, HIDDEN * OUT, OUT]
    W1, b1, W2, b2 = np.split(w, np.cumsum(sizes)[:-1])
    return W1.reshape(IN, HIDDEN), b1, W2.reshape(HIDDEN, OUT), b2


@pytest.mark.parametrize("kind, variance", [
    ("lecun", lambda fan_in, fan_out: 1 / fan_in),
    ("he", lambda fan_in, fan_out: 2 / fan_in),
    ("xavier", lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
    ("normal", lambda fan_in, fan_out: 1.0),
])
def test_init_draws_weights_of_the_stated_scale(tmp_path, kind, variance):
    """1200 first-layer weights: the sample standard deviation is within ≈ 2% (1 sd) of the
    truth, so 8% is 4 sd."""
    W1, b1, _, _ = layers(build_teacher(tmp_path, init={"kind": kind, "scale": 3.0})["w_star"])
    assert W1.std() == pytest.approx(3.0 * np.sqrt(variance(IN, HIDDEN)), rel=0.08)
    assert not b1.any()


def test_layer_norm_standardises_the_hidden_layer(tmp_path):
    """Y = tanh(LN(X W1 + b1)) W2 + b2, LN without gain or shift, recomputed in NumPy."""
    arrays = build_teacher(tmp_path, layer_norm=True)
    W1, b1, W2, b2 = layers(arrays["w_star"])
    pre = arrays["X"] @ W1 + b1
    centred = pre - pre.mean(axis=1, keepdims=True)
    normed = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(arrays["Y"], np.tanh(normed) @ W2 + b2, rtol=1e-10, atol=1e-12)
    plain = np.tanh(pre) @ W2 + b2
    assert np.abs(arrays["Y"] - plain).max() > 0.1
