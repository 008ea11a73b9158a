"""λ̂ against each swept axis of a grid."""

from __future__ import annotations

import numpy as np

from .figure import REFERENCE_STYLE, TRUTH_STYLE, legend_outside, new_figure, number, save


def _axis_positions(values):
    """x for an axis' values: numbers as they are (log scale when they span a decade or
    more), anything else in order of appearance, labelled."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        positive = (numbers > 0).all()
        return numbers.astype(float), None, bool(positive and numbers.max() >= 10 * numbers.min())
    order = list(dict.fromkeys(values))
    return values.map(order.index).astype(float), order, False


def plot_grid(table, out) -> None:
    """λ̂ against each swept axis, one panel per axis: per sampler (and per value of the other
    swept axes) the mean over replicates with their spread (± 1 std, shaded) or, with one
    replicate, ± 2 MCSE; the exact λ dashed where known, else the HMC reference dotted."""
    import pandas as pd

    frame = pd.read_parquet(table)
    axes_keys = [column for column in frame.columns
                 if column.startswith(("target.", "sampler.")) and not column.endswith("replicate")]
    figure = new_figure(12.0, 4.2 * max(1, len(axes_keys)) + 0.4)
    axes = np.atleast_1d(figure.subplots(max(1, len(axes_keys)), 1, squeeze=False).ravel())
    if not axes_keys:
        axes[0].text(0.5, 0.5, "no grid in this experiment", ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, key in zip(axes, axes_keys):
        part = frame[frame[key].notna()].copy()
        part["x"], labels, log = _axis_positions(part[key])
        # a grid point's name carries its values: lines are per entry it came from
        part["sampler entry"] = part["sweep_of"].fillna(part["sampler"])
        part["target entry"] = part["grid_of"].fillna(part["target"])
        others = [column for column in axes_keys if column != key and part[column].notna().any()]
        series = ["sampler entry", "target entry", *others]
        for name, runs in part.groupby(series, sort=False, dropna=False):
            label = ", ".join([str(name[0]), str(name[1])] + [
                f"{column.split('.', 1)[-1]}={number(value)}"
                for column, value in zip(series[2:], name[2:]) if not pd.isna(value)])
            per_x = runs.groupby("x")
            mean = per_x["llc_mean"].mean()
            replicated = per_x.size().max() > 1
            if replicated:
                spread = per_x["llc_mean"].std().fillna(0.0)
                line, = ax.plot(mean.index, mean.values, marker="o", markersize=4,
                                label=f"{label} (mean of {per_x.size().max()})")
                ax.fill_between(mean.index, mean - spread, mean + spread, alpha=0.2,
                                color=line.get_color())
            else:
                mcse = per_x["llc_mcse"].mean().fillna(0.0)
                ax.errorbar(mean.index, mean.values, yerr=2 * mcse, marker="o", markersize=4,
                            capsize=3, label=label)
        truth = part.groupby("x")["true_llc"].mean().dropna()
        reference = part.groupby("x")["ref_llc"].mean().dropna()
        if len(truth):
            ax.plot(truth.index, truth.values, label="exact λ", **TRUTH_STYLE)
        elif len(reference):
            ax.plot(reference.index, reference.values, label="HMC reference", **REFERENCE_STYLE)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        elif log:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("λ̂")
        legend_outside(ax)
    save(figure, out)
