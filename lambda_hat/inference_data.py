"""ArviZ export of one run, so that its draws and sampler statistics open in the ArviZ and
xarray tools (plots, diagnostics, netCDF readers) without knowing `trace.npz`.

ArviZ is an optional extra (`pip install 'lambda-hat[arviz]'`), imported only inside the
functions here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .artifacts import atomic_write, read_npz
from .errors import ArtifactError, LambdaHatError
from .samplers import REGISTRY as SAMPLERS
from .summary import RunSummary, read_summary

if TYPE_CHECKING:
    import arviz

INSTALL_HINT = "pip install 'lambda-hat[arviz]'"

STAT_NAMES = {
    "acceptance": "acceptance_rate",
    "divergent": "diverging",
    "energy_change": "energy_error",
    "effective_step": "step_size",
}
"""trace.npz names -> ArviZ's conventional sample_stats names; other per-draw arrays
(`mala_acceptance`, `log_weight`, `grad_evals`) keep their own."""

NOT_STATS = frozenset({"loss", "half_step_loss", "grad_evals_at", "burn_in", "loss_star",
                       "observed_L_n",
                       "observed_losses_at_w_star", "observed_mask"})


def import_arviz() -> ModuleType:
    """ArviZ, or a LambdaHatError that says what to install."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor",
                                    category=FutureWarning)
            import arviz
    except ImportError:
        raise LambdaHatError(f"the ArviZ export needs ArviZ, an optional extra: run "
                             f"{INSTALL_HINT}") from None
    return arviz


def _sample_stats(summary: RunSummary, trace: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every per-draw (chains, trace points) array of the run, under ArviZ's names."""
    shape = trace["loss"].shape
    stats = {}
    for name, value in trace.items():
        if name in NOT_STATS or name.startswith("warmup_") or value.shape != shape:
            continue
        if name == "divergent":
            value = value > 0  # thinned: the fraction of its transitions that diverged
        elif name == "grad_evals" and SAMPLERS[summary.kind].LEAPFROG:  # ArviZ's n_steps
            name = "n_steps"
            value = value if summary.trace_every == 1 else value / summary.trace_every
        stats[STAT_NAMES.get(name, name)] = value
    nominal = summary.stats.get("adapted_step_size", summary.stats.get("step_size"))
    if ("step_size" not in stats and isinstance(nominal, list) and len(nominal) == shape[0]
            and all(isinstance(step, (int, float)) for step in nominal)):
        stats["step_size"] = np.broadcast_to(np.asarray(nominal, np.float64)[:, None], shape)
    return stats


def _attrs(summary: RunSummary) -> dict[str, str | int | float]:
    """What produced the run and what it estimated; None (not computed) is left out."""
    attrs = {
        "inference_library": "lambda-hat",
        "inference_library_version": summary.versions.get("lambda-hat"),
        "experiment": summary.experiment,
        "target": summary.target,
        "target_hash": summary.target_hash,
        "sampler": summary.sampler,
        "kind": summary.kind,
        "seed": summary.seed,
        "dtype": summary.dtype,
        "trace_every": summary.trace_every,
        "loss_trace": summary.loss_trace,
        "markov_chain": int(summary.markov_chain),
        "draws_are": "a Markov chain" if summary.markov_chain else "iid, not a Markov chain",
        "burn_in": summary.burn_in,
        "chains_failed": summary.chains_failed,
        "n": summary.n,
        "d": summary.d,
        "beta": summary.beta,
        "gamma": summary.gamma,
        "nbeta": summary.nbeta,
        "loss_star": summary.loss_star,
        "true_llc": summary.true_llc,
        "llc_mean": summary.llc_mean,
        "llc_std": summary.llc_std,
        "llc_mcse": summary.llc_mcse,
        "ess": summary.ess,
        "ess_bulk": summary.ess_bulk,
        "ess_tail": summary.ess_tail,
        "r_hat": summary.r_hat,
        "status": summary.status,
    }
    return {key: value for key, value in attrs.items() if value is not None}


def to_inference_data(run_dir: str | os.PathLike) -> arviz.InferenceData:
    """The run in `run_dir` as an `arviz.InferenceData` (`inference_data_of`)."""
    run_dir = Path(run_dir)
    import_arviz()  # the missing extra is named before any file is read
    summary = read_summary(run_dir / "summary.json")
    trace = read_npz(run_dir / "trace.npz", required=("loss", "burn_in"))
    return inference_data_of(summary, trace, str(run_dir))


def inference_data_of(summary: RunSummary, trace: dict,
                      where: str = "<run>") -> arviz.InferenceData:
    """A run's summary and traces as an `arviz.InferenceData`.

    `posterior`: `L_n` and `llc` = nβ (L_n − L_n(w*)) per (chain, draw), the draws kept
    after burn-in (under a step-bias correction, `L_n_half_step` the twins' and `llc` the
    extrapolated nβ(2 L_n_half_step − L_n − L_n(w*)), `llc_uncorrected` the chains' own),
    and `observed_losses` (per observed point, or point and token) when the run
    observed points; `sample_stats`: the run's per-draw statistics (`STAT_NAMES`; HMC and
    NUTS `n_steps`; `step_size` the adapted one per chain where the trace has none: HMC
    jitters it per draw around that); the burn-in draws, if any, in `warmup_posterior` and
    `warmup_sample_stats`. Chains that went NaN/Inf are kept (the estimate excluded them:
    attr `chains_failed`); `attrs` say what produced the run and what it estimated.
    """
    az = import_arviz()
    loss = trace["loss"]
    burn_in = int(trace["burn_in"])
    if loss.ndim != 2 or burn_in != summary.burn_in:
        raise ArtifactError(f"{where}: trace.npz does not match summary.json (loss shape "
                            f"{loss.shape}, burn_in {burn_in} vs {summary.burn_in})")
    draws = {"L_n": loss,
             "llc": summary.nbeta * (loss.astype(np.float64) - summary.loss_star)}
    if "half_step_loss" in trace:
        half = trace["half_step_loss"]
        draws.update({"L_n_half_step": half, "llc_uncorrected": draws["llc"],
                      "llc": summary.nbeta * (2 * half.astype(np.float64) - loss
                                              - summary.loss_star)})
    dims, coords = {}, {}
    if "observed_losses" in trace:
        observed = draws["observed_losses"] = np.asarray(trace["observed_losses"])
        dims["observed_losses"] = ["point", "token"][:observed.ndim - 2]
        coords = {name: np.arange(size) for name, size in zip(dims["observed_losses"],
                                                              observed.shape[2:])}
    stats = _sample_stats(summary, trace)
    kept = {name: value[:, burn_in:] for name, value in draws.items()}
    kept_stats = {name: value[:, burn_in:] for name, value in stats.items()}
    warmup = {}
    if burn_in:
        warmup = {"warmup_posterior": {name: value[:, :burn_in] for name, value in draws.items()},
                  "warmup_sample_stats": {name: value[:, :burn_in]
                                          for name, value in stats.items()} or None}
    return az.from_dict(posterior=kept, sample_stats=kept_stats or None, dims=dims or None,
                        coords=coords or None,
                        save_warmup=bool(burn_in), attrs=_attrs(summary), **warmup)


def write_trace_nc(run_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the run's InferenceData to netCDF at `out`, atomically, with the umask's mode."""
    data = to_inference_data(run_dir)
    return atomic_write(out, lambda tmp: data.to_netcdf(str(tmp)))
