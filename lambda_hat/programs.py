"""Traced and compiled programs kept on disk, beside JAX's persistent compilation cache.

JAX's persistent cache skips XLA compilation, but it is keyed on the lowered module, so every
job still traces and lowers its sampler in Python first, most of a warm job's overhead (the
figures are in docs/workflow.md). Here each program is stored twice: as the lowered program
(`jax.export`) and as its compiled executable (`jax.experimental.serialize_executable`). A
later job with the same key loads the executable in milliseconds and runs it: no tracing, no
lowering, no compilation. Programs that call LAPACK are lowered from the stored program
instead (lowering registers the LAPACK kernels; the executable is then found in JAX's cache).

The key covers everything that determines the program, and a value that cannot be described
exactly means no caching rather than a guess: the function (code, source file, and every value
it closes over or is partially applied to: settings, posterior fields, ...), the arguments'
tree, shapes and dtypes, the source of this package, the versions of Python, JAX, jaxlib,
BlackJAX, optax and NumPy, every JAX config value (x64 among them), the backend and the CPU's
instruction-set flags (an executable built for one CPU must not run on another node's).
Code reached through module globals is covered by those digests and versions, and by the
source file of each function the key describes; module globals patched at run time are not.

A miss runs the freshly exported program, so a miss and a later hit execute the same program;
with no cache directory programs are plain `jit`, which gives the same numbers (tested).
Entries are written to a temporary name and renamed, so concurrent jobs never read a partial
one, and carry a checksum: a damaged entry is ignored and replaced.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import hashlib
import json
import logging
import os
import sys
import tempfile
import types
from pathlib import Path

import jax
import numpy as np

log = logging.getLogger("lambda_hat")

SUBDIRECTORY = "lambda-hat-programs"
MAGIC = b"lambda-hat exported program 2\n"
_LIBRARY_ROOTS = ("jax", "jaxlib", "blackjax", "optax", "numpy")
_VERSIONED_ROOTS = (*_LIBRARY_ROOTS, "lambda_hat")
"""Packages whose code is pinned by the key (versions, or this package's source digest), so
their modules and classes are described by name."""
_MAX_DEPTH = 40


class Unkeyable(Exception):
    """A value the key cannot describe exactly: the program is not cached."""


def default_cache_dir() -> Path | None:
    """`<JAX compilation cache>/lambda-hat-programs`, or None when JAX has no persistent cache
    (then nothing is stored: without it a stored program would still be compiled anew) or
    LAMBDA_HAT_PROGRAM_CACHE=0 turns it off."""
    if not jax.config.jax_enable_compilation_cache or os.environ.get(
            "LAMBDA_HAT_PROGRAM_CACHE", "1") == "0":
        return None
    directory = jax.config.jax_compilation_cache_dir
    return Path(directory) / SUBDIRECTORY if directory else None


MEMORY_ENTRIES = 32
_memory: collections.OrderedDict = collections.OrderedDict()


def _memory_key(fn, args: tuple):
    """A hashable key of `jit(fn)` at `args` within this process, or None: the function by
    equality (a `partial`'s function and bound values, frozen settings and posteriors), the
    arguments by tree and abstract value. Data are arguments, so they are not part of it."""
    def parts(value):
        if isinstance(value, functools.partial):
            return ("partial", parts(value.func), tuple(parts(arg) for arg in value.args),
                    tuple(sorted((name, parts(arg)) for name, arg in value.keywords.items())))
        return value

    leaves, tree = jax.tree.flatten(args)
    key = (parts(fn), tree, tuple(str(jax.typeof(leaf)) for leaf in leaves),
           tuple(sorted((name, repr(value)) for name, value in jax.config.values.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def forget_programs() -> None:
    """Drop the programs this process keeps (the next call compiles or loads again)."""
    _memory.clear()


def compile_program(fn, args: tuple, cache_dir: Path | None):
    """(compiled, status) for `jit(fn)` at `args`; status is "memory", "hit", "miss" or
    "off".

    `compiled` takes the same arguments. A program compiled before in this process for an
    equal function and the same argument shapes is reused ("memory": a training loop that
    estimates λ̂ at each checkpoint compiles once). Off (no directory, or a function the key
    cannot describe) is `jax.jit(fn).lower(*args).compile()`.
    """
    key = _memory_key(fn, args)
    if key is not None and key in _memory:
        _memory.move_to_end(key)
        return _memory[key], "memory"
    compiled, status = _compile_program(fn, args, cache_dir)
    if key is not None:
        _memory[key] = compiled
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)
    return compiled, status


def _compile_program(fn, args: tuple, cache_dir: Path | None):
    if cache_dir is None:
        return jax.jit(fn).lower(*args).compile(), "off"
    try:
        key = program_key(fn, args)
    except Unkeyable as exc:
        log.debug("program not cached: %s", exc)
        return jax.jit(fn).lower(*args).compile(), "off"
    path = Path(cache_dir) / f"{key}.jaxexport"
    entry = _load(path)
    if entry is not None:
        try:
            return _from_entry(*entry, args), "hit"
        except Exception as exc:  # a stored program that no longer fits: recompute it
            log.debug("ignoring cached program %s: %s", path, exc)
    from jax import export

    try:
        exported = export.export(jax.jit(fn))(*args)
    except Exception as exc:  # not exportable (e.g. host callbacks); real errors re-raise below
        log.debug("program not exportable: %s", exc)
        return jax.jit(fn).lower(*args).compile(), "off"
    hits = _persistent_cache_hits()
    compiled = jax.jit(exported.call).lower(*args).compile()
    # An executable that JAX's persistent cache supplied serializes incompletely on CPU (a
    # new process then misses its kernels): store only what was compiled here.
    _store(path, exported, compiled if _persistent_cache_hits() == hits else None)
    return compiled, "miss"


@functools.lru_cache(maxsize=1)
def _persistent_hit_counter() -> list[int]:
    """A count of the compilations JAX's persistent cache supplies, kept by a listener to
    JAX's monitoring events (registered once per process, on first use)."""
    count = [0]

    def listen(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            count[0] += 1

    jax.monitoring.register_event_listener(listen)
    return count


def _persistent_cache_hits() -> int:
    return _persistent_hit_counter()[0]


def _from_entry(exported, executable, args):
    """The stored executable when it fits `args`; else the stored program, lowered (which
    finds its executable in JAX's compilation cache). Programs calling LAPACK take the second
    way: lowering registers the LAPACK kernels a loaded executable would call."""
    given = [(jax.typeof(leaf).shape, jax.typeof(leaf).dtype) for leaf in jax.tree.leaves(args)]
    if given != [(aval.shape, aval.dtype) for aval in exported.in_avals]:
        raise ValueError("the stored program was made for other argument shapes")
    if executable is None or b"lapack" in exported.mlir_module_serialized:
        return jax.jit(exported.call).lower(*args).compile()
    from jax.experimental.serialize_executable import deserialize_and_load

    return deserialize_and_load(executable, jax.tree.structure((args, {})), exported.out_tree)


def program_key(fn, args: tuple) -> str:
    """Hex digest of everything that determines the program of `jit(fn)` at `args`."""
    leaves, tree = jax.tree.flatten(args)
    material = {
        "function": _describe(fn, 0),
        "tree": str(tree),
        "avals": [str(jax.typeof(leaf)) for leaf in leaves],
        "environment": _environment(),
        "jax_config": {name: repr(value) for name, value in sorted(jax.config.values.items())},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _load(path: Path):
    """(exported program, serialized executable or None), or None if absent, damaged or
    unreadable.

    File: MAGIC, SHA-256 of the body, body = 4-byte length + JSON (the namedtuple classes of
    the argument and result trees, the sizes of the parts) + the `jax.export` serialization
    + the compiled executable (`jax.experimental.serialize_executable`).
    """
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    start = len(MAGIC) + 32
    body = blob[start:]
    if (len(blob) < start + 4 or not blob.startswith(MAGIC)
            or hashlib.sha256(body).digest() != blob[len(MAGIC):start]):
        log.debug("ignoring damaged cached program %s", path)
        return None
    from jax import export

    try:
        size = int.from_bytes(body[:4], "big")
        meta = json.loads(body[4:4 + size])
        for name in meta["namedtuples"]:
            _register_namedtuple(_class_named(name))
        program = body[4 + size:4 + size + meta["program_bytes"]]
        executable = body[4 + size + meta["program_bytes"]:] or None
        return export.deserialize(bytearray(program)), executable
    except Exception as exc:
        log.debug("ignoring unreadable cached program %s: %s", path, exc)
        return None


def _store(path: Path, exported, compiled) -> None:
    """Write the program and, unless `compiled` is None, its executable. Atomically (not
    `atomic_write_bytes`: no fsync, a lost entry costs a trace); a failure (no flatbuffers, full disk, read-only cache) only costs the
    next job a trace. A backend that cannot serialize executables stores the program alone."""
    from .artifacts import umask_mode

    try:
        names = sorted({_register_namedtuple(cls) for cls in
                        _namedtuple_classes((exported.in_tree, exported.out_tree))})
        program = bytes(exported.serialize())
        executable = b""
        if compiled is not None:
            try:
                from jax.experimental.serialize_executable import serialize

                executable = bytes(serialize(compiled)[0])
            except Exception as exc:
                log.debug("executable not serializable: %s", exc)
        meta = json.dumps({"namedtuples": names, "program_bytes": len(program)}).encode()
        body = len(meta).to_bytes(4, "big") + meta + program + executable
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + hashlib.sha256(body).digest() + body)
            os.chmod(tmp, umask_mode())  # mkstemp's 0600 would hide it from the user's group
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception as exc:
        log.debug("could not store program %s: %s", path, exc)


def _namedtuple_classes(trees):
    """Namedtuple classes in pytree definitions (e.g. a sampler's parameter tuple): export
    serializes only registered ones."""
    stack, found = list(trees), []
    while stack:
        tree = stack.pop()
        node = tree.node_data()
        if node is not None and _is_namedtuple(node[0]):
            found.append(node[0])
        stack.extend(tree.children())
    return found


def _is_namedtuple(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _register_namedtuple(cls) -> str:
    from jax import export

    name = f"{cls.__module__}:{cls.__qualname__}"
    try:
        export.register_namedtuple_serialization(cls, serialized_name=name)
    except ValueError:  # registered already
        pass
    return name


def _class_named(name: str):
    """A namedtuple class by `module:qualname`: from a module already imported, or one of this
    package's (a sampler's result types live in modules its `build` imports)."""
    import importlib

    module_name, qualname = name.split(":")
    if module_name not in sys.modules and module_name.split(".")[0] == "lambda_hat":
        importlib.import_module(module_name)
    value = sys.modules[module_name]
    for part in qualname.split("."):
        value = getattr(value, part)
    if not _is_namedtuple(value):
        raise TypeError(f"{name} is not a namedtuple class")
    return value


@functools.lru_cache(maxsize=1)
def _environment() -> dict:
    from .artifacts import package_versions

    device = jax.devices()[0]
    return {
        "cpu": _cpu_flags(),
        "versions": package_versions(),
        "python": sys.version,
        "package_source": _package_digest(),
        "backend": [jax.default_backend(), device.platform, device.device_kind,
                    jax.device_count()],
    }


def _cpu_flags() -> str:
    """The instruction-set flags of this machine's CPU (Linux), else its processor name."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return hashlib.sha256(line.encode()).hexdigest()
    except OSError:
        pass
    return platform.machine() + " " + platform.processor()


def _package_digest() -> str:
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _file_digest(filename: str) -> str:
    try:
        return hashlib.sha256(Path(filename).read_bytes()).hexdigest()
    except OSError:
        raise Unkeyable(f"source file {filename!r} cannot be read") from None


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', None)}"


def _module_digest(module_name: str | None) -> str:
    """'' for the versioned packages; else the digest of the module's source file."""
    if module_name and module_name.split(".")[0] in _VERSIONED_ROOTS:
        return ""
    module = sys.modules.get(module_name or "")
    filename = getattr(module, "__file__", None)
    if not filename:
        raise Unkeyable(f"module {module_name!r} has no source file")
    return _file_digest(filename)


def _describe(value, depth: int):
    """A JSON-able description that differs whenever `value` could trace differently."""
    if depth > _MAX_DEPTH:
        raise Unkeyable("value nested too deeply")
    depth += 1
    value_type = type(value)
    if value is None or value_type in (bool, int, float, str, bytes, complex, type(Ellipsis)):
        return [value_type.__name__, repr(value)]
    if isinstance(value, enum.Enum):
        return ["enum", _name(value_type), _module_digest(value_type.__module__), value.name]
    if isinstance(value, np.generic):
        return ["numpy scalar", str(value.dtype), repr(value.item())]
    if isinstance(value, (np.ndarray, jax.Array)):
        try:
            array = np.asarray(value)
        except Exception:  # a tracer
            raise Unkeyable("a traced value is closed over") from None
        return ["array", _name(value_type), str(jax.typeof(value)), str(array.dtype), array.shape,
                hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()]
    if value_type in (tuple, list, frozenset, set):
        items = [_describe(item, depth) for item in value]
        if value_type in (frozenset, set):
            items.sort(key=json.dumps)
        return [value_type.__name__, items]
    if value_type is dict:
        items = [[_describe(k, depth), _describe(v, depth)] for k, v in value.items()]
        return ["dict", sorted(items, key=json.dumps)]
    if isinstance(value, functools.partial):
        return ["partial", _describe(value.func, depth), _describe(value.args, depth),
                _describe(value.keywords, depth)]
    if isinstance(value, types.MethodType):
        return ["method", _describe(value.__func__, depth), _describe(value.__self__, depth)]
    if isinstance(value, types.FunctionType):
        return _describe_function(value, depth)
    if isinstance(value, types.CodeType):
        return _describe_code(value, depth)
    if isinstance(value, type):
        return ["class", _name(value), _module_digest(value.__module__)]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__, _module_digest(value.__name__)]
    if dataclasses.is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value)]
        names += sorted(set(getattr(value, "__dict__", {})) - set(names))
        fields = [[name, _describe(getattr(value, name), depth)] for name in names]
        return ["dataclass", _name(value_type), _module_digest(value_type.__module__), fields]
    if callable(value) and value_type.__module__.split(".")[0] in _LIBRARY_ROOTS:
        # A library's function object (a jitted function, a custom_jvp, a ufunc): by name,
        # and by the function it wraps, whose captures may differ between runs.
        wrapped = getattr(value, "__wrapped__", None)
        return ["callable", _name(value), _name(value_type),
                None if wrapped is None else _describe(wrapped, depth)]
    raise Unkeyable(f"cannot describe a {_name(value_type)}")


def _describe_code(code: types.CodeType, depth: int):
    """Bytecode, names and constants (nested code included). Not `marshal`: its output
    depends on reference counts."""
    return ["code", code.co_code.hex(), code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags, _describe(code.co_consts, depth)]


def _describe_function(fn: types.FunctionType, depth: int):
    """Code, source file, defaults and captured values."""
    code = fn.__code__
    if code.co_filename.startswith("<"):
        raise Unkeyable(f"{_name(fn)} has no source file")
    cells = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell: a name not bound yet
            raise Unkeyable(f"{_name(fn)} closes over an unbound {name!r}") from None
        cells.append([name, _describe(contents, depth)])
    return ["function", _name(fn), _describe_code(code, depth), _file_digest(code.co_filename),
            cells, _describe(fn.__defaults__, depth),
            _describe(fn.__kwdefaults__, depth)]
