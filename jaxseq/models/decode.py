"""Greedy and beam search, written once over any decoder state (as flax's wmt/decode.py).

A model decodes through one function::

    step_fn(tokens [n] int32, cache, t int32 scalar) -> (log_probs [n, vocab] float32, cache)

that reads the last token of each of ``n`` hypotheses and its incremental state (``cache``: any pytree whose
leaves all have the hypotheses as their leading axis: an LSTM's carry, a Transformer's key/value cache), and
returns the next-token log-probabilities and the advanced state. ``beam_search`` tiles the batch's cache to
``batch * beam`` rows and reorders it as hypotheses move between beams; both searches run in one
``lax.while_loop`` of at most ``max_len`` steps, so a jitted search compiles once per (batch, max_len, cache
shape) and stops early when every hypothesis is done.

Length normalisation is GNMT's: ``score = log p(Y) / ((5 + |Y|) / 6) ** alpha`` (|Y| counts EOS). A per-row
``max_lengths`` (e.g. ``ceil(ratio * source length) + 10``) forces EOS at that many output tokens.
Outputs are ``[..., max_len]`` int32 token ids without BOS, PAD (0) after the first EOS.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
StepFn = Callable[[Array, Any, Array], tuple[Array, Any]]
ReorderFn = Callable[[Any, Array], Any]

__all__ = ["StepFn", "ReorderFn", "greedy_search", "beam_search", "gather_rows", "length_penalty",
           "max_lengths_from_ratio"]

_NEG = -1.0e9  # a log-probability no real hypothesis reaches, finite so that sums stay ordered


def length_penalty(length: Array, alpha: float) -> Array:
    """GNMT's length normaliser ``((5 + length) / 6) ** alpha``."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def max_lengths_from_ratio(src_lengths: Array, ratio: float, extra: int, max_len: int) -> Array:
    """Per-row output limits ``min(max_len, ceil(ratio * src_length) + extra)``, int32 ``[batch]``."""
    if ratio <= 0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    lim = jnp.ceil(ratio * jnp.asarray(src_lengths, jnp.float32)).astype(jnp.int32) + int(extra)
    return jnp.clip(lim, 1, max_len)


