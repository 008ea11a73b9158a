"""One (target, sampler) run: guard precision, sample, estimate, describe the result."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial

import numpy as np

from .artifacts import package_versions
from .diagnostics import run_warnings
from .errors import PrecisionError, SamplingFailed
from .estimator import estimate_llc, extrapolate, step_bias_warnings
from .optimum import check_optimum, optimum_warnings
from .samplers import REGISTRY
from .settings import as_dict
from .summary import RunSummary

log = logging.getLogger("lambda_hat")


def process_dtype() -> str:
    import jax

    return "float64" if jax.config.jax_enable_x64 else "float32"


def check_precision(declared: str, who: str) -> None:
    """Refuse to run when the process's JAX precision is not the declared one.

    x64 is process-global and set only from the environment (JAX_ENABLE_X64); flipping it at
    run time would silently change every array, so a mismatch is an error, not a fix-up.
    """
    actual = process_dtype()
    if actual != declared:
        flag = "1" if declared == "float64" else "0"
        raise PrecisionError(
            f"{who} declares dtype {declared} but this process runs JAX in {actual}: "
            f"start it with JAX_ENABLE_X64={flag}"
        )


def run_status(estimate, warnings) -> str:
    """`failed` when most chains diverged: the few left describe the step size's edge, not
    the posterior, so the number is kept but not to be trusted; `warning` when any check
    failed; else `ok`. (When every chain diverges there is no number: the job fails.)"""
    if estimate.chains_failed * 2 > estimate.chains_total:
        return "failed"
    return "warning" if warnings else "ok"


def grid_point(target_point: dict | None, sampler_point: dict | None) -> dict | None:
    """The run's grid values, keyed `target.<key>` and `sampler.<key>`."""
    values = {**{f"target.{key}": value for key, value in (target_point or {}).items()},
              **{f"sampler.{key}": value for key, value in (sampler_point or {}).items()}}
    return values or None


def sample_run(experiment, sampler_name: str, target) -> tuple[RunSummary, dict]:
    """(summary, traces) for one sampler of an experiment on one loaded target."""
    settings = experiment.sampler(sampler_name)
    where = f"{experiment.source}: samplers.{sampler_name}"
    observe = (None if settings.observe is None
               else first_points(target, settings.observe, f"{where}.observe"))
    return run_sampler(settings, target, experiment=experiment.name,
                       sampler_name=sampler_name, where=where, observe=observe)


def first_points(target, count: int | str, where: str) -> dict:
    """The first `count` training points of a built target ({X, Y, mask}; `"data"`: all),
    what a sampler's `observe:` records."""
    from .errors import ConfigError

    n = len(target.arrays["X"])
    if count == "data":
        count = n
    if count > n:
        raise ConfigError([f"{where}: {count} points asked but target "
                           f"{target.record['name']!r} has n = {n}"])
    mask = getattr(target.likelihood, "mask", None)
    return {"X": target.arrays["X"][:count], "Y": target.arrays["Y"][:count],
            "mask": None if mask is None else np.asarray(mask, bool)[:count]}


