"""Why VI misses λ on a singular DLN: richer variational families against the posterior itself.

The evidence behind the VI limitation in docs/samplers.md (issue 4). On the test suite's
5→4→6→5 DLN (rank-2 teacher, n = 10000, γ = 1, λ = 10.5, d = 74), in the Hessian-whitened
coordinates u of lambda_hat.samplers.vi (w = w* + T u):

- `reference` (float64, NUTS on u): λ̂ and the posterior's spread along the 52 directions
  that are flat at w* and along the 22 stiff ones;
- `family` (float32): the package's mixture of factor analyzers composed with an optional
  normalizing flow, trained by the same minibatch ELBO with a cosine learning-rate decay:
  `mfa` (no flow), `shear` (additive coupling: stiff coordinates += a learned quadratic of the
  flat ones, scaled to raw units, volume-preserving), `realnvp` (affine couplings on random
  halves, tanh MLPs).

Run: python bench/vi_singular.py [--steps 10000] (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET = {"dln3": {"widths": [5, 4, 6, 5], "rank": 2, "n": 10000}}


def setup(target_dir: str, dtype: str):
    import jax

    from lambda_hat.posterior import make_posterior
    from lambda_hat.samplers import vi
    from lambda_hat.targets import load_target

    posterior, data, loss_star, _ = make_posterior(load_target(target_dir), "auto", 1.0, dtype)
    T, log_det = vi.whitening(posterior.bind(data), vi.Settings(), jax.random.key(1))
    hessian = jax.hessian(lambda w: posterior.loss(w, data))(data["w_star"])
    precision = posterior.nbeta * np.maximum(np.linalg.eigvalsh(np.asarray(hessian, np.float64)),
                                             0) + posterior.gamma
    flat = precision < 4 * posterior.gamma
    return posterior, data, float(loss_star), T, log_det, flat, precision


def spread(u: np.ndarray, flat: np.ndarray) -> dict:
    sd = np.asarray(u).reshape(-1, flat.size).std(axis=0)
    return {"flat_sd_median": float(np.median(sd[flat])), "flat_sd_max": float(sd[flat].max()),
            "stiff_sd_max": float(sd[~flat].max())}


def reference(target_dir: str) -> dict:
    import blackjax
    import jax
    import jax.numpy as jnp

    posterior, data, loss_star, T, _, flat, _ = setup(target_dir, "float64")
    logdensity = lambda u: posterior.logdensity(data["w_star"] + T @ u, data)  # noqa: E731
    (state, params), _ = blackjax.window_adaptation(blackjax.nuts, logdensity).run(
        jax.random.key(0), jnp.zeros(posterior.d), 1000)
    kernel = blackjax.nuts(logdensity, **params)

    def step(state, key):
        state, _ = kernel.step(key, state)
        return state, state.position

    _, u = jax.lax.scan(step, state, jax.random.split(jax.random.key(1), 4000))
    loss = jax.vmap(lambda u: posterior.loss(data["w_star"] + T @ u, data))(u)
    llc = posterior.nbeta * (float(jnp.mean(loss)) - loss_star)
    return {"family": "posterior (NUTS)", "llc": llc, "elbo": None, **spread(u, flat)}


def family(target_dir: str, name: str, steps: int, hidden: int = 128) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from lambda_hat.samplers import mixture as mfa
    from lambda_hat.samplers import vi

    posterior, data, loss_star, T, log_det, flat, precision = setup(target_dir, "float32")
    d = posterior.d
    rng = np.random.default_rng(0)
    if name == "shear":
        splits = [(np.where(flat)[0], np.where(~flat)[0])]
    elif name == "realnvp":
        splits = [(np.sort(p[: d // 2]), np.sort(p[d // 2:]))
                  for p in (rng.permutation(d) for _ in range(6))]
    else:
        splits = []
    outputs = 2 if name == "realnvp" else 1

    def init_flow(key):
        keys = jax.random.split(key, max(1, len(splits)))
        return [{"W1": jax.random.normal(k, (hidden, len(c))) / np.sqrt(len(c)),
                 "b1": jnp.zeros(hidden), "W2": jnp.zeros((outputs * len(u), hidden)),
                 "b2": jnp.zeros(outputs * len(u))} for k, (c, u) in zip(keys, splits)]

    def flow(layers, u):
        log_jacobian = 0.0
        for layer, (cond, upd) in zip(layers, splits):
            z = layer["W1"] @ u[cond] + layer["b1"]
            if name == "shear":  # quadratic features; outputs in raw units of each direction
                shift = jnp.sqrt(jnp.asarray(precision[upd], u.dtype)) * (layer["W2"] @ (z * z))
                u = u.at[upd].add(shift + layer["b2"])
            else:
                out = layer["W2"] @ jnp.tanh(z) + layer["b2"]
                log_scale = jnp.tanh(out[: len(upd)])
                u = u.at[upd].set(u[upd] * jnp.exp(log_scale) + out[len(upd):])
                log_jacobian = log_jacobian + jnp.sum(log_scale)
        return u, log_jacobian

    def log_ratio(params, u, loss_fn):
        mixture, layers = params
        v, log_jacobian = flow(layers, u)
        w = data["w_star"] + T @ v
        loss = loss_fn(w)
        log_q = mfa.mixture_logpdf(u, mixture) - log_jacobian - log_det
        return loss, -(posterior.nbeta * loss + posterior.localizer(w, data)) - log_q

    def negative_elbo(params, key):
        draw_key, batch_key = jax.random.split(key)
        u = mfa.component_draws(draw_key, params[0], 4)
        loss_fn = lambda w: posterior.minibatch_loss(w, data, batch_key, 256)  # noqa: E731
        values = jax.vmap(jax.vmap(lambda u: log_ratio(params, u, loss_fn)[1]))(u)
        return -jnp.sum(jax.nn.softmax(params[0].logits) * jnp.mean(values, axis=1))

    def fit(key):
        init_key, flow_key, fit_key, draw_key = jax.random.split(key, 4)
        params = (mfa.init_params(init_key, d, 4, 2, jnp.float32), init_flow(flow_key))
        optimizer = optax.adam(optax.cosine_decay_schedule(3e-3 if splits else 1e-2, steps, 0.01))

        def step(carry, key):
            params, state = carry
            value, grad = jax.value_and_grad(negative_elbo)(params, key)
            updates, state = optimizer.update(grad, state, params)
            return (optax.apply_updates(params, updates), state), -value

        (params, _), elbo = jax.lax.scan(step, (params, optimizer.init(params)),
                                         jax.random.split(fit_key, steps))
        u = mfa.mixture_draws(draw_key, params[0], 1000)
        full_loss = lambda w: posterior.loss(w, data)  # noqa: E731
        loss, log_weight = jax.lax.map(lambda u: log_ratio(params, u, full_loss), u,
                                       batch_size=250)
        return loss, log_weight, jnp.mean(elbo[-steps // 10:]), jax.vmap(
            lambda u: flow(params[1], u)[0])(u)

    loss, log_weight, elbo, v = jax.jit(jax.vmap(fit))(jax.random.split(jax.random.key(0), 4))
    loss = np.asarray(loss, np.float64)
    return {"family": name, "llc": float(posterior.nbeta * (loss.mean() - loss_star)),
            "elbo": float(np.mean(elbo)),
            **vi.importance_check(loss, log_weight, posterior.nbeta), **spread(v, flat)}


def in_subprocess(mode: str, target_dir: str, dtype: str, **kwargs) -> dict:
    env = {**os.environ, "JAX_ENABLE_X64": "1" if dtype == "float64" else "0"}
    request = json.dumps({"mode": mode, "target_dir": target_dir, **kwargs})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", request], env=env, check=True,
                          capture_output=True, text=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]),
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        request = json.loads(args.child)
        if request["mode"] == "build":
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
            from isolated import build_dln_targets
            result = build_dln_targets(request["target_dir"], TARGET)
        elif request["mode"] == "reference":
            result = reference(request["target_dir"])
        else:
            result = family(request["target_dir"], request["mode"], request["steps"])
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as root:
        built = in_subprocess("build", root, "float64")
        target_dir = os.path.join(root, "dln3")
        rows = [in_subprocess("reference", target_dir, "float64")]
        rows += [in_subprocess(name, target_dir, "float32", steps=args.steps)
                 for name in ("mfa", "shear", "realnvp")]
    print(f"DLN 5-4-6-5, rank 2, n = 10000: λ = {built['dln3']['true_llc']}, "
          f"d = {built['dln3']['d']}; {args.steps} ELBO steps per fit, 4 fits\n")
    print("| q | λ̂ | ELBO | importance ESS | flat-direction sd (median / max) | "
          "stiff sd max | seconds |\n|---|---|---|---|---|---|---|")
    for row in rows:
        elbo = "—" if row["elbo"] is None else f"{row['elbo']:.1f}"
        ess = row.get("importance_ess_fraction")
        print(f"| {row['family']} | {row['llc']:.2f} | {elbo} | "
              f"{'—' if ess is None else f'{ess:.1%}'} | {row['flat_sd_median']:.2f} / "
              f"{row['flat_sd_max']:.2f} | {row['stiff_sd_max']:.1f} | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
