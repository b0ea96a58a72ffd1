"""The project's throughput goals the report judges: `Target`, `TARGETS` (CPU) and `GPU_TARGETS`."""
from __future__ import annotations

import dataclasses
from typing import Any

from jaxseq.bench.labels import PointLabel, model_label


@dataclasses.dataclass(frozen=True)
class Target:
    """A throughput goal: `model` tokens/s >= `goal` x `anchor` tokens/s at one exact point."""

    name: str
    model: str
    anchor: str
    seq_len: int
    batch: int
    width: int
    goal: float
    heads: int | None = None
    dtype: str = "float32"
    mode: str = "train"

    def matches(self, point: dict[str, Any], model: str) -> bool:
        return (model_label(point) == model and point.get("seq_len") == self.seq_len
                and point.get("batch") == self.batch and point.get("width") == self.width
                and point.get("dtype", "float32") == self.dtype
                and point.get("mode", "train") == self.mode and "devices" not in point
                and (self.heads is None or _heads(point) == self.heads))


# The issues' goals (the same as jaxseq.bench.ops_bench.TARGETS, where they are op benchmarks). Issue 13:
# torch's CPU LSTM runs near this machine's large-matmul rate, so parity is the limit for one layer.
TARGETS = (
    Target("jaxseq LSTM training step vs torch.nn.LSTM (batch 32, hidden 256, T=1024)",
           "lstm", "torch-lstm", 1024, 32, 256, 1.0),
    Target("blockwise attention training step vs torch SDPA (batch 8, d_model 256, 4 heads, T=2048)",
           "attn-blockwise", "torch-sdpa", 2048, 8, 256, 1.0, heads=4),
    Target("jaxseq.nn.LSTM, 4 stacked layers, vs torch.nn.LSTM(num_layers=4) (batch 32, hidden 256, "
           "T=512)", "lstm-layer+L4", "torch-lstm+L4", 512, 32, 256, 1.0),
    Target("jaxseq.nn.LSTM, 2 bidirectional layers, vs its torch twin (batch 32, hidden 256, T=512)",
           "lstm-layer+L2+bi", "torch-lstm+L2+bi", 512, 32, 256, 1.0),
)
# The GPU goals (the `gpu` preset's first grids): the LSTM against torch's cuDNN LSTM at the
# published anchor's point (fp16), attention against cuDNN flash attention's TFLOP/s (equal FLOPs,
# so a tokens/s ratio), and the Transformer block's MFU (GPU_MFU_GOAL).
GPU_TARGETS = (
    *(Target(f"jaxseq {m} training step vs torch.nn.LSTM on cuDNN (batch 16, hidden 768, T=1024, "
             "float16)", m, "torch-lstm", 1024, 16, 768, 1.0, dtype="float16")
      for m in ("lstm", "lstm+unroll8", "lstm+unroll32", "lstm+pallas", "lstm+pallas-bh32", "lstm+pallas-step")),
    *(Target(f"{m} training step vs cuDNN flash attention (batch 16, d_model 1024, 16 heads, "
             f"T={T}, bfloat16)", m, "attn-cudnn", T, 16, 1024, 0.9, dtype="bfloat16")
      for T in (4096, 16384) for m in ("attn-blockwise", "attn-xla")),
    # Issue 13: the 8-layer GNMT-sized stack under each schedule (gpu-lstm-stack preset).
    *(Target(f"jaxseq.nn.LSTM 8-layer stack ({v.stack_variant}) vs cuDNN's 8-layer "
             "LSTM (batch 16, hidden 1024, T=1024, float16)", v.label, "torch-lstm+L8",
             1024, 16, 1024, 1.3, dtype="float16")
      for v in (PointLabel("lstm-layer", layers=8, schedule="layers"),
                PointLabel("lstm-layer", layers=8, schedule="wavefront"),
                PointLabel("lstm-layer", layers=8, step_kernel="pallas"))),
)
GPU_MFU_GOAL = 0.45
MIN_RNN_TARGET_LENGTHS = (4096, 16384)  # minGRU faster than the LSTM by a growing factor


def _heads(point: dict[str, Any]) -> int:
    return int(point.get("heads") or max(1, int(point.get("width", 64)) // 64))
