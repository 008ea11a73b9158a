"""The likelihood of any JAX function `apply(params, x)` and a pytree of params.

What the `python` target kind and the library API (`lambda_hat.estimate`) both sample: the
params are one flat vector w (leaves in `jax.tree` order, each reshaped back in w's own
precision, so a float64 sampler never rounds through a float32 leaf), and L_n(w) is the mean
over data points of a per-point loss ℓᵢ(w):

- `mse`: the squared error summed over outputs;
- `cross_entropy`: −log softmax(logits)[label]. Logits [n, classes] with labels [n] give one
  loss per point; logits [n, seq, vocab] with labels [n, seq] (a sequence model) give one per
  token, and ℓᵢ is the mean over the sequence's tokens, or over those an optional mask
  [n, seq] keeps. n counts sequences: a minibatch of sequences is then an unbiased estimate
  of L_n, and per-token losses are what observables record (`token_losses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

LOSSES = ("mse", "cross_entropy")


def token_losses(outputs, Y, loss: str):
    """The loss of each point ([n]) or, for a sequence model, of each token ([n, seq])."""
    import jax
    import jax.numpy as jnp

    if loss == "mse":
        residual = outputs.reshape(len(Y), -1) - Y.reshape(len(Y), -1)
        return (residual * residual).sum(axis=-1)
    log_probs = jax.nn.log_softmax(outputs, axis=-1)
    labels = Y.astype(jnp.int32)
    return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]


def point_losses(tokens, mask=None):
    """ℓᵢ from `token_losses`: a sequence's (masked) mean over its tokens."""
    import jax.numpy as jnp

    if tokens.ndim == 1:
        return tokens
    if mask is None:
        return tokens.mean(axis=-1)
    kept = mask.astype(tokens.dtype)
    return (tokens * kept).sum(axis=-1) / jnp.maximum(kept.sum(axis=-1), 1)


def leaf_path(path) -> str:
    """`params/Dense_0/kernel` from a `jax.tree_util` key path."""
    return "/".join(str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))
                    for key in path)


@dataclass(frozen=True)
class Layout:
    """Where each leaf of a params pytree sits in the flat vector w."""

    treedef: Any
    paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    layers: tuple[int | None, ...]
    """The first path entry when it is a list index (params given as a list of layers)."""

    @classmethod
    def of(cls, params) -> "Layout":
        import jax

        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        layers = tuple(path[0].idx if path and isinstance(path[0], jax.tree_util.SequenceKey)
                       else None for path, _ in leaves)
        return cls(treedef, tuple(leaf_path(path) for path, _ in leaves),
                   tuple(tuple(int(s) for s in np.shape(leaf)) for _, leaf in leaves), layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(shape, dtype=np.int64)) for shape in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def flatten(self, params, dtype) -> np.ndarray:
        """w: the leaves raveled in order, in `dtype` (NumPy: float64 in any process)."""
        import jax

        leaves = [np.ravel(np.asarray(leaf, np.dtype(dtype))) for leaf in jax.tree.leaves(params)]
        return np.concatenate(leaves) if leaves else np.zeros((0,), np.dtype(dtype))

    def unflatten(self, w):
        """The params pytree of w, in w's precision."""
        import jax

        leaves, offset = [], 0
        for size, shape in zip(self.sizes, self.shapes):
            leaves.append(w[offset:offset + size].reshape(shape))
            offset += size
        return jax.tree.unflatten(self.treedef, leaves)

    def groups(self) -> list:
        """Each leaf as a restriction group (`lambda_hat.restrict`), by its path."""
        from .restrict import Group

        groups, offset = [], 0
        for path, size, layer, shape in zip(self.paths, self.sizes, self.layers, self.shapes):
            groups.append(Group(path, offset, offset + size, layer, shape))
            offset += size
        return groups


