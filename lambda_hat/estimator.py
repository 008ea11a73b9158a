"""λ̂ = nβ (E[L_n] − L_n(w*)), per chain after burn-in, pooled with an MCSE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .diagnostics import chain_diagnostics


@dataclass(frozen=True)
class Estimate:
    chains_total: int
    chains_failed: int
    draws_per_chain: int
    burn_in: int
    llc_per_chain: list
    llc_mean: float | None = None
    llc_std: float | None = None
    llc_mcse: float | None = None
    ess: float | None = None
    ess_bulk: float | None = None
    ess_tail: float | None = None
    r_hat: float | None = None


def estimate_llc(loss: np.ndarray, burn_in: int, loss_star: float, nbeta: float,
                 markov_chain: bool = True) -> Estimate:
    """Pooled estimate from a (chains, T) trace of L_n.

    Chains with any NaN/Inf after burn-in are excluded and counted, never averaged in.
    """
    kept = np.asarray(loss, np.float64)[:, burn_in:]
    finite = np.all(np.isfinite(kept), axis=1)
    good = kept[finite]
    counts = {
        "chains_total": int(kept.shape[0]),
        "chains_failed": int(np.sum(~finite)),
        "draws_per_chain": int(kept.shape[1]),
        "burn_in": int(burn_in),
        "llc_per_chain": [float(v) if ok else None
                          for v, ok in zip(nbeta * (kept.mean(axis=1) - loss_star), finite)],
    }
    if good.shape[0] == 0:
        return Estimate(**counts)
    per_chain = nbeta * (good.mean(axis=1) - loss_star)
    diagnostics = chain_diagnostics(good) if markov_chain else {
        "ess": float(good.size), "ess_bulk": None, "ess_tail": None, "r_hat": None}
    ess = diagnostics["ess"]
    mcse = None
    if ess:
        mcse = float(nbeta * good.std(ddof=1) / np.sqrt(ess)) if good.size > 1 else None
    return Estimate(
        **counts,
        llc_mean=float(per_chain.mean()),
        llc_std=float(per_chain.std(ddof=1)) if len(per_chain) > 1 else 0.0,
        llc_mcse=mcse,
        **diagnostics,
    )
