"""Tests for jaxseq.ops.linear_recurrence: scans, minGRU/minLSTM, references, gradients, errors.

Shapes are tiny (the machine is shared); T is odd / not a power of two so the associative scan's
uneven split is exercised.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxseq.ops.linear_recurrence import (
    MIN_RNN_MODES,
    MinGRUParams,
    MinLSTMParams,
    init_mingru_params,
    init_minlstm_params,
    linear_recurrence,
    linear_recurrence_reference,
    log_linear_recurrence,
    mingru,
    mingru_reference,
    minlstm,
    minlstm_reference,
)

B, T, F = 2, 13, 3
I, H = 4, 5

VARIANTS = {
    "mingru": (init_mingru_params, mingru, mingru_reference),
    "minlstm": (init_minlstm_params, minlstm, minlstm_reference),
}


def _ab(seed: int = 0, shape=(B, T, F), a_shape=None):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, a_shape or shape).astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    return a, b


def _x(seed: int = 1, shape=(B, T, I)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _h0(seed: int = 2, shape=(B, H)):
    # positive, so the same h0 is valid in every mode (log mode needs h0 > 0)
    return np.random.default_rng(seed).uniform(0.1, 1.5, shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# linear_recurrence / log_linear_recurrence
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("a_shape", [(B, T, F), (1, T, F)], ids=["a_full", "a_bcast"])
def test_linear_recurrence_matches_reference(method, reverse, with_h0, a_shape):
    a, b = _ab(a_shape=a_shape)
    h0 = np.random.default_rng(3).normal(size=(B, F)).astype(np.float32) if with_h0 else None
    out = linear_recurrence(a, b, h0=h0, reverse=reverse, method=method)
    assert out.shape == (B, T, F) and out.dtype == jnp.float32
    ref = linear_recurrence_reference(a, b, h0=h0, reverse=reverse)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_recurrence_dtypes(dtype):
    a, b = _ab()
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    outs = [linear_recurrence(a, b, method=m) for m in ("associative", "sequential")]
    ref = linear_recurrence_reference(np.asarray(a, np.float64), np.asarray(b, np.float64))
    tol = 1e-5 if dtype == jnp.float32 else 2e-2  # bf16: only the final cast rounds (f32 accumulation)
    for out in outs:
        assert out.dtype == dtype and out.shape == (B, T, F)
        np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_log_linear_recurrence_matches_reference(reverse, with_h0):
    a, b = _ab()
    b = np.abs(b) + 0.1
    h0 = _h0(shape=(B, F)) if with_h0 else None
    log_h = log_linear_recurrence(np.log(a), np.log(b), reverse=reverse,
                                  log_h0=None if h0 is None else np.log(h0))
    ref = linear_recurrence_reference(a, b, h0=h0, reverse=reverse)
    np.testing.assert_allclose(np.exp(np.asarray(log_h)), ref, rtol=1e-5)


def test_log_space_stays_finite_where_naive_product_underflows():
    long_t = 2000
    rng = np.random.default_rng(4)
    a = rng.uniform(0.01, 0.1, (1, long_t, 4)).astype(np.float32)
    b = rng.uniform(0.5, 1.5, (1, long_t, 4)).astype(np.float32)
    # The closed form h_t = P_t * sum_s b_s / P_s with P = cumprod(a) breaks in float32 ...
    prod = jnp.cumprod(jnp.asarray(a), axis=1)
    naive = prod * jnp.cumsum(jnp.asarray(b) / prod, axis=1)
    assert float(prod[0, -1, 0]) == 0.0 and not bool(jnp.all(jnp.isfinite(naive)))
    # ... while the log-space scan stays finite and agrees with the linear-space scans.
    both = jax.jit(lambda a, b: (log_linear_recurrence(jnp.log(a), jnp.log(b)),
                                 linear_recurrence(a, b, method="associative")))
    log_h, lin = both(a, b)
    assert bool(jnp.all(jnp.isfinite(log_h)))
    ref = linear_recurrence_reference(a, b)
    np.testing.assert_allclose(np.exp(np.asarray(log_h)), ref, rtol=2e-3)
    np.testing.assert_allclose(np.exp(np.asarray(log_h)), np.asarray(lin), rtol=2e-3)


# ---------------------------------------------------------------------------------------------
# minGRU / minLSTM
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mode", MIN_RNN_MODES)
@pytest.mark.parametrize("with_h0", [False, True])
def test_min_rnn_matches_reference(variant, mode, with_h0):
    init, fn, reference = VARIANTS[variant]
    params = init(jax.random.key(0), I, H)
    x = _x()
    h0 = _h0() if with_h0 else None
    out, h_final = fn(params, x, h0=h0, mode=mode)
    assert out.shape == (B, T, H) and h_final.shape == (B, H) and out.dtype == jnp.float32
    ref_out, ref_h = reference(params, x, h0=h0)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h_final), ref_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mode", MIN_RNN_MODES)
def test_min_rnn_bfloat16(variant, mode):
    init, fn, reference = VARIANTS[variant]
    params = init(jax.random.key(0), I, H, dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.bfloat16 for p in params)
    x = jnp.asarray(_x(), jnp.bfloat16)
    out, h_final = fn(params, x, mode=mode)
    assert out.dtype == jnp.bfloat16 and h_final.dtype == jnp.bfloat16
    assert out.shape == (B, T, H) and h_final.shape == (B, H)
    ref_out, _ = reference(params, np.asarray(x, np.float64))
    np.testing.assert_allclose(np.asarray(out, np.float64), ref_out, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_min_rnn_log_mode_agrees_on_long_sequence(variant):
    """T=600 (the running product of the decays underflows float32) log mode vs lax.scan mode."""
    init, fn, _ = VARIANTS[variant]
    params = init(jax.random.key(1), I, H)
    x = _x(shape=(1, 600, I))
    both = jax.jit(lambda p, x: (fn(p, x, mode="log")[0], fn(p, x, mode="sequential")[0]))
    out_log, out_seq = map(np.asarray, both(params, x))
    assert np.all(np.isfinite(out_log))
    np.testing.assert_allclose(out_log, out_seq, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_check_grads(method, reverse):
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        a = jnp.asarray(rng.uniform(0.5, 1.0, (2, 5, 3)))
        b = jnp.asarray(rng.normal(size=(2, 5, 3)))
        h0 = jnp.asarray(rng.normal(size=(2, 3)))
        f = jax.jit(lambda a, b, h0: linear_recurrence(a, b, h0=h0, reverse=reverse, method=method))
        check_grads(f, (a, b, h0), order=1, modes=("rev",))


def test_log_linear_recurrence_check_grads():
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        log_a = jnp.asarray(np.log(rng.uniform(0.3, 1.0, (2, 5, 3))))
        log_b = jnp.asarray(rng.normal(size=(2, 5, 3)))
        log_h0 = jnp.asarray(rng.normal(size=(2, 3)))
        f = jax.jit(lambda la, lb, lh: log_linear_recurrence(la, lb, log_h0=lh))
        check_grads(f, (log_a, log_b, log_h0), order=1, modes=("rev",))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mode", MIN_RNN_MODES)
def test_min_rnn_check_grads(variant, mode):
    init, fn, _ = VARIANTS[variant]
    with jax.enable_x64(True):
        params = init(jax.random.key(2), 3, 2, dtype=jnp.float64)
        x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 4, 3)))
        h0 = jnp.asarray(np.random.default_rng(8).uniform(0.2, 1.0, (2, 2)))
        f = jax.jit(lambda p, x, h0: fn(p, x, h0=h0, mode=mode)[0])
        check_grads(f, (params, x, h0), order=1, modes=("rev",))


def test_linear_recurrence_grads_associative_equal_sequential():
    a, b = _ab(a_shape=(1, T, F))
    h0 = np.ones((B, F), np.float32)
    grads = {
        m: jax.jit(jax.grad(
            lambda a, b, h0: jnp.sum(jnp.sin(linear_recurrence(a, b, h0=h0, method=m))),
            argnums=(0, 1, 2)))(a, b, h0)
        for m in ("associative", "sequential")
    }
    for ga, gs in zip(grads["associative"], grads["sequential"]):
        assert ga.shape == gs.shape
        np.testing.assert_allclose(np.asarray(ga), np.asarray(gs), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mode", MIN_RNN_MODES)
def test_min_rnn_jit_vmap_grad(variant, mode):
    """jit + vmap + grad in one compiled function (one compile per case keeps the test fast); the
    gradients of every mode must equal those of the sequential (lax.scan) mode."""
    init, fn, reference = VARIANTS[variant]
    params = init(jax.random.key(4), I, H)
    x, h0 = _x(), _h0()
    xs = np.stack([x, 2 * x])

    def loss(p, x, m):
        return jnp.sum(fn(p, x, h0=h0, mode=m)[0] ** 2)

    @jax.jit
    def run(p, x, xs, h0):
        # h0 is traced here: the log-mode positivity check is skipped (not concrete), no error.
        out, h_final = fn(p, x, h0=h0, mode=mode)
        vm = jax.vmap(lambda x: fn(p, x, h0=h0, mode=mode)[0])(xs)
        grads = jax.grad(loss, argnums=(0, 1))(p, x, mode)
        grads_seq = jax.grad(loss, argnums=(0, 1))(p, x, "sequential")
        return out, h_final, vm, grads, grads_seq

    out, h_final, vm, grads, grads_seq = run(params, x, xs, h0)
    ref_out, ref_h = reference(params, x, h0=h0)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h_final), ref_h, rtol=1e-5, atol=1e-6)
    assert vm.shape == (2, B, T, H)
    np.testing.assert_allclose(np.asarray(vm[0]), ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(vm[1]), reference(params, 2 * x, h0=h0)[0], rtol=1e-5,
                               atol=1e-6)
    assert isinstance(grads[0], type(params))
    for g_m, g_s in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_seq)):
        assert bool(jnp.all(jnp.isfinite(g_m)))
        np.testing.assert_allclose(np.asarray(g_m), np.asarray(g_s), rtol=1e-4, atol=1e-5)


def test_linear_recurrence_vmap_jit():
    a, b = _ab()
    f = jax.jit(jax.vmap(lambda a, b: linear_recurrence(a[None], b[None])[0]))
    np.testing.assert_allclose(np.asarray(f(a, b)), linear_recurrence_reference(a, b), rtol=1e-5,
                               atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_errors_linear_recurrence():
    a, b = _ab()
    with pytest.raises(ValueError, match=r"`a` must have shape \[batch, time, features\]"):
        linear_recurrence(a[0], b)
    with pytest.raises(ValueError, match=r"`b` must have shape \[batch, time, features\]"):
        linear_recurrence(a, b[0])
    with pytest.raises(ValueError, match=r"`a` shape .* does not broadcast against `b`"):
        linear_recurrence(a[:, :4], b)
    with pytest.raises(ValueError, match=r"`method` must be one of .*associative.*sequential"):
        linear_recurrence(a, b, method="cuda")
    with pytest.raises(ValueError, match=r"`h0` must have shape \[batch, features\] = \(2, 3\)"):
        linear_recurrence(a, b, h0=np.zeros((B, F + 1), np.float32))
    with pytest.raises(TypeError, match=r"`b` must be a floating-point array"):
        linear_recurrence(a, np.ones((B, T, F), np.int32))
    with pytest.raises(ValueError, match=r"`log_a` must have shape"):
        log_linear_recurrence(a[0], b)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_errors_min_rnn(variant):
    init, fn, _ = VARIANTS[variant]
    params = init(jax.random.key(0), I, H)
    x = _x()
    with pytest.raises(ValueError, match=r"`x` must have shape \[batch, time, features\]"):
        fn(params, x[0])
    with pytest.raises(ValueError, match=r"`x` has 6 features .* `params` .* input size 4"):
        fn(params, _x(shape=(B, T, 6)))
    with pytest.raises(ValueError, match=r"`h0` must have shape \[batch, features\] = \(2, 5\)"):
        fn(params, x, h0=np.ones((B, H + 1), np.float32))
    with pytest.raises(ValueError, match=r"`mode` must be one of \('log', 'parallel', 'sequential'\)"):
        fn(params, x, mode="fast")
    with pytest.raises(ValueError, match=r"`h0` must be >= 0 in mode='log'"):
        fn(params, x, h0=np.full((B, H), -0.1, np.float32))
    # zero h0 is fine in every mode (log mode folds it in without log h0), and equals h0=None
    for mode in ("parallel", "log"):
        out0, _ = fn(params, x, h0=np.zeros((B, H), np.float32), mode=mode)
        out_none, _ = fn(params, x, mode=mode)
        np.testing.assert_allclose(np.asarray(out0), np.asarray(out_none), rtol=1e-6, atol=1e-7)


def test_param_types():
    assert isinstance(init_mingru_params(jax.random.key(0), I, H), MinGRUParams)
    p = init_minlstm_params(jax.random.key(0), I, H)
    assert isinstance(p, MinLSTMParams) and p.w_f.shape == (I, H) and p.b_h.shape == (H,)
    with pytest.raises(ValueError, match="`hidden_size` must be a positive int"):
        init_mingru_params(jax.random.key(0), I, 0)
