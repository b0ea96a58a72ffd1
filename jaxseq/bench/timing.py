"""Timing and memory measurement for JAX and PyTorch steps.

Rules the numbers follow (nanoGPT / MaxText habits):
- JAX functions are compiled ahead of time (`jit(f).lower(*args).compile()`), and the compile time is
  reported on its own: the timed calls run the compiled executable and can never trigger a compile.
- Every timed call is blocked on (`jax.block_until_ready` on the whole output pytree), otherwise the
  clock measures only the dispatch.
- Warm-up calls come first and are not timed; the median of the repeats is the headline number.
- The machine's load average is recorded beside every measurement: on the project's shared 2-core
  machines another process can slow a step (torch's LSTM especially) by large factors.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import statistics
import time
from typing import Any, Callable, Sequence

__all__ = [
    "Timing",
    "compile_fn",
    "time_fn",
    "time_compiled",
    "time_torch",
    "torch_step",
    "time_paired",
    "paired_ratios",
    "memory_of",
    "device_memory_stats",
    "peak_rss",
    "machine_load",
    "matmul_gflops",
    "format_table",
]


@dataclasses.dataclass
class Timing:
    """Wall-clock statistics of one benchmarked step, in seconds."""

    median: float
    min: float
    max: float
    compile_s: float | None  # None for eager (torch) functions
    times: list[float]
    load_before: tuple[float, float, float] | None = None  # os.getloadavg() before / after timing
    load_after: tuple[float, float, float] | None = None
    compiled: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the compiled executable is left out)."""
        # Not dataclasses.asdict: it would deep-copy the compiled executable.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "compiled"}


def machine_load() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except (OSError, AttributeError):
        return None


def _block(tree: Any) -> Any:
    import jax

    return jax.block_until_ready(tree)


def matmul_gflops(n: int = 2048, *, repeats: int = 10) -> float:
    """The host's speed anchor: GFLOP/s of a float32 ``[n, n] @ [n, n]`` on the default device (median of
    ``repeats`` blocked calls after one warm-up). Studies record it beside their wall-clock numbers: the
    project's "same" 2-core machines differ by up to 3x on it (137 against 352-425 GFLOP/s on two hosts that
    both report a 2-core AMD EPYC)."""
    import jax
    import jax.numpy as jnp

    for name, v in (("n", n), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"matmul_gflops: {name} must be a positive int, got {v!r}")
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    t = time_fn(jax.jit(lambda x: x @ x), a, warmup=1, repeats=repeats)
    return 2.0 * n ** 3 / t.median / 1e9


def compile_fn(fn: Callable, *args: Any) -> tuple[Any, float]:
    """AOT-compile `fn` for `args`; return (compiled executable, seconds spent lowering + compiling).

    `fn` may already be transformed (`jax.jit`, `jax.pmap`: anything with `.lower`); a plain Python
    function is wrapped in `jax.jit`.
    """
    import jax

    staged = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    compiled = staged.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _stats(times: list[float], compile_s: float | None, load_before, compiled=None) -> Timing:
    return Timing(
        median=statistics.median(times),
        min=min(times),
        max=max(times),
        compile_s=compile_s,
        times=times,
        load_before=load_before,
        load_after=machine_load(),
        compiled=compiled,
    )


def time_compiled(compiled: Callable, *args: Any, warmup: int = 2, repeats: int = 5,
                  compile_s: float | None = None) -> Timing:
    """Time an already compiled JAX executable (warm-up calls untimed, every call blocked on)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    load = machine_load()
    for _ in range(warmup):
        _block(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _block(compiled(*args))
        times.append(time.perf_counter() - t0)
    return _stats(times, compile_s, load, compiled)


def time_fn(fn: Callable, *args: Any, warmup: int = 2, repeats: int = 5) -> Timing:
    """Compile `fn(*args)` ahead of time, then time `repeats` blocked calls after `warmup` calls.

    Returns a `Timing` whose `compile_s` is the AOT compile time and whose `compiled` field holds the
    executable (for `memory_of` and `flops.xla_flops`).
    """
    compiled, compile_s = compile_fn(fn, *args)
    return time_compiled(compiled, *args, warmup=warmup, repeats=repeats, compile_s=compile_s)


def time_torch(fn: Callable, *args: Any, warmup: int = 2, repeats: int = 5,
               no_grad: bool = False) -> Timing:
    """Time an eager PyTorch step. `no_grad=True` for forward-only steps (no autograd graph).

    On CUDA the device is synchronised around every call; on CPU torch calls are synchronous already.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    step = torch_step(fn, *args, no_grad=no_grad)
    load = machine_load()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return _stats(times, None, load)


