"""Run sampler checks in a fresh interpreter with the precision they declare.

JAX's x64 flag is process-global, so a test process cannot run float64 and float32 samplers
side by side. `run_isolated` calls one function of this module in a new interpreter with
JAX_ENABLE_X64 set for the requested precision and returns its JSON-able result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SUMMARY_KEYS = ("kind", "dtype", "llc_mean", "llc_std", "llc_mcse", "true_llc", "rel_error",
                "ess", "r_hat", "chains_total", "chains_failed", "grad_evals",
                "ess_per_grad_eval", "compile_seconds", "sample_seconds", "wall_seconds",
                "warnings", "stats", "nbeta", "n", "d", "optimum", "bias_correction",
                "llc_uncorrected", "llc_uncorrected_mcse", "step_bias", "step_bias_mcse")


def settings_for(kind: str, **overrides):
    from lambda_hat.samplers import REGISTRY
    from lambda_hat.settings import make

    return make(REGISTRY[kind].Settings, {"kind": kind, **overrides})


def run_on_potential(posterior, kind: str, **overrides) -> dict:
    """Run one sampler kind on an analytic posterior; estimate with the package estimator."""
    from dataclasses import asdict

    from lambda_hat.estimator import estimate_llc
    from lambda_hat.samplers import REGISTRY
    from lambda_hat.samplers.driver import run

    module = REGISTRY[kind]
    settings = settings_for(kind, **overrides)
    dtype = np.float64 if settings.dtype == "float64" else np.float32
    output = run(module, settings, posterior, posterior.data(dtype))
    estimate = estimate_llc(output.loss, output.burn_in, 0.0, posterior.nbeta,
                            markov_chain=module.MARKOV_CHAIN)
    return {**asdict(estimate), "exact": posterior.exact_llc,
            "stats": module.summarize(settings, output), "dtype": str(output.loss.dtype),
            "sample_seconds": output.sample_seconds}


def run_kinds_on_potential(spec: dict, runs: list[dict]) -> list[dict]:
    """`run_on_potential` for several {kind, **overrides} in one process (one JAX import)."""
    from potentials import potential_from_spec

    posterior = potential_from_spec(spec)
    return [run_on_potential(posterior, **run) for run in runs]


def build_targets(out_dir: str, targets: dict) -> dict:
    """Build targets {name: target entry} under out_dir (run this in float64)."""
    from lambda_hat.config import Experiment
    from lambda_hat.targets import build_target, save_target

    records = {}
    for name, entry in targets.items():
        raw = {"targets": {name: entry}, "samplers": {"any": {"kind": "hmc"}}}
        experiment = Experiment(raw, f"<test target {name}>")
        record, arrays = build_target(name, experiment.target(name), "test")
        save_target(Path(out_dir) / name, record, arrays)
        records[name] = {key: record[key] for key in ("true_llc", "multiplicity", "d", "n")}
    return records


def build_dln_targets(out_dir: str, targets: dict) -> dict:
    """Build DLN targets {name: {widths, rank, n, seed}} under out_dir (run this in float64)."""
    return build_targets(out_dir, {
        name: {"model": {"kind": "dln", "widths": spec["widths"], "rank": spec["rank"]},
               "data": {"n": spec["n"]}, "seed": spec.get("seed", 0)}
        for name, spec in targets.items()})


def run_kinds_on_target(target_dir: str, runs: list[dict], posterior: dict | None = None) -> list:
    """The runner's summary (selected keys) for each {kind, **overrides} on a built target."""
    from lambda_hat.config import Experiment
    from lambda_hat.errors import SamplingFailed
    from lambda_hat.runner import sample_run
    from lambda_hat.targets import load_target

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
        record = summary.to_dict()
        results.append({key: record[key] for key in SUMMARY_KEYS})
    return results


