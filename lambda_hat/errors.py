"""Errors the CLI reports as one line instead of a traceback."""


class LambdaHatError(Exception):
    """A problem the user can fix: bad input, missing or corrupt artifact, failed run."""


class ConfigError(LambdaHatError):
    """One or more problems in an experiment file; each names the file and the key path."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ArtifactError(LambdaHatError):
    """A target or run artifact is missing, truncated or does not match its record."""


class PrecisionError(LambdaHatError):
    """The process's JAX precision differs from the one the sampler declares."""


class SamplingFailed(LambdaHatError):
    """Every chain diverged: there is no estimate to report."""
