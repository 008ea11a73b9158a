"""Collect run summaries into one table: one row per (target, sampler) run.

The file format follows the output's suffix: `.parquet` (every column, typed; the table the
workflow and users read), `.csv` (the same columns; `warnings` as a JSON array), `.html` (a
compact human view for the Snakemake report). `warnings` is a list of strings per run: a
warning's own text may contain any separator. `true_llc` is null when no exact value is
known; `ref_llc` is the estimate of an HMC run (kind `hmc`) on the same target, when the
experiment has one, else null.
`wnv` (work-normalized variance) is MCSE² × gradient evaluations: an estimate's variance
times what it cost, so samplers and run lengths compare on one scale.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

from .artifacts import atomic_write_bytes
from .errors import ArtifactError
from .samplers import REGISTRY as SAMPLERS
from .summary import RunSummary, read_summary

COLUMNS = [
    "experiment", "target", "sampler", "kind", "dtype", "n", "d", "beta", "gamma", "nbeta",
    "llc_mean", "llc_std", "llc_mcse", "llc_mcse_ess", "llc_mcse_between",
    "ess", "ess_bulk", "ess_tail", "r_hat",
    "true_llc", "rel_error", "multiplicity", "ref_sampler", "ref_llc", "ref_rel_error",
    "grad_evals", "compile_seconds", "sample_seconds", "wall_seconds",
    "ess_per_second", "ess_per_grad_eval", "wnv", "chains_total", "chains_failed", "draws_per_chain",
    "seed", "loss_star", "markov_chain", "status", "warnings", "sweep_of", "flat_region",
    "checkpoint", "checkpoint_of", "training_step", "restricted_to", "grid_of",
    "localizer_suppression", "stationarity_drop", "grad_norm_at_w_star", "settings",
    "remedied_by", "bias_correction", "llc_uncorrected", "llc_uncorrected_mcse", "step_bias",
    "step_bias_mcse",
]
"""Then one column per grid key of the runs (`target.data.n`, `sampler.step_size`, ...)."""
TEXT_COLUMNS = {"experiment", "target", "sampler", "kind", "dtype", "ref_sampler", "status",
                "sweep_of", "checkpoint", "checkpoint_of", "restricted_to", "grid_of", "settings",
                "remedied_by", "bias_correction"}
LIST_COLUMNS = {"warnings"}
"""Lists of strings: Parquet's list<string>, kept as Python lists in the frame."""
BOOL_COLUMNS = {"flat_region", "markov_chain"}
INT_COLUMNS = {"n", "d", "multiplicity", "chains_total", "chains_failed", "draws_per_chain",
               "seed", "training_step"}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row(summary: RunSummary) -> dict:
    row = {column: getattr(summary, column, None) for column in COLUMNS}
    row["warnings"] = list(summary.warnings)
    row["settings"] = json.dumps(summary.settings, sort_keys=True)
    row["sweep_of"] = summary.settings.get("sweep_of")
    if summary.remediation:
        row["remedied_by"] = json.dumps(summary.remediation[-1]["settings"], sort_keys=True)
    optimum = summary.optimum or {}
    row["localizer_suppression"] = optimum.get("localizer_suppression")
    row["stationarity_drop"] = optimum.get("stationarity_drop")
    row["grad_norm_at_w_star"] = optimum.get("grad_norm")
    if summary.restricted_to is not None:
        row["restricted_to"] = ", ".join(summary.restricted_to)
    for key, value in (summary.grid_point or {}).items():
        row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    if summary.llc_mcse is not None:
        # work-normalized variance: the estimate's variance times its cost, in full-gradient
        # equivalents (lower is better; comparable across samplers and run lengths)
        row["wnv"] = summary.llc_mcse ** 2 * summary.grad_evals
    return row


def _reference(row: dict, rows: list[dict]) -> dict | None:
    """The reference run on the same target to compare against (a kind that
    `CAN_BE_REFERENCE`: HMC): same beta and gamma preferred, then the smallest MCSE; None
    without a finite reference estimate."""
    candidates = [other for other in rows
                  if other["target"] == row["target"]
                  and SAMPLERS[other["kind"]].CAN_BE_REFERENCE and _finite(other["llc_mean"])]
    if not candidates:
        return None

    def rank(other):
        same_posterior = other["beta"] == row["beta"] and other["gamma"] == row["gamma"]
        mcse = other["llc_mcse"] if _finite(other["llc_mcse"]) else math.inf
        return (not same_posterior, mcse)

    return min(candidates, key=rank)


