"""The on-disk cache of traced programs (`lambda_hat.programs`): a hit gives the same numbers
as a miss and as no cache, anything that changes the program misses, damage is survived."""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lambda_hat.programs import (MAGIC, Unkeyable, compile_program, forget_programs,
                                 program_key)
from potentials import PotentialPosterior
from support import run_cli, write_config


class Moments(NamedTuple):
    mean: jax.Array
    second: jax.Array


def _walk(posterior, settings, data, keys):
    """A small random walk per chain on the posterior, returning a namedtuple and a key."""

    def chain(key):
        def step(w, step_key):
            proposal = w + settings["scale"] * jax.random.normal(step_key, w.shape, w.dtype)
            return proposal, posterior.loss(proposal, data)

        _, trace = jax.lax.scan(step, data["w_star"], jax.random.split(key, settings["steps"]))
        return trace

    trace = jax.vmap(chain)(keys)
    return Moments(trace.mean(axis=1), (trace * trace).mean(axis=1)), trace, keys[0]


POSTERIOR = PotentialPosterior(coefficients=(1.0, 2.0), powers=(1, 2), nbeta=50.0)
SETTINGS = {"scale": 0.1, "steps": 64, "label": None}


def _args(chains=3):
    return ({"w_star": jnp.zeros(POSTERIOR.d)},
            jax.random.split(jax.random.key(7), chains))


