"""What the teacher–student regression targets share: inputs, noise, training, the loss.

L_n(w) = mean over the n points of a per-point loss summed over outputs (the squared error,
or a Student-t negative log-likelihood): the one loss definition, used to train w* and by
every sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..models import Network


def squared_error(prediction, Y):
    residual = prediction - Y
    return (residual * residual).sum(axis=-1).mean()


@dataclass(frozen=True)
class StudentT:
    """The Student-t negative log-likelihood of the residuals, up to a constant: robust to
    heavy-tailed noise, and as regular as the squared error where the model is."""

    df: float
    scale: float

    def __call__(self, prediction, Y):
        import jax.numpy as jnp

        z = (prediction - Y) / self.scale
        return (0.5 * (self.df + 1) * jnp.log1p(z * z / self.df)).sum(axis=-1).mean()


def point_loss(spec: dict):
    """The target entry's `loss:` as a function of (predictions, Y)."""
    if spec["kind"] == "student_t":
        return StudentT(float(spec["df"]), float(spec["scale"]))
    return squared_error


LOSS_DEFAULTS = {"kind": "mse", "df": 4.0, "scale": 1.0}
"""`loss:` of the regression kinds (dln, mlp): `mse`, or `student_t` with `df` and `scale`."""


class Built(NamedTuple):
    """A target kind's `build` result: the arrays and what is known exactly about them."""

    arrays: dict
    true_llc: float | None = None
    multiplicity: int | None = None
    training_final_loss: float | None = None


