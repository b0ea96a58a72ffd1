"""Tests for jaxseq.ops.masks: shapes, values, composition and mask_value."""

from __future__ import annotations

import numpy as np
import pytest

import jax.numpy as jnp

from jaxseq.ops.masks import causal_mask, make_attention_mask, mask_value, padding_mask


@pytest.mark.parametrize("q_len,kv_len", [(4, 4), (3, 5), (5, 3), (1, 1), (0, 2)])
def test_causal_mask(q_len, kv_len):
    m = causal_mask(q_len, kv_len)
    assert m.shape == (q_len, kv_len) and m.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(m), np.tril(np.ones((q_len, kv_len), bool)))


def test_padding_mask():
    m = padding_mask(np.array([0, 2, 4], np.int32), 4)
    assert m.shape == (3, 4) and m.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(m), [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    # lengths past max_len just mean "all valid"
    assert bool(jnp.all(padding_mask(jnp.array([6]), 4)))


def test_make_attention_mask():
    assert make_attention_mask(3, 4).shape == (1, 1, 3, 4)
    assert bool(jnp.all(make_attention_mask(3, 4)))
    ql, kl = np.array([2, 3], np.int32), np.array([4, 1], np.int32)
    m = np.asarray(make_attention_mask(3, 4, is_causal=True, q_lengths=ql, kv_lengths=kl))
    assert m.shape == (2, 1, 3, 4) and m.dtype == bool
    tril = np.tril(np.ones((3, 4), bool))
    for b in range(2):
        expected = tril & (np.arange(3)[:, None] < ql[b]) & (np.arange(4)[None, :] < kl[b])
        np.testing.assert_array_equal(m[b, 0], expected)
    assert not m[0, 0, 2].any()          # a padded query row is all False
    assert make_attention_mask(3, 4, kv_lengths=kl).shape == (2, 1, 3, 4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_mask_value(dtype):
    val = mask_value(dtype)
    assert val.dtype == dtype
    assert float(val) == float(jnp.finfo(dtype).min)
    assert np.isfinite(float(val))


def test_bad_inputs():
    with pytest.raises(ValueError, match="q_len"):
        causal_mask(-1, 3)
    with pytest.raises(ValueError, match="kv_len"):
        causal_mask(3, 2.5)
    with pytest.raises(ValueError, match="max_len"):
        padding_mask(np.array([1]), -2)
    with pytest.raises(ValueError, match="lengths"):
        padding_mask(np.array([[1, 2]]), 3)
    with pytest.raises(TypeError, match="lengths"):
        padding_mask(np.array([1.5]), 3)
    with pytest.raises(ValueError, match="q_len"):
        make_attention_mask(True, 3)