def _numpy(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _run(fn, args, cache_dir):
    """Compile as a new process would: without the programs this one keeps."""
    forget_programs()
    compiled, status = compile_program(fn, args, cache_dir)
    return jax.tree.map(_numpy, compiled(*args)), status


def _assert_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_hit_gives_the_numbers_of_a_miss_and_of_no_cache(tmp_path):
    fn = partial(_walk, POSTERIOR, SETTINGS)
    first, status_first = _run(fn, _args(), tmp_path)
    second, status_second = _run(partial(_walk, POSTERIOR, dict(SETTINGS)), _args(), tmp_path)
    plain, status_plain = _run(fn, _args(), None)
    assert (status_first, status_second, status_plain) == ("miss", "hit", "off")
    assert isinstance(second[0], Moments)  # the namedtuple survives serialization
    _assert_identical(first, second)
    _assert_identical(first, plain)
    assert [p.suffix for p in tmp_path.iterdir()] == [".jaxexport"]  # no temporary left


def test_a_process_reuses_its_program_for_an_equal_function(tmp_path):
    settings = (("scale", 0.1), ("steps", 64), ("label", None))

    def walk(posterior, settings, data, keys):
        return _walk(posterior, dict(settings), data, keys)

    first, status_first = _run(partial(walk, POSTERIOR, settings), _args(), tmp_path)
    again, status_again = compile_program(partial(walk, POSTERIOR, tuple(settings)), _args(),
                                          tmp_path)
    other, status_other = compile_program(partial(walk, POSTERIOR, settings), _args(4),
                                          tmp_path)
    assert (status_first, status_again, status_other) == ("miss", "memory", "miss")
    _assert_identical(first, jax.tree.map(_numpy, again(*_args())))


@pytest.mark.parametrize("change", [
    lambda p, s, a: (p, {**s, "scale": 0.2}, a),                     # a setting
    lambda p, s, a: (p, {**s, "label": "x"}, a),                     # an unused one, too
    lambda p, s, a: (PotentialPosterior((1.0, 2.0), (1, 2), 51.0), s, a),  # the posterior
    lambda p, s, a: (p, s, _args(chains=4)),                         # an argument's shape
    lambda p, s, a: (p, s, ({"w_star": a[0]["w_star"].astype(jnp.float16)}, a[1])),  # dtype
])
def test_anything_that_changes_the_program_misses(tmp_path, change):
    args = _args()
    _run(partial(_walk, POSTERIOR, SETTINGS), args, tmp_path)
    posterior, settings, changed_args = change(POSTERIOR, SETTINGS, args)
    _, status = _run(partial(_walk, posterior, settings), changed_args, tmp_path)
    assert status == "miss"
    assert len(list(tmp_path.iterdir())) == 2


def test_key_distinguishes_code_and_captured_values():
    args = _args()
    scale = 1.0
    by_closure = lambda data, keys: _walk(POSTERIOR, {**SETTINGS, "scale": scale}, data, keys)  # noqa: E731
    before = program_key(by_closure, args)
    scale = 2.0
    assert program_key(by_closure, args) != before
    other_code = lambda data, keys: _walk(POSTERIOR, {**SETTINGS, "scale": scale + 0}, data, keys)  # noqa: E731
    assert program_key(other_code, args) != program_key(by_closure, args)
    assert program_key(partial(_walk, POSTERIOR, {**SETTINGS, "scale": 1}), args) != \
        program_key(partial(_walk, POSTERIOR, {**SETTINGS, "scale": 1.0}), args)


def test_a_value_the_key_cannot_describe_is_not_cached(tmp_path):
    lock = threading.Lock()
    fn = lambda data, keys: _walk(POSTERIOR, SETTINGS, data, keys) if lock else None  # noqa: E731
    with pytest.raises(Unkeyable):
        program_key(fn, _args())
    result, status = _run(fn, _args(), tmp_path)
    assert status == "off" and not list(tmp_path.iterdir())
    _assert_identical(result, _run(partial(_walk, POSTERIOR, SETTINGS), _args(), None)[0])


@pytest.mark.parametrize("damage", [
    lambda blob: blob[: len(blob) // 2],                       # truncated write
    lambda blob: blob[:-10] + bytes(10),                        # flipped bytes
    lambda blob: b"",                                           # empty file
    lambda blob: MAGIC + bytes(40),                             # bad checksum
])
def test_a_damaged_entry_is_recomputed_not_trusted(tmp_path, damage):
    fn = partial(_walk, POSTERIOR, SETTINGS)
    reference, _ = _run(fn, _args(), tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(damage(entry.read_bytes()))
    result, status = _run(fn, _args(), tmp_path)
    assert status == "miss"
    _assert_identical(result, reference)
    assert _run(fn, _args(), tmp_path)[1] == "hit"  # and the entry was replaced


def test_a_valid_entry_of_the_wrong_shape_is_recomputed(tmp_path):
    """Whatever sits under a key, a program that does not fit the arguments is not run."""
    fn = partial(_walk, POSTERIOR, SETTINGS)
    _run(fn, _args(chains=4), tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.rename(tmp_path / f"{program_key(fn, _args())}.jaxexport")
    result, status = _run(fn, _args(), tmp_path)
    assert status == "miss"
    _assert_identical(result, _run(fn, _args(), None)[0])


def test_a_linear_algebra_program_hits(tmp_path):
    def solve(a, b):
        return jnp.linalg.solve(a @ a.T + jnp.eye(a.shape[0]), b)

    args = (jnp.arange(9.0).reshape(3, 3) / 9, jnp.ones(3))
    first, _ = _run(solve, args, tmp_path)
    second, status = _run(solve, args, tmp_path)
    assert status == "hit"
    _assert_identical(first, second)


def test_an_unwritable_cache_only_costs_the_trace(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    result, status = _run(partial(_walk, POSTERIOR, SETTINGS), _args(), blocked / "programs")
    assert status == "miss"
    _assert_identical(result, _run(partial(_walk, POSTERIOR, SETTINGS), _args(), None)[0])


CONFIG = {
    "experiment": "programs",
    "targets": {"dln": {"model": {"kind": "dln", "widths": [3, 2, 3], "rank": 1},
                        "data": {"n": 300}, "seed": 5}},
    "samplers": {
        "hmc": {"kind": "hmc", "warmup": 40, "draws": 50, "chains": 2,
                "num_integration_steps": 4},
        "sgld": {"kind": "sgld", "steps": 300, "batch_size": 32, "chains": 2},
        "vi": {"kind": "vi", "steps": 100, "draws": 50, "chains": 2},
    },
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(config, target directory): the target the three samplers share, built once."""
    root = tmp_path_factory.mktemp("programs")
    config = write_config(root, CONFIG)
    done = run_cli("build", "--config", config, "--target", "dln", "--out", root / "target",
                   x64=True)
    assert done.returncode == 0, done.stderr
    return config, root / "target"


@pytest.mark.slow
@pytest.mark.parametrize("sampler, x64", [("hmc", True), ("sgld", False), ("vi", False)])
def test_cli_rerun_from_the_program_cache_is_bit_identical(built, tmp_path, sampler, x64):
    """A job that finds its programs cached writes the numbers of the job that stored them
    and of a job with no cache at all (VI's whitening calls LAPACK: its hit is lowered from
    the stored program, the others load the stored executable)."""
    config, target = built
    cache = tmp_path / "jax-cache"
    runs = {}
    for label, env in (("miss", {"JAX_COMPILATION_CACHE_DIR": str(cache)}),
                       ("hit", {"JAX_COMPILATION_CACHE_DIR": str(cache)}),
                       ("off", {"JAX_COMPILATION_CACHE_DIR": ""})):
        if label == "hit":
            stored = {p: p.stat().st_mtime_ns for p in (cache / "lambda-hat-programs").iterdir()}
            # the sampler's start and draw programs, the geometry at w* (lambda_hat.optimum)
            # and the ESS/R-hat program (VI's iid draws need none)
            assert len(stored) == (3 if sampler == "vi" else 4)
        out = tmp_path / label
        done = run_cli("sample", "--config", config, "--target-dir", target,
                       "--sampler", sampler, "--out", out, x64=x64, env=env)
        assert done.returncode == 0, done.stderr
        with np.load(out / "trace.npz") as trace:
            runs[label] = ({k: trace[k] for k in trace.files},
                           json.loads((out / "summary.json").read_text()))
    assert {p: p.stat().st_mtime_ns for p in (cache / "lambda-hat-programs").iterdir()} == stored
    reference, summary = runs["miss"]
    for label in ("hit", "off"):
        trace, other = runs[label]
        assert trace.keys() == reference.keys()
        for key in reference:
            np.testing.assert_array_equal(trace[key], reference[key])
        for key in ("llc_mean", "llc_std", "ess", "ess_bulk", "ess_tail", "r_hat", "optimum"):
            assert other[key] == summary[key], key
