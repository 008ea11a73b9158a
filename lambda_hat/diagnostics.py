"""Convergence diagnostics of the L_n trace (BlackJAX: ESS, R-hat) and the sampler checks
that turn a run's statistics into warnings."""

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
    stats = summary.get("stats") or {}
    warnings.extend(sampler_warnings(stats))
    below = summary.get("fraction_below_loss_star")
    if below is not None and below > 0.1:
        warnings.append(f"{below:.0%} of draws have L_n below L_n(w*): w* is not a local "
                        "minimum (the chain is still optimizing)")
    return warnings


MALA_ACCEPTANCE_MIN = 0.8
"""SGLD family: the MALA acceptance of a Langevin proposal at the run's step size. It is a
blunt instrument with one stiff direction among many: on the 5-4-6-5 DLN (d = 74) plain SGLD
at τ = εc_max = 1, 2, 3, 5 gave acceptance 0.88, 0.72, 0.63, 0.61 and λ̂ −6%, +24%, +110%,
+139% (τ = 5 exceeds Euler's stability limit 4: the chain moves to where the curvature is
lower). Defaults give ≥ 0.93; below 0.8 the step size dominates λ̂."""
DIVERGENCE_FRACTION_MAX = 0.01
"""HMC/NUTS: a few divergences are common on singular posteriors (DLN walls) without
visible bias; more than 1% of transitions means the step size misses a region."""
ENERGY_VARIANCE_RATIO_MAX = 10.0
"""MCLMC: its bias grows with the per-dimension energy-error variance; BlackJAX tunes to
`desired_energy_var`. The check uses the mean of ΔE²/d over all kept draws of all chains:
rare wall hits on DLNs lift single chains to ~25× the target without visible bias, but a
pooled mean 10× the target is no longer the regime the sampler was tuned for."""
IMPORTANCE_ESS_MIN = 0.01
"""VI: if fewer than 1% of the draws from q carry the importance weight p/q, E_q[L_n] is
not E_p[L_n] and λ̂ reflects the variational family, not the posterior."""


def sampler_warnings(stats: dict) -> list[str]:
    """Warnings from a sampler's own statistics (`SamplerOutput.stats`)."""
    warnings = []
    divergences = stats.get("divergences")
    fraction = stats.get("divergence_fraction")
    if divergences and (fraction is None or fraction > DIVERGENCE_FRACTION_MAX):
        share = "" if fraction is None else f" ({fraction:.1%} of transitions)"
        warnings.append(f"{divergences} divergent transitions{share}: lower the step size "
                        "or raise target_accept")
    acceptance = stats.get("mala_acceptance_mean")
    if acceptance is not None and acceptance < MALA_ACCEPTANCE_MIN:
        warnings.append(f"MALA acceptance {acceptance:.2f} < {MALA_ACCEPTANCE_MIN}: the step "
                        "size is too large for this posterior (aim near 0.9); lower step_size")
    nonfinite = stats.get("nonfinite_trace_points")
    if nonfinite:
        warnings.append(f"{nonfinite} trace points are NaN/Inf: the sampler diverged; "
                        "lower step_size")
    energy = stats.get("energy_variance_mean")
    desired = stats.get("desired_energy_var")
    if energy is not None and desired and energy > ENERGY_VARIANCE_RATIO_MAX * desired:
        warnings.append(f"MCLMC energy variance {energy:.2g} per dimension is "
                        f"{energy / desired:.0f}× the target {desired:.2g}: the step size is "
                        "too large; raise warmup or set a smaller step_size")
    importance = stats.get("importance_ess_fraction")
    if importance is not None and importance < IMPORTANCE_ESS_MIN:
        warnings.append(f"VI: importance-weight ESS is {importance:.2%} of the draws: q is far "
                        "from the posterior, so λ̂ reflects the variational family")
    return warnings
