"""GNMT-style encoder-decoder (jaxseq.models.seq2seq): shapes, padding, decode consistency, a toy copy task."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxseq.models import decode as D
from jaxseq.models.seq2seq import Seq2SeqAttention, TransformerSeq2Seq, translate

BOS, EOS = 2, 3

# The checks below run each model computation as one jitted program compiled at XLA's cheapest settings: they
# run once on a few tiny arrays, so compiling is their whole cost (eager mode compiled every op at every shape,
# minutes on 2 CPU cores). Training (the copy task) keeps the default settings: its result depends on them.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
_SAFE_COMPILE = {"xla_backend_optimization_level": 0}  # if this XLA no longer knows the fusion-emitter switch


def _fast_jit(fn, static_argnames=()):
    """``fn(model, *arrays, **static)`` jitted over the model's state, compiled with ``_FAST_COMPILE``."""
    jits = [jax.jit(lambda graphdef, state, *a, **kw: fn(nnx.merge(graphdef, state), *a, **kw),
                    static_argnums=0, static_argnames=static_argnames, compiler_options=opts)
            for opts in (_FAST_COMPILE, _SAFE_COMPILE)]

    def call(model, *args, **kw):
        graphdef, state = nnx.split(model)
        try:
            return jits[0](graphdef, state, *args, **kw)
        except jax.errors.JaxRuntimeError as e:
            if "No such compile option" not in str(e):
                raise
            jits[0] = jits[1]
            return jits[0](graphdef, state, *args, **kw)

    return call


_step = _fast_jit(lambda m, tokens, cache, t: m.step(tokens, cache, t))


def _stepped(m, tgt_in, cache):
    """Incremental log-probs [batch, T, vocab]: one `step` per target position, fed the teacher-forced token
    (one compiled step for every position: the position goes in as an array, as in `translate`)."""
    out = []
    for t in range(tgt_in.shape[1]):
        logp, cache = _step(m, tgt_in[:, t], cache, jnp.asarray(t, jnp.int32))
        out.append(np.asarray(logp))
    return np.stack(out, 1)


def _model(**kw):
    cfg = dict(d_model=16, encoder_layers=3, decoder_layers=3, dropout=0.0)
    cfg.update(kw)
    m = Seq2SeqAttention(20, 24, rngs=nnx.Rngs(0), **cfg)
    m.eval()
    return m


@_fast_jit
def _lstm_forced(m, src, lengths, tgt_in):
    logits, attn = m(src, lengths, tgt_in, return_attention=True)
    return logits, jax.nn.log_softmax(logits), attn, m.init_cache(src, lengths)


@pytest.mark.parametrize("kw", [dict(), dict(score="multiplicative"), dict(input_feeding=False, tie_embeddings=False),
                                dict(encoder_layers=1, decoder_layers=1)])
def test_shapes_and_step_equals_teacher_forcing(kw):
    m = _model(**kw)
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.integers(4, 20, (3, 7)), jnp.int32)
    lengths = jnp.array([7, 4, 1])
    tgt_in = jnp.asarray(np.c_[np.full(3, BOS), rng.integers(4, 24, (3, 5))], jnp.int32)
    logits, logp_forced, attn, cache = _lstm_forced(m, src, lengths, tgt_in)
    attn = np.asarray(attn)
    assert logits.shape == (3, 6, 24) and attn.shape == (3, 6, 7)
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-5)
    assert float(np.abs(attn[1, :, 4:]).max()) == 0.0  # no weight on source padding
    logp = _stepped(m, tgt_in, cache)  # incremental decoding reproduces the teacher-forced logits
    for t in range(tgt_in.shape[1]):
        np.testing.assert_allclose(logp[:, t], logp_forced[:, t], rtol=1e-4, atol=1e-5)


