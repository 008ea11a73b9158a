"""Calibration sweeps: one sampler entry expanded into a grid, and the flat region of its λ̂.

A sampler entry may carry a `sweep` section mapping setting names to lists of values:

    samplers:
      sgld:
        kind: sgld
        sweep: {step_size_scale: [0.05, 0.1, 0.2, 0.5, 1.0], gamma: [1.0, 10.0]}

It is a grid (`lambda_hat.grid`) of positive numbers: one sampler per grid point, named
`sgld.step_size_scale-0.05` (`.gamma-1.0` appended for a second axis), each with the concrete
values and `sweep_of: sgld`. Step size (ε, or τ for `auto`), γ and β (so nβ) are the
usual axes (docs/theory.md §8.1: sweep ε × nβ and pick a flat region). Pure and JAX-free: the
configuration layer calls it before checking an experiment.

`flat_region` takes the run summaries of one sweep and marks, along the step-size axis (for
each value of the other axes), the longest run of consecutive grid points whose estimates
agree: too small a step has not mixed (λ̂ drifts up with ε), too large a step is biased
(λ̂ keeps rising, or NaN); a plateau between them is the calibrated range.
"""

from __future__ import annotations

import math

STEP_KEYS = ("step_size", "step_size_scale")
"""Axes along which a plateau is sought, in order of preference."""
POSTERIOR_KEYS = ("beta", "gamma")


def expand_sweeps(raw: dict, source: str = "<experiment>") -> dict:
    """Sweeps are grids: `lambda_hat.grid.expand_grids`."""
    from .grid import expand_grids

    return expand_grids(raw, source)


def _axis(settings_list: list[dict]) -> str | None:
    for key in STEP_KEYS:
        if len({s.get(key) for s in settings_list}) > 1:
            return key
    return None


def _agree(a, b, rel_tol: float, n_sigma: float) -> bool:
    x, y = a.llc_mean, b.llc_mean
    if x is None or y is None:
        return False
    errors = [e for e in (a.llc_mcse, b.llc_mcse) if e is not None]
    noise = n_sigma * math.sqrt(sum(e * e for e in errors)) if errors else 0.0
    return abs(x - y) <= max(rel_tol * max(abs(x), abs(y)), noise)


def flat_region(summaries: list, rel_tol: float = 0.1, n_sigma: float = 2.0) -> dict:
    """Mark the flat region of one sweep's λ̂ along its step-size axis.

    `summaries` are run summaries (`lambda_hat.summary.RunSummary`) of samplers with the same
    `settings.sweep_of`. Along the step axis, points are kept only if the run produced an
    estimate; the flat region is the longest run of consecutive kept points in which every
    neighbouring pair agrees within `rel_tol` (relative) or `n_sigma` combined MCSEs, and
    every point lies within `rel_tol` of the region's median. Ties go to the smaller steps
    (less discretisation bias). Separate regions are found for each value of the other swept
    settings (γ, β).

    Returns {"axis", "groups": [{"fixed": {...}, "flat": [sampler names], "llc": mean λ̂ of
    the region, "step": the largest step in it (fastest mixing that is still flat)}],
    "points": {sampler name: bool}} — `points` marks each summary in or out of a region.
    """
    if not summaries:
        return {"axis": None, "groups": [], "points": {}}
    settings = [s.settings for s in summaries]
    axis = _axis(settings)
    swept = [key for key in (*STEP_KEYS, *POSTERIOR_KEYS)
             if key != axis and len({repr(s.get(key)) for s in settings}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for summary in summaries:
        fixed = tuple((key, summary.settings.get(key)) for key in swept)
        groups.setdefault(fixed, []).append(summary)
    result = {"axis": axis, "groups": [], "points": {s.sampler: False for s in summaries}}
    for fixed, members in groups.items():
        if axis is not None:
            members = sorted(members, key=lambda s: s.settings[axis])
        best: list[dict] = []
        start = 0
        while start < len(members):
            end = start
            while members[end].llc_mean is not None and end + 1 < len(members) \
                    and _agree(members[end], members[end + 1], rel_tol, n_sigma):
                end += 1
            run = members[start:end + 1] if members[start].llc_mean is not None else []
            run = _trim_to_median(run, rel_tol)
            if len(run) > len(best):
                best = run
            start = end + 1
        for summary in best:
            result["points"][summary.sampler] = True
        result["groups"].append({
            "fixed": dict(fixed),
            "flat": [s.sampler for s in best],
            "llc": (sum(s.llc_mean for s in best) / len(best)) if best else None,
            "step": best[-1].settings.get(axis) if best and axis else None,
        })
    return result


def _trim_to_median(run: list, rel_tol: float) -> list:
    """Drop points at either end of a drifting run until all are near its median."""
    while len(run) > 1:
        values = sorted(s.llc_mean for s in run)
        median = values[len(values) // 2]
        if all(abs(s.llc_mean - median) <= rel_tol * abs(median) for s in run):
            break
        first, last = run[0].llc_mean, run[-1].llc_mean
        run = run[1:] if abs(first - median) > abs(last - median) else run[:-1]
    return run
