"""Positional encodings: sinusoidal (Vaswani et al. 2017) and rotary (RoPE, Su et al. 2021).

Learned positions are parameters, so they live in ``jaxseq.nn`` (``TransformerEncoder(positional="learned")``).
"""
from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from jaxseq.ops._checks import as_array

Array = Any


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def sinusoidal_encoding(length: int, dim: int, *, base: float = 10000.0, dtype: Any = jnp.float32) -> Array:
    """Sinusoidal position table, ``[length, dim]``.

    Even channels hold ``sin(pos / base**(2i/dim))`` and odd channels the matching cosine, as in
    "Attention Is All You Need". Computed in float32 and cast, because bfloat16 positions lose
    integer precision above 256.
    """
    length = _positive_int("length", length)
    dim = _positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"`dim` must be even for sinusoidal_encoding, got {dim}")
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    inv_freq = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    angles = pos * inv_freq[None, :]
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(length, dim)
    return table.astype(dtype)


def rope_angles(positions: Array, head_dim: int, *, base: float = 10000.0) -> tuple[Array, Array]:
    """``(cos, sin)``, each ``[..., time, head_dim // 2]`` in float32, for integer ``positions``."""
    inv_freq = base ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    angles = jnp.asarray(positions, jnp.float32)[..., None] * inv_freq
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: Array, positions: Optional[Array] = None, *, base: float = 10000.0) -> Array:
    """Rotate query or key features by their position (RoPE).

    x: ``[batch, time, heads, head_dim]`` with even ``head_dim``. positions: ``[time]`` or
    ``[batch, time]`` integers, default ``arange(time)``. Channel pairs are the two halves of the head
    (the GPT-NeoX / LLaMA "rotate_half" layout). The dot product of a rotated query at position m and
    a rotated key at position n depends only on m - n, which is the property the tests check.
    NumPy inputs are accepted.
    """
    x = as_array("apply_rope", "x", x)
    if x.ndim != 4:
        raise ValueError(f"`x` must be [batch, time, heads, head_dim], got shape {tuple(x.shape)}")
    batch, time, _, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"`x` head_dim must be even for RoPE, got {head_dim}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`x` must be a floating-point array, got dtype {x.dtype}")
    if positions is None:
        positions = jnp.arange(time)
    positions = as_array("apply_rope", "positions", positions)
    if positions.shape not in ((time,), (batch, time)):
        raise ValueError(f"`positions` must be [time={time}] or [batch={batch}, time={time}],"
                         f" got shape {tuple(positions.shape)}")
    cos, sin = rope_angles(positions, head_dim, base=base)
    if cos.ndim == 2:
        cos, sin = cos[None], sin[None]
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]  # [batch|1, time, 1, head_dim/2]
    xf = x.astype(jnp.float32)
    x1, x2 = xf[..., : head_dim // 2], xf[..., head_dim // 2:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def rope_reference(x: np.ndarray, positions: Optional[np.ndarray] = None, *, base: float = 10000.0) -> np.ndarray:
    """Float64 NumPy RoPE, one position at a time, for tests."""
    x = np.asarray(x, np.float64)
    batch, time, heads, head_dim = x.shape
    pos = np.arange(time) if positions is None else np.asarray(positions)
    pos = np.broadcast_to(pos, (batch, time))
    half = head_dim // 2
    out = np.empty_like(x)
    for b in range(batch):
        for t in range(time):
            for i in range(half):
                theta = pos[b, t] * base ** (-2.0 * i / head_dim)
                c, s = np.cos(theta), np.sin(theta)
                a, bb = x[b, t, :, i], x[b, t, :, i + half]
                out[b, t, :, i] = a * c - bb * s
                out[b, t, :, i + half] = bb * c + a * s
    return out
