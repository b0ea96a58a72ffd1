"""MultiHeadAttention, TransformerBlock/Encoder/Decoder: references, padding, causality, grads."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.nn import MultiHeadAttention, TransformerBlock, TransformerDecoder, TransformerEncoder
from jaxseq.ops import attention as attn_ops
from jaxseq.ops import positional

B, T, S, D, NH = 2, 6, 5, 16, 4


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _x(seed=0, shape=(B, T, D), dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _einsum_mha(m, x, context=None, *, causal=False, kv_lengths=None, rope=False):
    """Hand-written multi-head attention with the module's weights."""
    context = x if context is None else context
    def proj(lin, y):
        out = y @ lin.kernel[...]
        if lin.bias is not None:
            out = out + lin.bias[...]
        return out
    q = proj(m.query, x).reshape(x.shape[0], x.shape[1], NH, D // NH)
    k = proj(m.key, context).reshape(context.shape[0], context.shape[1], NH, D // NH)
    v = proj(m.value, context).reshape(context.shape[0], context.shape[1], NH, D // NH)
    if rope:
        q, k = positional.apply_rope(q), positional.apply_rope(k)
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D // NH)
    allowed = jnp.ones(s.shape, bool)
    if causal:
        allowed &= jnp.tril(jnp.ones((x.shape[1], context.shape[1]), bool))
    if kv_lengths is not None:
        allowed &= (jnp.arange(context.shape[1])[None, :] < kv_lengths[:, None])[:, None, None]
    s = jnp.where(allowed, s, -jnp.inf)
    p = jax.nn.softmax(s, axis=-1)
    y = jnp.einsum("bhqk,bkhd->bqhd", p, v).reshape(x.shape)
    return proj(m.out, y)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_einsum(causal):
    m = MultiHeadAttention(D, NH, backend="naive", rngs=nnx.Rngs(0))
    x = _x()
    lengths = jnp.array([6, 4])
    got = m(x, is_causal=causal, kv_lengths=lengths)
    want = _einsum_mha(m, x, causal=causal, kv_lengths=lengths)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mha_cross_attention_and_rope():
    m = MultiHeadAttention(D, NH, backend="naive", rope=True, qkv_bias=False, rngs=nnx.Rngs(1))
    assert m.query.bias is None
    x, ctx = _x(1), _x(2, (B, S, D))
    np.testing.assert_allclose(m(x), _einsum_mha(m, x, rope=True), rtol=1e-5, atol=1e-5)
    # cross-attention ignores rope (see the class docstring)
    np.testing.assert_allclose(m(x, ctx, kv_lengths=jnp.array([5, 2])),
                               _einsum_mha(m, x, ctx, kv_lengths=jnp.array([5, 2])),
                               rtol=1e-5, atol=1e-5)


def test_mha_backends_agree():
    x = _x(3)
    lengths = jnp.array([6, 3])
    ref = MultiHeadAttention(D, NH, backend="naive", rngs=nnx.Rngs(2))
    want = ref(x, is_causal=True, kv_lengths=lengths)
    cpu_backends = [b for b in attn_ops.ATTENTION_BACKENDS if b not in ("naive", "cudnn")]
    for backend in cpu_backends:
        m = MultiHeadAttention(D, NH, backend=backend, rngs=nnx.Rngs(2))
        np.testing.assert_allclose(m(x, is_causal=True, kv_lengths=lengths), want,
                                   rtol=1e-4, atol=1e-5, err_msg=backend)


@pytest.mark.parametrize("positional_kind", ["sinusoidal", "rope", "learned", None])
def test_encoder_padding_invariance(positional_kind):
    enc = TransformerEncoder(D, NH, 2, positional=positional_kind, max_len=8, rngs=nnx.Rngs(4))
    x = _x(4)
    lengths = jnp.array([6, 3])
    y = enc(x, lengths=lengths)
    assert y.shape == (B, T, D)
    x2 = x.at[1, 3:].set(7.0)  # change the padding only
    y2 = enc(x2, lengths=lengths)
    np.testing.assert_allclose(y[1, :3], y2[1, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[1, :3], enc(x[1:, :3])[0], rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(y[1, 3:]).max()) == 0.0


@pytest.mark.parametrize("cross", [True, False])
def test_decoder_causality(cross):
    dec = TransformerDecoder(D, NH, 2, cross_attention=cross, rngs=nnx.Rngs(5))
    x = _x(5)
    mem = _x(6, (B, S, D)) if cross else None
    y = dec(x, mem)
    x2 = x.at[:, 4:].set(_x(7)[:, 4:])  # change the future
    y2 = dec(x2, mem)
    np.testing.assert_allclose(y[:, :4], y2[:, :4], rtol=1e-5, atol=1e-5)
    assert not np.allclose(y[:, 4:], y2[:, 4:])


def test_decoder_memory_padding():
    dec = TransformerDecoder(D, NH, 1, positional="learned", max_len=T, rngs=nnx.Rngs(6))
    x, mem = _x(8), _x(9, (B, S, D))
    mem_lengths = jnp.array([5, 2])
    y = dec(x, mem, memory_lengths=mem_lengths)
    y2 = dec(x, mem.at[1, 2:].set(3.0), memory_lengths=mem_lengths)
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[1], dec(x[1:], mem[1:, :2])[0], rtol=1e-5, atol=1e-5)


def test_block_structure_pre_norm():
    """x + attn(LN(x)) then + MLP(LN(x)), checked against the submodules."""
    blk = TransformerBlock(D, NH, rngs=nnx.Rngs(7))
    x = _x(10)
    h = x + blk.attn(blk.norm_attn(x))
    want = h + blk.mlp.fc2(jax.nn.gelu(blk.mlp.fc1(blk.norm_mlp(h))))
    np.testing.assert_allclose(blk(x), want, rtol=1e-5, atol=1e-5)
    assert blk.mlp.fc1.kernel.shape == (D, 4 * D)


def test_dropout_train_eval_and_grads():
    enc = TransformerEncoder(D, NH, 2, dropout=0.3, rngs=nnx.Rngs(0, dropout=1))
    x = _x(11)
    assert not np.allclose(enc(x), enc(x))
    enc.eval()
    np.testing.assert_array_equal(enc(x), enc(x))
    enc.train()

    dec = TransformerDecoder(D, NH, 1, positional="rope", rngs=nnx.Rngs(1))
    mem = _x(12, (B, S, D))
    for model, call in ((enc, lambda m: m(x, lengths=jnp.array([6, 2]))),
                        (dec, lambda m: m(x, mem, lengths=jnp.array([6, 2])))):
        # Compiled: op by op, the gradient was most of this test's time.
        graphdef, state = nnx.split(model)
        grads = jax.jit(lambda st: nnx.grad(lambda m: jnp.sum(call(m) ** 2))(nnx.merge(graphdef, st)),
                        compiler_options=FAST_COMPILE)(state)
        for g in jax.tree.leaves(grads):
            assert bool(jnp.all(jnp.isfinite(g)))
        assert sum(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads)) > 0.9 * len(
            jax.tree.leaves(grads))


def test_bfloat16():
    enc = TransformerEncoder(D, NH, 1, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = enc(_x(13, dtype=jnp.bfloat16), lengths=jnp.array([6, 3]))
    assert y.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(y.astype(jnp.float32))))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(D, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="backend"):
        MultiHeadAttention(D, NH, backend="nope", rngs=nnx.Rngs(0))
    m = MultiHeadAttention(D, NH, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"x must be \[batch, q_time, d_model=16\]"):
        m(jnp.ones((B, T, D + 1)))
    with pytest.raises(ValueError, match="context"):
        m(_x(), jnp.ones((B, S, D - 1)))
    with pytest.raises(ValueError, match="positional"):
        TransformerEncoder(D, NH, 1, positional="alibi", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="max_len"):
        TransformerEncoder(D, NH, 1, positional="learned", rngs=nnx.Rngs(0))
    enc = TransformerEncoder(D, NH, 1, positional="learned", max_len=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="max_len"):
        enc(_x())
    enc = TransformerEncoder(D, NH, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="lengths"):
        enc(_x(), lengths=jnp.array([1, 2, 3]))
    dec = TransformerDecoder(D, NH, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="memory"):
        dec(_x())


def test_out_of_range_lengths_name_the_argument_and_clip_under_jit():
    enc = TransformerEncoder(D, NH, 1, rngs=nnx.Rngs(0))
    x = _x(14)
    for bad in ([7, 2], [-1, 2]):
        with pytest.raises(ValueError, match=r"TransformerEncoder: lengths must lie in \[0, time=6\]") as err:
            enc(x, lengths=jnp.array(bad))
        assert "kv_lengths" not in str(err.value)
    dec = TransformerDecoder(D, NH, 1, rngs=nnx.Rngs(0))
    mem = _x(15, (B, S, D))
    with pytest.raises(ValueError, match=r"TransformerDecoder: memory_lengths must lie in \[0, time=5\]"):
        dec(x, mem, memory_lengths=jnp.array([6, 2]))
    with pytest.raises(ValueError, match=r"TransformerDecoder: lengths must lie in \[0, time=6\]"):
        dec(x, mem, lengths=jnp.array([6, 9]))
    # under jit the values are unknown: documented clipping to [0, time]
    traced = nnx.jit(lambda m, x, lens: m(x, lengths=lens))(enc, x, jnp.array([9, -3]))
    np.testing.assert_allclose(traced, enc(x, lengths=jnp.array([6, 0])), rtol=1e-5, atol=1e-6)
