"""What a target is: the student at w* against its reference, and its training curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import read_json, read_npz
from ..targets import REGISTRY as TARGETS
from .figure import TRUTH_STYLE, legend_outside, new_figure, number, save


def _comparison_panel(ax, record: dict, arrays: dict) -> None:
    """Student at w* against its reference on the inputs its kind's `COMPARISON_DATA` names:
    the teacher on held-out inputs, or the data it was fitted to; a confusion matrix for class
    labels."""
    reference, prediction = arrays.get("plot_reference"), arrays.get("plot_prediction")
    if reference is None or prediction is None:
        ax.text(0.5, 0.5, "no network outputs to compare",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    where = TARGETS[record["config"]["model"]["kind"]].COMPARISON_DATA
    if prediction.ndim == 1:
        classes = int(max(reference.max(), prediction.max())) + 1
        confusion = np.zeros((classes, classes))
        np.add.at(confusion, (reference.astype(int), prediction.astype(int)), 1)
        ax.imshow(confusion, cmap="Blues")
        ax.set_xticks(range(classes))
        ax.set_yticks(range(classes))
        if classes <= 12:
            for (label, predicted), count in np.ndenumerate(confusion):
                ax.text(predicted, label, f"{count:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if count > confusion.max() / 2 else "black")
        ax.set_xlabel("predicted class at w*")
        ax.set_ylabel("label")
        accuracy = float(np.mean(reference == prediction))
        ax.set_title(f"accuracy {accuracy:.1%} on {len(reference)} points of the {where}",
                     fontsize=9)
        return
    reference = reference.reshape(len(reference), -1)
    prediction = prediction.reshape(len(prediction), -1)
    for output in range(min(reference.shape[1], 4)):
        ax.scatter(reference[:, output], prediction[:, output], s=4, alpha=0.5,
                   label=f"output {output}")
    low, high = float(min(reference.min(), prediction.min())), float(
        max(reference.max(), prediction.max()))
    ax.plot([low, high], [low, high], **TRUTH_STYLE, label="prediction = reference")
    rmse = float(np.sqrt(np.mean((prediction - reference) ** 2)))
    # on the training data the reference is its y; on held-out inputs, only a teacher has one
    ax.set_xlabel("y (data)" if where == "training data" else "teacher output")
    ax.set_ylabel("student output at w*")
    ax.set_title(f"{len(reference)} points of the {where}: RMSE {number(rmse, 3)}",
                 fontsize=9)
    legend_outside(ax)


def plot_target(target_dir, out) -> None:
    """What a target is: the student at w* against its teacher (or data), and the training
    curve that produced w*."""
    target_dir = Path(target_dir)
    record = read_json(target_dir / "target.json")
    arrays = read_npz(target_dir / "target.npz")
    figure = new_figure(11.0, 4.0)
    left, right = figure.subplots(1, 2)
    _comparison_panel(left, record, arrays)
    history = arrays.get("training_loss")
    if history is None:
        right.text(0.5, 0.5, f"w* = {record['config'].get('w_star', 'given')} (not trained "
                   "here)", ha="center", va="center", transform=right.transAxes)
        right.set_axis_off()
    else:
        steps = np.arange(len(history))
        right.plot(steps, history, linewidth=1.0, label="training loss")
        right.axhline(record["loss_star"], color="black", linestyle=":", linewidth=1.2,
                      label=f"L_n(w*) = {number(record['loss_star'])}")
        if np.all(history > 0):
            right.set_yscale("log")
        right.set_xlabel("training step")
        right.set_ylabel("L_n")
        legend_outside(right)
    truth = record["true_llc"]
    figure.suptitle(f"target {record['name']} ({record['config']['model']['kind']}): n = "
                    f"{record['n']}, d = {record['d']}, "
                    f"{'no exact λ' if truth is None else f'exact λ = {number(truth)}'}",
                    fontsize=10)
    save(figure, out)
