"""single_query_attention (one decoding step against a key/value cache) against float64 NumPy and the
dispatched backends: values, grouped heads, padding, empty caches, gradients, dtypes and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops.attention import attention, single_query_attention


def np_single_query(q, k, v, kv_lengths=None, scale=None):
    """Float64 reference: query head h uses kv head h // (heads // kv_heads); an empty cache gives zeros."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b, _, h, d = q.shape
    tk, kh = k.shape[1], k.shape[2]
    k, v = np.repeat(k, h // kh, axis=2), np.repeat(v, h // kh, axis=2)
    logits = np.einsum("bhd,bkhd->bhk", q[:, 0], k) * (1 / np.sqrt(d) if scale is None else scale)
    lens = np.full(b, tk) if kv_lengths is None else np.asarray(kv_lengths)
    valid = np.arange(tk)[None, None, :] < lens[:, None, None]
    logits = np.where(valid, logits, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    w = np.where(valid, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
    return np.einsum("bhk,bkhd->bhd", w, v)[:, None]


def _qkv(b, tk, h, kh, d, dtype=jnp.float32, seed=0):
    ks = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(ks[0], (b, 1, h, d), dtype), jax.random.normal(ks[1], (b, tk, kh, d), dtype),
            jax.random.normal(ks[2], (b, tk, kh, d), dtype))


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (6, 2), (4, 1)])
@pytest.mark.parametrize("lengths", [None, [7, 3, 1, 0]])
def test_equals_float64_reference_and_the_dispatched_kernel(heads, kv_heads, lengths):
    q, k, v = _qkv(4, 7, heads, kv_heads, 8)
    kw = {} if lengths is None else {"kv_lengths": np.array(lengths, np.int32)}
    got = single_query_attention(q, k, v, **kw)
    assert got.shape == (4, 1, heads, 8) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, np_single_query(q, k, v, lengths), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(got, attention(q, k, v, backend="naive", **kw), rtol=2e-5, atol=2e-6)
    if lengths is not None:  # a row whose cache is empty returns zeros, not an average of v
        assert np.all(np.asarray(got)[3] == 0.0)


@pytest.mark.parametrize("lengths", [None, [5], [0]])
def test_a_batch_of_one_takes_the_einsum_kernel_with_the_same_result(lengths):
    q, k, v = _qkv(1, 7, 6, 2, 8, seed=5)
    kw = {} if lengths is None else {"kv_lengths": np.array(lengths, np.int32)}
    got = jax.jit(lambda q, k, v: single_query_attention(q, k, v, **kw))(q, k, v)
    assert got.shape == (1, 1, 6, 8)
    np.testing.assert_allclose(got, np_single_query(q, k, v, lengths), rtol=2e-5, atol=2e-6)


def test_jitted_with_traced_lengths_and_custom_scale():
    q, k, v = _qkv(3, 5, 2, 2, 4, seed=1)
    lens = jnp.array([5, 2, 4], jnp.int32)
    got = jax.jit(lambda q, k, v, l: single_query_attention(q, k, v, kv_lengths=l, scale=0.3))(q, k, v, lens)
    np.testing.assert_allclose(got, np_single_query(q, k, v, lens, scale=0.3), rtol=2e-5, atol=2e-6)


def test_float64_is_exact_and_bfloat16_keeps_its_dtype():
    with jax.enable_x64(True):
        q, k, v = _qkv(2, 6, 4, 2, 4, dtype=jnp.float64, seed=2)
        got = single_query_attention(q, k, v, kv_lengths=np.array([6, 2]))
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, np_single_query(q, k, v, [6, 2]), rtol=1e-12, atol=1e-13)
    q, k, v = _qkv(2, 6, 4, 4, 8, dtype=jnp.bfloat16, seed=3)
    got = single_query_attention(q, k, v)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), np_single_query(q, k, v), rtol=0.05, atol=0.05)


def test_gradients_match_the_reference_kernel():
    q, k, v = _qkv(3, 6, 4, 2, 4, seed=4)
    lens = np.array([6, 3, 1], np.int32)
    w = jax.random.normal(jax.random.key(9), (3, 1, 4, 4))

    def loss(fn):
        return lambda q, k, v: jnp.sum(w * fn(q, k, v, kv_lengths=lens))

    got = jax.grad(loss(single_query_attention), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(loss(lambda *a, **kw: attention(*a, backend="naive", **kw)), argnums=(0, 1, 2))(q, k, v)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_bad_input_names_the_argument():
    q, k, v = _qkv(2, 5, 4, 4, 8)
    with pytest.raises(ValueError, match="one position"):
        single_query_attention(jnp.concatenate([q, q], axis=1), k, v)
    with pytest.raises(ValueError, match="kv_lengths"):
        single_query_attention(q, k, v, kv_lengths=np.array([6, 1]))
    with pytest.raises(TypeError, match="q must be an array"):
        single_query_attention(object(), k, v)
