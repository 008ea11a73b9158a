"""Default SGLD on small reduced-rank DLN regressions (n = 1000) against the exact λ
(issue 12): λ̂, MCSE, R-hat, MALA acceptance of the kept draws, the curvature rule's ε, the
run's ε and the pilot's acceptance, one row per (shape, seed); seed is the target's and the
sampler's.

    python bench/step_size_pilot.py [--out rows.json] [--kind sgld] [--seeds 3]
                                    [--shapes 0,4] [--set key=value ...]

`--set pilot_steps=0` gives the behaviour before the pilot (the curvature rule's step, the
same numbers as before it existed). Targets are built in a float64 subprocess, samplers run
in float32 ones (tests/isolated.py), one per target, two at a time: about 5 minutes for the
30 runs on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from isolated import run_isolated, run_isolated_many  # noqa: E402

SHAPES = [([4, 3, 2, 4], 1), ([6, 5, 4, 6], 2), ([5, 4, 5], 1), ([8, 4, 8], 2),
          ([3, 3, 3, 3], 0), ([5, 4, 6, 5], 2), ([4, 4, 4], 1), ([4, 4, 4, 4], 0),
          ([3, 3, 3], 0), ([2, 3, 3, 2], 1)]
N = 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--kind", default="sgld")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shapes", default=None, help="comma-separated indices into SHAPES")
    parser.add_argument("--set", action="append", default=[],
                        help="sampler override key=value (YAML value)")
    args = parser.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    picked = (range(len(SHAPES)) if args.shapes is None
              else [int(i) for i in args.shapes.split(",")])
    shapes = {i: SHAPES[i] for i in picked}
    out = Path(tempfile.mkdtemp(prefix="pilot-bench-"))
    targets = {f"s{i}_seed{seed}": {"widths": w, "rank": r, "n": N, "seed": seed}
               for i, (w, r) in shapes.items() for seed in range(args.seeds)}
    clock = time.perf_counter()
    run_isolated("build_dln_targets", "float64", out_dir=str(out), targets=targets)
    calls = [("run_kinds_on_target", "float32",
              {"target_dir": str(out / name),
               "runs": [{"kind": args.kind, "seed": spec["seed"], **overrides}]})
             for name, spec in targets.items()]
    outputs = run_isolated_many(calls)
    rows = []
    for (name, spec), output in zip(targets.items(), outputs):
        if isinstance(output, Exception):
            print(name, "FAILED", output)
            continue
        (s,) = output
        stats = s.get("stats", {})
        rows.append({"widths": spec["widths"], "rank": spec["rank"], "seed": spec["seed"],
                     "true_llc": s["true_llc"], "llc": s["llc_mean"], "mcse": s["llc_mcse"],
                     "rel": s["rel_error"], "r_hat": s["r_hat"],
                     "acceptance": stats.get("mala_acceptance_mean"),
                     "eps_curvature": stats.get("step_size_curvature", stats.get("step_size")),
                     "eps": stats.get("step_size"),
                     "pilot_acceptance": stats.get("pilot_acceptance"),
                     "pilot_steps": stats.get("pilot_steps"),
                     "grad_evals": s["grad_evals"],
                     "warnings": len(s["warnings"]), "warning_texts": s["warnings"],
                     "mala_warning": any("MALA" in w for w in s["warnings"])})
    print("| widths | r | seed | λ | λ̂ ± MCSE | rel | R-hat | MALA acc. | ε curvature | ε run "
          "| pilot acc. | warn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pa = "—" if r["pilot_acceptance"] is None else f"{r['pilot_acceptance']:.3f}"
        print(f"| {r['widths']} | {r['rank']} | {r['seed']} | {r['true_llc']:g} | "
              f"{r['llc']:.2f} ± {r['mcse']:.2f} | {100 * r['rel']:+.1f}% | {r['r_hat']:.3f} | "
              f"{r['acceptance']:.3f} | {r['eps_curvature']:.3g} | {r['eps']:.3g} | {pa} | "
              f"{'MALA' if r['mala_warning'] else r['warnings']} |")
    bad = [r for r in rows if abs(r["rel"]) >= 0.10 or r["mala_warning"]]
    print(f"{len(rows)} runs, {len(bad)} off by ≥ 10% or with a MALA warning; max |rel| "
          f"{max(abs(r['rel']) for r in rows):.3f}; {time.perf_counter() - clock:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
