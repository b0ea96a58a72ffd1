"""Tests for jaxseq.ops.rnn: references, PyTorch parity, custom VJP vs autodiff, options, errors."""

from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from jaxseq.ops.rnn import (
    GRUParams,
    LSTMParams,
    gru_reference,
    gru_scan,
    init_gru_params,
    init_lstm_params,
    lstm_reference,
    lstm_scan,
)
from jaxseq.ops.rnn import _reference_loop  # the loop behind lstm_reference, for a cells reference

B, T, I, H = 3, 7, 5, 4
LENS = np.array([7, 3, 0], np.int32)

CELLS = ["lstm", "gru"]


def _params(cell, dtype=jnp.float32, i=I, h=H, seed=0):
    init = init_lstm_params if cell == "lstm" else init_gru_params
    return init(jax.random.PRNGKey(seed), i, h, dtype=dtype)


def _x(dtype=jnp.float32, b=B, t=T, i=I, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (b, t, i), dtype)


def _state(cell, b=B, h=H, seed=2):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    h0 = 0.5 * jax.random.normal(k1, (b, h))
    if cell == "lstm":
        return (h0, 0.5 * jax.random.normal(k2, (b, h)))
    return h0


def _scan(cell, params, x, **kw):
    """Uniform view: (outputs, tuple of final states)."""
    if cell == "lstm":
        out, (h, c) = lstm_scan(params, x, **kw)
        return out, (h, c)
    out, h = gru_scan(params, x, **kw)
    return out, (h,)


def _reference(cell, params, x, **kw):
    if cell == "lstm":
        out, (h, c) = lstm_reference(params, x, **kw)
        return out, (h, c)
    out, h = gru_reference(params, x, **kw)
    return out, (h,)


def _loss(cell, **kw):
    """A loss touching outputs and every final state, nonlinear so cotangents vary per element."""

    def f(params, x, state):
        out, finals = _scan(cell, params, x, initial_state=state, **kw)
        acc = jnp.promote_types(out.dtype, jnp.float32)
        total = jnp.sum(jnp.sin(out.astype(acc)) * jnp.arange(out.shape[1])[None, :, None])
        for s in finals:
            total = total + jnp.sum(jnp.cos(s.astype(acc)))
        return total

    return f


# ---------------------------------------------------------------------------------------------
# shapes, dtypes, init


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shapes_and_dtypes(cell, dtype):
    params = _params(cell, dtype)
    x = _x(dtype)
    out, finals = _scan(cell, params, x)
    assert out.shape == (B, T, H) and out.dtype == dtype
    for s in finals:
        assert s.shape == (B, H) and s.dtype == dtype


@pytest.mark.parametrize("cell", CELLS)
def test_init_matches_pytorch_layout(cell):
    params = _params(cell, i=6, h=8)
    n = 4 if cell == "lstm" else 3
    assert params.w_ih.shape == (6, n * 8) and params.w_hh.shape == (8, n * 8)
    bound = 1 / np.sqrt(8)
    assert float(jnp.abs(params.w_hh).max()) <= bound
    biases = [params.b] if cell == "lstm" else [params.b_ih, params.b_hh]
    for b in biases:
        assert b.shape == (n * 8,)
    # LSTM's single bias is b_ih + b_hh, so its range is twice a single draw's.
    assert float(jnp.abs(biases[0]).max()) <= (2 if cell == "lstm" else 1) * bound
    assert init_lstm_params(jax.random.PRNGKey(0), 2, 3, dtype=jnp.bfloat16).w_ih.dtype == jnp.bfloat16


@pytest.mark.parametrize("cell", CELLS)
def test_bfloat16_close_to_float32(cell):
    params = _params(cell)
    x = _x()
    out32, _ = _scan(cell, params, x, lengths=LENS)
    params16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    out16, _ = _scan(cell, params16, x.astype(jnp.bfloat16), lengths=LENS)
    np.testing.assert_allclose(np.asarray(out16, np.float32), np.asarray(out32), atol=3e-2)
    g = jax.grad(_loss(cell, lengths=LENS))(params16, x.astype(jnp.bfloat16), None)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(g))


