"""Argument handling that must not depend on whether a call is traced.

* ``lengths`` outside ``[0, time]``: a ValueError eagerly; under ``jit`` (values unknown) clipped to
  ``[0, time]`` -- checked against the eager call with the clipped lengths.
* ``h0 = 0`` in log mode: accepted eagerly and under ``jit``, with finite gradients equal to those
  of the linear-space mode.
* params as plain tuples/lists/dicts are converted; anything else is a TypeError naming the fields.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops import linear_recurrence as LR
from jaxseq.ops import rnn as R
from jaxseq.ops.attention import ATTENTION_BACKENDS, attention

B, T, I, H = 3, 6, 3, 4
BAD_LENGTHS = np.array([-2, 9, 4], np.int32)     # below 0, past the end, fine
CLIPPED = np.clip(BAD_LENGTHS, 0, T)


def _scan(cell):
    if cell == "lstm":
        return R.init_lstm_params(jax.random.PRNGKey(0), I, H), R.lstm_scan
    return R.init_gru_params(jax.random.PRNGKey(0), I, H), R.gru_scan


# ---------------------------------------------------------------------------------------------------
# lengths: eager error, traced clipping
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("options", [dict(), dict(reverse=True), dict(reverse=True, dilation=2)])
def test_rnn_lengths_clipped_under_jit(cell, options):
    params, scan = _scan(cell)
    x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    with pytest.raises(ValueError, match=r"`lengths` values must be in \[0, time=6\]"):
        scan(params, x, lengths=BAD_LENGTHS, **options)
    traced = jax.jit(lambda x, lens: scan(params, x, lengths=lens, **options))(x, BAD_LENGTHS)
    eager = scan(params, x, lengths=CLIPPED, **options)
    for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(eager)):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", [b for b in ATTENTION_BACKENDS if b != "cudnn"])
def test_attention_lengths_clipped_under_jit(backend):
    ks = jax.random.split(jax.random.PRNGKey(2), 3)
    q, k, v = (jax.random.normal(kk, (B, T, 2, 4)) for kk in ks)
    kv_bad, q_bad = BAD_LENGTHS, np.array([7, -1, 6], np.int32)
    tiles = dict(block_q=4, block_kv=4) if backend == "blockwise" else {}
    with pytest.raises(ValueError, match="kv_lengths must lie in"):
        attention(q, k, v, backend=backend, kv_lengths=kv_bad, **tiles)
    traced = jax.jit(lambda q, k, v, ql, kl: attention(q, k, v, backend=backend, is_causal=True, q_lengths=ql,
                                                       kv_lengths=kl, **tiles))(q, k, v, q_bad, kv_bad)
    eager = attention(q, k, v, backend="naive", is_causal=True, q_lengths=np.clip(q_bad, 0, T),
                      kv_lengths=CLIPPED)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=1e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------------------
# h0 = 0 in log mode
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["mingru", "minlstm"])
def test_zero_h0_log_mode_finite_gradients_under_jit(variant):
    init, fn = (LR.init_mingru_params, LR.mingru) if variant == "mingru" else (LR.init_minlstm_params, LR.minlstm)
    params = init(jax.random.PRNGKey(3), I, H)
    x = jax.random.normal(jax.random.PRNGKey(4), (B, T, I))
    h0 = jnp.zeros((B, H)).at[0].set(0.7)       # one sequence with a positive start, the rest zero

    def loss(mode):
        return lambda params, h0: jnp.sum(fn(params, x, h0=h0, mode=mode)[0] ** 2)

    g_log = jax.jit(jax.grad(loss("log"), argnums=(0, 1)))(params, h0)
    g_lin = jax.jit(jax.grad(loss("sequential"), argnums=(0, 1)))(params, h0)
    for a, b in zip(jax.tree.leaves(g_log), jax.tree.leaves(g_lin)):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-5)
    # eager and traced calls agree on accepting it
    np.testing.assert_allclose(np.asarray(fn(params, x, h0=h0)[0]),
                               np.asarray(jax.jit(lambda h: fn(params, x, h0=h)[0])(h0)), rtol=1e-6)


def test_negative_h0_log_mode_traced_is_floored_not_nan():
    params = LR.init_mingru_params(jax.random.PRNGKey(3), I, H)
    x = jax.random.normal(jax.random.PRNGKey(4), (B, T, I))
    out = jax.jit(lambda h: LR.mingru(params, x, h0=h)[0])(jnp.full((B, H), -100.0))
    assert np.all(np.isfinite(np.asarray(out))) and np.all(np.asarray(out) >= 0)
    assert np.all(np.asarray(out[:, 0]) <= 2 * np.finfo(np.float32).tiny)   # the floor: ~0, not NaN


def test_log_linear_recurrence_minus_inf_log_h0_is_zero_state():
    log_a = jnp.log(jax.random.uniform(jax.random.PRNGKey(5), (2, 5, 3), minval=0.2, maxval=0.9))
    log_b = jax.random.normal(jax.random.PRNGKey(6), (2, 5, 3))
    minus_inf = jnp.full((2, 3), -jnp.inf)
    np.testing.assert_allclose(np.asarray(LR.log_linear_recurrence(log_a, log_b, log_h0=minus_inf)),
                               np.asarray(LR.log_linear_recurrence(log_a, log_b)), rtol=1e-6)
    g = jax.jit(jax.grad(lambda l0, la: jnp.sum(jnp.exp(LR.log_linear_recurrence(la, log_b, log_h0=l0))),
                         argnums=(0, 1)))(minus_inf, log_a)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in g)


# ---------------------------------------------------------------------------------------------------
# params containers
# ---------------------------------------------------------------------------------------------------


PARAM_OPS = {
    "lstm_scan": (R.init_lstm_params, R.lstm_scan, R.LSTMParams),
    "gru_scan": (R.init_gru_params, R.gru_scan, R.GRUParams),
    "mingru": (LR.init_mingru_params, LR.mingru, LR.MinGRUParams),
    "minlstm": (LR.init_minlstm_params, LR.minlstm, LR.MinLSTMParams),
}


@pytest.mark.parametrize("op", list(PARAM_OPS))
def test_params_as_tuple_list_dict(op):
    init, fn, cls = PARAM_OPS[op]
    params = init(jax.random.PRNGKey(7), I, H)
    x = jax.random.normal(jax.random.PRNGKey(8), (B, T, I))
    want = jax.tree.leaves(fn(params, x))
    leaves, treedef = jax.tree.flatten(params)
    for other in (tuple(params), list(params), params._asdict(), dict(params._asdict()),
                  jax.tree.unflatten(treedef, leaves)):
        got = jax.tree.leaves(fn(other, x))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fields = ", ".join(cls._fields)
    with pytest.raises(TypeError, match=rf"{op}: `params` must be a {cls.__name__}\({fields}\)"):
        fn(tuple(params)[:-1], x)
    with pytest.raises(TypeError, match=r"missing \['" + cls._fields[0] + r"'\]"):
        fn({k: v for k, v in params._asdict().items() if k != cls._fields[0]}, x)
    with pytest.raises(TypeError, match=rf"`params` must be a {cls.__name__}"):
        fn(jnp.ones(3), x)


def test_params_of_another_cell_are_rejected_by_field_names():
    """GRUParams and MinGRUParams both have 4 fields: a NamedTuple is matched by names, not length."""
    x = jnp.ones((B, T, I))
    with pytest.raises(TypeError, match=r"gru_scan: `params` must be a GRUParams.*got MinGRUParams"):
        R.gru_scan(LR.init_mingru_params(jax.random.PRNGKey(0), I, H), x)
    with pytest.raises(TypeError, match=r"lstm_scan: `params` must be a LSTMParams.*got GRUParams"):
        R.lstm_scan(R.init_gru_params(jax.random.PRNGKey(0), I, H), x)
