"""The restricted LLC (`restrict:`): only the named parameter groups are sampled, the rest
held at w*.

Exact check: a DLN 5 → 3 → 4 → 5 at its full-rank teacher (rank 3, noiseless), every layer
but the middle one frozen. The model is then linear in the free layer W₁: f(x) = x A W₁ B
with A = W₀, B = W₂, so L_n is exactly quadratic in W₁ and λ = rank(W₁ ↦ A W₁ B)/2, the rank
computed here from the Kronecker matrix of that map (vec(A W B) = (Bᵀ ⊗ A) vec W). Being
quadratic, the localized
posterior is Gaussian, so the finite-n value is exact too: nβ E[L_n − L_n(w*)] =
Σ ½ nβh/(nβh + γ) over the Hessian's eigenvalues h = 2 eig(AᵀΣA) ⊗ eig(BBᵀ), Σ = XᵀX/n.
Seeds 2 and 7 have well-curved teachers, so that value is within 1.5% of rank/2 (the bias
bound, computed in the test); HMC's MCSE is ≈ 0.1 (2%).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lambda_hat.errors import ConfigError
from lambda_hat.restrict import Group, Restricted, free_ranges, selected_groups
from support import build_and_sample, run_cli, write_config

GROUPS = [Group("0/weight", 0, 6, 0), Group("0/bias", 6, 8, 0), Group("1/weight", 8, 12, 1),
          Group("1/bias", 12, 13, 1)]


def test_groups_are_chosen_by_layer_and_by_glob():
    assert selected_groups(GROUPS, [1], "r") == GROUPS[2:]
    assert selected_groups(GROUPS, ["*/bias"], "r") == [GROUPS[1], GROUPS[3]]
    assert free_ranges(selected_groups(GROUPS, ["0/bias", 1], "r")) == ((6, 13),)
    with pytest.raises(ConfigError) as error:
        selected_groups(GROUPS, ["2/*"], "exp.yaml: samplers.hmc.restrict")
    assert str(error.value).startswith("exp.yaml: samplers.hmc.restrict: '2/*' names no "
                                       "parameter group; layers 0, 1, paths 0/weight, 0/bias")


def test_the_free_slices_replace_w_star_and_nothing_else():
    import jax.numpy as jnp

    class Flat:
        num_params, loss_eval_cost = 13, 0.5

    restricted = Restricted(Flat(), ((2, 4), (8, 13)), 13)
    w_star = jnp.arange(13.0)
    full = restricted.full(-jnp.arange(1.0, 8.0), w_star)
    assert restricted.num_params == 7
    np.testing.assert_array_equal(full, [0, 1, -1, -2, 4, 5, 6, 7, -3, -4, -5, -6, -7])


def experiment(seed: int) -> dict:
    return {"experiment": "restrict",
            "targets": {"t": {"model": {"kind": "dln", "widths": [5, 3, 4, 5], "rank": 3},
                              "data": {"n": 10000}, "seed": seed}},
            "samplers": {"hmc": {"kind": "hmc", "restrict": [1]}}}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 7])
def test_hmc_recovers_half_the_rank_of_the_free_layer(tmp_path, seed):
    summary = build_and_sample(tmp_path, experiment(seed), "t", {"hmc": True})["hmc"]
    with np.load(tmp_path / "targets" / "t" / "target.npz") as arrays:
        w, X = arrays["w_star"], arrays["X"]
    A, B = w[:15].reshape(5, 3), w[27:].reshape(4, 5)
    # vec(A W B) = (Bᵀ ⊗ A) vec(W) in column-major order
    rank = np.linalg.matrix_rank(np.kron(B.T, A))
    assert rank == 12 and summary["d"] == 12 and summary["restricted_to"] == ["1/weight"]
    assert summary["true_llc"] is None  # the network's exact λ is not the layer's
    sigma = X.T @ X / len(X)
    h = 2 * np.outer(np.linalg.eigvalsh(A.T @ sigma @ A), np.linalg.eigvalsh(B @ B.T)).ravel()
    nbeta, gamma = summary["nbeta"], summary["gamma"]
    finite_n = float(np.sum(0.5 * nbeta * h / (nbeta * h + gamma)))
    assert rank / 2 - finite_n < 0.015 * rank / 2
    assert abs(summary["llc_mean"] - finite_n) < 4 * summary["llc_mcse"]
    assert summary["llc_mean"] == pytest.approx(rank / 2, rel=0.05)


def test_an_unknown_group_stops_the_run_before_sampling(tmp_path):
    config = experiment(2)
    config["samplers"]["hmc"]["restrict"] = ["3/weight"]
    path = write_config(tmp_path, config)
    done = run_cli("build", "--config", path, "--target", "t", "--out", tmp_path / "t", x64=True)
    assert done.returncode == 0, done.stderr
    done = run_cli("sample", "--config", path, "--target-dir", tmp_path / "t", "--sampler",
                   "hmc", "--out", tmp_path / "run", x64=True)
    assert done.returncode == 1
    assert (f"{path}: samplers.hmc.restrict: '3/weight' names no parameter group; layers "
            "0, 1, 2") in done.stderr
    assert not any((tmp_path / "run").glob("*"))


def test_a_python_target_is_restricted_by_pytree_path(tmp_path, repo_root):
    """examples/mlp_classifier.py's params are a dict {w1, b1, w2, b2}: `w2` is its
    output layer's 4 × 3 weights."""
    import shutil

    shutil.copytree(repo_root / "examples", tmp_path / "examples")
    path = write_config(tmp_path, {"targets": {"clf": {"model": {
        "kind": "python", "entry": "examples/mlp_classifier.py:make_target",
        "options": {"hidden": 4, "n": 300}}, "training": {"steps": 300}}},
        "samplers": {"hmc": {"kind": "hmc", "restrict": ["w2"], "warmup": 50, "draws": 50}}})
    for command in (["build", "--config", path, "--target", "clf", "--out", tmp_path / "clf"],
                    ["sample", "--config", path, "--target-dir", tmp_path / "clf",
                     "--sampler", "hmc", "--out", tmp_path / "run"]):
        done = run_cli(*command, x64=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["restricted_to"] == ["w2"] and summary["d"] == 12