# ---------------------------------------------------------------------------------------------
# forward equality with the float64 loop reference, every option


OPTIONS = [
    dict(),
    dict(lengths=LENS),
    dict(reverse=True),
    dict(reverse=True, lengths=LENS),
    dict(dilation=2),
    dict(dilation=3, lengths=LENS),
    dict(dilation=3, reverse=True, lengths=LENS),
    dict(dilation=9),  # dilation > time: every step reads the initial state
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}" for k in o) or "plain")
@pytest.mark.parametrize("hoist", [True, False])
def test_matches_reference(cell, opts, hoist):
    params, x, state = _params(cell), _x(), _state(cell)
    out, finals = _scan(cell, params, x, initial_state=state, hoist_input=hoist, **opts)
    ref_out, ref_finals = _reference(cell, params, x, initial_state=state, **opts)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for s, r in zip(finals, ref_finals):
        np.testing.assert_allclose(s, r, rtol=1e-5, atol=1e-5)
    if "lengths" in opts:
        assert np.all(np.asarray(out)[2] == 0.0)  # length 0: all padding
        np.testing.assert_allclose(finals[0][2], np.asarray(state[0] if cell == "lstm" else state)[2])


def test_dilation_reference_reads_d_steps_back():
    """The reference itself: with dilation d, step t is one cell step from the state at t-d."""
    params, x = _params("lstm"), _x()
    out, _ = lstm_reference(params, x, dilation=2)
    _, (h1, c1) = lstm_reference(params, x[:, 1:2])  # t=1 reads the zero state
    _, (h3, _) = lstm_reference(params, x[:, 3:4], initial_state=(h1, c1))  # t=3 reads t=1
    np.testing.assert_allclose(out[:, 3], h3, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_equal_unpadded_runs(cell, reverse):
    params, x = _params(cell), _x()
    lens = np.array([7, 3, 5], np.int32)
    out, finals = _scan(cell, params, x, lengths=lens, reverse=reverse)
    for b, L in enumerate(lens):
        o_b, f_b = _scan(cell, params, x[b : b + 1, :L], reverse=reverse)
        np.testing.assert_allclose(out[b, :L], o_b[0], rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(out[b, L:]) == 0.0)
        for s, sb in zip(finals, f_b):
            np.testing.assert_allclose(s[b], sb[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# PyTorch parity (forward and gradients)


def _torch_module(cell, params):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H, batch_first=True)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.from_numpy(np.array(params.w_ih).T))
        mod.weight_hh_l0.copy_(torch.from_numpy(np.array(params.w_hh).T))
        if cell == "lstm":
            # The combined bias goes in b_ih; b_hh is zero, so b_ih + b_hh == b.
            mod.bias_ih_l0.copy_(torch.from_numpy(np.array(params.b)))
            mod.bias_hh_l0.zero_()
        else:
            mod.bias_ih_l0.copy_(torch.from_numpy(np.array(params.b_ih)))
            mod.bias_hh_l0.copy_(torch.from_numpy(np.array(params.b_hh)))
    return torch, mod


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backward", ["custom", "autodiff"])
def test_matches_torch_forward_and_grads(cell, backward):
    params, x, state = _params(cell), _x(), _state(cell)
    torch, mod = _torch_module(cell, params)
    xt = torch.from_numpy(np.array(x))
    if cell == "lstm":
        hx = tuple(torch.from_numpy(np.array(s))[None] for s in state)
    else:
        hx = torch.from_numpy(np.array(state))[None]
    out_t, fin_t = mod(xt, hx)
    fin_t = fin_t if cell == "lstm" else (fin_t,)
    # Same loss as _loss(): sum(sin(out) * t) + sum(cos(final states)).
    w = torch.arange(T, dtype=torch.float32)[None, :, None]
    loss_t = (torch.sin(out_t) * w).sum() + sum(torch.cos(s).sum() for s in fin_t)
    loss_t.backward()

    out, finals = _scan(cell, params, x, initial_state=state)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    for s, st in zip(finals, fin_t):
        np.testing.assert_allclose(s, st[0].detach().numpy(), rtol=1e-5, atol=1e-6)

    g = jax.grad(_loss(cell, backward=backward))(params, x, state)
    np.testing.assert_allclose(g.w_ih, mod.weight_ih_l0.grad.numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g.w_hh, mod.weight_hh_l0.grad.numpy().T, rtol=1e-4, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(g.b, mod.bias_ih_l0.grad.numpy(), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(g.b_ih, mod.bias_ih_l0.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.b_hh, mod.bias_hh_l0.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# gradients


GRAD_OPTIONS = [
    dict(hoist_input=True),
    dict(hoist_input=False, lengths=LENS),
    dict(hoist_input=True, reverse=True, lengths=LENS, unroll=2),
    dict(hoist_input=False, reverse=True, dilation=2),
    dict(hoist_input=True, dilation=3, lengths=LENS),
    dict(hoist_input=False, dilation=2, reverse=True, lengths=LENS, unroll=3),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opts", GRAD_OPTIONS, ids=lambda o: ",".join(f"{k}" for k in o))
def test_custom_vjp_equals_autodiff(cell, opts):
    params, x, state = _params(cell), _x(), _state(cell)
    g_custom = jax.grad(_loss(cell, backward="custom", **opts), argnums=(0, 1, 2))(params, x, state)
    g_auto = jax.grad(_loss(cell, backward="autodiff", **opts), argnums=(0, 1, 2))(params, x, state)
    for a, b in zip(jax.tree.leaves(g_custom), jax.tree.leaves(g_auto)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "opts", [dict(), dict(reverse=True, dilation=2, lengths=np.array([4, 1], np.int32))], ids=["plain", "all"]
)
def test_check_grads_float64(cell, opts):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), _params(cell, i=3, h=2))
        x = _x(b=2, t=4, i=3).astype(jnp.float64)
        state = jax.tree.map(lambda a: a.astype(jnp.float64), _state(cell, b=2, h=2))
        f = _loss(cell, backward="custom", **opts)
        check_grads(f, (params, x, state), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_grad_of_grad_runs(cell):
    """Reverse-over-reverse through the custom VJP (its backward is plain JAX)."""
    params, x = _params(cell), _x()
    f = _loss(cell, backward="custom")
    g = jax.grad(lambda xx: jnp.sum(jax.grad(f, argnums=1)(params, xx, None) ** 2))(x)
    g_ref = jax.grad(
        lambda xx: jnp.sum(jax.grad(_loss(cell, backward="autodiff"), argnums=1)(params, xx, None) ** 2)
    )(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# transformations


@pytest.mark.parametrize("cell", CELLS)
def test_jit_vmap_grad(cell):
    params, x = _params(cell), _x()
    lens = jnp.asarray(LENS)
    eager, _ = _scan(cell, params, x, lengths=lens, reverse=True)
    # lengths traced under jit: the value check is skipped, the result must not change.
    jitted = jax.jit(lambda p, xx, ln: _scan(cell, p, xx, lengths=ln, reverse=True)[0])(params, x, lens)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)

    xs = jnp.stack([x, 2 * x])  # [n, batch, time, input]
    vm = jax.vmap(lambda xx: _scan(cell, params, xx, lengths=lens, reverse=True)[0])(xs)
    np.testing.assert_allclose(vm[0], eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vm[1], _scan(cell, params, 2 * x, lengths=lens, reverse=True)[0], rtol=1e-5, atol=1e-6)

    # vmap over parameters too (an ensemble), through the custom VJP's gradient.
    ps = jax.tree.map(lambda a: jnp.stack([a, -a]), params)
    gs = jax.jit(jax.vmap(jax.grad(_loss(cell, lengths=lens)), in_axes=(0, None, None)))(ps, x, None)
    g1 = jax.grad(_loss(cell, lengths=lens))(jax.tree.map(lambda a: -a, params), x, None)
    for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-5)


def test_zero_length_time():
    params = _params("lstm")
    out, (h, c) = lstm_scan(params, jnp.zeros((2, 0, I)))
    assert out.shape == (2, 0, H) and h.shape == (2, H)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.zeros((T, I), np.float32)), r"`x`.*\[batch, time, input\]"),
        (dict(x=np.zeros((B, T, I + 1), np.float32)), r"`x`.*`params.w_ih`"),
        (dict(lengths=np.array([1, 2], np.int32)), r"`lengths`.*\[batch\]"),
        (dict(lengths=np.array([1, 2, T + 1], np.int32)), r"`lengths`.*\[0, time=7\]"),
        (dict(lengths=np.array([1, -1, 2], np.int32)), r"`lengths`.*\[0, time=7\]"),
        (dict(dilation=0), r"`dilation`.*>= 1"),
        (dict(dilation=1.5), r"`dilation`"),
        (dict(unroll=0), r"`unroll`"),
        (dict(hoist_input="yes"), r"`hoist_input`"),
        (dict(backward="fast"), r"`backward`"),
    ],
)
def test_bad_inputs_raise(cell, kwargs, match):
    params = _params(cell)
    kwargs = dict(kwargs)  # parametrize shares the dict between cells; do not mutate it
    x = kwargs.pop("x", np.zeros((B, T, I), np.float32))
    with pytest.raises(ValueError, match=match):
        _scan(cell, params, x, **kwargs)


