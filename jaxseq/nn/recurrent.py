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
default custom VJP has no forward mode); ``LSTM`` also takes ``step_kernel="xla"|"pallas"`` (or a
``jaxseq.ops.pallas_lstm.PallasLSTMStep``: one Pallas kernel per forward time step, layer by layer); ``MinGRU``/``MinLSTM`` take
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
from jaxseq.ops.pallas_lstm import resolve_step_kernel

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

    def _layer_state(self, initial_state: State | None, index: int, dtype: Any) -> State | None:
        if initial_state is None:
            return None
        return jax.tree.map(lambda a: a[index].astype(dtype), initial_state)

    def _layer(self, k: int, h: Array, *, lengths: Array | None, initial_state: State | None,
               dtype: Any) -> tuple[Array, list[State]]:
        """Layer ``k``'s directions, one scan each: ([batch, time, hidden * dirs], [state per direction])."""
        outs, finals = [], []
        for d in range(self.num_directions):
            state = self._layer_state(initial_state, k * self.num_directions + d, dtype)
            out, final = self._run(
                self.layer_params(k, d, dtype), h, lengths=lengths, state=state,
                reverse=(d == 1), dilation=self.dilations[k],
            )
            outs.append(out)
            finals.append(final)
        return (outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)), finals

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
            out, layer_finals = self._layer(k, h, lengths=lengths, initial_state=initial_state, dtype=dtype)
            finals.extend(layer_finals)
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

    # ---- incremental (one step at a time) ----------------------------------------------------
    def _step(self, params: NamedTuple, x: Array, state: State) -> tuple[Array, State]:
        """One time step of one layer: x [batch, in] -> (y [batch, hidden], state)."""
        raise NotImplementedError

    def _check_steppable(self, where: str) -> None:
        name = f"{type(self).__name__}.{where}"
        if self.bidirectional:
            raise ValueError(f"{name}: needs a unidirectional stack (bidirectional=False): the"
                             " backward direction reads the sequence from its end")
        if any(d != 1 for d in self.dilations):
            raise ValueError(f"{name}: needs dilations of 1 (a dilated layer reads the state"
                             f" from d steps back), got dilations={self.dilations!r}")

    def init_state(self, batch: int, dtype: Any = None) -> State:
        """Zero state for :meth:`step`: the structure of ``__call__``'s ``final_state``.

        ``LSTM``: ``(h, c)``, each ``[num_layers, batch, hidden_size]``; the others: ``h
        [num_layers, batch, hidden_size]``. ``dtype`` defaults to the module's ``dtype``, else
        ``param_dtype``. Unidirectional stacks with no dilation only (``ValueError`` otherwise).
        """
        self._check_steppable("init_state")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"{type(self).__name__}.init_state: batch must be a positive int,"
                             f" got {batch!r}")
        dtype = dtype or self.dtype or self.param_dtype
        one = self._zero_state(int(batch), dtype)
        return jax.tree.map(lambda z: jnp.broadcast_to(z, (self.num_layers,) + z.shape), one)

    def step(self, x: Array, state: State) -> tuple[Array, State]:
        """One time step through the whole stack, for incremental decoding.

        Args:
          x: ``[batch, in_features]``, the input at this step.
          state: as :meth:`init_state` returns (or ``__call__``'s ``final_state``).

        Returns:
          ``(y [batch, hidden_size], state)``. Residuals and dropout (between layers) as in
          ``__call__``; running ``step`` over a sequence equals ``__call__`` on it (up to rounding),
          with ``initial_state`` the state passed to the first step.
        """
        self._check_steppable("step")
        name = f"{type(self).__name__}.step"
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"{name}: x must be [batch, in_features={self.in_features}], got shape"
                             f" {tuple(x.shape)}")
        want = (self.num_layers, x.shape[0], self.hidden_size)
        leaves = jax.tree.leaves(state)
        n_leaves = len(jax.tree.leaves(self._zero_state(1, jnp.float32)))
        if len(leaves) != n_leaves or any(tuple(a.shape) != want for a in leaves):
            structure = "(h, c) each " if n_leaves == 2 else "h "
            raise ValueError(f"{name}: state must be {structure}of shape [num_layers, batch,"
                             f" hidden_size] = {list(want)}, got shapes"
                             f" {[tuple(a.shape) for a in leaves]}")
        dtype = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
        h = x.astype(dtype)
        finals: list[State] = []
        for k in range(self.num_layers):
            layer_state = jax.tree.map(lambda a, i=k: a[i].astype(dtype), state)
            out, new = self._step(self.layer_params(k, 0, dtype), h, layer_state)
            finals.append(new)
            if self.residual and out.shape[-1] == h.shape[-1]:
                out = out + h
            if k < self.num_layers - 1:
                out = self.dropout(out)
            h = out
        new_state = jax.tree.map(lambda *s: jnp.stack(s, axis=0), *finals)
        # Keep the carried state's dtype, so a lax.scan over step has a fixed carry type.
        new_state = jax.tree.map(lambda n, o: n.astype(o.dtype), new_state, state)
        return h, new_state