def _check(batch_size: int, max_len: int, bos: int, eos: int, max_lengths: Array | None) -> Array:
    for name, v in (("batch_size", batch_size), ("max_len", max_len)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if bos == eos:
        raise ValueError(f"bos and eos must differ, got {bos} for both")
    if max_lengths is None:
        return jnp.full((batch_size,), max_len, jnp.int32)
    max_lengths = jnp.asarray(max_lengths, jnp.int32)
    if max_lengths.shape != (batch_size,):
        raise ValueError(f"max_lengths must be [batch_size={batch_size}], got shape {max_lengths.shape}")
    return jnp.clip(max_lengths, 1, max_len)


def _force_eos(log_probs: Array, force: Array, eos: int) -> Array:
    """Rows where ``force``: only EOS is possible (keeping its model log-probability for the score)."""
    only_eos = jnp.full_like(log_probs, _NEG).at[:, eos].set(log_probs[:, eos])
    return jnp.where(force[:, None], only_eos, log_probs)


def greedy_search(step_fn: StepFn, cache: Any, *, batch_size: int, max_len: int, bos: int = 2, eos: int = 3,
                  max_lengths: Array | None = None) -> Array:
    """Most likely next token at every step: ``[batch, max_len]`` int32 (PAD=0 after EOS)."""
    limits = _check(batch_size, max_len, bos, eos, max_lengths)

    def cond(state):
        t, _, _, done, _ = state
        return (t < max_len) & ~jnp.all(done)

    def body(state):
        t, last, out, done, cache = state
        logp, cache = step_fn(last, cache, t)
        logp = _force_eos(logp.astype(jnp.float32), t + 1 >= limits, eos)
        tok = jnp.argmax(logp, axis=-1).astype(jnp.int32)
        tok = jnp.where(done, 0, tok)
        out = out.at[:, t].set(tok)
        return t + 1, tok, out, done | (tok == eos), cache

    init = (jnp.int32(0), jnp.full((batch_size,), bos, jnp.int32), jnp.zeros((batch_size, max_len), jnp.int32),
            jnp.zeros((batch_size,), bool), cache)
    return lax.while_loop(cond, body, init)[2]


def gather_rows(cache: Any, index: Array) -> Any:
    """Every leaf's rows ``index [n]``: the default reordering of a cache as hypotheses move between beams."""
    return jax.tree.map(lambda x: x[index], cache)


def _tile(cache: Any, beam: int) -> Any:
    return jax.tree.map(lambda x: jnp.repeat(x, beam, axis=0), cache)


def _gather_beams(x: Array, index: Array) -> Array:
    """x [batch, beams, ...], index [batch, k] -> [batch, k, ...]."""
    return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


def beam_search(step_fn: StepFn, cache: Any, *, batch_size: int, max_len: int, beam_size: int = 5,
                alpha: float = 0.6, bos: int = 2, eos: int = 3,
                max_lengths: Array | None = None,
                reorder_cache: ReorderFn | None = None) -> tuple[Array, Array]:
    """Beam search: (sequences ``[batch, beam, max_len]`` best first, scores ``[batch, beam]``).

    ``cache`` is the batch's decoder state with ``batch_size`` rows; it is tiled to ``batch * beam`` rows.
    Finished hypotheses (ended by EOS) are kept apart from the ``beam`` alive ones; the search stops when no
    alive hypothesis can beat the worst finished one of its row (its log-probability only falls, and the length
    normaliser is at most that of ``max_len``). Rows with no finished hypothesis return their alive ones.

    ``reorder_cache(cache, index [batch * beam]) -> cache`` moves the state with the hypotheses (default
    :func:`gather_rows`: every leaf). A cache holding per-sentence constants (an encoder's memory, the same for
    all beams of a sentence, which a reordering only ever moves within its sentence) can leave them in place:
    the gather is a copy of the whole cache at every step.
    """
    limits = _check(batch_size, max_len, bos, eos, max_lengths)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    B, K, L = batch_size, beam_size, max_len
    reorder = gather_rows if reorder_cache is None else reorder_cache
    row_limit = jnp.repeat(limits, K)
    max_norm = length_penalty(limits, alpha)  # [B]: the largest normaliser a row can still reach

    def cond(s):
        t, _, alive_logp, _, fin_scores, fin_flags, _ = s
        best_alive = alive_logp[:, 0] / max_norm
        worst_fin = jnp.where(fin_flags, fin_scores, jnp.inf).min(axis=1)
        row_done = jnp.all(fin_flags, axis=1) & (best_alive <= worst_fin)
        return (t < L) & ~jnp.all(row_done)

    def body(s):
        t, alive_seq, alive_logp, fin_seq, fin_scores, fin_flags, cache = s
        last = jnp.where(t == 0, bos, alive_seq[:, :, jnp.maximum(t - 1, 0)]).reshape(B * K)
        logp, cache = step_fn(last.astype(jnp.int32), cache, t)
        V = logp.shape[-1]
        logp = _force_eos(logp.astype(jnp.float32), t + 1 >= row_limit, eos).reshape(B, K, V)
        cand = (alive_logp[:, :, None] + logp).reshape(B, K * V)
        top_logp, top_idx = lax.top_k(cand, 2 * K)
        src_beam = top_idx // V
        tok = (top_idx % V).astype(jnp.int32)
        top_seq = _gather_beams(alive_seq, src_beam).at[:, :, t].set(tok)
        ended = tok == eos
        # Alive: the best K candidates that did not end.
        alive_logp2, keep = lax.top_k(jnp.where(ended, _NEG, top_logp), K)
        alive_seq2 = _gather_beams(top_seq, keep)
        origin = _gather_beams(src_beam, keep)
        flat = (jnp.arange(B)[:, None] * K + origin).reshape(B * K)
        cache = reorder(cache, flat)
        # Finished: merge the candidates that ended with those already kept, best K by normalised score.
        new_scores = jnp.where(ended & (top_logp > _NEG / 2), top_logp / length_penalty(t + 1, alpha), -jnp.inf)
        all_scores = jnp.concatenate([jnp.where(fin_flags, fin_scores, -jnp.inf), new_scores], axis=1)
        all_seq = jnp.concatenate([fin_seq, top_seq], axis=1)
        fin_scores2, pick = lax.top_k(all_scores, K)
        fin_seq2 = _gather_beams(all_seq, pick)
        return t + 1, alive_seq2, alive_logp2, fin_seq2, fin_scores2, jnp.isfinite(fin_scores2), cache

    alive_logp0 = jnp.tile(jnp.array([0.0] + [_NEG] * (K - 1), jnp.float32), (B, 1))
    init = (jnp.int32(0), jnp.zeros((B, K, L), jnp.int32), alive_logp0, jnp.zeros((B, K, L), jnp.int32),
            jnp.full((B, K), -jnp.inf, jnp.float32), jnp.zeros((B, K), bool), _tile(cache, K))
    _, alive_seq, alive_logp, fin_seq, fin_scores, fin_flags, _ = lax.while_loop(cond, body, init)
    any_fin = fin_flags.any(axis=1)
    seqs = jnp.where(any_fin[:, None, None], fin_seq, alive_seq)
    scores = jnp.where(any_fin[:, None], fin_scores, alive_logp / max_norm[:, None])
    # PAD after the first EOS (a finished sequence's later positions were never written; alive ones may be).
    after = jnp.cumsum(jnp.cumsum(seqs == eos, axis=-1), axis=-1) > 1
    return jnp.where(after, 0, seqs), scores
