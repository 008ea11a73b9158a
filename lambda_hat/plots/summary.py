"""λ̂ per sampler, one panel per target, next to the exact λ and the HMC reference."""

from __future__ import annotations

import math

import numpy as np

from .figure import REFERENCE_STYLE, TRUTH_STYLE, new_figure, save


def robust_limits(values, errors, anchors=(), spread: float = 4.0):
    """(low, high) that keep the bulk of `values` with their error bars (`errors`, the
    half-widths) and the `anchors` (exact λ, reference) in view. The bulk is the median ±
    `spread` IQRs (at least ±25% of it); values beyond it are left off scale."""
    pairs = [(v, e or 0.0) for v, e in zip(values, errors) if v is not None and math.isfinite(v)]
    if not pairs:
        return None
    means = np.asarray([v for v, _ in pairs])
    median = float(np.median(means))
    q1, q3 = np.percentile(means, [25, 75])
    half = max(spread * (q3 - q1), 0.25 * abs(median), 1e-12)
    inside = [(v, e) for v, e in pairs if abs(v - median) <= half]
    anchors = [a for a in anchors if a is not None and math.isfinite(a)]
    low = min([v - e for v, e in inside] + anchors)
    high = max([v + e for v, e in inside] + anchors)
    margin = 0.08 * (high - low or abs(high) or 1.0)
    return low - margin, high + margin


def plot_summary(table, out) -> None:
    """λ̂ per sampler, one panel per target: ± 2 MCSE (thick), ± 1 std across chains (thin),
    exact λ dashed, HMC reference dotted; runs with warnings in orange. The y-range holds the
    bulk of the estimates and the truth; an estimate outside it is drawn as an arrow at the
    edge, labelled with its value."""
    import pandas as pd
    from matplotlib.lines import Line2D

    frame = pd.read_parquet(table)
    targets = list(dict.fromkeys(frame["target"]))
    samplers = list(dict.fromkeys(frame["sampler"]))
    columns = min(3, max(1, len(targets)))
    rows = math.ceil(len(targets) / columns) if targets else 1
    width = max(4.0, 0.55 * len(samplers) + 2.0)
    figure = new_figure(width * columns, 4.0 * rows + 0.6)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()

    def value(row, column):
        item = row[column]
        return None if pd.isna(item) else float(item)

    for ax, target in zip(axes, targets):
        part = frame[frame["target"] == target]
        positions = {name: i for i, name in enumerate(samplers)}
        truth = part["true_llc"].dropna()
        reference = part["ref_llc"].dropna()
        anchors = [float(truth.iloc[0])] if len(truth) else []
        anchors += [float(reference.iloc[0])] if len(reference) else []
        limits = robust_limits(
            [value(row, "llc_mean") for _, row in part.iterrows()],
            [max(value(row, "llc_std") or 0.0, 2 * (value(row, "llc_mcse") or 0.0))
             for _, row in part.iterrows()], anchors)
        for _, row in part.iterrows():
            mean = value(row, "llc_mean")
            if mean is None:
                continue
            x = positions[row["sampler"]]
            color = "tab:blue" if row["status"] == "ok" else "tab:orange"
            if limits and not limits[0] <= mean <= limits[1]:
                edge = limits[1] if mean > limits[1] else limits[0]
                ax.plot(x, edge, "^" if mean > limits[1] else "v", color=color, markersize=9,
                        clip_on=False)
                ax.annotate(f"{mean:.4g}\n(off scale)", (x, edge), textcoords="offset points",
                            xytext=(0, -22 if mean > limits[1] else 10), ha="center",
                            fontsize=7, color=color)
                continue
            std, mcse = value(row, "llc_std"), value(row, "llc_mcse")
            if std is not None:
                ax.errorbar(x, mean, yerr=std, color=color, linewidth=0.9, capsize=4)
            if mcse is not None:
                ax.errorbar(x, mean, yerr=2 * mcse, color=color, linewidth=3.5)
            ax.plot(x, mean, "o", color=color, markersize=6)
        if len(truth):
            ax.axhline(float(truth.iloc[0]), label=f"exact λ = {float(truth.iloc[0]):.4g}",
                       **TRUTH_STYLE)
        if len(reference):
            ax.axhline(float(reference.iloc[0]),
                       label=f"HMC reference = {float(reference.iloc[0]):.4g}",
                       **REFERENCE_STYLE)
        if limits:
            ax.set_ylim(*limits)
        first = part.iloc[0]
        ax.set_title(f"{target} (d = {first['d']}, n = {first['n']})", fontsize=10)
        ax.set_xticks(range(len(samplers)), samplers, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(samplers) - 0.4)
        ax.set_ylabel("λ̂")
        handles = [Line2D([], [], color="gray", linewidth=3.5, label="± 2 MCSE"),
                   Line2D([], [], color="gray", linewidth=0.9, marker="_", markersize=8,
                          label="± 1 std across chains")]
        ok = part["status"] == "ok"
        if ok.any():
            handles.append(Line2D([], [], color="tab:blue", marker="o", linestyle="",
                                  label="λ̂ (ok)"))
        if not ok.all():
            handles.append(Line2D([], [], color="tab:orange", marker="o", linestyle="",
                                  label="λ̂ (with warnings)"))
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], *handles], loc="upper left",
                  bbox_to_anchor=(0.0, -0.28), ncol=3, fontsize=7, frameon=False)
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    experiment = frame["experiment"].iloc[0] if len(frame) else ""
    figure.suptitle(f"LLC estimates, experiment {experiment}", fontsize=11)
    save(figure, out)
