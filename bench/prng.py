"""The Langevin noise under JAX's three PRNG implementations (issue 17's trial).

    python bench/prng.py        # about a minute on 2 cores; prints a Markdown table

Per step, every chain draws one standard normal per parameter. This times exactly that
(4 chains by `vmap`, steps by `scan`, as the driver runs them) at d = 10⁴ and 10⁶ for
`threefry2x32` (JAX's default, what lambda-hat uses), `rbg` and `unsafe_rbg`, and checks that
each gives the same numbers for the same seed in two separately compiled programs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

IMPLEMENTATIONS = ("threefry2x32", "rbg", "unsafe_rbg")
SIZES = {10_000: 2000, 1_000_000: 40}
"""d -> steps timed."""
CHAINS = 4


def noise_program(d: int, steps: int):
    def chain(key):
        def step(w, k):
            return w + 1e-3 * jax.random.normal(k, w.shape, w.dtype), None

        return jax.lax.scan(step, jnp.zeros(d, jnp.float32), jax.random.split(key, steps))[0]

    return jax.jit(jax.vmap(chain))


def best_seconds(fn, keys, repeats: int = 3) -> float:
    jax.block_until_ready(fn(keys))
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(keys))
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    print("| PRNG | d | ms per step (4 chains) | ns per normal | ÷ threefry | same seed, "
          "same numbers |")
    print("|---|---|---|---|---|---|")
    reference = {}
    for impl in IMPLEMENTATIONS:
        for d, steps in SIZES.items():
            keys = jax.random.split(jax.random.key(0, impl=impl), CHAINS)
            seconds = best_seconds(noise_program(d, steps), keys) / steps
            again = noise_program(d, steps)(jax.random.split(jax.random.key(0, impl=impl),
                                                             CHAINS))
            first = noise_program(d, steps)(keys)
            same = bool(np.array_equal(np.asarray(first), np.asarray(again)))
            reference.setdefault(d, seconds)
            print(f"| {impl} | {d:,} | {1e3 * seconds:.3f} | {1e9 * seconds / CHAINS / d:.2f} | "
                  f"{seconds / reference[d]:.2f}× | {'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
