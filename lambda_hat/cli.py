"""`lambda-hat`: a thin command line over the library (parse, call, write files).

Heavy modules (JAX, matplotlib, pandas) are imported inside the command that needs them,
so `--help` and config errors answer at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import LambdaHatError

log = logging.getLogger("lambda_hat")


def _build(args) -> None:
    from .config import Experiment

    experiment = Experiment.load(args.config)
    config = experiment.target(args.target)
    from .artifacts import prepare_output_dir
    from .targets import build_target, save_target

    prepare_output_dir(args.out)
    record, arrays = build_target(args.target, config, experiment.name, args.threads)
    save_target(args.out, record, arrays)
    log.info("built target %s: n=%d d=%d L_n(w*)=%.6g true_llc=%s -> %s", args.target,
             record["n"], record["d"], record["loss_star"], record["true_llc"], args.out)


def _sample(args) -> None:
    from .config import Experiment

    experiment = Experiment.load(args.config)
    settings = experiment.sampler(args.sampler)
    from .artifacts import prepare_output_dir, write_npz
    from .runner import check_precision, sample_run
    from .summary import write_summary
    from .targets import load_target

    # Before the output directory is touched; `sample_run` checks again for its other callers.
    check_precision(settings.dtype, f"sampler {args.sampler!r} (kind {settings.kind})")
    target = load_target(args.target_dir)
    out = prepare_output_dir(args.out)
    log.info("%s/%s: %s in %s, %d chains × %d trace points, n = %d, d = %d; compiling",
             target.record["name"], args.sampler, settings.kind, settings.dtype,
             settings.chains, settings.trace_points, target.record["n"], target.record["d"])
    summary, traces = sample_run(experiment, args.sampler, target)
    write_npz(out / "trace.npz", traces)
    write_summary(out / "summary.json", summary)
    for warning in summary.warnings:
        log.warning("%s/%s: %s", summary.target, args.sampler, warning)
    mcse = summary.llc_mcse
    log.info("%s/%s: llc = %.4g ± %s (mcse), %s, %d grad evals, %.2fs sampling, status %s",
             summary.target, args.sampler, summary.llc_mean,
             "n/a" if mcse is None else f"{mcse:.3g}",
             "no exact λ" if summary.true_llc is None else f"exact {summary.true_llc:.4g}",
             summary.grad_evals, summary.sample_seconds, summary.status)


def _check(args) -> None:
    from .config import Experiment

    experiment = Experiment.load(args.config)
    print(f"{args.config}: ok ({len(experiment.target_names)} targets × "
          f"{len(experiment.sampler_names)} samplers)")


def _plot_run(args) -> None:
    from .plots import plot_run

    plot_run(args.run_dir, args.out)


def _export_arviz(args) -> None:
    from .inference_data import write_trace_nc

    log.info("ArviZ InferenceData -> %s", write_trace_nc(args.run_dir, args.out))


def _plot_target(args) -> None:
    from .plots import plot_target

    plot_target(args.target_dir, args.out)


def _plot_grid(args) -> None:
    from .plots import plot_grid

    plot_grid(args.table, args.out)


def _plot_checkpoints(args) -> None:
    from .plots import plot_checkpoints

    plot_checkpoints(args.table, args.targets_dir, args.out)


def _gallery(args) -> None:
    from .gallery import write_gallery

    page = write_gallery(args.summaries, args.plots_dir, args.out)
    log.info("gallery of %d runs -> %s", len(args.summaries), page)


def _aggregate(args) -> None:
    from .aggregate import aggregate_runs

    aggregate_runs(args.summaries, args.out)


def _plot_summary(args) -> None:
    from .plots import plot_summary

    plot_summary(args.table, args.out)


CONFIG = ("--config", "experiment YAML")
OUT_PNG = ("--out", "PNG file to write")
COMMANDS = [
    ("build", _build, "build one target (model, data, w*)",
     "Build a target and write target.json/target.npz.",
     [CONFIG, ("--target", "name of an entry under targets:"),
      ("--out", "target directory to write")]),
    ("sample", _sample, "run one sampler on one built target",
     "Sample and write trace.npz, then summary.json.",
     [CONFIG, ("--target-dir", "directory written by `build`"),
      ("--sampler", "name of an entry under samplers:"), ("--out", "run directory to write")]),
    ("check", _check, "validate an experiment file",
     "Check an experiment file; exit 1 on any problem.", [CONFIG]),
    ("plot-run", _plot_run, "diagnostic plots of one run", None,
     [("--run-dir", "directory written by `sample`"), OUT_PNG]),
    ("export-arviz", _export_arviz, "one run as ArviZ InferenceData (netCDF)",
     "Write the run's draws and sample stats as an ArviZ InferenceData netCDF file "
     "(pip install 'lambda-hat[arviz]').",
     [("--run-dir", "directory written by `sample`"), ("--out", "netCDF file to write")]),
    ("plot-target", _plot_target, "student against teacher, and the training curve", None,
     [("--target-dir", "directory written by `build`"), OUT_PNG]),
    ("aggregate", _aggregate, "collect run summaries into Parquet", None,
     [("summaries", "summary.json files"), ("--out", "Parquet file to write")]),
    ("plot-grid", _plot_grid, "λ̂ against each swept axis of the experiment's grids", None,
     [("--table", "Parquet file from `aggregate`"), OUT_PNG]),
    ("plot-checkpoints", _plot_checkpoints, "λ̂ along training, per target with checkpoints",
     None, [("--table", "Parquet file from `aggregate`"),
            ("--targets-dir", "results/<experiment>/targets (training curves)"), OUT_PNG]),
    ("gallery", _gallery, "copy an experiment's figures and a page of λ̂ into a folder",
     "Write OUT/index.md (λ̂ and R-hat per sampler) beside copies of the run, target and "
     "summary figures.",
     [("summaries", "summary.json files"), ("--plots-dir", "results/<experiment>/plots"),
      ("--out", "folder to write (results/<experiment>/gallery)")]),
    ("plot-summary", _plot_summary, "λ̂ per sampler and target", None,
     [("--table", "Parquet file from `aggregate`"), OUT_PNG]),
]
"""(name, function, help, description, [(flag, help)]): every flag is required; a name
without dashes is positional and takes one or more values."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-hat",
        description="Estimate the local learning coefficient (LLC) of neural networks.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads JAX may use (default: all; `build`: 1, as the "
                             "workflow builds); the workflow passes each job's share")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, func, summary, description, arguments in COMMANDS:
        command = commands.add_parser(name, help=summary, description=description or summary)
        for flag, help_text in arguments:
            if flag.startswith("--"):
                command.add_argument(flag, required=True, help=help_text)
            else:
                command.add_argument(flag, nargs="+", help=help_text)
        command.set_defaults(func=func)
    return parser


DEFAULT_THREADS = {"build": 1}
"""Commands whose result depends on the thread count, with the workflow's: training w* sums
gradients over the data, and XLA splits those sums by thread, so a build by hand takes the
pipeline's one thread to give the same w* bit for bit (sampling gives the same numbers on any
count: tests/faults/test_run_faults.py)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is None:
        args.threads = DEFAULT_THREADS.get(args.command)
    # On a GPU, JAX would otherwise reserve 75% of its memory at start-up.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        if args.threads is not None:
            from .threads import limit_xla_threads

            limit_xla_threads(args.threads)
        args.func(args)
    except LambdaHatError as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
    except OSError as exc:
        lines = [f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")]
    else:
        return 0
    for line in lines:
        print(f"lambda-hat {args.command}: error: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