def _mark_flat_regions(rows: list[dict], summaries: list[RunSummary]) -> None:
    """`flat_region` per calibration-sweep row (null outside sweeps): per target and sweep."""
    from .sweep import flat_region

    sweeps: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        if row["sweep_of"] is not None:
            sweeps.setdefault((row["target"], row["sweep_of"]), []).append(index)
    for indices in sweeps.values():
        points = flat_region([summaries[i] for i in indices])["points"]
        for i in indices:
            rows[i]["flat_region"] = points[rows[i]["sampler"]]


def collect(summary_paths) -> list[dict]:
    """Rows in the order given (the workflow passes targets × samplers in config order)."""
    summaries = [read_summary(path) for path in summary_paths]
    rows = [_row(summary) for summary in summaries]
    _mark_flat_regions(rows, summaries)
    for row in rows:
        reference = _reference(row, rows)
        if reference is not None:
            row["ref_sampler"] = reference["sampler"]
            row["ref_llc"] = reference["llc_mean"]
            if _finite(row["llc_mean"]) and reference["llc_mean"]:
                row["ref_rel_error"] = (row["llc_mean"] - reference["llc_mean"]) \
                    / reference["llc_mean"]
    return rows


def grid_columns(rows: list[dict]) -> list[str]:
    """The grid keys of these rows, targets' first, each in the order first seen."""
    keys = dict.fromkeys(key for row in rows for key in row if key not in COLUMNS)
    return sorted(keys, key=lambda key: not key.startswith("target."))


def _numeric(values) -> bool:
    return all(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
               for value in values)


