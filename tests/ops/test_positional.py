"""Tests for jaxseq.ops.positional: sinusoidal table and RoPE (vs a float64 loop, relative property)."""

from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops.positional import apply_rope, rope_reference, sinusoidal_encoding


def test_sinusoidal_values():
    L, d = 50, 16
    table = sinusoidal_encoding(L, d)
    assert table.shape == (L, d) and table.dtype == jnp.float32
    pos = np.arange(L)[:, None]
    i = np.arange(d // 2)[None, :]
    angle = pos / 10000.0 ** (2 * i / d)
    expected = np.zeros((L, d))
    expected[:, 0::2] = np.sin(angle)
    expected[:, 1::2] = np.cos(angle)
    np.testing.assert_allclose(np.asarray(table), expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(sinusoidal_encoding(L, d, base=100.0))[:, 2],
                               np.sin(np.arange(L) / 100.0 ** (2 / d)), atol=2e-5)


def test_sinusoidal_dtype_and_errors():
    t = sinusoidal_encoding(300, 8, dtype=jnp.bfloat16)
    assert t.dtype == jnp.bfloat16 and t.shape == (300, 8)
    np.testing.assert_allclose(np.asarray(t, np.float32), np.asarray(sinusoidal_encoding(300, 8)), atol=1e-2)
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_encoding(10, 7)
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_encoding(10, 0)
    with pytest.raises(ValueError, match="length"):
        sinusoidal_encoding(-1, 8)


def _x(shape, dtype=jnp.float32, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32).astype(dtype)


def test_rope_matches_reference():
    x = _x((2, 9, 3, 8))
    np.testing.assert_allclose(np.asarray(apply_rope(x)), rope_reference(np.asarray(x)), atol=2e-5)
    pos = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5], [0, 10, 20, 30, 40, 50, 60, 70, 80]], np.int32)
    np.testing.assert_allclose(np.asarray(apply_rope(x, pos, base=500.0)),
                               rope_reference(np.asarray(x), pos, base=500.0), atol=5e-5)
    np.testing.assert_allclose(np.asarray(apply_rope(x, pos[1])),
                               rope_reference(np.asarray(x), pos[1]), atol=5e-5)
    # position 0 is the identity; norms are preserved
    np.testing.assert_allclose(np.asarray(apply_rope(x))[:, 0], np.asarray(x)[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(apply_rope(x)), axis=-1),
                               np.linalg.norm(np.asarray(x), axis=-1), rtol=1e-5)


def test_rope_relative_position():
    """<rope(q, m), rope(k, n)> depends only on m - n."""
    q = _x((1, 1, 1, 16), seed=1)
    k = _x((1, 1, 1, 16), seed=2)

    def score(m, n):
        qm = apply_rope(q, jnp.array([m]))
        kn = apply_rope(k, jnp.array([n]))
        return float(jnp.sum(qm * kn))

    for m, n in [(5, 2), (13, 10), (103, 100)]:
        assert score(m, n) == pytest.approx(score(3, 0), rel=1e-4, abs=1e-4)
    assert score(7, 7) == pytest.approx(float(jnp.sum(q * k)), rel=1e-5)
    assert abs(score(5, 2) - score(2, 5)) > 1e-3      # but it does depend on the sign of m - n


def test_rope_bf16_and_jit():
    x = _x((2, 6, 2, 4), jnp.bfloat16)
    out = jax.jit(apply_rope)(x)
    assert out.dtype == jnp.bfloat16 and out.shape == x.shape
    np.testing.assert_allclose(np.asarray(out, np.float64), rope_reference(np.asarray(x, np.float32)),
                               atol=3e-2)


def test_rope_bad_shapes():
    with pytest.raises(ValueError, match="x"):
        apply_rope(_x((2, 6, 8)))
    with pytest.raises(ValueError, match="head_dim"):
        apply_rope(_x((1, 6, 2, 5)))
    with pytest.raises(ValueError, match="positions"):
        apply_rope(_x((1, 6, 2, 4)), jnp.arange(5))
    with pytest.raises(ValueError, match="positions"):
        apply_rope(_x((2, 6, 2, 4)), jnp.zeros((3, 6), jnp.int32))
