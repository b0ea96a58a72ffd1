"""Alignment attention of one decoder step over encoder states (Bahdanau / Luong), pure JAX.

The recurrent encoder-decoder's attention reads one query per step (the decoder state) against all encoder
positions, so its keys are projected once per sentence (``*_keys``) and each step costs one score vector:

* additive (Bahdanau et al. 2015): ``score_s = v . tanh(W_q q + W_k k_s)``;
* multiplicative (Luong et al. 2015, "general"): ``score_s = q . (W k_s)``.

Shapes: ``enc [batch, src_time, enc_features]``, ``query [batch, features]``, ``src_mask [batch, src_time]``
(True at real tokens). Scores and the softmax are float32 and padded positions get ``finfo(float32).min``; a
row with no real token gets zero weights (and a zero context) instead of NaN.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["AdditiveParams", "MultiplicativeParams", "SCORES", "init_alignment_params", "alignment_keys",
           "alignment_step", "alignment_reference"]

SCORES = ("additive", "multiplicative")


class AdditiveParams(NamedTuple):
    w_q: Array  # [features, attn]
    w_k: Array  # [enc_features, attn]
    v: Array    # [attn]


class MultiplicativeParams(NamedTuple):
    w: Array    # [enc_features, features]


def init_alignment_params(key: Array, score: str, query_size: int, enc_size: int, attn_size: int | None = None,
                          dtype=jnp.float32) -> AdditiveParams | MultiplicativeParams:
    """Uniform(+-1/sqrt(fan_in)) initial weights for ``score`` in ``SCORES``."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    for name, v in (("query_size", query_size), ("enc_size", enc_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    k1, k2, k3 = jax.random.split(key, 3)

    def u(k, shape, fan_in):
        b = 1.0 / fan_in ** 0.5
        return jax.random.uniform(k, shape, dtype, -b, b)

    if score == "multiplicative":
        return MultiplicativeParams(u(k1, (enc_size, query_size), enc_size))
    attn = attn_size or query_size
    return AdditiveParams(u(k1, (query_size, attn), query_size), u(k2, (enc_size, attn), enc_size), u(k3, (attn,), attn))


def alignment_keys(params: AdditiveParams | MultiplicativeParams, enc: Array) -> Array:
    """Per-sentence projection of the encoder states: ``[batch, src_time, attn]`` (additive) or
    ``[batch, src_time, features]`` (multiplicative)."""
    enc = jnp.asarray(enc)
    if enc.ndim != 3:
        raise ValueError(f"enc must be [batch, src_time, enc_features], got shape {enc.shape}")
    w = params.w_k if isinstance(params, AdditiveParams) else params.w
    return enc @ w.astype(enc.dtype)


def alignment_step(params: AdditiveParams | MultiplicativeParams, query: Array, keys: Array, enc: Array,
                   src_mask: Array) -> tuple[Array, Array]:
    """(context [batch, enc_features], weights [batch, src_time] float32) for one decoder step."""
    with jax.named_scope("attention"):
        if isinstance(params, AdditiveParams):
            q = query @ params.w_q.astype(query.dtype)
            scores = jnp.tanh(q[:, None, :] + keys).astype(jnp.float32) @ params.v.astype(jnp.float32)
        elif isinstance(params, MultiplicativeParams):
            scores = jnp.einsum("bsf,bf->bs", keys, query, preferred_element_type=jnp.float32)
        else:
            raise TypeError(f"params must be AdditiveParams or MultiplicativeParams, got {type(params).__name__}")
        scores = jnp.where(src_mask, scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1)
        weights = jnp.where(src_mask.any(-1, keepdims=True), weights, 0.0)
        context = jnp.einsum("bs,bse->be", weights.astype(enc.dtype), enc)
    return context, weights


def alignment_reference(params, query, enc, src_mask):
    """The same in float64 NumPy, one sentence at a time (for tests)."""
    import numpy as np

    query, enc, src_mask = (np.asarray(a, np.float64) if i < 2 else np.asarray(a)
                            for i, a in enumerate((query, enc, src_mask)))
    ctx, wts = [], []
    for b in range(enc.shape[0]):
        if isinstance(params, AdditiveParams):
            s = np.tanh(query[b] @ np.asarray(params.w_q, np.float64) + enc[b] @ np.asarray(params.w_k, np.float64))
            s = s @ np.asarray(params.v, np.float64)
        else:
            s = (enc[b] @ np.asarray(params.w, np.float64)) @ query[b]
        valid = src_mask[b].astype(bool)
        w = np.zeros_like(s)
        if valid.any():
            e = np.exp(s[valid] - s[valid].max())
            w[valid] = e / e.sum()
        wts.append(w)
        ctx.append(w @ enc[b])
    return np.stack(ctx), np.stack(wts)
