"""lambda-hat: estimate the local learning coefficient (LLC) of neural networks.

`estimate(apply, params, data, ...)` samples from Python (docs/python-api.md); the
`lambda-hat` CLI and the Snakemake workflow run the same code on experiment files.
"""

from .api import Result, estimate
from .errors import ConfigError, LambdaHatError, PrecisionError, SamplingFailed
from .observables import Figure, Observables

__all__ = ["ConfigError", "Figure", "LambdaHatError", "Observables", "PrecisionError", "Result",
           "SamplingFailed", "estimate"]
__version__ = "0.1.0"
