"""Pre-norm Transformer blocks, encoder and decoder (Flax NNX).

Inputs are features ``[batch, time, d_model]`` (embed tokens first, e.g. with
:class:`jaxseq.nn.Embedding`). ``lengths`` are valid lengths ``[batch]`` with padding at the end;
outputs at padded positions are zero. Lengths outside ``[0, time]`` are a ``ValueError`` naming the
argument when their values are known; under ``jit`` they are clipped to ``[0, time]``.

``num_kv_heads`` (grouped-query attention) and ``backward`` (``"autodiff"`` for ``jax.jvp``/
``jax.jacfwd``) are passed to every :class:`MultiHeadAttention`. The MLP runs inside
``jax.named_scope("mlp")`` and the attention kernels inside ``"attention"``, so profiles group
device time by model part.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.attention import KVCache, MultiHeadAttention
from jaxseq.ops import positional as _positional

Array = jax.Array
POSITIONAL = ("sinusoidal", "rope", "learned", None)


class DecoderCache(NamedTuple):
    """Incremental state of a :class:`TransformerDecoder` (every leaf has the batch as its leading axis).

    ``self_kv``: one :class:`KVCache` per block (the decoded positions' keys and values);
    ``memory_kv``: one per block, the cross-attention keys/values of the memory, projected once;
    ``memory_lengths``: ``[batch]`` valid memory lengths.
    """

    self_kv: tuple[KVCache, ...]
    memory_kv: tuple[KVCache, ...]
    memory_lengths: Array


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


def _check_lengths(name: str, arg: str, lengths: Any, batch: int, time: int) -> Array | None:
    """``lengths`` as an int array ``[batch]`` in ``[0, time]``; the range is checked here when the
    values are known (so the error names ``arg``, not the attention op's ``kv_lengths``) and
    clipped when traced (the attention ops and the output padding then agree)."""
    if lengths is None:
        return None
    lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"{name}: {arg} must be an int array of shape [batch={batch}], got shape"
            f" {tuple(lengths.shape)} dtype {lengths.dtype}"
        )
    if isinstance(lengths, jax.core.Tracer):
        return jnp.clip(lengths, 0, time)
    values = np.asarray(lengths)
    if values.size and (values.min() < 0 or values.max() > time):
        raise ValueError(f"{name}: {arg} must lie in [0, time={time}], got min {values.min()}"
                         f" max {values.max()}")
    return lengths


class MLP(nnx.Module):
    """``Linear(d, ratio*d) -> GELU -> Linear(ratio*d, d)``."""

    def __init__(self, d_model: int, *, ratio: int = 4, dtype: Any = None,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc1 = nnx.Linear(d_model, ratio * d_model, **kw)
        self.fc2 = nnx.Linear(ratio * d_model, d_model, **kw)

    def __call__(self, x: Array) -> Array:
        with jax.named_scope("mlp"):
            return self.fc2(jax.nn.gelu(self.fc1(x)))


class TransformerBlock(nnx.Module):
    """Pre-norm block: ``x + attn(LN(x))`` [``+ cross_attn(LN(x), context)``] ``+ MLP(LN(x))``.

    Dropout (rate ``dropout``) is applied to each residual branch. ``num_kv_heads`` and
    ``backward`` go to both attention layers (see :class:`MultiHeadAttention`).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        backend: str = "auto",
        backward: str = "auto",
        num_kv_heads: int | None = None,
        rope: bool = False,
        cross_attention: bool = False,
        qkv_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        attn_kw = dict(backend=backend, backward=backward, num_kv_heads=num_kv_heads,
                       qkv_bias=qkv_bias, **kw)
        self.d_model = d_model
        self.norm_attn = nnx.LayerNorm(d_model, **kw)
        self.attn = MultiHeadAttention(d_model, num_heads, rope=rope, **attn_kw)
        if cross_attention:
            self.norm_cross = nnx.LayerNorm(d_model, **kw)
            self.cross_attn = MultiHeadAttention(d_model, num_heads, **attn_kw)
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

    def decode_step(self, x: Array, self_kv: KVCache, t: Array, memory_kv: KVCache | None = None,
                    memory_lengths: Array | None = None) -> tuple[Array, KVCache]:
        """One causal position ``t``: ``x [batch, 1, d_model]`` -> (output, updated ``self_kv``).

        Equals row ``t`` of ``__call__(..., is_causal=True)`` in eval mode (no dropout)."""
        y, self_kv = self.attn.decode_step(self.norm_attn(x), self_kv, t)
        x = x + y
        if self.cross_attn is not None:
            if memory_kv is None:
                raise ValueError("TransformerBlock.decode_step: memory_kv is required (cross-attention block)")
            x = x + self.cross_attn.attend(self.norm_cross(x), memory_kv, kv_lengths=memory_lengths)
        return x + self.mlp(self.norm_mlp(x)), self_kv


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
        backward: str = "auto",
        num_kv_heads: int | None = None,
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
                             backend=backend, backward=backward, num_kv_heads=num_kv_heads,
                             rope=positional == "rope",
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

    def _position_at(self, t: Array, max_len: int, dtype: Any) -> Array:
        """The positional encoding of one position ``t`` (traced) as ``[1, 1, d_model]``."""
        if self.positional == "sinusoidal":
            table = _positional.sinusoidal_encoding(max_len, self.d_model, dtype=dtype)
            return jax.lax.dynamic_slice_in_dim(table, t, 1, axis=0)[None]
        if self.positional == "learned":
            return self.position_embedding(jnp.reshape(t, (1, 1))).astype(dtype)
        return jnp.zeros((1, 1, self.d_model), dtype)  # rope (in the attention) or none

    def _run(self, x, lengths, memory, memory_lengths):
        x = self._add_positions(x)
        for block in self.blocks:
            x = block(x, memory, is_causal=self._causal, lengths=lengths,
                      context_lengths=memory_lengths)
        return _zero_padding(self.norm(x), lengths)


class TransformerEncoder(_TransformerStack):
    """Non-causal stack of :class:`TransformerBlock` with padding lengths and a final LayerNorm.

    ``TransformerEncoder(d_model, num_heads, num_layers, *, positional="sinusoidal"|"rope"|
    "learned"|None, max_len=None, mlp_ratio=4, dropout=0.0, backend="auto", backward="auto",
    num_kv_heads=None, rngs)``.
    """

    def __call__(self, x: Array, *, lengths: Array | None = None) -> Array:
        """x ``[batch, time, d_model]``, lengths ``[batch]`` -> ``[batch, time, d_model]``.

        Valid positions do not depend on padded ones; padded outputs are zero.
        """
        _check_features("TransformerEncoder", "x", x, self.d_model)
        lengths = _check_lengths("TransformerEncoder", "lengths", lengths, x.shape[0], x.shape[1])
        return self._run(x, lengths, None, None)


class TransformerDecoder(_TransformerStack):
    """Causal self-attention [+ cross-attention to ``memory``] + MLP blocks, final LayerNorm.

    ``TransformerDecoder(d_model, num_heads, num_layers, *, cross_attention=True, positional=...,
    max_len=None, mlp_ratio=4, dropout=0.0, backend="auto", backward="auto", num_kv_heads=None,
    rngs)``. With
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
        lengths = _check_lengths(name, "lengths", lengths, x.shape[0], x.shape[1])
        if self.cross_attention:
            if memory is None:
                raise ValueError(f"{name}: memory [batch, mem_time, d_model] is required"
                                 " (built with cross_attention=True)")
            _check_features(name, "memory", memory, self.d_model)
            memory_lengths = _check_lengths(name, "memory_lengths", memory_lengths, memory.shape[0],
                                            memory.shape[1])
        elif memory is not None:
            raise ValueError(f"{name}: memory given but built with cross_attention=False")
        return self._run(x, lengths, memory, memory_lengths)

    # ---- incremental decoding ----------------------------------------------------------------
    def init_cache(self, batch: int, max_len: int, memory: Array | None = None,
                   memory_lengths: Array | None = None, dtype: Any = jnp.float32) -> DecoderCache:
        """The state before the first decoded position: empty key/value caches of ``max_len`` positions,
        and (with cross-attention) each block's keys/values of ``memory [batch, mem_time, d_model]``."""
        name = "TransformerDecoder.init_cache"
        if self.max_len is not None and max_len > self.max_len:
            raise ValueError(f"{name}: max_len={max_len} exceeds the decoder's max_len={self.max_len}")
        self_kv = tuple(b.attn.init_cache(batch, max_len, dtype) for b in self.blocks)
        if self.cross_attention:
            if memory is None:
                raise ValueError(f"{name}: memory [batch, mem_time, d_model] is required (cross_attention=True)")
            _check_features(name, "memory", memory, self.d_model)
            memory_lengths = _check_lengths(name, "memory_lengths", memory_lengths, memory.shape[0], memory.shape[1])
            if memory_lengths is None:
                memory_lengths = jnp.full((memory.shape[0],), memory.shape[1], jnp.int32)
            memory_kv = tuple(b.cross_attn.project_kv(memory) for b in self.blocks)
        else:
            memory_kv = ()
            memory_lengths = jnp.zeros((batch,), jnp.int32)
        return DecoderCache(self_kv, memory_kv, jnp.asarray(memory_lengths, jnp.int32))

    def decode_step(self, x: Array, cache: DecoderCache, t: Array) -> tuple[Array, DecoderCache]:
        """Position ``t`` of the sequence: ``x [batch, 1, d_model]`` (the embedded token) -> (``[batch, 1,
        d_model]`` after the final LayerNorm, the advanced cache). Equals row ``t`` of ``__call__`` in eval
        mode, at a cost linear (not quadratic) in the decoded length: earlier positions are not recomputed."""
        _check_features("TransformerDecoder.decode_step", "x", x, self.d_model)
        t = jnp.asarray(t, jnp.int32)
        max_len = cache.self_kv[0].k.shape[1]
        x = x + self._position_at(t, max_len, x.dtype)
        new_kv = []
        for i, block in enumerate(self.blocks):
            mem = cache.memory_kv[i] if self.cross_attention else None
            x, kv = block.decode_step(x, cache.self_kv[i], t, mem, cache.memory_lengths)
            new_kv.append(kv)
        return self.norm(x), cache._replace(self_kv=tuple(new_kv))
