"""Scaled dot-product attention, five ways, behind one dispatch function.

Layout everywhere: ``[batch, time, heads, head_dim]`` (the layout of ``jax.nn.dot_product_attention``;
PyTorch's SDPA uses ``[batch, heads, time, head_dim]``). All backends compute

    out = softmax(scale * q k^T  masked) v,     scale = 1/sqrt(head_dim) by default,

with the softmax in float32 whatever the input dtype (float64 for float64 input), masked logits filled with
``finfo(float32).min`` and query rows that may attend to nothing returning zeros (not NaN, not a
uniform average). Masks are aligned top-left: with ``is_causal`` query ``i`` sees keys ``j <= i``
(as ``jax.nn`` and ``torch``). ``q_lengths``/``kv_lengths`` (``[batch]`` ints) mark padding: keys at
or past ``kv_lengths[b]`` are ignored and output rows at or past ``q_lengths[b]`` are zero.
Lengths outside ``[0, time]`` are a ``ValueError`` when their values are known (eager calls); under
``jit``/``vmap`` they are clipped to ``[0, time]`` (negative = 0, past the end = the full length).

Grouped-query / multi-query attention: ``k`` and ``v`` may have fewer heads than ``q``
(``[batch, kv_len, kv_heads, head_dim]`` with ``heads % kv_heads == 0``), as in
``jax.nn.dot_product_attention``: query head ``h`` attends with key/value head
``h // (heads // kv_heads)``, the same as repeating every k/v head ``heads // kv_heads`` times
(``jnp.repeat(k, heads // kv_heads, axis=2)``), but no backend materialises the repeat.

Inputs may be NumPy arrays or nested lists (converted with ``jnp.asarray`` at entry). Every backend
runs inside ``jax.named_scope("attention")`` (the blockwise custom backward too), so HLO op names and
profiles group the kernel's time under "attention".

Backends (``ATTENTION_BACKENDS``):

* ``"naive"``     - :func:`dot_product_attention_reference`: two einsums over all heads. O(T^2) memory.
* ``"vmapped"``   - :func:`vmapped_attention`: written for one head, ``jax.vmap``-ed over heads and batch.
* ``"blockwise"`` - :func:`blockwise_attention`: FlashAttention-2 style online softmax with a custom VJP
  that recomputes blocks, so forward *and* training memory are linear in T; causal blocks above the
  diagonal are never computed. ``backward="autodiff"`` replaces the custom VJP by JAX's own
  differentiation of the loops (needed for ``jax.jvp``/``jax.jacfwd``).
* ``"xla"``/``"cudnn"`` - :func:`jax_nn_attention`: ``jax.nn.dot_product_attention`` with that
  implementation (cuDNN needs a GPU, fp16/bf16 and head_dim a multiple of 8, <= 128).
* ``"auto"`` in :func:`attention`: see :func:`select_backend`.

Outside the dispatch, :func:`single_query_attention` is the kernel of one decoding step: one query position
per sequence against a key/value cache (no mask, no causality: the cache's valid length is the constraint).
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxseq.ops._checks import as_array, check_forward_mode, explain_forward_mode
from jaxseq.ops.masks import make_attention_mask

__all__ = [
    "ATTENTION_BACKENDS",
    "BACKWARD_MODES",
    "attention",
    "blockwise_attention",
    "dot_product_attention_reference",
    "jax_nn_attention",
    "select_backend",
    "single_query_attention",
    "vmapped_attention",
]

ATTENTION_BACKENDS: tuple[str, ...] = ("naive", "vmapped", "blockwise", "xla", "cudnn")
BACKWARD_MODES: tuple[str, ...] = ("auto", "custom", "autodiff")
_FORWARD_MODE_FIX = ("backward='autodiff' (an option of blockwise_attention, attention and the "
                     "jaxseq.nn attention/transformer modules)")

# Masked logits get the most negative finite float32: finite so that no inf - inf = NaN can appear.
_NEG = float(np.finfo(np.float32).min)


def _acc_dtype(dtype) -> Any:
    """Accumulation/softmax dtype: float32, or the input's dtype when wider (float64 stays exact)."""
    return jnp.promote_types(dtype, jnp.float32)

# ---------------------------------------------------------------------------------------------------
# Validation (runs on shapes/dtypes only, so before tracing and also inside jit)
# ---------------------------------------------------------------------------------------------------

_LAYOUT = "[batch, time, heads, head_dim]"


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_qkv(q: Any, k: Any, v: Any) -> tuple[Array, Array, Array]:
    """q, k, v as jax arrays (NumPy arrays and nested lists are converted), validated."""
    out = []
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, jax.Array):
            try:
                x = jnp.asarray(x)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be an array of shape {_LAYOUT}, got {type(x).__name__}") from None
        out.append(x)
    _validate_qkv(*out)
    return out[0], out[1], out[2]