def run_sampler(settings, target, *, experiment: str, sampler_name: str, where: str,
                observe: dict | None = None) -> tuple[RunSummary, dict]:
    """(summary, traces) of a sampler's typed settings on a target: what a sample job and
    `lambda_hat.estimate` both run. `target` has `record`, `arrays`, `likelihood` and
    `size_key` (`lambda_hat.targets.Target`); `observe` ({X, Y, mask}) adds each trace
    point's per-sample (per-token) losses on those points, `observed` in the traces
    (`lambda_hat.observables`)."""
    from .posterior import make_posterior

    module = REGISTRY[settings.kind]
    check_precision(settings.dtype, f"{where}: sampler {sampler_name!r} (kind {settings.kind})")
    started = time.perf_counter()
    posterior, data, loss_star, restricted_to = make_posterior(
        target, settings.beta, settings.gamma, settings.dtype, settings.restrict,
        f"{where}.restrict")
    observing = None
    if observe is not None:
        # a partial, not the bound method: bound methods compare their posterior by
        # identity, so each call's program would be compiled anew
        observing = partial(type(posterior).observation, posterior)
        points = posterior.likelihood.prepare_points(observe, data["w_star"].dtype)
        data = {**data, "observe": points}
    loss_star = float(loss_star)
    output, stats, remediation, spent = _sample_remedied(module, settings, posterior, data,
                                                         observing, loss_star)
    estimate, step_bias = _estimate(module, output, loss_star, posterior.nbeta)
    if estimate.llc_mean is None:
        raise SamplingFailed(
            f"sampler {sampler_name!r}: all {estimate.chains_total} chains produced NaN/Inf "
            f"on target {target.record['name']!r}; {module.FAILURE_HINT}")
    kept = output.loss[:, output.burn_in:]
    below = float(np.mean(kept < loss_star)) if kept.size else None
    optimum = check_optimum(posterior, data, estimate.llc_mean)
    warnings = (run_warnings(estimate, module.MARKOV_CHAIN, below)
                + module.warnings(stats)
                + optimum_warnings(optimum, estimate.llc_mean, posterior.nbeta,
                                   posterior.gamma, target.size_key, estimate.llc_mcse)
                + ([] if step_bias is None else step_bias_warnings(step_bias, estimate.llc_mean,
                                                                    estimate.llc_mcse)))
    # The target's exact λ is the whole network's, not a restricted part's.
    exact = restricted_to is None
    true_llc = target.record["true_llc"] if exact else None
    ess = estimate.ess
    summary = RunSummary(
        **vars(estimate),
        experiment=experiment,
        target=target.record["name"],
        sampler=sampler_name,
        kind=settings.kind,
        markov_chain=module.MARKOV_CHAIN,
        loss_trace=module.LOSS_TRACE,
        trace_every=settings.trace_every,
        settings=_recorded(settings),
        seed=settings.seed,
        dtype=str(output.loss.dtype),
        n=posterior.n,
        d=posterior.d,
        beta=posterior.beta,
        gamma=posterior.gamma,
        nbeta=posterior.nbeta,
        loss_star=loss_star,
        true_llc=true_llc,
        multiplicity=target.record.get("multiplicity") if exact else None,
        checkpoint=target.record.get("checkpoint"),
        checkpoint_of=target.record.get("checkpoint_of"),
        training_step=target.record.get("training_step"),
        restricted_to=None if restricted_to is None else tuple(restricted_to),
        grid_of=target.record["config"].get("grid_of"),
        grid_point=grid_point(target.record["config"].get("grid_point"), settings.grid_point),
        target_hash=target.record["hash"],
        rel_error=(estimate.llc_mean - true_llc) / true_llc if true_llc else None,
        fraction_below_loss_star=below,
        grad_evals=spent["grad_evals"],
        compile_seconds=spent["compile_seconds"],
        sample_seconds=spent["sample_seconds"],
        wall_seconds=time.perf_counter() - started,
        ess_per_second=(ess / spent["sample_seconds"] if ess and spent["sample_seconds"]
                        else None),
        ess_per_grad_eval=ess / spent["grad_evals"] if ess and spent["grad_evals"] else None,
        stats=stats,
        optimum=optimum.to_dict(),
        stopping=None if output.stopping is None else dataclasses.asdict(output.stopping),
        warnings=tuple(warnings),
        status=run_status(estimate, warnings),
        remediation=tuple(remediation),
        versions=package_versions(),
        **({} if step_bias is None else vars(step_bias)),
    )
    traces = {"loss": output.loss, "grad_evals_at": output.grad_evals_at,
              "burn_in": np.asarray(output.burn_in), "loss_star": np.asarray(loss_star),
              **output.traces,
              **{f"warmup_{name}": value for name, value in output.warmup._asdict().items()}}
    if observing is not None:
        import jax

        observed = traces.pop("observed")
        at_star = jax.jit(observing)(data["w_star"], data)
        traces.update({"observed_losses": observed["losses"], "observed_L_n": observed["loss"],
                       "observed_losses_at_w_star": np.asarray(at_star["losses"])})
        if observe.get("mask") is not None:
            traces["observed_mask"] = np.asarray(observe["mask"], bool)
    return summary, traces


def _estimate(module, output, loss_star: float, nbeta: float):
    """(estimate, step bias): the chains' estimate, or, when they ran with half-step twins
    (`half_step_loss` in the trace), the extrapolated one and the bias it removed."""
    half = output.traces.get("half_step_loss")
    if half is None:
        return estimate_llc(output.loss, output.burn_in, loss_star, nbeta,
                            markov_chain=module.MARKOV_CHAIN), None
    return extrapolate(output.loss, half, output.burn_in, loss_star, nbeta)


COSTS = ("grad_evals", "compile_seconds", "sample_seconds")


def _sample_remedied(module, settings, posterior, data, observing, loss_star: float):
    """(output, stats, remediation, spent): sample; while the module's `remedy` names
    settings that fix what the statistics show, sample again with them. The last run's
    draws are kept; `remediation` records every run when there was more than one, `spent`
    the cost of all of them."""
    from .samplers.driver import run

    runs = []
    while True:
        output = run(module, settings, posterior, data, observing)
        stats = module.summarize(settings, output)
        runs.append((settings, output, stats))
        diagnosed, settings = module.warnings(stats), module.remedy(settings, stats)
        if settings is None:
            break
        log.info("%s; sampling again with %s", "; ".join(diagnosed),
                 ", ".join(f"{key} = {value}"
                           for key, value in _changed(runs[-1][0], settings).items()))
    spent = {cost: sum(getattr(output, cost) for _, output, _ in runs) for cost in COSTS}
    if len(runs) == 1:
        return output, stats, [], spent
    changed = set()
    for used, _, _ in runs[1:]:
        changed |= set(_changed(runs[0][0], used))
    remediation = []
    for number, (used, output, stats) in enumerate(runs):
        estimate = estimate_llc(output.loss, output.burn_in, loss_star, posterior.nbeta,
                                markov_chain=module.MARKOV_CHAIN)
        recorded = as_dict(used)
        remediation.append({
            "settings": {key: recorded[key] for key in sorted(changed)},
            "llc_mean": estimate.llc_mean, "llc_mcse": estimate.llc_mcse,
            "warnings": module.warnings(stats), "kept": number == len(runs) - 1,
            **{cost: getattr(output, cost) for cost in COSTS}})
    return output, stats, remediation, spent


def _changed(before, after) -> dict:
    """The settings `after` sets differently from `before`, with their new values."""
    earlier = as_dict(before)
    return {key: value for key, value in as_dict(after).items() if earlier[key] != value}


def _recorded(settings) -> dict:
    """The settings as the summary records them: a mask function of `restrict` by its name
    (`mask:<name>`), so the record stays JSON."""
    recorded = as_dict(settings)
    if recorded.get("restrict"):
        recorded["restrict"] = [f"mask:{getattr(entry, '__name__', repr(entry))}"
                                if callable(entry) else entry for entry in recorded["restrict"]]
    return recorded