def test_source_padding_changes_no_output():
    m = _model()
    src = jnp.array([[5, 6, 7, 8]], jnp.int32)
    tgt_in = jnp.array([[BOS, 9, 10]], jnp.int32)
    padded = jnp.array([[5, 6, 7, 8, 0, 0, 0], [11, 12, 13, 14, 15, 16, 17]], jnp.int32)

    @_fast_jit
    def both(m, src, padded, tgt_in):
        return m(src, jnp.array([4]), tgt_in), m(padded, jnp.array([4, 7]), jnp.concatenate([tgt_in, tgt_in]))

    ref, out = both(m, src, padded, tgt_in)
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


def _transformer(**kw):
    cfg = dict(d_model=16, num_heads=2, encoder_layers=2, decoder_layers=2, dropout=0.0, max_len=16)
    cfg.update(kw)
    m = TransformerSeq2Seq(20, 24 if not kw.get("shared_embeddings") else 20, rngs=nnx.Rngs(0), **cfg)
    m.eval()
    return m


@_fast_jit
def _transformer_forced(m, src, padded, lengths, tgt_in):
    logits = m(src, lengths, tgt_in)
    return logits, jax.nn.log_softmax(logits), m(padded, lengths, tgt_in), m.init_cache(src, lengths, max_len=8)


