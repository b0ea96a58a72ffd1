"""Weights and carries to and from Flax's own cells: ``flax.nnx.LSTMCell``, ``OptimizedLSTMCell``
and ``GRUCell``, for the ops (``LSTMParams``/``GRUParams``) and the layers (``jaxseq.nn.LSTM``/``GRU``).

Weight map (Flax ``Linear`` kernels are ``[in, out]``, like jaxseq's; gate orders agree):

* ``OptimizedLSTMCell``: ``w_ih = dense_i.kernel [in, 4H]``, ``w_hh = dense_h.kernel [H, 4H]``,
  ``b = dense_h.bias [4H]`` (Flax puts the LSTM bias on the recurrent side only; jaxseq's ``b`` is
  the one summed bias), gate order i, f, g, o on both sides.
* ``LSTMCell`` (one ``Linear`` per gate): ``w_ih = concat(ii, if_, ig, io kernels)``,
  ``w_hh = concat(hi, hf, hg, ho kernels)``, ``b = concat(hi, hf, hg, ho biases)``.
* ``GRUCell``: ``w_ih = dense_i.kernel [in, 3H]``, ``b_ih = dense_i.bias``,
  ``w_hh = dense_h.kernel [H, 3H]``; Flax's recurrent side has no bias, so ``b_hh = 0`` from Flax.
  Gate order r, z, n on both sides, and ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` on both,
  with ``b_hn = 0`` in Flax. Going to Flax, ``b_hh``'s r and z parts add into ``b_ih`` (they sum
  before the sigmoid either way); a nonzero ``b_hn`` has no Flax counterpart (it sits inside
  ``r * (...)``) and raises ``ValueError``.

Carries: Flax's LSTM carry is ``(c, h)``, jaxseq's state is ``(h, c)``: :func:`carry_from_flax` /
:func:`carry_to_flax` swap them (any leading shape, so a layer's stacked ``[layers * directions,
batch, H]`` state works too). A GRU carry is ``h`` on both sides and passes through.

Cells for a stacked layer are listed in the layer's state order, index ``layer * num_directions +
direction`` (direction 1 reads the sequence backwards).
"""
from __future__ import annotations

from typing import Any, Sequence, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.recurrent import GRU, LSTM
from jaxseq.ops.rnn import GRUParams, LSTMParams

Array = jax.Array
LSTMCellLike = nnx.LSTMCell | nnx.OptimizedLSTMCell
C = TypeVar("C", nnx.LSTMCell, nnx.OptimizedLSTMCell, nnx.GRUCell)

__all__ = [
    "carry_from_flax", "carry_to_flax", "flax_cells_from_layer", "gru_from_flax",
    "gru_params_from_flax", "gru_params_to_flax", "load_flax_cells", "lstm_from_flax",
    "lstm_params_from_flax", "lstm_params_to_flax",
]

_LSTM_GATES = (("ii", "hi"), ("if_", "hf"), ("ig", "hg"), ("io", "ho"))  # i, f, g, o


def _check_cell(fn: str, cell: Any, kinds: tuple[type, ...]) -> None:
    if not isinstance(cell, kinds):
        raise TypeError(f"{fn}: cell must be {' or '.join('flax.nnx.' + k.__name__ for k in kinds)},"
                        f" got {type(cell).__name__}")
    # The ops compute sigmoid gates and tanh activations only.
    if cell.gate_fn is not jax.nn.sigmoid or cell.activation_fn is not jnp.tanh:
        raise ValueError(f"{fn}: only cells with gate_fn=sigmoid and activation_fn=tanh map onto"
                         f" jaxseq, got gate_fn={cell.gate_fn!r}, activation_fn={cell.activation_fn!r}")


def _set(fn: str, param: nnx.Param, value: Any, name: str) -> None:
    value = jnp.asarray(value)
    if tuple(value.shape) != tuple(param[...].shape):
        raise ValueError(f"{fn}: {name} has shape {tuple(value.shape)}, the cell needs"
                         f" {tuple(param[...].shape)}")
    param[...] = value.astype(param[...].dtype)


# ---- ops parameters ----------------------------------------------------------------------------

def lstm_params_from_flax(cell: LSTMCellLike) -> LSTMParams:
    """``LSTMParams`` (w_ih ``[in, 4H]``, w_hh ``[H, 4H]``, b ``[4H]``) of a Flax LSTM cell."""
    _check_cell("lstm_params_from_flax", cell, (nnx.LSTMCell, nnx.OptimizedLSTMCell))
    if isinstance(cell, nnx.OptimizedLSTMCell):
        return LSTMParams(cell.dense_i.kernel[...], cell.dense_h.kernel[...], cell.dense_h.bias[...])
    return LSTMParams(
        jnp.concatenate([getattr(cell, i).kernel[...] for i, _ in _LSTM_GATES], axis=-1),
        jnp.concatenate([getattr(cell, h).kernel[...] for _, h in _LSTM_GATES], axis=-1),
        jnp.concatenate([getattr(cell, h).bias[...] for _, h in _LSTM_GATES], axis=-1),
    )


