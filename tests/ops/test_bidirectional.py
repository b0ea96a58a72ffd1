"""Tests for jaxseq.ops.bidirectional: both directions in one scan == two lstm_scan/gru_scan calls."""

from __future__ import annotations

import re

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from jaxseq.ops.bidirectional import gru_bidirectional_scan, lstm_bidirectional_scan
from jaxseq.ops.rnn import (
    gru_reference,
    init_gru_params,
    init_lstm_params,
    lstm_reference,
)

B, T, I, H = 3, 6, 5, 4  # input width != hidden on purpose
LENS = np.array([6, 2, 0], np.int32)  # full, partial and empty sequences
CELLS = ["lstm", "gru"]


def _params(cell, dtype=jnp.float32, seed=0):
    init = init_lstm_params if cell == "lstm" else init_gru_params
    kf, kb = jax.random.split(jax.random.PRNGKey(seed))
    return init(kf, I, H, dtype=dtype), init(kb, I, H, dtype=dtype)


def _x(dtype=jnp.float32, b=B, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (b, T, I), dtype)


def _state(cell, dtype=jnp.float32, seed=2):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    h0 = (0.5 * jax.random.normal(k1, (2, B, H))).astype(dtype)
    if cell == "lstm":
        return (h0, (0.5 * jax.random.normal(k2, (2, B, H))).astype(dtype))
    return h0


def _bi(cell, pf, pb, x, **kw):
    """Uniform view: (outputs, tuple of final states [2, B, H])."""
    if cell == "lstm":
        out, (h, c) = lstm_bidirectional_scan(pf, pb, x, **kw)
        return out, (h, c)
    out, h = gru_bidirectional_scan(pf, pb, x, **kw)
    return out, (h,)


def _reference(cell, pf, pb, x, state=None, lengths=None):
    """float64 loops: forward, and reverse=True within lengths, concatenated / stacked."""
    ref = lstm_reference if cell == "lstm" else gru_reference
    per_dir = []
    for d, p in enumerate((pf, pb)):
        st = None
        if state is not None:
            st = tuple(np.asarray(s)[d] for s in state) if cell == "lstm" else np.asarray(state)[d]
        out, fin = ref(p, x, initial_state=st, lengths=lengths, reverse=bool(d))
        per_dir.append((out, fin if cell == "lstm" else (fin,)))
    out = np.concatenate([per_dir[0][0], per_dir[1][0]], axis=-1)
    finals = tuple(np.stack([per_dir[0][1][k], per_dir[1][1][k]]) for k in range(len(per_dir[0][1])))
    return out, finals


def _loss(cell, **kw):
    """Nonlinear in outputs and every final state, so cotangents differ per element."""

    def f(pf, pb, x, state):
        out, finals = _bi(cell, pf, pb, x, initial_state=state, **kw)
        acc = jnp.promote_types(out.dtype, jnp.float32)
        total = jnp.sum(jnp.sin(out.astype(acc)) * jnp.arange(1, out.shape[1] + 1)[None, :, None])
        for s in finals:
            total = total + jnp.sum(jnp.cos(s.astype(acc)) * jnp.arange(1, 3)[:, None, None])
        return total

    return f


# ---------------------------------------------------------------------------------------------
# shapes and forward equality


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("fused", [True, False])
def test_shapes_and_dtypes(cell, dtype, fused):
    pf, pb = _params(cell, dtype)
    out, finals = _bi(cell, pf, pb, _x(dtype), fused=fused)
    assert out.shape == (B, T, 2 * H) and out.dtype == dtype
    for s in finals:
        assert s.shape == (2, B, H) and s.dtype == dtype


# Every layout with and without the hoisted input matmul, without and with lengths (0, partial,
# full) and an initial state; a subset of the full grid to keep compile time down.
REF_CASES = [
    ("unfused", None, False), ("unfused", LENS, True),
    ("batched-step", None, False), ("batched-step", LENS, True), ("batched-hoist", LENS, True),
    ("split-hoist", None, True), ("split-step", LENS, False),
    ("blockdiag-step", None, True), ("blockdiag-hoist", LENS, True),
    ("concat-step", LENS, True),  # for the GRU "concat" multiplies as "batched"
]


