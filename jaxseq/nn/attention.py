"""Multi-head attention (Flax NNX) over ``jaxseq.ops.attention.attention``."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxseq.ops import attention as _attention_ops
from jaxseq.ops import positional as _positional

Array = jax.Array


class MultiHeadAttention(nnx.Module):
    """Self- or cross-attention with query/key/value/output projections.

    Projections are ``nnx.Linear(d_model, d_model)`` (``query``, ``key``, ``value``, ``out``);
    heads are split to the ops' layout ``[batch, time, heads, head_dim]``.

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
        backend: str = "auto",
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
        backends = getattr(_attention_ops, "ATTENTION_BACKENDS", None)
        if backends is not None and backend not in backends and backend != "auto":
            raise ValueError(f"MultiHeadAttention: backend must be one of {backends}, got {backend!r}")
        head_dim = d_model // num_heads
        if rope and head_dim % 2:
            raise ValueError(f"MultiHeadAttention: rope needs an even head_dim, got {head_dim}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.backend = backend
        self.rope = rope
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.query = nnx.Linear(d_model, d_model, use_bias=qkv_bias, **lin)
        self.key = nnx.Linear(d_model, d_model, use_bias=qkv_bias, **lin)
        self.value = nnx.Linear(d_model, d_model, use_bias=qkv_bias, **lin)
        self.out = nnx.Linear(d_model, d_model, use_bias=out_bias, **lin)
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    def _heads(self, y: Array) -> Array:
        return y.reshape(y.shape[:-1] + (self.num_heads, self.head_dim))

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
        y = _attention_ops.attention(q, k, v, backend=self.backend, **kw)
        y = y.reshape(y.shape[:-2] + (self.d_model,))
        return self.dropout(self.out(y))
