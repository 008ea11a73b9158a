"""The contract every sampler module meets (`Sampler`), the settings they share, and the
records between a kernel and the driver. JAX-free.

`lambda_hat.samplers.driver` owns the loops; the registry is `lambda_hat.samplers.REGISTRY`;
`tests/test_contracts.py` checks every registered module against `Sampler`, so no caller
probes a module for optional names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NamedTuple, Protocol

from ..settings import AUTO, bounded
from .stopping import Until

Precision = Literal["float32", "float64"]


@dataclass(frozen=True)
class SamplerSettings:
    """Settings every sampler has. β and γ default to the experiment's `posterior:`."""

    kind: str = ""
    chains: int = bounded(4, minimum=1)
    seed: int = bounded(0, minimum=0)
    dtype: Precision = "float64"
    beta: float | AUTO = bounded("auto", exclusiveMinimum=0)
    gamma: float = bounded(1.0, minimum=0)
    restrict: tuple[int | str, ...] | None = bounded(None, minItems=1)
    """Parameter groups to sample, by layer index or path glob (the rest stay at w*):
    the restricted LLC (`lambda_hat.restrict`). None: every parameter."""
    observe: int | Literal["data"] | None = bounded(None, minimum=1)
    """Record, at every trace point, the loss of each of the first `observe` training points
    (`"data"`: all of them), per token for a sequence model: the per-sample observables of
    `lambda_hat.observables`. MCMC samplers only; None: none."""
    until: Until | None = None
    """Stop early once the kept draws pass R-hat and ESS (`lambda_hat.samplers.stopping`);
    the run's length is then its budget. None: run it all. VI ignores it."""
    sweep_of: str | None = None
    """The sampler entry a grid point came from (`lambda_hat.grid`; calibration sweeps)."""
    grid_point: dict | None = None
    """The values its grid set (`replicate` included); None outside grids."""

    @property
    def trace_every(self) -> int:
        """Steps per trace point."""
        return 1

    @property
    def trace_points(self) -> int:
        """Trace points per chain (`draws` unless a family says otherwise)."""
        return self.draws

    @property
    def burn_in_fraction(self) -> float:
        """The fraction of trace points the estimate discards (warmup draws never reach
        the trace)."""
        return 0.0

    @property
    def warmup_steps(self) -> int:
        """Steps per chain before the trace (adaptation, a pilot, a fit): what the job log's
        progress counts besides the trace's `trace_points × trace_every`."""
        return 0

    @property
    def shared_adaptation(self) -> bool:
        """Whether one warmup serves every chain (its cost then spread over them)."""
        return False

    @property
    def smallest_n(self) -> int | None:
        """The fewest data points it can run on (None: any)."""
        return None


@dataclass(frozen=True)
class FullBatchSettings(SamplerSettings):
    warmup: int = bounded(500, minimum=0)
    draws: int = bounded(1000, minimum=1)
    """Draws kept per chain, after warmup."""
    thin: int = bounded(1, minimum=1)
    """Transitions per kept draw: `draws × thin` are run."""

    @property
    def trace_every(self) -> int:
        return self.thin

    @property
    def warmup_steps(self) -> int:
        return self.warmup

    @property
    def trace_points(self) -> int:
        return self.draws


@dataclass(frozen=True)
class BatchSettings(SamplerSettings):
    """A sampler that draws minibatches."""

    dtype: Precision = "float32"
    batch_size: int = bounded(256, minimum=1)
    replacement: bool = True

    @property
    def smallest_n(self) -> int | None:
        """A batch drawn without replacement needs that many points."""
        return None if self.replacement else self.batch_size


