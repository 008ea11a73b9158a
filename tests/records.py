"""Complete run summaries for tests of what reads them (table, plots, sweeps)."""

from __future__ import annotations

from lambda_hat.summary import RunSummary

BLANK = dict(chains_total=4, chains_failed=0, draws_per_chain=100, burn_in=0, llc_per_chain=[],
             llc_mean=None, llc_std=None, llc_mcse=None, ess=None, ess_bulk=None,
             ess_tail=None, r_hat=None, experiment="e", target="t", sampler="s", kind="sgld",
             settings={}, seed=0, markov_chain=True, loss_trace="minibatch_mean",
             trace_every=1, dtype="float32", n=100, d=2, beta=1.0, gamma=1.0, nbeta=100.0,
             loss_star=0.0, true_llc=None, multiplicity=None, target_hash="", rel_error=None,
             fraction_below_loss_star=None, grad_evals=1.0, compile_seconds=0.0,
             sample_seconds=0.0, wall_seconds=0.0, ess_per_second=None,
             ess_per_grad_eval=None, stats={}, warnings=(), status="ok", versions={})
"""Every field of a run summary, with values these tests do not look at."""


def run_summary(**fields) -> RunSummary:
    return RunSummary(**{**BLANK, **fields})
