"""Fixtures shared by the test modules (generic; specific helpers live next to their tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory) -> Path:
    """One persistent XLA compilation cache for the whole session, as the workflow shares one
    between its jobs: a sampler compiled once is not compiled again."""
    return tmp_path_factory.mktemp("jax-cache")


def pytest_collection_modifyitems(config, items):
    """Run the Slurm tests last (they start a local Slurm and stop it at the end), and after
    them the tests of what they leave behind (`after_slurm`)."""
    items.sort(key=lambda item: (item.get_closest_marker("after_slurm") is not None,
                                 item.get_closest_marker("slurm") is not None))


@pytest.fixture(scope="session", autouse=True)
def slurm_in_background(request):
    """When the session has Slurm tests, their cluster and workflows start now, in the
    background: they mostly wait (time limits, status rounds), so they overlap the other
    tests instead of following them (test_slurm.SlurmWork). Stopped at the end whatever
    happened in between."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield None
        return
    from test_slurm import SlurmWork

    work = SlurmWork().start()
    yield work
    work.finish()
