"""Grouped-query / multi-query attention: fewer k/v heads than query heads, in every backend.

The reference is the ungrouped float64 NumPy attention on k/v with every head repeated
heads // kv_heads times (jax.nn's convention: query head h uses kv head h // group), forward and
gradients (the gradient of a shared k/v head sums over its query heads).
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops.attention import ATTENTION_BACKENDS, attention

CPU_BACKENDS = [b for b in ATTENTION_BACKENDS if b != "cudnn"]
B, TQ, TK, H, D = 2, 9, 7, 6, 4
KW = dict(is_causal=True, q_lengths=np.array([9, 5], np.int32), kv_lengths=np.array([7, 3], np.int32))


def np_attention(q, k, v, *, mask=None, is_causal=False, q_lengths=None, kv_lengths=None):
    """Float64 NumPy softmax attention with equal head counts; empty or padded rows are zero."""
    q, k, v = (np.asarray(jnp.asarray(x, jnp.float32), np.float64) for x in (q, k, v))
    b, tq, h, d = q.shape
    tk = k.shape[1]
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d)
    valid = np.ones((b, h, tq, tk), bool)
    if is_causal:
        valid &= np.tril(np.ones((tq, tk), bool))
    if q_lengths is not None:
        valid &= (np.arange(tq)[None, :] < np.asarray(q_lengths)[:, None])[:, None, :, None]
    if kv_lengths is not None:
        valid &= (np.arange(tk)[None, :] < np.asarray(kv_lengths)[:, None])[:, None, None, :]
    if mask is not None:
        valid &= np.asarray(mask)
    logits = np.where(valid, logits, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    w = np.where(valid, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = w.sum(-1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0)
    return np.einsum("bhqk,bkhd->bqhd", w, v)


def _qkv(kv_heads, seed=0, dtype=jnp.float32):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    q = jax.random.normal(ks[0], (B, TQ, H, D)).astype(dtype)
    k = jax.random.normal(ks[1], (B, TK, kv_heads, D)).astype(dtype)
    v = jax.random.normal(ks[2], (B, TK, kv_heads, D)).astype(dtype)
    return q, k, v


def _repeat(x, heads=H):
    return jnp.repeat(x, heads // x.shape[2], axis=2)


def _attn(backend, **extra):
    tiles = dict(block_q=4, block_kv=3) if backend == "blockwise" else {}
    return lambda q, k, v: attention(q, k, v, backend=backend, **tiles, **extra)


@pytest.mark.parametrize("kv_heads", [3, 1])        # grouped (2 query heads per kv head), multi-query
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_forward_matches_repeated_heads(backend, kv_heads):
    q, k, v = _qkv(kv_heads)
    out = jax.jit(_attn(backend, **KW))(q, k, v)
    assert out.shape == q.shape
    ref = np_attention(q, _repeat(k), _repeat(v), **KW)
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_match_repeated_heads(backend):
    q, k, v = _qkv(2, seed=1)
    w = jax.random.normal(jax.random.PRNGKey(9), q.shape)
    loss = lambda f: (lambda q, k, v: jnp.sum(f(q, k, v) * w))
    grouped = jax.jit(jax.grad(loss(_attn(backend, **KW)), argnums=(0, 1, 2)))(q, k, v)
    naive_on_repeat = lambda q, k, v: attention(q, _repeat(k), _repeat(v), backend="naive", **KW)
    ref = jax.jit(jax.grad(loss(naive_on_repeat), argnums=(0, 1, 2)))(q, k, v)
    for name, a, r in zip("qkv", grouped, ref):
        assert a.shape == r.shape, name
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), atol=3e-5, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "blockwise"])
@pytest.mark.parametrize("mask_heads", [H, 1])
def test_explicit_mask_per_query_head(backend, mask_heads):
    """A mask's head axis counts query heads: two query heads sharing a kv head may see different keys."""
    q, k, v = _qkv(3, seed=2)
    rng = np.random.default_rng(0)
    mask = rng.random((B, mask_heads, TQ, TK)) < 0.6
    mask[..., 0, :] = False                  # a row with nothing to attend to -> zeros
    out = attention(q, k, v, backend=backend, mask=jnp.asarray(mask), kv_lengths=KW["kv_lengths"])
    ref = np_attention(q, _repeat(k), _repeat(v), mask=mask, kv_lengths=KW["kv_lengths"])
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-5, rtol=1e-5)


def test_blockwise_gqa_bfloat16_and_default_tiles():
    q, k, v = _qkv(2, seed=3, dtype=jnp.bfloat16)
    out = jax.jit(lambda q, k, v: attention(q, k, v, backend="blockwise", is_causal=True))(q, k, v)
    ref = np_attention(q, _repeat(k), _repeat(v), is_causal=True)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("backend", CPU_BACKENDS + ["auto"])
def test_heads_not_a_multiple_is_a_clear_error(backend):
    q, _, _ = _qkv(3)
    _, k, v = _qkv(4)                                   # 6 query heads over 4 kv heads
    with pytest.raises(ValueError, match=r"query heads must be a multiple of .* key/value heads.*q heads 6, "
                                         r"k/v heads 4"):
        attention(q, k, v, backend=backend)
    _, k3, v3 = _qkv(3)
    with pytest.raises(ValueError, match="k and v must have the same number of heads"):
        attention(q, k3, v3[:, :, :1], backend=backend)


def test_cudnn_passes_grouped_heads_through():
    """On a GPU, cuDNN gets the grouped k/v as they are (jax.nn supports it); elsewhere a clear error."""
    q, k, v = _qkv(3, dtype=jnp.bfloat16)
    q, k, v = (jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, 4))) for x in (q, k, v))   # head_dim 8
    if jax.default_backend() != "gpu":
        with pytest.raises(RuntimeError, match="GPU"):
            attention(q, k, v, backend="cudnn")
        return
    out = attention(q, k, v, backend="cudnn", is_causal=True)
    ref = np_attention(q, _repeat(k), _repeat(v), is_causal=True)
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, atol=5e-2, rtol=5e-2)
