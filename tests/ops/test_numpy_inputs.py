"""Every public op of jaxseq.ops called eagerly with NumPy arrays, lists and Python scalars.

Each result is compared with the same op on jax arrays (or with a float64 reference), so a
conversion that changed values would fail, not only one that crashed.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops import attention as A
from jaxseq.ops import linear_recurrence as LR
from jaxseq.ops import masks as M
from jaxseq.ops import positional as P
from jaxseq.ops import rnn as R

RNG = np.random.default_rng(0)


def _np(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol)


def _numpy_params(params):
    return type(params)(*(np.asarray(p) for p in params))


# ---------------------------------------------------------------------------------------------------
# attention: the reported crash was blockwise on NumPy input whose length is a multiple of the tile
# (no padding, so the blocks stayed NumPy and a traced tile index hit them inside fori_loop)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["naive", "vmapped", "blockwise", "xla"])
def test_attention_backends_numpy(backend):
    q, k, v = _np((2, 16, 2, 8)), _np((2, 16, 2, 8)), _np((2, 16, 2, 8))
    kw = dict(is_causal=True, kv_lengths=[16, 9], q_lengths=np.array([16, 12]), scale=1)
    if backend == "blockwise":
        kw.update(block_q=8, block_kv=8)
    out = A.attention(q, k, v, backend=backend, **kw)
    ref = A.attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), backend="naive",
                      is_causal=True, kv_lengths=jnp.array([16, 9]), q_lengths=jnp.array([16, 12]),
                      scale=1.0)
    assert isinstance(out, jax.Array)
    _close(out, ref)


def test_attention_functions_numpy_and_lists():
    q, k, v = _np((1, 8, 2, 4)), _np((1, 8, 1, 4)), _np((1, 8, 1, 4))   # grouped: 2 q heads, 1 kv head
    ref = A.dot_product_attention_reference(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), is_causal=True)
    for fn in (A.dot_product_attention_reference, A.vmapped_attention, A.jax_nn_attention,
               lambda *a, **kw: A.blockwise_attention(*a, block_q=8, block_kv=8, **kw)):
        _close(fn(q, k, v, is_causal=True), ref)
    # nested lists and a NumPy mask
    mask = np.tril(np.ones((8, 8), bool))[None, None]
    _close(A.attention(q.tolist(), k.tolist(), v.tolist(), backend="naive", mask=mask), ref)
    assert A.select_backend(q, k, v) in ("naive", "blockwise")
    assert A.cudnn_supported(q, k, v) is False or jax.default_backend() == "gpu"
    with pytest.raises(TypeError, match=r"\bq\b must be an array"):
        A.attention("not an array", k, v)


def test_attention_auto_routes_numpy_to_blockwise():
    """"auto" picks blockwise from AUTO_BLOCKWISE_MIN_LEN positions on CPU: the reported path."""
    if jax.default_backend() == "gpu":
        pytest.skip("CPU routing")
    T = A.AUTO_BLOCKWISE_MIN_LEN
    q = _np((1, T, 1, 8))
    assert A.select_backend(q, q, q) == "blockwise"
    out = A.attention(q, q, q, is_causal=True)
    ref = A.attention(jnp.asarray(q), jnp.asarray(q), jnp.asarray(q), backend="naive", is_causal=True)
    _close(out, ref, tol=2e-5)


# ---------------------------------------------------------------------------------------------------
# RNN scans
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_scans_numpy(cell):
    init, scan, ref_fn = ((R.init_lstm_params, R.lstm_scan, R.lstm_reference) if cell == "lstm"
                          else (R.init_gru_params, R.gru_scan, R.gru_reference))
    params = _numpy_params(init(np.asarray(jax.random.PRNGKey(0)), 3, 4))
    x = _np((2, 5, 3))
    h0 = _np((2, 4))
    state = (h0, _np((2, 4))) if cell == "lstm" else h0
    out, final = scan(params, x, lengths=[5, 2], reverse=True, initial_state=state)
    ref_out, ref_final = ref_fn(params, x, lengths=[5, 2], reverse=True, initial_state=state)
    _close(out, ref_out)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(ref_final)):
        _close(a, b)
    # float64 NumPy input is converted like jnp.asarray would (float32 unless x64 is enabled)
    out64, _ = scan(params, x.astype(np.float64))
    assert out64.dtype == jnp.asarray(x.astype(np.float64)).dtype


# ---------------------------------------------------------------------------------------------------
# linear recurrences and the minimal RNNs
# ---------------------------------------------------------------------------------------------------


def test_linear_recurrences_numpy_and_scalars():
    a = RNG.uniform(0.5, 0.9, (2, 6, 3)).astype(np.float32)
    b = _np((2, 6, 3))
    h0 = _np((2, 3))
    ref = LR.linear_recurrence_reference(a, b, h0=h0)
    for method in LR.RECURRENCE_METHODS:
        _close(LR.linear_recurrence(a, b, h0=h0, method=method), ref)
    # Python scalars broadcast: a constant decay, a scalar initial state
    _close(LR.linear_recurrence(0.5, b, h0=1.0), LR.linear_recurrence_reference(np.full_like(b, 0.5), b,
                                                                                h0=np.ones((2, 3))))
    _close(LR.linear_recurrence(a, 1, method="sequential"), LR.linear_recurrence_reference(a, np.ones_like(a)))
    bp = np.abs(b) + 0.1
    log_h = LR.log_linear_recurrence(np.log(a), np.log(bp), log_h0=np.log(np.abs(h0) + 0.1))
    _close(np.exp(log_h), LR.linear_recurrence_reference(a, bp, h0=np.abs(h0) + 0.1), tol=1e-4)
    with pytest.raises(ValueError, match=r"`a` must have shape \[batch, time, features\] \(rank 3\)"):
        LR.linear_recurrence(0.5, 0.5)            # no [batch, time, features] shape at all
    with pytest.raises(TypeError, match="`b` must be an array"):
        LR.linear_recurrence(a, object())


@pytest.mark.parametrize("variant", ["mingru", "minlstm"])
def test_min_rnns_numpy(variant):
    init, fn, ref_fn = ((LR.init_mingru_params, LR.mingru, LR.mingru_reference) if variant == "mingru"
                        else (LR.init_minlstm_params, LR.minlstm, LR.minlstm_reference))
    params = _numpy_params(init(jax.random.PRNGKey(1), 3, 4))
    x = _np((2, 5, 3))
    h0 = np.abs(_np((2, 4))) + 0.1
    ref_out, ref_h = ref_fn(params, x, h0=h0)
    for mode in LR.MIN_RNN_MODES:
        out, h = fn(params, x, h0=h0, mode=mode)
        _close(out, ref_out, tol=1e-4)
        _close(h, ref_h, tol=1e-4)
    out, _ = fn(params, x, h0=0.5, mode="log")               # scalar h0 broadcasts
    _close(out, ref_fn(params, x, h0=np.full((2, 4), 0.5))[0], tol=1e-4)
    _close(LR.g(np.array([-1.0, 0.0, 2.0], np.float32)), [1 / (1 + np.e), 0.5, 2.5])
    _close(LR.log_g(np.array([-1.0, 2.0], np.float32)), np.log([1 / (1 + np.e), 2.5]))


# ---------------------------------------------------------------------------------------------------
# masks and positions
# ---------------------------------------------------------------------------------------------------


def test_masks_and_positions_numpy():
    np.testing.assert_array_equal(M.causal_mask(np.int64(3), 4), np.tril(np.ones((3, 4), bool)))
    np.testing.assert_array_equal(M.padding_mask([1, 3], 3), [[True, False, False], [True, True, True]])
    m = M.make_attention_mask(3, 3, is_causal=True, q_lengths=np.array([3, 1]), kv_lengths=[2, 3])
    assert m.shape == (2, 1, 3, 3) and not bool(m[1, 0, 1:].any()) and not bool(m[0, 0, :, 2].any())
    assert float(M.mask_value(np.float32)) == float(np.finfo(np.float32).min)
    table = P.sinusoidal_encoding(np.int64(5), 6)
    assert table.shape == (5, 6)
    x = _np((2, 4, 1, 6))
    _close(P.apply_rope(x), P.rope_reference(x))
    _close(P.apply_rope(x.tolist(), positions=[3, 4, 5, 6]), P.rope_reference(x, np.arange(3, 7)))
    cos, sin = P.rope_angles(np.arange(4), 6)
    assert cos.shape == sin.shape == (4, 3)
    with pytest.raises(TypeError, match="floating"):
        P.apply_rope(np.ones((1, 2, 1, 4), np.int32))
