"""`jaxseq scale`: resumable scaling sweeps over model × length × batch × precision × mode × devices.

    jaxseq scale --preset cpu [--out DIR] [--trace] [--models lstm mingru]
                 [--lengths 256 1024] [--trace-only]

Writes `DIR/results.jsonl` (one record per point, see `jaxseq.bench.sweep`; rerunning skips the points
this machine finished, never another machine's) and, with `--trace`, `DIR/traces/<model>_T<len>_<dtype>/` (one `jax.profiler` trace of one
warmed-up step per model at its smallest and a short length: a scan's trace grows with T). Presets:

- smoke: a few tiny points, < 1 min (used by the tests);
- cpu:   the study on the project's 2-core CPU, < 15 min;
- gpu:   one H100/H200, about 8 min (the issue's GPU targets first, then bf16/float16/float32 up to
         T=16384 with the cuDNN backends, then generation points up to a 65536-token context);
- gpu-generate: generation points alone on one GPU (contexts up to 65536);
- gpu-verdict-lstm, -length, -generate: the GPU rows of the verdict in one device call
         (scripts/gpu_verdict.sh, each part under its own cap); smoke-verdict-*: the same at toy size;
- full:  everything (hours).

Generation points (`mode="generate"`, `jaxseq.bench.generation`): per-token decode latency and memory
per sequence against the context length (`seq_len`) for "lstm", "mingru" and "transformer" stacks of
2 layers at equal width (the Transformer with a key/value cache); `jaxseq report` turns them into its
"Generation" section.

DIR defaults to this machine's folder: `profiles/<machine_slug>/scaling/` for the study presets (cpu,
gpu), `profiles/<machine_slug>/scaling/<preset>/` for the others, so a smoke run never lands among the
study's points.

Device-count points (data parallel, `pmap` and sharded `jit`) run in their own worker process with
`--xla_force_host_platform_device_count=N` set before jax is imported (fake CPU devices), or on real
devices when there are enough of them.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "STUDY_PRESETS", "Grid", "Preset", "build_points", "run_point", "env_for",
           "run_scale", "default_folder", "resolve_out", "trace_points", "write_traces", "dir_size",
           "add_parser", "main"]

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
    warmup: int | None = None  # None: the preset's
    repeats: int | None = None
    # Extra point fields, one variant per dict (e.g. ({"unroll": 8},) for scan unrolling).
    options: tuple[dict[str, Any], ...] = ({},)


@dataclasses.dataclass(frozen=True)
class Preset:
    grids: tuple[Grid, ...]
    warmup: int
    repeats: int
    timeout_s: float | None  # None: points run in this process (device points still get workers)
    trace_lengths: int = 2  # traces at this many lengths per model (smallest and largest first)
    # Longest length traced: a scan's trace holds events for every step (an LSTM step traced at
    # T=4096 is ~17 MB on CPU), so traces stay at short lengths.
    trace_max_len: int = 512


_RNNS = ("lstm", "gru", "mingru", "minlstm")
_ATTN_CPU = ("attn-naive", "attn-vmapped", "attn-blockwise", "attn-xla")
_ATTN_ALL = _ATTN_CPU + ("attn-cudnn",)
_LAYERS = ("lstm-layer", "transformer-block")
_ANCHORS = ("torch-lstm", "torch-sdpa", "flax-lstm", "cudnn-lstm")
_GENERATE = ("lstm", "mingru", "transformer")  # jaxseq.bench.generation.GENERATE_MODELS


def _pow2(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2 ** k for k in range(lo, hi + 1))


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        grids=(
            # mingru's associative scan compiles in ~5-10 s even this small: not in the smoke set.
            Grid(("lstm", "attn-xla", "torch-lstm"), (16, 32), (2,), (32,)),
            Grid(("lstm",), (16,), (2,), (32,), devices=(2,), parallel=("jit", "pmap")),
            # Generation: per-token decode at one tiny context (~1-2 s per point, mostly compile).
            Grid(_GENERATE, (32,), (1,), (32,), modes=("generate",), options=({"new_tokens": 4},)),
        ),
        warmup=1, repeats=2, timeout_s=None, trace_lengths=1,
    ),
    # 134 points. Estimated on 2 quiet cores (from earlier timings on the project's 2-core CPU and
    # points timed while the machine was loaded): main grid ~2 min, long-T grid ~1.5 min, forward
    # ~25 s, targets ~1.5 min, device grid ~1 min, generation 40 s (measured, loaded), traces ~1 min
    # (22 traces, 26 MB): about 8-9 minutes in all.
    "cpu": Preset(
        grids=(
            # Main grid: every model at equal width, training step, T = 128 .. 2048.
            Grid(_RNNS + _ATTN_CPU + _LAYERS + ("torch-lstm", "torch-sdpa", "flax-lstm"),
                 _pow2(7, 11), (8,), (128,)),
            # The same settings at long T, fewer repeats: minGRU/minLSTM vs the LSTM at 4096 and
            # 16384 (an issue target), blockwise attention's T^2 against the scans' T.
            Grid(("lstm", "gru", "mingru", "minlstm", "attn-blockwise", "torch-lstm"),
                 (4096, 16384), (8,), (128,), repeats=2),
            # minGRU vs the LSTM where the LSTM's recurrent matmul is large (2.6-4.2x at B=32,
            # H=256, measured on the project's 2-core CPU); T=16384 there costs ~40 s per LSTM
            # step, so T=4096 only (~40 s).
            Grid(("lstm", "mingru"), (4096,), (32,), (256,), repeats=2),
            # Forward only (inference).
            Grid(("lstm", "mingru", "attn-blockwise", "attn-xla", "torch-lstm", "torch-sdpa"),
                 (256, 2048), (8,), (128,), modes=("forward",)),
            # Target: jaxseq LSTM >= 1.0x torch.nn.LSTM tokens/s at batch 32, hidden 256, T=1024.
            Grid(("lstm", "torch-lstm", "flax-lstm"), (256, 1024), (32,), (256,)),
            # Target: blockwise attention >= 1.0x torch SDPA at T=2048 (d_model 256, 4 heads,
            # batch 8), with memory linear in T (three lengths for the fit).
            Grid(("attn-blockwise", "torch-sdpa"), (1024, 2048, 4096), (8,), (256,)),
            # Data parallel on 1, 2, 4, 8 fake CPU devices (weak scaling, 4 sequences per device).
            Grid(("lstm", "transformer-block"), (512,), (4,), (128,),
                 devices=(1, 2, 4, 8), parallel=("jit", "pmap")),
            # Generation: ms per token and memory per sequence against the context length, batch 1,
            # 2 layers of width 256 (calls of 16 tokens are short and noisy: more warm-up and
            # repeats). 64 locates a crossover below 256. The 15 points took 40 s on the 2-core
            # CPU under a load average of ~10 (most of it compiling; 16384 costs ~46 ms per token).
            Grid(_GENERATE, (64, 256, 1024, 4096, 16384), (1,), (256,), modes=("generate",),
                 warmup=3, repeats=7),
        ),
        warmup=1, repeats=3, timeout_s=120,
    ),
    # Ordered by what matters most, since the sweep may be cut at its time limit (points run grid
    # by grid, shortest lengths first): the three GPU targets, then the scaling grid.
    "gpu": Preset(
        grids=(
            # Target: jaxseq LSTM >= 1.0x torch's cuDNN LSTM (published anchor B=16, T=1024,
            # H=768, fp16, forward+backward 5.19 ms). lax.scan launches kernels per step (~8 us
            # floor), so unrolled variants run beside it; cuDNN through JAX is float32 only.
            Grid(("lstm", "torch-lstm", "flax-lstm"), (1024,), (16,), (768,),
                 dtypes=("float16", "float32")),
            Grid(("lstm",), (1024,), (16,), (768,), dtypes=("float16", "float32"),
                 options=({"unroll": 8}, {"unroll": 32})),
            Grid(("cudnn-lstm",), (1024,), (16,), (768,), dtypes=("float32",)),
            Grid(("lstm", "torch-lstm", "cudnn-lstm"), (1024,), (16,), (768,),
                 dtypes=("float16", "float32"), modes=("forward",)),
            # Target: Transformer block training step MFU >= 45% (bf16, widths where matmuls fill
            # the chip).
            Grid(("transformer-block",), (2048,), (16,), (1024, 2048), dtypes=("bfloat16",)),
            # Target: attention >= 0.9x cuDNN flash attention's TFLOP/s (head_dim 64 and 128).
            Grid(("attn-cudnn", "attn-xla", "attn-blockwise", "torch-sdpa"), (1024, 4096, 16384),
                 (16,), (1024,), dtypes=("bfloat16",)),
            Grid(("attn-cudnn", "attn-xla", "attn-blockwise", "torch-sdpa"), (4096,), (16,),
                 (1024,), dtypes=("bfloat16",), options=({"heads": 8},)),
            # The scaling study: every model at equal width, bf16 training step, T = 256 .. 16384.
            # cudnn-lstm is float32 only: it is in the next grid, not here.
            Grid(_RNNS + _ATTN_ALL + _LAYERS + ("torch-lstm", "torch-sdpa", "flax-lstm"),
                 (256, 1024, 4096, 16384), (16,), (512,), dtypes=("bfloat16",), repeats=3),
            # cuDNN's LSTM takes float32 only: the fair LSTM comparison is here.
            Grid(("lstm", "cudnn-lstm", "torch-lstm", "attn-xla"), (1024, 4096), (16,), (512,),
                 dtypes=("float32",), repeats=3),
            Grid(("lstm", "mingru", "attn-cudnn", "attn-blockwise"), (1024, 16384), (16,), (512,),
                 dtypes=("bfloat16",), modes=("forward",), repeats=3),
            Grid(("lstm", "transformer-block"), (1024,), (16,), (512,), dtypes=("bfloat16",),
                 devices=(1, 2, 4, 8), parallel=("jit", "pmap")),
            # The CPU study's target settings, for a CPU/GPU comparison at equal points.
            Grid(("lstm", "torch-lstm", "flax-lstm"), (1024,), (32,), (256,)),
            Grid(("attn-blockwise", "attn-xla", "torch-sdpa"), (1024, 2048, 4096), (8,), (256,)),
            # Generation (last: the GPU targets come first): the CPU grid's settings for a
            # CPU/GPU comparison, then width 512 in bf16 up to 65536 (`gpu-generate` alone).
            Grid(_GENERATE, (256, 1024, 4096, 16384), (1,), (256,), modes=("generate",)),
            Grid(_GENERATE, (1024, 4096, 16384, 65536), (1,), (512,), dtypes=("bfloat16",),
                 modes=("generate",)),
        ),
        # ~100 points on one GPU; a short limit keeps a few slow points from eating the budget.
        # One trace per model (its shortest length): traces must come back as one small tarball.
        warmup=2, repeats=5, timeout_s=45, trace_lengths=1, trace_max_len=1024,
    ),
    # Long sequences on one GPU (the `gpu` preset stops at 16384): where memory allows, 64k.
    "gpu-long": Preset(
        grids=(
            Grid(("lstm", "mingru", "minlstm", "attn-cudnn", "torch-sdpa", "torch-lstm", "lstm-layer",
                  "transformer-block", "attn-blockwise"),
                 (32768, 65536), (16,), (512,), dtypes=("bfloat16",)),
        ),
        warmup=1, repeats=2, timeout_s=60, trace_lengths=0,
    ),
    # The GPU LSTM target's point alone, to compare XLA_FLAGS (e.g. command buffers for while loops)
    # run by run, each with its own torch cuDNN anchor.
    "gpu-lstm": Preset(
        grids=(
            Grid(("torch-lstm",), (1024,), (16,), (768,), dtypes=("float16",)),
            Grid(("lstm",), (1024,), (16,), (768,), dtypes=("float16",),
                 options=({}, {"unroll": 8}, {"unroll": 32})),
        ),
        warmup=3, repeats=10, timeout_s=60, trace_lengths=0,
    ),
    # Issue 13 on one GPU (scripts/gpu_lstm.sh): the one-layer target (fp16, B=16, H=768, T=1024), an
    # 8-layer stack at H=1024 and a 2-layer bidirectional stack, jaxseq.nn.LSTM under every schedule
    # beside torch's cuDNN LSTM at the same shapes (the anchor first in each group).
    "gpu-lstm-stack": Preset(
        grids=(
            Grid(("torch-lstm", "lstm", "lstm-layer"), (1024,), (16,), (768,), dtypes=("float16",)),
            Grid(("torch-lstm",), (1024,), (16,), (1024,), dtypes=("float16",), options=({"layers": 8},)),
            Grid(("lstm-layer",), (1024,), (16,), (1024,), dtypes=("float16",),
                 options=({"layers": 8, "schedule": "layers"}, {"layers": 8, "schedule": "wavefront"})),
            Grid(("torch-lstm",), (1024,), (16,), (768,), dtypes=("float16",),
                 options=({"layers": 2, "bidirectional": True},)),
            Grid(("lstm-layer",), (1024,), (16,), (768,), dtypes=("float16",),
                 options=({"layers": 2, "bidirectional": True, "schedule": "layers"},
                          {"layers": 2, "bidirectional": True, "schedule": "fused"})),
            # One Pallas (Triton) kernel per forward time step (jaxseq.ops.pallas_lstm): the in-place
            # form in two tilings and the step form inside lax.scan, one layer, then the 8-layer stack
            # layer by layer.
            Grid(("lstm",), (1024,), (16,), (768,), dtypes=("float16",),
                 options=({"step_kernel": "pallas"}, {"step_kernel": "pallas", "block_hidden": 32},
                          {"step_kernel": "pallas", "pallas_in_place": False})),
            Grid(("lstm",), (1024,), (16,), (768,), dtypes=("float16",), modes=("forward",),
                 options=({}, {"step_kernel": "pallas"})),
            Grid(("torch-lstm",), (1024,), (16,), (768,), dtypes=("float16",), modes=("forward",)),
            Grid(("lstm-layer",), (1024,), (16,), (1024,), dtypes=("float16",),
                 options=({"layers": 8, "step_kernel": "pallas"},)),
        ),
        warmup=2, repeats=5, timeout_s=60, trace_lengths=0,
    ),
    # The 1-layer and 8-layer points again, for one XLA_FLAGS variant per run (scripts/gpu_lstm.sh).
    "gpu-lstm-flags": Preset(
        grids=(
            Grid(("torch-lstm", "lstm"), (1024,), (16,), (768,), dtypes=("float16",)),
            Grid(("lstm",), (1024,), (16,), (768,), dtypes=("float16",), options=({"step_kernel": "pallas"},)),
            Grid(("torch-lstm",), (1024,), (16,), (1024,), dtypes=("float16",), options=({"layers": 8},)),
            Grid(("lstm-layer",), (1024,), (16,), (1024,), dtypes=("float16",),
                 options=({"layers": 8, "schedule": "wavefront"},)),
        ),
        warmup=2, repeats=5, timeout_s=45, trace_lengths=0,
    ),
    # Generation only on one GPU: batch 1 (latency) and 16 (throughput), contexts 256 .. 65536.
    "gpu-generate": Preset(
        grids=(
            Grid(_GENERATE, (256, 1024, 4096, 16384, 65536), (1, 16), (512,),
                 dtypes=("bfloat16", "float32"), modes=("generate",)),
        ),
        warmup=2, repeats=10, timeout_s=60, trace_lengths=0,
    ),
    # scripts/gpu_verdict.sh: every GPU row of the verdict in one device call (at most 540 s), one preset
    # per part, each run under its own wall-clock cap into the machine's scaling folder (where `jaxseq
    # verdict` reads it). Points equal those of `gpu-lstm-stack` and `gpu` (same warm-up and repeats,
    # so the same keys: a later `gpu` sweep there resumes past them). Part 1, the LSTM against torch's
    # cuDNN LSTM (fp16, B=16, T=1024): one layer at H=768 and the 8-layer stack at H=1024, anchor first
    # in each group.
    "gpu-verdict-lstm": Preset(
        grids=(
            Grid(("torch-lstm", "lstm", "lstm-layer"), (1024,), (16,), (768,), dtypes=("float16",)),
            Grid(("torch-lstm",), (1024,), (16,), (1024,), dtypes=("float16",), options=({"layers": 8},)),
            Grid(("lstm-layer",), (1024,), (16,), (1024,), dtypes=("float16",),
                 options=({"layers": 8, "schedule": "layers"}, {"layers": 8, "schedule": "wavefront"})),
        ),
        warmup=2, repeats=5, timeout_s=60, trace_lengths=0,
    ),
    # Part 2: step time against length, bf16 training step at B=16, width 512 (the `gpu` scaling grid's
    # LSTM scan, LSTM layer, Transformer block and minGRU).
    "gpu-verdict-length": Preset(
        grids=(
            Grid(("lstm", "lstm-layer", "transformer-block", "mingru"), (256, 1024, 4096, 16384), (16,),
                 (512,), dtypes=("bfloat16",), repeats=3),
        ),
        warmup=2, repeats=5, timeout_s=45, trace_lengths=0,
    ),
    # Part 4 (part 3 is the translation study): per-token generation latency at batch 1, the `gpu`
    # preset's CPU-comparable grid (width 256, float32) and its longest bf16 contexts at width 512.
    "gpu-verdict-generate": Preset(
        grids=(
            Grid(_GENERATE, (256, 1024, 4096, 16384), (1,), (256,), modes=("generate",)),
            Grid(_GENERATE, (16384, 65536), (1,), (512,), dtypes=("bfloat16",), modes=("generate",)),
        ),
        warmup=2, repeats=5, timeout_s=45, trace_lengths=0,
    ),
    # The three parts at the smoke preset's sizes, for scripts/gpu_verdict.sh's CPU dry run (stacks of 2
    # layers instead of 8: the same code paths, short compiles). In-process points, as `smoke`.
    "smoke-verdict-lstm": Preset(
        grids=(
            Grid(("torch-lstm", "lstm", "lstm-layer"), (16,), (2,), (32,)),
            Grid(("torch-lstm",), (16,), (2,), (32,), options=({"layers": 2},)),
            Grid(("lstm-layer",), (16,), (2,), (32,),
                 options=({"layers": 2, "schedule": "layers"}, {"layers": 2, "schedule": "wavefront"})),
        ),
        warmup=1, repeats=2, timeout_s=None, trace_lengths=0,
    ),
    "smoke-verdict-length": Preset(
        grids=(Grid(("lstm", "lstm-layer", "transformer-block", "mingru"), (16, 32), (2,), (32,)),),
        warmup=1, repeats=2, timeout_s=None, trace_lengths=0,
    ),
    "smoke-verdict-generate": Preset(
        grids=(Grid(_GENERATE, (32,), (1,), (32,), modes=("generate",), options=({"new_tokens": 4},)),),
        warmup=1, repeats=2, timeout_s=None, trace_lengths=0,
    ),
    "full": Preset(
        grids=(
            Grid(_RNNS + _ATTN_ALL + _LAYERS + _ANCHORS, _pow2(7, 16), (8, 32), (256, 1024),
                 dtypes=("float32", "bfloat16"), modes=("forward", "train")),
            Grid(("lstm", "mingru", "transformer-block"), (1024,), (8,), (256,),
                 devices=(1, 2, 4, 8), parallel=("jit", "pmap")),
        ),
        warmup=2, repeats=5, timeout_s=900, trace_lengths=3, trace_max_len=1024,
    ),
}


# Presets whose results are the machine's scaling study (profiles/<machine_slug>/ itself); the
# others write into a subfolder named after the preset.
STUDY_PRESETS = ("cpu", "gpu")


def grow_gpu_memory() -> None:
    """Let GPU allocators grow instead of taking 75% up front (before any jax backend starts).

    A GPU worker and this process would each grab 75% of the device memory by default; this must be
    set before the backend starts (reading the machine fingerprint starts it), and workers inherit it.
    """
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def default_folder(preset: str) -> str:
    """The default output folder of `preset` inside profiles/<machine_slug>/: `scaling` for the study
    presets, `scaling/<preset>` for the others."""
    return "scaling" if preset in STUDY_PRESETS else f"scaling/{preset}"


def resolve_out(out: str | os.PathLike | None, preset: str) -> Path:
    """`out` as given, else this machine's folder for `preset` (see `default_folder`)."""
    from jaxseq.studies.base import resolve_out as _resolve

    return _resolve(out, default_folder(preset))


