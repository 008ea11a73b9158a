"""A small decoder-only transformer learning modular addition, in pure JAX, for lambda-hat.

The task is the one of the grokking papers (Power et al. 2022; Nanda et al. 2023): each
sequence is the three tokens `a b =` with a, b in 0..p−1 and `=` the token p, and the model
is trained as a language model, predicting each next token, but scored on the answer
c = (a + b) mod p only: `y` holds the next token at every position (`b = c`) and `mask`
keeps the last one, so ℓᵢ is the cross-entropy of the answer. By default the data are all p²
pairs (n = p², each pair once, in an order set by the seed); `n` draws n pairs uniformly at
random instead. Everything is made here, nothing is downloaded. All data are training data
(lambda-hat has no held-out split), so the model fits the table rather than groks it.

The network: token and position embeddings, `layers` blocks of causal multi-head attention
and a ReLU MLP on a residual stream of width `d_model` (optional pre-layer-norm, without
learned parameters, so it adds none), and an unembedding to the p + 1 tokens. The attention
weights are fused per head, so a head is a slice of a leaf: `blocks_0/attn/query`, `key` and
`value` are [d_model, heads, d_head] and `blocks_0/attn/output` [heads, d_head, d_model]
(`restrict: ["blocks_0/attn/*"]` on a sampler gives the attention layer's restricted λ̂).
The defaults (p = 23, d_model = 16, 4 heads, one block, MLP width 64) have d = 3,968
parameters; Adam (learning rate 0.003) fits all 529 answers in about 300 full-batch steps,
a few seconds on a CPU in float32 or float64.

`make_target` returns `init_params`, not `params`: lambda-hat trains w* (the target's
`training:`), and each of the target's `checkpoints:` is a training step t, w_t the same
deterministic training stopped after t steps. λ̂ along the checkpoints follows the fit: small
on the plateau where the model predicts every answer about equally (L_n ≈ log p), rising
steeply while the loss falls (the model commits to the answers), highest about when the
table is fitted, and then falling again as training goes on and the logits grow (the loss
flattens around w_t). Checkpoints before the fit are not minima, and their runs say so
(‖∇L_n(w_t)‖). The experiment is config/transformer.yaml:

    snakemake --cores 2 --configfile config/transformer.yaml

(results in results/transformer/: llc.parquet, and plots/checkpoints.png in the report).
Options: `p`, `d_model`, `heads` (d_head = d_model / heads), `layers`, `mlp` (hidden width,
4 × d_model by default), `layer_norm`, `n`.
"""

import jax
import jax.numpy as jnp
import numpy as np

SEQ = 3
"""Tokens per sequence: a, b, =."""


def _layer_norm(h):
    mean = h.mean(axis=-1, keepdims=True)
    centred = h - mean
    return centred / jnp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-5)


def _attention(attn, h):
    """Causal multi-head attention of h [n, seq, d_model], heads fused in each leaf."""
    q = jnp.einsum("nsd,dhk->nhsk", h, attn["query"])
    k = jnp.einsum("nsd,dhk->nhsk", h, attn["key"])
    v = jnp.einsum("nsd,dhk->nhsk", h, attn["value"])
    scores = jnp.einsum("nhsk,nhtk->nhst", q, k) / np.sqrt(q.shape[-1])
    seq = h.shape[1]
    causal = jnp.tril(jnp.ones((seq, seq), bool))
    scores = jnp.where(causal, scores, jnp.asarray(-1e9, scores.dtype))
    pattern = jax.nn.softmax(scores, axis=-1)
    mixed = jnp.einsum("nhst,nhtk->nhsk", pattern, v)
    return jnp.einsum("nhsk,hkd->nsd", mixed, attn["output"])


def _mlp(mlp, h):
    hidden = jax.nn.relu(h @ mlp["w_in"] + mlp["b_in"])
    return hidden @ mlp["w_out"] + mlp["b_out"]


def _blocks(params):
    """The blocks in order (`blocks_0`, `blocks_1`, ...; by number, not by name)."""
    names = [name for name in params if name.startswith("blocks_")]
    return [params[name] for name in sorted(names, key=lambda name: int(name[7:]))]


def forward(params, x, layer_norm=False):
    """Logits [n, seq, vocab] of the token sequences x [n, seq] (any numeric dtype)."""
    tokens = x.astype(jnp.int32)
    h = params["embed"][tokens] + params["pos"][: tokens.shape[1]]
    norm = _layer_norm if layer_norm else (lambda z: z)
    for block in _blocks(params):
        h = h + _attention(block["attn"], norm(h))
        h = h + _mlp(block["mlp"], norm(h))
    return norm(h) @ params["unembed"]


def apply(params, x):
    return forward(params, x, layer_norm=False)


def apply_layer_norm(params, x):
    return forward(params, x, layer_norm=True)


def init_params(key, vocab, d_model, heads, layers, mlp):
    """Weights N(0, 1/fan_in), biases zero; embeddings N(0, 1)."""
    if d_model % heads:
        raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
    d_head = d_model // heads
    keys = iter(jax.random.split(key, 3 + 6 * layers))

    def normal(shape, fan_in):  # drawn in float32: the same init in either precision
        return jax.random.normal(next(keys), shape, jnp.float32) / np.sqrt(fan_in)

    params = {"embed": normal((vocab, d_model), 1), "pos": normal((SEQ, d_model), 1),
              "unembed": normal((d_model, vocab), d_model)}
    for layer in range(layers):
        params[f"blocks_{layer}"] = {
            "attn": {"query": normal((d_model, heads, d_head), d_model),
                     "key": normal((d_model, heads, d_head), d_model),
                     "value": normal((d_model, heads, d_head), d_model),
                     "output": normal((heads, d_head, d_model), d_model)},
            "mlp": {"w_in": normal((d_model, mlp), d_model), "b_in": jnp.zeros(mlp, jnp.float32),
                    "w_out": normal((mlp, d_model), mlp), "b_out": jnp.zeros(d_model, jnp.float32)}}
    return params


def modular_addition(key, p, n=None):
    """(x [n, 3], y [n, 3], mask [n, 3]): sequences `a b =`, their next tokens `b = c`, and
    the mask that keeps only the answer c = (a + b) mod p."""
    pairs = np.stack(np.meshgrid(np.arange(p), np.arange(p), indexing="ij"), -1).reshape(-1, 2)
    if n is None:
        pairs = pairs[np.asarray(jax.random.permutation(key, len(pairs)))]
    else:
        pairs = pairs[np.asarray(jax.random.randint(key, (int(n),), 0, len(pairs)))]
    a, b = pairs[:, 0], pairs[:, 1]
    equals = np.full_like(a, p)
    x = np.stack([a, b, equals], axis=1).astype(np.int32)
    y = np.stack([b, equals, (a + b) % p], axis=1).astype(np.int32)
    mask = np.zeros(y.shape, bool)
    mask[:, -1] = True
    return x, y, mask


def make_target(seed, p=23, d_model=16, heads=4, layers=1, mlp=None, layer_norm=False,
                n=None):
    key_data, key_init = jax.random.split(jax.random.key(seed))
    x, y, mask = modular_addition(key_data, p, n)
    params = init_params(key_init, p + 1, d_model, heads, layers,
                         4 * d_model if mlp is None else mlp)
    return {"apply": apply_layer_norm if layer_norm else apply, "init_params": params,
            "x": x, "y": y, "mask": mask, "loss": "cross_entropy"}
