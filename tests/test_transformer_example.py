"""examples/transformer.py: a small decoder-only transformer on modular addition, run in
process at a reduced size (p = 11, d_model = 8, 2 heads).

- the data are the sequences `a b =` with next tokens `b = c`, c = (a + b) mod p, and the
  mask keeps only the answer: L_n is the cross-entropy of c alone;
- the model's logits are [n, seq, vocab], agree with a plain NumPy transformer written head
  by head from slices of the fused leaves, and are causal;
- lambda-hat trains it (init_params, training steps as checkpoints): the loss falls from
  about log p to near zero and every answer is right;
- one short SGLD run on a checkpoint gives a finite λ̂ in (0, d/2).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lambda_hat.functional import FunctionLikelihood, Layout, check_points

REPO_ROOT = Path(__file__).resolve().parents[1]
PATH = REPO_ROOT / "examples" / "transformer.py"
ENTRY = f"{PATH}:make_target"
P, D_MODEL, HEADS = 11, 8, 2
SMALL = {"p": P, "d_model": D_MODEL, "heads": HEADS, "layers": 1}
STEPS, EARLY = 300, 20
OBSERVED = 8


def _example():
    name = "transformer_example_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


EXAMPLE = _example()


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _reference_logits(params, x):
    """The same network in NumPy, one head at a time from slices of the fused leaves."""
    import jax

    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    h = params["embed"][x] + params["pos"][: x.shape[1]]
    seq = x.shape[1]
    for layer in range(sum(name.startswith("blocks_") for name in params)):
        attn, mlp = params[f"blocks_{layer}"]["attn"], params[f"blocks_{layer}"]["mlp"]
        mixed = np.zeros_like(h)
        for head in range(attn["query"].shape[1]):
            q = h @ attn["query"][:, head, :]
            k = h @ attn["key"][:, head, :]
            v = h @ attn["value"][:, head, :]
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
            scores[:, ~np.tril(np.ones((seq, seq), bool))] = -np.inf
            pattern = np.exp(_log_softmax(scores))
            mixed += pattern @ v @ attn["output"][head]
        h = h + mixed
        h = h + np.maximum(h @ mlp["w_in"] + mlp["b_in"], 0) @ mlp["w_out"] + mlp["b_out"]
    return h @ params["unembed"]


def test_the_data_are_every_sum_mod_p_and_the_mask_keeps_only_the_answer():
    made = EXAMPLE.make_target(seed=0, **SMALL)
    x, y, mask = (np.asarray(made[key]) for key in ("x", "y", "mask"))
    assert x.shape == y.shape == mask.shape == (P * P, 3) and made["loss"] == "cross_entropy"
    assert sorted(map(tuple, x[:, :2].tolist())) == [(a, b) for a in range(P)
                                                     for b in range(P)]
    assert np.all(x[:, 2] == P)                          # the `=` token
    np.testing.assert_array_equal(y[:, :2], x[:, 1:])    # next tokens: b, =
    np.testing.assert_array_equal(y[:, 2], (x[:, 0] + x[:, 1]) % P)
    assert mask.dtype == bool and mask[:, 2].all() and not mask[:, :2].any()
    drawn = EXAMPLE.make_target(seed=1, n=50, **SMALL)  # n pairs drawn at random instead
    x, y = np.asarray(drawn["x"]), np.asarray(drawn["y"])
    assert x.shape == (50, 3) and np.asarray(drawn["mask"]).shape == (50, 3)
    np.testing.assert_array_equal(y[:, 2], (x[:, 0] + x[:, 1]) % P)


def test_the_loss_is_the_cross_entropy_of_the_answer_token_alone():
    """ℓᵢ through lambda-hat's likelihood (with the returned mask) is −log p(c | a b =); the
    unmasked mean over the three tokens is a different number."""
    import jax.numpy as jnp

    made = EXAMPLE.make_target(seed=0, **SMALL)
    layout = Layout.of(made["init_params"])
    likelihood = FunctionLikelihood(made["apply"], made["loss"], layout)
    data = likelihood.prepare_points({"X": made["x"], "Y": made["y"], "mask": made["mask"]},
                                     jnp.float32)
    w = layout.flatten(made["init_params"], jnp.float32)
    losses = np.asarray(likelihood.point_losses(w, data))
    logits = _reference_logits(made["init_params"], np.asarray(made["x"]))
    answer = np.asarray(made["y"])[:, 2]
    expected = -_log_softmax(logits[:, 2])[np.arange(len(answer)), answer]
    np.testing.assert_allclose(losses, expected, rtol=2e-4, atol=2e-5)
    unmasked = np.asarray(likelihood.point_losses(w, {"X": data["X"], "Y": data["Y"]}))
    assert np.max(np.abs(unmasked - losses)) > 0.1


def test_the_model_is_a_causal_transformer_with_heads_fused_in_its_leaves():
    made = EXAMPLE.make_target(seed=0, **SMALL)
    params, x = made["init_params"], np.asarray(made["x"])
    layout = Layout.of(params)
    shapes = dict(zip(layout.paths, layout.shapes))
    d_head, mlp, vocab = D_MODEL // HEADS, 4 * D_MODEL, P + 1
    for name in ("query", "key", "value"):
        assert shapes[f"blocks_0/attn/{name}"] == (D_MODEL, HEADS, d_head)
    assert shapes["blocks_0/attn/output"] == (HEADS, d_head, D_MODEL)
    assert shapes["embed"] == (vocab, D_MODEL) and shapes["unembed"] == (D_MODEL, vocab)
    assert layout.size == (2 * vocab * D_MODEL + 3 * D_MODEL + 4 * D_MODEL * D_MODEL
                           + 2 * D_MODEL * mlp + mlp + D_MODEL)
    assert check_points(made["apply"], params, x, made["y"], "cross_entropy",
                        made["mask"]) == []
    logits = np.asarray(made["apply"](params, x))
    assert logits.shape == (P * P, 3, vocab)
    np.testing.assert_allclose(logits, _reference_logits(params, x), rtol=1e-4, atol=1e-4)
    changed = x.copy()
    changed[:, 2] = 0  # a later token changes nothing before it
    after = np.asarray(made["apply"](params, changed))
    np.testing.assert_allclose(after[:, :2], logits[:, :2], rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(after[:, 2] - logits[:, 2])) > 1e-3
    normed = EXAMPLE.make_target(seed=0, layer_norm=True, **SMALL)  # adds no parameters
    assert Layout.of(normed["init_params"]).size == layout.size
    normed_logits = np.asarray(normed["apply"](params, x))
    assert normed_logits.shape == logits.shape and np.all(np.isfinite(normed_logits))
    assert np.max(np.abs(normed_logits - logits)) > 1e-3
    two = EXAMPLE.make_target(seed=0, layers=2, **{k: v for k, v in SMALL.items()
                                                   if k != "layers"})
    np.testing.assert_allclose(np.asarray(two["apply"](two["init_params"], x)),
                               _reference_logits(two["init_params"], x), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def trained():
    """The example trained by lambda-hat, its early checkpoint, and the experiment."""
    from lambda_hat.config import Experiment
    from lambda_hat.runner import process_dtype
    from lambda_hat.targets import Target, build_target

    dtype = process_dtype()
    raw = {"experiment": "transformer_test", "posterior": {"beta": "auto", "gamma": 100.0},
           "targets": {"modadd": {"model": {"kind": "python", "entry": ENTRY,
                                            "options": SMALL},
                                  "dtype": dtype, "seed": 0,
                                  "training": {"steps": STEPS, "learning_rate": 0.01},
                                  "checkpoints": [EARLY, STEPS // 2]}},
           "samplers": {"sgld": {"kind": "sgld", "dtype": dtype, "chains": 2,
                                 "steps": 1000, "batch_size": 64, "observe": OBSERVED}}}
    experiment = Experiment(raw, "<test>")
    targets = {name: Target(*build_target(name, experiment.target(name), experiment.name))
               for name in ("modadd", f"modadd@{EARLY}", f"modadd@{STEPS // 2}")}
    return experiment, targets


def test_training_lowers_the_loss_until_every_answer_is_right(trained):
    _, targets = trained
    final, early = targets["modadd"], targets[f"modadd@{EARLY}"]
    history = np.asarray(final.arrays["training_loss"])
    assert len(history) == STEPS and final.record["training_step"] == STEPS
    assert history[0] > 0.8 * math.log(P)          # about uniform over the answers at first
    assert final.record["loss_star"] < 0.02 < 1.0 < early.record["loss_star"]
    np.testing.assert_allclose(np.asarray(early.arrays["training_loss"]), history[:EARLY],
                               rtol=1e-5)
    assert early.record["training_step"] == EARLY
    assert early.record["checkpoint_of"] == "modadd"
    made = EXAMPLE.make_target(seed=0, **SMALL)
    layout = Layout.of(made["init_params"])
    params = layout.unflatten(np.asarray(final.arrays["w_star"]))
    logits = np.asarray(made["apply"](params, np.asarray(made["x"])))
    assert np.all(logits[:, 2].argmax(-1) == np.asarray(made["y"])[:, 2])


def test_sgld_on_a_checkpoint_gives_a_finite_llc_and_observes_the_answer_tokens(trained):
    """The sampler's `observe:` records every token of the first points with the mask's
    rows, so the per-token λ̂ exists for the answer token alone."""
    from lambda_hat.observables import Observables
    from lambda_hat.runner import sample_run

    experiment, targets = trained
    target = targets[f"modadd@{STEPS // 2}"]
    summary, traces = sample_run(experiment, "sgld", target)
    assert summary.training_step == STEPS // 2 and summary.checkpoint_of == "modadd"
    assert summary.d == target.record["d"] and summary.n == P * P
    assert summary.llc_mean is not None and math.isfinite(summary.llc_mean)
    assert 0 < summary.llc_mean < summary.d / 2
    assert summary.chains_failed == 0
    assert np.all(np.isfinite(traces["loss"]))
    assert traces["observed_losses"].shape[2:] == (OBSERVED, 3)
    np.testing.assert_array_equal(traces["observed_mask"],
                                  EXAMPLE.make_target(seed=0, **SMALL)["mask"][:OBSERVED])
    observables = Observables.from_trace(traces, summary.burn_in, summary.nbeta)
    per_token = observables.per_token_llc().value
    assert np.isfinite(per_token[:, 2]).all() and np.isnan(per_token[:, :2]).all()
    np.testing.assert_allclose(observables.per_sample_llc().value, per_token[:, 2], rtol=1e-6)


@pytest.mark.slow
def test_the_api_script_gives_lambda_hat_per_checkpoint_per_head_and_per_token():
    """examples/transformer_api.py --small (p = 7, d_model 8, 2 heads): λ̂ at two
    checkpoints of its own training loop, each head's restricted λ̂ over exactly that head's
    slices of the fused leaves (4 · d_model · d_head parameters), below the whole network's,
    and per-token λ̂ at all three positions of the observed sequences."""
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "transformer_api.py"),
                           "--small", "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    steps = [row["step"] for row in found["checkpoints"]]
    assert steps == [50, 400]
    assert all(math.isfinite(row["llc"]) for row in found["checkpoints"])
    final = found["checkpoints"][-1]["llc"]
    d_head = 8 // 2
    for row in found["heads"]:
        assert row["d"] == 4 * 8 * d_head
        assert sorted(row["restricted_to"]) == sorted(
            [f"blocks_0/attn/{leaf}[:, {row['head']}, :]" for leaf in ("query", "key", "value")]
            + [f"blocks_0/attn/output[{row['head']}, ...]"])
        assert 0 < row["llc"] < final
    per_token = np.asarray(found["per_token"])
    assert per_token.shape == (8, 3) and np.isfinite(per_token).all()
