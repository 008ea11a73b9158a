"""Regenerate the accuracy/cost table in docs/samplers.md.

Every registered sampler kind, with its registry defaults, on the default experiment's DLN
target (config/config.yaml); each precision runs in its own process, as in the workflow.

    python scripts/sampler_table.py            # rewrite the table in docs/samplers.md
    python scripts/sampler_table.py --print    # only print it
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lambda_hat.config import Experiment  # noqa: E402
from lambda_hat.samplers import REGISTRY  # noqa: E402
from isolated import run_isolated  # noqa: E402

DOC = ROOT / "docs" / "samplers.md"
START, END = "<!-- sampler-table:start -->", "<!-- sampler-table:end -->"


def build(config: Path, target: str, out: Path) -> None:
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    subprocess.run([sys.executable, "-m", "lambda_hat.cli", "-q", "build", "--config",
                    str(config), "--target", target, "--out", str(out)], check=True, env=env)


def table(config: Path, seed: int) -> str:
    experiment = Experiment.load(config)
    dlns = [name for name in experiment.target_names
            if experiment.target(name)["model"]["kind"] == "dln"]
    if not dlns:
        raise SystemExit(f"{config}: no DLN target")
    target = dlns[0]
    resolved = experiment.target(target)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / target
        build(config, target, directory)
        rows = []
        for dtype in ("float64", "float32"):
            kinds = [kind for kind, module in REGISTRY.items() if module.Settings.dtype == dtype]
            runs = [{"kind": kind, "seed": seed} for kind in kinds]
            summaries = run_isolated("run_kinds_on_target", dtype,
                                     target_dir=str(directory), runs=runs,
                                     posterior=experiment.posterior)
            rows += list(zip(kinds, summaries))
    model = resolved["model"]
    first = next(s for _, s in rows if "error" not in s)
    lines = [
        f"Target `{target}` of `{config.relative_to(ROOT)}`: DLN widths {model['widths']}, "
        f"teacher rank {model['rank']}, n = {first['n']}, d = {first['d']}, "
        f"nβ = {first['nbeta']:.1f}, γ = {experiment.posterior['gamma']}; registry defaults, "
        f"4 chains, seed {seed}; one run each, on a shared 2-core machine (times are rough).",
        "",
        "| sampler | dtype | λ̂ ± MCSE | exact λ | rel. error | R-hat | ESS | grad evals "
        "| ESS / grad eval | wall s (compile + sampling) | warnings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, s in rows:
        if "error" in s:
            lines.append(f"| {kind} | {REGISTRY[kind].Settings.dtype} | failed: {s['error']} |"
                         + " |" * 8)
            continue
        r_hat = "—" if s["r_hat"] is None else f"{s['r_hat']:.3f}"
        ess_note = "" if REGISTRY[kind].MARKOV_CHAIN else " (iid)"
        lines.append(
            f"| {kind} | {s['dtype']} | {s['llc_mean']:.2f} ± {s['llc_mcse']:.2f} "
            f"| {s['true_llc']:g} | {s['rel_error']:+.1%} | {r_hat} | {s['ess']:.0f}{ess_note} "
            f"| {s['grad_evals']:.3g} | {s['ess_per_grad_eval']:.2g} "
            f"| {s['wall_seconds']:.1f} ({s['compile_seconds']:.1f} + {s['sample_seconds']:.1f}) "
            f"| {len(s['warnings'])} |")
    lines += ["", "Warnings raised:", ""]
    warned = [(kind, w) for kind, s in rows if "error" not in s for w in s["warnings"]]
    lines += [f"- {kind}: {w}" for kind, w in warned] or ["- none"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print", action="store_true", help="print, do not edit the doc")
    args = parser.parse_args()
    text = table(args.config.resolve(), args.seed)
    if args.print:
        print(text)
        return
    doc = DOC.read_text()
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    print(f"updated {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
