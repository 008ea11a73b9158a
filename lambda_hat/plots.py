"""Figures: diagnostics of one run, and every estimate of an experiment next to the truth.

Matplotlib's object API (no pyplot, no GUI backend, no global state); each figure is rendered
to memory and written atomically, so a crashed job never leaves half a PNG.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_bytes, read_npz
from .summary import read_summary

TRUTH_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
REFERENCE_STYLE = {"color": "tab:green", "linestyle": ":", "linewidth": 1.5}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, out) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(out, buffer.getvalue())


def _number(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def running_llc(loss: np.ndarray, burn_in: int, loss_star: float, nbeta: float) -> np.ndarray:
    """(chains, T - burn_in): each chain's LLC estimate using its draws so far."""
    kept = np.asarray(loss, np.float64)[:, burn_in:]
    steps = np.arange(1, kept.shape[1] + 1)
    return nbeta * (np.cumsum(kept, axis=1) / steps - loss_star)


def _legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, where it cannot cover data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0,
              **kwargs)


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
    figure = _figure(9.0, 2.9 * panels + 0.6 + 0.15 * len(summary.warnings))
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
    _legend_outside(ax)
    truth = "no exact λ" if summary.true_llc is None else f"exact {_number(summary.true_llc)}"
    ax.set_title(
        f"{summary.target} / {summary.sampler} ({summary.kind}, {summary.dtype}): "
        f"λ̂ = {_number(summary.llc_mean)} ± {_number(summary.llc_mcse, 2)} (MCSE), {truth}",
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
        _legend_outside(ax)

    if elbo is not None:
        ax = axes[2]
        elbo = np.atleast_2d(np.asarray(elbo, np.float64))
        every = summary.settings.get("eval_every", 1)
        for index, row in enumerate(elbo):
            ax.plot(np.arange(1, row.shape[0] + 1) * every, row, linewidth=0.8,
                    label=f"fit {index}")
        ax.set_ylabel(f"ELBO (mean of {every} steps)")
        ax.set_xlabel("optimisation step")
        _legend_outside(ax)
    if summary.warnings:
        figure.suptitle(_wrapped(["warnings:", *summary.warnings]), fontsize=7,
                        color="tab:orange", ha="left", x=0.01)
    _save(figure, out)


def _comparison_panel(ax, record: dict, arrays: dict) -> None:
    """Student at w* against its reference: the teacher on held-out inputs, or (a python
    target) the data it was fitted to; a confusion matrix for class labels."""
    reference, prediction = arrays.get("plot_reference"), arrays.get("plot_prediction")
    if reference is None or prediction is None:
        ax.text(0.5, 0.5, "no network outputs to compare\n(a quadratic target)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    python = record["config"]["model"]["kind"] == "python"
    where = "training data" if python else "held-out inputs"
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
    ax.set_xlabel("y (data)" if python else "teacher output")
    ax.set_ylabel("student output at w*")
    ax.set_title(f"{len(reference)} points of the {where}: RMSE {_number(rmse, 3)}",
                 fontsize=9)
    _legend_outside(ax)


def plot_target(target_dir, out) -> None:
    """What a target is: the student at w* against its teacher (or data), and the training
    curve that produced w*."""
    from .artifacts import read_json

    target_dir = Path(target_dir)
    record = read_json(target_dir / "target.json")
    arrays = read_npz(target_dir / "target.npz")
    figure = _figure(11.0, 4.0)
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
                      label=f"L_n(w*) = {_number(record['loss_star'])}")
        if np.all(history > 0):
            right.set_yscale("log")
        right.set_xlabel("training step")
        right.set_ylabel("L_n")
        _legend_outside(right)
    truth = record["true_llc"]
    figure.suptitle(f"target {record['name']} ({record['config']['model']['kind']}): n = "
                    f"{record['n']}, d = {record['d']}, "
                    f"{'no exact λ' if truth is None else f'exact λ = {_number(truth)}'}",
                    fontsize=10)
    _save(figure, out)


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
    figure = _figure(width * columns, 4.0 * rows + 0.6)
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
    _save(figure, out)


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
    figure = _figure(12.0, 3.8 * max(1, len(names)) + 0.4)
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
        _legend_outside(left)
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
        _legend_outside(right)
        for ax in (left, right):
            if labels is None:
                ax.set_xlabel("training step")
            else:
                ax.set_xticks(range(len(labels)), labels)
                ax.set_xlabel("checkpoint")
    _save(figure, out)


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
    figure = _figure(12.0, 4.2 * max(1, len(axes_keys)) + 0.4)
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
                f"{column.split('.', 1)[-1]}={_number(value)}"
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
        _legend_outside(ax)
    _save(figure, out)
