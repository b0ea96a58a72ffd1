"""Stacked recurrent layers (Flax NNX) over the ops in :mod:`jaxseq.ops`.

``LSTM``, ``GRU``, ``MinGRU`` and ``MinLSTM`` share one constructor and one call signature::

    Module(in_features, hidden_size, *, num_layers=1, bidirectional=False, residual=False,
           dilations=None, dropout=0.0, dtype=None, param_dtype=jnp.float32, <op options>, rngs)
    __call__(x [batch, time, in_features], *, lengths=None, initial_state=None)
        -> (outputs [batch, time, hidden_size * num_directions], final_state)

Each layer and direction keeps its weights in the op's own parameter layout (``LSTMParams``,
``GRUParams``, ``MinGRUParams``, ``MinLSTMParams``) under ``module.layers[layer][direction]``
(direction 0 = forward, 1 = backward), so ``module.layer_params(k, d)`` can be handed straight to
``jaxseq.ops.rnn.lstm_scan`` & co.

``final_state`` follows PyTorch's layout, index ``layer * num_directions + direction``:

* ``LSTM``: ``(h, c)``, each ``[num_layers * num_directions, batch, hidden_size]``;
* ``GRU``, ``MinGRU``, ``MinLSTM``: ``h [num_layers * num_directions, batch, hidden_size]``.

``initial_state`` takes the same structure (None means zeros).

Op options: ``LSTM``/``GRU`` take ``unroll=1``, ``hoist_input=None`` and
``backward="auto"|"custom"|"autodiff"`` (``"autodiff"`` for ``jax.jvp``/``jax.jacfwd``: the
default custom VJP has no forward mode); ``MinGRU``/``MinLSTM`` take
``mode="log"|"parallel"|"sequential"``.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.signature import init_signature
from jaxseq.ops import linear_recurrence as _lr
from jaxseq.ops import rnn as _rnn

Array = jax.Array
State = Any  # one direction's state: Array, or (h, c) for the LSTM


@init_signature
class OpParams(nnx.Module):
    """One op's ``NamedTuple`` of parameters held as ``nnx.Param`` attributes of the same names.

    Keeping the op's layout (rather than e.g. a Linear per gate) means the op can be called on
    ``self.get()`` directly, and PyTorch weights map onto it with one transpose.
    """

    def __init__(self, params: NamedTuple):
        self._params_type = type(params)  # static: rebuilds the NamedTuple in get()
        for name, value in zip(params._fields, params):
            setattr(self, name, nnx.Param(value))

    def get(self, dtype: Any = None) -> NamedTuple:
        """The parameters as the op's NamedTuple, cast to ``dtype`` if given."""
        values = [getattr(self, name)[...] for name in self._params_type._fields]
        if dtype is not None:
            values = [v.astype(dtype) for v in values]
        return self._params_type(*values)


def _is_concrete(a: Any) -> bool:
    return not isinstance(a, jax.core.Tracer)


