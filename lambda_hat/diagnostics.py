"""Convergence diagnostics of the L_n trace (BlackJAX: ESS, R-hat) and the checks every run
gets; each sampler module adds warnings from its own statistics.

All of them follow Vehtari et al. (2021) and split each chain in half first, so a trend
within a chain counts as disagreement between its halves:

- `r_hat`: BlackJAX's `rhat` (1.7.1), the rank-normalized split R-hat: split, rank-normalize
  the pooled draws, the larger of the bulk and the folded (|x − median|, tail) R-hat. The same
  algorithm as ArviZ's default `az.rhat` (tested to 1e-6). Trusted below `R_HAT_MAX`.
- `ess`: the split-chain ESS of the draws themselves (ArviZ's `az.ess(method="mean")`), the
  one the MCSE of a mean uses. Without the split (BlackJAX's plain `effective_sample_size`) a
  chain drifting the same way as every other one looks stationary and its ESS large.
- `ess_bulk`, `ess_tail`: BlackJAX's, both split (bulk also rank-normalized).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

R_HAT_MAX = 1.01
"""Vehtari et al. (2021): trust the chains when the rank-normalized split R-hat is below 1.01
(the older 1.1 and 1.05 let through chains that visibly disagree)."""
ESS_MIN = 100
"""Below this ESS the autocorrelation estimate, and so the MCSE, is itself unreliable."""


def split_chains(x):
    """(2·chains, draws // 2): each chain's first and second half as two chains (an odd last
    draw is dropped, as BlackJAX's `rhat` and `ess_bulk` drop it). NumPy or JAX arrays."""
    half = x.shape[1] // 2
    first, second = x[:, :half], x[:, half:2 * half]
    if isinstance(x, np.ndarray):
        return np.concatenate([first, second], axis=0)
    import jax.numpy as jnp

    return jnp.concatenate([first, second], axis=0)


def _diagnostics_program(x):
    """All four in one program: run eagerly they compile ~200 small ops (seconds). BlackJAX
    is imported here, at trace time, so a job whose program is cached never imports it."""
    from blackjax import diagnostics as bjd

    return (bjd.effective_sample_size(split_chains(x)), bjd.ess_bulk(x), bjd.ess_tail(x),
            bjd.rhat(x))


@lru_cache(maxsize=8)
def _compiled_diagnostics(shape: tuple[int, int], x64: bool):
    """Compiled for one trace shape and precision (a process may switch with
    `jax.enable_x64`); the traced program is cached on disk like a sampler's."""
    from .programs import compile_program, default_cache_dir

    compiled, _ = compile_program(_diagnostics_program, (np.zeros(shape),),
                                  default_cache_dir())
    return compiled


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def chain_diagnostics(loss: np.ndarray) -> dict:
    """ESS (split, bulk, tail) and rank-normalized split R-hat of a (chains, draws) trace.

    The split ESS is the one that gives the MCSE of a mean; all follow Vehtari et al. (2021).
    Values that cannot be computed (R-hat of one chain, < 8 draws, constant trace) are None.
    """
    loss = np.asarray(loss, np.float64)
    chains, draws = loss.shape
    result = {"ess": None, "ess_bulk": None, "ess_tail": None, "r_hat": None}
    if draws < 8 or not np.all(np.isfinite(loss)) or np.ptp(loss) == 0:
        return result
    import jax

    ess, ess_bulk, ess_tail, r_hat = _compiled_diagnostics(
        loss.shape, bool(jax.config.jax_enable_x64))(loss)
    result["ess"] = _finite_or_none(ess)
    result["ess_bulk"] = _finite_or_none(ess_bulk)
    result["ess_tail"] = _finite_or_none(ess_tail)
    if chains >= 2:
        result["r_hat"] = _finite_or_none(r_hat)
    return result


def run_warnings(estimate, markov_chain: bool, fraction_below_loss_star) -> list[str]:
    """Checks every run gets before its number is trusted (the sampler adds its own)."""
    warnings = []
    if estimate.chains_failed:
        warnings.append(f"{estimate.chains_failed} of {estimate.chains_total} chains "
                        "produced NaN/Inf and were excluded")
    if estimate.r_hat is not None and estimate.r_hat > R_HAT_MAX:
        warnings.append(f"R-hat {estimate.r_hat:.4f} > {R_HAT_MAX}: chains disagree; sample "
                        "longer (more steps)")
    if markov_chain and estimate.ess is not None and estimate.ess < ESS_MIN:
        warnings.append(f"ESS {estimate.ess:.0f} < {ESS_MIN}: the MCSE is unreliable; sample "
                        "longer")
    below = fraction_below_loss_star
    if below is not None and below > 0.1:
        warnings.append(f"{below:.0%} of draws have L_n below L_n(w*): w* is not a local "
                        "minimum (the chain is still optimizing)")
    return warnings