def _grid_points(g: Grid, warmup: int, repeats: int) -> list[dict[str, Any]]:
    # Shortest lengths first, every model at one length before the next: a sweep cut short by an
    # overall time limit loses its longest (slowest) points, not whole models.
    points = []
    warmup = warmup if g.warmup is None else g.warmup
    repeats = repeats if g.repeats is None else g.repeats
    for T, model, B, W, dt, mode, opts in itertools.product(
            g.lengths, g.models, g.batches, g.widths, g.dtypes, g.modes, g.options):
        base = {"model": model, "seq_len": T, "batch": B, "width": W, "dtype": dt, "mode": mode,
                **opts, "warmup": warmup, "repeats": repeats}
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
    from jaxseq.bench.generation import GENERATE_MODELS
    from jaxseq.bench.workloads import MODELS

    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {tuple(PRESETS)}, got {preset!r}")
    for m in models or ():
        if m not in MODELS and m not in GENERATE_MODELS:
            valid = MODELS + tuple(g for g in GENERATE_MODELS if g not in MODELS)
            raise ValueError(f"--models: unknown model {m!r}; valid: {', '.join(valid)}")
    for n in lengths or ():
        if n < 1:
            raise ValueError(f"--lengths must be positive ints, got {n}")
    p = PRESETS[preset]
    points: list[dict[str, Any]] = []
    for i, g in enumerate(p.grids):
        if g.devices and not include_devices:
            continue
        if models:
            picked = tuple(models) if i == 0 else tuple(m for m in g.models if m in models)
            if g.modes != ("generate",):
                picked = tuple(m for m in picked if m in MODELS)  # "transformer" generates only
            g = dataclasses.replace(g, models=picked)
        if lengths:
            g = dataclasses.replace(g, lengths=tuple(sorted(set(lengths))))
        g = dataclasses.replace(g, lengths=tuple(sorted(g.lengths)))
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
    from jaxseq.bench.generation import GenerationWorkload, generation_fields
    from jaxseq.bench.workloads import build_workload, measure_workload

    w = build_workload(point)
    peak = os.environ.get(PEAK_ENV)
    result = measure_workload(w, warmup=int(point.get("warmup", 2)),
                              repeats=int(point.get("repeats", 5)),
                              dtype=point.get("dtype", "float32"),
                              peak_tflops=float(peak) if peak else None)
    if isinstance(w, GenerationWorkload):
        result.update(generation_fields(w, result))  # ms_per_token, memory per sequence
    return result