def test_bad_initial_state_raises():
    lp, gp, x = _params("lstm"), _params("gru"), _x()
    with pytest.raises(ValueError, match=r"`initial_state\[1\] \(c0\)`.*\[batch, hidden\]"):
        lstm_scan(lp, x, initial_state=(jnp.zeros((B, H)), jnp.zeros((B, H + 1))))
    with pytest.raises(ValueError, match=r"`initial_state`.*pair"):
        lstm_scan(lp, x, initial_state=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match=r"`initial_state`.*\[batch, hidden\]"):
        gru_scan(gp, x, initial_state=jnp.zeros((B + 1, H)))


def test_bad_params_and_dtypes_raise():
    x = _x()
    p = _params("lstm")
    with pytest.raises(ValueError, match=r"`params.w_hh`"):
        lstm_scan(LSTMParams(p.w_ih, p.w_hh[:, :-1], p.b), x)
    with pytest.raises(ValueError, match=r"`params.b`"):
        lstm_scan(LSTMParams(p.w_ih, p.w_hh, p.b[:-1]), x)
    g = _params("gru")
    with pytest.raises(ValueError, match=r"`params.b_hh`"):
        gru_scan(GRUParams(g.w_ih, g.w_hh, g.b_ih, g.b_hh[:3]), x)
    with pytest.raises(TypeError, match=r"`x`.*floating"):
        lstm_scan(p, jnp.zeros((B, T, I), jnp.int32))
    with pytest.raises(TypeError, match=r"`lengths`.*integer"):
        lstm_scan(p, x, lengths=jnp.ones((B,), jnp.float32))


