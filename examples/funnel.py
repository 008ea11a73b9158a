"""A singular funnel: y = x·w₁·w₂³ + noise, one input, taught by w* = 0 (`kind: python`).

Near w* = 0, K(w) ∝ w₁²w₂⁶ is a normal crossing: λ = min(1/2, 1/6) = 1/6 (the highest
power sets it), reached slowly in n. The posterior is a funnel: away from w₂ = 0 the data pin
w₁ to a width ∝ 1/|w₂|³, while near w₂ = 0 only the localizer holds it, the shape every
singularity gives the samplers.

Given w₂, L_n is quadratic in w₁, so the posterior's expectation of nβ(L_n(w) − L_n(w*)) is a
one-dimensional integral over w₂ (`finite_n_reference`): the exact finite-n answer at the
same n, β and γ, up to the quadrature's error.
"""

from __future__ import annotations

import numpy as np


def apply(params, x):
    return x * params["w1"] * params["w2"] ** 3


def make_target(seed: int = 0, n: int = 1000, sigma: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    noise = sigma * rng.normal(size=(n, 1))
    # Without the noise's component along x, w* = 0 minimises L_n exactly (a stationary w*,
    # no linear term pulling λ̂ below zero).
    y = noise - x * (np.sum(x * noise) / np.sum(x * x))
    return {"apply": apply, "params": {"w1": np.zeros(1), "w2": np.zeros(1)},
            "x": x, "y": y, "loss": "mse"}


def finite_n_reference(x, y, nbeta: float, gamma: float, grid: int = 400_001) -> float:
    """E[nβ(L_n(w) − L_n(0))] under p(w) ∝ exp(−nβ(L_n(w) − L_n(0)) − γ‖w‖²/2).

    With g = w₁c, c = w₂³: L_n(w) − L_n(0) = a g² − 2 b g (a = mean x², b = mean xy), a
    Gaussian in w₁ of precision P = 2nβac² + γ and mean m = 2nβbc/P. Integrating w₁ out
    leaves weights √(2π/P)·exp(Pm²/2 − γw₂²/2) over w₂ and the conditional expectation
    nβ(ac²(m² + 1/P) − 2bcm), summed on a uniform grid over ±12/√γ (the localizer's scale).
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    a, b = np.mean(x * x), np.mean(x * y)
    w2 = np.linspace(-12 / np.sqrt(gamma), 12 / np.sqrt(gamma), grid)
    c = w2 ** 3
    precision = 2 * nbeta * a * c * c + gamma
    mean = 2 * nbeta * b * c / precision
    log_weight = 0.5 * (np.log(2 * np.pi / precision) + precision * mean * mean
                        - gamma * w2 * w2)
    weight = np.exp(log_weight - log_weight.max())
    conditional = nbeta * (a * c * c * (mean * mean + 1 / precision) - 2 * b * c * mean)
    return float(np.sum(weight * conditional) / np.sum(weight))
