"""The mean of Gaussian inputs, a worked example of a target kind (docs/adding-a-target.md; not
registered).

n inputs x_i in d dimensions (`data.x`, shifted by `mean`) and L_n(w) = (1/2n) Σ‖x_i − w‖²,
minimised by their average x̄, which is w*. The Hessian is the identity, so λ = d/2 exactly,
and at finite n the localized posterior gives nβ E[L_n − L_n(w*)] = (d/2)·nβ/(nβ + γ). Unlike
`quadratic` it has data: a minibatch loss is noisy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lambda_hat.settings import bounded
from lambda_hat.targets.base import no_sources
from lambda_hat.targets.common import Built, sample_inputs


@dataclass(frozen=True)
class Model:
    kind: Literal["gaussian_mean"]
    d: int = bounded(minimum=1)
    mean: tuple[float, ...] | None = bounded(None, minItems=1)
    """The inputs' true mean (None: zero)."""


DEFAULTS = {"data": {"n": 1000}, "w_star": "trained"}
TAKES_DATA = True
SIZE_KEY = "data.n"
OBSERVABLE = False
PROPER_WITHOUT_LOCALIZER = True
"""Every direction is curved: γ = 0 leaves the posterior proper."""
CHECKPOINTS = "none"
COMPARISON_DATA = "coordinates of the true mean"
sources = no_sources


def check(model: Model) -> list[tuple[str, str]]:
    if model.mean is not None and len(model.mean) != model.d:
        return [("mean", f"needs d = {model.d} entries, not {len(model.mean)}")]
    return []


@dataclass(frozen=True)
class HalfSquaredError:
    num_params: int

    loss_eval_cost = 0.0
    """L_n from the inputs' mean and spread (`prepare`): no pass over the n points."""

    def loss(self, w, data):
        delta = w - data["mean"]
        return 0.5 * (delta * delta).sum() + data["spread"]

    def batch_loss(self, w, data, index):
        residual = data["X"][index] - w
        return 0.5 * (residual * residual).sum(axis=-1).mean()

    def parameter_groups(self) -> list:
        """One vector, no layers: nothing to restrict to."""
        return []

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        X = np.asarray(arrays["X"], np.float64)
        mean = X.mean(axis=0)
        spread = 0.5 * np.mean(np.sum((X - mean) ** 2, axis=-1))
        return {"X": jnp.asarray(X, dtype), "w_star": jnp.asarray(arrays["w_star"], dtype),
                "mean": jnp.asarray(mean, dtype), "spread": jnp.asarray(spread, dtype)}


def likelihood(model: Model, config: dict) -> HalfSquaredError:
    return HalfSquaredError(model.d)


def build(model: Model, config: dict, where: str, dtype) -> Built:
    import jax

    from lambda_hat.errors import ArtifactError

    if config["w_star"] != "trained":
        raise ArtifactError(f"{where}.w_star: a gaussian_mean target's w* is its inputs' "
                            "mean: w_star: trained")
    n, dtype = config["data"]["n"], np.dtype(dtype)
    mean = np.zeros(model.d) if model.mean is None else np.asarray(model.mean)
    X = np.asarray(sample_inputs(jax.random.key(config["seed"]), config["data"]["x"], model.d,
                                 n, dtype)) + mean.astype(dtype)
    w_star = X.astype(np.float64).mean(axis=0).astype(dtype)
    arrays = {"w_star": w_star, "X": X, "Y": np.zeros((n, 0), dtype),
              "plot_reference": mean.astype(dtype)[:, None], "plot_prediction": w_star[:, None]}
    return Built(arrays, true_llc=model.d / 2, multiplicity=1)
