"""Bahdanau / Luong alignment attention (jaxseq.ops.alignment) against a float64 NumPy loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxseq.ops import alignment as al


@pytest.mark.parametrize("score", al.SCORES)
def test_matches_float64_reference_with_padding(score):
    k = jax.random.split(jax.random.key(0), 3)
    p = al.init_alignment_params(k[0], score, 8, 6, 5)
    enc = jax.random.normal(k[1], (3, 7, 6))
    q = jax.random.normal(k[2], (3, 8))
    mask = jnp.arange(7)[None] < jnp.array([7, 3, 0])[:, None]
    ctx, w = al.alignment_step(p, q, al.alignment_keys(p, enc), enc, mask)
    rctx, rw = al.alignment_reference(p, q, enc, mask)
    assert ctx.shape == (3, 6) and w.shape == (3, 7) and w.dtype == jnp.float32
    np.testing.assert_allclose(w, rw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ctx, rctx, rtol=1e-5, atol=1e-6)
    assert float(w[1, 3:].sum()) == 0.0 and not np.any(np.asarray(w[2]))  # padding and empty rows


@pytest.mark.parametrize("score", al.SCORES)
def test_gradients(score):
    k = jax.random.split(jax.random.key(1), 3)
    p = al.init_alignment_params(k[0], score, 4, 3)
    enc = jax.random.normal(k[1], (2, 5, 3))
    q = jax.random.normal(k[2], (2, 4))
    mask = jnp.arange(5)[None] < jnp.array([5, 2])[:, None]

    def f(p, q, enc):
        return al.alignment_step(p, q, al.alignment_keys(p, enc), enc, mask)[0]

    check_grads(f, (p, q, enc), order=1, modes=["rev"], atol=5e-2, rtol=5e-2)


def test_bad_input():
    with pytest.raises(ValueError, match="score must be one of"):
        al.init_alignment_params(jax.random.key(0), "dot", 4, 4)
    p = al.init_alignment_params(jax.random.key(0), "additive", 4, 4)
    with pytest.raises(ValueError, match="enc must be"):
        al.alignment_keys(p, jnp.zeros((2, 4)))
