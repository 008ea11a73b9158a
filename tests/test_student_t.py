"""The Student-t regression likelihood (`loss: {kind: student_t}`).

A linear Student-t regression is regular: its K(w) has a positive-definite Hessian at the
truth, so λ = d/2 exactly, as for the squared error (docs/theory.md §3.1). Setting: a one-layer
DLN 4 → 3 (d = 12, λ = 6), Student-t noise with the likelihood's own df and scale, w* the
trained optimum, n = 5000, β = 1/log n, γ = 1. Bias bound: the localizer moves λ̂ by about
γ/(nβ·h) with h ≈ (ν+1)/((ν+3)s²) the per-point curvature, under 0.2% here; HMC's MCSE is
≈ 0.08 (1.3%), so 5% is ≈ 4 MCSE plus that bias.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from support import build_and_sample

pytestmark = pytest.mark.heavy(minutes=1)

DF, SCALE = 3.0, 0.5


def experiment(seed: int) -> dict:
    return {
        "experiment": "student_t",
        "targets": {"t": {
            "model": {"kind": "dln", "widths": [4, 3], "rank": 3},
            "data": {"n": 5000, "noise": {"kind": "student_t", "sigma": SCALE, "df": DF}},
            "loss": {"kind": "student_t", "df": DF, "scale": SCALE},
            "w_star": "trained", "training": {"steps": 3000}, "seed": seed}},
        "samplers": {"hmc": {"kind": "hmc"}},
    }


def student_t_loss(residual: np.ndarray) -> float:
    z = residual / SCALE
    return float(np.mean(np.sum(0.5 * (DF + 1) * np.log1p(z * z / DF), axis=-1)))


def gradient(X, Y, w) -> np.ndarray:
    residual = X @ w - Y
    return X.T @ ((DF + 1) * residual / (DF * SCALE**2 + residual**2)) / len(X)


SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{seed: (directory, HMC summary)}: the three seeds' builds and runs, two at a time."""
    root = tmp_path_factory.mktemp("student-t")

    def one(seed):
        return build_and_sample(root / str(seed), experiment(seed), "t", {"hmc": True})["hmc"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        return {seed: (root / str(seed), summary)
                for seed, summary in zip(SEEDS, pool.map(one, SEEDS))}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_hmc_recovers_half_the_dimension_of_a_linear_student_t_regression(runs, seed):
    directory, summary = runs[seed]
    with np.load(directory / "targets" / "t" / "target.npz") as arrays:
        X, Y, w_star = arrays["X"], arrays["Y"], arrays["w_star"].reshape(4, 3)
    residual = X @ w_star - Y
    # L_n(w*) is the Student-t loss, and w* was trained on it: its gradient there is far
    # smaller than at least squares (the squared error's minimum).
    assert summary["loss_star"] == pytest.approx(student_t_loss(residual), rel=1e-9)
    least_squares = np.linalg.lstsq(X, Y, rcond=None)[0]
    assert np.linalg.norm(gradient(X, Y, w_star)) < 0.1 * np.linalg.norm(
        gradient(X, Y, least_squares))
    assert summary["fraction_below_loss_star"] < 0.05
    assert summary["true_llc"] == summary["d"] / 2 == 6.0
    assert summary["llc_mean"] == pytest.approx(6.0, rel=0.05), summary["llc_mcse"]


@pytest.mark.slow
def test_a_teacher_w_star_off_the_t_losss_minimum_is_not_silent(tmp_path):
    """The case that read 7.02 ± 0.08 for λ = 7.5 with status ok: a one-layer DLN (d = 15)
    under Student-t noise and loss, w* the teacher (the default), default HMC. The teacher
    is not the t-loss's minimum; the drop its gradient causes (≈ 4.5% of λ̂, under the old
    fixed 5%) is several MCSE, so the run warns and names the fix."""
    config = experiment(0)
    target = config["targets"]["t"]
    target["model"]["widths"] = [5, 3]
    del target["w_star"], target["training"]
    summary = build_and_sample(tmp_path, config, "t", {"hmc": True})["hmc"]
    assert summary["true_llc"] == summary["d"] / 2 == 7.5
    drop = summary["optimum"]["stationarity_drop"]
    assert drop > 2 * summary["llc_mcse"], (drop, summary["llc_mcse"])
    assert summary["status"] == "warning"
    assert any("not stationary" in w and "w_star: trained" in w for w in summary["warnings"])
