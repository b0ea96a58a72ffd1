"""`jaxseq scale`: resumable scaling sweeps over model × length × batch × precision × mode × devices.

    jaxseq scale --preset cpu --out profiles/cpu-2core [--trace] [--models lstm mingru] [--lengths 256 1024]

Writes `DIR/results.jsonl` (one record per point, see `jaxseq.bench.sweep`; rerunning skips finished
points) and, with `--trace`, `DIR/traces/<model>_T<len>/` (one `jax.profiler` trace of one step,
after warm-up). Presets:

- smoke: a few tiny points, < 1 min (used by the tests);
- cpu:   the study on the project's 2-core CPU, < 15 min;
- gpu:   one H100/H200, about 8 min (bf16 and float32, up to T=16384, cuDNN backends);
- full:  everything (hours).

Device-count points (data parallel, `pmap` and sharded `jit`) run in their own worker process with
`--xla_force_host_platform_device_count=N` set before jax is imported (fake CPU devices), or on real
devices when there are enough of them.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "Grid", "Preset", "build_points", "run_point", "env_for", "run_scale",
           "write_traces", "add_parser", "main"]

PEAK_ENV = "JAXSEQ_PEAK_TFLOPS"  # --peak-tflops reaches the worker processes through this


@dataclasses.dataclass(frozen=True)
class Grid:
    """A product of point parameters. `devices`/`parallel` non-empty makes data-parallel points."""

    models: tuple[str, ...]
    lengths: tuple[int, ...]
    batches: tuple[int, ...]
    widths: tuple[int, ...]
    dtypes: tuple[str, ...] = ("float32",)
    modes: tuple[str, ...] = ("train",)
    devices: tuple[int, ...] = ()
    parallel: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Preset:
    grids: tuple[Grid, ...]
    warmup: int
    repeats: int
    timeout_s: float | None  # None: points run in this process (device points still get workers)
    trace_lengths: int = 2  # traces at this many lengths per model (smallest and largest first)


_RNNS = ("lstm", "gru", "mingru", "minlstm")
_ATTN_CPU = ("attn-naive", "attn-vmapped", "attn-blockwise", "attn-xla")
_ATTN_ALL = _ATTN_CPU + ("attn-cudnn",)
_LAYERS = ("lstm-layer", "transformer-block")
_ANCHORS = ("torch-lstm", "torch-sdpa", "flax-lstm", "cudnn-lstm")


def _pow2(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2 ** k for k in range(lo, hi + 1))


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        grids=(
            # mingru's associative scan compiles in ~5-10 s even this small: not in the smoke set.
            Grid(("lstm", "attn-xla", "torch-lstm"), (16, 32), (2,), (32,)),
            Grid(("lstm",), (16,), (2,), (32,), devices=(2,), parallel=("jit", "pmap")),
        ),
        warmup=1, repeats=2, timeout_s=None, trace_lengths=1,
    ),
    "cpu": Preset(
        grids=(
            Grid(_RNNS + _ATTN_CPU + _LAYERS + ("torch-lstm", "torch-sdpa", "flax-lstm"),
                 _pow2(7, 11), (8,), (128,)),
            Grid(("lstm", "mingru", "attn-blockwise", "attn-xla", "torch-lstm", "torch-sdpa"),
                 (256, 2048), (8,), (128,), modes=("forward",)),
            Grid(("lstm", "transformer-block"), (512,), (4,), (128,),
                 devices=(1, 2, 4), parallel=("jit", "pmap")),
        ),
        warmup=1, repeats=3, timeout_s=120,
    ),
    "gpu": Preset(
        grids=(
            Grid(_RNNS + _ATTN_ALL + _LAYERS + _ANCHORS, (256, 1024, 4096, 16384), (16,), (512,),
                 dtypes=("bfloat16",)),
            # cuDNN's LSTM takes float32 only (KNOWLEDGE.md): the fair LSTM comparison is here.
            Grid(("lstm", "cudnn-lstm", "torch-lstm", "attn-xla"), (1024, 4096), (16,), (512,),
                 dtypes=("float32",)),
            Grid(("lstm", "mingru", "attn-cudnn", "attn-blockwise"), (1024, 16384), (16,), (512,),
                 dtypes=("bfloat16",), modes=("forward",)),
            Grid(("lstm", "transformer-block"), (1024,), (16,), (512,), dtypes=("bfloat16",),
                 devices=(1, 2, 4, 8), parallel=("jit", "pmap")),
        ),
        # ~80 points on one GPU; a short limit keeps a few slow points from eating the budget.
        warmup=2, repeats=5, timeout_s=60,
    ),
    "full": Preset(
        grids=(
            Grid(_RNNS + _ATTN_ALL + _LAYERS + _ANCHORS, _pow2(7, 16), (8, 32), (256, 1024),
                 dtypes=("float32", "bfloat16"), modes=("forward", "train")),
            Grid(("lstm", "mingru", "transformer-block"), (1024,), (8,), (256,),
                 devices=(1, 2, 4, 8), parallel=("jit", "pmap")),
        ),
        warmup=2, repeats=5, timeout_s=900, trace_lengths=3,
    ),
}


def _grid_points(g: Grid, warmup: int, repeats: int) -> list[dict[str, Any]]:
    points = []
    for model, T, B, W, dt, mode in itertools.product(g.models, g.lengths, g.batches, g.widths,
                                                      g.dtypes, g.modes):
        base = {"model": model, "seq_len": T, "batch": B, "width": W, "dtype": dt, "mode": mode,
                "warmup": warmup, "repeats": repeats}
        if g.devices:
            for n, par in itertools.product(g.devices, g.parallel or ("jit",)):
                points.append({**base, "devices": n, "parallel": par})
        else:
            points.append(base)
    return points


def build_points(preset: str, *, models: list[str] | None = None, lengths: list[int] | None = None,
                 available: tuple[str, ...] | None = None, max_devices: int | None = None,
                 include_devices: bool = True) -> list[dict[str, Any]]:
    """The point list of a preset.

    `models` replaces the model list of the preset's first grid and filters the others; `lengths`
    replaces every grid's lengths. Models not in `available` and device counts above `max_devices`
    (None: no limit, fake CPU devices) are dropped.
    """
    from jaxseq.bench.workloads import MODELS

    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {tuple(PRESETS)}, got {preset!r}")
    for m in models or ():
        if m not in MODELS:
            raise ValueError(f"--models: unknown model {m!r}; valid: {', '.join(MODELS)}")
    for n in lengths or ():
        if n < 1:
            raise ValueError(f"--lengths must be positive ints, got {n}")
    p = PRESETS[preset]
    points: list[dict[str, Any]] = []
    for i, g in enumerate(p.grids):
        if g.devices and not include_devices:
            continue
        if models:
            g = dataclasses.replace(g, models=tuple(models) if i == 0 else
                                    tuple(m for m in g.models if m in models))
        if lengths:
            g = dataclasses.replace(g, lengths=tuple(sorted(set(lengths))))
        if available is not None:
            g = dataclasses.replace(g, models=tuple(m for m in g.models if m in available))
        if g.devices and max_devices is not None:
            g = dataclasses.replace(g, devices=tuple(n for n in g.devices if n <= max_devices))
        points.extend(_grid_points(g, p.warmup, p.repeats))
    # Grids may overlap; keep the first of equal points.
    seen, unique = set(), []
    for pt in points:
        key = json.dumps(pt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(pt)
    return unique


def env_for(point: dict[str, Any]) -> dict[str, str] | None:
    """Environment of the worker that runs `point`: a fake CPU device count for device points."""
    if "devices" not in point or os.environ.get("JAXSEQ_REAL_DEVICES") == "1":
        return None
    n = int(point["devices"])
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                   os.environ.get("XLA_FLAGS", "")).strip()
    return {
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}".strip(),
        "JAX_NUM_CPU_DEVICES": str(n),
        "JAX_PLATFORMS": "cpu",
    }


def run_point(point: dict[str, Any]) -> dict[str, Any]:
    """Build, compile, warm up and time one point (runs inside a sweep worker)."""
    from jaxseq.bench.workloads import build_workload, measure_workload

    w = build_workload(point)
    peak = os.environ.get(PEAK_ENV)
    return measure_workload(w, warmup=int(point.get("warmup", 2)),
                            repeats=int(point.get("repeats", 5)), dtype=point.get("dtype", "float32"),
                            peak_tflops=float(peak) if peak else None)


def write_traces(out_dir: Path, points: list[dict[str, Any]], per_model: int = 2) -> list[str]:
    """One `jax.profiler` trace of one step per (model, length) at the smallest and largest lengths.

    The step is compiled and warmed up first and the device is idle (blocked on) when the trace starts
    and stops, so the trace shows one steady-state step. torch anchors and device points are skipped.
    """
    import jax

    from jaxseq.bench.timing import compile_fn
    from jaxseq.bench.workloads import build_workload

    by_model: dict[str, list[dict[str, Any]]] = {}
    for pt in points:
        if "devices" in pt or pt["model"].startswith("torch-") or pt["mode"] != "train":
            continue
        by_model.setdefault(pt["model"], []).append(pt)
    written = []
    for model, pts in by_model.items():
        pts = sorted(pts, key=lambda q: q["seq_len"])
        picks = [pts[0], pts[-1], pts[len(pts) // 2]][:per_model]
        for pt in {json.dumps(q, sort_keys=True): q for q in picks}.values():
            name = f"{model}_T{pt['seq_len']}_{pt['dtype']}"
            logdir = out_dir / "traces" / name
            try:
                w = build_workload(pt)
                compiled, _ = compile_fn(w.fn, *w.args)
                for _ in range(2):
                    jax.block_until_ready(compiled(*w.args))
                with jax.profiler.trace(str(logdir)):
                    jax.block_until_ready(compiled(*w.args))
                written.append(str(logdir))
            except Exception as e:  # a trace is a convenience: report and go on
                print(f"trace {name}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
    return written


_SUMMARY_COLUMNS = [("model", "model"), ("seq_len", "T"), ("batch", "B"), ("dtype", "dtype"),
                    ("mode", "mode"), ("devices", "dev"), ("status", "status"), ("ms", "ms"),
                    ("ktok_s", "ktok/s"), ("tflops", "TFLOP/s"), ("mfu", "MFU"),
                    ("temp_mb", "temp MB"), ("compile_s", "compile s")]


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for the printed table."""
    rows = []
    for rec in records:
        p, r = rec.get("point", {}), rec.get("result") or {}
        mem = r.get("memory") or {}
        rows.append({
            **{k: p.get(k) for k in ("model", "seq_len", "batch", "dtype", "mode")},
            "devices": p.get("devices", "") and f"{p['devices']}{p.get('parallel', '')[:1]}",
            "status": rec.get("status"),
            "ms": r.get("median_s") and r["median_s"] * 1e3,
            "ktok_s": r.get("tokens_per_s") and r["tokens_per_s"] / 1e3,
            "tflops": r.get("tflops_per_s"),
            "mfu": r.get("mfu"),
            "temp_mb": mem.get("temp_bytes") and mem["temp_bytes"] / 2**20,
            "compile_s": r.get("compile_s"),
        })
    return rows