@dataclass(frozen=True)
class MinibatchSettings(BatchSettings):
    steps: int = bounded(40000, minimum=1)
    burn_in: float = bounded(0.5, minimum=0, exclusiveMaximum=1)
    """Fraction of the trace points discarded."""
    eval_every: int | AUTO = bounded("auto", minimum=1)
    """Steps per trace point; `auto` keeps the MALA probe near 4% of the cost."""
    step_size: float | AUTO | None = bounded("auto", exclusiveMinimum=0)
    step_size_scale: float = bounded(0.2, exclusiveMinimum=0)
    """τ of `step_size: auto`: the dimensionless step of the stiffest direction."""

    @property
    def trace_every(self) -> int:
        """`eval_every` resolved: `auto` keeps the MALA probe near 4% of the cost, and at
        least 100 trace points on short runs (the ESS below which a run is flagged)."""
        if self.eval_every != "auto":
            return int(self.eval_every)
        return max(1, min(AUTO_EVAL_EVERY, self.steps // 100))

    @property
    def trace_points(self) -> int:
        return self.steps // self.trace_every

    @property
    def burn_in_fraction(self) -> float:
        return self.burn_in


AUTO_EVAL_EVERY = 50
"""Steps per trace point under `eval_every: auto`: the MALA probe at each trace point costs
two minibatch gradients, 4% of 50 steps."""


def state_position(state):
    """The draw of a BlackJAX-style state (a NamedTuple with a `position`)."""
    return state.position


class Kernel(NamedTuple):
    """What `build` returns; the driver runs it.

    - `init(key, position) -> (state, params, warmup_info)`: one chain's start, including its
      adaptation (warmup draws are the driver's to discard); `params` are what `step` needs
      besides the state (an adapted step size, a mass matrix), `warmup_info` a NamedTuple
      whose `grad_evals` field is the warmup's cost.
    - `step(key, state, params) -> (state, info)`: one transition; `info.loss` is L_n at the
      new state (or an unbiased minibatch estimate of it) and `info.grad_evals` its cost in
      full-gradient equivalents.
    - `probe(key, state, params) -> info`: a check run at each trace point (minibatch
      samplers).

    How many trace points a chain records, and how many steps each spans, are the settings'
    (`trace_points`, `trace_every`). Without a probe the driver keeps every
    `trace_every`-th draw (thinning); with one, a trace point is the mean of those steps'
    losses (unbiased minibatch estimates) and the probe's result.
    - `vectorized`: chains by `vmap` (fixed-length steps) or one after another (`lax.map`:
      while-loops such as NUTS trees and BlackJAX's adaptation).
    - `position(state) -> w`: the draw a state holds, where observables are evaluated
      (None: the kernel's draws are not states, as VI's are not).
    """

    init: Callable
    step: Callable
    probe: Callable | None = None
    vectorized: bool = True
    position: Callable | None = state_position


class NoWarmup(NamedTuple):
    """The warmup info of a kernel that starts at w* without adapting, and the setup of a
    sampler that has none."""

    grad_evals: object = 0.0


@dataclass
class SamplerOutput:
    """A run as the driver returns it, chains first, as NumPy arrays.

    `loss[c, t]` is trace point t of chain c; the estimator averages `loss[:, burn_in:]`.
    `grad_evals_at[t]` is the cumulative cost per chain in full-gradient equivalents when
    trace point t was taken, warmup and setup included. `traces` holds every other per-step
    (or per-trace-point) field of the kernel's info, `warmup` the per-chain warmup info.
    """

    loss: Any
    burn_in: int
    grad_evals_at: Any
    traces: dict = field(default_factory=dict)
    warmup: Any = ()
    params: Any = ()
    setup: Any = ()
    nbeta: float = 1.0
    compile_seconds: float = 0.0
    sample_seconds: float = 0.0
    stopping: Any = None
    """How the run ended (`stopping.Stopping`): its length, and the `until` rule's check."""

    @property
    def grad_evals(self) -> float:
        """Total full-gradient equivalents over all chains."""
        return float(self.grad_evals_at[-1]) * self.loss.shape[0]


def no_setup(settings, posterior, key) -> NoWarmup:
    """`setup` of a sampler whose chains share nothing (each adapts on its own)."""
    return NoWarmup()


def no_pilot(settings, posterior, setup, states, key):
    """`pilot` of a sampler without one: the setup and the warmed states as they are."""
    return setup, states


def no_check(settings) -> list[tuple[str, str]]:
    """`check` of a sampler whose settings no value constrains beyond its types."""
    return []


def no_remedy(settings, stats: dict) -> None:
    """`remedy` of a sampler that has no change of settings to try on what it diagnosed."""
    return None


LossTrace = Literal["full_data", "minibatch_mean", "iid_draws"]


class Sampler(Protocol):
    """A sampler module: what the config check, the driver, the runner, the aggregate table
    and the exports call.

    - `Settings`: a frozen dataclass (subclass of `SamplerSettings`), its keys, defaults and
      words; `check(settings)` the problems between values, as (key, message) pairs;
    - `setup(settings, posterior, key)`: values shared by all chains (an automatic step
      size, a whitening), a NamedTuple whose `grad_evals` field is its cost;
    - `build(settings, posterior, setup) -> Kernel`: pure functions over a NamedTuple state,
      no loops over steps or chains, no timing, no I/O;
    - `pilot(settings, posterior, setup, states, key) -> (setup, states)`: runs all chains
      together from their warmed states to tune the shared setup (the minibatch samplers'
      automatic step); its draws are discarded;
    - `summarize(settings, output) -> dict`: the run's statistics from the driver's output;
      `warnings(stats) -> list[str]`: what a user must know before trusting the number;
    - `remedy(settings, stats)`: the settings to run again with when the statistics show a
      fault those settings fix (HMC's divergences: a higher target acceptance), or None;
      the runner reruns until it returns None (`no_remedy`: never);
    - `MARKOV_CHAIN` (False for VI: iid draws, so no ESS or R-hat), `FAILURE_HINT` (what to
      change when every chain diverges), `LOSS_TRACE` (what a trace point's loss is),
      `LEAPFROG` (a draw's `grad_evals` counts leapfrog steps) and `CAN_BE_REFERENCE` (the
      aggregate table compares other runs of a target with this one).
    """

    Settings: type
    MARKOV_CHAIN: bool
    FAILURE_HINT: str
    LOSS_TRACE: LossTrace
    LEAPFROG: bool
    CAN_BE_REFERENCE: bool
    check: Callable[[Any], list[tuple[str, str]]]
    setup: Callable
    build: Callable[..., Kernel]
    pilot: Callable
    summarize: Callable[[Any, SamplerOutput], dict]
    warnings: Callable[[dict], list[str]]
    remedy: Callable[[Any, dict], Any]