# ---------------------------------------------------------------------------------------------
# cell states (ES-RNN's c-state penalty)


def _cells_reference(params, x, state, lengths, reverse, dilation):
    """Every step's c_t from a float64 loop; the loop's output slot carries h_t ‖ c_t."""
    w_ih, w_hh, b = (np.asarray(p, np.float64) for p in params)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))

    def step(xt, prev):
        h, c = prev[0][:H], prev[1]
        i, f, g, o = np.split(xt @ w_ih + h @ w_hh + b, 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        return np.concatenate([sig(o) * np.tanh(c), c]), c

    h0, c0 = (np.asarray(s, np.float64) for s in state)
    out, _ = _reference_loop(step, x, (np.concatenate([h0, c0], axis=1), c0), lengths, reverse, dilation)
    return out[..., :H], out[..., H:]


@pytest.mark.parametrize("opts", [dict(), dict(reverse=True, dilation=2, lengths=LENS), dict(dilation=3)],
                         ids=["plain", "reverse,dilation,lengths", "dilation3"])
def test_return_cells_matches_loop_and_plain_outputs(opts):
    params, x, state = _params("lstm"), _x(), _state("lstm")
    (out, cells), (h, c) = lstm_scan(params, x, initial_state=state, return_cells=True, **opts)
    assert out.shape == cells.shape == (B, T, H) and cells.dtype == x.dtype
    plain, (h2, c2) = lstm_scan(params, x, initial_state=state, **opts)
    np.testing.assert_allclose(out, plain, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c, c2, rtol=1e-6, atol=1e-6)
    ref_out, ref_cells = _cells_reference(params, x, state, opts.get("lengths"), opts.get("reverse", False),
                                          opts.get("dilation", 1))
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cells, ref_cells, rtol=1e-5, atol=1e-5)


