"""Fixtures shared by the test modules (generic; specific helpers live next to their tests).

The suite runs in pytest-xdist workers (pyproject's addopts): what workers share lives in
`shared_dir`, their common temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED = []
"""Set when the session is interrupted (Ctrl-C): the Slurm work then stops instead of being
waited for."""


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def shared_dir(tmp_path_factory) -> Path:
    """A directory all workers of this session see: the parent of each worker's base
    temporary directory under xdist, the base temporary directory without it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory) -> Path:
    """One persistent XLA compilation cache for the whole session (all workers), as the
    workflow shares one between its jobs: a program compiled once is not compiled again."""
    path = shared_dir(tmp_path_factory) / "jax-cache"
    path.mkdir(exist_ok=True)
    return path


def pytest_collection_modifyitems(config, items):
    """Modules whose fixtures take minutes (`heavy(minutes=…)`, about what they take under
    `.ci/run`) first, longest first, so that parallel workers finish together; the Slurm tests
    last (they wait for their background work), and after them the tests of what they leave
    behind (`after_slurm`). xdist hands out whole modules (`--dist loadfile`) in this order
    (`--no-loadscope-reorder`)."""
    def order(item):
        heavy = item.get_closest_marker("heavy")
        return (item.get_closest_marker("after_slurm") is not None,
                item.get_closest_marker("slurm") is not None,
                -heavy.kwargs["minutes"] if heavy else 0)

    items.sort(key=order)


def pytest_keyboard_interrupt(excinfo):
    INTERRUPTED.append(True)


@pytest.fixture(scope="session", autouse=True)
def slurm_in_background(request, tmp_path_factory, jax_cache_dir):
    """When the session has Slurm tests, their cluster and workflows start now, in the
    background of one worker: they mostly wait (time limits, status rounds), so they overlap
    the other tests instead of following them (test_slurm.SlurmWork)."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield None
        return
    from test_slurm import SlurmWork

    work = SlurmWork(shared_dir(tmp_path_factory) / "slurm", jax_cache_dir).start()
    yield work
    work.finish(interrupted=bool(INTERRUPTED))
