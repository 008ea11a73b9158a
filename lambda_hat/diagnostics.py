"""Convergence diagnostics of the L_n trace (BlackJAX): ESS and R-hat."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _compiled_diagnostics():
    """One jitted call for all four: run eagerly they compile ~200 small ops (seconds)."""
    import jax
    from blackjax import diagnostics as bjd

    return jax.jit(lambda x: (bjd.effective_sample_size(x), bjd.ess_bulk(x),
                              bjd.ess_tail(x), bjd.rhat(x)))


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
    ess, ess_bulk, ess_tail, r_hat = _compiled_diagnostics()(loss)
    result["ess"] = _finite_or_none(ess)
    result["ess_bulk"] = _finite_or_none(ess_bulk)
    result["ess_tail"] = _finite_or_none(ess_tail)
    if chains >= 2:
        result["r_hat"] = _finite_or_none(r_hat)
    return result
