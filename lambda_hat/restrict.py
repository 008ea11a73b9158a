"""The restricted LLC: sample only some parameter groups of a network, the rest held at w*.

A likelihood that can be restricted names its parameter groups (`parameter_groups()`):
contiguous slices of the flat vector, each with a path (`1/weight`, or a python target's
pytree path such as `params/Dense_0/kernel`) and a layer index. A `restrict:` list picks
groups by layer index (an integer) or by path glob (a string); `Restricted` is then the
likelihood of those parameters alone, so every sampler, the driver and the estimator work
on it unchanged.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, NamedTuple


class Group(NamedTuple):
    path: str
    start: int
    stop: int
    layer: int | None


def selected_groups(groups: list[Group], restrict, where: str) -> list[Group]:
    """The groups `restrict` names, in layout order; every entry must name at least one."""
    from .errors import ConfigError

    chosen = set()
    for entry in restrict:
        if isinstance(entry, int):
            matches = {group for group in groups if group.layer == entry}
        else:
            matches = {group for group in groups if fnmatch.fnmatchcase(group.path, entry)}
        if not matches:
            layers = sorted({group.layer for group in groups if group.layer is not None})
            raise ConfigError([
                f"{where}: {entry!r} names no parameter group; layers "
                f"{', '.join(map(str, layers)) or '(none)'}, paths "
                f"{', '.join(group.path for group in groups)}"])
        chosen |= matches
    return sorted(chosen, key=lambda group: group.start)


def free_ranges(groups: list[Group]) -> tuple[tuple[int, int], ...]:
    """Merged (start, stop) slices of the chosen groups."""
    merged: list[list[int]] = []
    for group in groups:
        if merged and merged[-1][1] == group.start:
            merged[-1][1] = group.stop
        else:
            merged.append([group.start, group.stop])
    return tuple((start, stop) for start, stop in merged)


@dataclass(frozen=True)
class Restricted:
    """`likelihood` as a function of the free slices of w alone; the others stay at w*.
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

    def full(self, u, w_star):
        """w* with the free slices replaced by u (static slices: no scatter)."""
        import jax.numpy as jnp

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

    def prepare(self, arrays: dict, dtype) -> dict:
        import jax.numpy as jnp

        base = self.likelihood.prepare(arrays, dtype)
        w_star = jnp.concatenate([base["w_star"][start:stop] for start, stop in self.free])
        return {"base": base, "w_star": w_star}


def restricted(likelihood, restrict, where: str) -> tuple[Restricted, list[str]]:
    """The likelihood of the groups `restrict` names, and their paths."""
    from .errors import ConfigError

    groups = likelihood.parameter_groups()
    if not groups:
        raise ConfigError([f"{where}: this target has no parameter groups to restrict to"])
    chosen = selected_groups(groups, restrict, where)
    return (Restricted(likelihood, free_ranges(chosen), likelihood.num_params),
            [group.path for group in chosen])
