"""One run's summary: a frozen, versioned record, written and read here only.

`summary.json` is this record as JSON. Everything downstream (the table, the plots, the
sweep analysis) reads it through `read_summary`, which refuses a file that is not a complete
summary of this version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from .artifacts import read_json, to_json, write_json
from .errors import ArtifactError
from .estimator import Estimate

VERSION = 2
Status = Literal["ok", "warning", "failed"]
LossTrace = Literal["full_data", "minibatch_mean", "iid_draws"]
"""What a trace point of `loss` is: L_n at a draw, the mean of the minibatch losses of
`trace_every` steps (unbiased for L_n), or L_n at an independent draw from a fitted q."""


@dataclass(frozen=True, kw_only=True)
class RunSummary(Estimate):
    """Every field is set by the runner: what ran, on what, how well, at what cost."""

    experiment: str
    target: str
    sampler: str
    kind: str
    settings: dict
    seed: int
    markov_chain: bool
    loss_trace: LossTrace
    trace_every: int
    """Steps per trace point (minibatch samplers average their losses over them)."""
    dtype: str
    n: int
    d: int
    beta: float
    gamma: float
    nbeta: float
    loss_star: float
    true_llc: float | None
    multiplicity: int | None
    target_hash: str
    rel_error: float | None
    fraction_below_loss_star: float | None
    grad_evals: float
    """Full-gradient equivalents over all chains, warmup and setup included."""
    compile_seconds: float
    sample_seconds: float
    wall_seconds: float
    ess_per_second: float | None
    ess_per_grad_eval: float | None
    stats: dict
    """The sampler module's own statistics (its `summarize`)."""
    warnings: tuple[str, ...]
    status: Status
    versions: dict
    checkpoint: str | None = None
    """The point along training the target is (`<target>@<checkpoint>`), else None."""
    checkpoint_of: str | None = None
    """The declared target a checkpoint belongs to."""
    training_step: int | None = None
    """Training steps that made w* (None: w* was given)."""
    grid_of: str | None = None
    """The declared target a grid point of targets came from (samplers: `settings.sweep_of`)."""
    grid_point: dict | None = None
    """The values grids set for this run: `target.<key>` and `sampler.<key>` (`replicate`
    included); None outside grids. `llc.parquet` has a column per key."""
    restricted_to: tuple[str, ...] | None = None
    """The parameter groups sampled (the restricted LLC; `settings.restrict` chose them);
    None: every parameter. `d` counts the sampled parameters."""
    stopping: dict | None = None
    """How the run ended (`lambda_hat.samplers.stopping.Stopping`): `stopped_by` criterion,
    budget or fixed, the trace points run of the budget, the `until` rule and its check."""
    optimum: dict | None = None
    """L_n's gradient and curvature at w* for this posterior (`lambda_hat.optimum.Optimum`):
    the localizer's share of λ̂ and the drop a non-stationary w* causes."""
    remediation: tuple[dict, ...] = ()
    """Each run of a sampler that ran again to fix what it diagnosed (its `remedy`), in
    order: the settings it changed, its λ̂ and MCSE, its warnings, its cost; the last is the
    one whose draws the estimate comes from (`kept`). Empty: it ran once. `settings` stay the
    entry's; the cost fields count every run."""
    bias_correction: str | None = None
    """How λ̂ was corrected for the step's bias (`richardson`: `estimator.extrapolate`);
    None: it is the chains' own. Then the fields below hold the uncorrected λ̂ and the
    bias removed."""
    llc_uncorrected: float | None = None
    llc_uncorrected_mcse: float | None = None
    step_bias: float | None = None
    step_bias_mcse: float | None = None
    version: int = VERSION

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["warnings"] = list(self.warnings)
        return record

    def to_json(self) -> str:
        return to_json(self.to_dict())


def write_summary(path, summary: RunSummary) -> None:
    write_json(path, summary.to_dict())


FIELDS = {item.name for item in dataclasses.fields(RunSummary)}
REQUIRED = {item.name for item in dataclasses.fields(RunSummary)
            if item.default is dataclasses.MISSING}
"""Fields added since version 2 have defaults, so summaries written before them still read."""


def summary_from_dict(record: dict, where: str = "<summary>") -> RunSummary:
    if record.get("version") != VERSION:
        raise ArtifactError(f"{where}: not a run summary of version {VERSION} (found "
                            f"{record.get('version')!r}); rerun the sample job")
    missing = sorted(REQUIRED - set(record))
    if missing:
        raise ArtifactError(f"{where}: not a run summary (missing {', '.join(missing)})")
    restricted = record.get("restricted_to")
    return RunSummary(**{**{k: record[k] for k in FIELDS & set(record)},
                         "warnings": tuple(record["warnings"]),
                         "remediation": tuple(record.get("remediation", ())),
                         "restricted_to": None if restricted is None else tuple(restricted)})


def read_summary(path) -> RunSummary:
    return summary_from_dict(read_json(path), str(path))
