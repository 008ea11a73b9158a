"""Minibatches: with replacement (the default) and as distinct points (`replacement: false`)."""

import jax
import numpy as np
import pytest

from lambda_hat.models import Network
from lambda_hat.posterior import Posterior
from lambda_hat.targets.common import Regression

N = 64


@pytest.fixture(scope="module")
def problem():
    network = Network((3, 2, 2))
    keys = jax.random.split(jax.random.key(0), 3)
    data = {"X": jax.random.normal(keys[0], (N, 3)), "Y": jax.random.normal(keys[1], (N, 2)),
            "w_star": network.init(keys[2], jax.numpy.float32)}
    posterior = Posterior(likelihood=Regression(network), n=N, beta=1.0, gamma=1.0,
                          dtype="float32")
    return posterior, data


def test_a_full_batch_of_distinct_points_is_the_whole_data_set(problem):
    posterior, data = problem
    w = data["w_star"] + 0.3
    full = float(posterior.loss(w, data))
    for seed in range(5):
        key = jax.random.key(seed)
        distinct = float(posterior.minibatch_loss(w, data, key, N, replacement=False))
        assert distinct == pytest.approx(full, rel=1e-5)
        # With replacement, n draws from n points almost surely repeat some and miss others
        # (P(a permutation) = n!/n^n ≈ 1e-27 here), so this comparison can tell them apart.
        repeated = float(posterior.minibatch_loss(w, data, key, N, replacement=True))
        assert repeated != pytest.approx(full, rel=1e-5)


def test_both_kinds_of_minibatch_are_unbiased(problem):
    posterior, data = problem
    w = data["w_star"] + 0.3
    full = float(posterior.loss(w, data))
    keys = jax.random.split(jax.random.key(1), 4000)
    for replacement in (True, False):
        losses = np.asarray(jax.vmap(lambda key: posterior.minibatch_loss(
            w, data, key, 8, replacement))(keys))
        # 4000 batches: the mean is within 4 standard errors of L_n.
        assert abs(losses.mean() - full) < 4 * losses.std() / np.sqrt(len(losses))


@pytest.mark.parametrize("error", ["squared", "student_t"])
def test_observed_losses_are_each_points_share_of_the_loss(problem, error):
    """A sampler's `observe:` records ℓᵢ(w) per point: their mean over the data is L_n, and
    each is the loss of that point alone."""
    from lambda_hat.targets.common import StudentT

    posterior, data = problem
    likelihood = Regression(posterior.likelihood.network,
                            StudentT(3.0, 0.5) if error == "student_t" else Regression.error)
    w = data["w_star"] + 0.3
    points = likelihood.prepare_points(data, jax.numpy.float32)
    losses = np.asarray(likelihood.observed_losses(w, points, data))
    assert losses.shape == (N,)
    assert losses.mean() == pytest.approx(float(likelihood.loss(w, data)), rel=1e-5)
    alone = {"X": data["X"][5:6], "Y": data["Y"][5:6]}
    assert losses[5] == pytest.approx(float(likelihood.loss(w, alone)), rel=1e-5)
    assert np.ptp(losses) > 0