def geometry_warnings(config_path: str) -> dict:
    """{target: the geometry warnings its runs would get} for every target of an experiment
    file (run this in float64): built here, checked at w* (`optimum.check_optimum`) with
    λ̂ taken as the exact λ where known, else the quadratic model's: ½ per curved direction
    less the localizer's share, Σ nβh/(2(nβh + γ))."""
    from lambda_hat.config import Experiment
    from lambda_hat.optimum import check_optimum, optimum_warnings
    from lambda_hat.posterior import make_posterior
    from lambda_hat.targets import REGISTRY, Target, build_target

    experiment = Experiment.load(config_path)
    settings = experiment.sampler(experiment.sampler_names[0])
    found = {}
    for name in experiment.target_names:
        record, arrays = build_target(name, experiment.target(name), experiment.name)
        target = Target(record, arrays)
        posterior, data, _, _ = make_posterior(target, settings.beta, settings.gamma,
                                               "float64", None, name)
        llc = record["true_llc"]
        if llc is None:
            shape = check_optimum(posterior, data)
            curved = record["d"] - shape.flat_directions - shape.negative_directions
            llc = 0.5 * curved - shape.localizer_suppression
        optimum = check_optimum(posterior, data, llc)
        found[name] = optimum_warnings(optimum, llc, float(posterior.nbeta),
                                       float(posterior.gamma), REGISTRY[target.kind].SIZE_KEY)
    return found


