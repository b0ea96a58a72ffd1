"""Translation models: a GNMT-style recurrent encoder-decoder with attention (Wu et al. 2016; Luong et al.
2015) and a Transformer encoder-decoder (Vaswani et al. 2017), on one decoding interface.

Both take ``src [batch, S]`` ids with ``src_lengths [batch]`` and teacher-forced ``tgt_in [batch, T]`` and return
logits ``[batch, T, tgt_vocab]``; both decode through ``init_cache(src, src_lengths, max_len=...)`` and
``step(tokens [n], cache, t) -> (log_probs, cache)``, which ``translate`` hands to ``jaxseq.models.decode``.

``Seq2SeqAttention(src_vocab, tgt_vocab, *, d_model, encoder_layers, decoder_layers, score, ...)``:

* encoder: a bidirectional LSTM bottom layer (``d_model`` per direction, outputs concatenated), then
  unidirectional LSTMs of width ``d_model``; residual connections from the third layer on (GNMT);
* decoder: stacked LSTMs (residual from the third layer on) whose top state attends over the encoder
  (``score="additive"``: Bahdanau; ``"multiplicative"``: Luong's general score), the attentional vector
  ``a_t = tanh(W_c [context; h_top])`` predicts the next token and, with ``input_feeding``, is fed to the
  bottom decoder layer at the next step (Luong), which makes the decoder sequential in training too;
* dropout on embeddings, between layers and on ``a_t``; optionally the target embedding tied to the softmax.

``__call__(src [batch, S], src_lengths [batch], tgt_in [batch, T]) -> logits [batch, T, tgt_vocab]`` (teacher
forcing). Decoding goes through one step function shared with training (``step``), over an incremental state
(``init_cache``: the LSTM carries, the fed vector, the encoder states and their attention keys), so
``jaxseq.models.decode`` runs greedy and beam search on it. Source padding changes no output: the encoder takes
``src_lengths`` and the attention masks padded positions.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxseq import nn as jnn
from jaxseq.nn.recurrent import OpParams
from jaxseq.nn.signature import init_signature
from jaxseq.ops import alignment as al
from jaxseq.models import decode as _decode
from jaxseq.ops import rnn as ops_rnn

Array = jax.Array

__all__ = ["Seq2SeqAttention", "Seq2SeqCache", "TransformerSeq2Seq", "translate"]


class Seq2SeqCache(NamedTuple):
    """Decoder state, hypotheses on the leading axis of every leaf."""

    h: Array         # [n, layers, d_model]
    c: Array         # [n, layers, d_model]
    feed: Array      # [n, d_model]  last attentional vector (zeros at the start)
    enc: Array       # [n, S, d_model]
    keys: Array      # [n, S, attn]
    src_mask: Array  # [n, S] bool


@init_signature
class Seq2SeqAttention(nnx.Module):
    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        d_model: int = 256,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        score: str = "additive",
        input_feeding: bool = True,
        dropout: float = 0.1,
        tie_embeddings: bool = True,
        rngs: nnx.Rngs,
    ):
        for name, v in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab), ("d_model", d_model),
                        ("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Seq2SeqAttention: {name} must be a positive int, got {v!r}")
        if score not in al.SCORES:
            raise ValueError(f"Seq2SeqAttention: score must be one of {', '.join(al.SCORES)}, got {score!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"Seq2SeqAttention: dropout must be in [0, 1), got {dropout!r}")
        d = d_model
        self.d_model, self.score, self.input_feeding = d, score, bool(input_feeding)
        self.tie_embeddings = bool(tie_embeddings)
        self.src_embed = jnn.Embedding(src_vocab, d, rngs=rngs)
        self.tgt_embed = jnn.Embedding(tgt_vocab, d, rngs=rngs)
        enc = [jnn.LSTM(d, d, bidirectional=True, rngs=rngs)]
        for k in range(1, encoder_layers):
            enc.append(jnn.LSTM(2 * d if k == 1 else d, d, rngs=rngs))
        self.encoder = nnx.List(enc)
        cells = []
        for k in range(decoder_layers):
            width = (2 * d if self.input_feeding else d) if k == 0 else d
            cells.append(OpParams(ops_rnn.init_lstm_params(rngs.params(), width, d)))
        self.decoder = nnx.List(cells)
        enc_width = 2 * d if encoder_layers == 1 else d
        self.enc_width = enc_width
        self.attention = OpParams(al.init_alignment_params(rngs.params(), score, d, enc_width, d))
        self.combine = nnx.Linear(enc_width + d, d, use_bias=False, rngs=rngs)
        self.out = None if self.tie_embeddings else nnx.Linear(d, tgt_vocab, rngs=rngs)
        self.out_bias = nnx.Param(jnp.zeros((tgt_vocab,)))
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    # ---- encoder ---------------------------------------------------------------------------
    def encode(self, src: Array, src_lengths: Array) -> tuple[Array, Array]:
        """(encoder states [batch, S, enc_width], src_mask [batch, S] bool)."""
        src, src_lengths = jnp.asarray(src), jnp.asarray(src_lengths)
        if src.ndim != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(f"src must be [batch, S] and src_lengths [batch], got {src.shape} and {src_lengths.shape}")
        with jax.named_scope("embedding"):
            x = self.dropout(self.src_embed(src))
        for k, layer in enumerate(self.encoder):
            y, _ = layer(x, lengths=src_lengths)
            if k >= 2:  # GNMT: residual connections from the third layer on
                y = y + x
            x = self.dropout(y) if k < len(self.encoder) - 1 else y
        mask = jnp.arange(src.shape[1])[None, :] < src_lengths[:, None]
        return x, mask

    # ---- decoder step, shared by training and decoding --------------------------------------
    def _params(self):
        return ([cell.get() for cell in self.decoder], self.attention.get())

    def _step(self, params, emb: Array, cache: Seq2SeqCache) -> tuple[Array, Seq2SeqCache, Array]:
        """One target position: emb [n, d] -> (attentional vector [n, d], new cache, weights [n, S])."""
        cells, attn = params
        x = jnp.concatenate([emb, cache.feed], axis=-1) if self.input_feeding else emb
        hs, cs = [], []
        with jax.named_scope("recurrence"):
            for k, p in enumerate(cells):
                h, c = ops_rnn.lstm_cell(p, x, cache.h[:, k], cache.c[:, k])
                hs.append(h)
                cs.append(c)
                x = h + x if k >= 2 else h
        context, weights = al.alignment_step(attn, x, cache.keys, cache.enc, cache.src_mask)
        a = jnp.tanh(self.combine(jnp.concatenate([context, x], axis=-1)))
        new = cache._replace(h=jnp.stack(hs, 1), c=jnp.stack(cs, 1), feed=a)
        return a, new, weights

    def _logits(self, a: Array) -> Array:
        with jax.named_scope("output"):
            logits = self.tgt_embed.attend(a) if self.out is None else self.out(a)
            return logits + self.out_bias[...]

    def init_cache(self, src: Array, src_lengths: Array, *, max_len: int | None = None) -> Seq2SeqCache:
        """The decoder state before the first target token (encodes the source; ``max_len`` is not needed:
        the recurrent state does not grow with the output)."""
        enc, mask = self.encode(src, src_lengths)
        n, L, d = enc.shape[0], len(self.decoder), self.d_model
        zeros = jnp.zeros((n, L, d), enc.dtype)
        return Seq2SeqCache(zeros, zeros, jnp.zeros((n, d), enc.dtype), enc,
                            al.alignment_keys(self.attention.get(), enc), mask)

    @staticmethod
    def reorder_cache(cache: Seq2SeqCache, index: Array) -> Seq2SeqCache:
        """Beam search's reordering: the recurrent state follows its hypotheses; the encoder states, keys and
        mask are the same for every beam of a sentence and stay in place."""
        return cache._replace(h=cache.h[index], c=cache.c[index], feed=cache.feed[index])

    def step(self, tokens: Array, cache: Seq2SeqCache, t: Array | None = None) -> tuple[Array, Seq2SeqCache]:
        """``jaxseq.models.decode`` step: tokens [n] -> (log-probs [n, tgt_vocab] float32, cache)."""
        with jax.named_scope("embedding"):
            emb = self.tgt_embed(tokens)
        a, cache, _ = self._step(self._params(), emb, cache)
        return jax.nn.log_softmax(self._logits(a).astype(jnp.float32), axis=-1), cache

    def __call__(self, src: Array, src_lengths: Array, tgt_in: Array, *,
                 return_attention: bool = False) -> Array | tuple[Array, Array]:
        """Teacher-forced logits [batch, T, tgt_vocab] (and attention weights [batch, T, S] if asked)."""
        tgt_in = jnp.asarray(tgt_in)
        if tgt_in.ndim != 2 or tgt_in.shape[0] != jnp.shape(src)[0]:
            raise ValueError(f"tgt_in must be [batch={jnp.shape(src)[0]}, T], got shape {tgt_in.shape}")
        cache = self.init_cache(src, src_lengths)
        with jax.named_scope("embedding"):
            emb = self.dropout(self.tgt_embed(tgt_in))
        params = self._params()

        def body(carry, e):
            a, carry, w = self._step(params, e, carry)
            return carry, (a, w)

        # The input-fed decoder is sequential: one scan over target positions.
        _, (a, w) = jax.lax.scan(body, cache, jnp.swapaxes(emb, 0, 1))
        a = self.dropout(jnp.swapaxes(a, 0, 1))
        logits = self._logits(a)
        return (logits, jnp.swapaxes(w, 0, 1)) if return_attention else logits


@init_signature
class TransformerSeq2Seq(nnx.Module):
    """Pre-norm Transformer encoder-decoder (``jaxseq.nn.TransformerEncoder``/``TransformerDecoder``).

    Token embeddings are scaled by ``sqrt(d_model)`` and get sinusoidal (or learned / RoPE) positions;
    ``shared_embeddings`` uses one table for source and target (a joint vocabulary: ``src_vocab ==
    tgt_vocab``), ``tie_embeddings`` reuses the target table as the output layer. Decoding keeps each
    decoder block's keys/values (``jaxseq.nn.DecoderCache``): a step costs one position, not a recomputation
    of the prefix.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        d_model: int = 256,
        num_heads: int = 4,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 256,
        shared_embeddings: bool = False,
        tie_embeddings: bool = True,
        rngs: nnx.Rngs,
    ):
        for name, v in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab), ("d_model", d_model),
                        ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TransformerSeq2Seq: {name} must be a positive int, got {v!r}")
        if shared_embeddings and src_vocab != tgt_vocab:
            raise ValueError(f"TransformerSeq2Seq: shared_embeddings needs one vocabulary, got src_vocab={src_vocab}"
                             f" and tgt_vocab={tgt_vocab}")
        self.d_model, self.max_len = d_model, max_len
        self.shared_embeddings, self.tie_embeddings = bool(shared_embeddings), bool(tie_embeddings)
        self.tgt_embed = jnn.Embedding(tgt_vocab, d_model, rngs=rngs)
        self.src_embed = None if self.shared_embeddings else jnn.Embedding(src_vocab, d_model, rngs=rngs)
        common = dict(positional=positional, max_len=max_len, mlp_ratio=mlp_ratio, dropout=dropout, rngs=rngs)
        self.encoder = jnn.TransformerEncoder(d_model, num_heads, encoder_layers, **common)
        self.decoder = jnn.TransformerDecoder(d_model, num_heads, decoder_layers, cross_attention=True, **common)
        self.out = None if self.tie_embeddings else nnx.Linear(d_model, tgt_vocab, rngs=rngs)
        self.out_bias = nnx.Param(jnp.zeros((tgt_vocab,)))

    def _embed(self, table: jnn.Embedding, ids: Array) -> Array:
        with jax.named_scope("embedding"):
            return table(ids) * jnp.sqrt(jnp.float32(self.d_model))

    def _logits(self, y: Array) -> Array:
        with jax.named_scope("output"):
            logits = self.tgt_embed.attend(y) if self.out is None else self.out(y)
            return logits + self.out_bias[...]

    def encode(self, src: Array, src_lengths: Array) -> tuple[Array, Array]:
        """(memory [batch, S, d_model], src_lengths)."""
        src, src_lengths = jnp.asarray(src), jnp.asarray(src_lengths)
        if src.ndim != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(f"src must be [batch, S] and src_lengths [batch], got {src.shape} and {src_lengths.shape}")
        table = self.tgt_embed if self.shared_embeddings else self.src_embed
        return self.encoder(self._embed(table, src), lengths=src_lengths), src_lengths

    def __call__(self, src: Array, src_lengths: Array, tgt_in: Array, *,
                 tgt_lengths: Array | None = None) -> Array:
        """Teacher-forced logits ``[batch, T, tgt_vocab]``."""
        tgt_in = jnp.asarray(tgt_in)
        if tgt_in.ndim != 2 or tgt_in.shape[0] != jnp.shape(src)[0]:
            raise ValueError(f"tgt_in must be [batch={jnp.shape(src)[0]}, T], got shape {tgt_in.shape}")
        memory, src_lengths = self.encode(src, src_lengths)
        y = self.decoder(self._embed(self.tgt_embed, tgt_in), memory, lengths=tgt_lengths,
                         memory_lengths=src_lengths)
        return self._logits(y)

    def cross_attention_weights(self, src: Array, src_lengths: Array, tgt_in: Array, *, layer: int = -1,
                                head: int = 0) -> Array:
        """One cross-attention head's weights ``[batch, T, S]`` (float32) in decoder block ``layer``, for plots."""
        memory, src_lengths = self.encode(src, src_lengths)
        dec = self.decoder
        layer = range(len(dec.blocks))[layer]
        x = dec._add_positions(self._embed(self.tgt_embed, jnp.asarray(tgt_in)))
        for i, block in enumerate(dec.blocks):
            if i == layer:
                h = x + block.attn(block.norm_attn(x), is_causal=True)
                ca = block.cross_attn
                q = ca._heads(ca.query(block.norm_cross(h)))[:, :, head]
                k = ca._heads(ca.key(memory))[:, :, head * ca.num_kv_heads // ca.num_heads]
                scores = jnp.einsum("btd,bsd->bts", q, k, preferred_element_type=jnp.float32) / jnp.sqrt(
                    jnp.float32(ca.head_dim))
                valid = jnp.arange(memory.shape[1])[None, None, :] < src_lengths[:, None, None]
                return jax.nn.softmax(jnp.where(valid, scores, jnp.finfo(jnp.float32).min), axis=-1)
            x = block(x, memory, is_causal=True, context_lengths=src_lengths)
        raise AssertionError("unreachable")

    def init_cache(self, src: Array, src_lengths: Array, *, max_len: int) -> jnn.DecoderCache:
        """Encodes the source and projects each decoder block's cross-attention keys/values once."""
        memory, src_lengths = self.encode(src, src_lengths)
        return self.decoder.init_cache(memory.shape[0], max_len, memory, src_lengths, dtype=memory.dtype)

    @staticmethod
    def reorder_cache(cache: jnn.DecoderCache, index: Array) -> jnn.DecoderCache:
        """Beam search's reordering: the decoded positions' keys/values follow their hypotheses; the memory's
        keys/values and lengths are the same for every beam of a sentence and stay in place."""
        return cache._replace(self_kv=_decode.gather_rows(cache.self_kv, index))

    def step(self, tokens: Array, cache: jnn.DecoderCache, t: Array) -> tuple[Array, jnn.DecoderCache]:
        """``jaxseq.models.decode`` step: tokens [n] -> (log-probs [n, tgt_vocab] float32, cache)."""
        y, cache = self.decoder.decode_step(self._embed(self.tgt_embed, tokens[:, None]), cache, t)
        return jax.nn.log_softmax(self._logits(y[:, 0]).astype(jnp.float32), axis=-1), cache


def translate(model: Seq2SeqAttention | TransformerSeq2Seq, src: Array, src_lengths: Array, *, max_len: int,
              beam_size: int = 5, alpha: float = 0.6, max_len_ratio: float = 1.5, max_len_extra: int = 10,
              bos: int = 2, eos: int = 3) -> Array:
    """Best translation per source sentence: ``[batch, max_len]`` ids (PAD after EOS).

    ``beam_size=1`` is greedy search. Each row stops by ``ceil(max_len_ratio * src_length) + max_len_extra``
    output tokens (at most ``max_len``). Jit it (e.g. ``nnx.jit(translate, static_argnames=...)``) to compile
    once per (batch, source width, max_len).
    """
    batch = int(jnp.shape(src)[0])
    cache = model.init_cache(src, src_lengths, max_len=max_len)
    limits = _decode.max_lengths_from_ratio(src_lengths, max_len_ratio, max_len_extra, max_len)
    if beam_size == 1:
        return _decode.greedy_search(model.step, cache, batch_size=batch, max_len=max_len, bos=bos, eos=eos,
                                     max_lengths=limits)
    seqs, _ = _decode.beam_search(model.step, cache, batch_size=batch, max_len=max_len, beam_size=beam_size,
                                  alpha=alpha, bos=bos, eos=eos, max_lengths=limits,
                                  reorder_cache=model.reorder_cache)
    return seqs[:, 0]
