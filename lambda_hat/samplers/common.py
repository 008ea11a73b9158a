"""What every sampler family returns, the compile-then-run timing they share, and the small
interface a sampler needs from a posterior (so tests can hand it any potential)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from ..programs import compile_program, default_cache_dir


class PosteriorLike(Protocol):
    """What samplers use of `lambda_hat.posterior.Posterior`.

    The log density is −(nβ·loss + localizer); `data` is a pytree argument (never closed
    over) holding at least `w_star`, the centre and starting point of every chain.
    """

    n: int
    nbeta: float
    gamma: float

    def loss(self, w, data): ...

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True): ...

    def localizer(self, w, data): ...

    def logdensity(self, w, data): ...

    def loss_from_logdensity(self, logdensity, w, data): ...


@dataclass
class SamplerOutput:
    """Traces of one run, chains first.

    `loss[c, t]` is the full-data L_n at trace point t of chain c; the estimator averages
    `loss[:, burn_in:]`. `grad_evals_at[t]` is the cumulative cost per chain, in full-gradient
    equivalents, when trace point t was taken (warmup included).
    """

    loss: np.ndarray
    burn_in: int
    grad_evals_at: np.ndarray
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    compile_seconds: float = 0.0
    sample_seconds: float = 0.0

    @property
    def grad_evals(self) -> float:
        """Total full-gradient equivalents over all chains."""
        return float(self.grad_evals_at[-1]) * self.loss.shape[0]


def compile_and_run(fn, *args):
    """Run jit(fn)(*args), timing compilation and execution separately.

    The traced program is kept beside JAX's compilation cache (`lambda_hat.programs`), so a
    rerun skips tracing as well as compiling.
    """
    started = time.perf_counter()
    compiled, _ = compile_program(fn, args, default_cache_dir())
    compiled_at = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    finished = time.perf_counter()
    return jax.tree.map(np.asarray, result), compiled_at - started, finished - compiled_at


def chain_keys(seed: int, chains: int):
    return jax.random.split(jax.random.key(seed), chains)


def broadcast_chains(tree, chains: int):
    """Copy one state to a leading chain axis."""
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (chains, *jnp.shape(leaf))), tree)


def is_auto(value) -> bool:
    """Settings that the sampler tunes itself are written null or "auto"."""
    return value is None or value == "auto"


POWER_ITERATIONS = 30


def top_curvature(loss_fn, w, key, iterations: int = POWER_ITERATIONS):
    """Largest |eigenvalue| of the Hessian of `loss_fn` at `w` by power iteration (HVPs)."""
    hvp = lambda v: jax.jvp(jax.grad(loss_fn), (w,), (v,))[1]  # noqa: E731
    v0 = jax.random.normal(key, w.shape, w.dtype)

    def body(v, _):
        hv = hvp(v)
        return hv / (jnp.linalg.norm(hv) + jnp.finfo(w.dtype).tiny), None

    v, _ = jax.lax.scan(body, v0 / jnp.linalg.norm(v0), None, length=iterations)
    return jnp.abs(jnp.vdot(v, hvp(v)))


def over_chains(fn, xs):
    """Map `fn` over the leading (chain) axis with `lax.map`, not `vmap`.

    BlackJAX's adaptation loops (window adaptation, MCLMC tuning) and NUTS trees are
    `while_loop`s: under vmap every chain waits for the slowest and XLA compiles the batched
    loop bodies, which doubled compile time (MCLMC: 15.6 s → 6.6 s on a DLN) for no gain on a
    few CPU cores.
    """
    return jax.lax.map(fn, xs)


def loss_eval_cost(posterior) -> float:
    """Full-gradient equivalents of one full-data L_n evaluation (a trace point).

    A forward pass over the n points costs about half a gradient; a deep linear network's
    L_n comes from sufficient statistics (O(d·H_0), independent of n) and counts as 0.
    """
    return 0.0 if getattr(posterior, "quadratic", True) else 0.5