def torch_step(fn: Callable, *args: Any, no_grad: bool = False) -> Callable[[], None]:
    """One eager PyTorch call of `fn(*args)` that returns when it is done: under ``torch.no_grad``
    with `no_grad`, and with CUDA synchronised after it (CPU calls are synchronous already)."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    ctx = torch.no_grad if no_grad else contextlib.nullcontext

    def step() -> None:
        with ctx():
            fn(*args)
        sync()

    return step


def time_paired(steps: Sequence[Callable[[], Any]], *, rounds: int = 5, warmup: int = 1,
                settle: int = 1) -> list[list[float]]:
    """Time the steps in turn, one timed call of each per round; return ``times[i][r]`` (seconds).

    Why: a shared host's speed drifts by tens of percent over minutes (on the 2-core EPYC the same
    LSTM forward took 216 ms in one process and 125 ms in the next, 2026-12-04), so two steps timed
    one after the other, minutes apart, compare the host's moods as much as the code. Steps timed in
    the same round are seconds apart. Each ``steps[i]`` must run one step and block on its result.

    ``settle`` untimed calls of a step come right before its timed call. Why: a step that follows
    another program's step is not in its steady state. Timed straight after a jax step, torch's LSTM
    step took 455-478 ms against 299 ms after its own (2026-12-04): the allocator had handed its
    memory to the other program, and its pages had to be faulted in again. A training loop runs a
    step after the same step. Round ``r`` starts at step ``r % len(steps)``.
    """
    n = len(steps)
    if n < 1:
        raise ValueError("time_paired: steps must hold at least one step")
    for name, v, low in (("rounds", rounds, 1), ("warmup", warmup, 0), ("settle", settle, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"time_paired: {name} must be an int >= {low}, got {v!r}")
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[0.0] * rounds for _ in range(n)]
    for r in range(rounds):
        for j in range(n):
            i = (r + j) % n
            for _ in range(settle):
                steps[i]()
            t0 = time.perf_counter()
            steps[i]()
            times[i][r] = time.perf_counter() - t0
    return times


def paired_ratios(anchor_times: Sequence[float], times: Sequence[float]) -> dict[str, Any]:
    """Per-round speed of a step over the anchor (anchor time / step time; above 1 = faster) from
    :func:`time_paired`'s times of the same rounds: median, min, max and the list."""
    if len(anchor_times) != len(times) or not times:
        raise ValueError(f"paired_ratios: need equal, non-empty round lists, got {len(anchor_times)} and "
                         f"{len(times)}")
    ratios = [a / t for a, t in zip(anchor_times, times)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios),
            "ratios": ratios}


def memory_of(compiled: Any) -> dict[str, int | None]:
    """Buffer sizes XLA assigned to a compiled executable, in bytes (all None if not reported).

    `temp_bytes` (activations and other temporaries) is the number that grows with sequence length;
    `peak_bytes` is XLA's own peak estimate where the backend gives one.
    """
    keys = {
        "temp_bytes": "temp_size_in_bytes",
        "argument_bytes": "argument_size_in_bytes",
        "output_bytes": "output_size_in_bytes",
        "alias_bytes": "alias_size_in_bytes",
        "generated_code_bytes": "generated_code_size_in_bytes",
        "peak_bytes": "peak_memory_in_bytes",
    }
    try:
        stats = compiled.memory_analysis()
    except Exception:  # some backends / jax versions do not implement it
        stats = None
    if isinstance(stats, (list, tuple)):  # older jax: one entry per executable
        stats = stats[0] if stats else None
    out: dict[str, int | None] = {}
    for name, attr in keys.items():
        value = getattr(stats, attr, None) if stats is not None else None
        out[name] = int(value) if value is not None else None
    return out


def device_memory_stats(device: Any = None) -> dict[str, int | None] | None:
    """Allocator statistics of a device (GPU/TPU): bytes in use and the process's peak; None on CPU.

    `peak_bytes_in_use` is a high-water mark for the whole process, so it is per point only when each
    point runs in a fresh process.
    """
    import jax

    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:
        return None
    if not stats:
        return None
    return {k: stats.get(k) for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")}


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets the high-water mark VmHWM to the current RSS.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss(fn: Callable[[], Any]) -> int | None:
    """Peak host memory (bytes) that `fn()` adds above the resident set it started from.

    Works for torch and JAX on CPU alike, with no tracemalloc overhead: the kernel's high-water mark is
    reset, `fn` runs, and the new mark minus the starting RSS is returned. None where /proc is missing.
    The marks are the whole process's: memory that other threads free while `fn` runs (a runtime releasing
    an earlier step's buffers) lowers the RSS under the starting mark and can hide part of `fn`'s own peak,
    so a caller that needs it exactly measures more than once.
    """
    # Garbage freed while `fn` runs lowers the RSS under the starting mark and hides `fn`'s own memory (in the
    # full test suite a 160 MB allocation once measured 0), so collect pending cyclic garbage first.
    gc.collect()
    if not _reset_peak_rss():
        fn()
        return None
    start = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if start is None or peak is None:
        return None
    return max(0, peak - start)


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Plain-text table: `columns` is [(key, header)]; floats get 3 significant figures."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)

    table = [[h for _, h in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
