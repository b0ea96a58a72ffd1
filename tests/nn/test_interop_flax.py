"""Weight and carry maps between Flax's own cells and jaxseq, checked by running both.

The Flax side runs the cell itself (a Python loop over time, and nnx.RNN once); the jaxseq side runs
lstm_scan / gru_scan / the stacked layers on the mapped weights.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.interop.flax_cells import (
    carry_from_flax, carry_to_flax, flax_cells_from_layer, gru_from_flax, gru_params_from_flax,
    gru_params_to_flax, load_flax_cells, lstm_from_flax, lstm_params_from_flax, lstm_params_to_flax,
)
from jaxseq.nn import GRU, LSTM
from jaxseq.ops.rnn import GRUParams, gru_scan, init_gru_params, init_lstm_params, lstm_scan

B, T, I, H = 3, 7, 5, 4
TOL = dict(rtol=1e-5, atol=1e-6)
LSTM_CELLS = [nnx.LSTMCell, nnx.OptimizedLSTMCell]


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


def _x(seed=0, width=I):
    return jax.random.normal(jax.random.key(seed), (B, T, width), jnp.float32)


def _run_cell(cell, x, carry):
    """The Flax cell over time with a Python loop: (outputs [B, T, H], final carry)."""
    outs = []
    for t in range(x.shape[1]):
        carry, y = cell(carry, x[:, t])
        outs.append(y)
    return jnp.stack(outs, axis=1), carry


def _randomise(cell, seed):
    """Nonzero values everywhere, biases included (Flax initialises them to zero)."""
    params = nnx.state(cell, nnx.Param)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    nnx.update(cell, jax.tree.unflatten(
        tree, [0.5 * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)]))
    return cell


def _lstm_carry(seed):
    c, h = jax.random.normal(jax.random.key(seed), (2, B, H))
    return (c, h)  # Flax's order


@pytest.mark.parametrize("cell_cls", LSTM_CELLS)
def test_lstm_from_flax_matches_the_cell(cell_cls):
    cell = _randomise(cell_cls(I, H, rngs=nnx.Rngs(0)), 1)
    x, carry0 = _x(), _lstm_carry(2)
    want_y, want_carry = _run_cell(cell, x, carry0)
    y, state = lstm_scan(lstm_params_from_flax(cell), x, initial_state=carry_from_flax(carry0))
    _close(y, want_y)
    got_c, got_h = carry_to_flax(state)
    _close(got_c, want_carry[0])
    _close(got_h, want_carry[1])


@pytest.mark.parametrize("cell_cls", LSTM_CELLS)
def test_lstm_to_flax_matches_the_scan(cell_cls):
    params = init_lstm_params(jax.random.key(3), I, H)  # nonzero bias
    cell = lstm_params_to_flax(params, cell_cls(I, H, rngs=nnx.Rngs(0)))
    x = _x(4)
    h0, c0 = jax.random.normal(jax.random.key(5), (2, B, H))
    want_y, (want_h, want_c) = lstm_scan(params, x, initial_state=(h0, c0))
    y, carry = _run_cell(cell, x, carry_to_flax((h0, c0)))
    _close(y, want_y)
    _close(carry_from_flax(carry)[0], want_h)
    _close(carry_from_flax(carry)[1], want_c)
    # And back: the exact same arrays.
    for a, b in zip(lstm_params_from_flax(cell), params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lstm_cell_under_nnx_rnn():
    cell = _randomise(nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(0)), 6)
    x, carry0 = _x(7), _lstm_carry(8)
    carry, y = nnx.RNN(cell, return_carry=True)(x, initial_carry=carry0)
    want_y, state = lstm_scan(lstm_params_from_flax(cell), x, initial_state=carry_from_flax(carry0))
    _close(y, want_y)
    _close(carry[0], state[1])  # c
    _close(carry[1], state[0])  # h


def test_gru_from_flax_matches_the_cell():
    cell = _randomise(nnx.GRUCell(I, H, rngs=nnx.Rngs(0)), 9)
    x = _x(10)
    h0 = jax.random.normal(jax.random.key(11), (B, H))
    want_y, want_h = _run_cell(cell, x, h0)
    params = gru_params_from_flax(cell)
    np.testing.assert_array_equal(np.asarray(params.b_hh), 0.0)
    y, h = gru_scan(params, x, initial_state=carry_from_flax(h0))
    _close(y, want_y)
    _close(carry_to_flax(h), want_h)


def _gru_params_without_b_hn(seed):
    p = init_gru_params(jax.random.key(seed), I, H)
    return p._replace(b_hh=p.b_hh.at[2 * H:].set(0.0))  # r, z parts of b_hh stay nonzero


def test_gru_to_flax_matches_the_scan_and_folds_b_hh():
    params = _gru_params_without_b_hn(12)
    assert np.abs(np.asarray(params.b_hh[: 2 * H])).min() > 0
    cell = gru_params_to_flax(params, nnx.GRUCell(I, H, rngs=nnx.Rngs(0)))
    x = _x(13)
    h0 = jax.random.normal(jax.random.key(14), (B, H))
    want_y, want_h = gru_scan(params, x, initial_state=h0)
    y, h = _run_cell(cell, x, h0)
    _close(y, want_y)
    _close(h, want_h)
    # Back again: the same function (b_hh's r, z parts now live in b_ih).
    back = gru_params_from_flax(cell)
    y2, _ = gru_scan(back, x, initial_state=h0)
    _close(y2, want_y)


def test_gru_to_flax_rejects_b_hn():
    params = init_gru_params(jax.random.key(15), I, H)  # PyTorch init: b_hn != 0
    with pytest.raises(ValueError, match="b_hn"):
        gru_params_to_flax(params, nnx.GRUCell(I, H, rngs=nnx.Rngs(0)))


def test_bad_cells_and_shapes():
    with pytest.raises(TypeError, match="cell must be"):
        lstm_params_from_flax(nnx.GRUCell(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="gate_fn=sigmoid"):
        lstm_params_from_flax(nnx.LSTMCell(I, H, gate_fn=jax.nn.hard_sigmoid, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"w_ih \[5, 16\]"):
        lstm_params_to_flax(init_lstm_params(jax.random.key(0), I + 1, H),
                            nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="need 2 cells"):
        load_flax_cells([nnx.OptimizedLSTMCell(I, H, rngs=nnx.Rngs(0))],
                        LSTM(I, H, num_layers=2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"an LSTM carry is a pair \(c, h\)"):
        carry_from_flax((1, 2, 3))


def _run_stack(cells, x, carries, directions):
    """A stack of Flax cells, bidirectional by running direction 1 on the time-reversed input."""
    finals, h = [], x
    for k in range(len(cells) // directions):
        outs = []
        for d in range(directions):
            i = k * directions + d
            inp = jnp.flip(h, 1) if d else h
            y, carry = _run_cell(cells[i], inp, carries[i])
            outs.append(jnp.flip(y, 1) if d else y)
            finals.append(carry)
        h = jnp.concatenate(outs, axis=-1)
    return h, finals


@pytest.mark.parametrize("cell_cls", LSTM_CELLS)
def test_lstm_layer_from_flax_cells_two_layers_bidirectional(cell_cls):
    cells = [_randomise(cell_cls(I if i < 2 else 2 * H, H, rngs=nnx.Rngs(i)), 20 + i)
             for i in range(4)]
    x = _x(16)
    carries = [_lstm_carry(30 + i) for i in range(4)]
    want_y, want_finals = _run_stack(cells, x, carries, 2)
    layer = lstm_from_flax(cells, bidirectional=True)
    assert (layer.num_layers, layer.num_directions) == (2, 2)
    # The layer's initial_state is the cells' carries, swapped and stacked [layers * directions, B, H].
    h0, c0 = carry_from_flax((jnp.stack([c for c, _ in carries]), jnp.stack([h for _, h in carries])))
    y, (h, c) = layer(x, initial_state=(h0, c0))
    _close(y, want_y)
    _close(c, jnp.stack([f[0] for f in want_finals]))
    _close(h, jnp.stack([f[1] for f in want_finals]))


def test_gru_layer_to_flax_cells_and_back():
    layer = GRU(I, H, num_layers=2, rngs=nnx.Rngs(0))
    for k in range(2):  # GRUCell has no b_hn: zero it so that the layer maps onto cells
        layer.layers[k][0].b_hh[...] = layer.layers[k][0].b_hh[...].at[2 * H:].set(0.0)
    cells = flax_cells_from_layer(layer)
    assert all(isinstance(c, nnx.GRUCell) for c in cells)
    x = _x(17)
    h0 = jax.random.normal(jax.random.key(18), (2, B, H))
    want_y, want_h = layer(x, initial_state=h0)
    y, finals = _run_stack(cells, x, list(h0), 1)
    _close(y, want_y)
    _close(jnp.stack(finals), want_h)
    again = gru_from_flax(cells)
    y2, _ = again(x, initial_state=h0)
    _close(y2, want_y)


def test_lstm_layer_to_plain_lstm_cells():
    layer = LSTM(I, H, rngs=nnx.Rngs(1))
    (cell,) = flax_cells_from_layer(layer, optimized=False)
    assert type(cell) is nnx.LSTMCell
    x = _x(19)
    want_y, (want_h, want_c) = layer(x)
    y, (c, h) = _run_cell(cell, x, (jnp.zeros((B, H)), jnp.zeros((B, H))))
    _close(y, want_y)
    _close(h, want_h[0])
    _close(c, want_c[0])


def test_gru_params_roundtrip_is_exact():
    cell = _randomise(nnx.GRUCell(I, H, rngs=nnx.Rngs(0)), 40)
    params = gru_params_from_flax(cell)
    other = gru_params_to_flax(params, nnx.GRUCell(I, H, rngs=nnx.Rngs(1)))
    for a, b in zip(jax.tree.leaves(nnx.state(other, nnx.Param)), jax.tree.leaves(nnx.state(cell, nnx.Param))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert isinstance(params, GRUParams)
