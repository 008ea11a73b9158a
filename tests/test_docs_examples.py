"""The Python examples of docs/python-api.md and docs/observables.md run as written.

Each page's ```python blocks are joined in order and run as one script in a fresh float32
process (the precision the default sampler declares), from a scratch directory: what a
reader pasting them into a notebook would get.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
PAGES = ["docs/python-api.md", "docs/observables.md"]


def _script(page: str) -> str:
    blocks = PYTHON_BLOCK.findall((ROOT / page).read_text())
    assert blocks, f"{page} has no python example"
    return "\n".join(blocks)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_pages_python_examples_run(page, tmp_path):
    env = {**os.environ, "JAX_ENABLE_X64": "0",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    done = subprocess.run([sys.executable, "-c", _script(page)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page}:\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stdout + done.stderr
    assert not list(tmp_path.iterdir()), "the examples wrote files where they ran"
