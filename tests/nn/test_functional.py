"""jaxseq.nn.pure: the (apply_fn, params) form under jax.jit and jax.grad."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxseq.nn
from jaxseq.nn import LSTM, Embedding, TransformerEncoder, pure


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def test_exported():
    assert jaxseq.nn.pure is pure


def test_pure_matches_module_under_jit_and_grad():
    m = LSTM(3, 4, num_layers=2, bidirectional=True, dropout=0.5, rngs=nnx.Rngs(0, dropout=1))
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    lengths = jnp.array([5, 2])
    apply_fn, params = pure(m)

    def loss_pure(p):
        y, _ = apply_fn(p, x, lengths=lengths)
        return jnp.sum(y ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss_pure))(params)
    m.eval()  # the pure form without rng is deterministic: compare with eval mode

    def loss_mod(model):
        y, _ = model(x, lengths=lengths)
        return jnp.sum(y ** 2)

    want_value, want_grads = nnx.value_and_grad(loss_mod)(m)
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
        assert bool(jnp.all(jnp.isfinite(g)))


def test_pure_dropout_with_rng_under_grad():
    m = TransformerEncoder(8, 2, 1, dropout=0.5, rngs=nnx.Rngs(0, dropout=1))
    x = jax.random.normal(jax.random.key(1), (2, 4, 8))
    apply_fn, params = pure(m)
    det1, det2 = apply_fn(params, x), apply_fn(params, x)
    np.testing.assert_array_equal(det1, det2)
    a = apply_fn(params, x, rng=jax.random.key(1))
    b = apply_fn(params, x, rng=jax.random.key(2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, apply_fn(params, x, rng=jax.random.key(1)))

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(p, key):
        return jax.grad(lambda q: jnp.sum(apply_fn(q, x, rng=key) ** 2))(p)

    g = step(params, jax.random.key(3))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))
    assert not m.blocks[0].dropout.deterministic  # the original module is untouched


def test_frozen_embedding_not_in_params():
    emb = Embedding.from_pretrained(np.eye(4, dtype=np.float32), freeze=True)
    apply_fn, params = pure(emb)
    assert not jax.tree.leaves(params)
    np.testing.assert_array_equal(apply_fn(params, jnp.array([2])), np.eye(4)[2:3])
