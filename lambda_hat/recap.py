"""The end-of-run recap the workflow prints: λ̂ per run, then every warning with its log.

Snakemake reports only that jobs finished; a run whose number should not be trusted says so
in its summary and its log. This puts both on the terminal. JAX-free and fast: it reads the
summaries that exist and names the runs that have none, with the error of a target that
failed to build (Snakemake names only the failed job's log, never its error).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ArtifactError
from .summary import read_summary


def _number(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


BUILD_ERROR = "lambda-hat build: error: "
"""How the CLI starts each line of the error that stopped a build."""


def build_error(log_path: str) -> str | None:
    """The last error line of a build's log; None when the build did not fail with one.
    The log is rewritten by each build, so an error there is the current target's."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.removeprefix(BUILD_ERROR) for line in lines if line.startswith(BUILD_ERROR)]
    return errors[-1] if errors else None


def recap(runs: list[tuple[str, str, str, str, str]]) -> str:
    """Text for (target, sampler, summary path, sample log, build log) of every run, in
    order. A run whose target failed to build has no result, whatever summary an earlier
    build left: its line gives the build's error and log."""
    rows, warnings, missing = [], [], []
    build_errors: dict[str, str | None] = {}
    for target, sampler, summary_path, log_path, build_log in runs:
        if build_log not in build_errors:
            build_errors[build_log] = build_error(build_log)
        if build_errors[build_log] is not None:
            missing.append(f"  {target}/{sampler}: the target did not build: "
                           f"{build_errors[build_log]} (log: {build_log})")
            continue
        if not Path(summary_path).is_file():
            missing.append(f"  {target}/{sampler}: no result (log: {log_path})")
            continue
        try:
            summary = read_summary(summary_path)
        except ArtifactError as exc:
            missing.append(f"  {target}/{sampler}: {exc} (log: {log_path})")
            continue
        estimate = _number(summary.llc_mean)
        if summary.llc_mcse is not None:
            estimate += f" ± {_number(summary.llc_mcse, 2)}"
        rows.append((target, sampler, estimate, _number(summary.true_llc), summary.status))
        warnings += [f"  {target}/{sampler}: {text} (log: {log_path})"
                     for text in summary.warnings]
    header = ("target", "sampler", "λ̂ ± MCSE", "exact λ", "status")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"λ̂ of {len(rows)} of {len(runs)} runs:"]
    lines += ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
              .rstrip() for row in [header, *rows]]
    if warnings:
        lines += [_count(len(warnings), "warning") + ":", *warnings]
    if missing:
        lines += [_count(len(missing), "run") + " without a result:", *missing]
    return "\n".join(lines)
