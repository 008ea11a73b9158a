"""Per-step cost of a user's own model (`kind: python`) through lambda-hat's sampler driver,
against a hand-written jitted SGLD step of the same model: the digits example
(examples/digits.py: scikit-learn's 8×8 digits, 1797 × 64, a 64→16→10 tanh MLP,
cross-entropy), float32.

    python bench/python_target.py              # ~1.5-2 minutes on 2 cores; prints tables
    python bench/python_target.py --json       # and the numbers as JSON on the last line

Through lambda-hat: the target is built as the workflow builds it (config/digits.yaml without
its checkpoints → `Experiment` → `build_target` → `Target`) and SGLD runs through
`runner.sample_run` at the sgld defaults but `steps` (batch 256, 4 chains, `step_size: auto`,
`eval_every: auto` = 50); its summary's `sample_seconds` (compile excluded; the driver's start
program, i.e. the `step_size: auto` power iteration, then the draw chunks) over steps × chains
is the cost per step per chain. The start program is also timed alone, and the driver is run
with `eval_every = steps` (one trace point: one MALA probe instead of one per 50 steps, one
chunk instead of ten).

By hand: `jit(vmap over chains of lax.scan over steps)` of one minibatch value-and-grad of
the same loss on the model's own parameter pytree, the localizer's gradient and one Gaussian
draw per leaf, at the same ε, β, γ, batch size and chain count, keeping every step's
minibatch loss (what λ̂ needs); and the same on one flat parameter vector unravelled inside
the loss with one Gaussian draw, as lambda-hat does. Timed after a warm-up call, with
block_until_ready.

Unless `--no-hmc`: HMC's cost per full-data gradient through `sample_run` (float32, warmup
50, draws 100), its start program (the window adaptation) alone, against a hand-jitted scan
of full-data value-and-grads (4 chains by vmap, and one chain).

The measures run round-robin, `--repeats` rounds (default 3); the tables give each one's
median and the median over rounds of its ratio to the same round's hand value (the machine is
shared: paired ratios are robust to load changing between rounds). Like bench/kernels.py this
runs in one process with every core JAX finds (`--threads N` narrows it, as
`lambda-hat --threads`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("JAX_ENABLE_X64", "0").lower() not in ("0", "false", ""):
    # SGLD is float32: JAX's precision is per process, so run again without x64.
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "JAX_ENABLE_X64": "0"})


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000,
                        help="SGLD steps per chain (the sgld default is 40000; eval_every "
                             "auto is 50 from 5000 steps on)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-hmc", action="store_true", help="skip the full-batch comparison")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads XLA may use (default: all)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    return parser.parse_args()


def experiment_dict(args) -> dict:
    import yaml

    raw = yaml.safe_load((REPO / "config" / "digits.yaml").read_text())
    raw["experiment"] = "bench"
    for target in raw["targets"].values():
        target.pop("checkpoints", None)
        target["dtype"] = "float32"
    common = {"chains": args.chains, "seed": 0}
    raw["samplers"] = {
        "sgld": {"kind": "sgld", "steps": args.steps, "batch_size": args.batch_size,
                 **common},
        "hmc": {"kind": "hmc", "dtype": "float32", "warmup": 50, "draws": 100, **common},
    }
    return raw


def hand_sgld(target, settings, posterior, step_size: float, flat: bool):
    """A jitted `run(keys) -> losses (chains × steps)`: SGLD by hand on the digits MLP."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    made = target.likelihood.made
    apply = made["apply"]
    dtype = jnp.float32
    X = jnp.asarray(target.arrays["X"], dtype)
    Y = jnp.asarray(target.arrays["Y"], jnp.int32)
    n, batch, steps = X.shape[0], settings.batch_size, settings.trace_points * settings.trace_every
    nbeta, gamma = posterior.nbeta, posterior.gamma
    eps = jnp.asarray(step_size, dtype)
    w_flat = jnp.asarray(target.arrays["w_star"], dtype)
    unravel = ravel_pytree(made["init_params"])[1]
    w_star = w_flat if flat else jax.tree.map(lambda leaf: leaf.astype(dtype), unravel(w_flat))

    def loss(params, x, y):
        logits = apply(unravel(params) if flat else params, x)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(log_probs, y[:, None], axis=-1).mean()

    leaves, structure = jax.tree.flatten(w_star)

    def step(w, key):
        batch_key, noise_key = jax.random.split(key)
        index = jax.random.randint(batch_key, (batch,), 0, n)
        value, grad = jax.value_and_grad(loss)(w, X[index], Y[index])
        noise = jax.tree.unflatten(structure, [
            jax.random.normal(k, leaf.shape, dtype)
            for k, leaf in zip(jax.random.split(noise_key, len(leaves)), leaves)])
        w = jax.tree.map(lambda w, g, w0, z: w - 0.5 * eps * (nbeta * g + gamma * (w - w0))
                         + jnp.sqrt(eps) * z, w, grad, w_star, noise)
        return w, value

    def chain(key):
        return jax.lax.scan(step, w_star, jax.random.split(key, steps))[1]

    run = jax.jit(jax.vmap(chain))
    keys = jax.random.split(jax.random.key(1), settings.chains)
    return lambda: run(keys), steps


