"""λ̂ = nβ (E[L_n] − L_n(w*)), per chain after burn-in, pooled with an MCSE
(docs/theory.md §1)."""

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
    llc_mcse_ess: float | None = None
    """The MCSE from the split-chain ESS alone (iid draws: the pooled std / √draws)."""
    llc_mcse_between: float | None = None
    """std(llc_per_chain) / √chains: the MCSE that chains' disagreement alone implies."""


def llc_mcse(pooled: np.ndarray, per_chain: np.ndarray, ess: float | None, nbeta: float
             ) -> tuple[float | None, float | None, float | None]:
    """(MCSE, ESS-based MCSE, between-chain MCSE) of the pooled λ̂ = mean of `per_chain`.

    The ESS-based figure nβ·std(L_n)/√ESS trusts the autocorrelation estimate of each chain;
    chains that each look stationary but sit in different places (different basins, a mode
    one chain has not left) make it far smaller than the spread of the chains' own estimates.
    That spread estimates the same standard error without any autocorrelation model: the
    chains are independent, so the mean of M of them has standard error
    std(per chain, ddof=1)/√M (noisy with few chains, hence a floor, not a replacement). The MCSE reported is the larger of the two
    (with ≥ 2 chains), so the error bar never claims more precision than the chains' agreement
    shows. For iid draws (VI: each chain an independent fit, ESS = draws) the same floor is the
    fit-to-fit spread, which the iid std/√draws of one pooled sample ignores. It is only a
    floor on the ESS figure: with no ESS-based MCSE (constant trace, too few draws) there is
    no MCSE.
    """
    ess_based = None
    if ess and pooled.size > 1:
        ess_based = float(nbeta * pooled.std(ddof=1) / np.sqrt(ess))
    between = None
    if len(per_chain) >= 2:
        between = float(np.std(per_chain, ddof=1) / np.sqrt(len(per_chain)))
    if ess_based is None:
        return None, None, between
    return max(ess_based, between or 0.0), ess_based, between


def estimate_llc(loss: np.ndarray, burn_in: int, loss_star: float, nbeta: float,
                 markov_chain: bool = True) -> Estimate:
    """Pooled estimate from a (chains, T) trace of L_n.

    Chains with any NaN/Inf after burn-in are excluded and counted, never averaged in. The
    MCSE is `llc_mcse`'s: the split-chain ESS figure, floored by the chains' spread.
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
    mcse, mcse_ess, mcse_between = llc_mcse(good, per_chain, diagnostics["ess"], nbeta)
    return Estimate(
        **counts,
        llc_mean=float(per_chain.mean()),
        llc_std=float(per_chain.std(ddof=1)) if len(per_chain) > 1 else 0.0,
        llc_mcse=mcse,
        llc_mcse_ess=mcse_ess,
        llc_mcse_between=mcse_between,
        **diagnostics,
    )


BIAS_MCSE = 2.0
BIAS_FRACTION = 0.01
"""A bias the run can compute (a stationarity drop, what a correction leaves) warns above
BIAS_MCSE × λ̂'s MCSE or BIAS_FRACTION of λ̂, whichever is smaller: a bias the run's own
error bar would hide is not silent."""


def bias_threshold(llc: float, mcse: float | None) -> float:
    """The known bias a run with this λ̂ and MCSE warns above."""
    fraction = BIAS_FRACTION * abs(llc)
    return fraction if mcse is None else min(BIAS_MCSE * mcse, fraction)


@dataclass(frozen=True)
class StepBias:
    """What Richardson extrapolation over the step size removed (`extrapolate`)."""

    llc_uncorrected: float | None
    """λ̂(ε): the chains' own estimate, with the step's bias."""
    llc_uncorrected_mcse: float | None
    step_bias: float | None
    """λ̂(ε) − the extrapolated λ̂: the first-order bias of the step, measured."""
    step_bias_mcse: float | None
    bias_correction: str = "richardson"


def extrapolate(loss: np.ndarray, half_step_loss: np.ndarray, burn_in: int, loss_star: float,
                nbeta: float) -> tuple[Estimate, StepBias]:
    """(estimate, step bias) from chains at step ε and their coupled twins at ε/2.

    A step's bias is a ε + O(ε²), so 2·λ̂(ε/2) − λ̂(ε) = nβ(mean(2L(ε/2) − L(ε)) − L_n(w*))
    has no first-order term; it is `estimate_llc` of that trace, so its ESS, R-hat and MCSE
    are the extrapolated estimate's own. The bias removed, λ̂(ε) − that, is
    nβ·mean(2(L(ε) − L(ε/2))), with its MCSE from the same estimator. A chain is
    excluded when it or its twin is not finite.
    """
    loss = np.asarray(loss, np.float64)
    half = np.asarray(half_step_loss, np.float64)
    uncorrected = estimate_llc(loss, burn_in, loss_star, nbeta)
    bias = estimate_llc(2 * (loss - half), burn_in, 0.0, nbeta)
    return estimate_llc(2 * half - loss, burn_in, loss_star, nbeta), StepBias(
        uncorrected.llc_mean, uncorrected.llc_mcse, bias.llc_mean, bias.llc_mcse)


def step_bias_warnings(bias: StepBias, llc: float, mcse: float | None) -> list[str]:
    """What extrapolation may leave. On a Gaussian direction of dimensionless step x the
    Euler–Maruyama bias is λ(x + x² + …) and 2·λ̂(ε/2) − λ̂(ε) keeps −λx²/2 of it: over all
    directions at least B²/(2λ̂) for a removed bias B (Cauchy–Schwarz). Minibatch noise's
    share of B has a smaller second order, so B²/(2λ̂) is the scale of what is left, not a
    bound. Above `bias_threshold` it warns: the step is too large to be sure of the
    correction."""
    if bias.step_bias is None or not llc:
        return []
    left = bias.step_bias ** 2 / (2 * abs(llc))
    if left <= bias_threshold(llc, mcse):
        return []
    return [f"the step size's bias ({bias.step_bias:+.3g}, {bias.step_bias / llc:.1%} of λ̂) "
            f"was removed to first order; what is left is of order {left:.2g} "
            f"({'' if mcse is None else f'{left / mcse:.1f} MCSE, '}{left / abs(llc):.1%}): "
            "take a smaller step to be sure (raise target_acceptance or lower "
            "step_size_scale; or a smaller step_size)"]