@dataclass(frozen=True)
class FunctionLikelihood:
    """L_n(w) = mean ℓᵢ of `apply(params(w), X)` against Y under `loss`.

    Hashable (the function by identity), so a compiled program is found again for another
    call with the same function, layout and shapes (`lambda_hat.programs`)."""

    apply: Callable
    loss_kind: str
    layout: Layout
    loss_eval_cost = 0.5

    @property
    def num_params(self) -> int:
        return self.layout.size

    def parameter_groups(self) -> list:
        return self.layout.groups()

    def token_losses(self, w, X, Y):
        return token_losses(self.apply(self.layout.unflatten(w), X), Y, self.loss_kind)

    def point_losses(self, w, data: dict):
        """ℓᵢ(w) for every point of `data` (X, Y and an optional mask)."""
        return point_losses(self.token_losses(w, data["X"], data["Y"]), data.get("mask"))

    def loss(self, w, data):
        return self.point_losses(w, data).mean()

    def observed_losses(self, w, points: dict, data: dict):
        """ℓᵢ(w) per point of `points`, or per token for a sequence model (`data` is the
        posterior's: a restricted likelihood takes w* from it)."""
        return self.token_losses(w, points["X"], points["Y"])

    def batch_loss(self, w, data, index):
        return self.point_losses(w, {key: data[key][index] for key in ("X", "Y", "mask")
                                     if key in data}).mean()

    def prepare_points(self, arrays: dict, dtype) -> dict:
        """X, Y (integer labels for cross_entropy) and the mask, as the program takes them.
        Integer inputs (token ids) stay integers; real ones take the sampler's precision."""
        import jax.numpy as jnp

        labels = self.loss_kind == "cross_entropy"
        tokens = np.asarray(arrays["X"]).dtype.kind in "iu"
        prepared = {"X": jnp.asarray(arrays["X"], jnp.int32 if tokens else dtype),
                    "Y": jnp.asarray(arrays["Y"], jnp.int32 if labels else dtype)}
        if arrays.get("mask") is not None:
            prepared["mask"] = jnp.asarray(arrays["mask"], bool)
        return prepared

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        return {**self.prepare_points(arrays, dtype),
                "w_star": jnp.asarray(arrays["w_star"], dtype)}


def check_points(apply, params, x, y, loss: str, mask=None) -> list[str]:
    """What is wrong between a function, its params and a data set (abstractly, with
    `jax.eval_shape`: no computation); [] when they fit `loss`."""
    import jax

    x, y = np.asarray(x), np.asarray(y)
    if loss not in LOSSES:
        return [f"loss {loss!r} is not one of {', '.join(LOSSES)}"]
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        return [f"x has shape {x.shape} and y {y.shape}: they need one row per data point"]
    try:
        outputs = jax.eval_shape(apply, params, jax.ShapeDtypeStruct(x.shape, x.dtype))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        return [f"apply(params, x) raised {type(exc).__name__}: {first}"]
    if not hasattr(outputs, "shape") or outputs.shape[:1] != (len(x),):
        shape = getattr(outputs, "shape", type(outputs).__name__)
        return [f"apply(params, x) returned {shape}, not one row per point of x ({len(x)})"]
    if loss == "mse":
        if int(np.prod(outputs.shape)) != y.size:
            return [f"apply(params, x) has shape {outputs.shape}, y {y.shape}: mse needs one "
                    "output per target value"]
        return [] if mask is None else ["a mask needs loss cross_entropy over sequences"]
    if outputs.shape[:-1] != y.shape or len(outputs.shape) not in (2, 3):
        return [f"cross_entropy needs logits (n, classes) with labels (n,), or (n, seq, vocab) "
                f"with (n, seq); got {outputs.shape} and {y.shape}"]
    classes = outputs.shape[-1]
    if not np.all(np.mod(y, 1) == 0) or y.min() < 0 or y.max() >= classes:
        return [f"labels y must be integers in 0..{classes - 1} (the logits' classes); found "
                f"{y.min()}..{y.max()}"]
    if mask is not None and np.shape(mask) != y.shape:
        return [f"mask has shape {np.shape(mask)}, labels {y.shape}: one entry per token"]
    return []
