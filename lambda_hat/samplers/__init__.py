"""Sampler registry: one module per algorithm (the shape of a module: `base`), one line each.

Modules import JAX only inside `build`, so the configuration layer reads their `Settings`
without importing it.
"""

from __future__ import annotations

from . import hmc, mclmc, nuts, sghmc, sgld, sgld_adam, sgld_rmsprop, sgnht, vi

REGISTRY = {
    "hmc": hmc,
    "nuts": nuts,
    "mclmc": mclmc,
    "sgld": sgld,
    "sgld_rmsprop": sgld_rmsprop,
    "sgld_adam": sgld_adam,
    "sgnht": sgnht,
    "sghmc": sghmc,
    "vi": vi,
}
