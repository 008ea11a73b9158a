"""Sampler registry.

Each family lives in its own module with a pure `run(posterior, settings, key)`; this table
only declares what the configuration layer needs without importing JAX: the kind, the
module, the default precision and the defaults (which also define the keys a kind accepts).
Adding a sampler means adding a module and one entry here; the CLI and the workflow read
everything else from the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

COMMON_DEFAULTS = {"chains": 4, "seed": 0}


@dataclass(frozen=True)
class SamplerSpec:
    kind: str
    module: str
    dtype: str
    defaults: dict = field(default_factory=dict)
    is_markov_chain: bool = True
    """False for VI: its history is an optimisation, not a chain, so no ESS / R-hat."""
    function: str = "run"
    """Entry point in `module`: kinds that share code (hmc, nuts) share a module."""

    @property
    def all_defaults(self) -> dict:
        return {**COMMON_DEFAULTS, "dtype": self.dtype, **self.defaults}

    def load_run(self):
        return getattr(importlib.import_module(f"lambda_hat.samplers.{self.module}"), self.function)


REGISTRY: dict[str, SamplerSpec] = {
    spec.kind: spec
    for spec in (
        SamplerSpec(
            kind="hmc",
            module="hmc",
            dtype="float64",
            defaults={
                "warmup": 500,
                "draws": 1000,
                "num_integration_steps": 16,
                "target_accept": 0.8,
                "adaptation": "per_chain",
                "step_size_jitter": 0.2,
            },
        ),
        SamplerSpec(
            kind="nuts",
            module="hmc",
            function="run_nuts",
            dtype="float64",
            defaults={
                "warmup": 500,
                "draws": 1000,
                "max_tree_depth": 10,
                "target_accept": 0.8,
                "adaptation": "per_chain",
            },
        ),
        SamplerSpec(
            kind="sgld",
            module="sgld",
            dtype="float32",
            defaults={
                "steps": 10000,
                "step_size": 1.0e-5,
                "batch_size": 256,
                "burn_in": 0.5,
                "eval_every": 10,
                "replacement": True,
            },
        ),
    )
}
