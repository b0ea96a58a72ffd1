"""Scalars to TensorBoard and to a JSON-lines file; MFU helpers.

TensorBoard events are written with `tensorboard.summary.Writer` (no TensorFlow needed, and unlike
tensorboardX it does not import torch, which costs seconds at start-up).

Logged tags: train/loss, train/learning_rate, train/grad_norm, eval/loss, eval/bits_per_char,
perf/step_time, perf/tokens_per_sec, perf/tflops_per_sec, perf/mfu.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

#: Dense peak TFLOP/s per device by (device_kind substring, compute dtype). Vendor data sheets
#: (NVIDIA H100/H200 SXM: 989 bf16 dense, 67 fp32 non-tensor; A100: 312 / 19.5; Google TPU pages).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989.0, "float32": 67.0},
    "H100": {"bfloat16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float32": 19.5},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
    "TPU v5 lite": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
}


def peak_tflops_for(device_kind: str, dtype: str) -> float | None:
    """Peak TFLOP/s of one device from the table, or None (e.g. CPU: pass --peak-tflops)."""
    for name, peaks in PEAK_TFLOPS.items():
        if name.lower() in device_kind.lower():
            return peaks.get(dtype)
    return None


def bits_per_char(loss_nats: float) -> float:
    return loss_nats / math.log(2.0)


def perf_scalars(
    *, step_time: float, tokens_per_step: int, flops_per_step: float | None, peak_tflops_total: float | None
) -> dict[str, float]:
    """perf/* scalars for one step of `step_time` seconds (MFU only when a peak is known)."""
    out = {"perf/step_time": step_time, "perf/tokens_per_sec": tokens_per_step / step_time}
    if flops_per_step:
        tflops = flops_per_step / step_time / 1e12
        out["perf/tflops_per_sec"] = tflops
        if peak_tflops_total:
            out["perf/mfu"] = tflops / peak_tflops_total
    return out


def check_run_name(name: str) -> str:
    """A TensorBoard run name is one folder name under logs/: not empty, no '/', not '.' or '..'."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"--run-name: expected one folder name (no '/', not '.' or '..'), got {name!r}")
    return name


class MetricsWriter:
    """TensorBoard event files in `logdir/run_name/` (`logdir` itself when run_name is None) and
    `metrics.jsonl` in `logdir`; a no-op on non-zero processes.

    Events in a named subfolder make TensorBoard list the run under that name instead of "."."""

    def __init__(self, logdir: str | Path, *, run_name: str | None = None, enabled: bool = True) -> None:
        self.logdir = Path(logdir)
        self.events_dir = self.logdir / check_run_name(run_name) if run_name is not None else self.logdir
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboard.summary import Writer  # imported lazily: only the writing process needs it

            self.events_dir.mkdir(parents=True, exist_ok=True)
            self._tb = Writer(str(self.events_dir))
            self._jsonl = open(self.logdir / "metrics.jsonl", "a", buffering=1)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items() if v is not None}
        for tag, value in clean.items():
            self._tb.add_scalar(tag, value, step)
        self._jsonl.write(json.dumps({"step": int(step), **clean}) + "\n")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()
            self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()
            self.enabled = False


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (later records of a step win when a run was resumed)."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return records