def lstm_params_to_flax(params: LSTMParams, cell: C) -> C:
    """Write ``params`` into the Flax LSTM ``cell`` in place (cast to its parameter dtype); returns it.

    The whole summed bias ``b`` goes to the recurrent ``Linear``'s bias (Flax's input ``Linear``
    has none), so the cell computes exactly what ``lstm_scan`` does.
    """
    fn = "lstm_params_to_flax"
    _check_cell(fn, cell, (nnx.LSTMCell, nnx.OptimizedLSTMCell))
    w_ih, w_hh, b = (jnp.asarray(a) for a in params)
    hidden = cell.hidden_features
    if w_hh.shape != (hidden, 4 * hidden) or w_ih.shape != (cell.in_features, 4 * hidden) \
            or b.shape != (4 * hidden,):
        raise ValueError(f"{fn}: params must be w_ih [{cell.in_features}, {4 * hidden}], w_hh"
                         f" [{hidden}, {4 * hidden}], b [{4 * hidden}] for this cell, got"
                         f" {tuple(w_ih.shape)}, {tuple(w_hh.shape)}, {tuple(b.shape)}")
    if isinstance(cell, nnx.OptimizedLSTMCell):
        _set(fn, cell.dense_i.kernel, w_ih, "w_ih")
        _set(fn, cell.dense_h.kernel, w_hh, "w_hh")
        _set(fn, cell.dense_h.bias, b, "b")
        return cell
    for g, (i_name, h_name) in enumerate(_LSTM_GATES):
        part = slice(g * hidden, (g + 1) * hidden)
        _set(fn, getattr(cell, i_name).kernel, w_ih[:, part], f"w_ih[:, {part.start}:{part.stop}]")
        _set(fn, getattr(cell, h_name).kernel, w_hh[:, part], f"w_hh[:, {part.start}:{part.stop}]")
        _set(fn, getattr(cell, h_name).bias, b[part], f"b[{part.start}:{part.stop}]")
    return cell


def gru_params_from_flax(cell: nnx.GRUCell) -> GRUParams:
    """``GRUParams`` of a Flax ``GRUCell`` (``b_hh`` is zero: Flax's recurrent side has no bias)."""
    _check_cell("gru_params_from_flax", cell, (nnx.GRUCell,))
    b_ih = cell.dense_i.bias[...]
    return GRUParams(cell.dense_i.kernel[...], cell.dense_h.kernel[...], b_ih, jnp.zeros_like(b_ih))


def gru_params_to_flax(params: GRUParams, cell: nnx.GRUCell) -> nnx.GRUCell:
    """Write ``params`` into the Flax ``GRUCell`` in place; returns it.

    ``b_hh``'s r and z parts are folded into the input bias. ``b_hn`` (``b_hh[2H:]``) must be zero:
    it multiplies the reset gate, and ``GRUCell`` has no bias there (``ValueError`` otherwise).
    """
    fn = "gru_params_to_flax"
    _check_cell(fn, cell, (nnx.GRUCell,))
    w_ih, w_hh, b_ih, b_hh = (jnp.asarray(a) for a in params)
    hidden = cell.hidden_features
    if w_hh.shape != (hidden, 3 * hidden) or w_ih.shape != (cell.in_features, 3 * hidden) \
            or b_ih.shape != (3 * hidden,) or b_hh.shape != (3 * hidden,):
        raise ValueError(f"{fn}: params must be w_ih [{cell.in_features}, {3 * hidden}], w_hh"
                         f" [{hidden}, {3 * hidden}], b_ih and b_hh [{3 * hidden}] for this cell, got"
                         f" {tuple(w_ih.shape)}, {tuple(w_hh.shape)}, {tuple(b_ih.shape)},"
                         f" {tuple(b_hh.shape)}")
    b_hn = np.asarray(b_hh[2 * hidden:])  # concrete on purpose: the check must happen here
    if np.any(b_hn != 0):
        raise ValueError(f"{fn}: b_hh[{2 * hidden}:] (b_hn, inside r * (W_hn h + b_hn)) must be zero"
                         f" to map onto flax.nnx.GRUCell, which has no recurrent bias; got max |b_hn|"
                         f" = {float(np.max(np.abs(b_hn))):.3g}")
    _set(fn, cell.dense_i.kernel, w_ih, "w_ih")
    _set(fn, cell.dense_h.kernel, w_hh, "w_hh")
    _set(fn, cell.dense_i.bias, b_ih + b_hh, "b_ih + b_hh")  # b_hn is zero here
    return cell


# ---- carries -----------------------------------------------------------------------------------

def carry_from_flax(carry: Any) -> Any:
    """Flax carry -> jaxseq state: LSTM ``(c, h)`` -> ``(h, c)``; a GRU ``h`` passes through."""
    if isinstance(carry, (tuple, list)):
        if len(carry) != 2:
            raise ValueError(f"carry_from_flax: an LSTM carry is a pair (c, h), got {len(carry)} items")
        c, h = carry
        return (h, c)
    return carry


