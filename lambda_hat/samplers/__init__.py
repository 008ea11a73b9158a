"""Sampler registry.

Each family lives in a module with a pure `run(posterior, data, settings, seed)`; this table
only declares what the configuration layer needs without importing JAX: the kind, the
module, the default precision and the defaults (which also define the keys a kind accepts).
Adding a sampler means adding a module and one entry here; the CLI and the workflow read
everything else from the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

COMMON_DEFAULTS = {"chains": 4, "seed": 0, "sweep_of": None}
"""`sweep_of` names the sampler entry a calibration grid point came from (lambda_hat.sweep)."""
SGLD_COMMON = {
    "steps": 40000,
    "batch_size": 256,
    "burn_in": 0.5,
    "eval_every": "auto",
    "replacement": True,
}
PRECONDITIONED = {"step_size": "auto", "step_size_scale": 0.2,
                  "stabilizer": "auto", "stabilizer_scale": 0.1}


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
    choices: dict = field(default_factory=dict)
    """Settings that take one of a few words: the config check names the key and the words
    before any job starts, instead of a sampler failing mid-workflow."""

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
            choices={"adaptation": ("per_chain", "shared")},
        ),
        SamplerSpec(
            kind="nuts",
            module="hmc",
            function="run_nuts",
            dtype="float64",
            defaults={
                "warmup": 500,
                "draws": 1000,
                "max_tree_depth": 6,
                "target_accept": 0.9,
                "adaptation": "per_chain",
            },
            choices={"adaptation": ("per_chain", "shared")},
        ),
        SamplerSpec(
            kind="mclmc",
            module="mclmc",
            dtype="float64",
            defaults={
                "warmup": 1000,
                "draws": 4000,
                "L": "auto",
                "step_size": "auto",
                "desired_energy_var": 5.0e-4,
                "diagonal_preconditioning": True,
            },
        ),
        SamplerSpec(
            kind="sgld",
            module="sgld",
            dtype="float32",
            defaults={**SGLD_COMMON, "step_size": "auto", "step_size_scale": 0.2},
        ),
        SamplerSpec(
            kind="sgld_rmsprop",
            module="sgld",
            function="run_rmsprop",
            dtype="float32",
            defaults={**SGLD_COMMON, **PRECONDITIONED, "beta2": 0.999},
        ),
        SamplerSpec(
            kind="sgld_adam",
            module="sgld",
            function="run_adam",
            dtype="float32",
            # β1 = 0.5, β2 = 0.9999: see sgld.resolve_step_size (drift lag) and
            # docs/samplers.md (preconditioner-position correlation).
            defaults={**SGLD_COMMON, **PRECONDITIONED, "beta1": 0.5, "beta2": 0.9999},
        ),
        SamplerSpec(
            kind="sgnht",
            module="sgld",
            function="run_sgnht",
            dtype="float32",
            defaults={**SGLD_COMMON, "step_size": "auto", "step_size_scale": 0.1, "alpha": 10.0},
        ),
        SamplerSpec(
            kind="vi",
            module="vi",
            dtype="float32",
            is_markov_chain=False,
            defaults={
                "components": 4,
                "rank": 2,
                "whitening": "hessian",
                "init_sigma": 0.3,
                "steps": 3000,
                "learning_rate": 1.0e-2,
                "learning_rate_decay": "cosine",
                "samples": 4,
                "batch_size": 256,
                "draws": 1000,
                "eval_every": 10,
                "replacement": True,
            },
            choices={"whitening": ("hessian", "none"), "learning_rate_decay": ("cosine", "none")},
        ),
    )
}