@pytest.mark.parametrize("kw", [dict(), dict(shared_embeddings=True), dict(tie_embeddings=False, positional="rope")])
def test_transformer_cached_decode_equals_uncached(kw):
    m = _transformer(**kw)
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.integers(4, 20, (3, 7)), jnp.int32)
    lengths = jnp.array([7, 4, 1])
    tgt_in = jnp.asarray(np.c_[np.full(3, BOS), rng.integers(4, 20, (3, 5))], jnp.int32)
    padded = jnp.concatenate([src, jnp.zeros((3, 3), jnp.int32)], axis=1)
    logits, logp_forced, logits_padded, cache = _transformer_forced(m, src, padded, lengths, tgt_in)
    assert logits.shape == (3, 6, m.tgt_embed.num_embeddings)
    logp = _stepped(m, tgt_in, cache)
    for t in range(tgt_in.shape[1]):
        np.testing.assert_allclose(logp[:, t], logp_forced[:, t], rtol=1e-4, atol=1e-4)
    # source padding changes no output
    np.testing.assert_allclose(logits_padded, logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shared_embeddings needs one vocabulary"):
        TransformerSeq2Seq(10, 12, d_model=8, num_heads=2, shared_embeddings=True, rngs=nnx.Rngs(0))


@_fast_jit
def _searches(m, src, lengths):
    g = translate(m, src, lengths, max_len=9, beam_size=1)
    b = translate(m, src, lengths, max_len=9, beam_size=5)
    cache = m.init_cache(src, lengths, max_len=9)
    limits = D.max_lengths_from_ratio(lengths, 1.5, 10, 9)
    b1, _ = D.beam_search(m.step, cache, batch_size=4, max_len=9, beam_size=1, max_lengths=limits)
    # the default reordering gathers every cache leaf; the model's own leaves the encoder's constants in place
    b_all, s_all = D.beam_search(m.step, cache, batch_size=4, max_len=9, beam_size=5, max_lengths=limits)
    b_own, s_own = D.beam_search(m.step, cache, batch_size=4, max_len=9, beam_size=5, max_lengths=limits,
                                 reorder_cache=m.reorder_cache)
    return g, b, b1, (b_all, s_all), (b_own, s_own)


@pytest.mark.parametrize("model", [Seq2SeqAttention, TransformerSeq2Seq])
def test_translate_beam_one_is_greedy(model):
    m = _model() if model is Seq2SeqAttention else _transformer()
    src = jnp.asarray(np.random.default_rng(2).integers(4, 20, (4, 6)), jnp.int32)
    lengths = jnp.array([6, 5, 2, 1])
    g, b, b1, gathered, own = _searches(m, src, lengths)
    assert np.array_equal(np.asarray(g), np.asarray(b1)[:, 0])
    assert g.shape == b.shape == (4, 9)
    np.testing.assert_array_equal(np.asarray(own[0]), np.asarray(gathered[0]))
    np.testing.assert_allclose(np.asarray(own[1]), np.asarray(gathered[1]), rtol=1e-6)
    assert np.array_equal(np.asarray(b), np.asarray(own[0])[:, 0])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_toy_copy_task_trains_and_decodes_exactly(kind):
    """Both models learn to copy, and greedy and beam search decode what they learned.

    The trained weights differ from host to host (float rounding differs between CPUs, and training amplifies
    it), so the test asserts what any run reaches, with margin. At a constant learning rate the final state
    depended on where in a loss spike training stopped: over 10 init/data seeds on the project's 2-core CPU the
    Transformer's last-batch loss reached 0.053 and it mis-decoded up to 17 of 256 random copies. The cosine
    decay to 2% of the rate ends every run converged: over those seeds both models' mean loss over the last 50
    steps was 0.004-0.007, both decoded 256 of 256 random copies, the LSTM all 16 below and the Transformer
    16 or, for one seed, 15 (a repeat, 4 6 7 7 4, came out as 4 6 7 4 7: a tiny model's attention can mix up
    positions of repeated tokens). So the LSTM must decode all 16 and the Transformer at least 14, with a
    token accuracy (copy and EOS) of at least 0.9, which allows two such near misses but not garbled outputs;
    an untrained or broken model, or a broken search, gets far less.
    """
    if kind == "lstm":
        model = Seq2SeqAttention(12, 12, d_model=32, encoder_layers=2, decoder_layers=1, dropout=0.0,
                                 rngs=nnx.Rngs(0))
        steps, lr, min_exact = 400, 1e-2, 16
    else:
        model = TransformerSeq2Seq(12, 12, d_model=32, num_heads=4, encoder_layers=2, decoder_layers=2,
                                   dropout=0.0, max_len=16, shared_embeddings=True, rngs=nnx.Rngs(0))
        steps, lr, min_exact = 500, 3e-3, 14
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.02))

    @jax.jit
    def train(params, batches):  # every step in one compiled scan over the pre-drawn batches
        def train_step(carry, batch):
            params, opt_state = carry
            src, lens, tgt_in, tgt_out, tgt_lens = batch

            def loss_fn(params):
                logits = nnx.merge(graphdef, params, rest)(src, lens, tgt_in)
                mask = jnp.arange(tgt_in.shape[1])[None] < tgt_lens[:, None]
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
                return jnp.sum(ce * mask) / mask.sum()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(train_step, (params, tx.init(params)), batches)
        return params, losses

    rng = np.random.default_rng(0)
    batches = [_copy_batch(rng, 32) for _ in range(steps)]
    params, losses = train(params, tuple(jnp.asarray(np.stack(x)) for x in zip(*batches)))
    nnx.update(model, params)
    losses = np.asarray(losses)
    assert losses[:50].mean() > 0.3, losses[:50].mean()  # it did have something to learn
    assert losses[-50:].mean() < 0.02, losses[-50:].mean()  # converged (0.004-0.007 measured, see above)
    model.eval()
    src, lens, _, tgt_out, _ = _copy_batch(np.random.default_rng(1), 16)
    decode = _fast_jit(translate, static_argnames=("max_len", "beam_size"))
    want = np.zeros((16, 8), np.int32)
    want[:, :tgt_out.shape[1]] = tgt_out
    scored = np.arange(8)[None] <= lens[:, None]  # the copy and its EOS
    got = {beam: np.asarray(decode(model, jnp.asarray(src), jnp.asarray(lens), max_len=8, beam_size=beam))
           for beam in (1, 3)}
    for beam, ys in got.items():
        exact = (ys == want).all(axis=1)
        token_acc = ((ys == want) & scored).sum() / scored.sum()
        assert exact.sum() >= min_exact and token_acc >= 0.9, (beam, int(exact.sum()), token_acc,
                                                               ys[~exact], want[~exact])
    # the model is confident where it copies right: beam search finds the same output as greedy there
    solved = (got[1] == want).all(axis=1)
    np.testing.assert_array_equal(got[3][solved], got[1][solved])
