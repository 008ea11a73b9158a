"""What L_n's gradient and curvature at w* say about λ̂ before any draw is trusted
(docs/theory.md §5 and §7).

Quadratic model of L_n at w*: L ≈ L* + gᵀδ + ½δᵀHδ. Along an eigen-direction of H with
curvature h, the tempered, localized posterior is Gaussian with precision a = nβh + γ, so
- the direction adds nβh/(2a) to λ̂ instead of the ½ it adds without the localizer: the
  localizer suppresses γ/(2a) of it, most of the ½ once nβh ≲ γ (λ̂ then measures the
  localizer, not the model);
- a gradient component g (w* not stationary) moves the posterior mean by −nβg/a and lowers
  λ̂ by (nβg)²(a − nβh/2)/a²: the chain falls below L_n(w*).
Directions with h ≈ 0 (the singular ones) contribute no ½ to lose and are not counted as
suppressed; their gradient still counts (a = γ).

H is formed densely up to MAX_DENSE_PARAMS parameters; above that only the gradient is
used, and the drop is bounded by (nβ)²‖g‖²/γ (exact for h = 0, an upper bound for h ≥ 0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from .estimator import bias_threshold

MAX_DENSE_PARAMS = 2000
FLAT_RTOL = 1e-4
"""Curvatures below this fraction of the largest count as flat (h = 0). A singular direction
reads ~1e-15 relative in float64 but up to ~1e-5 in float32; one rule for both precisions
keeps a target's figures the same for every sampler on it."""
WARN_FRACTION = 0.05
"""Warn when the localizer's share exceeds this fraction of λ̂ (and a large model's bound
on the stationarity drop, which is only a bound)."""
HESSIAN_BATCH = 32
"""Hessian rows formed at once: the memory of a Hessian-vector product times this."""


@dataclass(frozen=True)
class Optimum:
    """The local geometry of L_n at w* for one run's posterior (nβ, γ)."""

    method: str
    """`dense` (H's spectrum known) or `gradient` (d > MAX_DENSE_PARAMS: gradient only)."""
    grad_norm: float
    """‖∇L_n(w*)‖: zero at a stationary w*."""
    stationarity_drop: float | None
    """How far the gradient lowers λ̂ in the quadratic model (dense), else None."""
    stationarity_drop_bound: float
    """(nβ)²‖g‖²/γ: an upper bound of that drop when H ⪰ 0 (always given)."""
    curvature_max: float | None = None
    curvature_min: float | None = None
    flat_directions: int | None = None
    """Directions with |h| below FLAT_RTOL of the largest: the singular ones."""
    negative_directions: int | None = None
    """Directions with h < 0 beyond that tolerance (harmless while nβ|h| ≪ γ)."""
    saddle_directions: int | None = None
    """Directions with nβh + γ < γ/2: the localizer barely holds the chain near w*."""
    improper_directions: int | None = None
    """Directions with nβh + γ ≤ 0: the localized posterior is not normalizable there."""
    localizer_suppression: float | None = None
    """Σ γ/(2(nβh + γ)) over the curved directions (h > 0): the part of λ̂'s regular part
    the localizer takes, in λ units."""
    localizer_suppressed_fraction: float | None = None
    """That sum over the curved directions' ½ each."""
    nbeta_over_gamma_needed: float | None = None
    """The nβ/γ at which the suppression would fall to WARN_FRACTION of the unlocalized
    value λ̂ + suppression (None when it is below already)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _geometry(posterior, dense: bool, data):
    """(gradient, Hessian or None) of L_n at w*, one traced program."""
    import jax

    w = data["w_star"]
    loss = partial(posterior.loss, data=data)
    gradient = jax.grad(loss)(w)
    if not dense:
        return gradient, None
    hvp = lambda v: jax.jvp(jax.grad(loss), (w,), (v,))[1]  # noqa: E731
    basis = jax.numpy.eye(w.shape[0], dtype=w.dtype)
    return gradient, jax.lax.map(hvp, basis, batch_size=HESSIAN_BATCH)


def _suppression(curvatures: np.ndarray, ratio: float) -> float:
    """Σ ½/(1 + ratio·h) over the curved directions: the localizer's share at nβ/γ = ratio."""
    return float(np.sum(0.5 / (1.0 + ratio * curvatures)))


def _ratio_needed(curvatures: np.ndarray, budget: float) -> float:
    """The smallest nβ/γ at which the suppression is at most `budget` (bisection in log)."""
    low, high = 0.0, 1.0
    while _suppression(curvatures, high) > budget:
        if high > 1e30:
            return math.inf
        low, high = high, high * 10
    for _ in range(60):
        middle = math.sqrt(max(low, 1e-300) * high) if low > 0 else high / 2
        if _suppression(curvatures, middle) > budget:
            low = middle
        else:
            high = middle
    return high


