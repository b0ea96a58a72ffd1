"""What a benchmark workload is and how one is measured, shared by the training/forward workloads
(`jaxseq.bench.workloads`) and the generation ones (`jaxseq.bench.generation`), which both build on it.

- `Workload`: one step function with its arguments and what it processes (tokens, analytic FLOPs);
- `point_with_required_fields` and `DTYPES`: the fields every sweep point has, whatever its mode;
- `measure_workload`: time a workload and collect a sweep record's numbers (time, FLOPs, memory);
- `blocked_step`: one step that returns when its result is ready (for `timing.time_paired`).

The names stay importable from `jaxseq.bench.workloads`, where they were first defined.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxseq.bench import flops as F
from jaxseq.bench import timing as T

__all__ = ["DTYPES", "Workload", "point_with_required_fields", "measure_workload", "blocked_step",
           "jnp_dtype"]

DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass
class Workload:
    """One benchmark step: call `fn(*args)`; `framework` says how to time it."""

    name: str
    framework: str  # "jax" | "torch"
    fn: Callable
    args: tuple
    tokens: int  # tokens processed per step (batch * seq_len, all devices)
    flops: int | None  # analytic FLOPs per step (MaxText convention), None if not counted
    no_grad: bool = False  # torch: run under torch.no_grad
    notes: str = ""


def point_with_required_fields(point: dict[str, Any]) -> dict[str, Any]:
    """A copy of a sweep point that has model, seq_len, batch and width (ValueError naming the
    missing one), with dtype defaulting to float32; shared by training and generation points."""
    p = dict(point)
    for field in ("model", "seq_len", "batch", "width"):
        if field not in p:
            raise ValueError(f"point needs {field!r}: {point}")
    p.setdefault("dtype", "float32")
    return p


def jnp_dtype(name: str):
    """The jnp dtype of a point's dtype name."""
    import jax.numpy as jnp

    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]


def measure_workload(w: Workload, *, warmup: int = 2, repeats: int = 5, dtype: str = "float32",
                     peak_tflops: float | None = None, keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time one workload and collect everything a sweep record holds about it (JSON-ready).

    Step times in seconds; `tflops_per_s` and `mfu` use the analytic FLOPs; `flops_xla` is XLA's
    cost model (scan bodies counted once, see `jaxseq.bench.flops`). Memory: XLA's buffer sizes of the
    compiled step, the device allocator's process peak on GPU, and the host RSS peak above the
    starting point while timing (`peak_rss_bytes`, CPU memory, covers torch as well).

    `keep`, when given, receives ``keep["compiled"]``: the executable a jax workload was timed with
    (nothing for torch), so that later calls (:func:`blocked_step`) need not compile it again.
    """
    import jax

    out: dict[str, Any] = {"framework": w.framework, "tokens": w.tokens, "notes": w.notes}
    box: dict[str, Any] = {}
    if w.framework == "jax":
        compiled, compile_s = T.compile_fn(w.fn, *w.args)
        if keep is not None:
            keep["compiled"] = compiled
        out["memory"] = T.memory_of(compiled)
        out["flops_xla"] = F.xla_flops(compiled)
        out["peak_rss_bytes"] = T.peak_rss(lambda: box.setdefault("t", T.time_compiled(
            compiled, *w.args, warmup=warmup, repeats=repeats, compile_s=compile_s)))
        out["device_memory"] = T.device_memory_stats()
    else:
        out["memory"] = None
        out["flops_xla"] = None
        _torch_cuda_reset_peak()
        out["peak_rss_bytes"] = T.peak_rss(lambda: box.setdefault("t", T.time_torch(
            w.fn, *w.args, warmup=warmup, repeats=repeats, no_grad=w.no_grad)))
        out["device_memory"] = _torch_cuda_memory()
    t: T.Timing = box["t"]
    device_kind = jax.devices()[0].device_kind
    peak = F.peak_flops(device_kind, dtype, override_tflops=peak_tflops,
                        matmul_precision=getattr(jax.config, "jax_default_matmul_precision", None))
    out.update(
        median_s=t.median, min_s=t.min, max_s=t.max, times_s=t.times, compile_s=t.compile_s,
        load_before=t.load_before, load_after=t.load_after,
        tokens_per_s=w.tokens / t.median,
        flops_analytic=w.flops,
        tflops_per_s=(w.flops / t.median / 1e12) if w.flops else None,
        peak_flops=peak,
        mfu=F.mfu(w.flops, t.median, peak) if w.flops else None,
    )
    return out


def blocked_step(w: Workload, compiled: Any = None) -> Callable[[], None]:
    """One step of `w` that returns only when its result is ready (for `timing.time_paired`).

    A jax workload runs `compiled` (the executable :func:`measure_workload` timed, passed on through its
    `keep`) or else is jitted here (its first call compiles: warm up before timing); a torch one runs
    under `no_grad` when the workload asks for it and synchronises CUDA after the call.
    """
    import jax

    if w.framework != "jax":
        return T.torch_step(w.fn, *w.args, no_grad=w.no_grad)
    if compiled is not None:
        fn = compiled
    else:
        fn = w.fn if hasattr(w.fn, "lower") else jax.jit(w.fn)

    def jax_step() -> None:
        jax.block_until_ready(fn(*w.args))

    return jax_step


def _torch_cuda_memory() -> dict[str, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return {"peak_bytes_in_use": torch.cuda.max_memory_allocated()}


def _torch_cuda_reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