def api_and_pipeline(out_dir: str, sampler: dict, entry: str, options: dict,
                     from_stored: bool) -> dict:
    """λ̂ of one sampler entry on the python target `entry` through the pipeline's runner
    (the target built in a float64 process beforehand, under out_dir/t) and through
    `lambda_hat.estimate` on the same function, params and data: the function's own
    (`from_stored` False) or the stored target's arrays (a float32 process makes other
    random numbers than the float64 build did)."""
    import importlib.util

    import lambda_hat
    from lambda_hat.config import Experiment
    from lambda_hat.runner import sample_run
    from lambda_hat.targets import load_target

    target_entry = {"model": {"kind": "python", "entry": entry, "options": options}}
    raw = {"targets": {"t": target_entry}, "samplers": {"s": sampler}}
    target = load_target(Path(out_dir) / "t")
    summary, traces = sample_run(Experiment(raw, "<test>"), "s", target)
    spec = importlib.util.spec_from_file_location("user_model", entry.rpartition(":")[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = getattr(module, entry.rpartition(":")[2])(seed=0, **options)
    params, data = made["params"], (made["x"], made["y"])
    if from_stored:
        params = target.likelihood.function.layout.unflatten(target.arrays["w_star"])
        data = (target.arrays["X"], target.arrays["Y"])
    settings = {key: value for key, value in sampler.items() if key not in ("kind", "observe")}
    observe = list(range(sampler["observe"])) if "observe" in sampler else None
    result = lambda_hat.estimate(made["apply"], params, data, loss=made["loss"],
                                 sampler=sampler["kind"], observe=observe, **settings)
    found = {"pipeline": summary.llc_mean, "api": result.llc,
             "same_trace": bool(np.array_equal(traces["loss"], result.traces["loss"])),
             "dtype": result.summary.dtype}
    if observe is not None:
        from lambda_hat.artifacts import write_npz
        from lambda_hat.observables import Observables
        from lambda_hat.summary import write_summary

        run_dir = Path(out_dir) / f"run-{result.summary.dtype}"
        run_dir.mkdir()
        write_npz(run_dir / "trace.npz", traces)
        write_summary(run_dir / "summary.json", summary)
        stored = Observables.from_run(run_dir)
        found["observed_shape"] = list(stored.losses.shape)
        found["same_observed"] = bool(
            np.array_equal(traces["observed_losses"], result.traces["observed_losses"])
            and np.array_equal(stored.per_sample_llc().value,
                               result.observables.per_sample_llc().value))
    return found


def observables_on_linear_regression(seeds: list, points: int) -> list:
    """Per seed: HMC's per-sample λ̂ᵢ, BIF and susceptibility on the first `points` points
    of a least-squares regression (run this in float64), with their MCSE and the exact
    values. L_n is exactly quadratic around the least-squares w*, so the localized posterior
    is N(w*, Σ), Σ = (nβH + γI)⁻¹, H = 2XᵀX/n, and with rᵢ = yᵢ − xᵢᵀw*, Sᵢⱼ = xᵢᵀΣxⱼ:
    E[ℓᵢ] − ℓᵢ(w*) = Sᵢᵢ, Cov(ℓᵢ, ℓⱼ) = 4rᵢrⱼSᵢⱼ + 2Sᵢⱼ² (Gaussian moments) and
    Cov(L_n, ℓᵢ − L_n) = xᵢᵀΣHΣxᵢ − ½ tr((HΣ)²)."""
    import lambda_hat

    results = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n, d = 400, 3
        X = rng.normal(size=(n, d))
        Y = X @ rng.normal(size=(d, 1)) + 0.5 * rng.normal(size=(n, 1))
        fit = np.linalg.lstsq(X, Y, rcond=None)[0]
        result = lambda_hat.estimate(lambda params, x: x @ params["w"], {"w": fit}, (X, Y),
                                     sampler="hmc", chains=8, warmup=300, draws=2000,
                                     seed=seed, observe=list(range(points)))
        nbeta, gamma = result.summary.nbeta, result.summary.gamma
        H = 2 * X.T @ X / n
        sigma = np.linalg.inv(nbeta * H + gamma * np.eye(d))
        x, r = X[:points], (Y - X @ fit)[:points, 0]
        S = x @ sigma @ x.T
        HS = H @ sigma
        exact = {"per_sample_llc": nbeta * np.diag(S),
                 "bif": -(4 * np.outer(r, r) * S + 2 * S * S),
                 "susceptibility": -nbeta * (np.einsum("id,de,ei->i", x, sigma @ HS, x.T)
                                             - 0.5 * np.trace(HS @ HS))}
        observables = result.observables
        found = {name: getattr(observables, name)() for name in exact}
        results.append({name: {"value": found[name].value, "mcse": found[name].mcse,
                               "exact": exact[name]} for name in exact})
    return results


def _toy_sequence_model():
    """(apply, params, x, y, mask): token embeddings read out to logits [n, seq, vocab],
    random labels, a mask keeping the last two of four tokens."""
    rng = np.random.default_rng(0)
    n, seq, vocab, width = 64, 4, 5, 3
    x = rng.integers(0, vocab, size=(n, seq))
    y = rng.integers(0, vocab, size=(n, seq))
    mask = np.zeros((n, seq), bool)
    mask[:, 2:] = True
    params = {"embed": rng.normal(size=(vocab, width)), "out": rng.normal(size=(width, vocab))}

    def apply(params, tokens):
        return params["embed"][tokens] @ params["out"]

    return apply, params, x, y, mask


def samplers_on_a_sequence_model(runs: dict) -> dict:
    """λ̂ of the toy sequence model by each sampler kind of `runs` ({kind: settings}), with
    the first four sequences observed where the kind is a Markov chain: per kind, the
    estimate, the number of non-finite loss values and the observed losses' shape."""
    import lambda_hat
    from lambda_hat.samplers import REGISTRY

    apply, params, x, y, mask = _toy_sequence_model()
    found = {}
    for kind, settings in runs.items():
        observe = [0, 1, 2, 3] if REGISTRY[kind].MARKOV_CHAIN else None
        result = lambda_hat.estimate(apply, params, (x, y, mask), loss="cross_entropy",
                                     sampler=kind, observe=observe, seed=1, **settings)
        found[kind] = {"llc": result.llc, "nonfinite": int(np.sum(~np.isfinite(
                           result.traces["loss"]))),
                       "observed": None if observe is None
                       else list(result.observables.losses.shape[2:])}
    return found


def sequence_model_run() -> dict:
    """A toy sequence model (logits [n, seq, vocab], labels [n, seq], a mask keeping the last
    two tokens) through `lambda_hat.estimate` with observed points, twice: at w* and at a
    second point of the same shapes (a later checkpoint). Reports L_n against NumPy, the
    observables' shapes, and how many programs each call compiled."""
    import jax

    import lambda_hat
    from lambda_hat import programs
    from lambda_hat.functional import FunctionLikelihood, Layout

    apply, params, x, y, mask = _toy_sequence_model()
    logits = params["embed"][x] @ params["out"]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    tokens = -np.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]
    expected = float(((tokens * mask).sum(axis=1) / mask.sum(axis=1)).mean())
    layout = Layout.of(params)
    likelihood = FunctionLikelihood(apply, "cross_entropy", layout)
    data = likelihood.prepare({"X": x, "Y": y, "mask": mask,
                               "w_star": layout.flatten(params, np.float32)}, np.float32)
    found = float(jax.jit(likelihood.loss)(data["w_star"], data))

    compiled = []
    original = programs._compile_program

    def counting(fn, args, cache_dir):
        compiled.append(getattr(fn, "func", fn).__name__)
        return original(fn, args, cache_dir)

    programs._compile_program = counting
    counts, results = [], []
    for scale in (1.0, 1.1):
        before = len(compiled)
        moved = jax.tree.map(lambda leaf: leaf * scale, params)
        results.append(lambda_hat.estimate(apply, moved, (x, y, mask), loss="cross_entropy",
                                           sampler="sgld", steps=400, observe=[0, 1, 2]))
        counts.append(len(compiled) - before)
    observables = results[0].observables
    per_token = observables.per_token_llc().value
    return {"loss": found, "expected": expected, "compiled": counts,
            "llc": [result.llc for result in results],
            "losses_shape": list(observables.losses.shape),
            "per_token_finite": np.isfinite(per_token).tolist(),
            "per_sample": observables.per_sample_llc().value,
            "per_token_mean": np.nanmean(per_token, axis=1)}


def funnel_runs(kinds: list, seeds: list) -> list:
    """Default runs of each sampler kind on examples/funnel.py (run this in float64), with
    the quadrature reference at the same n, β and γ."""
    import importlib.util

    import lambda_hat

    path = Path(__file__).parents[1] / "examples" / "funnel.py"
    spec = importlib.util.spec_from_file_location("funnel", path)
    funnel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(funnel)
    made = funnel.make_target()
    runs = []
    for kind in kinds:
        for seed in seeds:
            result = lambda_hat.estimate(made["apply"], made["params"], (made["x"], made["y"]),
                                         sampler=kind, seed=seed)
            summary = result.summary
            runs.append({"kind": kind, "seed": seed, "llc": summary.llc_mean,
                         "mcse": summary.llc_mcse, "warnings": list(summary.warnings),
                         "remediation": list(summary.remediation),
                         "grad_evals": summary.grad_evals,
                         "reference": funnel.finite_n_reference(made["x"], made["y"],
                                                                summary.nbeta, summary.gamma)})
    return runs


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
    """Call `function` (a name in this module) in a fresh interpreter running JAX in
    `dtype`; its JSON result is returned here. Exceptions in the child re-raise here as
    RuntimeError with the child's stderr tail."""
    env = {**os.environ, **(env or {}), "JAX_ENABLE_X64": "1" if dtype == "float64" else "0",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    request = json.dumps({"function": function, "kwargs": kwargs})
    completed = subprocess.run([sys.executable, __file__], input=request, env=env,
                               capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"{function} failed in a {dtype} subprocess:\n"
                           + completed.stderr[-4000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    result = globals()[request["function"]](**request["kwargs"])
    print(json.dumps(_jsonable(result)))
