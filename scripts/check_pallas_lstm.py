#!/usr/bin/env python
"""Check the Pallas LSTM step against the XLA step on this machine's backend (issue 13).

Runs `jaxseq.ops.rnn.lstm_scan` with `step_kernel="xla"` and with each Pallas form (in place, step
kernel inside lax.scan) on the same inputs, forward and gradients, and prints one JSON line per case
with the largest differences relative to the XLA values' scale. On a GPU this is the first check
that the Triton kernel computes what the interpret-mode tests check on the CPU. Exit status 1 when a
case is off by more than `--tol`.

    python scripts/check_pallas_lstm.py                               # B=16 H=768 T=64, float32 and float16
    .venv/bin/python scripts/check_pallas_lstm.py --batch 5 --hidden 32 --seq-len 6   # CPU dry run
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    p.add_argument("--tol", type=float, default=None,
                   help="largest relative difference allowed (default 1e-2 for float32, 5e-2 for 16-bit: "
                        "float32 dots may run as TF32 on a GPU, in both paths but not identically)")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from jaxseq.ops import rnn
    from jaxseq.ops.pallas_lstm import PallasLSTMStep

    B, H, T = args.batch, args.hidden, args.seq_len
    lengths = jnp.asarray([T - (i * 7) % max(T, 1) for i in range(B)], jnp.int32)
    forms = {"pallas": PallasLSTMStep(), "pallas-step": PallasLSTMStep(in_place=False)}
    ok = True
    for name in args.dtypes:
        dt = jnp.dtype(name)
        tol = args.tol if args.tol is not None else (1e-2 if dt == jnp.float32 else 5e-2)
        params = jax.tree.map(lambda a: a.astype(dt), rnn.init_lstm_params(jax.random.key(0), H, H))
        x = jax.random.normal(jax.random.key(1), (B, T, H), jnp.float32).astype(dt)

        def run(kernel, p, xx):
            def loss(p, xx):
                out, (h, c) = rnn.lstm_scan(p, xx, lengths=lengths, step_kernel=kernel)
                return jnp.mean(out.astype(jnp.float32) ** 2) + jnp.mean(c.astype(jnp.float32)), out
            (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(p, xx)
            return out, grads

        want = run("xla", params, x)
        for form, cfg in forms.items():
            got = run(cfg, params, x)
            errs = []
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                g, w = g.astype(jnp.float32), w.astype(jnp.float32)
                errs.append(float(jnp.max(jnp.abs(g - w)) / (jnp.max(jnp.abs(w)) + 1e-30)))
            worst = max(errs)
            ok &= worst <= tol
            print(json.dumps({"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
                              "form": form, "dtype": name, "batch": B, "hidden": H, "seq_len": T,
                              "max_rel_diff_out_and_grads": worst, "tol": tol, "ok": worst <= tol}),
                  flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
