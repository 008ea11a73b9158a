"""A python target's bad function or return value: one line naming the target's key and the
file, from the build, before any sampling, with no target written."""

from __future__ import annotations

import textwrap

import pytest

from support import run_cli, write_config

HEADER = """\
import jax.numpy as jnp

def apply(params, x):
    return x @ params["w"]
"""

CASES = {
    "no such function": (
        "def make_target(seed):\n    return {}\n", "nothere",
        "mine.py: defines no function 'nothere'"),
    "the file does not import": (
        "import no_such_module_anywhere\n", "make_target",
        "mine.py: importing it raised ModuleNotFoundError"),
    "the function raises": (
        "def make_target(seed):\n    raise ValueError('width must be even')\n", "make_target",
        "mine.py:make_target raised ValueError: width must be even"),
    "not a mapping": (
        "def make_target(seed):\n    return [apply]\n", "make_target",
        "mine.py:make_target returned a list, not a mapping"),
    "x and y of different lengths": (
        "def make_target(seed):\n    return {'apply': apply, 'params': {'w': jnp.ones((2, 1))},"
        " 'x': jnp.ones((10, 2)), 'y': jnp.ones((9, 1))}\n", "make_target",
        "mine.py:make_target: x has shape (10, 2) and y (9, 1)"),
    "outputs that do not match y": (
        "def make_target(seed):\n    return {'apply': apply, 'params': {'w': jnp.ones((2, 3))},"
        " 'x': jnp.ones((10, 2)), 'y': jnp.ones((10, 1))}\n", "make_target",
        "apply(params, x) has shape (10, 3), y (10, 1): mse needs one output per target value"),
    "apply fails on x": (
        "def make_target(seed):\n    return {'apply': apply, 'params': {'w': jnp.ones((5, 1))},"
        " 'x': jnp.ones((10, 2)), 'y': jnp.ones((10, 1))}\n", "make_target",
        "mine.py:make_target: apply(params, x) raised TypeError"),
    "labels out of range": (
        "def make_target(seed):\n    return {'apply': apply, 'params': {'w': jnp.ones((2, 3))},"
        " 'x': jnp.ones((10, 2)), 'y': jnp.arange(10) % 5, 'loss': 'cross_entropy'}\n",
        "make_target", "labels y must be integers in 0..2 (the logits' classes); found 0..4"),
    "a NaN loss at w*": (
        "def make_target(seed):\n    return {'apply': apply, 'params': {'w': jnp.ones((2, 1))},"
        " 'x': jnp.ones((10, 2)), 'y': jnp.full((10, 1), jnp.nan)}\n", "make_target",
        "targets.mine: L_n(w*) is nan (the model of mine.py): the loss at the optimum must be"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_function_is_one_line_naming_the_key_and_file(tmp_path, case):
    body, function, expected = CASES[case]
    (tmp_path / "mine.py").write_text(HEADER + textwrap.dedent(body))
    config = write_config(tmp_path, {"targets": {"mine": {"model": {
        "kind": "python", "entry": f"mine.py:{function}"}}}, "samplers": {}})
    done = run_cli("build", "--config", config, "--target", "mine", "--out", tmp_path / "t",
                   x64=True, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith("lambda-hat build: error: targets.mine")
    assert expected in errors[0] and "mine.py" in errors[0], errors[0]
    assert not (tmp_path / "t" / "target.json").exists()
