"""One run's summary: a frozen, versioned record, written and read here only.

`summary.json` is this record as JSON. Everything downstream (the table, the plots, the
sweep analysis) reads it through `read_summary`, which refuses a file that is not a complete
summary of this version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from .artifacts import read_json, to_json, write_json
from .errors import ArtifactError
from .estimator import Estimate

VERSION = 2
Status = Literal["ok", "warning", "failed"]
LossTrace = Literal["full_data", "minibatch_mean", "iid_draws"]
"""What a trace point of `loss` is: L_n at a draw, the mean of the minibatch losses of
`trace_every` steps (unbiased for L_n), or L_n at an independent draw from a fitted q."""


@dataclass(frozen=True)
class RunSummary(Estimate):
    experiment: str = ""
    target: str = ""
    sampler: str = ""
    kind: str = ""
    markov_chain: bool = True
    loss_trace: LossTrace = "full_data"
    trace_every: int = 1
    settings: dict = field(default_factory=dict)
    seed: int = 0
    dtype: str = ""
    n: int = 0
    d: int = 0
    beta: float = 0.0
    gamma: float = 0.0
    nbeta: float = 0.0
    loss_star: float = 0.0
    true_llc: float | None = None
    multiplicity: int | None = None
    target_hash: str = ""
    rel_error: float | None = None
    fraction_below_loss_star: float | None = None
    grad_evals: float = 0.0
    compile_seconds: float = 0.0
    sample_seconds: float = 0.0
    wall_seconds: float = 0.0
    ess_per_second: float | None = None
    ess_per_grad_eval: float | None = None
    stats: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    status: Status = "ok"
    versions: dict = field(default_factory=dict)
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


def summary_from_dict(record: dict, where: str = "<summary>") -> RunSummary:
    if record.get("version") != VERSION:
        raise ArtifactError(f"{where}: not a run summary of version {VERSION} (found "
                            f"{record.get('version')!r}); rerun the sample job")
    missing = sorted(FIELDS - set(record))
    if missing:
        raise ArtifactError(f"{where}: not a run summary (missing {', '.join(missing)})")
    return RunSummary(**{**{k: record[k] for k in FIELDS},
                         "warnings": tuple(record["warnings"])})


def read_summary(path) -> RunSummary:
    return summary_from_dict(read_json(path), str(path))
