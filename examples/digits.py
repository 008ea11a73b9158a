"""A classifier on real data for lambda-hat: scikit-learn's 8×8 handwritten digits (1797
images, shipped inside scikit-learn: `pip install 'lambda-hat[digits]'`, nothing is
downloaded), a one-hidden-layer tanh MLP trained to w* by lambda-hat, with λ̂ read off at
checkpoints along training. The experiment is config/digits.yaml:

    snakemake --cores 2 --configfile config/digits.yaml
"""

import jax
import jax.numpy as jnp


def apply(params, x):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def make_target(seed, hidden=16):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = jnp.asarray(digits.data / 16.0)  # pixel intensities 0..16 -> [0, 1]
    inputs, classes = x.shape[1], 10
    k1, k2 = jax.random.split(jax.random.key(seed))
    init = {"w1": jax.random.normal(k1, (inputs, hidden)) / jnp.sqrt(inputs),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, classes)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(classes)}
    return {"apply": apply, "init_params": init, "x": x, "y": jnp.asarray(digits.target),
            "loss": "cross_entropy"}
