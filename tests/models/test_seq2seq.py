"""GNMT-style encoder-decoder (jaxseq.models.seq2seq): shapes, padding, decode consistency, a toy copy task."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxseq.models import decode as D
from jaxseq.models.seq2seq import Seq2SeqAttention

BOS, EOS = 2, 3


def _model(**kw):
    cfg = dict(d_model=16, encoder_layers=3, decoder_layers=3, dropout=0.0)
    cfg.update(kw)
    m = Seq2SeqAttention(20, 24, rngs=nnx.Rngs(0), **cfg)
    m.eval()
    return m


@pytest.mark.parametrize("kw", [dict(), dict(score="multiplicative"), dict(input_feeding=False, tie_embeddings=False),
                                dict(encoder_layers=1, decoder_layers=1)])
def test_shapes_and_step_equals_teacher_forcing(kw):
    m = _model(**kw)
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.integers(4, 20, (3, 7)), jnp.int32)
    lengths = jnp.array([7, 4, 1])
    tgt_in = jnp.asarray(np.c_[np.full(3, BOS), rng.integers(4, 24, (3, 5))], jnp.int32)
    logits, attn = m(src, lengths, tgt_in, return_attention=True)
    assert logits.shape == (3, 6, 24) and attn.shape == (3, 6, 7)
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-5)
    assert float(jnp.abs(attn[1, :, 4:]).max()) == 0.0  # no weight on source padding
    cache = m.init_cache(src, lengths)
    for t in range(tgt_in.shape[1]):  # incremental decoding reproduces the teacher-forced logits
        logp, cache = m.step(tgt_in[:, t], cache, t)
        np.testing.assert_allclose(logp, jax.nn.log_softmax(logits[:, t]), rtol=1e-4, atol=1e-5)


def test_source_padding_changes_no_output():
    m = _model()
    src = jnp.array([[5, 6, 7, 8]], jnp.int32)
    tgt_in = jnp.array([[BOS, 9, 10]], jnp.int32)
    ref = m(src, jnp.array([4]), tgt_in)
    padded = jnp.array([[5, 6, 7, 8, 0, 0, 0], [11, 12, 13, 14, 15, 16, 17]], jnp.int32)
    out = m(padded, jnp.array([4, 7]), jnp.concatenate([tgt_in, tgt_in]))
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-5, atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="score must be one of"):
        Seq2SeqAttention(10, 10, d_model=8, score="dot", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        Seq2SeqAttention(10, 10, d_model=0, rngs=nnx.Rngs(0))
    m = _model()
    with pytest.raises(ValueError, match="tgt_in must be"):
        m(jnp.zeros((2, 3), jnp.int32), jnp.array([3, 3]), jnp.zeros((3, 2), jnp.int32))


def _copy_batch(rng, n, vocab=12, max_len=5):
    lens = rng.integers(2, max_len + 1, n)
    src = np.zeros((n, max_len), np.int32)
    tgt_in = np.zeros((n, max_len + 1), np.int32)
    tgt_out = np.zeros((n, max_len + 1), np.int32)
    for i, L in enumerate(lens):
        s = rng.integers(4, vocab, L)
        src[i, :L] = s
        tgt_in[i, 0], tgt_in[i, 1:L + 1] = BOS, s
        tgt_out[i, :L], tgt_out[i, L] = s, EOS
    return src, lens.astype(np.int32), tgt_in, tgt_out, lens + 1


@pytest.mark.slow
def test_toy_copy_task_trains_and_decodes_exactly():
    model = Seq2SeqAttention(12, 12, d_model=32, encoder_layers=2, decoder_layers=1, dropout=0.0,
                             rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, opt, src, lens, tgt_in, tgt_out, tgt_lens):
        def loss_fn(model):
            logits = model(src, lens, tgt_in)
            mask = jnp.arange(tgt_in.shape[1])[None] < tgt_lens[:, None]
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
            return jnp.sum(ce * mask) / mask.sum()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    rng = np.random.default_rng(0)
    for step in range(400):
        loss = train_step(model, opt, *map(jnp.asarray, _copy_batch(rng, 32)))
    assert float(loss) < 0.05, float(loss)
    model.eval()
    src, lens, _, tgt_out, _ = _copy_batch(np.random.default_rng(1), 16)

    @nnx.jit
    def decode(model, src, lens):
        cache = model.init_cache(src, lens)
        g = D.greedy_search(model.step, cache, batch_size=16, max_len=8)
        b, _ = D.beam_search(model.step, cache, batch_size=16, max_len=8, beam_size=3)
        return g, b[:, 0]

    g, b = decode(model, jnp.asarray(src), jnp.asarray(lens))
    want = np.zeros((16, 8), np.int32)
    want[:, :tgt_out.shape[1]] = tgt_out
    assert np.array_equal(np.asarray(g), want)
    assert np.array_equal(np.asarray(b), want)