@dataclass(frozen=True)
class Regression:
    """Regression of Y on X by `network` under `error` (squared by default): the likelihood
    of dln and mlp."""

    network: Network
    error: object = squared_error

    loss_eval_cost = 0.5

    @property
    def num_params(self) -> int:
        return self.network.num_params

    def parameter_groups(self) -> list:
        return self.network.parameter_groups()

    def batch_loss(self, w, data, index):
        return self.error(self.network.apply(w, data["X"][index]), data["Y"][index])

    def loss(self, w, data):
        return self.error(self.network.apply(w, data["X"]), data["Y"])

    def observed_losses(self, w, points: dict, data: dict):
        """ℓᵢ(w) for each point of `points`: the error of each row alone."""
        import jax

        return jax.vmap(lambda x, y: self.error(self.network.apply(w, x[None]), y[None]))(
            points["X"], points["Y"])

    def prepare_points(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        return {name: jnp.asarray(arrays[name], dtype) for name in ("X", "Y")}

    def prepare(self, arrays: dict, dtype) -> dict:
        """The sampler's data pytree, every array in its precision."""
        import jax.numpy as jnp

        return {**self.prepare_points(arrays, dtype),
                "w_star": jnp.asarray(arrays["w_star"], dtype)}


def _gaussian(key, spec, dim, n, dtype):
    import jax

    return jax.random.normal(key, (n, dim), dtype) * spec["scale"]


def _gaussian_anisotropic(key, spec, dim, n, dtype):
    """Gaussian with scales falling log-evenly from 1 to 1/`condition` across dimensions."""
    import jax.numpy as jnp

    scales = jnp.logspace(0.0, -np.log10(spec["condition"]), dim, dtype=dtype)
    return _gaussian(key, spec, dim, n, dtype) * scales


def _uniform(key, spec, dim, n, dtype):
    import jax

    return jax.random.uniform(key, (n, dim), dtype, -spec["scale"], spec["scale"])


def _heavy_tailed(key, spec, dim, n, dtype):
    import jax

    return spec["scale"] * jax.random.t(key, spec["df"], (n, dim), dtype)


def _mixture(key, spec, dim, n, dtype):
    import jax

    centre_key, choice_key, point_key = jax.random.split(key, 3)
    centres = spec["spread"] * jax.random.normal(centre_key, (spec["components"], dim), dtype)
    choice = jax.random.randint(choice_key, (n,), 0, spec["components"])
    return centres[choice] + spec["scale"] * jax.random.normal(point_key, (n, dim), dtype)


def _low_rank(key, spec, dim, n, dtype):
    import jax
    import jax.numpy as jnp

    basis_key, point_key, off_key = jax.random.split(key, 3)
    rank = min(spec["rank"], dim)
    basis = jnp.linalg.qr(jax.random.normal(basis_key, (dim, rank), dtype))[0].T
    x = spec["scale"] * jax.random.normal(point_key, (n, rank), dtype) @ basis
    return x + spec["off_noise"] * jax.random.normal(off_key, (n, dim), dtype)


INPUTS = {"gaussian": _gaussian, "gaussian_anisotropic": _gaussian_anisotropic,
          "uniform": _uniform, "heavy_tailed": _heavy_tailed, "mixture": _mixture,
          "low_rank": _low_rank}
"""`data.x.kind` -> its sampler, called (key, spec, dim, n, dtype); docs/workflow.md lists
the kinds and their keys."""


def sample_inputs(key, spec: dict, dim: int, n: int, dtype):
    """n inputs of dimension `dim`."""
    return INPUTS[spec["kind"]](key, spec, dim, n, dtype)


def _gaussian_noise(key, spec, shape, dtype, X):
    import jax

    return spec["sigma"] * jax.random.normal(key, shape, dtype)


def _student_t_noise(key, spec, shape, dtype, X):
    import jax

    return spec["sigma"] * jax.random.t(key, spec["df"], shape, dtype)


def _heteroscedastic_noise(key, spec, shape, dtype, X):
    """Noise growing with ‖x‖."""
    import jax
    import jax.numpy as jnp

    radius = jnp.linalg.norm(X, axis=-1, keepdims=True) / np.sqrt(X.shape[-1])
    return spec["sigma"] * (1 + spec["slope"] * radius) * jax.random.normal(key, shape, dtype)


def _outlier_noise(key, spec, shape, dtype, X):
    """A `fraction` of the points get noise of `outlier_sigma`, the rest `sigma`."""
    import jax
    import jax.numpy as jnp

    gaussian = jax.random.normal(key, shape, dtype)
    outlier = jax.random.uniform(jax.random.fold_in(key, 1), shape[:1] + (1,)) \
        < spec["fraction"]
    return jnp.where(outlier, spec["outlier_sigma"], spec["sigma"]) * gaussian


NOISES = {"gaussian": _gaussian_noise, "student_t": _student_t_noise,
          "heteroscedastic": _heteroscedastic_noise, "outliers": _outlier_noise}
"""`data.noise.kind` -> its sampler, called (key, spec, shape, dtype, X)."""


def sample_noise(key, spec: dict, shape, dtype, X):
    """Additive output noise of `data.noise` (zero where `sigma` is, outliers aside)."""
    return NOISES[spec["kind"]](key, spec, shape, dtype, X)


def train(loss, w0, training: dict):
    """w* by full-batch optimisation from w0; (w*, loss history)."""
    import jax
    import optax  # only building a trained target needs it: `sample` never imports it

    optimizer = {"adam": optax.adam, "sgd": optax.sgd}[training["optimizer"]](
        training["learning_rate"])

    def step(carry, _):
        w, opt_state = carry
        value, grad = jax.value_and_grad(loss)(w)
        updates, opt_state = optimizer.update(grad, opt_state, w)
        return (optax.apply_updates(w, updates), opt_state), value

    (w, _), history = jax.lax.scan(step, (w0, optimizer.init(w0)), None,
                                   length=training["steps"])
    return w, history


HELDOUT_POINTS = 1000
"""Fresh inputs on which the target plot compares the student at w* with its teacher."""


def teacher_student(config: dict, likelihood: Regression, teacher: Network, make_teacher,
                    where: str, dtype) -> tuple[dict, object, float | None]:
    """(arrays, w_teacher, final training loss): data from the teacher, w* the teacher or
    the student trained on that data by the likelihood's loss. `make_teacher(key)` draws the
    teacher's weights."""
    import jax

    from ..errors import ArtifactError

    network = likelihood.network
    data = config["data"]
    key_teacher, key_x, key_noise, key_init = jax.random.split(jax.random.key(config["seed"]), 4)
    w_teacher = make_teacher(key_teacher)
    X = sample_inputs(key_x, data["x"], network.sizes[0], data["n"], dtype)
    clean = teacher.apply(w_teacher, X)
    Y = clean + sample_noise(key_noise, data["noise"], clean.shape, dtype, X)
    final_loss, extras = None, {}
    if config["w_star"] == "teacher":
        if teacher != network:
            raise ArtifactError(f"{where}.w_star: 'teacher' needs the teacher's architecture")
        w_star = w_teacher
    else:
        training = config["training"]
        if "checkpoint" in config:  # w_t: the same training, stopped after t steps
            training = {**training, "steps": int(config["checkpoint"])}
        w_star, history = train(lambda w: likelihood.error(network.apply(w, X), Y),
                                network.init(key_init, dtype), training)
        final_loss = float(history[-1]) if len(history) else None
        extras["training_loss"] = np.asarray(history)
    heldout = sample_inputs(jax.random.fold_in(key_x, 1), data["x"], network.sizes[0],
                            min(data["n"], HELDOUT_POINTS), dtype)
    extras["plot_reference"] = np.asarray(teacher.apply(w_teacher, heldout))
    extras["plot_prediction"] = np.asarray(network.apply(w_star, heldout))
    arrays = {"w_star": np.asarray(w_star), "X": np.asarray(X), "Y": np.asarray(Y), **extras}
    return arrays, w_teacher, final_loss
