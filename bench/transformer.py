"""SGLD per step on the transformer of examples/transformer.py through `lambda_hat.estimate`,
against devinterp 1.3.2's SGLD on the same network in PyTorch (bench/devinterp_transformer.py),
and the cost of observables: measured in one run.

    python bench/transformer.py                 # ~5 minutes on 2 cores; its section of results.md
    python bench/transformer.py --render bench/transformer.json

The workload: p = 23 modular addition (n = 529 sequences of 3 tokens, the loss on the answer
token), one block, 4 heads, d_model 16, d = 3968; w* from 1000 full-batch Adam steps
(examples/transformer_api.py's `train`); 4 chains, batch 256, γ = 100, nβ = n / log n.

lambda-hat: `sample_seconds` of the run (compile excluded: the programs are compiled by a
warm-up call first; the start program, i.e. the step-size pilot, is included) over steps ×
chains, with and without `observe="data"` (every point's per-token losses at each trace
point). devinterp: the wall time of `estimate_learning_coeff_with_summary` (4 chains one after
another, 2 torch threads) over its draws × chains; fewer steps than lambda-hat's, as its
per-step cost is constant. The runs alternate, `--repeats` rounds; the table gives medians
and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from results_md import END_GENERATED, RENDER_HELP, generated_by, render, write_section

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SAVED = BENCH / "transformer.json"
SECTION = "## Transformer: lambda-hat's SGLD through the API vs devinterp 1.3.2"
DEVINTERP_PYTHON = BENCH / ".venv-devinterp" / "bin" / "python"
CHAINS, BATCH, GAMMA = 4, 256, 100.0


def _examples():
    path = ROOT / "examples" / "transformer_api.py"
    spec = importlib.util.spec_from_file_location("transformer_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lambda_hat(made, params, steps: int, observe) -> dict:
    import lambda_hat

    result = lambda_hat.estimate(made["apply"], params, (made["x"], made["y"], made["mask"]),
                                 loss="cross_entropy", sampler="sgld", steps=steps,
                                 chains=CHAINS, batch_size=BATCH, gamma=GAMMA, seed=0,
                                 observe=observe)
    observed = result.traces.get("observed_losses")
    return {"seconds": result.summary.sample_seconds, "llc": result.llc,
            "trace_points": int(result.traces["loss"].shape[1]),
            "observed_bytes": None if observed is None else int(observed.nbytes)}


def _devinterp(steps: int) -> dict:
    done = subprocess.run([str(DEVINTERP_PYTHON), str(BENCH / "devinterp_transformer.py"),
                           str(steps), str(CHAINS), str(BATCH)], capture_output=True,
                          text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(steps: int, devinterp_steps: int, repeats: int) -> dict:
    examples = _examples()
    made = examples.make("full")
    *_, (_, params, loss) = examples.train(made, examples.SIZES["full"]["training_steps"])
    _lambda_hat(made, params, steps, None)          # compile both programs once
    _lambda_hat(made, params, steps, "data")
    rounds = []
    for _ in range(repeats):
        plain = _lambda_hat(made, params, steps, None)
        observed = _lambda_hat(made, params, steps, "data")
        devinterp = _devinterp(devinterp_steps) if DEVINTERP_PYTHON.exists() else None
        rounds.append({"plain": plain, "observed": observed, "devinterp": devinterp})
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.system()} {platform.release()}",
            "load": os.getloadavg()[0], "training_loss": loss, "steps": steps,
            "devinterp_steps": devinterp_steps, "n": len(made["x"]), "rounds": rounds}


def table(found: dict) -> str:
    steps, chains = found["steps"], CHAINS
    rounds = found["rounds"]

    def per_step(seconds, draws):
        return seconds / (draws * chains) * 1e6

    plain = [per_step(r["plain"]["seconds"], steps) for r in rounds]
    observed = [per_step(r["observed"]["seconds"], steps) for r in rounds]
    lines = [SECTION + f" — {found['date']}", "",
             generated_by("bench/transformer.py", "bench/transformer.json"), "",
             f"Command: `python bench/transformer.py`. Machine: {found['machine']} (load "
             f"average {found['load']:.1f} at the end). Workload: examples/transformer.py at "
             f"p = 23 (n = {found['n']}, d = 3968), w* after 1000 Adam steps (training loss "
             f"{found['training_loss']:.2g}); SGLD, {chains} chains, batch {BATCH}, γ = {GAMMA:g}; "
             f"lambda-hat {steps} steps, devinterp {found['devinterp_steps']}. Medians of "
             f"{len(rounds)} alternating rounds.", "",
             "| run | per step per chain | ratio |", "|---|---|---|",
             f"| lambda-hat `estimate(sampler=\"sgld\")` | {np.median(plain):.1f} µs | 1 |",
             f"| the same with `observe=\"data\"` ({found['n']} points × 3 tokens, "
             f"{rounds[0]['observed']['trace_points']} trace points, "
             f"{rounds[0]['observed']['observed_bytes'] / 1e6:.1f} MB) | "
             f"{np.median(observed):.1f} µs | "
             f"{np.median(np.divide(observed, plain)):.2f}× lambda-hat's |"]
    if all(r["devinterp"] for r in rounds):
        devinterp = [per_step(r["devinterp"]["seconds"], found["devinterp_steps"])
                     for r in rounds]
        lines.append(f"| devinterp 1.3.2 SGLD, PyTorch {rounds[0]['devinterp']['torch']} "
                     f"(d = {rounds[0]['devinterp']['d']}) | {np.median(devinterp):.1f} µs | "
                     f"lambda-hat {np.median(np.divide(devinterp, plain)):.1f}× faster |")
    else:
        lines.append("| devinterp 1.3.2 | not run: bench/.venv-devinterp is missing "
                     "(`python bench/run.py` makes it) | |")
    lines += ["", "lambda-hat's time includes its step-size pilot and a MALA probe at each "
              "trace point; devinterp's, its per-draw loss bookkeeping.", END_GENERATED, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--devinterp-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--render", type=Path, help=RENDER_HELP)
    args = parser.parse_args()
    if args.render:
        render(SECTION, table, args.render)
        return
    found = measure(args.steps, args.devinterp_steps, args.repeats)
    SAVED.write_text(json.dumps(found, indent=1))
    text = table(found)
    write_section(SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
