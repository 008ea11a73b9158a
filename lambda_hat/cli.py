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
    from .runner import check_precision
    from .targets import build_target, save_target

    check_precision(config["dtype"], f"target {args.target!r}")
    from .artifacts import prepare_output_dir

    prepare_output_dir(args.out)
    record, arrays = build_target(args.target, config, experiment.name)
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

    check_precision(settings.dtype, f"sampler {args.sampler!r} (kind {settings.kind})")
    target = load_target(args.target_dir)
    out = prepare_output_dir(args.out)
    summary, traces = sample_run(experiment, args.sampler, target)
    write_npz(out / "trace.npz", traces)
    write_summary(out / "summary.json", summary)
    for warning in summary.warnings:
        log.warning("%s/%s: %s", summary.target, args.sampler, warning)
    mcse = summary.llc_mcse
    log.info("%s/%s: llc = %.4g ± %s (mcse), true %s, %d grad evals, %.2fs sampling",
             summary.target, args.sampler, summary.llc_mean,
             "n/a" if mcse is None else f"{mcse:.3g}", summary.true_llc,
             summary.grad_evals, summary.sample_seconds)


def _check(args) -> None:
    from .config import Experiment

    experiment = Experiment.load(args.config)
    print(f"{args.config}: ok ({len(experiment.target_names)} targets × "
          f"{len(experiment.sampler_names)} samplers)")


def _plot_run(args) -> None:
    from .plots import plot_run

    plot_run(args.run_dir, args.out)


def _aggregate(args) -> None:
    from .aggregate import aggregate_runs

    aggregate_runs(args.summaries, args.out)


def _plot_summary(args) -> None:
    from .plots import plot_summary

    plot_summary(args.table, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-hat",
        description="Estimate the local learning coefficient (LLC) of neural networks.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads JAX may use (default: all); the workflow passes "
                             "each job's share")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="build one target (model, data, w*)",
                                description="Build a target and write target.json/target.npz.")
    build.add_argument("--config", required=True, help="experiment YAML")
    build.add_argument("--target", required=True, help="name of an entry under targets:")
    build.add_argument("--out", required=True, help="target directory to write")
    build.set_defaults(func=_build)

    sample = commands.add_parser("sample", help="run one sampler on one built target",
                                 description="Sample and write trace.npz, then summary.json.")
    sample.add_argument("--config", required=True, help="experiment YAML")
    sample.add_argument("--target-dir", required=True, help="directory written by `build`")
    sample.add_argument("--sampler", required=True, help="name of an entry under samplers:")
    sample.add_argument("--out", required=True, help="run directory to write")
    sample.set_defaults(func=_sample)

    check = commands.add_parser("check", help="validate an experiment file",
                                description="Check an experiment file; exit 1 on any problem.")
    check.add_argument("--config", required=True, help="experiment YAML")
    check.set_defaults(func=_check)

    plot_run = commands.add_parser("plot-run", help="diagnostic plots of one run")
    plot_run.add_argument("--run-dir", required=True, help="directory written by `sample`")
    plot_run.add_argument("--out", required=True, help="PNG file to write")
    plot_run.set_defaults(func=_plot_run)

    aggregate = commands.add_parser("aggregate", help="collect run summaries into Parquet")
    aggregate.add_argument("summaries", nargs="+", help="summary.json files")
    aggregate.add_argument("--out", required=True, help="Parquet file to write")
    aggregate.set_defaults(func=_aggregate)

    plot_summary = commands.add_parser("plot-summary", help="λ̂ per sampler and target")
    plot_summary.add_argument("--table", required=True, help="Parquet file from `aggregate`")
    plot_summary.add_argument("--out", required=True, help="PNG file to write")
    plot_summary.set_defaults(func=_plot_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
