"""The restricted LLC: sample only part of a network's parameters, the rest held at w*, to
see where its complexity sits (one layer, one attention head, one neuron).

A likelihood that can be restricted names its parameter groups (`parameter_groups()`): its
leaves, each a contiguous slice of the flat vector with a path (`1/weight`, or a python
target's pytree path such as `params/Dense_0/kernel`), a layer index and a shape. A
`restrict:` entry picks groups by layer index (an integer) or path glob (a string), part of
each leaf a glob matches by a NumPy basic index (`kernel[:, 2, :]`, parsed, never evaluated:
a config is data), or, from Python, by a mask function. Entries are checked against the
leaves' shapes here, so a mistyped one stops a job before it samples, not after.

`Restricted` is then the likelihood of the chosen elements alone, so every sampler, the driver
and the estimator work on it unchanged. It rebuilds w from a few contiguous runs by static
slices (no scatter: the fastest, and the program whole groups always had), from many (head 2
of a fused kernel is one run per row) by one scatter with a constant index, which compiles
to one op where hundreds of slices would not.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

MAX_SLICES = 64
"""Up to this many free runs w is rebuilt by concatenating static slices, else by a scatter."""


class Group(NamedTuple):
    path: str
    start: int
    stop: int
    layer: int | None
    shape: tuple[int, ...] | None = None
    """The leaf's shape (row-major in start..stop); None: unknown, so the group can be
    chosen only whole."""


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def split_entry(entry: str) -> tuple[str, str | None]:
    """(path glob, index text) of `glob[index]`; index None for a plain glob."""
    if entry.endswith("]") and "[" in entry:
        cut = entry.rindex("[")
        return entry[:cut], entry[cut + 1:-1]
    return entry, None


def parse_index(text: str) -> tuple:
    """A basic index (integers, slices `a:b:c`, `...`), comma-separated, as Python would
    build it from `x[text]`; ValueError otherwise (nothing is evaluated)."""
    index = []
    for part in text.split(","):
        part = part.strip()
        if part == "...":
            index.append(Ellipsis)
        elif ":" in part:
            bounds = part.split(":")
            if len(bounds) > 3 or not all(not b.strip() or _INTEGER.fullmatch(b)
                                          for b in bounds):
                raise ValueError(f"{part!r} is not a slice a:b:c of integers")
            index.append(slice(*(int(b) if b.strip() else None for b in bounds)))
        elif _INTEGER.fullmatch(part):
            index.append(int(part))
        else:
            raise ValueError(f"{part!r} is not an integer, a slice or ...")
    return tuple(index)


def check_index(index: tuple, shape: tuple[int, ...]) -> str | None:
    """What is wrong with `index` on an array of `shape` (one index per dimension, `...` for
    any rest; integers in range; a non-empty selection), or None."""
    ellipses = sum(part is Ellipsis for part in index)
    explicit = len(index) - ellipses
    if ellipses > 1:
        return "more than one ..."
    if explicit > len(shape) or (not ellipses and explicit != len(shape)):
        return (f"{explicit} {'index' if explicit == 1 else 'indices'} for {len(shape)} "
                "dimensions (one each, or ... for the rest)")
    if ellipses:
        at = index.index(Ellipsis)
        index = (*index[:at], *(slice(None),) * (len(shape) - explicit), *index[at + 1:])
    for dim, (part, size) in enumerate(zip(index, shape)):
        if isinstance(part, int) and not -size <= part < size:
            return f"index {part} is out of range for dimension {dim} (size {size})"
        if isinstance(part, slice) and part.step == 0:
            return f"dimension {dim} has slice step 0"
    if np.empty(shape, bool)[index].size == 0:
        return "it selects nothing"
    return None


def _name(entry) -> str:
    return repr(entry) if isinstance(entry, (int, str)) else getattr(
        entry, "__name__", repr(entry))


def _local(entry, group: Group, where: str) -> tuple[str, np.ndarray | None] | None:
    """(label, indices within the group, None for all of it) that `entry` picks, or None."""
    from .errors import ConfigError

    size = group.stop - group.start
    if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
        return (group.path, None) if group.layer == entry else None
    if isinstance(entry, str):
        glob, text = split_entry(entry)
        if not fnmatch.fnmatchcase(group.path, glob):
            return None
        if text is None:
            return group.path, None
        if group.shape is None:
            raise ConfigError([f"{where}: {entry!r} on {group.path}: the leaf's shape is not "
                               "known, so it cannot be indexed"])
        try:
            index = parse_index(text)
            problem = check_index(index, group.shape)
        except ValueError as exc:
            problem = f"{exc} (an index is integers, slices a:b:c and ..., comma-separated)"
        if problem:
            raise ConfigError([f"{where}: {entry!r} on {group.path} (shape {group.shape}): "
                               f"{problem}"])
        return (f"{group.path}[{text}]",
                np.sort(np.arange(size, dtype=np.int64).reshape(group.shape)[index], None))
    if callable(entry):
        if group.shape is None:
            raise ConfigError([f"{where}: mask {_name(entry)} on {group.path}: the leaf's "
                               "shape is not known, so it cannot be masked"])
        mask = entry(group.path, group.shape)
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != group.shape or mask.dtype != bool:
            raise ConfigError([f"{where}: mask {_name(entry)} gave a {mask.dtype} array of "
                               f"shape {mask.shape} for {group.path} (shape {group.shape}); "
                               "it must give None or a bool array of the leaf's shape"])
        picked = np.flatnonzero(mask)
        if not len(picked):
            return None
        return f"{group.path} (mask: {len(picked)} of {size})", picked
    raise ConfigError([f"{where}: {_name(entry)} is not a layer index, a path or a mask"])


def selection(groups: list[Group], restrict, where: str) -> list[tuple[str, np.ndarray]]:
    """(label, sorted flat indices) of each part of a leaf `restrict` picks, in layout order:
    a whole leaf under its path, part of one under the entry as written for it
    (`kernel[:, 2, :]`). Every entry must pick something."""
    from .errors import ConfigError

    picks: list[list[tuple[str, np.ndarray | None]]] = [[] for _ in groups]
    for entry in restrict:
        found = False
        for group, chosen in zip(groups, picks):
            picked = _local(entry, group, where)
            if picked is not None:
                chosen.append(picked)
                found = True
        if not found:
            layers = sorted({group.layer for group in groups if group.layer is not None})
            paths = ", ".join(group.path if group.shape is None else
                              f"{group.path} {group.shape}" for group in groups)
            raise ConfigError([
                f"{where}: {_name(entry)} names no parameter group; layers "
                f"{', '.join(map(str, layers)) or '(none)'}, paths {paths}"])
    pieces = []
    for group, chosen in sorted(zip(groups, picks), key=lambda pair: pair[0].start):
        if not chosen:
            continue
        whole = np.arange(group.stop - group.start, dtype=np.int64)
        union = np.unique(np.concatenate([whole if local is None else local
                                          for _, local in chosen]))
        if len(union) == len(whole):
            pieces.append((group.path, group.start + whole))
        else:
            pieces += [(label, group.start + local) for label, local in chosen]
    return pieces


def runs(indices: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The distinct `indices` as merged (start, stop) runs, in order."""
    indices = np.unique(indices)
    if not len(indices):
        return ()
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = indices[np.concatenate([[0], breaks])]
    stops = indices[np.concatenate([breaks - 1, [len(indices) - 1]])] + 1
    return tuple(zip(starts.tolist(), stops.tolist()))


