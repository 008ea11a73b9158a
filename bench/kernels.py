"""In-process kernel measurements for one precision (run by bench/run.py in a subprocess
whose JAX_ENABLE_X64 matches). Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from lambda_hat.config import Experiment
from lambda_hat.posterior import make_posterior
from lambda_hat.samplers import REGISTRY
from lambda_hat.samplers.driver import run
from lambda_hat.settings import make
from lambda_hat.targets import Target, build_target


# Short runs: the rate, not the estimate, is measured (NUTS trees capped so a run stays short).
FULL_BATCH_SETTINGS = {
    "hmc": {"chains": 4, "warmup": 30, "draws": 30},
    "nuts": {"chains": 4, "warmup": 20, "draws": 20, "max_tree_depth": 4},
    "mclmc": {"chains": 4, "warmup": 60, "draws": 100},
}


def matmul_peak(dtype, size: int = 2048, repeats: int = 20) -> float:
    """Best-of-`repeats` GFLOP/s of one large square matmul: the machine's arithmetic limit."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (size, size), dtype)
    b = jax.random.normal(key_b, (size, size), dtype)
    product = jax.jit(lambda a, b: a @ b)
    product(a, b).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        product(a, b).block_until_ready()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def gradient_flops(sizes: list[int], n: int) -> float:
    """FLOPs of one full-data value-and-gradient of an MLP, matmuls only (they dominate):
    forward 2n·Σ fan_in·fan_out; backward the same for weight gradients, plus the input
    gradients of every layer but the first."""
    layers = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 2 * n * (2 * sum(layers) + sum(layers[1:]))


def best_seconds(fn, repeats: int = 10) -> float:
    jax.block_until_ready(fn())
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - started)
    return best


def bare_gradient_gflops(target: Target, dtype) -> dict:
    """The floor under every full-batch sampler: one jitted value-and-grad of the loss and
    nothing else, for one chain (the samplers run chains one after another, `lax.map`),
    with the MLP's activation and with the identity in its place: the same matmul shapes
    without the elementwise passes over the n×64 activations."""
    from lambda_hat.models import Network

    X, Y = jnp.asarray(target.arrays["X"], dtype), jnp.asarray(target.arrays["Y"], dtype)
    w = jnp.asarray(target.arrays["w_star"], dtype)
    network = target.likelihood.network
    flops = gradient_flops(list(network.sizes), X.shape[0])
    rates = {}
    for label, network in (("activation", network),
                           ("identity", Network(network.sizes, "identity", network.bias))):
        def loss(w, network=network):
            residual = network.apply(w, X) - Y
            return jnp.mean(jnp.sum(residual * residual, axis=-1))

        step = jax.jit(jax.value_and_grad(loss))
        rates[label] = flops / best_seconds(lambda: step(w)) / 1e9
    return rates


def bare_sgld_seconds(target: Target, dtype, chains: int = 4, steps: int = 2000,
                      batch: int = 256) -> dict:
    """The floor under the SGLD family on its workload: vmap over chains of a scan whose step
    is one minibatch value-and-grad and one Gaussian draw, with no trace or diagnostics; and
    the two parts alone."""
    X, Y = jnp.asarray(target.arrays["X"], dtype), jnp.asarray(target.arrays["Y"], dtype)
    n = X.shape[0]
    network = target.likelihood.network
    w_star = target.arrays["w_star"]
    w0 = jnp.broadcast_to(jnp.asarray(w_star, dtype), (chains, w_star.size))

    def loss(w, index):
        residual = network.apply(w, X[index]) - Y[index]
        return jnp.mean(jnp.sum(residual * residual, axis=-1))

    def chain(w, key, gradient: bool, noise: bool):
        def step(w, key):
            batch_key, noise_key = jax.random.split(key)
            if gradient:
                index = jax.random.randint(batch_key, (batch,), 0, n)
                w = w - 1e-7 * jax.value_and_grad(loss)(w, index)[1]
            if noise:
                w = w + 1e-4 * jax.random.normal(noise_key, w.shape, w.dtype)
            return w, None

        return jax.lax.scan(step, w, jax.random.split(key, steps))[0]

    keys = jax.random.split(jax.random.key(0), chains)
    result = {}
    for label, gradient, noise in (("step", True, True), ("gradient_only", True, False),
                                   ("noise_only", False, True)):
        run = jax.jit(jax.vmap(lambda w, k, g=gradient, z=noise: chain(w, k, g, z)))
        result[label] = best_seconds(lambda: run(w0, keys), repeats=3)
    return result


def bench_target(n: int, dtype: str) -> Target:
    raw = {
        "experiment": "bench",
        "targets": {"mlp": {"model": {"kind": "mlp", "in_dim": 16, "widths": [64, 64, 64],
                                      "out_dim": 1, "activation": "tanh"},
                            "data": {"n": n}, "seed": 0, "dtype": dtype,
                            "training": {"steps": 300}}},
        "samplers": {"unused": {"kind": "hmc"}},
    }
    record, arrays = build_target("mlp", Experiment(raw, "bench").target("mlp"), "bench")
    return Target(record=record, arrays=arrays)


DEVINTERP_STEP = 1e-5
"""bench/devinterp_sgld.py's learning rate, the same ε in the same SGLD update."""
FIXED_STEP = "sgld_fixed_step"


def run_sampler(target: Target, kind: str, dtype: str, settings: dict):
    module = REGISTRY[kind]
    resolved = make(module.Settings, {"kind": kind, "dtype": dtype, **settings})
    posterior, data, _, _ = make_posterior(target, resolved.beta, resolved.gamma, dtype)
    return run(module, resolved, posterior, data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full-batch", nargs="*", default=[], help="kinds to time on the MLP")
    parser.add_argument("--sgld", nargs="*", default=[], help="SGLD-family kinds to time")
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    result = {"dtype": dtype, "peak_gflops": matmul_peak(jnp.dtype(dtype))}
    target = bench_target(args.n, dtype)
    sizes = [16, 64, 64, 64, 1]
    flops_per_grad = gradient_flops(sizes, args.n)
    result["d"] = target.record["d"]
    if args.full_batch:
        result["bare_gradient_gflops"] = bare_gradient_gflops(target, jnp.dtype(dtype))
    if args.sgld:
        result["bare_sgld_seconds"] = bare_sgld_seconds(target, jnp.dtype(dtype))
    for kind in args.full_batch:
        output = run_sampler(target, kind, dtype, FULL_BATCH_SETTINGS.get(kind, {}))
        gflops = output.grad_evals * flops_per_grad / output.sample_seconds / 1e9
        result[kind] = {"gflops": gflops, "fraction_of_peak": gflops / result["peak_gflops"],
                        "grad_evals": output.grad_evals, "sample_seconds": output.sample_seconds,
                        "compile_seconds": output.compile_seconds}
    runs = {kind: (kind, {}) for kind in args.sgld}
    if "sgld" in args.sgld:  # devinterp's own work: its step, so no step search and no pilot
        runs[FIXED_STEP] = ("sgld", {"step_size": DEVINTERP_STEP})
    for label, (kind, extra) in runs.items():
        output = run_sampler(target, kind, dtype,
                             {"chains": 4, "steps": 2000, "batch_size": 256, **extra})
        result[label] = {"steps_per_second": 4 * 2000 / output.sample_seconds,
                         "sample_seconds": output.sample_seconds,
                         "compile_seconds": output.compile_seconds}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