def test_return_cells_gradients():
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), _params("lstm", i=3, h=2))
        x = _x(b=2, t=5, i=3).astype(jnp.float64)

        def f(p, xx):
            (out, cells), _ = lstm_scan(p, xx, dilation=2, return_cells=True)
            return jnp.sum(jnp.sin(out)) + jnp.sum(cells**2)

        check_grads(f, (params, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="return_cells"):
        lstm_scan(_params("lstm"), _x(), return_cells=True, backward="custom")


def test_lstm_cell_is_one_step_of_the_reference():
    from jaxseq.ops.rnn import init_lstm_params, lstm_cell, lstm_reference

    k = jax.random.split(jax.random.key(7), 4)
    p = init_lstm_params(k[0], 5, 6)
    x = jax.random.normal(k[1], (3, 5))
    h0, c0 = jax.random.normal(k[2], (3, 6)), jax.random.normal(k[3], (3, 6))
    h, c = lstm_cell(p, x, h0, c0)
    _, (rh, rc) = lstm_reference(p, np.asarray(x)[:, None], initial_state=(np.asarray(h0), np.asarray(c0)))
    np.testing.assert_allclose(h, rh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, rc, rtol=1e-5, atol=1e-6)
    assert h.dtype == c.dtype == x.dtype


def test_backward_coefficients_give_the_cell_vjp():
    """The saved products (k, pf) reproduce the LSTM cell's exact VJP (float64, random point)."""
    from jaxseq.ops.rnn import lstm_backward_coefficients, lstm_coefficient_vjp, lstm_pointwise

    hidden = 5
    with jax.enable_x64():
        ks = jax.random.split(jax.random.key(3), 4)
        z = jax.random.normal(ks[0], (3, 4 * hidden), jnp.float64) * 2
        c = jax.random.normal(ks[1], (3, hidden), jnp.float64)
        dh = jax.random.normal(ks[2], (3, hidden), jnp.float64)
        dc = jax.random.normal(ks[3], (3, hidden), jnp.float64)

        def cell(z, c):
            _, c_new, h_new = lstm_pointwise(z, c, hidden)
            return h_new, c_new

        _, vjp = jax.vjp(cell, z, c)
        dz_ref, dc_ref = vjp((dh, dc))
        gates, c_new, _ = lstm_pointwise(z, c, hidden)
        k, pf = lstm_backward_coefficients(gates, c, c_new, jnp.float64)
        assert k.shape == (3, 4 * hidden) and pf.shape == (3, 2 * hidden)
        dz, dc_prev = lstm_coefficient_vjp(k, pf, dh, dc, hidden)
        np.testing.assert_allclose(dz, dz_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dc_prev, dc_ref, rtol=1e-12, atol=1e-12)
