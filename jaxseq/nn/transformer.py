"""Pre-norm Transformer blocks, encoder and decoder (Flax NNX).

Inputs are features ``[batch, time, d_model]`` (embed tokens first, e.g. with
:class:`jaxseq.nn.Embedding`). ``lengths`` are valid lengths ``[batch]`` with padding at the end;
outputs at padded positions are zero.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxseq.nn.attention import MultiHeadAttention
from jaxseq.ops import positional as _positional

Array = jax.Array
POSITIONAL = ("sinusoidal", "rope", "learned", None)


def _zero_padding(x: Array, lengths: Array | None) -> Array:
    if lengths is None:
        return x
    valid = jnp.arange(x.shape[1])[None, :] < jnp.asarray(lengths)[:, None]
    return jnp.where(valid[:, :, None], x, jnp.zeros((), x.dtype))


def _check_features(name: str, arg: str, x: Array, d_model: int) -> None:
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(
            f"{name}: {arg} must be [batch, time, d_model={d_model}], got shape {tuple(x.shape)}"
        )


def _check_lengths(name: str, arg: str, lengths: Any, batch: int) -> Array | None:
    if lengths is None:
        return None
    lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"{name}: {arg} must be an int array of shape [batch={batch}], got shape"
            f" {tuple(lengths.shape)} dtype {lengths.dtype}"
        )
    return lengths


class MLP(nnx.Module):
    """``Linear(d, ratio*d) -> GELU -> Linear(ratio*d, d)``."""

    def __init__(self, d_model: int, *, ratio: int = 4, dtype: Any = None,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc1 = nnx.Linear(d_model, ratio * d_model, **kw)
        self.fc2 = nnx.Linear(ratio * d_model, d_model, **kw)

    def __call__(self, x: Array) -> Array:
        return self.fc2(jax.nn.gelu(self.fc1(x)))


class TransformerBlock(nnx.Module):
    """Pre-norm block: ``x + attn(LN(x))`` [``+ cross_attn(LN(x), context)``] ``+ MLP(LN(x))``.

    Dropout (rate ``dropout``) is applied to each residual branch.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        backend: str = "auto",
        rope: bool = False,
        cross_attention: bool = False,
        qkv_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.d_model = d_model
        self.norm_attn = nnx.LayerNorm(d_model, **kw)
        self.attn = MultiHeadAttention(d_model, num_heads, backend=backend, rope=rope,
                                       qkv_bias=qkv_bias, **kw)
        if cross_attention:
            self.norm_cross = nnx.LayerNorm(d_model, **kw)
            self.cross_attn = MultiHeadAttention(d_model, num_heads, backend=backend,
                                                 qkv_bias=qkv_bias, **kw)
        else:
            self.norm_cross = None
            self.cross_attn = None
        self.norm_mlp = nnx.LayerNorm(d_model, **kw)
        self.mlp = MLP(d_model, ratio=mlp_ratio, **kw)
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    def __call__(
        self,
        x: Array,
        context: Array | None = None,
        *,
        is_causal: bool = False,
        lengths: Array | None = None,
        context_lengths: Array | None = None,
        mask: Array | None = None,
    ) -> Array:
        """x ``[batch, time, d_model]`` -> ``[batch, time, d_model]``.

        ``lengths`` mask padded keys of the self-attention; ``context`` ``[batch, kv_time,
        d_model]`` (required iff the block has cross-attention) with ``context_lengths``.
        """
        x = x + self.dropout(self.attn(self.norm_attn(x), is_causal=is_causal,
                                       kv_lengths=lengths, mask=mask))
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("TransformerBlock: context [batch, kv_time, d_model] is required"
                                 " (the block was built with cross_attention=True)")
            x = x + self.dropout(self.cross_attn(self.norm_cross(x), context,
                                                 kv_lengths=context_lengths))
        elif context is not None:
            raise ValueError("TransformerBlock: context given but the block has no cross-attention"
                             " (build it with cross_attention=True)")
        return x + self.dropout(self.mlp(self.norm_mlp(x)))