def _validate_qkv(q: Array, k: Array, v: Array) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{name} must be an array of shape {_LAYOUT}, got {type(x).__name__}")
        if len(x.shape) != 4:
            raise ValueError(f"{name} must have rank 4 with shape {_LAYOUT}, got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if not (q.shape[0] == k.shape[0] == v.shape[0]):
        raise ValueError(
            f"q, k, v must have the same batch size (axis 0 of {_LAYOUT}), got q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape[1] != v.shape[1]:
        raise ValueError(f"k and v must have the same time length (axis 1 of {_LAYOUT}), got k {k.shape}, v {v.shape}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(
            f"k and v must have the same number of heads (axis 2 of {_LAYOUT}), got k {k.shape}, v {v.shape}")
    if k.shape[2] == 0 or q.shape[2] % k.shape[2]:
        raise ValueError(
            f"the number of query heads must be a multiple of the number of key/value heads (axis 2 of "
            f"{_LAYOUT}; grouped-query attention), got q heads {q.shape[2]}, k/v heads {k.shape[2]}")
    if not (q.shape[3] == k.shape[3] == v.shape[3]):
        raise ValueError(
            f"q, k, v must have the same head_dim (axis 3 of {_LAYOUT}), got q {q.shape}, k {k.shape}, v {v.shape}")


def _validate_lengths(name: str, lengths: Optional[Array], batch: int, max_len: int) -> Optional[Array]:
    """Checks ``lengths`` is ``[batch]`` ints in ``[0, max_len]``: the range when concrete; a traced
    value cannot be checked and is clipped to the range instead (documented in the module)."""
    if lengths is None:
        return None
    lengths = as_array("attention", name, lengths)
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"{name} must have shape [batch] = ({batch},), got shape {tuple(lengths.shape)}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {lengths.dtype}")
    if _is_concrete(lengths):
        arr = np.asarray(lengths)
        if arr.size and (arr.min() < 0 or arr.max() > max_len):
            raise ValueError(f"{name} must lie in [0, {max_len}], got min {arr.min()} max {arr.max()}")
        return jnp.asarray(lengths, jnp.int32)
    return jnp.clip(lengths.astype(jnp.int32), 0, max_len)


def _validate_mask(mask: Optional[Array], batch: int, heads: int, q_len: int, kv_len: int) -> Optional[Array]:
    if mask is None:
        return None
    mask = as_array("attention", "mask", mask)
    expected = f"[batch|1, heads|1, q_len, kv_len] = [{batch}|1, {heads}|1, {q_len}, {kv_len}]"
    if len(mask.shape) != 4:
        raise ValueError(f"mask must have rank 4, shape {expected}, got shape {tuple(mask.shape)}")
    b, h, tq, tk = mask.shape
    if b not in (1, batch) or h not in (1, heads) or tq != q_len or tk != kv_len:
        raise ValueError(f"mask must have shape {expected}, got shape {tuple(mask.shape)}")
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask must be a boolean array (True = attend), got dtype {mask.dtype}")
    return mask


def _resolve_scale(scale: Optional[float], head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"scale must be a Python float or None, got {type(scale).__name__}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return float(scale)


def _checked_inputs(
    q: Any, k: Any, v: Any, mask: Optional[Array], q_lengths: Optional[Array],
    kv_lengths: Optional[Array], scale: Optional[float],
) -> tuple[Array, Array, Array, Optional[Array], Optional[Array], Optional[Array], float]:
    """Every backend's argument checks in one place: (q, k, v, mask, q_lengths, kv_lengths, scale),
    converted to jax arrays and validated."""
    q, k, v = _as_qkv(q, k, v)
    B, Tq, H, D = q.shape
    Tk = k.shape[1]
    return (q, k, v, _validate_mask(mask, B, H, Tq, Tk), _validate_lengths("q_lengths", q_lengths, B, Tq),
            _validate_lengths("kv_lengths", kv_lengths, B, Tk), _resolve_scale(scale, D))


def _zero_invalid_rows(out: Array, valid_rows: Optional[Array]) -> Array:
    """out [B, T, H, D]; valid_rows [B|1, T] or [B|1, H|1, T] bool -> rows outside set to 0."""
    if valid_rows is None:
        return out
    if valid_rows.ndim == 2:
        valid_rows = valid_rows[:, :, None]
    else:  # [B, H, T] -> [B, T, H]
        valid_rows = jnp.swapaxes(valid_rows, 1, 2)
    return jnp.where(valid_rows[..., None], out, jnp.zeros((), out.dtype))


# ---------------------------------------------------------------------------------------------------
# "naive": einsum over all heads
# ---------------------------------------------------------------------------------------------------


def dot_product_attention_reference(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Optional[Array] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    q_lengths: Optional[Array] = None,
    kv_lengths: Optional[Array] = None,
) -> Array:
    """Attention as two einsums over all heads, with the full ``[B, H, Tq, Tk]`` logit matrix.

    Args:
      q: ``[batch, q_len, heads, head_dim]``.
      k, v: ``[batch, kv_len, kv_heads, head_dim]``; ``kv_heads`` divides ``heads`` (equal for
        plain multi-head attention, fewer for grouped/multi-query attention).
      mask: optional bool ``[batch|1, heads|1, q_len, kv_len]``, True = attend.
      is_causal: add the top-left causal constraint.
      scale: logit scale, default ``1/sqrt(head_dim)``.
      q_lengths, kv_lengths: optional ``[batch]`` int lengths (padding).
    Returns:
      ``[batch, q_len, heads, head_dim]`` in q's dtype.
    """
    q, k, v, mask, q_lengths, kv_lengths, scale = _checked_inputs(q, k, v, mask, q_lengths, kv_lengths, scale)
    with jax.named_scope("attention"):
        return _reference_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths)


def _reference_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths):
    B, Tq, H, D = q.shape
    Tk, K = k.shape[1], k.shape[2]
    G = H // K

    # Products in the input dtype, accumulated (and softmaxed) in float32 (float64 for float64 input).
    acc = _acc_dtype(q.dtype)
    if G == 1:
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=acc) * scale
    else:  # query head h = kv head h // G, group member h % G (jax.nn's layout)
        logits = jnp.einsum("bqngd,bknd->bngqk", q.reshape(B, Tq, K, G, D), k,
                            preferred_element_type=acc).reshape(B, H, Tq, Tk) * scale
    full = None
    if is_causal or q_lengths is not None or kv_lengths is not None:
        full = make_attention_mask(Tq, Tk, is_causal=is_causal, q_lengths=q_lengths, kv_lengths=kv_lengths)
    if mask is not None:
        full = mask if full is None else full & mask
    if full is not None:
        logits = jnp.where(full, logits, _NEG)
    weights = jax.nn.softmax(logits, axis=-1)
    if full is not None:
        # A row with nothing to attend to would be a uniform average of v: return zeros instead.
        weights = jnp.where(jnp.any(full, axis=-1, keepdims=True), weights, 0.0)
    if G == 1:
        out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v, preferred_element_type=acc)
    else:
        out = jnp.einsum("bngqk,bknd->bqngd", weights.astype(v.dtype).reshape(B, K, G, Tq, Tk), v,
                         preferred_element_type=acc).reshape(B, Tq, H, D)
    return out.astype(q.dtype)


