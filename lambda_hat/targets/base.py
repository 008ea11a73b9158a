"""The contract every target kind module meets, and what its likelihood offers. JAX-free.

`tests/test_contracts.py` checks every module of `lambda_hat.targets.REGISTRY` against
`TargetKind`, so a hook the config check, the build, the workflow or the plots need cannot
be missing or misspelt; nothing probes a module for optional names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

Checkpoints = Literal["none", "training_steps", "checked_at_build"]
"""What a target's `checkpoints:` may name: nothing (the target is not trained), steps of
the training this tool runs (checked against `training.steps` when the file is read), or
names the target's own code defines (checked when it is built)."""


@runtime_checkable
class Likelihood(Protocol):
    """The loss a posterior is made of; `prepare` turns the stored arrays into its data."""

    num_params: int
    loss_eval_cost: float
    """A full-data L_n's cost in full-gradient equivalents (0 where it is free: no data)."""

    def prepare(self, arrays: dict, dtype) -> dict: ...

    def loss(self, w, data): ...

    def batch_loss(self, w, data, index): ...

    def parameter_groups(self) -> list:
        """The groups `restrict:` may name (layers, parameter paths); empty: none."""


@runtime_checkable
class ObservableLikelihood(Likelihood, Protocol):
    """A likelihood whose L_n is a mean over data points, each point's loss recordable (the
    likelihood of a kind whose `OBSERVABLE` is True: a sampler's `observe:`)."""

    def observed_losses(self, w, points: dict, data: dict):
        """ℓᵢ(w) for each point of `points` (per token for a sequence model)."""

    def prepare_points(self, arrays: dict, dtype) -> dict:
        """Points (X, Y, an optional mask) as `observed_losses` takes them."""


class TargetKind(Protocol):
    """A target kind module (`dln`, `mlp`, `quadratic`, `python`)."""

    Model: type
    """Frozen dataclass of its `model:` settings, from which the config check is derived."""
    DEFAULTS: dict
    """Its defaults for the rest of the target entry (a `loss` key: it takes `loss:`)."""
    PROPER_WITHOUT_LOCALIZER: bool
    """Whether γ = 0 leaves its posterior proper (otherwise the config check refuses it)."""
    CHECKPOINTS: Checkpoints
    COMPARISON_DATA: str
    """The inputs its target plot compares the student at w* with the reference on."""
    TAKES_DATA: bool
    """Whether the entry's `data:` makes its data (False: the model makes its own, and
    `data:` is a config error)."""
    SIZE_KEY: str
    OBSERVABLE: bool
    """Whether its loss is a mean over data points whose losses a run can record
    (a sampler's `observe:`)."""
    """The key that sets its n, as advice names it ("data.n")."""
    check: Callable[[Any], list[tuple[str, str]]]
    """Problems of a typed `Model` no type can express, as (key, message) pairs."""
    sources: Callable[[Any], list[Path]]
    """Files the target is made from: the workflow rebuilds it when one changes."""
    likelihood: Callable[[Any, dict], Likelihood]
    build: Callable
    """`build(model, config, where, dtype) -> Built`: arrays and the exact λ where known."""


def no_sources(model) -> list[Path]:
    """A target made from its settings alone."""
    return []