def check_optimum(posterior, data, llc: float | None = None) -> Optimum:
    """The geometry of L_n at w* for `posterior`; `llc`, the run's λ̂, sets the ratio's
    budget (WARN_FRACTION of λ̂ + suppression)."""
    import jax

    from .programs import compile_program, default_cache_dir

    d = int(data["w_star"].shape[0])
    dense = d <= MAX_DENSE_PARAMS
    compiled, _ = compile_program(partial(_geometry, posterior, dense), (data,),
                                  default_cache_dir())
    gradient, hessian = jax.device_get(compiled(data))
    gradient = np.asarray(gradient, np.float64)
    nbeta, gamma = float(posterior.nbeta), float(posterior.gamma)
    bound = float(nbeta ** 2 * np.dot(gradient, gradient) / gamma)
    grad_norm = float(np.linalg.norm(gradient))
    if hessian is None:
        return Optimum(method="gradient", grad_norm=grad_norm, stationarity_drop=None,
                       stationarity_drop_bound=bound)
    hessian = np.asarray(hessian, np.float64)
    curvatures, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
    top = float(np.max(np.abs(curvatures))) if curvatures.size else 0.0
    tolerance = top * FLAT_RTOL
    curved = curvatures[curvatures > tolerance]
    precision = nbeta * curvatures + gamma
    improper = int(np.sum(precision <= 0))
    saddle = int(np.sum(precision < gamma / 2))
    drop = None
    if not improper:
        g = vectors.T @ gradient
        drop = float(np.sum((nbeta * g) ** 2 * (precision - nbeta * curvatures / 2)
                            / precision ** 2))
    suppression = _suppression(curved, nbeta / gamma)
    needed = None
    if curved.size:
        unlocalized = max(llc or 0.0, 0.0) + suppression
        if suppression > WARN_FRACTION * unlocalized:
            needed = _ratio_needed(curved, WARN_FRACTION * unlocalized)
    return Optimum(
        method="dense", grad_norm=grad_norm, stationarity_drop=drop,
        stationarity_drop_bound=bound,
        curvature_max=float(curvatures[-1]) if curvatures.size else None,
        curvature_min=float(curvatures[0]) if curvatures.size else None,
        flat_directions=int(np.sum(np.abs(curvatures) <= tolerance)),
        negative_directions=int(np.sum(curvatures < -tolerance)),
        saddle_directions=saddle,
        improper_directions=improper,
        localizer_suppression=suppression,
        localizer_suppressed_fraction=suppression / (0.5 * curved.size) if curved.size else 0.0,
        nbeta_over_gamma_needed=needed)


def optimum_warnings(optimum: Optimum, llc: float, nbeta: float, gamma: float,
                     size_key: str = "data.n", mcse: float | None = None) -> list[str]:
    """What to change when the geometry at w* makes λ̂ untrustworthy, naming the target's
    own keys (`size_key` sets its n); `mcse`, λ̂'s, sets how large a stationarity drop
    goes unnoticed (`estimator.bias_threshold`). γ gets one direction: where the localizer
    dominates, the advice is to lower it, so the other remedies leave γ out rather than
    say raise it."""
    found = []
    scale = abs(llc)
    raise_gamma = ("" if optimum.nbeta_over_gamma_needed is not None
                   else ", or raise γ (posterior.gamma)")
    if optimum.nbeta_over_gamma_needed is not None:
        needed = optimum.nbeta_over_gamma_needed
        found.append(
            f"the localizer dominates: along directions of low curvature at w* (nβh ≲ γ; "
            f"nβ = {nbeta:.4g}, γ = {gamma:.4g}) it takes up to "
            f"{optimum.localizer_suppression:.3g} from λ̂ (the quadratic model; "
            f"{optimum.localizer_suppressed_fraction:.0%} of the curved directions' ½ each), "
            f"so λ̂ measures the localizer there, not L_n; raise n ({size_key}) until "
            f"nβ ≥ {needed * gamma:.4g}, or lower γ (posterior.gamma) to ≤ {nbeta / needed:.3g}")
    if optimum.improper_directions:
        found.append(
            f"w* is not a local minimum: {optimum.improper_directions} directions have "
            f"nβh + γ ≤ 0 (down to h = {optimum.curvature_min:.3g}; the chain leaves w* along "
            "them until higher-order terms stop it); use a trained w* (w_star: trained) or "
            f"train it further{raise_gamma}")
    elif optimum.saddle_directions:
        found.append(
            f"w* is a saddle of L_n: {optimum.saddle_directions} directions of negative "
            f"curvature (down to {optimum.curvature_min:.3g}, nβh < −γ/2); train w* further"
            f"{raise_gamma}")
    drop = optimum.stationarity_drop
    if optimum.method == "dense" and drop is None:
        return found  # improper: the quadratic model predicts no drop
    if drop is not None and drop > bias_threshold(llc, mcse):
        found.append(
            f"w* is not stationary (‖∇L_n(w*)‖ = {optimum.grad_norm:.3g}): the gradient "
            f"lowers λ̂ by about {drop:.3g} ({drop / scale:.1%} of it"
            f"{'' if mcse is None else f', {drop / mcse:.1f} MCSE'}); use a trained w* "
            f"(w_star: trained) or train it further{raise_gamma}")
    elif optimum.method == "gradient" \
            and optimum.stationarity_drop_bound > WARN_FRACTION * scale:
        found.append(
            f"w* may not be stationary (‖∇L_n(w*)‖ = {optimum.grad_norm:.3g}): the gradient "
            f"could lower λ̂ by up to {optimum.stationarity_drop_bound:.3g}; train w* further")
    return found
