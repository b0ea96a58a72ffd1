"""jaxseq.nn recurrent stacks: shapes, dtypes, variants, lengths, dropout, gradients, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.nn import GRU, LSTM, MinGRU, MinLSTM
from jaxseq.ops import rnn as rnn_ops

ALL = [LSTM, GRU, MinGRU, MinLSTM]
B, T, I, H = 3, 6, 5, 4


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _fast(cls):
    """Constructor kwargs that keep compile time low: min-RNNs in the plain-scan mode (the
    associative "log" mode compiles in seconds; it is covered by the shape/op-layout tests)."""
    return {"mode": "sequential"} if cls in (MinGRU, MinLSTM) else {}


@nnx.jit
def _apply(module, x, lengths=None, initial_state=None):
    # One compiled program per module structure: faster than eager dispatch on a busy 2-core box.
    return module(x, lengths=lengths, initial_state=initial_state)


def _x(seed=0, shape=(B, T, I), dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _state_shapes(cls, n):
    shape = (n, B, H)
    return [shape, shape] if cls is LSTM else [shape]


@pytest.mark.parametrize("cls", ALL)
def test_shapes_stacked_bidirectional(cls):
    m = cls(I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    y, state = _apply(m, _x())
    assert y.shape == (B, T, 2 * H) and y.dtype == jnp.float32
    assert [tuple(s.shape) for s in jax.tree.leaves(state)] == _state_shapes(cls, 4)
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("cls", ALL)
def test_bfloat16(cls):
    m = cls(I, H, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0), **_fast(cls))
    y, _ = _apply(m, _x(dtype=jnp.bfloat16))
    assert y.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(y.astype(jnp.float32))))
    if cls is LSTM:  # float32 params computed in bf16 (dtype=...) also give bf16
        y2, _ = _apply(LSTM(I, H, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)), _x())
        assert y2.dtype == jnp.bfloat16


@pytest.mark.parametrize("cls", ALL)
def test_layer_params_are_op_layout(cls):
    """A one-layer module equals the op called on its stored parameters."""
    m = cls(I, H, rngs=nnx.Rngs(1))
    x = _x(1)
    y, _ = m(x)
    p = m.layer_params(0, 0)
    if cls is LSTM:
        want, _ = rnn_ops.lstm_scan(p, x)
    elif cls is GRU:
        want, _ = rnn_ops.gru_scan(p, x)
    else:
        from jaxseq.ops import linear_recurrence as lr
        want, _ = (lr.mingru if cls is MinGRU else lr.minlstm)(p, x)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", ALL)
def test_bidirectional_lengths_match_unpadded(cls):
    """Padded batch with lengths == each sequence run alone without padding."""
    m = cls(I, H, num_layers=2, bidirectional=True, residual=True, rngs=nnx.Rngs(2),
            **_fast(cls))
    x = _x(2, (2, T, I))
    lengths = jnp.array([6, 3])
    # Garbage in the padding must not leak into valid outputs.
    pad = jnp.arange(T)[None, :, None] >= lengths[:, None, None]
    x = jnp.where(pad, 100.0, x)
    y, state = _apply(m, x, lengths)
    for b, n in enumerate(np.asarray(lengths)):
        yb, sb = _apply(m, x[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], yb[0], rtol=1e-5, atol=1e-5)
        assert float(jnp.abs(y[b, n:]).max(initial=0.0)) == 0.0  # padding outputs are zero
        for s_all, s_one in zip(jax.tree.leaves(state), jax.tree.leaves(sb)):
            np.testing.assert_allclose(s_all[:, b], s_one[:, 0], rtol=1e-5, atol=1e-5)


def test_bidirectional_backward_is_reversed_forward():
    """The backward half equals the forward op run on the time-reversed input."""
    m = LSTM(I, H, bidirectional=True, rngs=nnx.Rngs(3))
    x = _x(3)
    y, _ = m(x)
    back, _ = rnn_ops.lstm_scan(m.layer_params(0, 1), x[:, ::-1])
    np.testing.assert_allclose(y[..., H:], back[:, ::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_min_rnn_zero_length_keeps_initial_state(cls):
    m = cls(I, H, rngs=nnx.Rngs(0), **_fast(cls))
    h0 = jnp.full((1, B, H), 0.5)
    _, h = _apply(m, _x(), jnp.array([0, 2, 6]), h0)
    np.testing.assert_allclose(h[0, 0], 0.5)


def test_residual_adds_input():
    """With residual, a 2-layer stack's output = layer-2 op output + layer-1 output."""
    m = GRU(I, H, num_layers=2, residual=True, rngs=nnx.Rngs(4))
    x = _x(4)
    y, _ = m(x)
    h1, _ = rnn_ops.gru_scan(m.layer_params(0), x)  # no residual: width 5 != 4
    h2, _ = rnn_ops.gru_scan(m.layer_params(1), h1)
    np.testing.assert_allclose(y, h2 + h1, rtol=1e-5, atol=1e-6)