BACKWARDS = ("auto", "custom", "autodiff")

# How an LSTM stack runs (``schedule=``):
#   "layers":    one scan per layer and direction, one after another;
#   "fused":     both directions of a bidirectional layer in one scan (jaxseq.ops.bidirectional);
#   "wavefront": a unidirectional stack in one scan over T + L - 1 diagonals (jaxseq.ops.wavefront),
#                bidirectional layers fused;
#   "auto":      the fastest of these measured on the backend (_AUTO_SCHEDULE).
SCHEDULES = ("auto", "layers", "fused", "wavefront")
# Measured (`jaxseq bench ops`, 2-core AMD EPYC, B=32 H=256 T=512 training step, torch = 1; two quiet
# runs): 4 layers: layers 0.81x / 0.85x, wavefront 0.77x / 0.76x (slower in both: on 2 cores it moves
# the upper layers' input projections into the per-step matmuls); 2 bidirectional layers: layers
# 0.86x / 0.79x, fused 0.91x / 0.78x (within the runs' noise, not slower). So "fused" on CPU (fuses
# directions, runs unidirectional stacks layer by layer). GPU: not yet measured (scripts/gpu_lstm.sh
# measures every schedule), so the plain "layers" stays there until a run says otherwise. Rechecked
# 2026-12-03 on a faster host after the saved-products backward (jaxseq.ops.rnn): 4 layers, layers /
# wavefront time 0.82, 0.96, 0.88, 1.29 in four alternating rounds - noise, not a reason to switch.
_AUTO_SCHEDULE = {"cpu": "fused", "gpu": "layers"}


def _check_backward(name: str, backward: Any) -> str:
    if backward not in BACKWARDS:
        raise ValueError(f"{name}: backward must be one of {BACKWARDS}, got {backward!r}")
    return backward


