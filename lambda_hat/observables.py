"""Per-sample observables of a run: the losses ℓᵢ(w) of chosen points at each trace point.

A run that observes a set of points records, at every trace point's draw w, the loss of
each point (of each token, for a sequence model) and L_n(w): one `vmap` over the points
inside the chain's program (`lambda_hat.samplers.driver`). From the kept draws:

- the per-sample LLC λ̂ᵢ = nβ (E[ℓᵢ] − ℓᵢ(w*)), and per token for sequences;
- the data-refined LLC of a subset S: nβ (E[ℓ_S] − ℓ_S(w*)) with ℓ_S the mean over S;
- the Bayesian influence function BIF(i, j) = −Cov(ℓᵢ, ℓⱼ);
- the susceptibility χᵢ = −nβ Cov(L_n, ℓᵢ − L_n): under the loss L_n + ε(ℓᵢ − L_n),
  which up-weights point i against the data, dE[L_n]/dε = χᵢ at ε = 0. Under a restricted
  posterior (`restrict:`) it is the response of that part of the network alone.

Every figure comes with a Monte Carlo standard error by batch means: each chain's kept
draws are cut into `BATCHES_PER_CHAIN` contiguous batches, and the spread of the batch
figures (around the pooled one) over √batches is the MCSE. It needs batches longer than
the chains' autocorrelation; with fewer than `MIN_BATCHES` batches there is none.

Memory: the trace holds chains × trace points × points (× tokens) numbers of the run's
precision; time: one forward pass over the observed points and one over the data (L_n) per
trace point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCHES_PER_CHAIN = 4
MIN_BATCHES = 8


@dataclass(frozen=True)
class Figure:
    """An estimate and its MCSE (None: too few batches to say)."""

    value: np.ndarray
    mcse: np.ndarray | None


@dataclass(frozen=True)
class Observables:
    """The observed losses of a run's kept draws, and the figures made of them."""

    losses: np.ndarray
    """ℓ at each kept draw: [chains, draws, points] or [chains, draws, points, tokens]."""
    at_w_star: np.ndarray
    """ℓ at w*: [points] or [points, tokens]."""
    loss: np.ndarray
    """L_n at the same draws: [chains, draws]."""
    nbeta: float
    mask: np.ndarray | None = None
    """The tokens that count, [points, tokens] (sequence models; None: all)."""

    @classmethod
    def from_trace(cls, trace: dict, burn_in: int, nbeta: float) -> "Observables":
        """From a run's traces (`observed_losses`, `observed_L_n`,
        `observed_losses_at_w_star` and, for a masked sequence model, `observed_mask`),
        dropping the burn-in."""
        mask = trace.get("observed_mask")
        return cls(np.asarray(trace["observed_losses"], np.float64)[:, burn_in:],
                   np.asarray(trace["observed_losses_at_w_star"], np.float64),
                   np.asarray(trace["observed_L_n"], np.float64)[:, burn_in:],
                   float(nbeta), None if mask is None else np.asarray(mask, bool))

    @classmethod
    def from_run(cls, run_dir) -> "Observables":
        """From a pipeline run's directory (`runs/<target>/<sampler>/`, whose sampler set
        `observe:`)."""
        from pathlib import Path

        from .artifacts import read_npz
        from .errors import ArtifactError
        from .summary import read_summary

        run_dir = Path(run_dir)
        summary = read_summary(run_dir / "summary.json")
        trace = read_npz(run_dir / "trace.npz", required=("loss", "burn_in"))
        if "observed_losses" not in trace:
            raise ArtifactError(f"{run_dir / 'trace.npz'}: the run observed no points (set "
                                f"observe: in sampler {summary.sampler!r}'s entry)")
        return cls.from_trace(trace, summary.burn_in, summary.nbeta)

    @property
    def sequences(self) -> bool:
        return self.losses.ndim == 4

    def _point_losses(self, losses):
        """ℓᵢ from per-token losses: the (masked) mean over the sequence."""
        if not self.sequences:
            return losses
        if self.mask is None:
            return losses.mean(axis=-1)
        kept = self.mask.astype(np.float64)
        return (losses * kept).sum(axis=-1) / np.maximum(kept.sum(axis=-1), 1)

    @property
    def point_losses(self) -> np.ndarray:
        """ℓᵢ at each kept draw, [chains, draws, points]."""
        return self._point_losses(self.losses)

    def per_sample_llc(self) -> Figure:
        """λ̂ᵢ = nβ (E[ℓᵢ] − ℓᵢ(w*)) for every observed point."""
        star = self._point_losses(self.at_w_star)
        return _mean(self.nbeta * (self.point_losses - star))

    def per_token_llc(self) -> Figure:
        """λ̂ᵢₜ = nβ (E[ℓᵢₜ] − ℓᵢₜ(w*)) for every token (NaN where the mask drops it)."""
        if not self.sequences:
            raise ValueError("per-token λ̂ needs a sequence model's per-token losses")
        figure = _mean(self.nbeta * (self.losses - self.at_w_star))
        if self.mask is None:
            return figure
        hide = np.where(self.mask, 1.0, np.nan)
        return Figure(figure.value * hide, None if figure.mcse is None else figure.mcse * hide)

    def llc_of(self, subset) -> Figure:
        """The data-refined LLC of a subset of the observed points (indices or a boolean
        mask over them)."""
        chosen = np.arange(self.losses.shape[2])[subset]
        if chosen.size == 0:
            raise ValueError("the subset selects no observed point")
        star = self._point_losses(self.at_w_star)[chosen].mean()
        return _mean(self.nbeta * (self.point_losses[..., chosen].mean(axis=-1) - star))

    def bif(self) -> Figure:
        """BIF(i, j) = −Cov(ℓᵢ, ℓⱼ) over the posterior, [points, points]."""
        flat = self.point_losses
        centred = flat - flat.reshape(-1, flat.shape[-1]).mean(axis=0)
        return _mean(-centred[..., :, None] * centred[..., None, :])

    def susceptibility(self) -> Figure:
        """χᵢ = −nβ Cov(L_n, ℓᵢ − L_n), [points]: dE[L_n]/dε under L_n + ε(ℓᵢ − L_n)."""
        relative = self.point_losses - self.loss[..., None]
        loss = self.loss - self.loss.mean()
        centred = relative - relative.reshape(-1, relative.shape[-1]).mean(axis=0)
        return _mean(-self.nbeta * loss[..., None] * centred)


def _mean(values: np.ndarray) -> Figure:
    """The mean over chains and draws (the first two axes) of a per-draw quantity, with its
    batch-means MCSE."""
    chains, draws = values.shape[:2]
    per_chain = draws // BATCHES_PER_CHAIN
    value = values.mean(axis=(0, 1))
    if chains * BATCHES_PER_CHAIN < MIN_BATCHES or per_chain < 2:
        return Figure(value, None)
    batches = values[:, :per_chain * BATCHES_PER_CHAIN].reshape(
        chains * BATCHES_PER_CHAIN, per_chain, *values.shape[2:]).mean(axis=1)
    spread = np.sqrt(((batches - value) ** 2).sum(axis=0) / (len(batches) - 1))
    return Figure(value, spread / np.sqrt(len(batches)))
