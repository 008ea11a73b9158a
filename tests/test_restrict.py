"""The restricted LLC (`restrict:`): only the named parameter groups, or parts of them, are
sampled, the rest held at w*.

Exact check: a DLN 5 → 3 → 4 → 5 at its full-rank teacher (rank 3, noiseless), every layer
but the middle one frozen. The model is then linear in the free layer W₁: f(x) = x A W₁ B
with A = W₀, B = W₂, so L_n is exactly quadratic in W₁ and λ = rank(W₁ ↦ A W₁ B)/2, the rank
computed here from the Kronecker matrix of that map (vec(A W B) = (Bᵀ ⊗ A) vec W). Being
quadratic, the localized
posterior is Gaussian, so the finite-n value is exact too: nβ E[L_n − L_n(w*)] =
Σ ½ nβh/(nβh + γ) over the Hessian's eigenvalues h = 2 eig(AᵀΣA) ⊗ eig(BBᵀ), Σ = XᵀX/n.
Seeds 2 and 7 have well-curved teachers, so that value is within 1.5% of rank/2 (the bias
bound, computed in the test); HMC's MCSE is ≈ 0.1 (2%).

Exact check of a slice (`kernel[:, 2, :]`): a python target whose output is
Σ_h x K_h P_h over the heads of a fused kernel K [inputs, heads, outputs], with P_2 = e₀e₀ᵀ of
rank 1 and the other P_h = I, and w* with K_2 at its least-squares fit given the other heads.
The model is linear in K_2, so L_n is exactly quadratic in it, the localized posterior is
Gaussian, and the same finite-n value holds over the eigenvalues of the Hessian of the
restricted L_n (computed by JAX, float64). λ of the slice is rank(X)·rank(P_2)/2 = 33, of the
whole leaf 99. 66 rows make 66 free runs (w rebuilt by a scatter); `kernel[:8, 2, :]` is 8
(static slices), λ = 4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lambda_hat import restrict
from lambda_hat.errors import ConfigError
from lambda_hat.restrict import Group, Restricted, parse_index, restricted, runs, selection
from support import build_and_sample, run_cli, write_config

GROUPS = [Group("0/weight", 0, 6, 0), Group("0/bias", 6, 8, 0), Group("1/weight", 8, 12, 1),
          Group("1/bias", 12, 13, 1)]
LEAVES = [Group("a/kernel", 0, 24, None, (2, 3, 4)), Group("a/bias", 24, 28, None, (4,)),
          Group("b/kernel", 28, 52, None, (2, 3, 4)), Group("flat", 52, 55, None)]
WHERE = "exp.yaml: samplers.hmc.restrict"


class Grouped:
    """A likelihood with nothing but parameter groups, for `restricted`."""

    def __init__(self, groups):
        self.groups, self.num_params = groups, groups[-1].stop

    def parameter_groups(self):
        return self.groups


def picked(groups, entries) -> list[tuple[str, list[int]]]:
    return [(label, indices.tolist()) for label, indices in selection(groups, entries, WHERE)]


def test_groups_are_chosen_by_layer_and_by_glob():
    assert picked(GROUPS, [1]) == [("1/weight", list(range(8, 12))), ("1/bias", [12])]
    assert [label for label, _ in picked(GROUPS, ["*/bias"])] == ["0/bias", "1/bias"]
    model, labels = restricted(Grouped(GROUPS), ["0/bias", 1], WHERE)
    assert (model.free, model.num_params, model.size) == (((6, 13),), 7, 13)
    assert labels == ["0/bias", "1/weight", "1/bias"]
    with pytest.raises(ConfigError) as error:
        selection(GROUPS, ["2/*"], WHERE)
    assert str(error.value).startswith(f"{WHERE}: '2/*' names no parameter group; layers 0, 1, "
                                       "paths 0/weight, 0/bias")
    with pytest.raises(ConfigError) as error:
        selection(LEAVES, ["c[0]"], WHERE)
    assert str(error.value) == (f"{WHERE}: 'c[0]' names no parameter group; layers (none), "
                                "paths a/kernel (2, 3, 4), a/bias (4,), b/kernel (2, 3, 4), flat")


def test_an_index_is_parsed_without_evaluating_anything():
    assert parse_index(" 1:3, -1 ,..., ::2, :, 2:") == (
        slice(1, 3), -1, Ellipsis, slice(None, None, 2), slice(None), slice(2, None))
    for text in ("__import__('os')", "1.5", "a", "1:2:3:4", "", "[0]", "None"):
        with pytest.raises(ValueError):
            parse_index(text)


@pytest.mark.parametrize("index", [":, 2, :", "1, :, 0", "..., 1", "-1, ...", "0:2, ::2, 1:",
                                   ":, ::-1, -2", "1, 2, 3", "..., 0:1, :, :"])
def test_a_slice_selects_what_numpy_indexing_selects(index):
    expected = [np.arange(start, stop).reshape(shape)[parse_index(index)].ravel()
                for _, start, stop, _, shape in LEAVES[::2]]
    assert picked(LEAVES, [f"*/kernel[{index}]"]) == [
        (f"a/kernel[{index}]", sorted(expected[0].tolist())),
        (f"b/kernel[{index}]", sorted(expected[1].tolist()))]


def test_slices_and_whole_leaves_combine():
    # a slice inside a chosen leaf adds nothing: the leaf is recorded whole
    assert picked(LEAVES, ["a/bias", "a/bias[1:3]"]) == [("a/bias", [24, 25, 26, 27])]
    # slices that together cover a leaf are the leaf
    assert picked(LEAVES, ["a/bias[:2]", "a/bias[2:]"]) == [("a/bias", [24, 25, 26, 27])]
    model, labels = restricted(Grouped(LEAVES), ["a/kernel[1, 0, :]", "a/bias[::3]", "flat"],
                               WHERE)
    assert labels == ["a/kernel[1, 0, :]", "a/bias[::3]", "flat"]
    assert model.free == ((12, 16), (24, 25), (27, 28), (52, 55)) and model.num_params == 9


@pytest.mark.parametrize("entry, leaf, problem", [
    ("a/kernel[:, 2]", "a/kernel (shape (2, 3, 4))",
     "2 indices for 3 dimensions (one each, or ... for the rest)"),
    ("*/kernel[0, 1, 2, 3, ...]", "a/kernel (shape (2, 3, 4))", "4 indices for 3 dimensions"),
    ("a/bias[4]", "a/bias (shape (4,))", "index 4 is out of range for dimension 0 (size 4)"),
    ("a/bias[-5]", "a/bias (shape (4,))", "index -5 is out of range for dimension 0"),
    ("b/kernel[:, 3, 0]", "b/kernel (shape (2, 3, 4))", "index 3 is out of range for "
                                                        "dimension 1 (size 3)"),
    ("a/kernel[:, 1:1, :]", "a/kernel (shape (2, 3, 4))", "it selects nothing"),
    ("a/bias[3:1]", "a/bias (shape (4,))", "it selects nothing"),
    ("a/bias[::0]", "a/bias (shape (4,))", "dimension 0 has slice step 0"),
    ("a/bias[..., ...]", "a/bias (shape (4,))", "more than one ..."),
    ("a/bias[x + 1]", "a/bias (shape (4,))", "'x + 1' is not an integer, a slice or ..."),
    ("flat[0]", "flat", "the leaf's shape is not known, so it cannot be indexed"),
])
def test_a_slice_that_does_not_fit_its_leaf_is_a_config_error(entry, leaf, problem):
    with pytest.raises(ConfigError) as error:
        restricted(Grouped(LEAVES), ["a/bias", entry], WHERE)
    assert str(error.value).startswith(f"{WHERE}: {entry!r} on {leaf}")
    assert problem in str(error.value)


def test_a_mask_function_picks_elements_of_the_leaves_it_answers_for():
    def heads(path, shape):
        if not path.endswith("kernel"):
            return None
        mask = np.zeros(shape, bool)
        mask[:, 1, :] = True
        return mask

    model, labels = restricted(Grouped(LEAVES[:3]), [heads, "a/bias"], WHERE)
    assert labels == ["a/kernel (mask: 8 of 24)", "a/bias", "b/kernel (mask: 8 of 24)"]
    assert model.free == ((4, 8), (16, 20), (24, 28), (32, 36), (44, 48))
    with pytest.raises(ConfigError) as error:
        restricted(Grouped(LEAVES[:3]), [lambda path, shape: np.ones(shape[:1], bool)], WHERE)
    assert str(error.value).startswith(
        f"{WHERE}: mask <lambda> gave a bool array of shape (2,) for a/kernel (shape (2, 3, 4))")
    with pytest.raises(ConfigError) as error:
        restricted(Grouped(LEAVES[:3]), [lambda path, shape: np.zeros(shape, bool)], WHERE)
    assert str(error.value).startswith(f"{WHERE}: <lambda> names no parameter group")


def old_free_ranges(groups, entries):
    """What `restrict` chose before slices: whole groups, adjacent ones merged."""
    import fnmatch

    chosen = sorted({group for group in groups for entry in entries
                     if (group.layer == entry if isinstance(entry, int)
                         else fnmatch.fnmatchcase(group.path, entry))},
                    key=lambda group: group.start)
    merged = []
    for group in chosen:
        if merged and merged[-1][1] == group.start:
            merged[-1][1] = group.stop
        else:
            merged.append([group.start, group.stop])
    return tuple(map(tuple, merged))


@pytest.mark.parametrize("entries", [[1], ["*/weight"], ["0/bias", 1], [0, 2], ["*"],
                                     ["2/bias", "0/*"], [2, "1/weight"]])
def test_whole_groups_give_the_free_runs_they_gave_before(entries):
    from lambda_hat.models import Network

    network = Network((5, 4, 3, 2), bias=True)
    model, labels = restricted(network, entries, WHERE)
    assert model.free == old_free_ranges(network.parameter_groups(), entries)
    assert labels == [group.path for group in network.parameter_groups()
                      if group.path in labels]


def test_a_network_s_groups_have_the_shapes_its_layers_are_read_with():
    import jax.numpy as jnp

    from lambda_hat.models import Network

    network = Network((5, 4, 3), bias=True)
    w = jnp.arange(float(network.num_params))
    groups = network.parameter_groups()
    assert [group.shape for group in groups] == [(5, 4), (4,), (4, 3), (3,)]
    for (weight, bias), (w_group, b_group) in zip(network.layers(w), zip(groups[::2],
                                                                         groups[1::2])):
        np.testing.assert_array_equal(weight, w[w_group.start:w_group.stop]
                                      .reshape(w_group.shape))
        np.testing.assert_array_equal(bias, w[b_group.start:b_group.stop])


def test_the_free_slices_replace_w_star_and_nothing_else():
    import jax.numpy as jnp

    class Flat:
        num_params, loss_eval_cost = 13, 0.5

    model = Restricted(Flat(), ((2, 4), (8, 13)), 13)
    w_star = jnp.arange(13.0)
    full = model.full(-jnp.arange(1.0, 8.0), w_star)
    assert model.num_params == 7
    np.testing.assert_array_equal(full, [0, 1, -1, -2, 4, 5, 6, 7, -3, -4, -5, -6, -7])


def test_many_runs_are_scattered_into_the_same_w_and_loss(monkeypatch):
    """Past MAX_SLICES runs w is rebuilt by one scatter: the same w, loss and gradient as
    static slices."""
    import jax
    import jax.numpy as jnp

    from lambda_hat.functional import FunctionLikelihood, Layout

    def apply(params, x):
        return jnp.tanh(x @ params["kernel"].reshape(6, -1)) @ params["out"]

    rng = np.random.default_rng(0)
    params = {"kernel": rng.normal(size=(6, 4, 5)), "out": rng.normal(size=(20, 2))}
    likelihood = FunctionLikelihood(apply, "mse", Layout.of(params))
    arrays = {"X": rng.normal(size=(30, 6)), "Y": rng.normal(size=(30, 2)),
              "w_star": np.concatenate([params["kernel"].ravel(), params["out"].ravel()])}
    model, _ = restricted(likelihood, ["kernel[..., 1::2]", "out[:, 1]"], WHERE)
    assert len(model.free) > restrict.MAX_SLICES
    index = np.flatnonzero(np.isin(np.arange(model.size), model.index()))
    np.testing.assert_array_equal(model.index(), index)
    assert runs(index) == model.free
    u = jnp.asarray(rng.normal(size=model.num_params), jnp.float32)
    results = []
    for most in (restrict.MAX_SLICES, len(model.free)):
        monkeypatch.setattr(restrict, "MAX_SLICES", most)
        data = model.prepare(arrays, jnp.float32)
        full = model.full(u, data["base"]["w_star"])
        expected = np.asarray(data["base"]["w_star"]).copy()
        expected[index] = u
        np.testing.assert_array_equal(full, expected)
        np.testing.assert_array_equal(data["w_star"], arrays["w_star"][index].astype(np.float32))
        results.append(jax.jit(jax.value_and_grad(lambda u, data: model.loss(u, data)))(
            u, data))  # a new function: traced anew with this MAX_SLICES
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)


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


HEAD_TARGET = """
import jax.numpy as jnp
import numpy as np