def resolve_schedule(schedule: str, backend: str | None = None) -> str:
    """The schedule ``schedule="auto"`` means on ``backend`` (default: jax's default backend)."""
    if schedule != "auto":
        return schedule
    backend = backend or jax.default_backend()
    return _AUTO_SCHEDULE.get(backend, _AUTO_SCHEDULE["gpu"])


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
        schedule: str = "auto",
        step_kernel: Any = "xla",
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
        if schedule not in SCHEDULES:
            raise ValueError(f"{type(self).__name__}: schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        name = type(self).__name__
        self.step_kernel = resolve_step_kernel(name, step_kernel)
        if self.step_kernel is not None:
            if not isinstance(self, LSTM):
                raise ValueError(f"{name}: step_kernel must be 'xla' (the Pallas step is the LSTM's), got {step_kernel!r}")
            if schedule not in ("auto", "layers"):
                raise ValueError(
                    f"{name}: step_kernel='pallas' runs the one-layer scan, so schedule must be 'auto' or "
                    f"'layers', got {schedule!r}"
                )
            if backward == "autodiff":
                raise ValueError(f"{name}: step_kernel='pallas' needs backward='auto' or 'custom', got 'autodiff'")
            self.step_kernel.check(name, hidden_size)

    def _schedule(self) -> str:
        # The Pallas step exists for the one-layer scan only, so "auto" means "layers" with it.
        return "layers" if self.step_kernel is not None else resolve_schedule(self.schedule)


class LSTM(_ScanRNN):
    """Stacked (bidirectional, residual, dilated) LSTM over ``jaxseq.ops.rnn.lstm_scan``.

    Gate order i, f, g, o as in PyTorch; ``final_state = (h, c)``, each
    ``[num_layers * num_directions, batch, hidden_size]``. ``unroll``, ``hoist_input`` and
    ``backward`` are passed to the op: ``backward="custom"`` (what ``"auto"`` picks) is a
    hand-written VJP, fast for ``jax.grad`` but without forward mode; ``"autodiff"`` lets JAX
    differentiate the scan, which forward mode (``jax.jvp``, ``jax.jacfwd``) needs.

    ``schedule`` says how the stack runs: ``"layers"`` (one scan per layer and direction),
    ``"fused"`` (both directions of a bidirectional layer in one scan,
    :func:`jaxseq.ops.bidirectional.lstm_bidirectional_scan`), ``"wavefront"`` (a unidirectional
    stack as one scan over ``T + L - 1`` diagonals, :func:`jaxseq.ops.wavefront.lstm_stack_scan`;
    bidirectional layers fused) or ``"auto"`` (the one measured fastest on the backend, see
    :func:`resolve_schedule`). Every schedule computes the same function (tests hold them equal,
    gradients included); with dropout, the wavefront draws its masks at once, so they differ from
    the other schedules' draws.

    ``step_kernel="pallas"`` (or a :class:`jaxseq.ops.pallas_lstm.PallasLSTMStep`) runs each forward
    time step as one Pallas kernel (Triton on a GPU, interpret mode on the CPU for tests); it runs
    the stack layer by layer (``schedule`` "auto" or "layers") with the custom backward pass.
    """

    _init_fn = staticmethod(_rnn.init_lstm_params)

    def _zero_state(self, batch: int, dtype: Any) -> State:
        z = jnp.zeros((batch, self.hidden_size), dtype)
        return (z, z)

    def _step(self, params, x, state):
        h, c = _rnn.lstm_cell(params, x, state[0], state[1])
        return h, (h, c)

    def _run(self, params, x, *, lengths, state, reverse, dilation):
        return _rnn.lstm_scan(
            params, x, initial_state=None if state is None else tuple(state), lengths=lengths,
            reverse=reverse, dilation=dilation, unroll=self.unroll, hoist_input=self.hoist_input,
            backward=self.backward, step_kernel=self.step_kernel or "xla",
        )

    def _layer(self, k, h, *, lengths, initial_state, dtype):
        if not (self.bidirectional and self.dilations[k] == 1
                and self._schedule() in ("fused", "wavefront")):
            return super()._layer(k, h, lengths=lengths, initial_state=initial_state, dtype=dtype)
        from jaxseq.ops.bidirectional import lstm_bidirectional_scan

        states = [self._layer_state(initial_state, 2 * k + d, dtype) for d in (0, 1)]
        state = None if initial_state is None else tuple(jnp.stack(s) for s in zip(*states))
        out, (hs, cs) = lstm_bidirectional_scan(
            self.layer_params(k, 0, dtype), self.layer_params(k, 1, dtype), h, initial_state=state,
            lengths=lengths, fused=True, backward=self.backward, unroll=self.unroll,
            hoist_input=self.hoist_input,
        )
        return out, [(hs[0], cs[0]), (hs[1], cs[1])]

    def __call__(self, x, *, lengths=None, initial_state=None):
        if (self.bidirectional or self.num_layers == 1
                or self._schedule() != "wavefront"):
            return super().__call__(x, lengths=lengths, initial_state=initial_state)
        # A unidirectional stack as one wavefront scan (jaxseq.ops.wavefront): the residual, the
        # padding mask and the dropout between layers keep the semantics of the layer-by-layer path
        # (the dropout masks are drawn at once, so they differ from that path's draws).
        from jaxseq.ops.wavefront import lstm_stack_scan

        x = jnp.asarray(x)
        lengths = self._check_inputs(x, lengths, initial_state)
        dtype = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
        h = x.astype(dtype)
        L, (B, T), H = self.num_layers, x.shape[:2], self.hidden_size
        masks = None
        if self.dropout.rate > 0 and not self.dropout.deterministic:
            masks = self.dropout(jnp.ones((L - 1, B, T, H), dtype))
        residual_from = None
        if self.residual:
            residual_from = 0 if self.in_features == H else 1
        state = None if initial_state is None else tuple(jnp.asarray(a).astype(dtype) for a in initial_state)
        out, (hs, cs) = lstm_stack_scan(
            [self.layer_params(k, 0, dtype) for k in range(L)], h, initial_state=state, lengths=lengths,
            residual_from=residual_from, dropout_masks=masks, dilations=self.dilations,
            backward=self.backward, unroll=self.unroll,
        )
        if lengths is not None:
            out = jnp.where(_time_mask(lengths, T), out, jnp.zeros((), out.dtype))
        return out, (hs, cs)


class GRU(_ScanRNN):
    """Stacked (bidirectional, residual, dilated) GRU over ``jaxseq.ops.rnn.gru_scan``.

    Gate order r, z, n as in PyTorch; ``final_state = h [num_layers * num_directions, batch,
    hidden_size]``. ``unroll``, ``hoist_input`` and ``backward`` are passed to the op (see
    :class:`LSTM`: ``backward="autodiff"`` for forward-mode differentiation). ``schedule``: as
    :class:`LSTM`'s, except that there is no GRU wavefront (``"wavefront"`` fuses directions only).
    """

    _init_fn = staticmethod(_rnn.init_gru_params)

    def _step(self, params, x, state):
        # gru_scan's step (gate order r, z, n; b_hn inside r * (W_hn h + b_hn)), float32 gate math.
        w_ih, w_hh, b_ih, b_hh = params
        hidden = w_hh.shape[0]
        gi = (x @ w_ih + b_ih).astype(jnp.float32)
        gh = (state @ w_hh + b_hh).astype(jnp.float32)
        r = jax.nn.sigmoid(gi[:, :hidden] + gh[:, :hidden])
        z = jax.nn.sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        n = jnp.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        h = ((1.0 - z) * n + z * state.astype(jnp.float32)).astype(x.dtype)
        return h, h

    def _run(self, params, x, *, lengths, state, reverse, dilation):
        return _rnn.gru_scan(
            params, x, initial_state=state, lengths=lengths, reverse=reverse, dilation=dilation,
            unroll=self.unroll, hoist_input=self.hoist_input, backward=self.backward,
        )

    def _layer(self, k, h, *, lengths, initial_state, dtype):
        # GRU stacks have no wavefront op: "wavefront" fuses the directions, as "fused" does.
        if not (self.bidirectional and self.dilations[k] == 1
                and self._schedule() in ("fused", "wavefront")):
            return super()._layer(k, h, lengths=lengths, initial_state=initial_state, dtype=dtype)
        from jaxseq.ops.bidirectional import gru_bidirectional_scan

        state = None
        if initial_state is not None:
            state = jnp.stack([self._layer_state(initial_state, 2 * k + d, dtype) for d in (0, 1)])
        out, hs = gru_bidirectional_scan(
            self.layer_params(k, 0, dtype), self.layer_params(k, 1, dtype), h, initial_state=state,
            lengths=lengths, fused=True, backward=self.backward, unroll=self.unroll,
            hoist_input=self.hoist_input,
        )
        return out, [hs[0], hs[1]]


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

    def _step(self, params, x, state):
        h = type(self)._step_op(params, x, state)
        return h, h

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
    _step_op = staticmethod(_lr.mingru_step)


class MinLSTM(_MinRNN):
    """Stacked (bidirectional, residual) minLSTM over ``jaxseq.ops.linear_recurrence.minlstm``.

    ``final_state = h [num_layers * num_directions, batch, hidden_size]`` (minLSTM has no separate
    cell state); in ``mode="log"`` an ``initial_state`` must be > 0.
    """

    _init_fn = staticmethod(_lr.init_minlstm_params)
    _op = staticmethod(_lr.minlstm)
    _step_op = staticmethod(_lr.minlstm_step)
