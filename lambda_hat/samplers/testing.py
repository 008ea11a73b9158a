"""Exact test potentials and a precision-isolated runner for sampler checks.

`PotentialPosterior` satisfies `common.PosteriorLike` for an analytic loss, so any sampler
can be run on a potential whose answer is known (science.md §4: with γ = 0 and a flat prior,
K(w) = Σ c_i w_i^{2k_i} gives nβ·E[K] = Σ 1/(2k_i) exactly, for any nβ).

JAX's x64 flag is process-global, so a test process cannot run float64 and float32 samplers
side by side. `run_isolated` runs one function of this package in a fresh interpreter with
JAX_ENABLE_X64 set for the requested precision and returns its JSON-able result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from ..posterior import Localized


@dataclass(frozen=True)
class PotentialPosterior(Localized):
    """p(w) ∝ exp(−nβ·K(w) − (γ/2)||w − w*||²) for K(w) = Σ c_i (w_i − w*_i)^{2k_i}.

    The loss has no data: `minibatch_loss` is the exact loss (no gradient noise), which
    isolates the discretisation error of a stochastic-gradient sampler.
    """

    coefficients: tuple[float, ...]
    powers: tuple[int, ...]
    nbeta: float
    gamma: float = 0.0
    n: int = 1000

    @property
    def d(self) -> int:
        return len(self.coefficients)

    @property
    def exact_llc(self) -> float:
        """nβ·E[K] when γ = 0."""
        return float(sum(1.0 / (2 * k) for k in self.powers))

    def data(self, dtype):
        import jax.numpy as jnp

        return {"w_star": jnp.zeros(self.d, dtype)}

    def loss(self, w, data):
        import jax.numpy as jnp

        delta = w - data["w_star"]
        # Integer powers written out: a float exponent would route through exp(log |x|).
        terms = [c * delta[i] ** (2 * k) for i, (c, k) in
                 enumerate(zip(self.coefficients, self.powers))]
        return jnp.sum(jnp.stack(terms))

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True):
        return self.loss(w, data)



@dataclass(frozen=True)
class GaussianPosterior(Localized):
    """Quadratic loss L(w) = ½ (w − w*)ᵀ A (w − w*) with A = Σ⁻¹/nβ, Σ = diag(s) + uuᵀ.

    With γ = 0 the posterior is exactly N(w*, Σ): nβ·E[L] = d/2 and log Z is known, so a
    variational family that contains Σ (rank ≥ 1 plus diagonal) must reach ELBO = log Z.
    """

    diagonal: tuple[float, ...]
    factor: tuple[float, ...]
    nbeta: float
    gamma: float = 0.0
    n: int = 1000

    @property
    def d(self) -> int:
        return len(self.diagonal)

    @property
    def covariance(self) -> np.ndarray:
        u = np.asarray(self.factor)
        return np.diag(self.diagonal) + np.outer(u, u)

    @property
    def log_normaliser(self) -> float:
        """log ∫ exp(−nβ L(w)) dw = (d/2) log 2π + ½ log|Σ|."""
        return 0.5 * self.d * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(self.covariance)[1]

    @property
    def exact_llc(self) -> float:
        return self.d / 2

    def data(self, dtype):
        import jax.numpy as jnp

        precision = np.linalg.inv(self.covariance) / self.nbeta
        return {"w_star": jnp.zeros(self.d, dtype), "A": jnp.asarray(precision, dtype)}

    def loss(self, w, data):
        delta = w - data["w_star"]
        return 0.5 * delta @ data["A"] @ delta

    def minibatch_loss(self, w, data, key, batch_size: int, replacement: bool = True):
        return self.loss(w, data)



def settings_for(kind: str, **overrides) -> dict:
    from . import REGISTRY

    spec = REGISTRY[kind]
    return {"kind": kind, **spec.all_defaults, "beta": "auto", "gamma": 1.0, **overrides}


def run_on_potential(posterior, kind: str, **overrides) -> dict:
    """Run one sampler kind on an analytic posterior; estimate with the package estimator."""
    from ..estimator import estimate_llc
    from . import REGISTRY

    spec = REGISTRY[kind]
    settings = settings_for(kind, **overrides)
    dtype = np.float64 if settings["dtype"] == "float64" else np.float32
    data = posterior.data(dtype)
    output = spec.load_run()(posterior, data, settings, settings["seed"])
    estimate = estimate_llc(output.loss, output.burn_in, 0.0, posterior.nbeta,
                            markov_chain=spec.is_markov_chain)
    return {**estimate, "exact": posterior.exact_llc, "stats": _jsonable(output.stats),
            "dtype": str(output.loss.dtype), "sample_seconds": output.sample_seconds,
            "traces": {k: np.asarray(v).tolist() for k, v in output.traces.items()
                       if k in ("elbo",)}}


def potential_from_spec(spec: dict):
    """Rebuild a test posterior from JSON (specs cross the subprocess boundary as JSON)."""
    spec = dict(spec)
    kind = spec.pop("type")
    cls = {"potential": PotentialPosterior, "gaussian": GaussianPosterior}[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


def run_kinds_on_potential(spec: dict, runs: list[dict]) -> list[dict]:
    """`run_on_potential` for several {kind, **overrides} in one process (one JAX import)."""
    posterior = potential_from_spec(spec)
    return [run_on_potential(posterior, **run) for run in runs]


def build_dln_targets(out_dir: str, targets: dict) -> dict:
    """Build DLN targets {name: {widths, rank, n, seed}} under out_dir (run this in float64)."""
    from pathlib import Path

    from ..config import Experiment
    from ..targets import build_target, save_target

    records = {}
    for name, spec in targets.items():
        raw = {"targets": {name: {"model": {"kind": "dln", "widths": spec["widths"],
                                            "rank": spec["rank"]},
                                  "data": {"n": spec["n"]}, "seed": spec.get("seed", 0)}},
               "samplers": {"any": {"kind": "hmc"}}}
        experiment = Experiment(raw, f"<test target {name}>")
        record, arrays = build_target(name, experiment.target(name), "test")
        save_target(Path(out_dir) / name, record, arrays)
        records[name] = {"true_llc": record["true_llc"], "multiplicity": record["multiplicity"],
                         "d": record["d"], "n": record["n"]}
    return records


SUMMARY_KEYS = ("kind", "dtype", "llc_mean", "llc_std", "llc_mcse", "true_llc", "rel_error",
                "ess", "r_hat", "chains_total", "chains_failed", "grad_evals",
                "ess_per_grad_eval", "compile_seconds", "sample_seconds", "wall_seconds",
                "warnings", "stats", "nbeta", "n", "d")


def run_kinds_on_target(target_dir: str, runs: list[dict], posterior: dict | None = None) -> list[dict]:
    """The runner's summary (selected keys) for each {kind, **overrides} on a built target."""
    from ..config import Experiment
    from ..errors import SamplingFailed
    from ..runner import sample_run
    from ..targets import load_target

    target = load_target(target_dir)
    results = []
    for index, run in enumerate(runs):
        name = f"s{index}"
        raw = {"targets": {"t": {"model": {"kind": "dln", "widths": [1, 1], "rank": 0}}},
               "samplers": {name: run}}
        if posterior:
            raw["posterior"] = posterior
        try:
            summary, _ = sample_run(Experiment(raw, "<test>"), name, target)
        except SamplingFailed as exc:  # every chain diverged: the runner's loudest diagnostic
            results.append({"error": str(exc)})
            continue
        results.append({key: summary.get(key) for key in SUMMARY_KEYS})
    return results


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def run_isolated_many(calls: list[tuple[str, str, dict]], parallel: int = 2,
                      env: dict | None = None) -> list:
    """`run_isolated` for several (function, dtype, kwargs) calls, `parallel` at a time, in
    the order given (put the longest first). Failures come back as the exception object."""
    from concurrent.futures import ThreadPoolExecutor

    def call(function, dtype, kwargs):
        try:
            return run_isolated(function, dtype, env=env, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs the result
            return exc

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(call, *c) for c in calls]
        return [future.result() for future in futures]


def run_isolated(function: str, dtype: str, timeout: float = 600, env: dict | None = None,
                 **kwargs):
    """Call `module:function(**kwargs)` in a fresh interpreter running JAX in `dtype`.

    The function must return something JSON can encode; its result is returned here.
    Exceptions in the child re-raise here as RuntimeError with the child's stderr tail.
    """
    env = {**os.environ, **(env or {}), "JAX_ENABLE_X64": "1" if dtype == "float64" else "0",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    request = json.dumps({"function": function, "kwargs": kwargs})
    completed = subprocess.run(
        [sys.executable, "-m", "lambda_hat.samplers.testing"], input=request, env=env,
        capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"{function} failed in a {dtype} subprocess:\n"
                           + completed.stderr[-4000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _main() -> None:
    import importlib

    request = json.loads(sys.stdin.read())
    module, name = request["function"].split(":")
    result = getattr(importlib.import_module(module), name)(**request["kwargs"])
    print(json.dumps(_jsonable(result)))


if __name__ == "__main__":
    _main()
