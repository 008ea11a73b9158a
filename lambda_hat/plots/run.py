"""The diagnostics of one run: its running λ̂, its loss per chain, its ELBO."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..artifacts import read_npz
from ..summary import read_summary
from .figure import TRUTH_STYLE, legend_outside, new_figure, number, save


def running_llc(loss: np.ndarray, burn_in: int, loss_star: float, nbeta: float) -> np.ndarray:
    """(chains, T - burn_in): each chain's LLC estimate using its draws so far."""
    kept = np.asarray(loss, np.float64)[:, burn_in:]
    steps = np.arange(1, kept.shape[1] + 1)
    return nbeta * (np.cumsum(kept, axis=1) / steps - loss_star)


def _wrapped(lines, width: int = 120) -> str:
    return "\n".join(textwrap.fill(line, width) for line in lines)


def plot_run(run_dir, out) -> None:
    """Running LLC estimate (± 2 s.e. across chains) and loss per chain against gradient
    evaluations, on one x-range, with the discarded warmup or burn-in shaded; the ELBO history
    too when the run recorded one (variational inference)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir / "summary.json")
    trace = read_npz(run_dir / "trace.npz", required=("loss", "burn_in", "loss_star"))
    loss = np.atleast_2d(np.asarray(trace["loss"], np.float64))
    chains, steps = loss.shape
    burn_in = int(trace["burn_in"])
    loss_star = float(trace["loss_star"])
    x = np.asarray(trace.get("grad_evals_at", np.arange(steps)), np.float64).ravel()
    xlabel = "gradient evaluations per chain (full-batch equivalents)"
    if x.shape[0] != steps or not np.all(np.diff(x) > 0):
        # e.g. VI: every draw from the fitted q costs the same, so index the draws instead
        x, xlabel = np.arange(steps, dtype=np.float64), "draw"
    elbo = trace.get("warmup_elbo")
    panels = 3 if elbo is not None else 2
    figure = new_figure(9.0, 2.9 * panels + 0.6 + 0.15 * len(summary.warnings))
    axes = figure.subplots(panels, 1)
    discarded = (x[0] if burn_in == 0 else x[min(burn_in, steps - 1)]) if x[0] > 0 else 0.0
    x_range = (0.0 if discarded else x[0], x[-1])

    ax = axes[0]
    running = running_llc(loss, burn_in, loss_star, summary.nbeta)
    xs = x[burn_in:]
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(running)
        count = finite.sum(axis=0)
        pooled = np.where(count > 0, np.nansum(np.where(finite, running, 0), axis=0)
                          / np.maximum(count, 1), np.nan)
    for chain in range(chains):
        ax.plot(xs, running[chain], linewidth=0.7, alpha=0.6)
    ax.plot(xs, pooled, color="black", linewidth=1.8, label="pooled running mean")
    if chains > 1 and running.shape[1]:
        with np.errstate(invalid="ignore"):
            se = np.nanstd(running, axis=0, ddof=1) / np.sqrt(np.maximum(count, 1))
        ax.fill_between(xs, pooled - 2 * se, pooled + 2 * se, color="gray", alpha=0.3,
                        label="± 2 s.e. across chains")
    if summary.true_llc is not None:
        ax.axhline(summary.true_llc, label=f"exact λ = {summary.true_llc:.4g}", **TRUTH_STYLE)
    ax.set_ylabel("running λ̂")
    ax.set_xlabel(xlabel)
    ax.set_xlim(*x_range)
    legend_outside(ax)
    truth = "no exact λ" if summary.true_llc is None else f"exact {number(summary.true_llc)}"
    ax.set_title(
        f"{summary.target} / {summary.sampler} ({summary.kind}, {summary.dtype}): "
        f"λ̂ = {number(summary.llc_mean)} ± {number(summary.llc_mcse, 2)} (MCSE), {truth}",
        fontsize=10)

    ax = axes[1]
    for chain in range(chains):
        ax.plot(x, loss[chain], linewidth=0.7, alpha=0.8, label=f"chain {chain}")
    if discarded:
        what = "warmup" if burn_in == 0 else "burn-in"
        ax.axvspan(0.0, discarded, color="gray", alpha=0.15, label=f"{what} (discarded)")
    ax.axhline(loss_star, color="black", linestyle=":", linewidth=1.2, label="L_n(w*)")
    ax.set_ylabel(f"L_n(w), minibatch mean of {summary.trace_every} steps"
                  if summary.loss_trace == "minibatch_mean" else "L_n(w)")
    ax.set_xlabel(xlabel)
    ax.set_xlim(*x_range)
    if chains <= 8:
        legend_outside(ax)

    if elbo is not None:
        ax = axes[2]
        elbo = np.atleast_2d(np.asarray(elbo, np.float64))
        every = summary.settings.get("eval_every", 1)
        for index, row in enumerate(elbo):
            ax.plot(np.arange(1, row.shape[0] + 1) * every, row, linewidth=0.8,
                    label=f"fit {index}")
        ax.set_ylabel(f"ELBO (mean of {every} steps)")
        ax.set_xlabel("optimisation step")
        legend_outside(ax)
    if summary.warnings:
        figure.suptitle(_wrapped(["warnings:", *summary.warnings]), fontsize=7,
                        color="tab:orange", ha="left", x=0.01)
    save(figure, out)
