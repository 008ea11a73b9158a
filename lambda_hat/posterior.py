"""The localized tempered posterior p(w) ∝ exp(−nβ L_n(w) − (γ/2)||w − w*||²)
(docs/theory.md §2).

Data travel as an explicit pytree argument (never closed over), so jitted samplers keep one
resident copy shared by all chains and compiled code does not embed the dataset. Inside the
traced program a sampler sees the posterior bound to that data (`Posterior.bind`): plain
functions of w, as BlackJAX's log densities are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def resolve_beta(beta, n: int) -> float:
    return 1.0 / math.log(n) if beta == "auto" else float(beta)


class Localized:
    """The tempering and localization shared by every posterior: subclasses give `loss`,
    `minibatch_loss`, `n`, `nbeta` and `gamma` (methods of w and the data)."""

    loss_eval_cost = 0.5
    """Full-gradient equivalents of one full-data L_n: a forward pass is about half a
    gradient; a loss from sufficient statistics, independent of n, counts 0."""

    def localizer(self, w, data):
        delta = w - data["w_star"]
        return 0.5 * self.gamma * (delta * delta).sum()

    def logdensity(self, w, data):
        return -(self.nbeta * self.loss(w, data) + self.localizer(w, data))

    def bind(self, data) -> "Bound":
        return Bound(self, data)


@dataclass(frozen=True)
class Posterior(Localized):
    """A target's likelihood (`lambda_hat.targets`) at n points, tempered and localized."""

    likelihood: Any
    n: int
    beta: float
    gamma: float
    dtype: str

    @property
    def nbeta(self) -> float:
        return self.n * self.beta

    @property
    def d(self) -> int:
        return self.likelihood.num_params

    @property
    def loss_eval_cost(self) -> float:
        return self.likelihood.loss_eval_cost

    def loss(self, w, data):
        return self.likelihood.loss(w, data)

    def observation(self, w, data):
        """What a trace point records when observing: the per-sample (per-token) losses on
        `data["observe"]` and L_n, at the draw w."""
        return {"losses": self.likelihood.observed_losses(w, data["observe"], data),
                "loss": self.loss(w, data)}

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True):
        """L on `batch_size` points drawn uniformly, with replacement or as distinct points.

        Either way L_batch is unbiased for L_n. Distinct points are a uniform random subset:
        the `batch_size` largest of n iid uniform keys, O(n) per step, where
        `jax.random.choice(replace=False)` permutes all n points (bench numbers:
        docs/samplers.md).
        """
        import jax

        if replacement:
            index = jax.random.randint(key, (batch_size,), 0, self.n)
        else:
            index = jax.lax.top_k(jax.random.uniform(key, (self.n,)), batch_size)[1]
        return self.likelihood.batch_loss(w, data, index)


class Bound:
    """A posterior with its data: the functions of w a kernel uses, inside the trace."""

    def __init__(self, posterior, data):
        self.posterior = posterior
        self.data = data
        self.n = posterior.n
        self.nbeta = posterior.nbeta
        self.gamma = posterior.gamma
        self.loss_eval_cost = posterior.loss_eval_cost
        self.w_star = data["w_star"]

    def loss(self, w):
        return self.posterior.loss(w, self.data)

    def minibatch_loss(self, w, key, batch_size: int, replacement: bool = True):
        return self.posterior.minibatch_loss(w, self.data, key, batch_size, replacement)

    def localizer(self, w):
        return self.posterior.localizer(w, self.data)

    def logdensity(self, w):
        return self.posterior.logdensity(w, self.data)

    def minibatch_potential(self, w, key, batch_size: int, replacement: bool = True):
        """−log p̃ with the loss on one minibatch (the same batch for every call with `key`)."""
        return (self.nbeta * self.minibatch_loss(w, key, batch_size, replacement)
                + self.localizer(w))

    def loss_from_logdensity(self, logdensity, w):
        """Recover L_n from a stored log density, saving a forward pass per draw."""
        return (-logdensity - self.localizer(w)) / self.nbeta


def make_posterior(target, beta, gamma: float, dtype: str, restrict=None,
                   where: str = "restrict"):
    """(posterior, data, loss_star, restricted paths) with every array in the sampler's
    precision; with `restrict`, the posterior of those parameter groups alone (the rest at
    w*; `lambda_hat.restrict`), else paths None."""
    import jax
    import jax.numpy as jnp

    likelihood, paths = target.likelihood, None
    if restrict:
        from .restrict import restricted

        likelihood, paths = restricted(likelihood, restrict, where)
    n = int(target.record["n"])
    jdtype = jnp.float64 if dtype == "float64" else jnp.float32
    data = likelihood.prepare(target.arrays, jdtype)
    posterior = Posterior(likelihood=likelihood, n=n, beta=resolve_beta(beta, n),
                          gamma=float(gamma), dtype=dtype)
    loss_star = jax.jit(posterior.loss)(data["w_star"], data)
    return posterior, data, loss_star, paths