class _TransformerStack(nnx.Module):
    """Positional encoding, a stack of blocks and a final LayerNorm."""

    _causal: bool = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_layers: int,
        *,
        positional: str | None = "sinusoidal",
        max_len: int | None = None,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        backend: str = "auto",
        qkv_bias: bool = True,
        cross_attention: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        name = type(self).__name__
        if positional not in POSITIONAL:
            raise ValueError(f"{name}: positional must be one of {POSITIONAL}, got {positional!r}")
        if positional == "learned" and (not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"{name}: positional='learned' needs max_len (a positive int),"
                             f" got {max_len!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.d_model = d_model
        self.positional = positional
        self.max_len = max_len
        self.position_embedding = (
            nnx.Embed(max_len, d_model, **kw) if positional == "learned" else None
        )
        self.blocks = nnx.List([
            TransformerBlock(d_model, num_heads, mlp_ratio=mlp_ratio, dropout=dropout,
                             backend=backend, rope=positional == "rope",
                             cross_attention=cross_attention, qkv_bias=qkv_bias, **kw)
            for _ in range(num_layers)
        ])
        self.norm = nnx.LayerNorm(d_model, **kw)
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    def _add_positions(self, x: Array) -> Array:
        time = x.shape[1]
        if self.max_len is not None and time > self.max_len:
            raise ValueError(f"{type(self).__name__}: x has time={time} > max_len={self.max_len}")
        if self.positional == "sinusoidal":
            x = x + _positional.sinusoidal_encoding(time, self.d_model, dtype=x.dtype)[None]
        elif self.positional == "learned":
            x = x + self.position_embedding(jnp.arange(time))[None].astype(x.dtype)
        return self.dropout(x)

    def _run(self, x, lengths, memory, memory_lengths):
        x = self._add_positions(x)
        for block in self.blocks:
            x = block(x, memory, is_causal=self._causal, lengths=lengths,
                      context_lengths=memory_lengths)
        return _zero_padding(self.norm(x), lengths)


class TransformerEncoder(_TransformerStack):
    """Non-causal stack of :class:`TransformerBlock` with padding lengths and a final LayerNorm.

    ``TransformerEncoder(d_model, num_heads, num_layers, *, positional="sinusoidal"|"rope"|
    "learned"|None, max_len=None, mlp_ratio=4, dropout=0.0, backend="auto", rngs)``.
    """

    def __call__(self, x: Array, *, lengths: Array | None = None) -> Array:
        """x ``[batch, time, d_model]``, lengths ``[batch]`` -> ``[batch, time, d_model]``.

        Valid positions do not depend on padded ones; padded outputs are zero.
        """
        _check_features("TransformerEncoder", "x", x, self.d_model)
        lengths = _check_lengths("TransformerEncoder", "lengths", lengths, x.shape[0])
        return self._run(x, lengths, None, None)


class TransformerDecoder(_TransformerStack):
    """Causal self-attention [+ cross-attention to ``memory``] + MLP blocks, final LayerNorm.

    ``TransformerDecoder(d_model, num_heads, num_layers, *, cross_attention=True, positional=...,
    max_len=None, mlp_ratio=4, dropout=0.0, backend="auto", rngs)``. With
    ``cross_attention=False`` it is a decoder-only (GPT-style) stack.
    """

    _causal = True

    def __init__(self, d_model: int, num_heads: int, num_layers: int, *,
                 cross_attention: bool = True, **kwargs: Any):
        super().__init__(d_model, num_heads, num_layers, cross_attention=cross_attention, **kwargs)
        self.cross_attention = cross_attention

    def __call__(
        self,
        x: Array,
        memory: Array | None = None,
        *,
        lengths: Array | None = None,
        memory_lengths: Array | None = None,
    ) -> Array:
        """x ``[batch, time, d_model]``, memory ``[batch, mem_time, d_model]`` -> like x.

        Output at step t depends only on x[:, :t+1] (and memory).
        """
        name = "TransformerDecoder"
        _check_features(name, "x", x, self.d_model)
        lengths = _check_lengths(name, "lengths", lengths, x.shape[0])
        if self.cross_attention:
            if memory is None:
                raise ValueError(f"{name}: memory [batch, mem_time, d_model] is required"
                                 " (built with cross_attention=True)")
            _check_features(name, "memory", memory, self.d_model)
            memory_lengths = _check_lengths(name, "memory_lengths", memory_lengths, memory.shape[0])
        elif memory is not None:
            raise ValueError(f"{name}: memory given but built with cross_attention=False")
        return self._run(x, lengths, memory, memory_lengths)