def test_dilations():
    m = LSTM(I, H, num_layers=2, dilations=(1, 2), rngs=nnx.Rngs(5))
    x = _x(5)
    y, _ = m(x)
    h1, _ = rnn_ops.lstm_scan(m.layer_params(0), x)
    h2, _ = rnn_ops.lstm_scan(m.layer_params(1), h1, dilation=2)
    np.testing.assert_allclose(y, h2, rtol=1e-5, atol=1e-6)


def test_initial_state_used():
    m = LSTM(I, H, num_layers=2, rngs=nnx.Rngs(6))
    x = _x(6)
    h0 = (jnp.ones((2, B, H)), jnp.ones((2, B, H)))
    y0, _ = _apply(m, x)
    y1, (h, c) = _apply(m, x, None, h0)
    assert not np.allclose(y0, y1)
    want, _ = rnn_ops.lstm_scan(m.layer_params(0), x, initial_state=(h0[0][0], h0[1][0]))
    assert h.shape == c.shape == (2, B, H)
    want2, (hf, cf) = rnn_ops.lstm_scan(m.layer_params(1), want,
                                        initial_state=(h0[0][1], h0[1][1]))
    np.testing.assert_allclose(y1, want2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c[1], cf, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [GRU, MinGRU])
def test_dropout_train_vs_eval(cls):
    m = cls(I, H, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0, dropout=1), **_fast(cls))
    x = _x(7)
    a, _ = _apply(m, x)
    b, _ = _apply(m, x)
    assert not np.allclose(a, b)  # fresh masks each call in train mode
    m.eval()
    c, _ = _apply(m, x)
    d, _ = _apply(m, x)
    np.testing.assert_array_equal(c, d)
    m1 = cls(I, H, num_layers=1, dropout=0.5, rngs=nnx.Rngs(0, dropout=1), **_fast(cls))
    e, _ = _apply(m1, x)
    f, _ = _apply(m1, x)
    np.testing.assert_array_equal(e, f)  # no dropout after the last layer


@pytest.mark.parametrize("cls", ALL)
def test_gradients_finite(cls):
    # Two bidirectional residual layers for the LSTM; one bidirectional layer elsewhere (time).
    layers = 2 if cls is LSTM else 1
    m = cls(I, H, num_layers=layers, bidirectional=True, residual=True, rngs=nnx.Rngs(8),
            **_fast(cls))
    x, lengths = _x(8), jnp.array([6, 3, 2])

    def loss(model):
        y, _ = model(x, lengths=lengths)
        return jnp.sum(y ** 2)

    grads = nnx.jit(nnx.grad(loss))(m)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == layers * 2 * len(m.layer_params(0, 0))
    for g in leaves:
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


