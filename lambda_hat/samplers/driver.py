"""The one loop every sampler runs in: chains, warmup, steps, trace, cost, timing, progress.

A sampler module builds a `Kernel` (pure `init` / `step` over its state); this driver makes
two programs around it, each traced and compiled once:

- start: the module's `setup` (shared by all chains), then per chain key a (warmup key, draw
  key) pair and the warmup. It runs per chain, one chain after another (`lax.map`:
  BlackJAX's adaptations are while-loops), or once for all chains when the settings say
  `adaptation: shared` (its cost is then spread over the chains). Then the module's
  `pilot(settings, posterior, setup, states, key) -> (setup, states)` runs all chains
  together from their warmed states to tune the shared setup (the minibatch samplers'
  automatic step: `step_size.pilot`); its cost is the setup's, its draws are discarded and
  the chains continue from its last states;
- draws: `scan` over steps, chains by `vmap` (or `lax.map` for kernels with while-loops),
  for one chunk of the trace. The chunks run one after another from the carried states,
  with the keys a single scan would use, so the numbers do not depend on the chunking; after
  the warmup and after each chunk the job log gets a progress line over warmup and sampling
  with an ETA (`Progress`). Kernels with a `probe` record one trace
  point per `trace_every` steps: the mean of those steps' losses, and the probe's check at
  the block's end; others keep every `trace_every`-th draw.

After the programs: burn-in, the cumulative cost in full-gradient equivalents, compile time
and sampling time apart. The traced programs are kept beside JAX's compilation cache
(`lambda_hat.programs`), so a rerun skips tracing as well as compiling. States cross between
the programs as flat lists of arrays, so a cached program never needs BlackJAX's types.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..programs import compile_program, default_cache_dir
from .base import SamplerOutput
from .stopping import MIN_CHUNKS, Stopping, check as check_until

log = logging.getLogger("lambda_hat")

PROGRESS_CHUNKS = 10
"""Progress lines per run (fewer when the trace points do not divide evenly)."""


def broadcast_chains(tree, chains: int):
    """Copy one state to a leading chain axis."""
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (chains, *jnp.shape(leaf))), tree)


def _warmup(kernel, settings, keys, position):
    chains = keys.shape[0]
    if settings.shared_adaptation:
        state, params, info = kernel.init(keys[0], position)
        info = info._replace(grad_evals=jnp.asarray(info.grad_evals) / chains)
        return broadcast_chains((state, params, info), chains)
    return jax.lax.map(lambda key: kernel.init(key, position), keys)


def _draws(kernel, settings, keys, state, params, observe=None):
    """(state, trace) of one chain over `keys`, one per trace point: a record per step, or
    per block of `trace_every` steps: the block's mean loss and the probe's check with a
    probe; else its last draw's loss (thinning). Other fields are block means, costs sums.
    With `observe(w)`, the record's `observed` is its value at the trace point's draw."""
    every = settings.trace_every

    def steps(state, step_keys):
        return jax.lax.scan(lambda s, k: kernel.step(k, s, params), state, step_keys)

    def observed(state, record):
        if observe is not None:
            record = {**(record if isinstance(record, dict) else record._asdict()),
                      "observed": observe(kernel.position(state))}
        return state, record

    if kernel.probe is None and every == 1:
        if observe is None:
            return steps(state, keys)
        return jax.lax.scan(lambda s, k: observed(*kernel.step(k, s, params)), state, keys)

    def one_block(state, block_key):
        if kernel.probe is None:
            state, infos = steps(state, jax.random.split(block_key, every))
            record = {name: jnp.mean(value) for name, value in infos._asdict().items()}
            record["loss"] = infos.loss[-1]
            record["grad_evals"] = jnp.sum(infos.grad_evals)
            return observed(state, record)
        steps_key, probe_key = jax.random.split(block_key)
        state, infos = steps(state, jax.random.split(steps_key, every))
        probe = kernel.probe(probe_key, state, params)
        record = {name: jnp.mean(value) for name, value in infos._asdict().items()}
        record["grad_evals"] = jnp.sum(infos.grad_evals) + probe.grad_evals
        record.update((name, value) for name, value in probe._asdict().items()
                      if name != "grad_evals")
        return observed(state, record)

    return jax.lax.scan(one_block, state, keys)


def _begin(module, settings, posterior, data, keys):
    """(setup, kernel, warmup keys, draw keys) inside a trace."""
    bound = posterior.bind(data)
    setup = module.setup(settings, bound, jax.random.fold_in(keys[0], 1))
    warmup_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    return setup, module.build(settings, bound, setup), warmup_keys, draw_keys


def _warmed(module, settings, posterior, data, keys):
    """(setup, warmup info, states, params) inside a trace."""
    setup, kernel, warmup_keys, _ = _begin(module, settings, posterior, data, keys)
    states, params, warmup = _warmup(kernel, settings, warmup_keys, data["w_star"])
    return setup, warmup, states, params


def _strong(tree):
    """Every leaf with a definite dtype: weak types (Python numbers) would make the next
    program's key depend on whether this one was traced or loaded."""
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.asarray(leaf).dtype), tree)