@pytest.mark.parametrize("cell,variant,lengths,with_state",
                         [("lstm",) + c for c in REF_CASES] + [("gru",) + c for c in REF_CASES[1::2]],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_matches_reference(cell, lengths, with_state, variant):
    pf, pb = _params(cell)
    x = _x()
    state = _state(cell) if with_state else None
    if variant == "unfused":
        kw = dict(fused=False)
    else:
        layout, hoist = variant.split("-")
        kw = dict(layout=layout, hoist_input=hoist == "hoist")
    out, finals = _bi(cell, pf, pb, x, initial_state=state, lengths=lengths, **kw)
    ref_out, ref_finals = _reference(cell, pf, pb, x, state, lengths)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for s, r in zip(finals, ref_finals):
        np.testing.assert_allclose(s, r, rtol=1e-5, atol=1e-5)
    if lengths is not None:
        assert np.all(np.asarray(out)[2] == 0.0)  # length 0: all padding, both directions
        assert np.all(np.asarray(out)[1, 2:] == 0.0)  # past the end of a partial sequence
        h0 = np.zeros((2, B, H)) if state is None else np.asarray(state[0] if cell == "lstm" else state)
        np.testing.assert_allclose(finals[0][:, 2], h0[:, 2])  # length 0 keeps the initial state


@pytest.mark.parametrize("cell", CELLS)
def test_fused_equals_unfused_bfloat16(cell):
    pf, pb = _params(cell, jnp.bfloat16)
    x = _x(jnp.bfloat16)
    fused, ff = _bi(cell, pf, pb, x, lengths=LENS)
    plain, fp = _bi(cell, pf, pb, x, lengths=LENS, fused=False)
    ref, rf = _reference(cell, pf, pb, np.asarray(x, np.float32), None, LENS)
    # Same maths in the same dtypes: fused and unfused agree closely; both near float64.
    np.testing.assert_allclose(np.asarray(fused, np.float32), np.asarray(plain, np.float32), atol=2e-2)
    np.testing.assert_allclose(np.asarray(fused, np.float32), ref, atol=5e-2)
    for a, b, r in zip(ff, fp, rf):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=2e-2)
        np.testing.assert_allclose(np.asarray(a, np.float32), r, atol=5e-2)
    g = jax.grad(_loss(cell, lengths=LENS), argnums=(0, 1, 2))(pf, pb, x, None)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(g))


# ---------------------------------------------------------------------------------------------
# gradients

from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _grads(losses, *args):
    """Gradients (wrt every argument) of each loss, all in one compiled program."""
    n = len(args)
    return jax.jit(lambda *a: [jax.grad(f, argnums=tuple(range(n)))(*a) for f in losses],
                   compiler_options=FAST_COMPILE)(*args)


@pytest.mark.parametrize("cell,layout,hoist,lengths", [
    ("lstm", "split", False, LENS), ("lstm", "blockdiag", True, None), ("lstm", "concat", False, LENS),
    ("gru", "batched", False, LENS),
], ids=["lstm-split-step-lengths", "lstm-blockdiag-hoist-full", "lstm-concat-step-lengths",
        "gru-batched-step-lengths"])
def test_custom_grad_equals_autodiff_float64(cell, lengths, layout, hoist):
    with jax.enable_x64(True):
        pf, pb = jax.tree.map(lambda a: a.astype(jnp.float64), _params(cell))
        x = _x().astype(jnp.float64)
        state = jax.tree.map(lambda a: a.astype(jnp.float64), _state(cell))
        kw = dict(lengths=lengths, layout=layout, hoist_input=hoist)
        losses = [_loss(cell, backward="custom", **kw), _loss(cell, backward="autodiff", **kw)]
        if layout == "split":  # and both equal the two-scan layer's gradients (once, to save compiles)
            losses.append(_loss(cell, fused=False, lengths=lengths))
        g_custom, g_auto, *g_unfused = _grads(losses, pf, pb, x, state)
        for a, b in zip(jax.tree.leaves(g_custom), jax.tree.leaves(g_auto)):
            assert a.dtype == jnp.float64
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
        for g in g_unfused:
            for a, c in zip(jax.tree.leaves(g_custom), jax.tree.leaves(g)):
                np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backward", ["custom", "autodiff"])
