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


def run_warnings(summary: dict) -> list[str]:
    """Checks a user should see before trusting the number."""
    warnings = []
    if summary["chains_failed"]:
        warnings.append(f"{summary['chains_failed']} of {summary['chains_total']} chains "
                        "produced NaN/Inf and were excluded")
    r_hat = summary.get("r_hat")
    if r_hat is not None and r_hat > 1.05:
        warnings.append(f"R-hat {r_hat:.3f} > 1.05: chains disagree; sample longer")
    ess = summary.get("ess")
    if summary["markov_chain"] and ess is not None and ess < 100:
        warnings.append(f"ESS {ess:.0f} < 100: the MCSE is unreliable; sample longer")
    divergences = summary["stats"].get("divergences")
    if divergences:
        warnings.append(f"{divergences} divergent transitions: lower the step size "
                        "or raise target_accept")
    below = summary.get("fraction_below_loss_star")
    if below is not None and below > 0.1:
        warnings.append(f"{below:.0%} of draws have L_n below L_n(w*): w* is not a local "
                        "minimum (the chain is still optimizing)")
    return warnings