def run_scale(preset: str, out: str | os.PathLike, *, models: list[str] | None = None,
              lengths: list[int] | None = None, trace: bool = False,
              timeout_s: float | None = None, peak_tflops: float | None = None,
              retry_errors: bool = False, devices: bool = True, fresh_process: bool = False,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run a preset into `out/results.jsonl`; return the records written by this call."""
    import jax

    from jaxseq.bench.sweep import Sweep
    from jaxseq.bench.workloads import available_models

    backend = jax.default_backend()
    real = backend != "cpu"  # on accelerators device points use the real devices
    if real:
        os.environ["JAXSEQ_REAL_DEVICES"] = "1"
    points = build_points(preset, models=models, lengths=lengths,
                          available=available_models(backend),
                          max_devices=jax.device_count() if real else None,
                          include_devices=devices)
    if not points:
        raise ValueError("no points to run (check --models against the models this backend has)")
    if peak_tflops is not None:
        os.environ[PEAK_ENV] = str(peak_tflops)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(out_dir / "results.jsonl", points, run_point,
                  per_point_timeout_s=timeout_s or PRESETS[preset].timeout_s, env_for=env_for,
                  fresh_process=fresh_process, retry=("error",) if retry_errors else (),
                  progress=progress, desc=f"scale:{preset}")
    skipped = len(points) - len(sweep.pending())
    if skipped:
        print(f"{skipped} of {len(points)} points already in {sweep.path}; running the rest")
    records = sweep.run()
    if trace:
        written = write_traces(out_dir, points, PRESETS[preset].trace_lengths)
        print(f"{len(written)} traces in {out_dir / 'traces'}")
    return records


def _cmd(args: argparse.Namespace) -> int:
    from jaxseq.bench.timing import format_table

    records = run_scale(args.preset, args.out, models=args.models, lengths=args.lengths,
                        trace=args.trace, timeout_s=args.timeout, peak_tflops=args.peak_tflops,
                        retry_errors=args.retry_errors, devices=not args.no_devices,
                        fresh_process=args.fresh_process, progress=not args.no_progress)
    if records:
        print(format_table(summary_rows(records), _SUMMARY_COLUMNS))
    bad = sum(r["status"] != "ok" for r in records)
    print(f"{len(records)} points run ({bad} not ok) -> {Path(args.out) / 'results.jsonl'}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq scale`."""
    p = subparsers.add_parser("scale", help="resumable scaling sweep (results.jsonl, traces)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    p.add_argument("--out", required=True, help="output folder (results.jsonl, traces/)")
    p.add_argument("--models", nargs="+", help="models to run (replaces the preset's list)")
    p.add_argument("--lengths", nargs="+", type=int, help="sequence lengths (replaces the preset's)")
    p.add_argument("--trace", action="store_true", help="write jax.profiler traces into OUT/traces")
    p.add_argument("--timeout", type=float, help="per-point limit in seconds (preset default)")
    p.add_argument("--peak-tflops", type=float,
                   help="device peak for MFU where the device is not in flops.PEAK_FLOPS (CPUs)")
    p.add_argument("--retry-errors", action="store_true", help="rerun points recorded as error")
    p.add_argument("--no-devices", action="store_true", help="skip the device-count points")
    p.add_argument("--fresh-process", action="store_true",
                   help="one process per point (per-point GPU memory peaks; slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    """`python -m jaxseq.bench.scale --point JSON` runs one point here and prints its result."""
    parser = argparse.ArgumentParser(prog="python -m jaxseq.bench.scale")
    parser.add_argument("--point", required=True, help="a point as JSON")
    args = parser.parse_args(argv)
    print(json.dumps(run_point(json.loads(args.point)), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