def hand_full_gradients(target, posterior, chains: int, count: int):
    """A jitted scan of `count` full-data value-and-grads per chain (chains by vmap; one
    chain without vmap), each moving w a little so none can be hoisted: the floor under a
    full-batch sampler."""
    import jax
    import jax.numpy as jnp

    made = target.likelihood.made
    apply = made["apply"]
    X = jnp.asarray(target.arrays["X"], jnp.float32)
    Y = jnp.asarray(target.arrays["Y"], jnp.int32)
    from jax.flatten_util import ravel_pytree

    unravel = ravel_pytree(made["init_params"])[1]
    w0 = unravel(jnp.asarray(target.arrays["w_star"], jnp.float32))
    nbeta = posterior.nbeta

    def potential(w):
        log_probs = jax.nn.log_softmax(apply(w, X), axis=-1)
        return -nbeta * jnp.take_along_axis(log_probs, Y[:, None], axis=-1).mean()

    def chain(scale):
        def body(w, _):
            value, grad = jax.value_and_grad(potential)(w)
            return jax.tree.map(lambda w, g: w + 1e-7 * scale * g, w, grad), value
        return jax.lax.scan(body, w0, None, length=count)[1]

    if chains == 1:
        run = jax.jit(chain)
        return lambda: run(jnp.float32(1.0))
    run = jax.jit(jax.vmap(chain))
    scales = jnp.linspace(0.5, 1.5, chains, dtype=jnp.float32)
    return lambda: run(scales)