def _start(module, settings, posterior, data, keys):
    """The start program: setup, per-chain warmup info and params, the chains' state leaves;
    then the module's `pilot` on all chains at once (its tuned setup and the chains' states
    where it left them)."""
    setup, warmup, states, params = _warmed(module, settings, posterior, data, keys)
    setup, states = module.pilot(settings, posterior.bind(data), setup, states,
                                 jax.random.fold_in(keys[0], 2))
    return _strong((setup, warmup, params, jax.tree.leaves(states)))


def _chunk(module, settings, posterior, size, observe, data, keys, setup, params, states,
           start):
    """The draw program: `size` trace points from trace point `start`, from the carried
    states; returns the new state leaves and this chunk's trace (chains first). With
    `observe(w, data)`, each trace point also records it at the point's draw (`observed`:
    per-sample losses, vmapped over the observed points inside the program)."""
    kernel = module.build(settings, posterior.bind(data), setup)
    at_draw = None if observe is None else partial(_observe_at, observe, data)
    # The states' tree is one chain's (the chain axis leads every leaf), from the kernel's
    # own start: the setup is an input here, so it is not traced again.
    structure = jax.tree.structure(jax.eval_shape(kernel.init, keys[0], data["w_star"])[0])
    states = jax.tree.unflatten(structure, states)
    _, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)

    def chain(key, state, params):
        point_keys = jax.random.split(key, settings.trace_points)
        return _draws(kernel, settings, jax.lax.dynamic_slice_in_dim(point_keys, start, size),
                      state, params, at_draw)

    if kernel.vectorized:
        states, trace = jax.vmap(chain)(draw_keys, states, params)
    else:
        states, trace = jax.lax.map(lambda args: chain(*args), (draw_keys, states, params))
    if not isinstance(trace, dict):
        trace = trace._asdict()
    return _strong((jax.tree.leaves(states), trace))


def _observe_at(observe, data, w):
    return observe(w, data)


class Progress:
    """The job log's progress over warmup and sampling, in steps per chain: the warmup's
    (`settings.warmup_steps`) and the trace's (`trace_points × trace_every`). Before the
    first chunk of draws the ETA comes from the warmup's pace, then from the draws'."""

    def __init__(self, settings):
        self.settings = settings
        self.warmup_steps = settings.warmup_steps
        self.draw_steps = settings.trace_points * settings.trace_every
        self.warmup_seconds = 0.0

    def _line(self, done_steps: int, elapsed: float, left: float, what: str) -> None:
        total = self.warmup_steps + self.draw_steps
        log.info("%s: %3.0f%% of %d steps × %d chains (%s) in %.1f s, about %.1f s left",
                 self.settings.kind, 100 * done_steps / total, total, self.settings.chains,
                 what, elapsed, left)

    def warming_up(self) -> None:
        if self.warmup_steps:
            every = self.settings.trace_every
            log.info("%s: warmup: %d steps × %d chains, then %d trace points%s",
                     self.settings.kind, self.warmup_steps, self.settings.chains,
                     self.settings.trace_points, f" of {every} steps" if every > 1 else "")

    def warmed_up(self, seconds: float) -> None:
        self.warmup_seconds = seconds
        if self.warmup_steps:
            pace = seconds / self.warmup_steps
            self._line(self.warmup_steps, seconds, pace * self.draw_steps, "warmup done")

    def sampled(self, points: int, seconds: float) -> None:
        left = seconds * (self.settings.trace_points - points) / points
        self._line(self.warmup_steps + points * self.settings.trace_every,
                   self.warmup_seconds + seconds, left,
                   f"{points} of {self.settings.trace_points} trace points")


