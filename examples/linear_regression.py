"""A user-defined target for lambda-hat: linear regression in pure JAX.

    targets:
      linear:
        model: {kind: python, entry: "examples/linear_regression.py:make_target",
                options: {inputs: 4, outputs: 2, n: 2000}}

A regular model with d = inputs × outputs parameters, so λ = d/2; at finite n the localized
posterior gives Σ_i ½ nβ h_i / (nβ h_i + γ) over the Hessian's eigenvalues h_i (the test of
this example checks HMC against that). `params` is the least-squares fit, which is w*.
"""

import jax
import jax.numpy as jnp


def apply(params, x):
    return x @ params["weight"]


def make_target(seed, inputs=4, outputs=2, n=2000, noise=0.5):
    key_x, key_w, key_noise = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(key_x, (n, inputs))
    teacher = jax.random.normal(key_w, (inputs, outputs))
    y = x @ teacher + noise * jax.random.normal(key_noise, (n, outputs))
    fit = jnp.linalg.lstsq(x, y)[0]
    return {"apply": apply, "params": {"weight": fit}, "x": x, "y": y, "loss": "mse"}