def test_jit_with_lengths():
    m = GRU(I, H, rngs=nnx.Rngs(9))
    x, lengths = _x(9), jnp.array([6, 3, 2])
    f = nnx.jit(lambda mod, x, n: mod(x, lengths=n)[0])
    np.testing.assert_allclose(f(m, x, lengths), m(x, lengths=lengths)[0], rtol=1e-6, atol=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="dilations"):
        MinGRU(I, H, num_layers=2, dilations=(1, 2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dilations"):
        LSTM(I, H, num_layers=2, dilations=(1,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="hidden_size"):
        GRU(I, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout"):
        GRU(I, H, dropout=1.5, rngs=nnx.Rngs(0))
    m = LSTM(I, H, num_layers=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"x must be \[batch, time, in_features=5\]"):
        m(jnp.ones((B, T, I + 1)))
    with pytest.raises(ValueError, match="lengths"):
        m(_x(), lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match="lengths"):
        m(_x(), lengths=jnp.array([1, 2, T + 1]))
    with pytest.raises(ValueError, match="initial_state"):
        m(_x(), initial_state=(jnp.zeros((1, B, H)), jnp.zeros((1, B, H))))
    with pytest.raises(ValueError, match="initial_state"):
        m(_x(), initial_state=jnp.zeros((2, B, H)))
    with pytest.raises(ValueError, match="backward must be one of"):
        LSTM(I, H, backward="reverse", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mode must be one of"):
        MinGRU(I, H, mode="fast", rngs=nnx.Rngs(0))


# ---- backward= : forward-mode differentiation through a layer ------------------------------------

@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_backward_autodiff_allows_forward_mode(cls):
    # Tiny on purpose: jacfwd/jacrev over every input and parameter entry.
    b, t, i, h = 1, 3, 2, 2
    kw = dict(num_layers=2, bidirectional=True, rngs=nnx.Rngs(3))
    fwd = cls(i, h, backward="autodiff", **kw)
    rev = cls(i, h, backward="custom", **kw)  # same seed: same weights, hand-written VJP
    x = _x(11, (b, t, i))
    lengths = jnp.array([2])
    graphdef, params, rest = nnx.split(fwd, nnx.Param, ...)  # RNG state stays out of the Jacobian
    graphdef_rev, _, rest_rev = nnx.split(rev, nnx.Param, ...)

    def f(gd):
        r = rest if gd is graphdef else rest_rev
        return lambda p, x: nnx.merge(gd, p, r)(x, lengths=lengths)[0]

    v = _x(12, x.shape)
    eps = 1e-3

    # Every derivative below in one compiled program (compile time is this test's cost); the
    # forward-mode check runs while tracing, under jit as in eager mode.
    def derivatives(params, x, v):
        jf = jax.jacfwd(f(graphdef), argnums=(0, 1))(params, x)
        jr = jax.jacrev(f(graphdef_rev), argnums=(0, 1))(params, x)
        _, tangent = jax.jvp(lambda x: f(graphdef)(params, x), (x,), (v,))
        return jf, jr, tangent, f(graphdef)(params, x + eps * v), f(graphdef)(params, x - eps * v)

    jf, jr, tangent, f_plus, f_minus = jax.jit(
        derivatives, compiler_options=FAST_COMPILE)(params, x, v)
    # Forward mode (autodiff) against reverse mode through the custom VJP: two different derivations.
    assert len(jax.tree.leaves(jf)) == len(jax.tree.leaves(jr)) > 2
    for a, r in zip(jax.tree.leaves(jf), jax.tree.leaves(jr)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(jf[1]).sum()) > 0
    # jax.jvp against a central finite difference (float64-free: a small step, loose tolerance).
    fd = (f_plus - f_minus) / (2 * eps)
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(fd), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_default_backward_has_no_forward_mode(cls):
    # Why the option exists: the default custom VJP cannot be differentiated in forward mode.
    m = cls(I, H, rngs=nnx.Rngs(0))
    assert m.backward == "auto"
    x = _x(13)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: m(x)[0], (x,), (x,))
