"""λ̂ along training, for the targets with checkpoints, beside the training loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import read_npz
from .figure import TRUTH_STYLE, legend_outside, new_figure, save


def _trajectory(frame, name: str):
    """The rows of a declared target and its checkpoints, in training order, with their x:
    the training step, or (a checkpoint named otherwise) its position with the name."""
    part = frame[(frame["checkpoint_of"] == name) | (frame["target"] == name)].copy()
    steps = part["training_step"]
    if steps.notna().all():
        part["x"] = steps.astype(float)
        return part.sort_values("x", kind="stable"), None
    order = list(dict.fromkeys(
        [target for target in part["target"] if target != name] + [name]))
    part["x"] = [float(order.index(target)) for target in part["target"]]
    labels = ["w*" if target == name else str(target).partition("@")[2] for target in order]
    return part.sort_values("x", kind="stable"), labels


def plot_checkpoints(table, targets_dir, out) -> None:
    """λ̂ (± 2 MCSE) against training step per sampler, one row per target with checkpoints,
    runs with warnings ringed, beside the training loss with L_n at each checkpoint."""
    import pandas as pd

    frame = pd.read_parquet(table)
    names = list(dict.fromkeys(frame.loc[frame["checkpoint_of"].notna(), "checkpoint_of"]))
    figure = new_figure(12.0, 3.8 * max(1, len(names)) + 0.4)
    axes = np.atleast_2d(figure.subplots(max(1, len(names)), 2, squeeze=False))
    if not names:
        for ax in axes.ravel():
            ax.set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no target has checkpoints", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    for (left, right), name in zip(axes, names):
        part, labels = _trajectory(frame, name)
        for sampler, runs in part.groupby("sampler", sort=False):
            mcse = runs["llc_mcse"].astype(float).fillna(0.0)
            left.errorbar(runs["x"], runs["llc_mean"].astype(float), yerr=2 * mcse,
                          marker="o", markersize=4, linewidth=1.0, capsize=3, label=sampler)
        warned = part[part["status"] != "ok"]
        if len(warned):
            left.plot(warned["x"], warned["llc_mean"].astype(float), "o", markersize=10,
                      markerfacecolor="none", markeredgecolor="tab:orange",
                      label="run with warnings")
        truth = part["true_llc"].dropna()
        if len(truth) and truth.nunique() == 1:
            left.axhline(float(truth.iloc[0]), label=f"exact λ = {float(truth.iloc[0]):.4g}",
                         **TRUTH_STYLE)
        left.set_ylabel("λ̂ ± 2 MCSE")
        left.set_title(f"{name}: λ̂ along training", fontsize=10)
        legend_outside(left)
        history = None
        record_npz = Path(targets_dir) / name / "target.npz"
        if record_npz.is_file():
            history = read_npz(record_npz).get("training_loss")
        if history is not None and labels is None and len(history):
            right.plot(np.arange(len(history)), history, linewidth=1.0,
                       label="training loss")
        points = part.drop_duplicates("target")
        right.plot(points["x"], points["loss_star"].astype(float), "o", color="black",
                   markersize=4, label="L_n at the checkpoint")
        if (points["loss_star"].astype(float) > 0).all():
            right.set_yscale("log")
        right.set_ylabel("L_n")
        legend_outside(right)
        for ax in (left, right):
            if labels is None:
                ax.set_xlabel("training step")
            else:
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlabel("checkpoint")
    save(figure, out)