def note(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


STARTED = time.perf_counter()


def timed(fn) -> float:
    import jax

    started = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    os.chdir(REPO)  # the target's entry path is relative to the working directory
    sys.path.insert(0, str(REPO))
    if args.threads is not None:
        from lambda_hat.threads import limit_xla_threads

        limit_xla_threads(args.threads)
    import jax

    from lambda_hat.config import Experiment
    from lambda_hat.posterior import make_posterior
    from lambda_hat.runner import sample_run
    from lambda_hat.samplers import REGISTRY
    from lambda_hat.samplers.driver import _compiled as compile_start
    from lambda_hat.samplers.driver import _start as start_program
    from lambda_hat.samplers.driver import chain_keys
    from lambda_hat.samplers.driver import run as driver_run
    from lambda_hat.targets import Target, build_target

    assert not jax.config.jax_enable_x64
    experiment = Experiment(experiment_dict(args), "bench")
    name = experiment.declared_targets[0]
    record, arrays = build_target(name, experiment.target(name), experiment.name)
    target = Target(record, arrays)
    note(f"target built ({record['build_seconds']:.1f} s)")
    settings = experiment.sampler("sgld")
    steps = settings.trace_points * settings.trace_every  # what the driver runs per chain
    per_step = steps * settings.chains
    result = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cores": os.cpu_count(),
              "threads": args.threads, "n": record["n"], "d": record["d"], "steps": steps,
              "chains": settings.chains, "batch_size": settings.batch_size,
              "eval_every": settings.trace_every, "trace_points": settings.trace_points}

    # Every measure below is a callable returning seconds; they run round-robin, `repeats`
    # rounds, so a change in the machine's load falls on all of them alike.
    summaries, hmc_summaries = [], []

    def through_runner(sampler="sgld", into=summaries):
        summary, _ = sample_run(experiment, sampler, target)  # compiles anew; excluded
        into.append(summary)
        return summary.sample_seconds

    # make_posterior's first two values (later versions return more)
    posterior, data = make_posterior(target, settings.beta, settings.gamma, "float32")[:2]
    module = REGISTRY["sgld"]
    # The driver's start program alone (setup: the power iteration of `step_size: auto`;
    # no warmup for SGLD), which also gives the ε auto chooses for the variants and the hand.
    keys = chain_keys(settings.seed, settings.chains)
    start = compile_start(partial(start_program, module, settings, posterior), data, keys)
    setup = jax.block_until_ready(start(data, keys))[0]
    step_size = float(setup.step_size)
    note(f"start program compiled; step size {step_size:.3g}")
    variants = {  # the driver with the per-trace-point work taken away
        "one_probe": dataclasses.replace(settings, eval_every=steps),
    }
    measures = {"runner": through_runner, "start": lambda: timed(lambda: start(data, keys))}
    for label, variant in variants.items():
        measures[label] = (lambda variant=variant:
                           driver_run(module, variant, posterior, data).sample_seconds)
    finals = {}
    for label, flat in (("hand", False), ("hand_flat", True)):
        fn, hand_steps = hand_sgld(target, settings, posterior, step_size, flat)
        assert hand_steps == steps
        losses = jax.block_until_ready(fn())  # compile + warm up
        finals[label] = float(losses[:, steps // 2:].mean())
        measures[label] = lambda fn=fn: timed(fn)
    if not args.no_hmc:
        hmc = experiment.sampler("hmc")
        count = 1000
        full = hand_full_gradients(target, posterior, hmc.chains, count)
        single = hand_full_gradients(target, posterior, 1, count)
        jax.block_until_ready((full(), single()))
        # HMC's start program alone: the per-chain window adaptation (chains by lax.map).
        hmc_posterior = make_posterior(target, hmc.beta, hmc.gamma, "float32")[0]
        hmc_start = compile_start(partial(start_program, REGISTRY["hmc"], hmc, hmc_posterior),
                                  data, keys)
        jax.block_until_ready(hmc_start(data, keys))
        measures["hmc"] = lambda: through_runner("hmc", hmc_summaries)
        measures["hmc_start"] = lambda: timed(lambda: hmc_start(data, keys))
        measures["hand_full"] = lambda: timed(full)
        measures["hand_full_1"] = lambda: timed(single)
    note("compiled; timing " + ", ".join(measures))

    times = {label: [] for label in measures}
    for round_ in range(args.repeats):
        for label, measure in measures.items():
            times[label].append(measure())
        note(f"round {round_ + 1}: " + ", ".join(f"{label} {values[-1]:.3f} s"
                                                 for label, values in times.items()))

    for label in ("runner", *variants, "hand", "hand_flat"):
        seconds = statistics.median(times[label])
        result[label] = {"seconds": seconds, "runs": times[label],
                         "per_step": seconds / per_step}
    result["start"] = {"seconds": statistics.median(times["start"]), "runs": times["start"]}
    last = summaries[-1]
    assert abs(last.stats["step_size"] - step_size) <= 1e-6 * step_size
    result["runner"].update({
        "compile_seconds": statistics.median(s.compile_seconds for s in summaries),
        "grad_evals": last.grad_evals, "step_size": step_size, "llc": last.llc_mean,
        "mala_acceptance": last.stats["mala_acceptance_mean"], "status": last.status,
        "warnings": list(last.warnings),
        "loss_star": last.loss_star, "nbeta": last.nbeta})
    for label in ("hand", "hand_flat"):  # λ̂ from the hand chains' minibatch losses
        result[label]["llc"] = last.nbeta * (finals[label] - last.loss_star)
    if not args.no_hmc:
        seconds = statistics.median(times["hmc"])
        grads = hmc_summaries[-1].grad_evals  # full-data gradients, all chains
        hand_seconds = statistics.median(times["hand_full"])
        warmup_seconds = statistics.median(times["hmc_start"])
        warmup_grads = hmc.warmup * hmc.num_integration_steps * hmc.chains
        single_seconds = statistics.median(times["hand_full_1"])
        result["hmc"] = {
            "warmup": hmc.warmup, "draws": hmc.draws, "leapfrog": hmc.num_integration_steps,
            "grad_evals": grads, "seconds": seconds, "runs": times["hmc"],
            "per_gradient": seconds / grads,
            "warmup_seconds": warmup_seconds, "warmup_runs": times["hmc_start"],
            "warmup_grad_evals": warmup_grads,
            "warmup_per_gradient": warmup_seconds / warmup_grads,
            "draws_per_gradient": (seconds - warmup_seconds) / (grads - warmup_grads),
            "hand_single_seconds": single_seconds, "hand_single_runs": times["hand_full_1"],
            "hand_single_per_gradient": single_seconds / count,
            "compile_seconds": statistics.median(s.compile_seconds for s in hmc_summaries),
            "acceptance": hmc_summaries[-1].stats["acceptance_mean"],
            "hand_gradients": count * hmc.chains, "hand_seconds": hand_seconds,
            "hand_runs": times["hand_full"],
            "hand_per_gradient": hand_seconds / (count * hmc.chains)}
    result["load_average"] = os.getloadavg()
    # Paired ratios: each round's value over the same round's hand value, then the median,
    # which a load change between rounds does not skew as a ratio of medians can.
    def paired(label, reference, scale=1.0):
        return statistics.median(scale * a / b for a, b in zip(times[label], times[reference]))

    for label in ("runner", *variants, "hand_flat"):
        result[label]["ratio"] = paired(label, "hand")
        result[label]["ratio_flat"] = paired(label, "hand_flat")
    result["hand"]["ratio_flat"] = paired("hand", "hand_flat")
    result["hand"]["ratio"] = 1.0
    if not args.no_hmc:
        h = result["hmc"]
        # per gradient: seconds / gradients on each side
        h["ratio"] = paired("hmc", "hand_full", h["hand_gradients"] / h["grad_evals"])
        h["warmup_ratio"] = paired("hmc_start", "hand_full",
                                   h["hand_gradients"] / h["warmup_grad_evals"])
        h["draws_ratio"] = statistics.median(
            (a - b) / (h["grad_evals"] - h["warmup_grad_evals"]) / (c / h["hand_gradients"])
            for a, b, c in zip(times["hmc"], times["hmc_start"], times["hand_full"]))
        h["hand_single_ratio"] = paired("hand_full_1", "hand_full",
                                        h["hand_gradients"] / count)

    print(table(result))
    if args.json:
        print(json.dumps(result))


def table(r: dict) -> str:
    us = lambda seconds: f"{seconds * 1e6:.2f} µs"  # noqa: E731
    lines = [
        f"digits (python target): n={r['n']}, d={r['d']}, float32; SGLD {r['steps']} steps × "
        f"{r['chains']} chains (vmapped), batch {r['batch_size']}, eval_every "
        f"{r['eval_every']} ({r['trace_points']} trace points); {r['cores']} cores, threads "
        f"{r['threads'] or 'all'}; seconds: median of {len(r['hand']['runs'])} rounds, "
        "ratios: median over rounds of the same round's ratio",
        "",
        "| path | seconds (median) | per step per chain | ÷ by hand, pytree | ÷ by hand, flat |",
        "|---|---|---|---|---|",
    ]
    rows = [
        ("lambda-hat `sample_run` (sgld, step_size auto)", r["runner"]),
        ("driver, eval_every = steps (1 trace point: 1 MALA probe, 1 chunk)", r["one_probe"]),
        ("by hand, parameter pytree", r["hand"]),
        ("by hand, flat vector unravelled in the loss", r["hand_flat"]),
    ]
    for label, row in rows:
        lines.append(f"| {label} | {row['seconds']:.3f} | {us(row['per_step'])} | "
                     f"{row['ratio']:.2f}× | {row.get('ratio_flat', 1.0):.2f}× |")
    runner = r["runner"]
    lines += [
        "",
        f"- driver start program alone (setup: `step_size: auto` power iteration), part of "
        f"`sample_seconds`: {r['start']['seconds'] * 1e3:.1f} ms",
        f"- sample_run: compile {runner['compile_seconds']:.2f} s (excluded), ε = "
        f"{runner['step_size']:.3g}, MALA acceptance {runner['mala_acceptance']:.2f} "
        f"(status {runner['status']}: {len(runner['warnings'])} warnings); λ̂ "
        f"{runner['llc']:.1f} (by hand, from its minibatch losses after burn-in: "
        f"{r['hand']['llc']:.1f}, flat {r['hand_flat']['llc']:.1f})",
        "- runs (s): " + "; ".join(
            f"{label} " + ", ".join(f"{v:.3f}" for v in r[label]["runs"])
            for label in ("runner", "one_probe", "hand", "hand_flat")),
        "- load average at the end (1, 5, 15 min): "
        + ", ".join(f"{v:.1f}" for v in r["load_average"]),
    ]
    if "hmc" in r:
        h = r["hmc"]
        lines += [
            "",
            "| full batch | gradients | seconds (median) | per gradient "
            "| ÷ by hand, 4 chains (median of per-round ratios) |",
            "|---|---|---|---|---|",
            f"| lambda-hat `sample_run` (hmc float32, warmup {h['warmup']}, draws "
            f"{h['draws']}, {h['leapfrog']} leapfrog, {r['chains']} chains) | "
            f"{h['grad_evals']:.0f} | {h['seconds']:.3f} | {us(h['per_gradient'])} | "
            f"{h['ratio']:.2f}× |",
            f"| — its start program alone (window adaptation, chains by lax.map) | "
            f"{h['warmup_grad_evals']} | {h['warmup_seconds']:.3f} | "
            f"{us(h['warmup_per_gradient'])} | "
            f"{h['warmup_ratio']:.2f}× |",
            f"| — the rest: draws (chains by vmap) | "
            f"{h['grad_evals'] - h['warmup_grad_evals']:.0f} | "
            f"{h['seconds'] - h['warmup_seconds']:.3f} | {us(h['draws_per_gradient'])} | "
            f"{h['draws_ratio']:.2f}× |",
            f"| by hand, scan of full-data value-and-grads, {r['chains']} chains vmapped | "
            f"{h['hand_gradients']} | {h['hand_seconds']:.3f} | "
            f"{us(h['hand_per_gradient'])} | 1.00× |",
            f"| by hand, the same, one chain | {h['hand_gradients'] // r['chains']} | "
            f"{h['hand_single_seconds']:.3f} | {us(h['hand_single_per_gradient'])} | "
            f"{h['hand_single_ratio']:.2f}× |",
            "",
            f"- HMC acceptance {h['acceptance']:.2f}, compile {h['compile_seconds']:.2f} s "
            "(excluded); runs (s): hmc " + ", ".join(f"{v:.3f}" for v in h["runs"])
            + "; start " + ", ".join(f"{v:.3f}" for v in h["warmup_runs"])
            + "; hand " + ", ".join(f"{v:.3f}" for v in h["hand_runs"])
            + "; hand one chain " + ", ".join(f"{v:.3f}" for v in h["hand_single_runs"]),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