def _reverse_within_lengths(x: Array, lengths: Array | None) -> Array:
    """Reverse each sequence along time within its own length; padding stays where it is.

    x: [batch, time, features]; lengths: [batch] or None (reverse the whole axis). The map is its
    own inverse, so it also undoes itself.
    """
    if lengths is None:
        return jnp.flip(x, axis=1)
    t = jnp.arange(x.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return jnp.take_along_axis(x, idx[:, :, None], axis=1)


def _time_mask(lengths: Array, time: int) -> Array:
    """[batch, time, 1] bool: True at valid steps."""
    return (jnp.arange(time)[None, :] < lengths[:, None])[:, :, None]


@init_signature  # inherited: LSTM(...) & co. show their own __init__ arguments
class _StackedRNN(nnx.Module):
    """Shared stacking, bidirectionality, residuals, dropout and state handling."""

    _init_fn: ClassVar[Callable[..., NamedTuple]]
    _supports_dilation: ClassVar[bool] = True

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        residual: bool = False,
        dilations: Sequence[int] | None = None,
        dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        name = type(self).__name__
        for arg, value in (("in_features", in_features), ("hidden_size", hidden_size),
                           ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        if dilations is None:
            dilations = (1,) * num_layers
        dilations = tuple(dilations)
        if len(dilations) != num_layers or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
            for d in dilations
        ):
            raise ValueError(
                f"{name}: dilations must be a tuple of {num_layers} positive ints (one per layer),"
                f" got {dilations!r}"
            )
        if not self._supports_dilation and any(d != 1 for d in dilations):
            raise ValueError(
                f"{name}: dilations are not supported (the min-RNN ops have no dilated form);"
                f" got {dilations!r}"
            )

        self.in_features = int(in_features)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.residual = bool(residual)
        self.dilations = tuple(int(d) for d in dilations)
        self.dtype = dtype
        self.param_dtype = param_dtype

        layers = []
        for k in range(num_layers):
            width = in_features if k == 0 else hidden_size * self.num_directions
            layers.append(nnx.List([
                OpParams(type(self)._init_fn(rngs.params(), width, hidden_size, dtype=param_dtype))
                for _ in range(self.num_directions)
            ]))
        self.layers = nnx.List(layers)
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)

    # ---- per-op hooks -------------------------------------------------------------------------
    def _run(self, params: NamedTuple, x: Array, *, lengths: Array | None, state: State | None,
             reverse: bool, dilation: int) -> tuple[Array, State]:
        """One direction of one layer: x [batch, time, in] -> ([batch, time, hidden], state)."""
        raise NotImplementedError

    def _zero_state(self, batch: int, dtype: Any) -> State:
        return jnp.zeros((batch, self.hidden_size), dtype)

    # ---- public helpers ---------------------------------------------------------------------
    def layer_params(self, layer: int, direction: int = 0, dtype: Any = None) -> NamedTuple:
        """The op-layout parameters of ``layer`` (0-based) and ``direction`` (0 fwd, 1 bwd)."""
        return self.layers[layer][direction].get(dtype)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    # ---- call --------------------------------------------------------------------------------
    def _check_inputs(self, x: Array, lengths: Any, initial_state: Any) -> Array | None:
        name = type(self).__name__
        if x.ndim != 3 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{name}: x must be [batch, time, in_features={self.in_features}], got shape"
                f" {tuple(x.shape)}"
            )
        batch, time = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = jnp.asarray(lengths)
            if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
                raise ValueError(
                    f"{name}: lengths must be an int array of shape [batch={batch}], got shape"
                    f" {tuple(lengths.shape)} dtype {lengths.dtype}"
                )
            if _is_concrete(lengths):
                lv = np.asarray(lengths)
                if lv.min() < 0 or lv.max() > time:
                    raise ValueError(
                        f"{name}: lengths must lie in [0, time={time}], got min {lv.min()} max"
                        f" {lv.max()}"
                    )
        if initial_state is not None:
            want = (self.num_layers * self.num_directions, batch, self.hidden_size)
            leaves = jax.tree.leaves(initial_state)
            expected_leaves = len(jax.tree.leaves(self._zero_state(1, jnp.float32)))
            if len(leaves) != expected_leaves or any(tuple(a.shape) != want for a in leaves):
                structure = "(h, c) each " if expected_leaves == 2 else "h "
                raise ValueError(
                    f"{name}: initial_state must be {structure}of shape [num_layers * num_directions,"
                    f" batch, hidden_size] = {list(want)}, got shapes"
                    f" {[tuple(a.shape) for a in leaves]}"
                )
        return lengths

    def __call__(
        self,
        x: Array,
        *,
        lengths: Array | None = None,
        initial_state: State | None = None,
    ) -> tuple[Array, State]:
        """Run the stack.

        Args:
          x: ``[batch, time, in_features]``.
          lengths: ``[batch]`` int valid lengths (padding at the end), or None (all valid).
            Outputs past a sequence's end are zero; the final state is the one at its last valid
            step (for the backward direction: after reading the sequence back to its start).
          initial_state: see the module docstring; None means zeros.

        Returns:
          ``(outputs [batch, time, hidden_size * num_directions], final_state)``.
        """
        x = jnp.asarray(x)
        lengths = self._check_inputs(x, lengths, initial_state)
        dtype = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
        h = x.astype(dtype)
        mask = None if lengths is None else _time_mask(lengths, x.shape[1])
        finals: list[State] = []
        for k in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                index = k * self.num_directions + d
                state = None
                if initial_state is not None:
                    state = jax.tree.map(lambda a, i=index: a[i].astype(dtype), initial_state)
                out, final = self._run(
                    self.layer_params(k, d, dtype), h, lengths=lengths, state=state,
                    reverse=(d == 1), dilation=self.dilations[k],
                )
                outs.append(out)
                finals.append(final)
            out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
            if self.residual and out.shape[-1] == h.shape[-1]:
                # Residual only between equal widths; no projection is added for unequal ones.
                out = out + h
            if mask is not None:
                out = jnp.where(mask, out, jnp.zeros((), out.dtype))
            if k < self.num_layers - 1:
                out = self.dropout(out)  # between layers, never after the last
            h = out
        final_state = jax.tree.map(lambda *s: jnp.stack(s, axis=0), *finals)
        return h, final_state


BACKWARDS = ("auto", "custom", "autodiff")


def _check_backward(name: str, backward: Any) -> str:
    if backward not in BACKWARDS:
        raise ValueError(f"{name}: backward must be one of {BACKWARDS}, got {backward!r}")
    return backward


class _ScanRNN(_StackedRNN):
    """The LSTM and GRU layers: the stack's arguments plus the scan ops' ``unroll``, ``hoist_input`` and
    ``backward`` (one ``__init__``, so both show the same signature)."""

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        residual: bool = False,
        dilations: Sequence[int] | None = None,
        dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        unroll: int = 1,
        hoist_input: bool | None = None,
        backward: str = "auto",
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
            residual=residual, dilations=dilations, dropout=dropout, dtype=dtype,
            param_dtype=param_dtype, rngs=rngs,
        )
        self.unroll = unroll
        self.hoist_input = hoist_input
        self.backward = _check_backward(type(self).__name__, backward)


