"""A user-defined classification target with a known λ: multinomial logistic (softmax)
regression with a bias, on synthetic data, trained to w* by lambda-hat.

    targets:
      softmax:
        model: {kind: python, entry: "examples/softmax_regression.py:make_target",
                options: {classes: 3, inputs: 4, n: 6000}}

Data: x ~ N(0, I_p), and labels drawn from softmax(x W + b) with a true W (p × K) and
b (K) drawn from the seed, their entries N(0, weight_scale²) and N(0, bias_scale²).

The model has K(p + 1) parameters, and is regular in its (K − 1)(p + 1) identifiable
ones: adding the same affine function of x to every logit (W → W + u1ᵀ, b → b + c1ᵀ)
leaves the softmax, hence the loss, exactly unchanged, so those p + 1 directions are exactly
flat and add nothing to λ (docs/theory.md §3.1: flat directions contribute 0, not ½). Hence
λ = (K − 1)(p + 1)/2, which is 5 for K = 3, p = 4.

No `params` are returned, only `init_params` (zeros): lambda-hat trains w* to the
maximum-likelihood fit, the optimum of the empirical loss that the estimator expects
(the true W, b are not a stationary point of L_n at finite n). The loss is convex, and the
default training (Adam, 2000 steps) ends with ‖∇L_n(w*)‖ ≈ 1e-10 at n = 5000.
"""

import jax
import jax.numpy as jnp


def apply(params, x):
    return x @ params["weight"] + params["bias"]


def make_target(seed, classes=3, inputs=4, n=6000, weight_scale=1.0, bias_scale=1.0):
    key_w, key_b, key_x, key_y = jax.random.split(jax.random.key(seed), 4)
    weight = weight_scale * jax.random.normal(key_w, (inputs, classes))
    bias = bias_scale * jax.random.normal(key_b, (classes,))
    x = jax.random.normal(key_x, (n, inputs))
    labels = jax.random.categorical(key_y, x @ weight + bias, axis=-1)
    init = {"weight": jnp.zeros((inputs, classes)), "bias": jnp.zeros(classes)}
    return {"apply": apply, "init_params": init, "x": x, "y": labels, "loss": "cross_entropy"}
