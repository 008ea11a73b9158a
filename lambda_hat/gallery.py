"""A gallery page of an experiment, `results/<experiment>/gallery/` in the workflow: each
run's latest figure and a markdown table of λ̂ and R-hat per sampler, a folder to publish
(e.g. copy into the documentation).

Opt-in (the workflow's `gallery` rule is not part of `all`) because it duplicates every
figure. JAX-free: it reads summaries and copies PNGs.
"""

from __future__ import annotations

from pathlib import Path

from .artifacts import atomic_write_bytes
from .summary import RunSummary, read_summary

PAGE = "index.md"


def _number(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _row(summary: RunSummary, figure: str) -> str:
    estimate = _number(summary.llc_mean)
    if summary.llc_mcse is not None:
        estimate += f" ± {_number(summary.llc_mcse, 2)}"
    cells = [summary.sampler, summary.kind, estimate, _number(summary.true_llc),
             _number(summary.r_hat, 3), _number(summary.ess, 3), summary.status,
             f"[figure]({figure})"]
    return "| " + " | ".join(cells) + " |"


def write_gallery(summary_paths, plots_dir, out_dir) -> Path:
    """Copy every run's figure (and each target's and the summary figure, where they exist)
    from `plots_dir` into `out_dir` and write its page last, so a page names only figures
    that are there. Returns the page's path."""
    plots_dir, out_dir = Path(plots_dir), Path(out_dir)
    summaries = [read_summary(path) for path in summary_paths]
    by_target: dict[str, list[RunSummary]] = {}
    for summary in summaries:
        by_target.setdefault(summary.target, []).append(summary)

    def copy(relative: str) -> bool:
        source = plots_dir / relative
        if not source.is_file():
            return False
        atomic_write_bytes(out_dir / relative, source.read_bytes())
        return True

    experiment = summaries[0].experiment if summaries else out_dir.name
    version = summaries[0].versions.get("lambda-hat", "?") if summaries else "?"
    lines = [f"# Gallery: experiment `{experiment}`", "",
             f"{len(summaries)} runs, lambda-hat {version}. "
             "λ̂ ± MCSE per sampler; R-hat and ESS of the L_n trace; each run's diagnostic "
             "figure.", ""]
    if copy("summary.png"):
        lines += ["![every estimate against the truth](summary.png)", ""]
    for target, runs in by_target.items():
        lines += [f"## Target `{target}`", "", f"n = {runs[0].n}, d = {runs[0].d}.", ""]
        if copy(f"targets/{target}.png"):
            lines += [f"![target {target}](targets/{target}.png)", ""]
        lines += ["| sampler | kind | λ̂ ± MCSE | exact λ | R-hat | ESS | status | figure |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for summary in runs:
            figure = f"runs/{target}/{summary.sampler}.png"
            lines.append(_row(summary, figure if copy(figure) else "(no figure)"))
        lines.append("")
    page = out_dir / PAGE
    atomic_write_bytes(page, "\n".join(lines).encode())
    return page
