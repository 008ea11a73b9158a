"""The transformer of examples/transformer.py through the Python API, inside its training loop:
λ̂ at each checkpoint, the restricted λ̂ of each attention head at the end, and the per-token
λ̂ of a few sequences.

    python examples/transformer_api.py            # p = 23, d = 3968 (config/transformer.yaml's)
    python examples/transformer_api.py --small    # p = 7, d_model 8: a minute

The pipeline runs the same model from config/transformer.yaml; this script is what a
researcher writes in a notebook: train, call `lambda_hat.estimate` at the checkpoints (the
compiled programs are reused from the second call on), then look inside.
"""

from __future__ import annotations

import argparse
import json
import importlib.util
from pathlib import Path

import numpy as np

import lambda_hat

SIZES = {"full": {"p": 23, "d_model": 16, "heads": 4, "training_steps": 1000,
                  "checkpoints": (20, 50, 100, 150, 200, 400, 1000), "sgld_steps": 10000},
         "small": {"p": 7, "d_model": 8, "heads": 2, "training_steps": 400,
                   "checkpoints": (50, 400), "sgld_steps": 1000}}
SAMPLER = {"sampler": "sgld", "batch_size": 256, "gamma": 100.0, "seed": 0}
"""config/transformer.yaml's SGLD (γ = 100: why, there)."""
LEAVES = ("query", "key", "value")


def _model():
    path = Path(__file__).with_name("transformer.py")
    spec = importlib.util.spec_from_file_location("modular_addition_transformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def head(index: int, block: int = 0) -> list[str]:
    """The restriction to one head: its slices of the fused query, key, value and output."""
    attn = f"blocks_{block}/attn"
    return ([f"{attn}/{leaf}[:, {index}, :]" for leaf in LEAVES]
            + [f"{attn}/output[{index}, ...]"])


def train(made: dict, steps: int, checkpoints=()):
    """Full-batch Adam (learning rate 0.003, config/transformer.yaml's training) on the answer
    token's cross-entropy; yields (step, params, loss) at each checkpoint and at the end."""
    import jax
    import optax

    apply, params = made["apply"], made["init_params"]

    def training_loss(params):
        log_p = jax.nn.log_softmax(apply(params, made["x"])[:, -1])
        return -jax.numpy.take_along_axis(log_p, made["y"][:, -1:], axis=-1).mean()

    optimizer = optax.adam(0.003)

    @jax.jit
    def update(params, state):
        loss, gradient = jax.value_and_grad(training_loss)(params)
        changes, state = optimizer.update(gradient, state)
        return optax.apply_updates(params, changes), state, loss

    state = optimizer.init(params)
    for step in range(1, steps + 1):
        params, state, loss = update(params, state)
        if step in checkpoints or step == steps:
            yield step, params, float(loss)


def make(size: str = "full") -> dict:
    """examples/transformer.py's target at `size` (SIZES)."""
    chosen = SIZES[size]
    return _model().make_target(0, p=chosen["p"], d_model=chosen["d_model"],
                                heads=chosen["heads"])


def run(size: str = "full", observed: int = 8) -> dict:
    chosen = SIZES[size]
    made = make(size)
    data = (made["x"], made["y"], made["mask"])
    apply = made["apply"]
    settings = {**SAMPLER, "steps": chosen["sgld_steps"]}
    curve = []
    for step, params, loss in train(made, chosen["training_steps"], chosen["checkpoints"]):
        if step in chosen["checkpoints"]:
            result = lambda_hat.estimate(apply, params, data, loss="cross_entropy",
                                         name=f"modadd@{step}", **settings)
            curve.append({"step": step, "loss": loss, "llc": result.llc,
                          "mcse": result.llc_mcse, "status": result.summary.status,
                          "seconds": result.summary.wall_seconds})

    heads = []
    for index in range(chosen["heads"]):
        result = lambda_hat.estimate(apply, params, data, loss="cross_entropy",
                                     name=f"head {index}", restrict=head(index), **settings)
        heads.append({"head": index, "d": result.summary.d, "llc": result.llc,
                      "mcse": result.llc_mcse, "restricted_to": result.summary.restricted_to})

    # every token of a few sequences, the two the training loss masks out included
    x, y = made["x"][:observed], made["y"][:observed]
    tokens = lambda_hat.estimate(apply, params, data, loss="cross_entropy",
                                 observe=(x, y, np.ones(y.shape, bool)), **settings)
    per_token = tokens.observables.per_token_llc()
    return {"d": tokens.summary.d, "n": tokens.summary.n, "checkpoints": curve,
            "heads": heads, "per_token": per_token.value.tolist(),
            "per_token_mcse": None if per_token.mcse is None else per_token.mcse.tolist(),
            "per_token_positions": ["a → b", "b → =", "= → (a + b) mod p"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="p = 7, d_model 8: a minute")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    found = run("small" if args.small else "full")
    if args.json:
        print(json.dumps(found, default=str))
        return
    print(f"d = {found['d']}, n = {found['n']}")
    for row in found["checkpoints"]:
        print(f"step {row['step']:5d}: loss {row['loss']:.4f}  λ̂ {row['llc']:8.2f} ± "
              f"{row['mcse']:.2f}  {row['status']}  ({row['seconds']:.1f} s)")
    for row in found["heads"]:
        print(f"head {row['head']} (d = {row['d']}): λ̂ {row['llc']:.2f} ± {row['mcse']:.2f}")
    per_token = np.asarray(found["per_token"])
    for position, name in enumerate(found["per_token_positions"]):
        print(f"per-token λ̂ at {name}: mean {per_token[:, position].mean():.2f} over "
              f"{len(per_token)} sequences")


if __name__ == "__main__":
    main()
