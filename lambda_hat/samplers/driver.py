"""The one loop every sampler runs in: chains, warmup, steps, trace, cost, timing.

A sampler module builds a `Kernel` (pure `init` / `step` over its state); this driver makes
the program around it and runs it once under `jit`:

- per chain key: (warmup key, draw key). Warmup runs per chain, one chain after another
  (`lax.map`: BlackJAX's adaptations are while-loops), or once for all chains when the
  settings say `adaptation: shared` (its cost is then spread over the chains);
- draws: `scan` over steps, chains by `vmap` (or `lax.map` for kernels with while-loops);
  kernels with a `probe` record one trace point per `trace_every` steps: the mean of those
  steps' losses, and the probe's check at the block's end; others keep every
  `trace_every`-th draw;
- after the program: burn-in, the cumulative cost in full-gradient equivalents, compile
  time and sampling time apart.

The traced program is kept beside JAX's compilation cache (`lambda_hat.programs`), so a
rerun skips tracing as well as compiling.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..programs import compile_program, default_cache_dir
from .base import SamplerOutput


def broadcast_chains(tree, chains: int):
    """Copy one state to a leading chain axis."""
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (chains, *jnp.shape(leaf))), tree)


def _warmup(kernel, settings, keys, position):
    chains = keys.shape[0]
    if getattr(settings, "adaptation", "per_chain") == "shared":
        state, params, info = kernel.init(keys[0], position)
        info = info._replace(grad_evals=jnp.asarray(info.grad_evals) / chains)
        return broadcast_chains((state, params, info), chains)
    return jax.lax.map(lambda key: kernel.init(key, position), keys)


def _draws(kernel, key, state, params):
    """One chain's trace: a record per step, or per block of `trace_every` steps: the
    block's mean loss and the probe's check with a probe; else its last draw's loss
    (thinning). Other fields are block means, costs block sums."""
    def steps(state, key, count):
        return jax.lax.scan(lambda s, k: kernel.step(k, s, params), state,
                            jax.random.split(key, count))

    if kernel.probe is None and kernel.trace_every == 1:
        return steps(state, key, kernel.trace_points)[1]

    def one_block(state, block_key):
        if kernel.probe is None:
            state, infos = steps(state, block_key, kernel.trace_every)
            record = {name: jnp.mean(value) for name, value in infos._asdict().items()}
            record["loss"] = infos.loss[-1]
            record["grad_evals"] = jnp.sum(infos.grad_evals)
            return state, record
        steps_key, probe_key = jax.random.split(block_key)
        state, infos = steps(state, steps_key, kernel.trace_every)
        probe = kernel.probe(probe_key, state, params)
        record = {name: jnp.mean(value) for name, value in infos._asdict().items()}
        record["grad_evals"] = jnp.sum(infos.grad_evals) + probe.grad_evals
        record.update((name, value) for name, value in probe._asdict().items()
                      if name != "grad_evals")
        return state, record

    return jax.lax.scan(one_block, state, jax.random.split(key, kernel.trace_points))[1]


def _program(build, settings, posterior, data, keys):
    """The whole run as one function of (data, chain keys): what gets traced and cached."""
    kernel = build(settings, posterior.bind(data), jax.random.fold_in(keys[0], 1))
    warmup_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    states, params, warmup = _warmup(kernel, settings, warmup_keys, data["w_star"])
    chain = partial(_draws, kernel)
    if kernel.vectorized:
        trace = jax.vmap(chain)(draw_keys, states, params)
    else:
        trace = jax.lax.map(lambda args: chain(*args), (draw_keys, states, params))
    if not isinstance(trace, dict):
        trace = trace._asdict()
    return {"trace": trace, "warmup": warmup, "params": params, "setup": kernel.setup,
            "setup_cost": jnp.asarray(kernel.setup_cost)}


def compile_and_run(fn, *args):
    """Run jit(fn)(*args), timing compilation and execution separately."""
    started = time.perf_counter()
    compiled, _ = compile_program(fn, args, default_cache_dir())
    compiled_at = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    finished = time.perf_counter()
    return jax.tree.map(np.asarray, result), compiled_at - started, finished - compiled_at


def chain_keys(seed: int, chains: int):
    return jax.random.split(jax.random.key(seed), chains)


def run(module, settings, posterior, data) -> SamplerOutput:
    """Run one sampler module with its settings on a posterior and its data."""
    keys = chain_keys(settings.seed, settings.chains)
    result, seconds_compile, seconds_sample = compile_and_run(
        partial(_program, module.build, settings, posterior), data, keys)
    trace = dict(result["trace"])
    loss = trace.pop("loss")
    per_point = np.mean(np.asarray(trace["grad_evals"], np.float64), axis=0)
    warmup = result["warmup"]
    start = (float(result["setup_cost"]) / settings.chains
             + float(np.mean(np.asarray(warmup.grad_evals, np.float64))))
    burn_in = int(getattr(settings, "burn_in", 0.0) * loss.shape[1])
    return SamplerOutput(
        loss=loss,
        burn_in=burn_in,
        grad_evals_at=start + np.cumsum(per_point),
        traces=trace,
        warmup=warmup,
        params=result["params"],
        setup=result["setup"],
        nbeta=posterior.nbeta,
        compile_seconds=seconds_compile,
        sample_seconds=seconds_sample,
    )
