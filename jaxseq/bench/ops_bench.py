"""`jaxseq bench ops`: jaxseq's LSTM and attention training steps against torch, in one process.

    jaxseq bench ops [--quick] [--out [FILE]]   # --out alone: profiles/<machine>/scaling/bench_ops.jsonl

Cases (float32, forward + backward wrt parameters and inputs of a mean loss):
- LSTM, batch 32, input = hidden = 256, T in {256, 1024}: jaxseq `lstm_scan` and flax
  `nnx.RNN(OptimizedLSTMCell)` against `torch.nn.LSTM`;
- stacks at the same sizes, T=512 (`--stack-lengths`): 4 layers ("lstm-stack") and 2 bidirectional
  layers ("lstm-bidir"), `jaxseq.nn.LSTM` with its default schedule and with each explicit schedule
  (`layers`, `fused`, `wavefront`) against `torch.nn.LSTM(num_layers=4)` / `(num_layers=2,
  bidirectional=True)`;
- causal attention, batch 8, d_model 256, 4 heads, T in {1024, 2048, 4096}: every jaxseq backend
  against torch `scaled_dot_product_attention`.
Each case times its torch anchor first, in the same process and minutes as the JAX runs, so the ratio
is comparable even when the machine's load moves (the load is printed beside every row). Then
(`--pairs N`, default 5) N rounds time the anchor and every impl one step each, in turn, each timed step
right after an untimed one of its own (`jaxseq.bench.timing.time_paired`): the median of the per-round
ratios ("x anchor paired") compares steps taken seconds apart, which a shared host's drifting speed
leaves alone; the targets are judged on it. Every
record written with `--out` carries the machine's fingerprint (`jaxseq.bench.sweep.machine_fingerprint`);
`--out` without a file appends to this machine's own `profiles/<machine_slug>/scaling/bench_ops.jsonl`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# `timing.time_paired` and `workloads.blocked_step` are looked up on their modules when called (tests
# replace them there).
from jaxseq.bench import kernels, phases, results, timing
from jaxseq.bench import workloads as workloads_mod
from jaxseq.bench.results import DEFAULT_OUT, append_jsonl
from jaxseq.bench.sweep import (classify_exception, environment_info, huge_pages_on, machine_fingerprint,
                                machine_id, machine_slug, memory_info, memory_label)
from jaxseq.bench.timing import format_table, machine_load, paired_ratios
from jaxseq.bench.workloads import attention_backends, build_workload, measure_workload, model_label

__all__ = ["TARGETS", "DEFAULT_OUT", "resolve_out", "run_ops_bench", "add_parser", "bench_cases", "pair_case"]

BENCH_OPS = "bench_ops.jsonl"

# (case, T, impl, minimum tokens/s ratio vs the anchor): the project's goals for these ops. Issue 13:
# torch's CPU LSTM already runs near this machine's large-matmul rate, so parity is the limit for one
# layer (an earlier goal of 1.2x was above it); the stacks are judged on the module's default schedule.
TARGETS = (("lstm", 1024, "lstm", 1.0), ("lstm-stack", 512, "lstm-layer+L4", 1.0),
           ("lstm-bidir", 512, "lstm-layer+L2+bi", 1.0), ("attention", 2048, "attn-blockwise", 1.0))
STACK_CASES = {"lstm-stack": {"layers": 4, "bidirectional": False},
               "lstm-bidir": {"layers": 2, "bidirectional": True}}

_COLUMNS = [("case", "case"), ("seq_len", "T"), ("impl", "impl"), ("status", "status"),
            ("ms", "median ms"), ("min_ms", "min ms"), ("ktok_s", "ktok/s"), ("ratio", "x anchor"),
            ("temp_mb", "XLA temp MB"), ("rss_mb", "RSS peak MB"), ("compile_s", "compile s"),
            ("load", "load 1m"), ("paired", "x anchor paired")]


def bench_cases(args: argparse.Namespace) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """[(case, T, [anchor point, jax points...])]: the points `jaxseq bench ops` with these arguments
    measures, per case and length, the anchor first (also what `jaxseq.studies.scaling.study` expects
    a finished run to hold)."""
    import jax

    from jaxseq.nn.recurrent import SCHEDULES

    lstm_T = args.lstm_lengths or ((128, 256) if args.quick else (256, 1024))
    stack_T = args.stack_lengths or ((64,) if args.quick else (512,))
    attn_T = args.attn_lengths or ((256, 512) if args.quick else (1024, 2048, 4096))
    backends = args.backends or [b for b in attention_backends()
                                 if b != "cudnn" or jax.default_backend() == "gpu"]
    common = {"width": args.width, "dtype": args.dtype, "mode": "train"}
    cases = []
    for T in lstm_T:
        base = {**common, "seq_len": T, "batch": args.lstm_batch}
        cases.append(("lstm", T, [{**base, "model": m} for m in ("torch-lstm", "lstm", "flax-lstm")]))
    for name in args.stacks:
        for T in stack_T:
            base = {**common, "seq_len": T, "batch": args.lstm_batch, **STACK_CASES[name]}
            points = [{**base, "model": "torch-lstm"}, {**base, "model": "lstm-layer"}]
            points += [{**base, "model": "lstm-layer", "schedule": s} for s in SCHEDULES if s != "auto"
                       and not (s == "fused" and not base["bidirectional"])]
            assert len({model_label(q) for q in points}) == len(points)
            cases.append((name, T, points))
    for T in attn_T:
        base = {**common, "seq_len": T, "batch": args.attn_batch, "heads": args.heads}
        models = ["torch-sdpa"] + [f"attn-{b}" for b in backends]
        cases.append(("attention", T, [{**base, "model": m} for m in models]))
    return cases


def resolve_out(out: str | None, name: str = BENCH_OPS) -> Path | None:
    """The JSONL file `--out` names: None (no file), `DEFAULT_OUT` -> profiles/<machine>/scaling/`name`
    (bench_ops.jsonl, beside the scaling study's sweep): `jaxseq.bench.results.resolve_out` with this
    command's file name as the default."""
    return results.resolve_out(out, name)


def run_ops_bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every case; return one row per (case, T, impl) with the ratio to that case's anchor."""
    rows = []
    out = resolve_out(args.out)
    for case, T, points in bench_cases(args):
        anchor_tps = None
        workloads: list[Any] = []  # the case's workloads that ran (None where one failed)
        executables: list[Any] = []  # their compiled jax steps, reused by the paired rounds
        case_rows: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        for i, point in enumerate(points):
            row: dict[str, Any] = {"case": case, "seq_len": T, "impl": model_label(point)}
            keep: dict[str, Any] = {}
            try:
                w = build_workload(point)
                res = measure_workload(w, warmup=args.warmup, repeats=args.repeats,
                                       dtype=point["dtype"], keep=keep)
                row["status"] = "ok"
            except Exception as e:  # one failing impl (OOM at long T) must not stop the table
                res, row["status"] = {"message": f"{type(e).__name__}: {e}"[:500]}, \
                    classify_exception(e)
                w = None  # not paired
            workloads.append(w)
            executables.append(keep.get("compiled"))
            tps = res.get("tokens_per_s")
            if i == 0:
                anchor_tps = tps
            mem = res.get("memory") or {}
            row.update(
                ms=res.get("median_s") and res["median_s"] * 1e3,
                min_ms=res.get("min_s") and res["min_s"] * 1e3,
                ktok_s=tps and tps / 1e3,
                ratio=(tps / anchor_tps) if tps and anchor_tps else None,
                temp_mb=mem.get("temp_bytes") and mem["temp_bytes"] / 2**20,
                rss_mb=res.get("peak_rss_bytes") and res["peak_rss_bytes"] / 2**20,
                compile_s=res.get("compile_s"),
                load=(res.get("load_before") or [None])[0],
            )
            case_rows.append(row)
            records.append({"bench": "ops", "case": case, "anchor": points[0]["model"],
                            "ratio_vs_anchor": row["ratio"], "status": row["status"],
                            "point": point, "result": res, **environment_info()})
            if args.verbose:
                print(f"  {case} T={T} {point['model']}: {row['status']} "
                      f"{row['ms'] and round(row['ms'], 2)} ms", flush=True)
        if args.pairs:
            paired = pair_case(workloads, args.pairs, executables)
            for row, rec, pr in zip(case_rows, records, paired):
                row["paired"] = pr and pr["median"]
                if pr:
                    rec["paired"] = pr
            if args.verbose and any(paired):
                print(f"  {case} T={T}: {args.pairs} paired rounds done", flush=True)
        rows += case_rows
        if out:  # after the case's paired rounds, so that its records carry them
            for rec in records:
                append_jsonl(out, rec)
    return rows


def pair_case(workloads: list[Any], rounds: int,
              executables: list[Any] | None = None) -> list[dict[str, Any] | None]:
    """Each workload's speed over the anchor (workloads[0]) in `rounds` rounds of `time_paired`.

    `executables[i]`, where given, is workload i's compiled jax step from its separate measurement:
    reusing it saves compiling every jax workload a second time (0.3-0.8 s each at the targets' shapes).

    None for the anchor itself and for workloads that failed; all None when the anchor failed or the
    paired rounds raise (the per-point results stand without them).
    """
    idx = [i for i, w in enumerate(workloads) if w is not None]
    if not idx or idx[0] != 0 or len(idx) < 2:
        return [None] * len(workloads)
    try:
        execs = executables or [None] * len(workloads)
        times = timing.time_paired([workloads_mod.blocked_step(workloads[i], execs[i]) for i in idx],
                                   rounds=rounds)
    except Exception as e:  # e.g. out of memory with every workload alive: keep the unpaired results
        print(f"note: paired rounds skipped for this case ({type(e).__name__}: {str(e)[:200]})", flush=True)
        return [None] * len(workloads)
    out: list[dict[str, Any] | None] = [None] * len(workloads)
    for k, i in enumerate(idx[1:], start=1):
        out[i] = {**paired_ratios(times[0], times[k]), "times_s": times[k], "anchor_times_s": times[0]}
    return out


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per target: measured ratio and whether it is met."""
    lines = []
    anchors = {"lstm": "torch.nn.LSTM", "lstm-stack": "torch.nn.LSTM(num_layers=4)",
               "lstm-bidir": "torch.nn.LSTM(num_layers=2, bidirectional=True)"}
    for case, T, impl, goal in TARGETS:
        match = [r for r in rows if r["case"] == case and r["seq_len"] == T and r["impl"] == impl]
        anchor = anchors.get(case, "torch SDPA")
        head = f"target: {impl} >= {goal:.1f}x {anchor} tokens/s at T={T}: "
        if not match or match[0]["ratio"] is None:
            lines.append(head + "not measured in this run")
        else:
            r = match[0]["ratio"]
            paired = match[0].get("paired")
            if paired is not None:  # judged on the paired rounds: anchor and impl seconds apart
                lines.append(head + f"{paired:.2f}x paired ({'met' if paired >= goal else 'NOT met'}; "
                                    f"{r:.2f}x from the separate medians)")
            else:
                lines.append(head + f"{r:.2f}x ({'met' if r >= goal else 'NOT met'})")
    return lines


def _rounds(text: str) -> int:
    """argparse type of --pairs: an int >= 0."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return n


def _cmd(args: argparse.Namespace) -> int:
    import jax

    if args.target != "ops":  # pragma: no cover - argparse choices guard this
        raise ValueError(f"unknown bench target {args.target!r}")
    fp, mem = machine_fingerprint(), memory_info()
    print(f"jaxseq bench ops on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} CPUs, load {machine_load()}; machine {machine_slug(fp)} "
          f"(id {machine_id(fp)}); large buffers: {memory_label(mem)}", flush=True)
    if jax.default_backend() == "cpu" and not huge_pages_on(mem):
        print("note: malloc gets no huge pages in this process (JAXSEQ_HUGEPAGES=0, glibc < 2.35 or THP "
              "off), so every step page-faults its large buffers; that slows torch's LSTM more than "
              "jax's, and the ratios differ from runs with huge pages (README, 'Huge pages')", flush=True)
    rows = run_ops_bench(args)
    print(format_table(rows, _COLUMNS))
    for line in target_lines(rows):
        print(line)
    out = resolve_out(args.out)
    if out:
        print(f"records appended to {out}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq bench ops`."""
    bench = subparsers.add_parser("bench", help="op benchmarks against torch anchors (bench ops); kernels "
                                  "per time step (bench kernels); the LSTM step's halves (bench phases)", description=__doc__.split("\n\n")[0])
    targets = bench.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    p = targets.add_parser("ops", help="training steps against torch anchors, one process",
                           description=__doc__.split("\n\n")[0])
    kernels.add_parser(targets)
    phases.add_parser(targets)
    p.add_argument("--quick", action="store_true", help="shorter sequences (LSTM 128/256, "
                   "attention 256/512)")
    p.add_argument("--out", nargs="?", const=DEFAULT_OUT, metavar="FILE",
                   help="append one JSON line per measurement to FILE; --out alone: this machine's "
                        "profiles/<machine>/scaling/bench_ops.jsonl")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pairs", type=_rounds, default=5, metavar="N",
                   help="after each case, N rounds that time the anchor and every impl one step each, in "
                        "turn (each after an untimed step of its own), and report the median per-round "
                        "ratio ('x anchor paired'; targets are judged on it); 0 = off (default 5)")
    p.add_argument("--lstm-lengths", type=int, nargs="+", help="override the LSTM lengths")
    p.add_argument("--attn-lengths", type=int, nargs="+", help="override the attention lengths")
    p.add_argument("--stack-lengths", type=int, nargs="+", help="override the stacked-LSTM lengths")
    p.add_argument("--stacks", nargs="*", choices=tuple(STACK_CASES), default=list(STACK_CASES),
                   help="stacked-LSTM cases to run (default both; none: --stacks with no value)")
    p.add_argument("--backends", nargs="+", help="attention backends (default: all available)")
    p.add_argument("--width", type=int, default=256, help="LSTM input = hidden; attention d_model")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lstm-batch", type=int, default=32)
    p.add_argument("--attn-batch", type=int, default=8)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--verbose", action="store_true", help="print each measurement as it finishes")
    p.set_defaults(func=_cmd)
