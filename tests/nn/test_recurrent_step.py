"""Incremental step API of the recurrent layers (`init_state`/`step`) and the min-RNN one-step ops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from jaxseq.nn import GRU, LSTM, MinGRU, MinLSTM
from jaxseq.ops import linear_recurrence as lr

CLASSES = (LSTM, GRU, MinGRU, MinLSTM)


def _rand(key, shape, positive=False):
    a = jax.random.normal(jax.random.key(key), shape, jnp.float32)
    return jnp.abs(a) if positive else a


def _run_steps(module, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = module.step(x[:, t], state)
        ys.append(y)
    return jnp.stack(ys, axis=1), state


# ---- ops: mingru_step / minlstm_step ---------------------------------------------------------

@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_min_step_matches_sequential_scan(name):
    init = getattr(lr, f"init_{name}_params")
    op, step = getattr(lr, name), getattr(lr, f"{name}_step")
    params = init(jax.random.key(0), 3, 4)
    x = _rand(1, (2, 6, 3))
    h0 = _rand(2, (2, 4), positive=True)
    out, final = op(params, x, h0=h0, mode="sequential")
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = step(params, x[:, t], h)
        assert h.shape == (2, 4) and h.dtype == x.dtype
        hs.append(h)
    np.testing.assert_allclose(np.stack(hs, 1), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, final, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_min_step_matches_float64_reference_and_grads(name):
    init = getattr(lr, f"init_{name}_params")
    step, ref = getattr(lr, f"{name}_step"), getattr(lr, f"{name}_reference")
    with jax.enable_x64(True):
        params = init(jax.random.key(0), 3, 4, dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (2, 5, 3), jnp.float64)
        h0 = jnp.abs(jax.random.normal(jax.random.key(2), (2, 4), jnp.float64))
        want, _ = ref(params, x, h0=h0)
        h = h0
        for t in range(x.shape[1]):
            h = step(params, x[:, t], h)
            np.testing.assert_allclose(h, want[:, t], rtol=1e-12, atol=1e-12)
        check_grads(lambda p, xt, hh: step(p, xt, hh), (params, x[:, 0], h0), order=1,
                    modes=("rev",), atol=1e-6, rtol=1e-6)


def test_min_step_half_precision_runs_in_float32():
    params = lr.init_mingru_params(jax.random.key(0), 3, 4, dtype=jnp.bfloat16)
    x = _rand(1, (2, 3)).astype(jnp.bfloat16)
    h = lr.mingru_step(params, x, jnp.zeros((2, 4), jnp.bfloat16))
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    want = lr.mingru_step(p32, x.astype(jnp.float32), jnp.zeros((2, 4)))
    assert h.dtype == jnp.bfloat16
    np.testing.assert_allclose(h.astype(jnp.float32), want, rtol=2e-2, atol=2e-2)


def test_min_step_errors():
    params = lr.init_mingru_params(jax.random.key(0), 3, 4)
    with pytest.raises(ValueError, match="`x` must have shape \\[batch, input\\]"):
        lr.mingru_step(params, jnp.zeros((2, 1, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="`x` has 5 features"):
        lr.mingru_step(params, jnp.zeros((2, 5)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="`h` must have shape \\[batch, hidden\\] = \\(2, 4\\)"):
        lr.mingru_step(params, jnp.zeros((2, 3)), jnp.zeros((2, 5)))
    with pytest.raises(TypeError, match="`x` must be a floating-point"):
        lr.minlstm_step(lr.init_minlstm_params(jax.random.key(0), 3, 4),
                        jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 4)))


# ---- nn: init_state / step -------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("layers", [1, 2])
def test_step_equals_call(cls, layers):
    # in_features != hidden_size: the first layer has no residual, the second has one.
    m = cls(3, 5, num_layers=layers, residual=True, rngs=nnx.Rngs(0))
    x = _rand(1, (2, 4, 3))
    state0 = m.init_state(2)
    init = jax.tree.map(lambda z, i=iter(range(2)): _rand(10 + next(i), z.shape, positive=True),
                        state0)
    want, want_final = m(x, initial_state=init)
    got, got_final = _run_steps(m, x, init)
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    assert jax.tree.structure(got_final) == jax.tree.structure(want_final)
    for a, b in zip(jax.tree.leaves(got_final), jax.tree.leaves(want_final)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    if layers == 1:
        return
    # Zero initial state: the same as __call__ without one.
    want0, _ = m(x)
    got0, _ = _run_steps(m, x, state0)
    np.testing.assert_allclose(got0, want0, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("cls", CLASSES)
def test_init_state_structure_and_dtype(cls):
    m = cls(4, 6, num_layers=2, rngs=nnx.Rngs(0))
    _, final = m(jnp.zeros((3, 2, 4)))
    state = m.init_state(3)
    assert jax.tree.structure(state) == jax.tree.structure(final)
    assert all(a.shape == (2, 3, 6) and a.dtype == jnp.float32 for a in jax.tree.leaves(state))
    assert all(not np.any(a) for a in jax.tree.leaves(state))
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(m.init_state(1, jnp.bfloat16)))


def test_step_under_jit_and_scan():
    m = MinGRU(4, 4, num_layers=2, residual=True, rngs=nnx.Rngs(0))
    x = _rand(3, (2, 4, 4))
    want, want_final = m(x)
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)

    @jax.jit
    def run(prm, x):
        mm = nnx.merge(graphdef, prm, rest)

        def body(s, xt):
            y, s = mm.step(xt, s)
            return s, y

        final, ys = jax.lax.scan(body, mm.init_state(x.shape[0]), jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(ys, 0, 1), final

    got, got_final = run(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    for a, b in zip(jax.tree.leaves(got_final), jax.tree.leaves(want_final)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_step_gradients_match_call():
    # The LSTM scan's custom VJP against autodiff through the step loop.
    m = LSTM(3, 4, num_layers=2, rngs=nnx.Rngs(0))
    x = _rand(4, (2, 3, 3))
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)

    def loss_call(prm):
        return jnp.sum(nnx.merge(graphdef, prm, rest)(x)[0] ** 2)

    def loss_step(prm):
        mm = nnx.merge(graphdef, prm, rest)
        return jnp.sum(_run_steps(mm, x, mm.init_state(2))[0] ** 2)

    g1, g2 = jax.grad(loss_call)(params), jax.grad(loss_step)(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_step_errors():
    bi = LSTM(3, 4, bidirectional=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LSTM.step: needs a unidirectional stack"):
        bi.step(jnp.zeros((2, 3)), (jnp.zeros((2, 2, 4)),) * 2)
    with pytest.raises(ValueError, match="LSTM.init_state: needs a unidirectional"):
        bi.init_state(2)
    dil = GRU(3, 4, num_layers=2, dilations=(1, 2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="GRU.step: needs dilations of 1"):
        dil.step(jnp.zeros((2, 3)), jnp.zeros((2, 2, 4)))
    m = MinGRU(3, 4, num_layers=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MinGRU.step: x must be \\[batch, in_features=3\\]"):
        m.step(jnp.zeros((2, 1, 3)), m.init_state(2))
    with pytest.raises(ValueError, match="MinGRU.step: state must be h of shape"):
        m.step(jnp.zeros((2, 3)), jnp.zeros((1, 2, 4)))
    lstm = LSTM(3, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LSTM.step: state must be \\(h, c\\)"):
        lstm.step(jnp.zeros((2, 3)), jnp.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="init_state: batch must be a positive int"):
        lstm.init_state(0)
