"""Incremental decoding with a key/value cache equals the full causal computation (jaxseq.nn)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.nn import MultiHeadAttention, TransformerDecoder


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("num_kv_heads", [None, 2])
def test_attention_decode_step_equals_causal_call(rope, num_kv_heads):
    mha = MultiHeadAttention(32, 4, num_kv_heads=num_kv_heads, rope=rope, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 32))
    full = mha(x, is_causal=True)
    cache = mha.init_cache(2, 9)
    for t in range(6):
        y, cache = mha.decode_step(x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(y[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    assert cache.k.shape == (2, 9, num_kv_heads or 4, 8) and not np.any(np.asarray(cache.k[:, 6:]))


@pytest.mark.parametrize("positional", ["sinusoidal", "rope", "learned"])
def test_decoder_decode_step_equals_full_call_with_memory(positional):
    dec = TransformerDecoder(32, 4, 2, positional=positional, max_len=16, num_kv_heads=2, rngs=nnx.Rngs(0))
    dec.eval()
    x = jax.random.normal(jax.random.key(1), (3, 7, 32))
    memory = jax.random.normal(jax.random.key(2), (3, 5, 32))
    mem_len = jnp.array([5, 2, 4])
    full = dec(x, memory, memory_lengths=mem_len)
    step = nnx.jit(lambda d, xt, c, t: d.decode_step(xt, c, t))
    cache = dec.init_cache(3, 10, memory, mem_len)
    for t in range(7):
        y, cache = step(dec, x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(y[:, 0], full[:, t], rtol=1e-4, atol=1e-5)


def test_decoder_only_cache_and_errors():
    dec = TransformerDecoder(16, 2, 1, cross_attention=False, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (1, 4, 16))
    full = dec(x)
    cache = dec.init_cache(1, 4)
    for t in range(4):
        y, cache = dec.decode_step(x[:, t:t + 1], cache, t)
    np.testing.assert_allclose(y[:, 0], full[:, 3], rtol=1e-5, atol=1e-5)
    cross = TransformerDecoder(16, 2, 1, max_len=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="memory .* is required"):
        cross.init_cache(1, 4)
    with pytest.raises(ValueError, match="exceeds the decoder's max_len=8"):
        cross.init_cache(1, 9, jnp.zeros((1, 3, 16)))
    with pytest.raises(ValueError, match=r"x must be \[batch, 1, d_model=16\]"):
        dec.blocks[0].attn.decode_step(jnp.zeros((1, 2, 16)), dec.blocks[0].attn.init_cache(1, 4), 0)