def trace_points(points: list[dict[str, Any]], per_model: int = 2,
                 max_len: int | None = None) -> list[dict[str, Any]]:
    """The points `write_traces` traces: per model, `per_model` lengths <= `max_len`.

    Only single-device training points of JAX models count; per model, the settings (batch, width,
    dtype) with the most lengths are used (the preset's main grid), and the smallest and largest
    length up to `max_len` are picked (then the middle one).
    """
    by_model: dict[str, dict[tuple, list[dict[str, Any]]]] = {}
    for pt in points:
        if ("devices" in pt or pt["model"].startswith("torch-") or pt.get("mode", "train") != "train"
                or pt.get("unroll", 1) != 1):
            continue
        cfg = (pt["batch"], pt["width"], pt.get("dtype", "float32"))
        by_model.setdefault(pt["model"], {}).setdefault(cfg, []).append(pt)
    picked = []
    for model, cfgs in by_model.items():
        pts = max(cfgs.values(), key=len)  # max keeps the first of equal lengths
        short = [q for q in pts if max_len is None or q["seq_len"] <= max_len]
        pts = sorted(short or [min(pts, key=lambda q: q["seq_len"])], key=lambda q: q["seq_len"])
        picks = [pts[0], pts[-1], pts[len(pts) // 2]][:per_model]
        picked.extend({json.dumps(q, sort_keys=True): q for q in picks}.values())
    return picked


def trace_name(point: dict[str, Any]) -> str:
    return f"{point['model']}_T{point['seq_len']}_{point.get('dtype', 'float32')}"


def write_traces(out_dir: Path, points: list[dict[str, Any]], per_model: int = 2,
                 max_len: int | None = None, progress: bool = False) -> list[str]:
    """One `jax.profiler` trace of one step per picked point (`trace_points`), in OUT/traces/<name>/.

    The step is compiled and warmed up first and the device is idle (blocked on) when the trace starts
    and stops, so the trace shows one steady-state step. A trace folder that already holds a trace is
    kept (a rerun skips it). A failing trace is reported and skipped.
    """
    import jax

    from jaxseq.bench.timing import compile_fn
    from jaxseq.bench.workloads import build_workload

    picks = trace_points(points, per_model, max_len)
    written = []
    bar = None
    if progress and picks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(picks), desc="traces", unit="trace", file=sys.stderr, dynamic_ncols=True)
    for pt in picks:
        name = trace_name(pt)
        logdir = out_dir / "traces" / name
        if bar is not None:
            bar.set_postfix_str(name, refresh=True)
        if logdir.is_dir() and any(logdir.rglob("*.xplane.pb")):
            written.append(str(logdir))
        else:
            try:
                w = build_workload(pt)
                compiled, _ = compile_fn(w.fn, *w.args)
                for _ in range(2):
                    jax.block_until_ready(compiled(*w.args))
                with jax.profiler.trace(str(logdir)):
                    # The annotation covers the finished step, so XProf's Overview shows its real time.
                    with jax.profiler.StepTraceAnnotation("train", step_num=0):
                        jax.block_until_ready(compiled(*w.args))
                written.append(str(logdir))
            except Exception as e:  # a trace is a convenience: report and go on
                print(f"trace {name}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return written


def dir_size(path: Path) -> int:
    """Bytes of all files under `path` (0 if missing)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


_SUMMARY_COLUMNS = [("model", "model"), ("seq_len", "T"), ("batch", "B"), ("dtype", "dtype"),
                    ("mode", "mode"), ("devices", "dev"), ("status", "status"), ("ms", "ms"),
                    ("ktok_s", "ktok/s"), ("tflops", "TFLOP/s"), ("mfu", "MFU"),
                    ("temp_mb", "temp MB"), ("compile_s", "compile s")]


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for the printed table."""
    from jaxseq.bench.workloads import model_label
    rows = []
    for rec in records:
        p, r = rec.get("point", {}), rec.get("result") or {}
        mem = r.get("memory") or {}
        rows.append({
            "model": model_label(p) if p.get("model") else None,
            **{k: p.get(k) for k in ("seq_len", "batch", "dtype", "mode")},
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


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (e.g. from `timeout`) raises KeyboardInterrupt, so the sweep stops its workers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_scale(preset: str, out: str | os.PathLike | None = None, *,
              models: list[str] | None = None,
              lengths: list[int] | None = None, trace: bool = False, trace_only: bool = False,
              timeout_s: float | None = None, peak_tflops: float | None = None,
              retry_errors: bool = False, devices: bool = True, fresh_process: bool = False,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run a preset into `out/results.jsonl`; return the records written by this call.

    `out` None: this machine's folder (`resolve_out`). Points this machine already recorded there are
    skipped; other machines' records are left alone and do not count as done. `trace` writes the
    traces after the sweep; `trace_only` writes them without running the sweep.
    """
    grow_gpu_memory()
    import jax

    from jaxseq.bench.sweep import Sweep
    from jaxseq.bench.workloads import available_models

    backend = jax.default_backend()
    real = backend != "cpu"  # on accelerators device points use the real devices
    if real:
        os.environ["JAXSEQ_REAL_DEVICES"] = "1"
    from jaxseq.bench.generation import GENERATE_MODELS

    # Generation models (jaxseq.bench.generation) are pure JAX: they run on every backend.
    points = build_points(preset, models=models, lengths=lengths,
                          available=available_models(backend) + GENERATE_MODELS,
                          max_devices=jax.device_count() if real else None,
                          include_devices=devices)
    if not points:
        raise ValueError("no points to run (check --models against the models this backend has)")
    if peak_tflops is not None:
        os.environ[PEAK_ENV] = str(peak_tflops)
    out_dir = resolve_out(out, preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    if not trace_only:
        sweep = Sweep(out_dir / "results.jsonl", points, run_point,
                      per_point_timeout_s=timeout_s or PRESETS[preset].timeout_s, env_for=env_for,
                      fresh_process=fresh_process, retry=("error",) if retry_errors else (),
                      progress=progress, desc=f"scale:{preset}")
        skipped = len(points) - len(sweep.pending())
        if skipped:
            print(f"{skipped} of {len(points)} points already in {sweep.path} for this machine "
                  f"(id {sweep.machine_id}); running the rest", flush=True)
        foreign = sweep.foreign_records()
        if foreign:
            print(f"{sum(foreign.values())} records of {len(foreign)} other machine(s) in "
                  f"{sweep.path} are not resumed from (ids {', '.join(foreign)})", flush=True)
        with _sigterm_as_interrupt():
            records = sweep.run()
    if trace or trace_only:
        p = PRESETS[preset]
        written = write_traces(out_dir, points, p.trace_lengths, p.trace_max_len, progress=progress)
        size = dir_size(out_dir / "traces")
        print(f"{len(written)} traces in {out_dir / 'traces'} ({size / 2**20:.1f} MB in all)",
              flush=True)
    return records


def _cmd(args: argparse.Namespace) -> int:
    from jaxseq.bench.sweep import machine_fingerprint, machine_id
    from jaxseq.bench.timing import format_table

    grow_gpu_memory()
    out = resolve_out(args.out, args.preset)
    fp = machine_fingerprint()
    print(f"jaxseq scale --preset {args.preset} -> {out} (machine {machine_id(fp)})", flush=True)
    records = run_scale(args.preset, out, models=args.models, lengths=args.lengths,
                        trace=args.trace, trace_only=args.trace_only, timeout_s=args.timeout,
                        peak_tflops=args.peak_tflops,
                        retry_errors=args.retry_errors, devices=not args.no_devices,
                        fresh_process=args.fresh_process, progress=not args.no_progress)
    if records:
        print(format_table(summary_rows(records), _SUMMARY_COLUMNS))
    bad = sum(r["status"] != "ok" for r in records)
    print(f"{len(records)} points run ({bad} not ok) -> {out / 'results.jsonl'}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq scale`."""
    p = subparsers.add_parser("scale", help="resumable scaling sweep (results.jsonl, traces)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    p.add_argument("--out", help="output folder (results.jsonl, traces/); default: this machine's "
                   "profiles/<machine>/scaling/ (cpu, gpu presets) or profiles/<machine>/scaling/<preset>/")
    p.add_argument("--models", nargs="+", help="models to run (replaces the preset's list)")
    p.add_argument("--lengths", nargs="+", type=int, help="sequence lengths (replaces the preset's)")
    p.add_argument("--trace", action="store_true", help="write jax.profiler traces into OUT/traces")
    p.add_argument("--trace-only", action="store_true",
                   help="only write the traces (no sweep; existing traces are kept)")
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
    """`python -m jaxseq.studies.scaling.sweep --point JSON` runs one point here and prints its result;
    `python -m jaxseq.studies.scaling.sweep --preset P --out DIR ...` is `jaxseq scale` without jaxseq.cli."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not any(a == "--point" or a.startswith("--point=") for a in argv):
        parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.scaling.sweep")
        add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["scale", *argv])
        try:
            return args.func(args)
        except (ValueError, TypeError, FileNotFoundError) as e:
            print(f"jaxseq scale: error: {e}", file=sys.stderr)
            return 2
    parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.scaling.sweep")
    parser.add_argument("--point", required=True, help="a point as JSON")
    args = parser.parse_args(argv)
    print(json.dumps(run_point(json.loads(args.point)), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
