"""One step of each minibatch kernel, in process, against the update computed by hand.

The potential is K(w) = Σ c_i (w_i − w*_i)² with no data, so a "minibatch" gradient is the
exact gradient 2 c ⊙ (w − w*) and every number below follows from the formulas in the
samplers' docstrings and the same Gaussian draws (keys split as the kernels document).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isolated import settings_for
from lambda_hat.samplers import REGISTRY, momentum
from potentials import PotentialPosterior

POSTERIOR = PotentialPosterior(coefficients=(1.0, 3.0, 0.5), powers=(1, 1, 1), nbeta=50.0,
                               gamma=2.0)
W0 = np.array([0.3, -0.2, 0.5])
KEY = jax.random.key(11)


def _setup(kind, **overrides):
    data = POSTERIOR.data(jnp.float32)
    bound = POSTERIOR.bind(data)
    settings = settings_for(kind, step_size=1.0e-3, steps=100, eval_every=10, **overrides)
    module = REGISTRY[kind]
    kernel = module.build(settings, bound, module.setup(settings, bound, jax.random.key(0)))
    state, params, _ = kernel.init(jax.random.key(1), data["w_star"])
    return settings, kernel, state, params


def _grad_log_p(w):
    """∇log p = −(nβ ∇K + γ (w − w*)), w* = 0."""
    c = np.asarray(POSTERIOR.coefficients)
    return -(POSTERIOR.nbeta * 2 * c * w + POSTERIOR.gamma * w)


def _noise(key, shape=(3,)):
    return np.asarray(jax.random.normal(key, shape, jnp.float32), np.float64)


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=2e-5, atol=1e-6)


def test_sgld_step():
    settings, kernel, state, params = _setup("sgld", bias_correction="none")
    state = state._replace(position=jnp.asarray(W0, jnp.float32))
    new, info = kernel.step(KEY, state, params)
    _, noise_key = jax.random.split(KEY)
    eps = settings.step_size
    expected = W0 + eps / 2 * _grad_log_p(W0) + np.sqrt(eps) * _noise(noise_key)
    _close(new.position, expected)
    _close(info.loss, np.sum(np.asarray(POSTERIOR.coefficients) * W0**2))


def test_rmsprop_sgld_first_step():
    """From zero moments: v̂ = g², so ε_t = ε/(|g| + a)."""
    settings, kernel, state, params = _setup("sgld_rmsprop", stabilizer=0.5, bias_correction="none")
    state = state._replace(position=jnp.asarray(W0, jnp.float32))
    new, _ = kernel.step(KEY, state, params)
    _, noise_key = jax.random.split(KEY)
    g = 2 * np.asarray(POSTERIOR.coefficients) * W0
    eps_t = settings.step_size / (np.abs(g) + 0.5)
    expected = W0 + eps_t / 2 * _grad_log_p(W0) + np.sqrt(eps_t) * _noise(noise_key)
    _close(new.position, expected)
    _close(new.preconditioner.v, (1 - settings.beta2) * g * g)


def test_adam_sgld_step_from_given_moments():
    settings, kernel, state, params = _setup("sgld_adam", stabilizer=0.1, bias_correction="none")
    m0, v0, count = np.array([0.2, -0.1, 0.4]), np.array([0.3, 0.2, 0.1]), 3
    state = state._replace(position=jnp.asarray(W0, jnp.float32), preconditioner=type(
        state.preconditioner)(type(state.preconditioner.inner)(
            jnp.asarray(v0, jnp.float32), jnp.asarray(count, jnp.int32)),
        jnp.asarray(m0, jnp.float32)))
    new, _ = kernel.step(KEY, state, params)
    _, noise_key = jax.random.split(KEY)
    b1, b2 = settings.beta1, settings.beta2
    g = 2 * np.asarray(POSTERIOR.coefficients) * W0
    m = b1 * m0 + (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** 4), v / (1 - b2 ** 4)
    eps_t = settings.step_size / (np.sqrt(v_hat) + 0.1)
    drift = -(POSTERIOR.nbeta * m_hat + POSTERIOR.gamma * W0)
    expected = W0 + eps_t / 2 * drift + np.sqrt(eps_t) * _noise(noise_key)
    _close(new.position, expected)
    _close(new.preconditioner.m, m)


def test_a_chain_and_its_half_step_twin_share_their_draws():
    """bias_correction: richardson (the default): the twin takes two steps of ε/2 with draws
    ξ₁, ξ₂ (keys: split, then each split into batch and noise), the chain one step of ε with
    (ξ₁ + ξ₂)/√2; RMSProp's twin decays v̂ by √β2 per step (the same span of time)."""
    for kind in ("sgld", "sgld_rmsprop"):
        settings, kernel, state, params = _setup(kind, **({} if kind == "sgld"
                                                          else {"stabilizer": 0.5}))
        assert settings.bias_correction == "richardson"
        w0 = jnp.asarray(W0, jnp.float32)
        state = state._replace(chain=state.chain._replace(position=w0),
                               half=state.half._replace(position=w0))
        new, info = kernel.step(KEY, state, params)
        first, second = jax.random.split(KEY)
        xi1, xi2 = (_noise(jax.random.split(k)[1]) for k in (first, second))
        c = np.asarray(POSTERIOR.coefficients)
        eps = settings.step_size
        if kind == "sgld":
            mid = W0 + eps / 4 * _grad_log_p(W0) + np.sqrt(eps / 2) * xi1
            end = mid + eps / 4 * _grad_log_p(mid) + np.sqrt(eps / 2) * xi2
            chain = W0 + eps / 2 * _grad_log_p(W0) + np.sqrt(eps) * (xi1 + xi2) / np.sqrt(2)
        else:
            def moved(w, v, count, step, b2, xi):
                g = 2 * c * w
                v = b2 * v + (1 - b2) * g * g
                eps_t = step / (np.sqrt(v / (1 - b2 ** count)) + 0.5)
                return w + eps_t / 2 * _grad_log_p(w) + np.sqrt(eps_t) * xi, v

            root = np.sqrt(settings.beta2)
            mid, v = moved(W0, 0.0, 1, eps / 2, root, xi1)
            end, v = moved(mid, v, 2, eps / 2, root, xi2)
            _close(new.half.preconditioner.v, v)
            chain, _ = moved(W0, 0.0, 1, eps, settings.beta2, (xi1 + xi2) / np.sqrt(2))
        _close(new.half.position, end)
        _close(new.chain.position, chain)
        _close(new.position, chain)
        _close(info.loss, np.sum(c * W0**2))
        _close(info.half_step_loss, (np.sum(c * W0**2) + np.sum(c * mid**2)) / 2)
        assert float(info.grad_evals) == pytest.approx(3 * settings.batch_size / POSTERIOR.n)