HEADS, HEAD = 3, 2


def projections(outputs):
    \"\"\"P_h per head: the identity, but e0 e0^T (rank 1) for head HEAD.\"\"\"
    P = np.stack([np.eye(outputs)] * HEADS)
    P[HEAD] = np.diag(np.eye(outputs)[0])
    return P


def apply(params, x):
    kernel = params["kernel"]
    return jnp.einsum("ni,iho,hop->np", x, kernel, projections(kernel.shape[-1]))


def make_target(seed, inputs=66, outputs=3, n=1000, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs))
    kernel = rng.normal(size=(inputs, HEADS, outputs)) / np.sqrt(inputs)
    y = np.asarray(apply({"kernel": kernel}, x)) + noise * rng.normal(size=(n, outputs))
    # K_HEAD at the least-squares fit of what the other heads leave: X⁺ R P⁺
    kernel[:, HEAD, :] = 0
    residual = y - np.asarray(apply({"kernel": kernel}, x))
    kernel[:, HEAD, :] = (np.linalg.pinv(x) @ residual
                          @ np.linalg.pinv(projections(outputs)[HEAD]))
    return {"apply": apply, "params": {"kernel": kernel}, "x": x, "y": y, "loss": "mse"}
"""
HEAD_RUNS = {"head0": ("kernel[:, 2, :]", 0, 66), "head1": ("kernel[:, 2, :]", 1, 66),
             "rows2": ("kernel[:8, 2, :]", 2, 8)}
"""sampler: (restrict entry, seed, rank of the map from the slice to the outputs)."""


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """The built head target, its experiment file, its likelihood in this process and
    its arrays."""
    import importlib.util

    from lambda_hat.functional import FunctionLikelihood, Layout

    root = tmp_path_factory.mktemp("heads")
    (root / "head_target.py").write_text(HEAD_TARGET)
    config = write_config(root, {
        "targets": {"heads": {"model": {"kind": "python",
                                        "entry": "head_target.py:make_target"}}},
        "samplers": {name: {"kind": "hmc", "seed": seed, "restrict": [entry], "warmup": 300,
                            "draws": 500} for name, (entry, seed, _) in HEAD_RUNS.items()}})
    done = run_cli("build", "--config", config, "--target", "heads", "--out", root / "heads",
                   x64=True, cwd=root)
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("head_target", root / "head_target.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with np.load(root / "heads" / "target.npz") as arrays:
        arrays = dict(arrays)
    likelihood = FunctionLikelihood(module.apply, "mse",
                                    Layout.of({"kernel": np.zeros((66, 3, 3))}))
    whole = hessian_eigenvalues(likelihood, arrays)
    assert np.sum(whole > 1e-8 * whole.max()) == 66 * 3  # the whole leaf's λ is 99
    return root, config, likelihood, arrays


def hessian_eigenvalues(likelihood, arrays) -> np.ndarray:
    """Of L_n at w*, in float64."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        data = likelihood.prepare(arrays, jnp.float64)
        hessian = jax.jit(jax.hessian(likelihood.loss))(data["w_star"], data)
        return np.linalg.eigvalsh(np.asarray(hessian, np.float64))


@pytest.mark.slow
@pytest.mark.parametrize("sampler", list(HEAD_RUNS))
def test_hmc_recovers_half_the_rank_of_a_slice_of_a_leaf(heads, sampler):
    root, config, likelihood, arrays = heads
    entry, _, rank = HEAD_RUNS[sampler]
    out = root / sampler
    done = run_cli("sample", "--config", config, "--target-dir", root / "heads", "--sampler",
                   sampler, "--out", out, x64=True, cwd=root)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["restricted_to"] == [entry] and summary["d"] == rank * 3
    model, _ = restricted(likelihood, [entry], WHERE)
    assert (len(model.free) > restrict.MAX_SLICES) == (rank > restrict.MAX_SLICES)
    h = hessian_eigenvalues(model, arrays)
    assert np.sum(h > 1e-8 * h.max()) == rank
    nbeta, gamma = summary["nbeta"], summary["gamma"]
    reference = float(np.sum(0.5 * nbeta * h / (nbeta * h + gamma)))
    assert rank / 2 - reference < 0.01 * rank / 2
    assert abs(summary["llc_mean"] - reference) < 4 * summary["llc_mcse"], \
        (summary["llc_mean"], reference, summary["llc_mcse"])