# ---------------------------------------------------------------------------------------------------
# "vmapped": one head, vmapped
# ---------------------------------------------------------------------------------------------------


def _single_head_attention(
    q: Array, k: Array, v: Array, mask: Optional[Array], q_len: Array, kv_len: Array, *, is_causal: bool, scale: float
) -> Array:
    """One head: q ``[Tq, D]``, k/v ``[Tk, D]``, mask ``[Tq, Tk]`` or None, scalar lengths -> ``[Tq, D]``."""
    Tq, Tk = q.shape[0], k.shape[0]
    acc = _acc_dtype(q.dtype)
    logits = jnp.dot(q, k.T, preferred_element_type=acc) * scale
    rows = jnp.arange(Tq)[:, None]
    cols = jnp.arange(Tk)[None, :]
    valid = (rows < q_len) & (cols < kv_len)
    if is_causal:
        valid = valid & (cols <= rows)
    if mask is not None:
        valid = valid & mask
    logits = jnp.where(valid, logits, _NEG)
    weights = jax.nn.softmax(logits, axis=-1)
    weights = jnp.where(jnp.any(valid, axis=-1, keepdims=True), weights, 0.0)
    return jnp.dot(weights.astype(v.dtype), v, preferred_element_type=acc).astype(q.dtype)


def vmapped_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Optional[Array] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    q_lengths: Optional[Array] = None,
    kv_lengths: Optional[Array] = None,
) -> Array:
    """Attention written for a single head ``[time, head_dim]`` and ``jax.vmap``-ed over heads, then batch.

    Same arguments and result as :func:`dot_product_attention_reference`. With fewer k/v heads
    than query heads, the query heads of one group are vmapped against their shared k/v head.
    """
    q, k, v, mask, q_lengths, kv_lengths, scale = _checked_inputs(q, k, v, mask, q_lengths, kv_lengths, scale)
    with jax.named_scope("attention"):
        return _vmapped_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths)


def _vmapped_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths):
    B, Tq, H, D = q.shape
    Tk, K = k.shape[1], k.shape[2]
    G = H // K
    if G > 1:
        return _vmapped_grouped(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths)
    if q_lengths is None:
        q_lengths = jnp.full((B,), Tq, jnp.int32)
    if kv_lengths is None:
        kv_lengths = jnp.full((B,), Tk, jnp.int32)

    head = functools.partial(_single_head_attention, is_causal=is_causal, scale=scale)
    # Per batch element, q/k/v are [T, H, D]: map over the head axis 1; the mask's head axis is
    # mapped only when it is not broadcast (size 1 -> in_axes None after squeezing).
    if mask is None:
        over_heads = jax.vmap(lambda q, k, v, ql, kl: head(q, k, v, None, ql, kl),
                              in_axes=(1, 1, 1, None, None), out_axes=1)
        over_batch = jax.vmap(over_heads, in_axes=(0, 0, 0, 0, 0))
        return over_batch(q, k, v, q_lengths, kv_lengths)
    head_axis = 0 if mask.shape[1] == H and H > 1 else None
    batch_axis = 0 if mask.shape[0] == B and B > 1 else None
    mask = mask if head_axis is not None else mask[:, 0]
    mask = mask if batch_axis is not None else mask[0]
    over_heads = jax.vmap(head, in_axes=(1, 1, 1, head_axis, None, None), out_axes=1)
    over_batch = jax.vmap(over_heads, in_axes=(0, 0, 0, batch_axis, 0, 0))
    return over_batch(q, k, v, mask, q_lengths, kv_lengths)


def _vmapped_grouped(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths):
    """Grouped-query form: vmap over the G query heads of a group (k/v shared), then kv heads, batch."""
    B, Tq, H, D = q.shape
    Tk, K = k.shape[1], k.shape[2]
    G = H // K
    if q_lengths is None:
        q_lengths = jnp.full((B,), Tq, jnp.int32)
    if kv_lengths is None:
        kv_lengths = jnp.full((B,), Tk, jnp.int32)
    qg = q.reshape(B, Tq, K, G, D)
    head = functools.partial(_single_head_attention, is_causal=is_causal, scale=scale)
    if mask is None:
        head_axis = batch_axis = None
        mask_g = jnp.ones((), bool)   # placeholder, never read
        one = lambda q, k, v, m, ql, kl: head(q, k, v, None, ql, kl)
    else:
        head_axis = 0 if mask.shape[1] == H else None
        batch_axis = 0 if mask.shape[0] == B and B > 1 else None
        mask_g = mask.reshape(mask.shape[0], K, G, Tq, Tk) if head_axis is not None else mask[:, 0]
        mask_g = mask_g if batch_axis is not None else mask_g[0]
        one = head
    # per batch element: q [Tq, K, G, D], k/v [Tk, K, D], mask [K, G, Tq, Tk] | [Tq, Tk]
    over_group = jax.vmap(one, in_axes=(1, None, None, head_axis, None, None), out_axes=1)
    over_kv = jax.vmap(over_group, in_axes=(1, 1, 1, head_axis, None, None), out_axes=1)
    over_batch = jax.vmap(over_kv, in_axes=(0, 0, 0, batch_axis, 0, 0))
    return over_batch(qg, k, v, mask_g, q_lengths, kv_lengths).reshape(B, Tq, H, D)


