"""lambda-hat: estimate the local learning coefficient (LLC) of neural networks.

`estimate(apply, params, data, ...)` samples from Python (docs/python-api.md); the
`lambda-hat` CLI and the Snakemake workflow run the same code on experiment files.
"""

from .api import Result, estimate
from .observables import Observables

__all__ = ["Observables", "Result", "estimate"]
__version__ = "0.1.0"
