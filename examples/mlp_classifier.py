"""A user-defined classification target for lambda-hat: a one-hidden-layer tanh MLP on
synthetic three-class data, trained to w* by lambda-hat (no `params`, only `init_params`).

    targets:
      classifier:
        model: {kind: python, entry: "examples/mlp_classifier.py:make_target",
                options: {hidden: 8, n: 1000}}
        training: {steps: 3000}
"""

import jax
import jax.numpy as jnp


def apply(params, x):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def make_target(seed, inputs=2, hidden=8, classes=3, n=1000):
    keys = jax.random.split(jax.random.key(seed), 4)
    centres = 2.0 * jax.random.normal(keys[0], (classes, inputs))
    labels = jax.random.randint(keys[1], (n,), 0, classes)
    x = centres[labels] + jax.random.normal(keys[2], (n, inputs))
    k1, k2 = jax.random.split(keys[3])
    init = {"w1": jax.random.normal(k1, (inputs, hidden)) / jnp.sqrt(inputs),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, classes)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(classes)}
    return {"apply": apply, "init_params": init, "x": x, "y": labels, "loss": "cross_entropy"}