# ---------------------------------------------------------------------------------------------------
# "blockwise": FlashAttention-2 style, custom VJP
# ---------------------------------------------------------------------------------------------------


class _FlashConfig(NamedTuple):
    """Static (hashable) configuration of one blockwise-attention call."""

    scale: float
    causal: bool
    block_q: int
    block_kv: int
    q_len: int      # true (unpadded) lengths
    kv_len: int
    has_lengths: bool  # kv_lengths given: every block past min(kv_lengths) needs a mask
    groups: int = 1    # query heads per k/v head (grouped-query attention)
    autodiff: bool = False  # static loops over every tile, differentiated by JAX (no custom VJP)


def _g(cfg: _FlashConfig) -> str:
    """The einsum letter of the query-group axis: q-side tiles are ``[B*K, G, block, D]`` when
    grouped, ``[B*H, block, D]`` otherwise (then the einsums are exactly the ungrouped ones)."""
    return "g" if cfg.groups > 1 else ""


def _to_blocks(x: Array, block: int) -> Array:
    """``[B, T, H, D]`` -> ``[n_blocks, B*H, block, D]`` (time zero-padded to a multiple of ``block``).

    Heads join the batch so each per-block product is one batched matmul over B*H.
    """
    B, T, H, D = x.shape
    n = -(-T // block)
    if n * block != T:
        x = jnp.pad(x, ((0, 0), (0, n * block - T), (0, 0), (0, 0)))
    return x.reshape(B, n, block, H, D).transpose(1, 0, 3, 2, 4).reshape(n, B * H, block, D)


def _from_blocks(x: Array, B: int, T: int, H: int) -> Array:
    """Inverse of :func:`_to_blocks`: ``[n, B*H, block, D]`` -> ``[B, T, H, D]``."""
    n, _, block, D = x.shape
    x = x.reshape(n, B, H, block, D).transpose(1, 0, 3, 2, 4).reshape(B, n * block, H, D)
    return x[:, :T]


def _block_mask(cfg: _FlashConfig, i: Array, j: Array, kv_len: Array) -> Array:
    """Validity of the (q block i, kv block j) tile: ``[B*K|1, (1,) block_q, block_kv]`` bool
    (the unit axis broadcasts over the query group when grouped)."""
    rows = i * cfg.block_q + jnp.arange(cfg.block_q)[:, None]
    cols = j * cfg.block_kv + jnp.arange(cfg.block_kv)[None, :]
    valid = (cols < kv_len[:, None, None]) if cfg.has_lengths else (cols < cfg.kv_len)[None]
    if cfg.causal:
        valid = valid & (cols <= rows)[None]
    return valid[:, None] if cfg.groups > 1 else valid


def _kv_bounds(cfg: _FlashConfig, i: Array, n_kv: int, min_len: Array, max_len: Array) -> tuple[Array, Array]:
    """For q block ``i``: kv blocks ``[0, full)`` need no mask, ``[full, stop)`` need one, the rest are skipped."""
    bq, bk = cfg.block_q, cfg.block_kv
    stop = (max_len + bk - 1) // bk
    full = min_len // bk
    if cfg.causal:
        stop = jnp.minimum(stop, ((i + 1) * bq + bk - 1) // bk)   # last kv block touching the diagonal
        full = jnp.minimum(full, (i * bq + 1) // bk)               # blocks wholly at or below row i*bq
    stop = jnp.clip(stop, 0, n_kv)
    return jnp.clip(full, 0, stop), stop


def _q_bounds(cfg: _FlashConfig, j: Array, n_q: int, min_len: Array, max_len: Array) -> tuple[Array, Array]:
    """For kv block ``j``: q blocks ``[start, full)`` need a mask, ``[full, n_q)`` need none."""
    bq, bk = cfg.block_q, cfg.block_kv
    start = jnp.zeros((), jnp.int32)
    full = jnp.zeros((), jnp.int32)
    if cfg.causal:
        start = (j * bk) // bq                          # first q block with a row >= j*bk
        full = ((j + 1) * bk - 1 + bq - 1) // bq        # first q block with all rows >= (j+1)*bk - 1
    # A kv block beyond every sequence's length is skipped; one past the shortest needs masks.
    start = jnp.where(j * bk >= max_len, n_q, start)
    full = jnp.where((j + 1) * bk > min_len, n_q, full)
    start = jnp.clip(start, 0, n_q)
    return start, jnp.clip(full, start, n_q)


def _len_range(cfg: _FlashConfig, kv_len: Array) -> tuple[Array, Array]:
    if cfg.has_lengths:
        return jnp.min(kv_len), jnp.max(kv_len)
    return jnp.asarray(cfg.kv_len, jnp.int32), jnp.asarray(cfg.kv_len, jnp.int32)


def _flash_forward(cfg: _FlashConfig, qb: Array, kb: Array, vb: Array, kv_len: Array) -> tuple[Array, Array]:
    """Online-softmax forward. qb ``[nq, BK, (G,) bq, D]``, kb/vb ``[nk, BK, bk, D]``, kv_len ``[BK]``
    (BK = batch * kv_heads; the G axis only when grouped).

    Returns out ``[nq, BK, (G,) bq, D]`` (input dtype) and logsumexp ``[nq, BK, (G,) bq]`` (float32,
    scaled logits; +inf for rows with nothing to attend so that the backward's exp(s - lse) is 0).
    With ``cfg.autodiff`` every tile is visited with a mask by loops of static length (scans), which
    JAX can differentiate in both modes; otherwise the loop bounds skip empty tiles (while loops).
    """
    n_q = qb.shape[0]
    rows_shape = qb.shape[1:-1]          # (BK, [G,] bq)
    n_kv, _, bk, Dv = vb.shape
    scale = cfg.scale
    min_len, max_len = _len_range(cfg, kv_len)
    acc_t = _acc_dtype(qb.dtype)
    g = _g(cfg)

    def q_block(_, xs):
        i, qi = xs

        def tile(j, carry, masked: bool):
            m, l, acc = carry
            s = jnp.einsum(f"b{g}qd,bkd->b{g}qk", qi, kb[j], preferred_element_type=acc_t)
            if masked:
                valid = _block_mask(cfg, i, j, kv_len)
                s = jnp.where(valid, s, _NEG)
            # Running max in scaled units: the scale multiply fuses into the max and exp passes.
            m_new = jnp.maximum(m, jnp.max(s, axis=-1) * scale)
            p = jnp.exp(s * scale - m_new[..., None])
            if masked:
                p = jnp.where(valid, p, 0.0)
            alpha = jnp.exp(m - m_new)
            l = l * alpha + jnp.sum(p, axis=-1)
            pv = jnp.einsum(f"b{g}qk,bkd->b{g}qd", p.astype(vb.dtype), vb[j], preferred_element_type=acc_t)
            return m_new, l, acc * alpha[..., None] + pv

        carry = (jnp.full(rows_shape, _NEG, acc_t), jnp.zeros(rows_shape, acc_t),
                 jnp.zeros(rows_shape + (Dv,), acc_t))
        if cfg.autodiff:
            needs_mask = cfg.causal or cfg.has_lengths or n_kv * bk != cfg.kv_len
            carry = lax.fori_loop(0, n_kv, functools.partial(tile, masked=needs_mask), carry)
        else:
            full, stop = _kv_bounds(cfg, i, n_kv, min_len, max_len)
            carry = lax.fori_loop(0, full, functools.partial(tile, masked=False), carry)
            carry = lax.fori_loop(full, stop, functools.partial(tile, masked=True), carry)
        m, l, acc = carry
        nonempty = l > 0
        out = jnp.where(nonempty[..., None], acc / jnp.where(nonempty, l, 1.0)[..., None], 0.0)
        lse = jnp.where(nonempty, m + jnp.log(jnp.where(nonempty, l, 1.0)), jnp.inf)
        return None, (out.astype(qb.dtype), lse)

    _, (out, lse) = lax.scan(q_block, None, (jnp.arange(n_q), qb))
    return out, lse


def _flash_backward(cfg: _FlashConfig, qb, kb, vb, kv_len, out, lse, dout) -> tuple[Array, Array, Array]:
    """FlashAttention-2 backward: outer loop over kv blocks, inner over the q blocks that see them.

    Recomputes each probability tile from the saved logsumexp, so nothing quadratic is stored.
    """
    n_q, D = qb.shape[0], qb.shape[-1]
    rows_shape = qb.shape[1:-1]          # (BK, [G,] bq)
    n_kv, BK, bk, Dv = vb.shape
    scale = cfg.scale
    min_len, max_len = _len_range(cfg, kv_len)
    dtype = qb.dtype
    acc_t = _acc_dtype(dtype)
    g = _g(cfg)
    # delta_i = rowsum(dO_i * O_i) = rowsum(P_i * dP_i): the softmax-backward correction term.
    delta = jnp.sum(dout.astype(acc_t) * out.astype(acc_t), axis=-1)

    # Every product below is laid out as a plain (NN) or rhs-transposed (NT) batched matmul: on
    # XLA:CPU (YNNPACK) those ran at ~85-90 GFLOP/s per core against ~65 for a transposed lhs. So
    # the tile is computed transposed, s^T = k q^T [bk, bq], and dq is accumulated transposed
    # (dq^T += k^T ds^T) from a k^T copied once outside the loop.
    kTb = jnp.swapaxes(kb, -1, -2)                      # [nk, BH, D, bk]

    def kv_block(dqT, xs):
        j, kj, kTj, vj = xs

        def tile(i, carry, masked: bool):
            dqT, dk, dv = carry
            qi, doi = qb[i], dout[i]
            sT = jnp.einsum(f"bkd,b{g}qd->b{g}kq", kj, qi, preferred_element_type=acc_t)
            pT = jnp.exp(sT * scale - lse[i][..., None, :])
            if masked:
                pT = jnp.where(jnp.swapaxes(_block_mask(cfg, i, j, kv_len), -1, -2), pT, 0.0)
            # With a group axis, the k/v gradients also sum over the query heads sharing the tile.
            dv = dv + jnp.einsum(f"b{g}kq,b{g}qd->bkd", pT.astype(dtype), doi, preferred_element_type=acc_t)
            dpT = jnp.einsum(f"bkd,b{g}qd->b{g}kq", vj, doi, preferred_element_type=acc_t)
            dsT = (pT * (dpT - delta[i][..., None, :])).astype(dtype)
            dk = dk + jnp.einsum(f"b{g}kq,b{g}qd->bkd", dsT, qi, preferred_element_type=acc_t)
            dqT = dqT.at[i].add(jnp.einsum(f"bdk,b{g}kq->b{g}dq", kTj, dsT, preferred_element_type=acc_t))
            return dqT, dk, dv

        start, full = _q_bounds(cfg, j, n_q, min_len, max_len)
        carry = (dqT, jnp.zeros((BK, bk, D), acc_t), jnp.zeros((BK, bk, Dv), acc_t))
        carry = lax.fori_loop(start, full, functools.partial(tile, masked=True), carry)
        carry = lax.fori_loop(full, n_q, functools.partial(tile, masked=False), carry)
        dqT, dk, dv = carry
        return dqT, ((dk * scale).astype(dtype), dv.astype(dtype))

    dqT0 = jnp.zeros((n_q,) + rows_shape[:-1] + (D, rows_shape[-1]), acc_t)
    dqT, (dk, dv) = lax.scan(kv_block, dqT0, (jnp.arange(n_kv), kb, kTb, vb))
    dq = jnp.swapaxes(dqT, -1, -2)
    return (dq * scale).astype(dtype), dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _flash(cfg: _FlashConfig, qb: Array, kb: Array, vb: Array, kv_len: Array) -> Array:
    return _flash_forward(cfg, qb, kb, vb, kv_len)[0]


def _flash_fwd_rule(cfg, qb, kb, vb, kv_len):
    out, lse = _flash_forward(cfg, qb, kb, vb, kv_len)
    return out, (qb, kb, vb, kv_len, out, lse)   # residuals: O(T) only


def _flash_bwd_rule(cfg, res, dout):
    qb, kb, vb, kv_len, out, lse = res
    with jax.named_scope("attention"):
        dq, dk, dv = _flash_backward(cfg, qb, kb, vb, kv_len, out, lse, dout)
    return dq, dk, dv, None


_flash.defvjp(_flash_fwd_rule, _flash_bwd_rule)

# Default tile sizes, chosen by measurement on the project's 2-core CPU (causal training step, B=8,
# 4 heads x 64, 2026-11-27): q tiles of 512 beat 256 by 5-20% from T=1024 to 4096 (fewer scan
# iterations over q), but cost 35% at T=512, so the q tile grows only for long queries.
DEFAULT_BLOCK_Q = 256
DEFAULT_BLOCK_KV = 256
LONG_BLOCK_Q = 512
LONG_QUERY = 1024


def default_block_q(q_len: int) -> int:
    """The q tile ``blockwise_attention`` uses when ``block_q`` is None."""
    return LONG_BLOCK_Q if q_len >= LONG_QUERY else DEFAULT_BLOCK_Q


def _check_backward(backward: Any) -> str:
    if not isinstance(backward, str) or backward not in BACKWARD_MODES:
        raise ValueError(f"backward must be one of {BACKWARD_MODES}, got {backward!r}")
    return backward


def blockwise_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    kv_lengths: Optional[Array] = None,
    q_lengths: Optional[Array] = None,
    block_q: Optional[int] = None,
    block_kv: int = DEFAULT_BLOCK_KV,
    backward: str = "auto",
) -> Array:
    """Memory-efficient attention: online softmax over kv blocks, a scan over q blocks.

    Heads are folded into the batch (``[n_blocks, batch*heads, block, head_dim]``) so every tile
    product is one batched matmul. With ``is_causal`` the tiles above the diagonal are skipped (loop
    bounds, not masks), about half the FLOPs; only tiles crossing the diagonal or a sequence end
    are masked. The custom VJP saves only the output and the row logsumexp and recomputes each
    tile (FlashAttention-2), so forward and backward temporaries are O(T * block), not O(T^2).
    With fewer k/v heads than query heads, each k/v tile is multiplied with the ``heads //
    kv_heads`` query heads that share it (one batched matmul), never repeated in memory.

    Args:
      q: ``[batch, q_len, heads, head_dim]``.
      k, v: ``[batch, kv_len, kv_heads, head_dim]``, ``kv_heads`` dividing ``heads``.
      is_causal: top-left causal mask.
      scale: logit scale, default ``1/sqrt(head_dim)``.
      kv_lengths: optional ``[batch]`` int; keys at or past the length are ignored.
      q_lengths: optional ``[batch]`` int; output rows at or past the length are zero.
      block_q, block_kv: tile sizes (any positive int; time is zero-padded internally). A block
        larger than the sequence is clipped to it. ``block_q=None`` picks
        :func:`default_block_q` (256, or 512 from ``q_len`` 1024 on).
      backward: ``"auto"`` (= ``"custom"``): the FlashAttention-2 custom VJP (reverse mode only:
        ``jax.jvp``/``jax.jacfwd`` raise a TypeError naming this option). ``"autodiff"``: no custom
        VJP; every tile is visited (masked) by fixed-length loops that JAX differentiates itself,
        so forward mode (``jax.jvp``, ``jax.jacfwd``) works too. Same values; it computes the
        skipped causal tiles as well, and reverse mode then stores per-tile residuals, so its
        training memory is quadratic in T like the ``"naive"`` backend.
    Returns:
      ``[batch, q_len, heads, head_dim]`` in q's dtype.
    """
    q, k, v, _, q_lengths, kv_lengths, scale = _checked_inputs(q, k, v, None, q_lengths, kv_lengths, scale)
    autodiff = _check_backward(backward) == "autodiff"
    B, Tq, H, D = q.shape
    Tk, K = k.shape[1], k.shape[2]
    G = H // K
    if block_q is None:
        block_q = default_block_q(Tq)
    for name, b in (("block_q", block_q), ("block_kv", block_kv)):
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"{name} must be a positive int, got {b!r}")
    # Don't pad a short sequence up to a big block; 8 keeps tiles vector-friendly.
    block_q = int(min(block_q, max(8, -(-Tq // 8) * 8)))
    block_kv = int(min(block_kv, max(8, -(-Tk // 8) * 8)))
    if not autodiff:
        check_forward_mode("blockwise_attention", _FORWARD_MODE_FIX, q, k, v)
    if Tq == 0 or Tk == 0:
        return jnp.zeros(q.shape, q.dtype)

    cfg = _FlashConfig(scale=scale, causal=bool(is_causal), block_q=block_q, block_kv=block_kv,
                       q_len=Tq, kv_len=Tk, has_lengths=kv_lengths is not None, groups=G,
                       autodiff=autodiff)
    with jax.named_scope("attention"):
        if kv_lengths is None:
            kv_len = jnp.full((B * K,), Tk, jnp.int32)
        else:
            kv_len = jnp.repeat(kv_lengths, K)   # [B*K], batch-major as in _to_blocks
        qb = _to_blocks(q, block_q)
        if G > 1:   # [n, B*H, bq, D] -> [n, B*K, G, bq, D]: query head h = kv head h // G, member h % G
            qb = qb.reshape(qb.shape[0], B * K, G, block_q, D)
        kb, vb = _to_blocks(k, block_kv), _to_blocks(v, block_kv)
        if autodiff:
            out = _flash_forward(cfg, qb, kb, vb, kv_len)[0]
        else:
            with explain_forward_mode("blockwise_attention", _FORWARD_MODE_FIX):
                out = _flash(cfg, qb, kb, vb, kv_len)
        out = _from_blocks(out.reshape(out.shape[0], B * H, block_q, D), B, Tq, H)
        if q_lengths is not None:
            out = _zero_invalid_rows(out, jnp.arange(Tq)[None, :] < q_lengths[:, None])
        return out


# ---------------------------------------------------------------------------------------------------
# "xla" / "cudnn": jax.nn.dot_product_attention
# ---------------------------------------------------------------------------------------------------


def _on_gpu() -> bool:
    return jax.default_backend() == "gpu"


def cudnn_supported(q: Array, k: Array, v: Array, *, mask: Optional[Array] = None) -> bool:
    """Whether jax.nn's cuDNN flash attention accepts these inputs (GPU, fp16/bf16, head_dim % 8 == 0, <= 128)."""
    D = q.shape[-1]
    return (_on_gpu() and q.dtype in (jnp.float16, jnp.bfloat16) and D % 8 == 0 and D <= 128
            and mask is None)


def jax_nn_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Optional[Array] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    q_lengths: Optional[Array] = None,
    kv_lengths: Optional[Array] = None,
    implementation: Optional[str] = None,
) -> Array:
    """``jax.nn.dot_product_attention`` with this module's conventions.

    ``implementation=None`` picks ``"cudnn"`` when :func:`cudnn_supported`, else ``"xla"``. Lengths
    are passed as ``query_seq_lengths``/``key_value_seq_lengths``; rows with nothing to attend to
    (past ``q_lengths``, ``kv_lengths == 0``, or an all-False mask row) are zeroed afterwards, since
    jax.nn returns a uniform average there. Same arguments/shapes as the other backends (jax.nn
    takes fewer k/v heads than query heads natively).
    """
    q, k, v, mask, q_lengths, kv_lengths, scale = _checked_inputs(q, k, v, mask, q_lengths, kv_lengths, scale)
    if implementation is None:
        implementation = "cudnn" if cudnn_supported(q, k, v, mask=mask) else "xla"
    if implementation not in ("xla", "cudnn"):
        raise ValueError(f"implementation must be None, 'xla' or 'cudnn', got {implementation!r}")
    if implementation == "cudnn" and not _on_gpu():
        raise RuntimeError(f"cuDNN attention needs a GPU; the default JAX backend is "
                           f"{jax.default_backend()!r}. Use backend='xla' or 'blockwise' instead.")
    with jax.named_scope("attention"):
        return _jax_nn_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths, implementation)


def _jax_nn_body(q, k, v, mask, is_causal, scale, q_lengths, kv_lengths, implementation):
    B, Tq, H, D = q.shape
    Tk = k.shape[1]
    out = jax.nn.dot_product_attention(
        q, k, v, mask=mask, scale=scale, is_causal=is_causal, query_seq_lengths=q_lengths,
        key_value_seq_lengths=kv_lengths, implementation=implementation)
    valid = None
    if q_lengths is not None:
        valid = jnp.arange(Tq)[None, :] < q_lengths[:, None]
    if kv_lengths is not None:
        nonempty = jnp.broadcast_to((kv_lengths > 0)[:, None], (B, Tq))
        valid = nonempty if valid is None else valid & nonempty
    if mask is not None:
        any_row = jnp.any(mask, axis=-1)                       # [B|1, H|1, Tq]
        if kv_lengths is not None:   # a row's allowed keys may all lie past kv_lengths
            cols = jnp.arange(Tk)[None, None, None, :] < kv_lengths[:, None, None, None]
            if is_causal:
                cols = cols & (jnp.arange(Tk)[None, :] <= jnp.arange(Tq)[:, None])
            any_row = jnp.any(mask & cols, axis=-1)
        elif is_causal:
            any_row = jnp.any(mask & (jnp.arange(Tk)[None, :] <= jnp.arange(Tq)[:, None]), axis=-1)
        valid = any_row if valid is None else (valid[:, None, :] & any_row)
    return _zero_invalid_rows(out, valid)


# ---------------------------------------------------------------------------------------------------
# One query row: a decoding step against its cache
# ---------------------------------------------------------------------------------------------------


def single_query_attention(q: Array, k: Array, v: Array, *, scale: Optional[float] = None,
                           kv_lengths: Optional[Array] = None) -> Array:
    """Attention of one query position per sequence, as in an incremental decoding step.

    Args:
      q: ``[batch, 1, heads, head_dim]``.
      k, v: ``[batch, kv_len, kv_heads, head_dim]`` (the cache); ``kv_heads`` divides ``heads``.
      scale: logit scale, default ``1/sqrt(head_dim)``.
      kv_lengths: optional ``[batch]`` valid cache lengths; a row with 0 returns zeros.
    Returns:
      ``[batch, 1, heads, head_dim]`` in q's dtype, equal to the other backends' result.

    Written as broadcast products summed over ``head_dim`` and over the keys instead of two batched
    ``dot_general`` ops: XLA:CPU runs a dot with batch dimensions (batch, heads) and one query row as one
    tiny matrix-vector product per (batch, head). Measured on the 2-core CPU, 4 heads of 64: 3.8 ms against
    1.0 ms for 160 rows and 46 cached positions, 17.1 ms against 2.6 ms at 106, 25.9 against 4.2 ms for 8 rows
    and 4096. A batch of one is the exception: there XLA:CPU's sums over the keys ran 10-30x slower than the
    dots (3.8 against 0.15 ms at 1024 positions, 106 against 15 ms at 16384), so it takes the einsum kernel.
    """
    q, k, v, _, _, kv_lengths, scale = _checked_inputs(q, k, v, None, None, kv_lengths, scale)
    B, Tq, H, D = q.shape
    if Tq != 1:
        raise ValueError(f"single_query_attention: q must have one position ([batch, 1, heads, head_dim]), "
                         f"got shape {tuple(q.shape)}; use attention() for longer queries")
    if B == 1:
        with jax.named_scope("attention"):
            return _reference_body(q, k, v, None, False, scale, None, kv_lengths)
    Tk, K = k.shape[1], k.shape[2]
    G = H // K
    acc = _acc_dtype(q.dtype)
    valid = None if kv_lengths is None else jnp.arange(Tk)[None, :] < kv_lengths[:, None]   # [B, Tk]

    def one_query_per_kv_head(qh: Array) -> Array:  # qh [B, 1, K, D] -> [B, 1, K, D]
        logits = jnp.sum(qh * k, axis=-1, dtype=acc) * scale                         # [B, Tk, K]
        if valid is not None:
            logits = jnp.where(valid[:, :, None], logits, _NEG)
        weights = jax.nn.softmax(logits, axis=1).astype(v.dtype)
        return jnp.sum(weights[..., None] * v, axis=1, keepdims=True, dtype=acc)

    with jax.named_scope("attention"):
        if G == 1:
            out = one_query_per_kv_head(q)
        else:
            # Query head h uses kv head h // G (jax.nn's grouping). One pass per group member keeps every
            # array 4-D: the same products with an extra group axis ran 5-20x slower on XLA:CPU.
            out = jnp.stack([one_query_per_kv_head(q[:, :, g::G]) for g in range(G)], axis=3).reshape(B, 1, H, D)
        if valid is not None:  # nothing to attend to: zeros, not a uniform average
            out = jnp.where((kv_lengths > 0)[:, None, None, None], out, jnp.zeros((), out.dtype))
        return out.astype(q.dtype)


# ---------------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------------

# "auto" on CPU switches from the einsum to the blockwise kernel from this many query or key
# positions on (measured, see select_backend).
AUTO_BLOCKWISE_MIN_LEN = 512


def select_backend(q: Array, k: Array, v: Array, *, mask: Optional[Array] = None) -> str:
    """The backend ``attention(..., backend="auto")`` uses.

    GPU: ``"cudnn"`` when :func:`cudnn_supported`, else ``"xla"``. Elsewhere: ``"blockwise"`` for
    ``max(q_len, kv_len) >= AUTO_BLOCKWISE_MIN_LEN`` without an explicit mask (linear memory and,
    measured on CPU, faster than the einsum at long T), else ``"naive"`` (faster on CPU than
    jax.nn's XLA path, which builds extra mask tensors).
    """
    if _on_gpu():
        return "cudnn" if cudnn_supported(q, k, v, mask=mask) else "xla"
    if mask is None and max(q.shape[1], k.shape[1]) >= AUTO_BLOCKWISE_MIN_LEN:
        return "blockwise"
    return "naive"


def attention(q: Array, k: Array, v: Array, *, backend: str = "auto", backward: str = "auto",
              **kwargs: Any) -> Array:
    """Scaled dot-product attention through one named backend.

    Args:
      q: ``[batch, q_len, heads, head_dim]``; k, v: ``[batch, kv_len, kv_heads, head_dim]`` with
        ``kv_heads`` dividing ``heads`` (grouped/multi-query attention when fewer). NumPy arrays
        are accepted.
      backend: one of ``ATTENTION_BACKENDS`` or ``"auto"`` (:func:`select_backend`).
      backward: ``"auto"``/``"custom"``/``"autodiff"``, used by ``"blockwise"`` (see
        :func:`blockwise_attention`; ``"autodiff"`` for ``jax.jvp``/``jax.jacfwd``); the other
        backends are always differentiated by JAX and accept any of the three.
      **kwargs: ``mask``, ``is_causal``, ``scale``, ``q_lengths``, ``kv_lengths`` (all backends;
        ``"blockwise"`` takes no ``mask``), plus ``block_q``/``block_kv`` for ``"blockwise"``.
    Returns:
      ``[batch, q_len, heads, head_dim]``.
    """
    if backend != "auto" and backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; valid: {', '.join(ATTENTION_BACKENDS)}, auto")
    _check_backward(backward)
    q, k, v = _as_qkv(q, k, v)
    if backend == "auto":
        backend = select_backend(q, k, v, mask=kwargs.get("mask"))
    block_kw = {n for n in ("block_q", "block_kv") if n in kwargs}
    if block_kw and backend != "blockwise":
        kwargs = {n: x for n, x in kwargs.items() if n not in block_kw}   # tile sizes only matter there
    if backend == "naive":
        return dot_product_attention_reference(q, k, v, **kwargs)
    if backend == "vmapped":
        return vmapped_attention(q, k, v, **kwargs)
    if backend == "blockwise":
        if kwargs.get("mask") is not None:
            raise ValueError("backend 'blockwise' takes no explicit mask (it never builds the [T, T] matrix); "
                             "use is_causal/kv_lengths/q_lengths, or backend 'naive'/'xla' for arbitrary masks")
        kwargs.pop("mask", None)
        return blockwise_attention(q, k, v, backward=backward, **kwargs)
    if backend == "cudnn" and not _on_gpu():
        raise RuntimeError(f"backend 'cudnn' needs a GPU (cuDNN); the default JAX backend is "
                           f"{jax.default_backend()!r}. Use 'blockwise' or 'xla' on CPU.")
    return jax_nn_attention(q, k, v, implementation=backend, **kwargs)
