"""The built-in deep linear network target (`kind: dln`) written as a user's python target.

    targets:
      dln_builtin:
        model: {kind: dln, widths: [4, 3, 2, 4], rank: 1}
        data: {n: 1000}
        seed: 0
      dln_python:
        model: {kind: python, entry: "examples/dln_python.py:make_target",
                options: {widths: [4, 3, 2, 4], rank: 1, n: 1000}}
        seed: 0

The same network (no bias, identity activation), the same teacher and the same inputs and
noise as the built-in with the same seed: the random draws repeat those of
`lambda_hat/targets/common.py` (`teacher_student`, `sample_inputs`, `sample_noise`) and of
`lambda_hat/targets/dln.py` (`_teacher`) key split for key split, so X, Y and w* (the
teacher) are bit-identical to the built-in's (`tests/test_python_accuracy.py` checks it).
Only the default data are mirrored: x ~ N(0, scale² I), Gaussian output noise of `sigma`
(0 by default: noiseless, as the built-in's default).

`params` is a list of the layers' weight matrices, each (fan_in, fan_out), so the flat
vector (`ravel_pytree`: leaves in list order, each row-major) is the built-in's layout.
`apply` is the product of those matrices applied to x, written here, so the target runs
through the user-model path: its L_n is the direct mean squared error over the data, where
the built-in computes the same quantity through the data's second moments.

The arrays are drawn in JAX's default float type: float64 when x64 is on (as `lambda-hat
build` runs), which is what the built-in's float64 target uses.
"""

import jax
import jax.numpy as jnp
import numpy as np


def apply(params, x):
    h = x
    for weight in params:
        h = h @ weight
    return h


def _teacher(key, widths, rank, dtype):
    """lambda_hat.targets.dln._teacher: random layers, the first factorised through rank r."""
    shapes = list(zip(widths[:-1], widths[1:]))
    keys = jax.random.split(key, len(shapes) + 1)
    layers = []
    for index, (fan_in, fan_out) in enumerate(shapes):
        weight = jax.random.normal(keys[index], (fan_in, fan_out), dtype) / np.sqrt(fan_in)
        if index == 0:
            left = jax.random.normal(keys[-1], (fan_in, rank), dtype)
            weight = left @ (weight[:rank] if rank else weight[:0]) / np.sqrt(max(rank, 1))
        layers.append(weight)
    return layers


def make_target(seed, widths=(4, 3, 2, 4), rank=1, n=1000, scale=1.0, sigma=0.0):
    widths = tuple(int(width) for width in widths)
    dtype = jnp.zeros(()).dtype  # float64 under x64, else float32
    # teacher_student: one split of the seed's key into teacher, inputs, noise, init.
    key_teacher, key_x, key_noise, _ = jax.random.split(jax.random.key(seed), 4)
    teacher = _teacher(key_teacher, widths, rank, dtype)
    x = jax.random.normal(key_x, (n, widths[0]), dtype) * scale
    clean = apply(teacher, x)
    if sigma == 0:
        y = clean + jnp.zeros(clean.shape, dtype)
    else:
        y = clean + sigma * jax.random.normal(key_noise, clean.shape, dtype)
    return {"apply": apply, "params": teacher, "x": x, "y": y, "loss": "mse"}