def chunk_size(points: int, chunks: int = PROGRESS_CHUNKS) -> int:
    """The trace points per chunk: the largest count of at most `chunks` equal chunks."""
    count = max(c for c in range(1, min(chunks, points) + 1) if points % c == 0)
    return points // count


def chain_keys(seed: int, chains: int):
    return jax.random.split(jax.random.key(seed), chains)


def _compiled(fn, *args):
    compiled, _ = compile_program(fn, args, default_cache_dir())
    return compiled


def run(module, settings, posterior, data, observe=None) -> SamplerOutput:
    """Run one sampler module with its settings on a posterior and its data; with
    `observe(w, data)` (a pure function, data passed in so it is not embedded), the trace's
    `observed` holds its value at each trace point's draw."""
    keys = chain_keys(settings.seed, settings.chains)
    points = settings.trace_points
    size = chunk_size(points)
    progress = Progress(settings)
    clock = time.perf_counter()
    start = _compiled(partial(_start, module, settings, posterior), data, keys)
    compile_seconds = time.perf_counter() - clock
    progress.warming_up()
    clock = time.perf_counter()
    setup, warmup, params, states = jax.block_until_ready(start(data, keys))
    sample_seconds = time.perf_counter() - clock
    progress.warmed_up(sample_seconds)
    clock = time.perf_counter()
    first = jnp.asarray(0, jnp.int32)
    step = _compiled(partial(_chunk, module, settings, posterior, size, observe), data, keys,
                     setup, params, states, first)
    compile_seconds += time.perf_counter() - clock
    chunks, count = [], points // size
    until = settings.until if module.MARKOV_CHAIN else None
    burn_in = settings.burn_in_fraction
    stopping = Stopping(rule=None, stopped_by="fixed", trace_points=points, budget=points)
    clock = time.perf_counter()
    for index in range(count):
        states, trace = jax.block_until_ready(
            step(data, keys, setup, params, states, jnp.asarray(index * size, jnp.int32)))
        chunks.append(jax.tree.map(np.asarray, trace))
        progress.sampled((index + 1) * size, time.perf_counter() - clock)
        if until is not None and index + 1 >= MIN_CHUNKS:
            checking = time.perf_counter()
            passes, found = check_until(np.concatenate([c["loss"] for c in chunks], axis=1),
                                        burn_in, until)
            checked = time.perf_counter() - checking  # nearly all compilation (one per length)
            compile_seconds += checked
            clock += checked
            stopping = Stopping(rule=dataclasses.asdict(until),
                                stopped_by="criterion" if passes else "budget",
                                trace_points=(index + 1) * size, budget=points, **found)
            if passes:
                log.info("%s: the until rule passed at %d of %d trace points: R-hat %s ≤ %s, "
                         "ESS %.0f ≥ %s", settings.kind, (index + 1) * size, points,
                         "n/a" if found["r_hat"] is None else f"{found['r_hat']:.4f}",
                         until.r_hat, found["ess"], until.ess)
                break
    sample_seconds += time.perf_counter() - clock
    trace = jax.tree.map(lambda *parts: np.concatenate(parts, axis=1), *chunks)
    setup, warmup, params = jax.tree.map(np.asarray, (setup, warmup, params))
    loss = trace.pop("loss")
    per_point = np.mean(np.asarray(trace["grad_evals"], np.float64), axis=0)
    begin = (float(setup.grad_evals) / settings.chains
             + float(np.mean(np.asarray(warmup.grad_evals, np.float64))))
    return SamplerOutput(
        loss=loss,
        burn_in=int(burn_in * loss.shape[1]),
        grad_evals_at=begin + np.cumsum(per_point),
        traces=trace,
        warmup=warmup,
        params=params,
        setup=setup,
        nbeta=posterior.nbeta,
        compile_seconds=compile_seconds,
        sample_seconds=sample_seconds,
        stopping=stopping,
    )