def test_check_grads_float64(cell, backward):
    with jax.enable_x64(True):
        pf, pb = jax.tree.map(lambda a: a.astype(jnp.float64), _params(cell))
        x = _x(b=2).astype(jnp.float64)[:, :4]
        lens = jnp.array([4, 2], jnp.int32)

        def f(pf, pb, x):
            out, finals = _bi(cell, pf, pb, x, lengths=lens, backward=backward)
            return jnp.sum(jnp.sin(out)) + sum(jnp.sum(s ** 2) for s in finals)

        check_grads(f, (pf, pb, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_forward_mode_autodiff_works_and_custom_says_how():
    pf, pb = _params("lstm")
    x = _x()
    f = lambda x, b: lstm_bidirectional_scan(pf, pb, x, lengths=LENS, backward=b)[0]  # noqa: E731
    _, tangent = jax.jvp(lambda x: f(x, "autodiff"), (x,), (jnp.ones_like(x),))
    assert tangent.shape == (B, T, 2 * H)
    # The autodiff tangent equals the custom VJP's transpose: <J v, u> == <v, J^T u>.
    u = jax.random.normal(jax.random.PRNGKey(5), tangent.shape)
    _, vjp = jax.vjp(lambda x: f(x, "custom"), x)
    np.testing.assert_allclose(jnp.sum(tangent * u), jnp.sum(jnp.ones_like(x) * vjp(u)[0]), rtol=1e-4)
    with pytest.raises(TypeError, match="backward='autodiff'"):
        jax.jvp(lambda x: f(x, "custom"), (x,), (jnp.ones_like(x),))
    with pytest.raises(TypeError, match="backward='autodiff'"):
        jax.jacfwd(lambda x: gru_bidirectional_scan(*_params("gru"), x)[0])(x)


# ---------------------------------------------------------------------------------------------
# transformations


@pytest.mark.parametrize("cell", CELLS)
def test_jit_and_vmap(cell):
    pf, pb = _params(cell)
    x = _x()
    eager = _bi(cell, pf, pb, x, lengths=LENS)
    jitted = jax.jit(lambda pf, pb, x, l: _bi(cell, pf, pb, x, lengths=l))(pf, pb, x, LENS)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # vmap over an extra leading axis of x and lengths (e.g. several batches of sequences)
    xs = jnp.stack([x, x[::-1]])
    ls = jnp.stack([jnp.asarray(LENS), jnp.asarray(LENS[::-1])])
    out, finals = jax.vmap(lambda x, l: _bi(cell, pf, pb, x, lengths=l))(xs, ls)
    ref_out, ref_finals = _reference(cell, pf, pb, x[::-1], None, LENS[::-1])
    np.testing.assert_allclose(out[1], ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(finals[0][1], ref_finals[0], rtol=1e-5, atol=1e-5)
    if cell == "gru":  # the custom backward under vmap: once is enough (same plumbing)
        return
    # grad of a vmapped loss runs the custom backward under vmap
    g = jax.grad(lambda xs: jnp.sum(jax.vmap(lambda x, l: _bi(cell, pf, pb, x, lengths=l)[0])(xs, ls) ** 2))(xs)
    g0 = jax.grad(lambda x: jnp.sum(_bi(cell, pf, pb, x, lengths=LENS, backward="autodiff")[0] ** 2))(x)
    np.testing.assert_allclose(g[0], g0, rtol=1e-4, atol=1e-5)


def test_traced_lengths_are_clipped():
    pf, pb = _params("lstm")
    x = _x()
    out = jax.jit(lambda l: lstm_bidirectional_scan(pf, pb, x, lengths=l)[0])(jnp.array([9, -1, 2]))
    ref, _ = _reference("lstm", pf, pb, x, None, np.array([T, 0, 2]))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def _count_while(f, *args) -> int:
    return len(re.findall(r"stablehlo\.while", jax.jit(f).lower(*args).as_text()))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [None, LENS], ids=["full", "lengths"])
def test_fused_is_one_forward_loop(cell, lengths):
    pf, pb = _params(cell)
    x = _x()
    fwd = lambda x, fused: _bi(cell, pf, pb, x, lengths=lengths, fused=fused)[0]  # noqa: E731
    loss = lambda x, fused: jnp.sum(fwd(x, fused) ** 2)  # noqa: E731
    assert _count_while(lambda x: fwd(x, True), x) == 1
    assert _count_while(lambda x: fwd(x, False), x) == 2
    assert _count_while(jax.grad(lambda x: loss(x, True)), x) == 2  # one forward + one backward
    assert _count_while(jax.grad(lambda x: loss(x, False)), x) == 4
    hlo = jax.jit(lambda x: fwd(x, True)).lower(x).as_text(debug_info=True)
    assert "recurrence" in hlo


# ---------------------------------------------------------------------------------------------
# errors


def test_errors_name_the_argument():
    pf, pb = _params("lstm")
    x = _x()
    op = lstm_bidirectional_scan
    with pytest.raises(ValueError, match=r"params_fwd.w_ih. and .params_bwd.w_ih. must have the same shape"):
        op(pf, init_lstm_params(jax.random.PRNGKey(3), I, H + 1), x)
    with pytest.raises(ValueError, match=r"lstm_bidirectional_scan: `x` must have shape"):
        op(pf, pb, x[0])
    with pytest.raises(ValueError, match=r"feature size of `x`.*params_fwd/params_bwd.w_ih"):
        op(pf, pb, x[..., :3])
    with pytest.raises(TypeError, match=r"`x` must be a floating-point"):
        op(pf, pb, jnp.ones((B, T, I), jnp.int32))
    with pytest.raises(ValueError, match=r"`lengths` values must be in \[0, time=6\]"):
        op(pf, pb, x, lengths=np.array([7, 1, 1]))
    with pytest.raises(ValueError, match=r"`lengths` must have shape \[batch\]"):
        op(pf, pb, x, lengths=np.array([1, 1]))
    with pytest.raises(ValueError, match=r"`initial_state\[0\] \(h0\)` must have shape \[2, batch, hidden\]"):
        op(pf, pb, x, initial_state=(jnp.zeros((B, H)), jnp.zeros((B, H))))
    with pytest.raises(ValueError, match=r"`initial_state` must be a pair"):
        op(pf, pb, x, initial_state=jnp.zeros((2, B, H)))
    with pytest.raises(ValueError, match=r"`backward` must be"):
        op(pf, pb, x, backward="manual")
    with pytest.raises(ValueError, match=r"`layout` must be one of"):
        op(pf, pb, x, layout="rows")
    with pytest.raises(TypeError, match=r"`fused` must be a bool"):
        op(pf, pb, x, fused="yes")
    with pytest.raises(ValueError, match=r"`unroll` must be"):
        op(pf, pb, x, unroll=0)
    with pytest.raises(ValueError, match=r"`hoist_input` must be"):
        op(pf, pb, x, hoist_input="yes")
    with pytest.raises(TypeError, match=r"`params_bwd` must be a LSTMParams"):
        op(pf, object(), x)
    gf, gb = _params("gru")
    with pytest.raises(ValueError, match=r"gru_bidirectional_scan: `initial_state` must have shape \[2, batch"):
        gru_bidirectional_scan(gf, gb, x, initial_state=jnp.zeros((B, H)))
