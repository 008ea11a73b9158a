"""Input distributions and noise models of the teacher–student targets: each has the
property its name promises, measured on the built arrays (a DLN at its teacher, so the
residual Y − X·P(w*) is the noise itself)."""

from __future__ import annotations

import numpy as np
import pytest

from support import run_cli, write_config

N = 4000


def build(tmp_path, x=None, noise=None):
    data = {"n": N, **({"x": x} if x else {}), **({"noise": noise} if noise else {})}
    config = write_config(tmp_path, {"targets": {"t": {
        "model": {"kind": "dln", "widths": [4, 3], "rank": 3}, "data": data, "seed": 5}},
        "samplers": {}})
    done = run_cli("build", "--config", config, "--target", "t", "--out", tmp_path / "t",
                   x64=True)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "t" / "target.npz") as arrays:
        X, Y, w = arrays["X"], arrays["Y"], arrays["w_star"]
    return X, Y - X @ w.reshape(4, 3)


def test_low_rank_inputs_lie_on_a_subspace(tmp_path):
    X, _ = build(tmp_path, x={"kind": "low_rank", "rank": 2})
    singular = np.linalg.svd(X, compute_uv=False)
    assert singular[2] < 1e-10 * singular[0] and singular[1] > 0.5 * singular[0]


def test_mixture_inputs_form_clusters(tmp_path):
    """Three well-separated centres: the inputs' total variance is far above the
    within-cluster variance (4 × 0.2²)."""
    X, _ = build(tmp_path, x={"kind": "mixture", "components": 3, "spread": 5.0,
                              "scale": 0.2})
    assert X.var(axis=0).sum() > 10 * 4 * 0.2**2


def test_heavy_tailed_inputs_have_heavy_tails(tmp_path):
    X, _ = build(tmp_path, x={"kind": "heavy_tailed", "df": 3.0})
    centred = X - X.mean(axis=0)
    kurtosis = np.mean(centred**4, axis=0) / np.mean(centred**2, axis=0) ** 2
    assert np.all(kurtosis > 4.5)  # a Gaussian's is 3


def test_heteroscedastic_noise_grows_with_the_input(tmp_path):
    X, noise = build(tmp_path, noise={"kind": "heteroscedastic", "sigma": 0.1, "slope": 2.0})
    radius = np.linalg.norm(X, axis=1) / 2
    small, large = radius < np.quantile(radius, 0.25), radius > np.quantile(radius, 0.75)
    assert noise[large].std() > 1.8 * noise[small].std()


def test_outliers_are_the_stated_fraction(tmp_path):
    _, noise = build(tmp_path, noise={"kind": "outliers", "sigma": 0.1, "fraction": 0.1,
                                      "outlier_sigma": 10.0})
    far = np.mean(np.any(np.abs(noise) > 1.0, axis=1))
    # P(|N(0, 10²)| > 1) ≈ 0.92 per output, 3 outputs: ≈ 0.1 of rows; binomial sd ≈ 0.005
    assert far == pytest.approx(0.1, abs=0.02)
