"""Boolean attention masks (``True`` = may attend) and the masked-logit fill value.

Every mask here is a plain boolean array so it composes with ``&``/``|`` and broadcasts against the
``[batch, heads, q_len, kv_len]`` logits of :mod:`jaxseq.ops.attention`.
Causal masks are aligned top-left (query ``i`` sees keys ``j <= i``), the convention of
``jax.nn.dot_product_attention`` and ``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["causal_mask", "padding_mask", "make_attention_mask", "mask_value"]


def _check_len(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def causal_mask(q_len: int, kv_len: int) -> Array:
    """Lower-triangular mask: ``[q_len, kv_len]`` bool, ``mask[i, j] = j <= i``."""
    q_len = _check_len("q_len", q_len)
    kv_len = _check_len("kv_len", kv_len)
    return jnp.arange(kv_len)[None, :] <= jnp.arange(q_len)[:, None]


def padding_mask(lengths: Array, max_len: int) -> Array:
    """Valid-position mask from per-sequence lengths.

    Args:
      lengths: ``[batch]`` integer lengths.
      max_len: padded time length.
    Returns:
      ``[batch, max_len]`` bool, ``mask[b, t] = t < lengths[b]``.
    """
    max_len = _check_len("max_len", max_len)
    lengths = jnp.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must have shape [batch], got shape {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def make_attention_mask(
    q_len: int,
    kv_len: int,
    *,
    is_causal: bool = False,
    q_lengths: Optional[Array] = None,
    kv_lengths: Optional[Array] = None,
) -> Array:
    """Combine causal and padding constraints into one mask.

    Returns:
      ``[batch|1, 1, q_len, kv_len]`` bool; the batch axis is 1 when no lengths are given. A query
      row past its ``q_lengths`` entry is entirely ``False`` (attention outputs zero there).
    """
    q_len = _check_len("q_len", q_len)
    kv_len = _check_len("kv_len", kv_len)
    mask = jnp.ones((1, 1, q_len, kv_len), dtype=bool)
    if is_causal:
        mask = mask & causal_mask(q_len, kv_len)[None, None]
    if q_lengths is not None:
        mask = mask & padding_mask(q_lengths, q_len)[:, None, :, None]
    if kv_lengths is not None:
        mask = mask & padding_mask(kv_lengths, kv_len)[:, None, None, :]
    return mask


def mask_value(dtype) -> Array:
    """The fill value for masked logits: the most negative finite number of ``dtype``.

    A finite value (not ``-inf``) keeps ``softmax`` and its gradient NaN-free when a whole row is
    masked; callers then zero such rows explicitly.
    """
    return jnp.asarray(jnp.finfo(dtype).min, dtype=dtype)
