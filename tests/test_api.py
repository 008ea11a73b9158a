"""`lambda_hat.estimate`: the library API runs what a sample job runs, and its observables
match closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import lambda_hat
from isolated import run_isolated
from lambda_hat.errors import ConfigError, PrecisionError

LINEAR = "examples/linear_regression.py:make_target"


@pytest.fixture(scope="module")
def linear_target(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    entry = f"{repo_root}/{LINEAR}"
    options = {"inputs": 3, "outputs": 2, "n": 600}
    run_isolated("build_targets", "float64", out_dir=str(out), targets={
        "t": {"model": {"kind": "python", "entry": entry, "options": options}}})
    return str(out), entry, options


@pytest.mark.parametrize("dtype, sampler", [
    ("float64", {"kind": "hmc", "warmup": 100, "draws": 200, "seed": 3, "observe": 5}),
    ("float32", {"kind": "sgld", "steps": 1000, "seed": 3, "observe": 7}),
])
def test_the_api_gives_the_pipelines_number_bit_for_bit(linear_target, dtype, sampler):
    """λ̂, the loss trace and the observed losses (a sampler's `observe:` in a file, indices
    through the API), and the observables read back from the run's files."""
    out, entry, options = linear_target
    found = run_isolated("api_and_pipeline", dtype, out_dir=out, sampler=sampler, entry=entry,
                         options=options, from_stored=dtype == "float32")
    assert found["dtype"] == dtype
    assert found["api"] == found["pipeline"] and found["same_trace"], found
    chains, draws, points = found["observed_shape"]
    assert points == sampler["observe"] and chains == 4 and draws > 0
    assert found["same_observed"], found


def test_observables_match_the_gaussian_posteriors_closed_forms():
    """Per-sample λ̂ᵢ, BIF(i, j) and the susceptibility χᵢ within 4.5 MCSE of their exact
    values, on three seeds (HMC is unbiased: no bias term). The MCSE is small enough for the
    comparison to bite: the per-sample λ̂ᵢ are known to a few percent."""
    for run in run_isolated("observables_on_linear_regression", "float64",
                            seeds=[0, 1, 2], points=6):
        for name, figure in run.items():
            value, mcse, exact = (np.asarray(figure[key]) for key in ("value", "mcse", "exact"))
            z = np.abs(value - exact) / mcse
            assert np.all(z < 4.5), (name, value, exact, mcse)
        llc = run["per_sample_llc"]
        assert np.median(np.asarray(llc["mcse"]) / np.asarray(llc["exact"])) < 0.1


def test_a_sequence_model_with_a_mask_and_a_second_checkpoint_reusing_the_programs():
    """Logits [n, seq, vocab] against labels [n, seq], a mask keeping the last two tokens:
    L_n is the mean over sequences of the masked mean token loss (as NumPy computes it); the
    per-token λ̂ is there for kept tokens only and averages to the per-sample λ̂; a second
    call at other params of the same shapes compiles nothing."""
    found = run_isolated("sequence_model_run", "float32")
    assert found["loss"] == pytest.approx(found["expected"], rel=1e-5)
    chains, draws, points, tokens = found["losses_shape"]
    assert (points, tokens) == (3, 4) and chains == 4 and draws > 0
    assert found["per_token_finite"] == [[False, False, True, True]] * 3
    np.testing.assert_allclose(found["per_sample"], found["per_token_mean"], rtol=1e-6)
    assert found["compiled"][0] >= 2 and found["compiled"][1] == 0, found["compiled"]
    assert found["llc"][0] != found["llc"][1]


LOSS_PATHS = {"float64": {"hmc": {"warmup": 30, "draws": 30}},
              "float32": {"sghmc": {"steps": 200, "pilot_steps": 50, "batch_size": 16},
                          "vi": {"steps": 200, "draws": 30, "batch_size": 16}}}
"""One sampler per way a sampler reads the loss: the full-data L_n (HMC; NUTS and MCLMC read
it the same way), the minibatch loss (SGHMC; SGLD's is `sequence_model_run`'s, and the
SGLD family and SGNHT share it) and VI's fit and iid draws."""


@pytest.mark.slow
@pytest.mark.parametrize("dtype", sorted(LOSS_PATHS))
def test_each_way_of_reading_the_loss_runs_on_a_sequence_model(dtype):
    """Masked per-token cross-entropy through each loss path, observed per token where the
    sampler is a Markov chain (a few steps each: this checks the plumbing, not the number)."""
    from lambda_hat.samplers import REGISTRY

    runs = LOSS_PATHS[dtype]
    assert all(REGISTRY[kind].Settings().dtype == dtype for kind in runs)
    found = run_isolated("samplers_on_a_sequence_model", dtype, runs=runs)
    assert sorted(found) == sorted(runs)
    for kind, run in found.items():
        assert run["llc"] is not None and np.isfinite(run["llc"]) and run["nonfinite"] == 0, \
            (kind, run)
        assert run["observed"] == ([4, 4] if REGISTRY[kind].MARKOV_CHAIN else None), kind


def _apply(params, x):
    return x @ params["w"]


def _data(n=50):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    return {"w": np.ones((2, 1))}, (x, x @ np.ones((2, 1)))


def test_a_process_of_the_other_precision_is_refused_before_any_work():
    import jax

    other = "float32" if jax.config.jax_enable_x64 else "float64"
    params, data = _data()
    with pytest.raises(PrecisionError, match="JAX_ENABLE_X64"):
        lambda_hat.estimate(_apply, params, data, sampler="sgld", dtype=other)


@pytest.mark.parametrize("call, message", [
    (lambda p, d: lambda_hat.estimate(_apply, p, d, sampler="sgld", stepz=3),
     r"lambda_hat.estimate\(sampler='sgld'\): stepz: not a setting of a sgld sampler"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, sampler="sgld", step_size_scale=-1),
     r"step_size_scale"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, sampler="nope"),
     "unknown sampler kind 'nope'"),
    (lambda p, d: lambda_hat.estimate(_apply, p, (d[0], d[1][:-1])),
     r"x has shape \(50, 2\) and y \(49, 1\)"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, loss="cross_entropy"),
     "cross_entropy needs logits"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, sampler="vi", observe="data"),
     "no chain of draws to observe"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, observe=[0, 50]),
     r"observe indices must lie in 0..49"),
    (lambda p, d: lambda_hat.estimate(_apply, p, d, observe="all"),
     "the word it takes is 'data'"),
])
def test_bad_input_is_named_before_any_work(call, message):
    params, data = _data()
    with pytest.raises(ConfigError, match=message):
        call(params, data)


def test_a_pipeline_run_observes_the_first_points_or_names_the_key():
    """`observe: k` takes the first k training points (with the mask's rows); more than the
    target has is refused naming the file and key (a python target's n is known only once it
    is built)."""
    from types import SimpleNamespace

    from lambda_hat.runner import first_points

    x = np.arange(12).reshape(4, 3)
    target = SimpleNamespace(arrays={"X": x, "Y": x % 5}, record={"name": "t"},
                             likelihood=SimpleNamespace(mask=x > 4))
    points = first_points(target, 2, "exp.yaml: samplers.s.observe")
    np.testing.assert_array_equal(points["X"], x[:2])
    np.testing.assert_array_equal(points["mask"], x[:2] > 4)
    assert len(first_points(target, "data", "exp.yaml: samplers.s.observe")["Y"]) == 4
    with pytest.raises(ConfigError, match="exp.yaml: samplers.s.observe: 5 points asked but "
                                          "target 't' has n = 4"):
        first_points(target, 5, "exp.yaml: samplers.s.observe")
