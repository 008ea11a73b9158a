"""Convergence diagnostics of the L_n trace (BlackJAX: ESS, R-hat) and the checks every run
gets; each sampler module adds warnings from its own statistics."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _diagnostics_program(x):
    """All four in one program: run eagerly they compile ~200 small ops (seconds). BlackJAX
    is imported here, at trace time, so a job whose program is cached never imports it."""
    from blackjax import diagnostics as bjd

    return bjd.effective_sample_size(x), bjd.ess_bulk(x), bjd.ess_tail(x), bjd.rhat(x)


@lru_cache(maxsize=8)
def _compiled_diagnostics(shape: tuple[int, int]):
    """Compiled for one trace shape; the traced program is cached on disk like a sampler's
    (tracing it cost ~0.4 s of every job)."""
    from .programs import compile_program, default_cache_dir

    compiled, _ = compile_program(_diagnostics_program, (np.zeros(shape),),
                                  default_cache_dir())
    return compiled


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def chain_diagnostics(loss: np.ndarray) -> dict:
    """ESS (plain, bulk, tail) and rank-normalised R-hat of a (chains, draws) trace.

    Plain ESS is the one that gives the MCSE of a mean; bulk/tail follow Vehtari et al. (2021).
    Values that cannot be computed (one chain, < 8 draws, constant trace) are None.
    """
    loss = np.asarray(loss, np.float64)
    chains, draws = loss.shape
    result = {"ess": None, "ess_bulk": None, "ess_tail": None, "r_hat": None}
    if draws < 8 or not np.all(np.isfinite(loss)) or np.ptp(loss) == 0:
        return result
    ess, ess_bulk, ess_tail, r_hat = _compiled_diagnostics(loss.shape)(loss)
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
    if estimate.r_hat is not None and estimate.r_hat > 1.05:
        warnings.append(f"R-hat {estimate.r_hat:.3f} > 1.05: chains disagree; sample longer")
    if markov_chain and estimate.ess is not None and estimate.ess < 100:
        warnings.append(f"ESS {estimate.ess:.0f} < 100: the MCSE is unreliable; sample longer")
    below = fraction_below_loss_star
    if below is not None and below > 0.1:
        warnings.append(f"{below:.0%} of draws have L_n below L_n(w*): w* is not a local "
                        "minimum (the chain is still optimizing)")
    return warnings
