"""`jaxseq bench phases`: the forward and the backward of one LSTM training step, timed apart, against
``torch.nn.LSTM`` in the same process (one layer: the op `lstm_scan`; a stack or a bidirectional layer:
``jaxseq.nn.LSTM`` with its default schedule, as `jaxseq bench ops` times them). float32; on a GPU, torch's
LSTM runs there too (cuDNN) and its clock stops after a CUDA synchronise.

Why: `jaxseq bench ops` gives one ratio for the whole step, which says how far jaxseq is from torch but not
in which half. Here each round times, for torch and then for jaxseq, a forward that keeps what the backward
needs and then the backward from it, each side right after an untimed step of its own (the reason is in
``timing.time_paired``). jaxseq's forward is ``jax.vjp`` of the loss under ``jax.jit`` (returning the VJP
closure with its saved residuals); its backward is its whole training step (``jax.grad`` under ``jax.jit``,
timed right after) minus that forward. Gradients are taken with respect to the parameters and the input, as
in `bench ops`.

    .venv/bin/jaxseq bench phases                       # B=32, H=I=256, T=1024, 7 rounds
    .venv/bin/jaxseq bench phases --seq-len 256 --out   # append to profiles/<machine>/scaling/bench_phases.jsonl
    .venv/bin/jaxseq bench phases --layers 4 --seq-len 512   # the 4-layer stack of `bench ops`
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

from jaxseq.bench.results import DEFAULT_OUT, append_jsonl, resolve_out
from jaxseq.bench.sweep import environment_info, memory_label
from jaxseq.bench.workloads import layer_apply

__all__ = ["lstm_phase_steps", "time_lstm_phases", "format_phases", "add_parser"]

BENCH_PHASES = "bench_phases.jsonl"


def lstm_phase_steps(batch: int, seq_len: int, hidden: int, *, layers: int = 1, bidirectional: bool = False,
                     seed: int = 0) -> dict[str, Callable[[], tuple[float, float]]]:
    """Two callables, ``"torch"`` and ``"jaxseq"``: each runs one training step of an LSTM (input = hidden =
    `hidden`, input ``[batch, seq_len, hidden]``, loss = mean of the outputs) and returns
    (forward seconds, backward seconds), each blocked on before its clock stops. jaxseq's backward is its
    whole step's time minus its forward's (see below). Both executables are compiled here (compile time is
    not in the result)."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxseq.ops.rnn import init_lstm_params, lstm_scan

    for name, v in (("batch", batch), ("seq_len", seq_len), ("hidden", hidden), ("layers", layers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    if not isinstance(bidirectional, bool):
        raise TypeError(f"`bidirectional` must be a bool, got {bidirectional!r}")
    if layers == 1 and not bidirectional:  # the op itself, as `bench ops` times it ("lstm")
        params = init_lstm_params(jax.random.key(seed), hidden, hidden)
        x = jax.random.normal(jax.random.key(seed + 1), (batch, seq_len, hidden), jnp.float32)

        def apply(p, xx):
            return lstm_scan(p, xx)[0]
    else:  # jaxseq.nn.LSTM with its default schedule, as `bench ops` times the stacks ("lstm-layer")
        apply, params, x, _ = layer_apply({"model": "lstm-layer", "batch": batch, "seq_len": seq_len,
                                            "width": hidden, "dtype": "float32", "mode": "train", "layers": layers,
                                            "bidirectional": bidirectional})

    def loss(p, xx):
        return jnp.mean(apply(p, xx))

    # jaxseq's forward is `jax.vjp` under jit: it returns the VJP closure (a pytree holding the saved
    # residuals), so it does what the training step's forward does and no less. Its backward is the whole
    # step (jit of jax.grad) minus that forward, timed in the same call: calling the closure in a second
    # executable instead made the two halves add up to 418 ms against 394 for the whole step, in one
    # process (the residuals cross an executable boundary that the fused step does not have; 2-core EPYC,
    # 2026-12-04). So jaxseq's "step" below is its real training step.
    forward = jax.jit(lambda p, xx: jax.vjp(loss, p, xx)).lower(params, x).compile()
    whole = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile()

    def jax_step() -> tuple[float, float]:
        t0 = time.perf_counter()
        jax.block_until_ready(forward(params, x))
        t1 = time.perf_counter()
        jax.block_until_ready(whole(params, x))
        return t1 - t0, time.perf_counter() - t1 - (t1 - t0)

    # On a GPU both sides run there (torch's cuDNN LSTM), and torch's clock stops after a synchronise.
    on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
    dev = "cuda" if on_gpu else "cpu"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True).to(dev)
    xt = torch.randn(batch, seq_len, hidden, device=dev, requires_grad=True)
    tensors = [*lstm.parameters(), xt]

    def torch_step() -> tuple[float, float]:
        for t in tensors:  # fresh gradients each step, as zero_grad(set_to_none=True) does
            t.grad = None
        sync()
        t0 = time.perf_counter()
        value = lstm(xt)[0].mean()
        sync()
        t1 = time.perf_counter()
        value.backward()
        sync()
        return t1 - t0, time.perf_counter() - t1

    return {"torch": torch_step, "jaxseq": jax_step}


def time_lstm_phases(batch: int = 32, seq_len: int = 1024, hidden: int = 256, *, layers: int = 1,
                     bidirectional: bool = False, rounds: int = 7,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Time both sides' halves over `rounds` rounds (torch first, then jaxseq, each after an untimed step of
    its own). Returns a JSON-ready record: per side the forward, backward and whole-step times (seconds,
    per round) and medians, and the medians of the per-round ratios torch/jaxseq (above 1: jaxseq faster;
    None for a half whose jaxseq times were all <= 0, which only noise at toy sizes gives)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be a positive int, got {rounds!r}")
    steps = lstm_phase_steps(batch, seq_len, hidden, layers=layers, bidirectional=bidirectional)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            step()  # settle: the other side's step ran last
            times[name].append(step())
        if progress:
            progress(r + 1)
    rec: dict[str, Any] = {"bench": "phases", "model": "lstm", "batch": batch, "seq_len": seq_len,
                           "hidden": hidden, "layers": layers, "bidirectional": bidirectional, "rounds": rounds}
    for name, ts in times.items():
        fwd, bwd = [t[0] for t in ts], [t[1] for t in ts]
        tot = [a + b for a, b in ts]
        rec[name] = {"forward_s": fwd, "backward_s": bwd, "step_s": tot,
                     "forward_median_s": statistics.median(fwd), "backward_median_s": statistics.median(bwd),
                     "step_median_s": statistics.median(tot)}
    ratios: dict[str, float | None] = {}
    for part, idx in (("forward", 0), ("backward", 1), ("step", None)):
        per_round = []
        for a, b in zip(times["torch"], times["jaxseq"]):
            ta, tb = (sum(a), sum(b)) if idx is None else (a[idx], b[idx])
            if tb > 0:  # jaxseq's backward is a difference: at toy sizes noise can make it <= 0
                per_round.append(ta / tb)
        ratios[part] = statistics.median(per_round) if per_round else None
    rec["speed_vs_torch"] = ratios
    return rec


def format_phases(rec: dict[str, Any]) -> str:
    """The record as a small table: median ms per half and jaxseq's speed relative to torch."""
    kind = f"{rec.get('layers', 1)}-layer{' bidirectional' if rec.get('bidirectional') else ''}"
    lines = [f"{kind} LSTM training step, B={rec['batch']} H=I={rec['hidden']} T={rec['seq_len']}, "
             f"{rec['rounds']} rounds (medians)",
             f"{'':8s} {'forward ms':>11s} {'backward ms':>12s} {'step ms':>9s}"]
    for name in ("torch", "jaxseq"):
        s = rec[name]
        lines.append(f"{name:8s} {s['forward_median_s'] * 1e3:11.1f} {s['backward_median_s'] * 1e3:12.1f} "
                     f"{s['step_median_s'] * 1e3:9.1f}")
    r = {k: ("-" if v is None else f"{v:.2f}") for k, v in rec["speed_vs_torch"].items()}
    lines.append(f"{'x torch':8s} {r['forward']:>11s} {r['backward']:>12s} {r['step']:>9s}"
                 "   (median per-round torch/jaxseq time; above 1 = jaxseq faster)")
    return "\n".join(lines)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _cmd(args: argparse.Namespace) -> int:
    env = environment_info()
    print(f"jaxseq bench phases; large buffers: {memory_label(env.get('memory'))}", flush=True)
    rec = time_lstm_phases(args.batch, args.seq_len, args.hidden, layers=args.layers,
                           bidirectional=args.bidirectional, rounds=args.rounds,
                           progress=lambda r: print(f"  round {r}/{args.rounds}", flush=True))
    print(format_phases(rec))
    out = resolve_out(args.out, BENCH_PHASES)
    if out:
        append_jsonl(out, {**rec, **env})
        print(f"record appended to {out}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `phases` (under `jaxseq bench`)."""
    p = subparsers.add_parser("phases", help="forward and backward of an LSTM training step, timed apart, "
                              "against torch.nn.LSTM", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=_positive, default=32)
    p.add_argument("--hidden", type=_positive, default=256, help="input = hidden width")
    p.add_argument("--seq-len", type=_positive, default=1024)
    p.add_argument("--layers", type=_positive, default=1,
                   help="stacked layers (above 1, or with --bidirectional: jaxseq.nn.LSTM, default schedule)")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--rounds", type=_positive, default=7)
    p.add_argument("--out", nargs="?", const=DEFAULT_OUT, metavar="FILE",
                   help="append the record to FILE; --out alone: profiles/<machine>/scaling/bench_phases.jsonl")
    p.set_defaults(func=_cmd)
    return p
