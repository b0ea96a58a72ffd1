"""Analytic FLOP counts (MaxText convention), XLA's own count, and MFU.

Convention (as in MaxText's `calculate_tflops_training_per_device`):
- a matmul of [m, k] x [k, n] is 2·m·k·n FLOPs; elementwise gate math is ignored;
- training (forward + backward) costs 3x the forward matmul FLOPs (backward = 2 matmuls per forward one);
- attention scores + weighted sum: 4·B·T²·heads·head_dim forward, halved when causal.

`xla_flops` reads `compiled.cost_analysis()`. Caveat measured with jax 0.10.2: XLA counts the body of a
while loop (every `lax.scan`) ONCE, not once per iteration, so for scanned RNNs it undercounts by about
the sequence length. Compare it with the analytic count only for loop-free programs (or fully unrolled
scans); the analytic count is the one MFU uses.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "PEAK_FLOPS",
    "mode_multiplier",
    "matmul_flops",
    "lstm_flops",
    "gru_flops",
    "mingru_flops",
    "minlstm_flops",
    "attention_flops",
    "attention_layer_flops",
    "transformer_block_flops",
    "xla_flops",
    "mfu",
    "peak_flops",
]

_MODES = ("forward", "train")


def mode_multiplier(mode: str) -> int:
    """1 for a forward pass, 3 for forward + backward."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    return 1 if mode == "forward" else 3


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of one [m, k] x [k, n] matmul (a multiply and an add per term)."""
    return 2 * m * k * n


def _recurrent(tokens: int, input_size: int, hidden: int, gates: int, num_layers: int,
               mode: str, recurrent: bool = True) -> int:
    # Layer 0 reads `input_size` features, later layers read the previous layer's `hidden`.
    total = 0
    for layer in range(num_layers):
        fan_in = (input_size if layer == 0 else hidden) + (hidden if recurrent else 0)
        total += matmul_flops(tokens, fan_in, gates * hidden)
    return total * mode_multiplier(mode)


def lstm_flops(batch: int, seq_len: int, input_size: int, hidden: int, *, num_layers: int = 1,
               mode: str = "forward") -> int:
    """LSTM: 2·(I + H)·4H per token per layer forward."""
    return _recurrent(batch * seq_len, input_size, hidden, 4, num_layers, mode)


def gru_flops(batch: int, seq_len: int, input_size: int, hidden: int, *, num_layers: int = 1,
              mode: str = "forward") -> int:
    """GRU: 2·(I + H)·3H per token per layer forward."""
    return _recurrent(batch * seq_len, input_size, hidden, 3, num_layers, mode)


def mingru_flops(batch: int, seq_len: int, input_size: int, hidden: int, *, num_layers: int = 1,
                 mode: str = "forward") -> int:
    """minGRU: no recurrent matmul, 2·I·2H per token per layer (gate z and candidate h)."""
    return _recurrent(batch * seq_len, input_size, hidden, 2, num_layers, mode, recurrent=False)


def minlstm_flops(batch: int, seq_len: int, input_size: int, hidden: int, *, num_layers: int = 1,
                  mode: str = "forward") -> int:
    """minLSTM: 2·I·3H per token per layer (forget, input, candidate)."""
    return _recurrent(batch * seq_len, input_size, hidden, 3, num_layers, mode, recurrent=False)


def attention_flops(batch: int, seq_len: int, num_heads: int, head_dim: int, *, causal: bool = True,
                    mode: str = "forward", kv_len: int | None = None) -> int:
    """Scores QK^T and weights·V: 4·B·Tq·Tkv·heads·head_dim, halved for causal (no projections)."""
    kv_len = seq_len if kv_len is None else kv_len
    flops = 4 * batch * seq_len * kv_len * num_heads * head_dim
    if causal:
        flops //= 2
    return flops * mode_multiplier(mode)


def attention_layer_flops(batch: int, seq_len: int, d_model: int, num_heads: int, *,
                          causal: bool = True, mode: str = "forward") -> int:
    """Multi-head attention layer: Q, K, V and output projections (4·d² params) + attention."""
    proj = matmul_flops(batch * seq_len, d_model, 4 * d_model) * mode_multiplier(mode)
    return proj + attention_flops(batch, seq_len, num_heads, d_model // num_heads, causal=causal,
                                  mode=mode)


def transformer_block_flops(batch: int, seq_len: int, d_model: int, num_heads: int, *,
                            d_ff: int | None = None, mlp_matrices: int = 2, causal: bool = True,
                            mode: str = "forward") -> int:
    """PaLM/MaxText count for one block: 2·(matmul params)·tokens + attention term.

    Matmul params: 4·d² (attention projections) + mlp_matrices·d·d_ff (2 for a plain MLP, 3 for a gated
    one). d_ff defaults to 4·d_model.
    """
    d_ff = 4 * d_model if d_ff is None else d_ff
    params = 4 * d_model * d_model + mlp_matrices * d_model * d_ff
    dense = 2 * params * batch * seq_len * mode_multiplier(mode)
    return dense + attention_flops(batch, seq_len, num_heads, d_model // num_heads, causal=causal,
                                   mode=mode)


def xla_flops(compiled: Any) -> float | None:
    """FLOPs XLA's cost model assigns to a compiled executable (None where unavailable).

    `cost_analysis()` returned a list with one dict per executable in older jax and a dict in newer;
    some backends return None or raise. See the module docstring: while-loop bodies count once.
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost:
        return None
    value = cost.get("flops")
    return float(value) if value is not None and value >= 0 else None


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the device's peak (None if the peak is unknown)."""
    if not peak or seconds <= 0:
        return None
    return flops / seconds / peak


# Dense peak FLOP/s per device, by dtype. Keys are matched as substrings of `device.device_kind`.
# "float32" is the tensor-core TF32 rate JAX uses by default for float32 matmuls on Hopper
# (jax_default_matmul_precision="default"); "float32_highest" the true-fp32 (non-tensor) rate.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12, "float32_highest": 67e12},
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12, "float32_highest": 67e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12, "float32_highest": 19.5e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
}


def peak_flops(device_kind: str, dtype: str = "bfloat16", *, override_tflops: float | None = None,
               matmul_precision: str | None = None) -> float | None:
    """Peak FLOP/s for a device kind and dtype; None when unknown (CPUs: pass `override_tflops`).

    `matmul_precision="highest"` selects the true-fp32 rate for float32.
    """
    if override_tflops is not None:
        return float(override_tflops) * 1e12
    for name, table in PEAK_FLOPS.items():
        if name.lower() in (device_kind or "").lower():
            key = dtype
            if dtype == "float32" and matmul_precision in ("highest", "float32"):
                key = "float32_highest"
            return table.get(key, table.get(dtype))
    return None
