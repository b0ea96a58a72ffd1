"""MultiHeadAttention / Transformer options: grouped-query heads, backward=, named scopes."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.nn import MultiHeadAttention, TransformerBlock, TransformerDecoder, TransformerEncoder
from jaxseq.ops import attention as attn_ops

B, T, D, NH = 2, 6, 16, 4
HD = D // NH
FIX = r"needs backward='autodiff'"


def _x(seed=0, shape=(B, T, D)):
    return jax.random.normal(jax.random.key(seed), shape)


def _gqa_reference(m, x, kv_heads, *, causal=False, kv_lengths=None):
    """Multi-head attention written out with every k/v head repeated for its query heads."""
    def proj(lin, y):
        return y @ lin.kernel[...] + lin.bias[...]
    q = proj(m.query, x).reshape(B, T, NH, HD)
    k = proj(m.key, x).reshape(B, T, kv_heads, HD)
    v = proj(m.value, x).reshape(B, T, kv_heads, HD)
    k, v = (jnp.repeat(a, NH // kv_heads, axis=2) for a in (k, v))
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(HD)
    allowed = jnp.ones(s.shape, bool)
    if causal:
        allowed &= jnp.tril(jnp.ones((T, T), bool))
    if kv_lengths is not None:
        allowed &= (jnp.arange(T)[None, :] < kv_lengths[:, None])[:, None, None]
    p = jax.nn.softmax(jnp.where(allowed, s, -jnp.inf), axis=-1)
    return proj(m.out, jnp.einsum("bhqk,bkhd->bqhd", p, v).reshape(B, T, D))


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_mha_grouped_query_matches_reference(kv_heads):
    x = _x(1)
    lengths = jnp.array([6, 4])
    m = MultiHeadAttention(D, NH, num_kv_heads=kv_heads, backend="naive", rngs=nnx.Rngs(0))
    assert m.key.kernel.shape == (D, kv_heads * HD) and m.value.kernel.shape == (D, kv_heads * HD)
    assert m.query.kernel.shape == (D, D)
    want = _gqa_reference(m, x, kv_heads, causal=True, kv_lengths=lengths)
    np.testing.assert_allclose(m(x, is_causal=True, kv_lengths=lengths), want, rtol=1e-5, atol=1e-5)
    # the module hands the grouped heads to every backend unchanged (same weights: same rngs)
    for backend in [b for b in attn_ops.ATTENTION_BACKENDS if b not in ("naive", "cudnn")]:
        other = MultiHeadAttention(D, NH, num_kv_heads=kv_heads, backend=backend, rngs=nnx.Rngs(0))
        got = nnx.jit(lambda m, x: m(x, is_causal=True, kv_lengths=lengths))(other, x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=backend)


def test_num_kv_heads_default_and_errors():
    m = MultiHeadAttention(D, NH, rngs=nnx.Rngs(0))
    assert m.num_kv_heads == NH and m.key.kernel.shape == (D, D)
    for bad in (3, 0, True, 2.0):
        with pytest.raises(ValueError, match="num_kv_heads must be None or a positive int dividing num_heads=4"):
            MultiHeadAttention(D, NH, num_kv_heads=bad, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="backward must be one of"):
        MultiHeadAttention(D, NH, backward="reverse", rngs=nnx.Rngs(0))


def test_transformer_stacks_pass_kv_heads_and_backward():
    dec = TransformerDecoder(D, NH, 1, num_kv_heads=1, backward="autodiff", rngs=nnx.Rngs(0))
    blk = dec.blocks[0]
    for attn in (blk.attn, blk.cross_attn):
        assert attn.num_kv_heads == 1 and attn.backward == "autodiff"
        assert attn.key.kernel.shape == (D, HD)
    enc = TransformerEncoder(D, NH, 2, num_kv_heads=2, rngs=nnx.Rngs(0))
    assert all(b.attn.key.kernel.shape == (D, 2 * HD) for b in enc.blocks)
    y = enc(_x(2), lengths=jnp.array([6, 3]))
    assert y.shape == (B, T, D) and bool(jnp.all(jnp.isfinite(y)))


def test_forward_mode_through_modules_with_autodiff():
    """jax.jvp through a blockwise-attention encoder: works with backward="autodiff" (and equals the
    naive backend's jvp); the default names the option."""
    x, t = _x(3), _x(4)
    lengths = jnp.array([6, 4])

    def jvp_of(backend, backward):
        enc = TransformerEncoder(D, NH, 1, backend=backend, backward=backward, num_kv_heads=2,
                                 rngs=nnx.Rngs(5))
        graphdef, state = nnx.split(enc)
        f = lambda state, x: nnx.merge(graphdef, state)(x, lengths=lengths)
        return jax.jit(lambda state, x, t: jax.jvp(lambda x: f(state, x), (x,), (t,))[1])

    tangent = jvp_of("blockwise", "autodiff")
    ref = jvp_of("naive", "auto")
    state = nnx.split(TransformerEncoder(D, NH, 1, num_kv_heads=2, rngs=nnx.Rngs(5)))[1]
    np.testing.assert_allclose(tangent(state, x, t), ref(state, x, t), rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=FIX):
        jvp_of("blockwise", "auto")(state, x, t)
    mha = MultiHeadAttention(D, NH, backend="blockwise", backward="autodiff", rngs=nnx.Rngs(6))
    jac = jax.jacfwd(lambda x: mha(x, is_causal=True))(x[:1, :3])
    assert jac.shape == (1, 3, D, 1, 3, D) and bool(jnp.all(jnp.isfinite(jac)))


def test_named_scopes_mlp_and_attention():
    """The block's GELU runs under "mlp" and its softmax under "attention" (compiled HLO op names)."""
    blk = TransformerBlock(D, NH, backend="naive", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(blk)
    f = lambda state, x: nnx.merge(graphdef, state)(x, is_causal=True)
    hlo = jax.jit(f).lower(state, _x()).compile().as_text()
    names = re.findall(r'op_name="([^"]*)"', hlo)
    gelu = [n for n in names if re.search(r"/(tanh|erf)$", n)]
    softmax = [n for n in names if re.search(r"/exp$", n)]
    assert gelu and all("/mlp/" in n for n in gelu), gelu
    assert softmax and all("/attention/" in n for n in softmax), softmax