class LSTM(_ScanRNN):
    """Stacked (bidirectional, residual, dilated) LSTM over ``jaxseq.ops.rnn.lstm_scan``.

    Gate order i, f, g, o as in PyTorch; ``final_state = (h, c)``, each
    ``[num_layers * num_directions, batch, hidden_size]``. ``unroll``, ``hoist_input`` and
    ``backward`` are passed to the op: ``backward="custom"`` (what ``"auto"`` picks) is a
    hand-written VJP, fast for ``jax.grad`` but without forward mode; ``"autodiff"`` lets JAX
    differentiate the scan, which forward mode (``jax.jvp``, ``jax.jacfwd``) needs.
    """

    _init_fn = staticmethod(_rnn.init_lstm_params)

    def _zero_state(self, batch: int, dtype: Any) -> State:
        z = jnp.zeros((batch, self.hidden_size), dtype)
        return (z, z)

    def _run(self, params, x, *, lengths, state, reverse, dilation):
        return _rnn.lstm_scan(
            params, x, initial_state=None if state is None else tuple(state), lengths=lengths,
            reverse=reverse, dilation=dilation, unroll=self.unroll, hoist_input=self.hoist_input,
            backward=self.backward,
        )


class GRU(_ScanRNN):
    """Stacked (bidirectional, residual, dilated) GRU over ``jaxseq.ops.rnn.gru_scan``.

    Gate order r, z, n as in PyTorch; ``final_state = h [num_layers * num_directions, batch,
    hidden_size]``. ``unroll``, ``hoist_input`` and ``backward`` are passed to the op (see
    :class:`LSTM`: ``backward="autodiff"`` for forward-mode differentiation).
    """

    _init_fn = staticmethod(_rnn.init_gru_params)

    def _run(self, params, x, *, lengths, state, reverse, dilation):
        return _rnn.gru_scan(
            params, x, initial_state=state, lengths=lengths, reverse=reverse, dilation=dilation,
            unroll=self.unroll, hoist_input=self.hoist_input, backward=self.backward,
        )


class _MinRNN(_StackedRNN):
    """min-RNNs: the ops have no ``lengths``/``reverse``, so both are handled here.

    The recurrence is causal, so padding after a sequence's end cannot change its valid outputs;
    the final state is read at step ``length - 1`` and the backward direction reverses each sequence
    within its own length before and after the op.
    """

    _supports_dilation = False
    _op: ClassVar[Callable[..., tuple[Array, Array]]]

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        residual: bool = False,
        dilations: Sequence[int] | None = None,
        dropout: float = 0.0,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        mode: str = "log",
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
            residual=residual, dilations=dilations, dropout=dropout, dtype=dtype,
            param_dtype=param_dtype, rngs=rngs,
        )
        if mode not in _lr.MIN_RNN_MODES:
            raise ValueError(f"{type(self).__name__}: mode must be one of {_lr.MIN_RNN_MODES},"
                             f" got {mode!r}")
        self.mode = mode  # see jaxseq.ops.linear_recurrence

    def _run(self, params, x, *, lengths, state, reverse, dilation):
        del dilation  # rejected in the constructor
        if reverse:
            x = _reverse_within_lengths(x, lengths)
        out, final = type(self)._op(params, x, h0=state, mode=self.mode)
        if lengths is not None:
            last = jnp.clip(lengths - 1, 0, None)
            at_last = jnp.take_along_axis(out, last[:, None, None], axis=1)[:, 0]
            start = jnp.zeros_like(final) if state is None else state.astype(final.dtype)
            # A zero-length sequence keeps its initial state.
            final = jnp.where((lengths > 0)[:, None], at_last, start)
            out = jnp.where(_time_mask(lengths, x.shape[1]), out, jnp.zeros((), out.dtype))
        if reverse:
            out = _reverse_within_lengths(out, lengths)
        return out, final


class MinGRU(_MinRNN):
    """Stacked (bidirectional, residual) minGRU over ``jaxseq.ops.linear_recurrence.mingru``.

    ``final_state = h [num_layers * num_directions, batch, hidden_size]``; in ``mode="log"`` an
    ``initial_state`` must be > 0. ``dilations`` other than 1 raise ``ValueError``.
    """

    _init_fn = staticmethod(_lr.init_mingru_params)
    _op = staticmethod(_lr.mingru)


class MinLSTM(_MinRNN):
    """Stacked (bidirectional, residual) minLSTM over ``jaxseq.ops.linear_recurrence.minlstm``.

    ``final_state = h [num_layers * num_directions, batch, hidden_size]`` (minLSTM has no separate
    cell state); in ``mode="log"`` an ``initial_state`` must be > 0.
    """

    _init_fn = staticmethod(_lr.init_minlstm_params)
    _op = staticmethod(_lr.minlstm)
