"""lambda-hat: estimate the local learning coefficient (LLC) of neural networks."""

__version__ = "0.1.0"
