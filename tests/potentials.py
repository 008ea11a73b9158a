"""Exact test potentials: posteriors whose answer is known, for any sampler module.

Each satisfies what samplers use of `lambda_hat.posterior.Posterior` (`Localized` gives the
localizer, the log density and `bind`), so the driver can run any kernel on a potential
(docs/theory.md §3.4: with γ = 0 and a flat prior, K(w) = Σ c_i w_i^{2k_i} gives nβ·E[K] =
Σ 1/(2k_i) exactly, for any nβ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lambda_hat.posterior import Localized


@dataclass(frozen=True)
class PotentialPosterior(Localized):
    """p(w) ∝ exp(−nβ·K(w) − (γ/2)||w − w*||²) for K(w) = Σ c_i (w_i − w*_i)^{2k_i}.

    The loss has no data: `minibatch_loss` is the exact loss (no gradient noise), which
    isolates the discretisation error of a stochastic-gradient sampler.
    """

    coefficients: tuple[float, ...]
    powers: tuple[int, ...]
    nbeta: float
    gamma: float = 0.0
    n: int = 1000

    @property
    def d(self) -> int:
        return len(self.coefficients)

    @property
    def exact_llc(self) -> float:
        """nβ·E[K] when γ = 0."""
        return float(sum(1.0 / (2 * k) for k in self.powers))

    def data(self, dtype):
        import jax.numpy as jnp

        return {"w_star": jnp.zeros(self.d, dtype)}

    def loss(self, w, data):
        import jax.numpy as jnp

        delta = w - data["w_star"]
        # Integer powers written out: a float exponent would route through exp(log |x|).
        terms = [c * delta[i] ** (2 * k) for i, (c, k) in
                 enumerate(zip(self.coefficients, self.powers))]
        return jnp.sum(jnp.stack(terms))

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True):
        return self.loss(w, data)


@dataclass(frozen=True)
class GaussianPosterior(Localized):
    """Quadratic loss L(w) = ½ (w − w*)ᵀ A (w − w*) with A = Σ⁻¹/nβ, Σ = diag(s) + uuᵀ.

    With γ = 0 the posterior is exactly N(w*, Σ): nβ·E[L] = d/2 and log Z is known, so a
    variational family that contains Σ (rank ≥ 1 plus diagonal) must reach ELBO = log Z.
    """

    diagonal: tuple[float, ...]
    factor: tuple[float, ...]
    nbeta: float
    gamma: float = 0.0
    n: int = 1000

    @property
    def d(self) -> int:
        return len(self.diagonal)

    @property
    def covariance(self) -> np.ndarray:
        u = np.asarray(self.factor)
        return np.diag(self.diagonal) + np.outer(u, u)

    @property
    def log_normaliser(self) -> float:
        """log ∫ exp(−nβ L(w)) dw = (d/2) log 2π + ½ log|Σ|."""
        return 0.5 * self.d * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(self.covariance)[1]

    @property
    def exact_llc(self) -> float:
        return self.d / 2

    def data(self, dtype):
        import jax.numpy as jnp

        precision = np.linalg.inv(self.covariance) / self.nbeta
        return {"w_star": jnp.zeros(self.d, dtype), "A": jnp.asarray(precision, dtype)}

    def loss(self, w, data):
        delta = w - data["w_star"]
        return 0.5 * delta @ data["A"] @ delta

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True):
        return self.loss(w, data)


SPECS = {"potential": PotentialPosterior, "gaussian": GaussianPosterior}


def potential_from_spec(spec: dict):
    """Rebuild a test posterior from JSON (specs cross the subprocess boundary as JSON)."""
    spec = dict(spec)
    cls = SPECS[spec.pop("type")]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
