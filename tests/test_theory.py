"""Exact learning coefficients: Aoyagi's DLN formula against known cases."""

import pytest

from lambda_hat.theory import dln_learning_coefficient, reduced_rank_regression_llc


@pytest.mark.parametrize("m", range(1, 9))
def test_two_layer_dln_equals_reduced_rank_regression(m):
    """Two layers are reduced-rank regression: both formulas must agree on every case."""
    checked = 0
    for h in range(1, 9):
        for n in range(1, 9):
            for r in range(0, min(m, h, n) + 1):
                dln = dln_learning_coefficient([m, h, n], r).llc
                assert dln == pytest.approx(reduced_rank_regression_llc(m, h, n, r), abs=1e-12), (
                    m, h, n, r)
                checked += 1
    assert checked > 0


@pytest.mark.parametrize(
    "widths, rank, expected",
    [([5, 3, 5], 0, 13 / 2), ([10, 10, 10], 0, 75 / 2), ([10, 10, 10], 10, 50.0),
     ([1, 1, 1, 1], 0, 1 / 2)],
)
def test_spot_values_from_theory_md(widths, rank, expected):
    assert dln_learning_coefficient(widths, rank).llc == pytest.approx(expected)


@pytest.mark.parametrize("widths, rank", [([6, 4], 4), ([3, 7], 0), ([5, 5], 2)])
def test_single_layer_is_regular(widths, rank):
    """One linear layer is a regular model: λ = d/2 with multiplicity 1, whatever the rank."""
    coefficient = dln_learning_coefficient(widths, rank)
    assert coefficient.llc == widths[0] * widths[1] / 2
    assert coefficient.multiplicity == 1


def test_multiplicity_of_the_test_dln():
    """The 3-layer DLN used by the accuracy tests: λ = 14.5 with multiplicity 1."""
    coefficient = dln_learning_coefficient([6, 5, 4, 6], 3)
    assert (coefficient.llc, coefficient.multiplicity) == (14.5, 1)


def test_rank_above_min_width_is_rejected():
    with pytest.raises(ValueError, match="rank"):
        dln_learning_coefficient([4, 2, 4], 3)
