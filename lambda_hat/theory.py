"""Exact learning coefficients used as ground truths (docs/theory.md §3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class LearningCoefficient:
    llc: float
    multiplicity: int


def dln_learning_coefficient(widths: list[int], rank: int) -> LearningCoefficient:
    """Aoyagi's λ and multiplicity for a deep linear network whose teacher product has `rank`.

    widths = [H_0 (input), ..., H_L (output)]; a single layer is the regular case λ = H_0 H_1 / 2.
    """
    widths = [int(h) for h in widths]
    if len(widths) < 2:
        raise ValueError("a deep linear network needs at least an input and an output width")
    if not 0 <= rank <= min(widths):
        raise ValueError(f"rank {rank} must lie in [0, min(widths) = {min(widths)}]")
    deltas = sorted(h - rank for h in widths)
    for size in range(2, len(deltas) + 1):
        chosen, rest = deltas[:size], deltas[size:]
        ell = size - 1
        total = sum(chosen)
        smallest_rest = min(rest) if rest else math.inf
        if (
            max(chosen) < smallest_rest
            and total >= ell * max(chosen)
            and total < ell * smallest_rest
        ):
            break
    else:  # pragma: no cover - Aoyagi's theorem guarantees a prefix exists
        raise AssertionError(f"no admissible prefix for widths {widths}, rank {rank}")
    m_ceil = -(-total // ell)
    a = total - (m_ceil - 1) * ell
    pair_sum = sum(x * y for x, y in combinations(chosen, 2))
    llc = (
        (rank * (widths[0] + widths[-1]) - rank**2) / 2
        + a * (ell - a) / (4 * ell)
        - ell * (ell - 1) / 4 * (total / ell) ** 2
        + pair_sum / 2
    )
    return LearningCoefficient(llc=llc, multiplicity=a * (ell - a) + 1)


def reduced_rank_regression_llc(m: int, h: int, n: int, r: int) -> float:
    """Aoyagi & Watanabe (2005): input M, hidden H, output N, true rank r."""
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2
    if m + n < h + r:
        return m * n / 2
    value = (2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2) / 8
    if (m + h + n + r) % 2 == 1:
        value += 1 / 8
    return value
