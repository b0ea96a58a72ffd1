"""Multi-head attention (Flax NNX) over ``jaxseq.ops.attention.attention``."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxseq.ops import attention as _attention_ops
from jaxseq.ops import positional as _positional

Array = jax.Array


class KVCache(NamedTuple):
    """Keys and values of the positions decoded so far: each ``[batch, max_len, kv_heads, head_dim]``.

    Position ``t`` is written by the ``t``-th call of :meth:`MultiHeadAttention.decode_step`; the
    positions past ``t`` are zeros that the step masks out. The batch is the leading axis, as
    ``jaxseq.models.decode`` expects of every cache leaf.
    """

    k: Array
    v: Array


class MultiHeadAttention(nnx.Module):
    """Self- or cross-attention with query/key/value/output projections.

    Projections are ``nnx.Linear`` (``query``, ``key``, ``value``, ``out``); heads are split to the
    ops' layout ``[batch, time, heads, head_dim]``. ``query``/``out`` are ``d_model x d_model``;
    ``key``/``value`` are ``d_model x (num_kv_heads * head_dim)``.

    ``num_kv_heads`` (None = ``num_heads``) gives grouped-query attention: fewer key/value heads,
    each shared by ``num_heads // num_kv_heads`` query heads (1 = multi-query attention). It must
    divide ``num_heads``.

    ``backward`` is passed to the attention op: ``"auto"``/``"custom"`` use the blockwise backend's
    FlashAttention custom VJP (reverse mode only); ``"autodiff"`` lets JAX differentiate it, which
    ``jax.jvp``/``jax.jacfwd`` need. Other backends ignore it.

    ``rope=True`` rotates queries and keys by their positions (0..T-1) before the dot product; it is
    applied in self-attention only (cross-attention positions of two different sequences are not
    comparable, so cross-attention ignores ``rope``).

    ``dropout`` is applied to the output projection (the attention ops have no attention-weight
    dropout, which would also rule out the fused kernels).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        backend: str = "auto",
        backward: str = "auto",
        rope: bool = False,
        qkv_bias: bool = True,
        out_bias: bool = True,
        dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"MultiHeadAttention: d_model must be a positive int, got {d_model!r}")
        if not isinstance(num_heads, int) or num_heads < 1 or d_model % num_heads:
            raise ValueError(
                f"MultiHeadAttention: num_heads must be a positive int dividing d_model={d_model},"
                f" got {num_heads!r}"
            )
        if num_kv_heads is None:
            num_kv_heads = num_heads
        if (isinstance(num_kv_heads, bool) or not isinstance(num_kv_heads, int) or num_kv_heads < 1
                or num_heads % num_kv_heads):
            raise ValueError(
                f"MultiHeadAttention: num_kv_heads must be None or a positive int dividing"
                f" num_heads={num_heads}, got {num_kv_heads!r}"
            )
        backends = getattr(_attention_ops, "ATTENTION_BACKENDS", None)
        if backends is not None and backend not in backends and backend != "auto":
            raise ValueError(f"MultiHeadAttention: backend must be one of {backends}, got {backend!r}")
        if backward not in _attention_ops.BACKWARD_MODES:
            raise ValueError(f"MultiHeadAttention: backward must be one of"
                             f" {_attention_ops.BACKWARD_MODES}, got {backward!r}")
        head_dim = d_model // num_heads
        if rope and head_dim % 2:
            raise ValueError(f"MultiHeadAttention: rope needs an even head_dim, got {head_dim}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.backend = backend
        self.backward = backward
        self.rope = rope
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        kv_dim = num_kv_heads * head_dim
        self.query = nnx.Linear(d_model, d_model, use_bias=qkv_bias, **lin)
        self.key = nnx.Linear(d_model, kv_dim, use_bias=qkv_bias, **lin)
        self.value = nnx.Linear(d_model, kv_dim, use_bias=qkv_bias, **lin)
        self.out = nnx.Linear(d_model, d_model, use_bias=out_bias, **lin)
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    def _heads(self, y: Array) -> Array:
        return y.reshape(y.shape[:-1] + (y.shape[-1] // self.head_dim, self.head_dim))

    def __call__(
        self,
        x: Array,
        context: Array | None = None,
        *,
        is_causal: bool = False,
        q_lengths: Array | None = None,
        kv_lengths: Array | None = None,
        mask: Array | None = None,
    ) -> Array:
        """Attend from ``x`` to ``context`` (or to ``x`` itself when ``context`` is None).

        Args:
          x: queries' input ``[batch, q_time, d_model]``.
          context: keys'/values' input ``[batch, kv_time, d_model]``; None means self-attention.
          is_causal: query i sees keys 0..i (self-attention, or aligned cross-attention).
          q_lengths: ``[batch]`` valid query lengths (padding at the end), or None.
          kv_lengths: ``[batch]`` valid key lengths (padding at the end), or None. For
            self-attention pass the same lengths as ``q_lengths``/``kv_lengths``.
          mask: bool mask broadcastable to ``[batch, heads, q_time, kv_time]`` (True = attend).

        Returns:
          ``[batch, q_time, d_model]``.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"MultiHeadAttention: x must be [batch, q_time, d_model={self.d_model}], got shape"
                f" {tuple(x.shape)}"
            )
        self_attention = context is None
        if self_attention:
            context = x
        elif context.ndim != 3 or context.shape[-1] != self.d_model or context.shape[0] != x.shape[0]:
            raise ValueError(
                f"MultiHeadAttention: context must be [batch={x.shape[0]}, kv_time,"
                f" d_model={self.d_model}], got shape {tuple(context.shape)}"
            )
        q = self._heads(self.query(x))
        k = self._heads(self.key(context))
        v = self._heads(self.value(context))
        if self.rope and self_attention:
            q = _positional.apply_rope(q)
            k = _positional.apply_rope(k)
        kw: dict[str, Any] = {"is_causal": is_causal}
        # Only pass what is set, so backends without an option still accept the call.
        if q_lengths is not None:
            kw["q_lengths"] = q_lengths
        if kv_lengths is not None:
            kw["kv_lengths"] = kv_lengths
        if mask is not None:
            kw["mask"] = mask
        y = _attention_ops.attention(q, k, v, backend=self.backend, backward=self.backward, **kw)
        y = y.reshape(y.shape[:-2] + (self.d_model,))
        return self.dropout(self.out(y))

    # ---- incremental decoding (a key/value cache) ------------------------------------------------
    def init_cache(self, batch: int, max_len: int, dtype: Any = jnp.float32) -> KVCache:
        """An empty cache for ``batch`` sequences of up to ``max_len`` decoded positions."""
        for name, v in (("batch", batch), ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MultiHeadAttention.init_cache: {name} must be a positive int, got {v!r}")
        z = jnp.zeros((batch, max_len, self.num_kv_heads, self.head_dim), dtype)
        return KVCache(z, z)

    def project_kv(self, context: Array) -> KVCache:
        """Keys and values of a fixed ``context [batch, kv_time, d_model]`` (cross-attention memory),
        computed once per sequence and reused by every :meth:`attend` step."""
        return KVCache(self._heads(self.key(context)), self._heads(self.value(context)))

    def attend(self, x: Array, kv: KVCache, *, kv_lengths: Array | None = None) -> Array:
        """Queries ``x [batch, q_time, d_model]`` against projected keys/values -> ``[batch, q_time, d_model]``."""
        return self._attend_cached(self._heads(self.query(x)), kv, kv_lengths)

    def _attend_cached(self, q: Array, kv: KVCache, kv_lengths: Array | None) -> Array:
        kw = {} if kv_lengths is None else {"kv_lengths": kv_lengths}
        k, v = kv.k.astype(q.dtype), kv.v.astype(q.dtype)
        if q.shape[1] == 1:  # a decoding step: the kernel for one query row (XLA:CPU's batched dot is slow here)
            y = _attention_ops.single_query_attention(q, k, v, **kw)
        else:
            y = _attention_ops.attention(q, k, v, backend="xla", **kw)
        return self.out(y.reshape(y.shape[:-2] + (self.d_model,)))

    def decode_step(self, x: Array, cache: KVCache, t: Array) -> tuple[Array, KVCache]:
        """Causal self-attention of one new position ``t``: ``x [batch, 1, d_model]`` -> (``[batch, 1,
        d_model]``, the cache with position ``t`` written). Equals row ``t`` of the full causal call."""
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention.decode_step: x must be [batch, 1, d_model={self.d_model}],"
                             f" got shape {tuple(x.shape)}")
        t = jnp.asarray(t, jnp.int32)
        q = self._heads(self.query(x))
        k = self._heads(self.key(x))
        v = self._heads(self.value(x))
        if self.rope:
            pos = jnp.reshape(t, (1,))
            q = _positional.apply_rope(q, pos)
            k = _positional.apply_rope(k, pos)
        cache = KVCache(jax.lax.dynamic_update_slice_in_dim(cache.k, k.astype(cache.k.dtype), t, axis=1),
                        jax.lax.dynamic_update_slice_in_dim(cache.v, v.astype(cache.v.dtype), t, axis=1))
        return self._attend_cached(q, cache, jnp.full((x.shape[0],), t + 1, jnp.int32)), cache