@pytest.mark.parametrize("kind", ["sgnht", "sghmc"])
def test_momentum_steps(kind):
    """p' = p − hξp + h∇log p + √(2αh)η, w' = w + hp'; SGNHT then ξ' = ξ + h(mean p'² − 1),
    SGHMC keeps ξ = α."""
    settings, kernel, state, params = _setup(kind)
    p0 = np.array([0.5, -1.0, 0.25])
    alpha = momentum.initial_friction(settings)
    xi0 = 7.0 if kind == "sgnht" else alpha
    dynamics = momentum.State(jnp.asarray(W0, jnp.float32), jnp.asarray(p0, jnp.float32))
    if kind == "sgnht":
        state = state._replace(dynamics=dynamics, xi=jnp.asarray(xi0, jnp.float32))
    else:
        state = dynamics
    new, _ = kernel.step(KEY, state, params)
    new_dynamics = new.dynamics if kind == "sgnht" else new
    _, noise_key = jax.random.split(KEY)
    h = settings.step_size
    p = p0 - h * xi0 * p0 + h * _grad_log_p(W0) + np.sqrt(2 * alpha * h) * _noise(noise_key)
    _close(new_dynamics.momentum, p)
    _close(new_dynamics.position, W0 + h * p)
    if kind == "sgnht":
        _close(new.xi, xi0 + h * (np.mean(p * p) - 1))


def test_mala_probe():
    """Acceptance of one Langevin proposal with step s from w, both directions scored."""
    settings, kernel, state, params = _setup("sgld", bias_correction="none")
    state = state._replace(position=jnp.asarray(W0, jnp.float32))
    probe = kernel.probe(KEY, state, params)
    _, noise_key = jax.random.split(KEY)
    s = settings.step_size
    c = np.asarray(POSTERIOR.coefficients)

    def potential(w):
        return POSTERIOR.nbeta * np.sum(c * w * w) + 0.5 * POSTERIOR.gamma * np.sum(w * w)

    proposal = W0 + s / 2 * _grad_log_p(W0) + np.sqrt(s) * _noise(noise_key)
    back = proposal + s / 2 * _grad_log_p(proposal)
    forward = W0 + s / 2 * _grad_log_p(W0)
    log_ratio = (potential(W0) - potential(proposal) - np.sum((W0 - back) ** 2) / (2 * s)
                 + np.sum((proposal - forward) ** 2) / (2 * s))
    _close(probe.mala_acceptance, min(1.0, np.exp(log_ratio)))
    _close(probe.effective_step, s)
    assert 0 < float(probe.mala_acceptance) < 1  # a case where the ratio matters


def test_the_driver_thins_full_batch_draws():
    """`thin: k` runs draws × k transitions and keeps every k-th: the cost per kept draw is k
    trajectories, and the divergence count covers every transition."""
    from lambda_hat.samplers.driver import run

    data = POSTERIOR.data(jnp.float32)
    outputs = {thin: run(REGISTRY["hmc"], settings_for("hmc", chains=2, warmup=50, draws=30,
                                                        thin=thin), POSTERIOR, data)
               for thin in (1, 3)}
    steps = REGISTRY["hmc"].Settings.num_integration_steps
    for thin, output in outputs.items():
        assert output.loss.shape == (2, 30)
        per_draw = np.diff(output.grad_evals_at)
        np.testing.assert_allclose(per_draw, thin * steps)
        stats = REGISTRY["hmc"].summarize(settings_for("hmc", thin=thin), output)
        assert stats["transitions"] == 2 * 30 * thin
        assert len(stats["divergences_per_chain"]) == 2
        assert sum(stats["divergences_per_chain"]) == stats["divergences"]
        assert stats["integration_steps_mean"] == pytest.approx(steps)
