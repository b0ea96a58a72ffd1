"""Forward-mode differentiation (jax.jvp / jax.jacfwd) through the ops with a custom VJP.

backward="autodiff" must give forward-mode derivatives that match central finite differences and
the reverse-mode Jacobian; the default (custom VJP) must fail with a TypeError that names the
option. Reverse and forward-over-reverse (hessian-vector products) keep working with the default.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops.attention import attention, blockwise_attention
from jaxseq.ops.rnn import gru_scan, init_gru_params, init_lstm_params, lstm_scan

FIX = r"forward-mode differentiation \(jax\.jvp, jax\.jacfwd\) needs backward='autodiff'"
JAX_MESSAGE = "can't apply forward-mode autodiff"

LENS = jnp.array([6, 3], jnp.int32)


def _scan_fn(cell, backward, **kw):
    """x [2, 6, 3] -> outputs [2, 6, 4] of a scan with reverse + lengths + dilation, the options that
    route through the time permutation (itself a custom VJP in the default mode)."""
    if cell == "lstm":
        p = init_lstm_params(jax.random.PRNGKey(0), 3, 4)
        return lambda x: lstm_scan(p, x, lengths=LENS, reverse=True, dilation=2, backward=backward, **kw)[0]
    p = init_gru_params(jax.random.PRNGKey(0), 3, 4)
    return lambda x: gru_scan(p, x, lengths=LENS, reverse=True, dilation=2, backward=backward, **kw)[0]


def _attn_fn(backward, k, v):
    return lambda q: blockwise_attention(q, k, v, is_causal=True, kv_lengths=jnp.array([7, 4]),
                                         q_lengths=jnp.array([7, 5]), block_q=3, block_kv=2,
                                         backward=backward)


def _qkv(kv_heads=1):
    ks = jax.random.split(jax.random.PRNGKey(3), 3)
    q = jax.random.normal(ks[0], (2, 7, 2, 4))
    k = jax.random.normal(ks[1], (2, 7, kv_heads, 4))
    v = jax.random.normal(ks[2], (2, 7, kv_heads, 4))
    return q, k, v


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _jit(f):
    return jax.jit(f, compiler_options=FAST_COMPILE)


def _central_difference(f, x, t, eps):
    with jax.enable_x64(True):
        x64, t64 = jnp.asarray(x, jnp.float64), jnp.asarray(t, jnp.float64)
        f = _jit(f)  # one compile for both evaluations
        return (np.asarray(f(x64 + eps * t64), np.float64) - np.asarray(f(x64 - eps * t64), np.float64)) / (2 * eps)


# ---------------------------------------------------------------------------------------------------
# backward="autodiff": jvp and jacfwd are right
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_scan_autodiff_jvp_and_jacfwd(cell):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    t = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    f = _scan_fn(cell, "autodiff")
    _, tangent = jax.jvp(f, (x,), (t,))
    with jax.enable_x64(True):   # float64 finite differences of the same op (params cast to x's dtype)
        fd = _central_difference(f, x, t, 1e-6)
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-4, atol=1e-5)
    # the forward Jacobian equals the reverse one of the default (custom VJP) path
    jac_fwd = jax.jacfwd(f)(x)
    jac_rev = jax.jacrev(_scan_fn(cell, "auto"))(x)
    np.testing.assert_allclose(np.asarray(jac_fwd), np.asarray(jac_rev), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_blockwise_autodiff_jvp_and_jacfwd(kv_heads):
    q, k, v = _qkv(kv_heads)
    t = jax.random.normal(jax.random.PRNGKey(4), q.shape)
    f = _attn_fn("autodiff", k, v)
    naive = lambda q: attention(q, k, v, backend="naive", is_causal=True,  # noqa: E731
                                kv_lengths=jnp.array([7, 4]), q_lengths=jnp.array([7, 5]))

    # Everything in one compiled program (compile time is this test's cost; eager forward mode through
    # blockwise_attention is covered by test_attention_dispatch_passes_backward).
    def derivatives(q, t):
        out, tangent = jax.jvp(f, (q,), (t,))
        return (out, tangent, _attn_fn("auto", k, v)(q),
                jax.jacfwd(f)(q), jax.jacrev(_attn_fn("custom", k, v))(q), jax.jacrev(naive)(q))

    out, tangent, out_default, jac_fwd, jac_rev, jac_naive = _jit(derivatives)(q, t)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out_default), rtol=1e-6, atol=1e-6)
    with jax.enable_x64(True):
        fd = _central_difference(lambda q: _attn_fn("autodiff", k.astype(q.dtype), v.astype(q.dtype))(q),
                                 q, t, 1e-6)
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-4, atol=1e-5)
    # jacfwd of the autodiff path == jacrev of the custom VJP and of the naive op
    np.testing.assert_allclose(np.asarray(jac_fwd), np.asarray(jac_rev), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jac_fwd), np.asarray(jac_naive), rtol=1e-5, atol=1e-6)


def test_blockwise_autodiff_reverse_mode_matches_custom():
    """backward="autodiff" is also a working reverse-mode path (grad wrt q, k, v)."""
    q, k, v = _qkv(1)
    w = jax.random.normal(jax.random.PRNGKey(5), q.shape)

    def loss(backward):
        return lambda q, k, v: jnp.sum(blockwise_attention(q, k, v, is_causal=True, block_q=3, block_kv=2,
                                                           kv_lengths=jnp.array([7, 4]),
                                                           backward=backward) * w)

    g_auto = jax.grad(loss("autodiff"), argnums=(0, 1, 2))(q, k, v)
    g_custom = jax.grad(loss("custom"), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(g_auto, g_custom):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_attention_dispatch_passes_backward():
    q, k, v = _qkv(2)
    t = jnp.ones_like(q)
    f = lambda q: attention(q, k, v, backend="blockwise", backward="autodiff", is_causal=True)
    _, tangent = jax.jvp(f, (q,), (t,))
    _, ref = jax.jvp(lambda q: attention(q, k, v, backend="naive", is_causal=True), (q,), (t,))
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(ref), rtol=1e-5, atol=1e-6)
    # backends without a custom VJP accept every value and differentiate forward regardless
    for backend in ("naive", "vmapped", "xla"):
        g = lambda q: attention(q, k, v, backend=backend, backward="custom", is_causal=True)
        np.testing.assert_allclose(np.asarray(jax.jvp(g, (q,), (t,))[1]), np.asarray(ref), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="backward must be one of"):
        attention(q, k, v, backend="naive", backward="forward")


# ---------------------------------------------------------------------------------------------------
# the default path: a clear error naming the option
# ---------------------------------------------------------------------------------------------------


def _forward_mode_calls(f, x):
    t = jnp.ones_like(x)
    return {
        "jvp": lambda: jax.jvp(f, (x,), (t,)),
        "jacfwd": lambda: jax.jacfwd(f)(x),
        "jit(jvp)": lambda: jax.jit(lambda x: jax.jvp(f, (x,), (t,)))(x),
        "jvp(vmap)": lambda: jax.jvp(jax.vmap(f), (x[None],), (t[None],)),
    }


@pytest.mark.parametrize("op", ["lstm", "gru", "blockwise"])
def test_default_forward_mode_names_the_option(op):
    if op == "blockwise":
        q, k, v = _qkv(1)
        f, x, where = _attn_fn("auto", k, v), q, "blockwise_attention"
    else:
        f, x, where = _scan_fn(op, "auto"), jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3)), f"{op}_scan"
    for name, call in _forward_mode_calls(f, x).items():
        with pytest.raises(TypeError, match=f"{where}: {FIX}"):
            call()
    # The documented remaining case: jvp of an already-jitted function fails while JAX compiles it,
    # after the op returned, so JAX's own message shows (still a TypeError).
    with pytest.raises(TypeError, match=JAX_MESSAGE):
        jax.jvp(jax.jit(f), (x,), (jnp.ones_like(x),))


def test_custom_backward_rejects_forward_mode_also_when_explicit():
    f = _scan_fn("lstm", "custom")
    with pytest.raises(TypeError, match=FIX):
        jax.jacfwd(f)(jnp.ones((2, 6, 3)))


def test_forward_over_reverse_still_works_with_custom_vjp():
    """jax.jvp of jax.grad (a Hessian-vector product) differentiates the custom VJP's rules, which
    JAX supports; the forward-mode check must not reject it. Checked against backward="autodiff"."""
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    t = jax.random.normal(jax.random.PRNGKey(2), x.shape)

    def hvp(backward, x, t):
        f = _scan_fn("lstm", backward)
        loss = lambda x: jnp.sum(f(x) ** 2)
        return jax.jvp(jax.grad(loss), (x,), (t,))[1]

    q, k, v = _qkv(1)
    tq = jnp.ones_like(q)
    hvp_attn = lambda b, q, tq: jax.jvp(jax.grad(lambda q: jnp.sum(_attn_fn(b, k, v)(q) ** 2)), (q,), (tq,))[1]
    # The four products in one compiled program (tracing is where a forward-mode check would reject).
    scan_custom, scan_auto, attn_custom, attn_auto = _jit(
        lambda x, t, q, tq: (hvp("auto", x, t), hvp("autodiff", x, t),
                             hvp_attn("auto", q, tq), hvp_attn("autodiff", q, tq)))(x, t, q, tq)
    np.testing.assert_allclose(np.asarray(scan_custom), np.asarray(scan_auto), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(attn_custom), np.asarray(attn_auto), rtol=1e-4, atol=1e-5)