def carry_to_flax(state: Any) -> Any:
    """jaxseq state -> Flax carry: LSTM ``(h, c)`` -> ``(c, h)``; a GRU ``h`` passes through."""
    if isinstance(state, (tuple, list)):
        if len(state) != 2:
            raise ValueError(f"carry_to_flax: an LSTM state is a pair (h, c), got {len(state)} items")
        h, c = state
        return (c, h)
    return state


# ---- layers ------------------------------------------------------------------------------------

def _layer_kind(fn: str, layer: Any) -> str:
    if isinstance(layer, LSTM):
        return "lstm"
    if isinstance(layer, GRU):
        return "gru"
    raise TypeError(f"{fn}: layer must be a jaxseq.nn.LSTM or GRU, got {type(layer).__name__}")


def load_flax_cells(cells: Sequence[Any], target: LSTM | GRU) -> LSTM | GRU:
    """Copy Flax cells into the stacked layer ``target`` in place; returns it.

    ``cells``: one per (layer, direction), index ``layer * num_directions + direction``, of the
    matching kind (LSTM cells for an ``LSTM``, ``GRUCell`` for a ``GRU``) and sizes.
    """
    fn = "load_flax_cells"
    kind = _layer_kind(fn, target)
    want = target.num_layers * target.num_directions
    if len(cells) != want:
        raise ValueError(f"{fn}: need {want} cells (num_layers {target.num_layers} x"
                         f" {target.num_directions} directions), got {len(cells)}")
    convert = lstm_params_from_flax if kind == "lstm" else gru_params_from_flax
    for index, cell in enumerate(cells):
        k, d = divmod(index, target.num_directions)
        params = convert(cell)
        slot = target.layers[k][d]
        for name, value in zip(type(params)._fields, params):
            _set(fn, getattr(slot, name), value, f"cells[{index}].{name}")
    return target


def _from_flax(kind: str, cells: Sequence[Any], bidirectional: bool, rngs: nnx.Rngs | None,
               kwargs: dict) -> LSTM | GRU:
    fn = f"{kind}_from_flax"
    cells = list(cells)
    directions = 2 if bidirectional else 1
    if not cells or len(cells) % directions:
        raise ValueError(f"{fn}: need a non-empty list of cells, a multiple of {directions}"
                         f" (directions), got {len(cells)}")
    first = cells[0]
    cls = LSTM if kind == "lstm" else GRU
    target = cls(first.in_features, first.hidden_features, num_layers=len(cells) // directions,
                 bidirectional=bidirectional, rngs=rngs or nnx.Rngs(0), **kwargs)
    return load_flax_cells(cells, target)


def lstm_from_flax(cells: LSTMCellLike | Sequence[LSTMCellLike], *, bidirectional: bool = False,
                   rngs: nnx.Rngs | None = None, **kwargs: Any) -> LSTM:
    """A :class:`jaxseq.nn.LSTM` holding the weights of Flax LSTM cells (one cell: one layer).

    ``kwargs`` (``dtype``, ``residual``, ``backward``, ...) go to the ``LSTM`` constructor.
    """
    if isinstance(cells, nnx.Module):
        cells = [cells]
    return _from_flax("lstm", cells, bidirectional, rngs, kwargs)


def gru_from_flax(cells: nnx.GRUCell | Sequence[nnx.GRUCell], *, bidirectional: bool = False,
                  rngs: nnx.Rngs | None = None, **kwargs: Any) -> GRU:
    """A :class:`jaxseq.nn.GRU` holding the weights of Flax ``GRUCell`` s (see :func:`lstm_from_flax`)."""
    if isinstance(cells, nnx.Module):
        cells = [cells]
    return _from_flax("gru", cells, bidirectional, rngs, kwargs)


def flax_cells_from_layer(layer: LSTM | GRU, *, optimized: bool = True,
                          rngs: nnx.Rngs | None = None) -> list[Any]:
    """New Flax cells computing ``layer``'s recurrences, index ``layer * num_directions + direction``.

    LSTM layers give ``OptimizedLSTMCell`` (``optimized=True``) or ``LSTMCell``; GRU layers give
    ``GRUCell`` (``ValueError`` if a ``b_hn`` is nonzero, see :func:`gru_params_to_flax`). The cells
    have the layer's ``param_dtype``. Residuals, dropout, dilations and lengths are the layer's own
    logic, not the cells'.
    """
    fn = "flax_cells_from_layer"
    kind = _layer_kind(fn, layer)
    rngs = rngs or nnx.Rngs(0)
    cells = []
    for k in range(layer.num_layers):
        width = layer.in_features if k == 0 else layer.hidden_size * layer.num_directions
        for d in range(layer.num_directions):
            params = layer.layer_params(k, d)
            if kind == "lstm":
                cls = nnx.OptimizedLSTMCell if optimized else nnx.LSTMCell
                cell = cls(width, layer.hidden_size, param_dtype=layer.param_dtype, rngs=rngs)
                cells.append(lstm_params_to_flax(params, cell))
            else:
                cell = nnx.GRUCell(width, layer.hidden_size, param_dtype=layer.param_dtype, rngs=rngs)
                cells.append(gru_params_to_flax(params, cell))
    return cells