def to_frame(rows: list[dict]):
    """A typed DataFrame: unknown numbers are nulls, never the text 'None'."""
    import pandas as pd

    grid = grid_columns(rows)
    frame = pd.DataFrame(rows, columns=COLUMNS + grid)
    for column in grid:
        values = [row.get(column) for row in rows]
        frame[column] = (pd.to_numeric(frame[column]).astype("Float64") if _numeric(values)
                         else frame[column].astype("string"))
    for column in COLUMNS:
        if column in LIST_COLUMNS:
            continue
        if column in TEXT_COLUMNS:
            frame[column] = frame[column].astype("string")
        elif column in BOOL_COLUMNS:
            frame[column] = frame[column].astype("boolean")
        elif column in INT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        else:
            frame[column] = pd.to_numeric(frame[column]).astype("Float64")
    return frame


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _count(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


SORT_AND_FILTER = """
const body = document.querySelector("tbody"), rows = [...body.rows];
const shown = document.getElementById("shown");
function count() {
  shown.textContent = rows.filter(r => r.style.display !== "none").length + " of " + rows.length;
}
document.getElementById("filter").addEventListener("input", event => {
  const words = event.target.value.toLowerCase().split(/\\s+/).filter(Boolean);
  for (const row of rows) {
    const text = row.textContent.toLowerCase();
    row.style.display = words.every(word => text.includes(word)) ? "" : "none";
  }
  count();
});
document.querySelectorAll("th").forEach((header, column) => header.addEventListener("click", () => {
  const up = header.dataset.order !== "up";
  document.querySelectorAll("th").forEach(other => delete other.dataset.order);
  header.dataset.order = up ? "up" : "down";
  const key = row => {
    const cell = row.cells[column];
    return cell.dataset.value !== undefined ? parseFloat(cell.dataset.value) : cell.textContent;
  };
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const order = typeof x === "number" && typeof y === "number"
      ? (isNaN(x) - isNaN(y)) || x - y : String(x).localeCompare(String(y), undefined,
                                                                   {numeric: true});
    return up ? order : -order;
  });
  body.append(...rows);
}));
count();
"""
"""Click a header to sort by it (numbers by value, missing last), type to filter rows."""
TEXT = object()
"""A cell of a text column (no value to sort by)."""


def to_html(frame) -> str:
    """A compact view: λ̂ ± MCSE next to the truth and the HMC reference, one column per
    grid key; sortable by any column and filtered by what is typed above it, so a grid of
    hundreds of runs stays readable."""
    import pandas as pd

    def get(row, column):
        value = row[column]
        return None if pd.isna(value) else value

    grid = [column for column in frame.columns if column not in COLUMNS]
    headers = ["target", "sampler", *(key.split(".", 1)[1] for key in grid), "dtype",
               "λ̂ ± MCSE", "std (chains)", "true λ", "rel. error", "HMC ref", "ESS", "R-hat",
               "grad evals", "sampling s", "status", "warnings"]

    def cell(text, value: object = TEXT) -> str:
        """A cell; a numeric column's carries its value (NaN when missing) to sort by."""
        if value is TEXT or isinstance(value, str):
            data = ""
        else:
            data = f' data-value="{"NaN" if value is None else repr(float(value))}"'
        return f"<td{data}>{html.escape(str(text))}</td>"

    body = []
    for _, row in frame.iterrows():
        mean, mcse = get(row, "llc_mean"), get(row, "llc_mcse")
        estimate = _fmt(mean, 4) + ("" if mcse is None else f" ± {_fmt(mcse, 2)}")
        rel = get(row, "rel_error")
        sampler, kind = get(row, "sampler"), get(row, "kind")
        # iid draws (VI): the ESS is the number of draws, no convergence statement
        iid = get(row, "markov_chain") is False
        ess = get(row, "ess")
        cells = [
            cell(get(row, "target")), cell(sampler if sampler == kind else f"{sampler} ({kind})"),
            *(cell(_fmt(get(row, key), 4), get(row, key)) for key in grid),
            cell(get(row, "dtype")), cell(estimate, mean), cell(_fmt(get(row, "llc_std"), 3),
                                                                get(row, "llc_std")),
            cell(_fmt(get(row, "true_llc"), 4), get(row, "true_llc")),
            cell("—" if rel is None else f"{rel:+.1%}", rel),
            cell(_fmt(get(row, "ref_llc"), 4), get(row, "ref_llc")),
            cell("iid") if iid else cell(_count(ess), ess),
            cell(_fmt(get(row, "r_hat"), 4), get(row, "r_hat")),
            cell(_count(get(row, "grad_evals")), get(row, "grad_evals")),
            cell(_fmt(get(row, "sample_seconds"), 3), get(row, "sample_seconds")),
            cell(get(row, "status")),
            "<td>" + "<br>".join(html.escape(text) for text in row["warnings"]) + "</td>",
        ]
        css = ' class="warning"' if get(row, "status") != "ok" else ""
        body.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    experiment = html.escape(str(frame["experiment"].iloc[0])) if len(frame) else ""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>LLC estimates: {experiment}</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
        "td:nth-child(-n+2),td:last-child,th{text-align:left}"
        "th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}"
        "th[data-order=up]::after{content:' ▲'}th[data-order=down]::after{content:' ▼'}"
        "td:last-child{white-space:normal;min-width:24em}"
        "tr.warning td{background:#fff4e0}</style></head><body>"
        f"<h3>LLC estimates: experiment {experiment}</h3>"
        "<p><input id=\"filter\" placeholder=\"filter rows: words, all must match\" size=40> "
        "<span id=\"shown\"></span> runs shown; click a column to sort</p><table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
        + f"<script>{SORT_AND_FILTER}</script></body></html>\n"
    )


def _parquet_schema(frame):
    """The frame's inferred schema with list<string> for every list column: inferred, a
    column whose runs all have no warning would be list<null>."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for column in LIST_COLUMNS:
        schema = schema.set(schema.get_field_index(column),
                            pa.field(column, pa.list_(pa.string())))
    return schema


def aggregate_runs(summary_paths, out) -> None:
    """Write the table of the given run summaries to `out` (format from its suffix)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv", ".html"):
        raise ArtifactError(f"{out}: unknown table format {suffix!r}; "
                            "use .parquet, .csv or .html")
    frame = to_frame(collect(summary_paths))
    if suffix == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, schema=_parquet_schema(frame))
        data = buffer.getvalue()
    elif suffix == ".csv":
        as_json = {column: frame[column].map(json.dumps) for column in LIST_COLUMNS}
        data = frame.assign(**as_json).to_csv(index=False).encode()
    else:
        data = to_html(frame).encode()
    atomic_write_bytes(out, data)
