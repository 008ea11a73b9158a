"""λ̂ from Python: `estimate(apply, params, data, ...)`, no experiment file, no target file.

It runs what a sample job runs (`lambda_hat.runner.run_sampler`): the same settings check,
precision guard, samplers, estimator and warnings, on a likelihood made of the function and
params in memory (`lambda_hat.functional`). Called again with the same function, settings
and shapes (λ̂ at each checkpoint of a training loop), it reuses the compiled programs
(`lambda_hat.programs`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .summary import RunSummary

WHERE = "lambda_hat.estimate"


@dataclass(frozen=True)
class FunctionTarget:
    """A target made in memory: what `run_sampler` reads of a built one."""

    likelihood: Any
    arrays: dict
    record: dict
    size_key: str = "data (more points)"


@dataclass(frozen=True)
class Result:
    """One run: its summary (the record a sample job writes as summary.json), its traces
    (trace.npz's arrays) and, when the run observed points, their observables."""

    summary: RunSummary
    traces: dict = field(repr=False)
    observables: Any = field(default=None, repr=False)
    """`lambda_hat.observables.Observables`, or None without `observe`."""

    @property
    def llc(self) -> float | None:
        return self.summary.llc_mean

    @property
    def llc_mcse(self) -> float | None:
        return self.summary.llc_mcse

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.summary.warnings

    def to_inference_data(self):
        """The run as an `arviz.InferenceData` (the `arviz` extra), as `lambda-hat export`
        writes it, with the observed losses in the posterior group when there are any."""
        from .inference_data import inference_data_of

        return inference_data_of(self.summary, self.traces)

    def to_xarray(self):
        """The posterior group (L_n, λ̂ and observed losses per chain and draw) as an
        `xarray.Dataset`."""
        return self.to_inference_data().posterior


def _points(data, where: str) -> dict:
    """{"X", "Y", "mask"} from `(x, y)`, `(x, y, mask)` or a mapping with those keys."""
    from .errors import ConfigError

    if isinstance(data, dict):
        unknown = sorted(set(data) - {"x", "y", "mask"})
        if unknown or not {"x", "y"} <= set(data):
            raise ConfigError([f"{where}: a mapping of data needs keys x, y (and optionally "
                               f"mask); got {', '.join(sorted(map(str, data)))}"])
        x, y, mask = data["x"], data["y"], data.get("mask")
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        x, y, mask = (*data, None)[:3]
    else:
        raise ConfigError([f"{where}: give (x, y), (x, y, mask) or a mapping with x and y"])
    return {"X": np.asarray(x), "Y": np.asarray(y),
            "mask": None if mask is None else np.asarray(mask, bool)}


def _observed(observe, points: dict, where: str) -> dict | None:
    """The observed points: the training data (`"data"`), those of its indices, or points of
    their own."""
    from .errors import ConfigError

    if observe is None:
        return None
    if isinstance(observe, str):
        if observe != "data":
            raise ConfigError([f"{where}: observe={observe!r}: the word it takes is 'data' "
                               "(the training points)"])
        return points
    if isinstance(observe, (tuple, dict)):
        return _points(observe, where)
    index = np.asarray(observe)
    if index.dtype.kind not in "iub" or index.ndim != 1:
        raise ConfigError([f"{where}: observe takes 'data', indices of training points, or "
                           "(x, y[, mask])"])
    n = len(points["X"])
    if index.dtype.kind in "iu" and index.size and (index.min() < -n or index.max() >= n):
        raise ConfigError([f"{where}: observe indices must lie in 0..{n - 1}"])
    return {key: None if value is None else value[index] for key, value in points.items()}


def _digest(arrays: dict, apply: Callable) -> str:
    digest = hashlib.sha256(getattr(apply, "__qualname__", repr(apply)).encode())
    for name in sorted(arrays):
        if arrays[name] is not None:
            array = np.ascontiguousarray(arrays[name])
            digest.update(name.encode() + str(array.dtype).encode() + array.tobytes())
    return digest.hexdigest()


def estimate(apply: Callable, params, data, *, loss: str = "mse", sampler: str = "sgld",
             observe=None, name: str = "model", **settings) -> Result:
    """λ̂ at `params` of the model `apply(params, x)` on `data`.

    - `params`: any pytree of arrays (Flax, Equinox and plain dicts alike), taken as w*;
    - `data`: `(x, y)`, `(x, y, mask)` or `{"x", "y", "mask"}`, one row per data point (per
      sequence: logits [n, seq, vocab] against labels [n, seq], the mask keeping tokens);
    - `loss`: `"mse"` or `"cross_entropy"` (`lambda_hat.functional`);
    - `sampler`: a sampler kind (`hmc`, `nuts`, `mclmc`, `sgld`, ...); `settings` are its
      settings as an experiment file writes them (`chains`, `seed`, `beta`, `gamma`,
      `steps`, `restrict`, ...), checked the same way;
    - `observe`: `"data"`, indices of data points (a list or array), or the tuple
      `(x, y[, mask])`: record those points' losses at every trace point
      (`Result.observables`).

    The sampler's precision (`dtype`: float64 for HMC, NUTS, MCLMC; float32 for the
    minibatch samplers) must be the process's: JAX_ENABLE_X64=1 for float64. A mismatch
    raises PrecisionError before any work.
    """
    from .config import sampler_settings
    from .errors import ConfigError
    from .functional import FunctionLikelihood, Layout, check_points
    from .runner import run_sampler
    from .samplers import REGISTRY

    where = f"{WHERE}(sampler={sampler!r})"
    points = _points(data, f"{where}: data")
    problems = check_points(apply, params, points["X"], points["Y"], loss, points["mask"])
    if problems:
        raise ConfigError([f"{where}: {problem}" for problem in problems])
    observed = _observed(observe, points, f"{where}: observe")
    if observed is not None:
        problems = check_points(apply, params, observed["X"], observed["Y"], loss,
                                observed["mask"])
        if problems:
            raise ConfigError([f"{where}: observe: {problem}" for problem in problems])
    n = len(points["X"])
    typed = sampler_settings({"kind": sampler, **settings}, where, n)
    layout = Layout.of(params)
    arrays = {**points, "w_star": layout.flatten(params, np.float64)}
    record = {"name": name, "n": n, "true_llc": None, "config": {},
              "hash": _digest(arrays, apply)}
    target = FunctionTarget(FunctionLikelihood(apply, loss, layout), arrays, record)
    if observed is not None and not REGISTRY[typed.kind].MARKOV_CHAIN:
        raise ConfigError([f"{where}: observe: a {typed.kind} run has no chain of draws to "
                           "observe; use an MCMC sampler"])
    summary, traces = run_sampler(typed, target, experiment="python", sampler_name=sampler,
                                  where=where, observe=observed)
    observables = None
    if observed is not None:
        from .observables import Observables

        observables = Observables.from_trace(traces, summary.burn_in, summary.nbeta)
    return Result(summary, traces, observables)
