"""Atomic, self-describing files: nothing is ever half-written.

Every artifact goes to a temporary file in its final directory and is then renamed, so a
reader (or Snakemake) sees either the complete file or nothing. Files get the mode the user's
umask gives any new file: results are shared on clusters.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from .errors import ArtifactError

_VERSIONED_PACKAGES = ("lambda-hat", "jax", "jaxlib", "blackjax", "optax", "numpy")


def umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file: 0o666 less the umask (the
    temporary files of atomic writes start private, 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """`write(temporary path)` fills a file beside `path`, which then replaces `path` with
    the umask's mode: a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def prepare_output_dir(directory: str | os.PathLike) -> Path:
    """Check before any work that `directory` can take our files, and clear temporaries a
    killed run left behind (they never carry a final name, so nothing looks complete)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe.", delete=True)
        probe.close()
    except OSError as exc:
        raise ArtifactError(f"{directory}: cannot write there ({exc.strerror or exc})") from None
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return directory


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True) + "\n"


def write_json(path, obj) -> None:
    atomic_write_bytes(path, to_json(obj).encode())


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def read_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None


def read_npz(path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise ArtifactError(f"{path}: truncated or corrupt archive ({exc})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ArtifactError(f"{path}: missing arrays {missing}")
    return arrays


def hash_arrays(arrays: dict[str, np.ndarray]) -> str:
    """A content hash over names, dtypes, shapes and bytes, independent of file layout."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
