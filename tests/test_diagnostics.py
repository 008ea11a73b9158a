"""The convergence diagnostics and the MCSE on synthetic traces whose answer is known:
split rank-normalized R-hat and split ESS (against ArviZ), the between-chain floor of the
MCSE, and the MCSE's coverage of a known mean.

Every Markov-chain trace here is (4, 400), so the diagnostics program compiles once."""

import jax
import numpy as np
import pytest
from scipy.signal import lfilter

from lambda_hat.diagnostics import R_HAT_MAX, chain_diagnostics, run_warnings, split_chains
from lambda_hat.estimator import Estimate, estimate_llc

CHAINS, DRAWS = 4, 400


def ar1(rng, phi, chains=CHAINS, draws=DRAWS, mean=0.0):
    """Stationary AR(1) chains with unit innovations (started from the stationary law)."""
    noise = rng.standard_normal((chains, draws))
    noise[:, 0] /= np.sqrt(1 - phi ** 2)
    return mean + lfilter([1.0], [1.0, -phi], noise, axis=1)


def gelman_rubin(x):
    """The original potential scale reduction of whole (unsplit, unranked) chains."""
    draws = x.shape[1]
    between = draws * x.mean(axis=1).var(ddof=1)
    within = x.var(axis=1, ddof=1).mean()
    return np.sqrt((between / within + draws - 1) / draws)


def test_split_chains_halves_each_chain():
    x = np.arange(2 * 7).reshape(2, 7)
    np.testing.assert_array_equal(split_chains(x), [[0, 1, 2], [7, 8, 9], [3, 4, 5],
                                                    [10, 11, 12]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_r_hat_and_ess_equal_arviz(seed):
    az = pytest.importorskip("arviz")
    x = ar1(np.random.default_rng(seed), 0.5)
    ours = chain_diagnostics(x)
    # The program computes in the process's precision: float32 jobs (SGLD) get float32
    # diagnostics, off by ~1e-5 (measured 4e-5 on R-hat at seed 1).
    tolerance = 1e-6 if jax.config.jax_enable_x64 else 2e-4
    # Rank-normalized split R-hat (max of bulk and folded), ArviZ's default.
    assert ours["r_hat"] == pytest.approx(float(az.rhat(x)), abs=tolerance)
    # The MCSE's ESS is ArviZ's "mean" ESS: split chains, no rank normalization. (Geyer's
    # truncation can differ by a lag on a strongly correlated trace; not at these seeds.)
    assert ours["ess"] == pytest.approx(float(az.ess(x, method="mean")), rel=tolerance)
    assert ours["ess_bulk"] == pytest.approx(float(az.ess(x, method="bulk")), rel=tolerance)


def test_disagreeing_chains_set_the_mcse():
    """Two pairs of iid chains 0.3 σ apart: each chain is stationary, the pairs disagree.
    R-hat flags it and the MCSE is the spread of the chains' estimates, three times the
    ESS-based figure."""
    rng = np.random.default_rng(0)
    loss = rng.standard_normal((CHAINS, DRAWS))
    loss[2:] += 0.3
    nbeta = 2.0
    estimate = estimate_llc(loss, 0, 0.0, nbeta)
    assert estimate.r_hat > R_HAT_MAX
    per_chain = nbeta * loss.mean(axis=1)
    between = np.std(per_chain, ddof=1) / np.sqrt(CHAINS)
    assert estimate.llc_mcse_between == pytest.approx(between, rel=1e-12)
    assert estimate.llc_mcse == estimate.llc_mcse_between
    assert estimate.llc_mcse > 2 * estimate.llc_mcse_ess
    ess_based = nbeta * loss.std(ddof=1) / np.sqrt(estimate.ess)
    assert estimate.llc_mcse_ess == pytest.approx(ess_based, rel=1e-12)
    text = " ".join(run_warnings(estimate, True, 0.0))
    assert f"> {R_HAT_MAX}" in text and "more steps" in text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shared_trend_is_caught_only_by_splitting(seed):
    """Every chain drifts the same way: whole chains agree (Gelman-Rubin R-hat ≈ 1, plain
    ESS large), their halves do not (split R-hat > 1.01, split ESS far smaller)."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(seed)
    loss = rng.standard_normal((CHAINS, DRAWS)) + 0.5 * np.linspace(-1, 1, DRAWS)
    ours = chain_diagnostics(loss)
    assert gelman_rubin(loss) < 1.005
    assert ours["r_hat"] > R_HAT_MAX
    assert gelman_rubin(split_chains(loss)) > R_HAT_MAX
    assert ours["ess"] < 0.5 * float(az.ess(loss, method="identity"))  # unsplit ESS
    estimate = estimate_llc(loss, 0, 0.0, 1.0)
    assert estimate.ess == ours["ess"]
    # The chains agree, so the ESS-based (split) figure is the MCSE.
    assert estimate.llc_mcse == estimate.llc_mcse_ess > estimate.llc_mcse_between


def test_mcse_covers_the_mean_of_ar1_chains():
    """2·MCSE covers the known mean of AR(1) chains (φ = 0.7, ESS ≈ 280 of 1600 draws) about
    95% of the time: not much less (an MCSE too small), not much more (one too large; the
    between-chain floor adds a little)."""
    mean, loss_star, nbeta = 3.0, 1.0, 0.5
    covered = []
    for seed in range(200):
        loss = ar1(np.random.default_rng(seed), 0.7, mean=mean)
        estimate = estimate_llc(loss, 0, loss_star, nbeta)
        covered.append(abs(estimate.llc_mean - nbeta * (mean - loss_star))
                       < 2 * estimate.llc_mcse)
    assert 0.9 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_iid_fits_that_disagree_set_the_mcse():
    """VI: each chain an independent fit, its draws iid. Fits with different E_q[L_n] make
    the fit-to-fit spread the MCSE, not the pooled std/√draws."""
    rng = np.random.default_rng(3)
    loss = rng.standard_normal((CHAINS, 1000)) + np.array([[0.0], [0.2], [0.4], [0.6]])
    estimate = estimate_llc(loss, 0, 0.0, 1.0, markov_chain=False)
    assert estimate.ess == loss.size and estimate.r_hat is None
    assert estimate.llc_mcse_ess == pytest.approx(loss.std(ddof=1) / np.sqrt(loss.size))
    assert estimate.llc_mcse_between == pytest.approx(
        np.std(loss.mean(axis=1), ddof=1) / np.sqrt(CHAINS))
    assert estimate.llc_mcse == estimate.llc_mcse_between > 3 * estimate.llc_mcse_ess
    # Fits that agree: the iid figure stands (here the between one is the smaller).
    same = estimate_llc(rng.standard_normal((CHAINS, 1000)), 0, 0.0, 1.0, markov_chain=False)
    assert same.llc_mcse == max(same.llc_mcse_ess, same.llc_mcse_between)


def test_one_chain_has_no_between_chain_figure():
    estimate = estimate_llc(np.random.default_rng(0).standard_normal((1, 50)), 0, 0.0, 1.0,
                            markov_chain=False)
    assert estimate.llc_mcse_between is None
    assert estimate.llc_mcse == estimate.llc_mcse_ess


def test_r_hat_warning_threshold():
    base = dict(chains_total=4, chains_failed=0, draws_per_chain=100, burn_in=0,
                llc_per_chain=[], ess=1000.0)
    assert run_warnings(Estimate(**base, r_hat=1.009), True, 0.0) == []
    (warning,) = run_warnings(Estimate(**base, r_hat=1.02), True, 0.0)
    assert warning == "R-hat 1.0200 > 1.01: chains disagree; sample longer (more steps)"