@dataclass(frozen=True)
class Restricted:
    """`likelihood` as a function of the free runs of w alone; the others stay at w*.
    Its data is the base likelihood's (`base`) with `w_star` the free part of w*."""

    likelihood: Any
    free: tuple[tuple[int, int], ...]
    size: int
    """The base likelihood's number of parameters."""

    @property
    def num_params(self) -> int:
        return sum(stop - start for start, stop in self.free)

    @property
    def loss_eval_cost(self) -> float:
        return self.likelihood.loss_eval_cost

    def index(self) -> np.ndarray:
        """The free positions of w, in order."""
        starts, stops = np.array(self.free, np.int64).reshape(-1, 2).T
        lengths = stops - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        dtype = np.int32 if self.size < 2 ** 31 else np.int64
        return (offsets + np.arange(lengths.sum())).astype(dtype)

    def full(self, u, w_star):
        """w* with the free runs replaced by u."""
        import jax.numpy as jnp

        if len(self.free) > MAX_SLICES:
            return w_star.at[self.index()].set(u, indices_are_sorted=True,
                                               unique_indices=True)
        pieces, offset, previous = [], 0, 0
        for start, stop in self.free:
            pieces += [w_star[previous:start], u[offset:offset + stop - start]]
            offset, previous = offset + stop - start, stop
        pieces.append(w_star[previous:self.size])
        return jnp.concatenate(pieces)

    def loss(self, u, data):
        base = data["base"]
        return self.likelihood.loss(self.full(u, base["w_star"]), base)

    def batch_loss(self, u, data, index):
        base = data["base"]
        return self.likelihood.batch_loss(self.full(u, base["w_star"]), base, index)

    def observed_losses(self, u, points: dict, data: dict):
        """The base likelihood's per-point (per-token) losses at w* with the free runs u:
        observables of a restricted posterior (its susceptibilities)."""
        base = data["base"]
        return self.likelihood.observed_losses(self.full(u, base["w_star"]), points, base)

    def prepare_points(self, arrays: dict, dtype) -> dict:
        return self.likelihood.prepare_points(arrays, dtype)

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        base = self.likelihood.prepare(arrays, dtype)
        if len(self.free) > MAX_SLICES:
            w_star = base["w_star"][self.index()]
        else:
            w_star = jnp.concatenate([base["w_star"][start:stop] for start, stop in self.free])
        return {"base": base, "w_star": w_star}


def restricted(likelihood, restrict, where: str) -> tuple[Restricted, list[str]]:
    """The likelihood of what `restrict` picks, and the labels of what it picks (`where`,
    the file and key, starts every error)."""
    from .errors import ConfigError

    groups = likelihood.parameter_groups()
    if not groups:
        raise ConfigError([f"{where}: this target has no parameter groups to restrict to"])
    pieces = selection(groups, restrict, where)
    free = runs(np.concatenate([indices for _, indices in pieces]))
    return (Restricted(likelihood, free, likelihood.num_params),
            list(dict.fromkeys(label for label, _ in pieces)))
