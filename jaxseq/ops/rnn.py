"""LSTM and GRU recurrences as pure JAX functions (no Flax).

Layout and maths follow PyTorch exactly, so weights load from ``torch.nn.LSTM``/``torch.nn.GRU``
by transposition (``w_ih = weight_ih_l0.T``, ``w_hh = weight_hh_l0.T``).

LSTM, gate order ``i, f, g, o`` along the last axis of ``w_ih`` ``[input, 4*hidden]``,
``w_hh`` ``[hidden, 4*hidden]`` and ``b`` ``[4*hidden]`` (``b`` = PyTorch ``b_ih + b_hh``)::

    i, f, g, o = split(x_t @ w_ih + h_{t-1} @ w_hh + b, 4)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

GRU, gate order ``r, z, n``; the two biases stay separate because ``b_hn`` sits inside the reset
gate's product, as in PyTorch::

    gi = x_t @ w_ih + b_ih          gh = h_{t-1} @ w_hh + b_hh      (each [batch, 3*hidden])
    r = sigmoid(gi_r + gh_r)        z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)       h_t = (1 - z) * n + z * h_{t-1}

Every scan takes ``x`` ``[batch, time, input]`` and returns outputs ``[batch, time, hidden]``.
Options (keyword-only):

* ``lengths`` ``[batch]`` int: outputs past a sequence's end are zero and the final state is the one
  at its last valid step (the carry update is masked).
* ``reverse``: time runs backwards; with ``lengths`` each sequence is reversed within its own valid
  length (what a bidirectional layer over right-padded input needs). Outputs come back in the
  original time order; the final state is the one after the last *processed* step (time 0).
* ``dilation=d``: the recurrence reads the state from ``d`` steps back (ES-RNN's dilated LSTM). It runs
  as ``d`` interleaved independent chains: time is padded to a multiple of ``d``, reshaped to
  ``[time/d, d]`` and the chains are folded into the batch, so the scan is ``d`` times shorter and its
  matmuls ``d`` times wider.
* ``unroll``: passed to ``lax.scan`` (both the forward scan and the custom backward scan).
* ``hoist_input``: True computes ``x @ w_ih`` for all steps as one matmul before the scan; False
  does it inside the scan body; None picks per backend (hoisted off CPU; on XLA:CPU see
  ``_CPU_HOIST_DEFAULT`` for the measurement behind the choice).
* ``step_kernel`` (LSTM): ``"xla"`` or ``"pallas"``, one Pallas kernel per forward time step
  (:mod:`jaxseq.ops.pallas_lstm`); see :func:`lstm_scan`.
* ``backward``: ``"custom"`` uses a hand-written ``jax.custom_vjp`` whose backward pass is its own
  reverse scan doing one matmul per step (``dh_{t-1} = dgates_t @ w_hh^T``); the weight gradients,
  bias gradients and ``dx`` are then one large matmul each over all ``batch*time`` rows.
  ``"autodiff"`` lets JAX differentiate the forward scan (two matmuls per step backward and a
  per-step ``dW`` accumulation). ``"auto"`` (default) is ``"custom"``. The custom VJP supports every
  option above, ``jit``, ``vmap`` and reverse-mode ``grad`` (including grad of grad and
  forward-over-reverse such as ``jax.hessian``); forward mode (``jax.jvp``, ``jax.jacfwd``,
  ``jax.linearize``) is not defined for a ``custom_vjp``, so use ``"autodiff"`` there. Calling the
  custom path under forward mode raises a ``TypeError`` that names ``backward="autodiff"``; the
  cases that still show JAX's own message ("can't apply forward-mode autodiff (jvp) to a
  custom_vjp function") are ``jax.jvp`` of a function that was already ``jax.jit``-ed and applying
  the function returned by ``jax.linearize``, because JAX raises it while compiling or running the
  linearized function, after this op has returned. With ``"autodiff"`` nothing in the
  op is a ``custom_vjp`` (the per-sequence time reversal is then a plain gather too).

Inputs may be NumPy arrays (converted with ``jnp.asarray``); ``params`` may also be a plain
tuple/list in field order or a dict keyed by the field names (converted to the NamedTuple).
``lengths`` outside ``[0, time]`` are a ``ValueError`` when their value is known (eager calls);
under ``jit``/``vmap`` they cannot be checked and are clipped to ``[0, time]`` instead (a negative
length acts as 0, a length past the end as ``time``).

The whole op runs inside ``jax.named_scope("recurrence")`` (its custom backward pass too), so
profiles and HLO op names group its time under "recurrence".

Precision: the matmuls run in the input dtype; gate nonlinearities and the LSTM cell state run in
at least float32 (so bfloat16 inputs keep a stable cell), and outputs/final states come back in the
input dtype. Parameters are cast to the input dtype (their gradients keep the parameters' dtype).
"""

from __future__ import annotations

import math
import operator
from contextlib import nullcontext
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseq.ops._checks import as_array, as_params, check_forward_mode, explain_forward_mode, int_at_least
from jaxseq.ops._lstm_math import backward_products, cell_forward
from jaxseq.ops.pallas_lstm import (
    PallasLSTMStep,
    lstm_sequence_backward_pallas,
    lstm_sequence_pallas,
    lstm_step_pallas,
    resolve_step_kernel,
)

Array = jax.Array
Backward = Literal["auto", "custom", "autodiff"]

__all__ = [
    "LSTMParams",
    "GRUParams",
    "init_lstm_params",
    "init_gru_params",
    "lstm_scan",
    "lstm_cell",
    "gru_scan",
    "lstm_reference",
    "gru_reference",
]

# Measured on the project's 2-core CPU (B=32, I=H=256, T=256, float32, training step fwd+bwd with
# the custom VJP; see the module report): the input matmul inside the scan body was faster than a
# hoisted [B*T, I] x [I, 4H] matmul on XLA:CPU, because the per-step slice of the hoisted
# projection is not free there while the in-body x_t @ w_ih shares the step's loop overhead.
# Rechecked 2026-12-03 (2-core AMD EPYC, T=1024, time-major hoisted matmul, no transposes): still
# slower, forward 213-238 ms against 169-177 - the bias add over [T, B, 4H] alone took 49 ms and the
# gate fusions that read the hoisted slice ran at half speed.
_CPU_HOIST_DEFAULT = False

_FORWARD_MODE_FIX = "backward='autodiff'"


class LSTMParams(NamedTuple):
    """LSTM weights, gate order ``i, f, g, o`` (PyTorch's)."""

    w_ih: Array  # [input, 4*hidden]
    w_hh: Array  # [hidden, 4*hidden]
    b: Array  # [4*hidden]  (= PyTorch b_ih + b_hh)


class GRUParams(NamedTuple):
    """GRU weights, gate order ``r, z, n`` (PyTorch's); ``b_hn`` stays inside ``r * (W_hn h + b_hn)``."""

    w_ih: Array  # [input, 3*hidden]
    w_hh: Array  # [hidden, 3*hidden]
    b_ih: Array  # [3*hidden]
    b_hh: Array  # [3*hidden]


def _pytorch_uniform(
    key: Array, input_size: int, hidden_size: int, gates: int, dtype: Any
) -> tuple[Array, Array, Array, Array]:
    """w_ih [input, gates*H], w_hh [H, gates*H] and two biases [gates*H], all uniform(±1/sqrt(H))."""
    input_size = _positive_int(input_size, "input_size")
    hidden_size = _positive_int(hidden_size, "hidden_size")
    k = 1.0 / math.sqrt(hidden_size)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    g = gates * hidden_size
    u = partial(jax.random.uniform, dtype=dtype, minval=-k, maxval=k)
    return u(k1, (input_size, g)), u(k2, (hidden_size, g)), u(k3, (g,)), u(k4, (g,))


def init_lstm_params(
    key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> LSTMParams:
    """PyTorch's initialisation: every weight uniform(-1/sqrt(H), 1/sqrt(H)).

    ``b`` is the sum of two such draws, so it has the distribution of PyTorch's ``b_ih + b_hh``.
    """
    w_ih, w_hh, b1, b2 = _pytorch_uniform(key, input_size, hidden_size, 4, dtype)
    return LSTMParams(w_ih=w_ih, w_hh=w_hh, b=b1 + b2)


def init_gru_params(
    key: Array, input_size: int, hidden_size: int, dtype: Any = jnp.float32
) -> GRUParams:
    """PyTorch's initialisation: every weight and bias uniform(-1/sqrt(H), 1/sqrt(H))."""
    w_ih, w_hh, b_ih, b_hh = _pytorch_uniform(key, input_size, hidden_size, 3, dtype)
    return GRUParams(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)


# --------------------------------------------------------------------------------------------
# validation


def _positive_int(v: Any, name: str) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        raise ValueError(f"`{name}` must be a positive int, got {v!r}") from None
    if isinstance(v, bool) or i < 1:
        raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    return i


def is_tracer(a: Any) -> bool:
    """Whether `a` is a JAX tracer (its values unknown at trace time, so not checkable)."""
    return isinstance(a, jax.core.Tracer)


def validate_common(
    kind: str,
    params: Any,
    x: Any,
    n_gates: int,
    lengths: Any,
    dilation: Any,
    unroll: Any,
    hoist_input: Any,
    backward: Any,
) -> tuple[Array, Array | None, int, int]:
    """Checks done before tracing; returns (params, x, lengths, dilation, hidden)."""
    params = as_params(kind, params, LSTMParams if kind == "lstm_scan" else GRUParams)
    x = as_array(kind, "x", x)
    if x.ndim != 3:
        raise ValueError(
            f"{kind}: `x` must have shape [batch, time, input] (rank 3), got shape {tuple(x.shape)}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{kind}: `x` must be a floating-point array, got dtype {x.dtype}")
    batch, time, in_size = x.shape

    w_ih, w_hh = jnp.shape(params.w_ih), jnp.shape(params.w_hh)
    if len(w_hh) != 2 or w_hh[1] != n_gates * w_hh[0]:
        raise ValueError(
            f"{kind}: `params.w_hh` must have shape [hidden, {n_gates}*hidden], got {w_hh}"
        )
    hidden = w_hh[0]
    if len(w_ih) != 2 or w_ih[1] != n_gates * hidden:
        raise ValueError(
            f"{kind}: `params.w_ih` must have shape [input, {n_gates}*hidden="
            f"{n_gates * hidden}], got {w_ih}"
        )
    if w_ih[0] != in_size:
        raise ValueError(
            f"{kind}: feature size of `x` ({in_size}, shape [batch, time, input]) does not match "
            f"`params.w_ih` shape {w_ih} (expected [input={in_size}, {n_gates}*hidden])"
        )
    bias_names = ("b",) if kind == "lstm_scan" else ("b_ih", "b_hh")
    for name in bias_names:
        shape = jnp.shape(getattr(params, name))
        if shape != (n_gates * hidden,):
            raise ValueError(
                f"{kind}: `params.{name}` must have shape [{n_gates}*hidden] = "
                f"({n_gates * hidden},), got {shape}"
            )

    if lengths is not None:
        lengths = as_array(kind, "lengths", lengths)
        if lengths.shape != (batch,):
            raise ValueError(
                f"{kind}: `lengths` must have shape [batch] = ({batch},), got {tuple(lengths.shape)}"
            )
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"{kind}: `lengths` must be an integer array, got dtype {lengths.dtype}")
        if not is_tracer(lengths) and batch > 0:
            lv = np.asarray(lengths)
            if lv.min() < 0 or lv.max() > time:
                raise ValueError(
                    f"{kind}: `lengths` values must be in [0, time={time}], got min {lv.min()}, "
                    f"max {lv.max()}"
                )
        lengths = lengths.astype(jnp.int32)
        if is_tracer(lengths):
            # Unknown values cannot be checked: clip, so that the documented meaning holds for
            # any value (a gather past the end in the reversal would otherwise read garbage).
            lengths = jnp.clip(lengths, 0, time)

    dilation = int_at_least(kind, "dilation", dilation, 1)

    if not isinstance(unroll, bool):
        try:
            if operator.index(unroll) < 1:
                raise TypeError
        except TypeError:
            raise ValueError(f"{kind}: `unroll` must be an int >= 1 or a bool, got {unroll!r}") from None
    if hoist_input not in (None, True, False):
        raise ValueError(f"{kind}: `hoist_input` must be None, True or False, got {hoist_input!r}")
    if backward not in ("auto", "custom", "autodiff"):
        raise ValueError(
            f"{kind}: `backward` must be 'auto', 'custom' or 'autodiff', got {backward!r}"
        )
    return params, x, lengths, dilation, hidden


def _check_state(kind: str, name: str, s: Any, batch: int, hidden: int) -> Array:
    s = as_array(kind, name, s)
    if tuple(s.shape) != (batch, hidden):
        raise ValueError(
            f"{kind}: `{name}` must have shape [batch, hidden] = ({batch}, {hidden}), "
            f"got {tuple(s.shape)}"
        )
    return s


def resolve_hoist(hoist_input: bool | None) -> bool:
    """`hoist_input` resolved: as given, else the backend default (CPU: `_CPU_HOIST_DEFAULT`, else True)."""
    if hoist_input is not None:
        return bool(hoist_input)
    return _CPU_HOIST_DEFAULT if jax.default_backend() == "cpu" else True


def acc_dtype(dtype: Any) -> Any:
    """The accumulation dtype for `dtype`: at least float32 (gates and cell state), so bfloat16 stays stable."""
    # Gates and the cell state run in at least float32 so bfloat16 stays stable.
    return jnp.promote_types(dtype, jnp.float32)


# --------------------------------------------------------------------------------------------
# time-order transforms shared by LSTM and GRU: every scan below is a forward, masked,
# undilated recurrence; reverse and dilation are data movement around it.


@jax.custom_vjp
def permute_time(x: Array, idx: Array) -> Array:
    """x[b, idx[b, t]] along axis 1; idx is an involution per row, so it is its own transpose."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def gather_time(x: Array, idx: Array) -> Array:
    """:func:`permute_time` without the custom VJP (forward-mode differentiable)."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


# The rules call the plain gather, not permute_time itself, so that differentiating them again
# (grad of grad, or jax.jvp of jax.grad) never meets a custom_vjp in forward mode.
def _permute_time_fwd(x, idx):
    return gather_time(x, idx), idx


def _permute_time_bwd(idx, g):
    # The gather's autodiff transpose is a scatter-add; for an involution it is the same gather.
    return gather_time(g, idx), None


permute_time.defvjp(_permute_time_fwd, _permute_time_bwd)


def reverse_index(lengths: Array, time: int) -> Array:
    """[batch, time] index reversing each row within its valid length, identity on the padding."""
    t = jnp.arange(time, dtype=jnp.int32)[None, :]
    lens = lengths[:, None]
    return jnp.where(t < lens, lens - 1 - t, t)


def _run(core, x: Array, state0: tuple, lengths: Array | None, reverse: bool, dilation: int,
         custom: bool = True):
    """Reduce reverse/dilation to ``core(x, state0, lengths) -> (outputs, final_state)``.

    ``core`` runs a forward recurrence with reads from one step back; ``lengths`` None means every
    sequence is full. ``custom`` False avoids every ``custom_vjp`` (for forward-mode autodiff).
    """
    batch, time, _ = x.shape
    permute = permute_time if custom else gather_time
    if reverse:
        if lengths is None:
            x = jnp.flip(x, axis=1)
        else:
            idx = reverse_index(lengths, time)
            x = permute(x, idx)

    if dilation == 1:
        out, state = core(x, state0, lengths)
    else:
        d = dilation
        steps = -(-time // d)
        pad = steps * d - time
        xp = jnp.pad(x, ((0, 0), (0, pad), (0, 0))) if pad else x
        # Chain j of sequence b holds times j, j+d, j+2d, ...; chains fold into the batch (b-major).
        xc = xp.reshape(batch, steps, d, -1).transpose(0, 2, 1, 3).reshape(batch * d, steps, -1)
        state0_c = tuple(jnp.repeat(s, d, axis=0) for s in state0)
        if lengths is None and pad == 0:
            lens_c = None
        else:
            full = lengths if lengths is not None else jnp.full((batch,), time, jnp.int32)
            j = jnp.arange(d, dtype=jnp.int32)[None, :]
            lens_c = jnp.clip((full[:, None] - j + d - 1) // d, 0, steps).reshape(batch * d)
        out_c, state_c = core(xc, state0_c, lens_c)
        out = out_c.reshape(batch, d, steps, -1).transpose(0, 2, 1, 3).reshape(batch, steps * d, -1)
        out = out[:, :time]
        # The final state is the chain that owns the last valid step t = length - 1; with length 0
        # every chain is empty and any of them holds the initial state.
        if lengths is None:
            last = jnp.full((batch,), (time - 1) % d, jnp.int32)
        else:
            last = jnp.mod(lengths - 1, d)
        state = tuple(
            jnp.take_along_axis(s.reshape(batch, d, -1), last[:, None, None], axis=1)[:, 0]
            for s in state_c
        )

    if reverse:
        out = jnp.flip(out, axis=1) if lengths is None else permute(out, idx)
    return out, state


def time_mask(lengths: Array | None, time: int) -> Array | None:
    """The time-major validity mask [T, B, 1] of `lengths` [B] (None without lengths)."""
    if lengths is None:
        return None
    return (jnp.arange(time, dtype=jnp.int32)[:, None] < lengths[None, :])[:, :, None]  # [T, B, 1]


def _mask_lengths(mask: Array | None) -> Array | None:
    """The lengths [B] behind a :func:`time_mask` [T, B, 1] (the Pallas kernels take lengths)."""
    return None if mask is None else jnp.sum(mask[:, :, 0], axis=0, dtype=jnp.int32)


def lstm_pointwise(z: Array, c: Array, hidden: int):
    """The LSTM cell's elementwise part, shared by every scan (one layer, both directions, wavefront).

    z [..., 4H] pre-activations in gate order i, f, g, o and c [..., H] = c_{t-1}, both in the
    accumulation dtype. Returns the activations (i, f, g, o), c_t and h_t (accumulation dtype).
    """
    gates, c_new, tc = cell_forward(*(z[..., q * hidden : (q + 1) * hidden] for q in range(4)), c)
    return gates, c_new, gates[3] * tc


def lstm_backward_coefficients(gates, c_prev: Array, c_new: Array, dtype: Any) -> tuple[Array, Array]:
    """What the backward step needs from a forward step, as products (no transcendental left).

    gates (i, f, g, o), c_prev = c_{t-1} and c_new = c_t [..., H] in the accumulation dtype. Returns
    k [..., 4H] (gate-wise ``dz = [dc_t, dc_t, dc_t, dh_t] * k``) and pf [..., 2H] (``dc_t = dc + dh *
    pf[:H]``, ``dc_{t-1} = dc_t * pf[H:]``), both in ``dtype``: in bfloat16 they round products of the
    activations the backward once read in bfloat16, and take the same 12H bytes a row. Why: the backward
    scan is serial, and on XLA:CPU its per-step elementwise fusions (tanh(c_t) rebuilt from saved
    activations, then four gate products) cost as much as its matmul; computed here, in the forward
    step that already holds every factor, they leave the backward step two multiply-adds.
    """
    tc = jnp.tanh(c_new)  # the same tanh as h_t = o * tanh(c_t): XLA computes it once
    k, pf = backward_products(gates, c_prev, tc)
    return jnp.concatenate(k, axis=-1).astype(dtype), jnp.concatenate(pf, axis=-1).astype(dtype)


def lstm_coefficient_vjp(k: Array, pf: Array, dh: Array, dc: Array, hidden: int):
    """Backward of one LSTM step from :func:`lstm_backward_coefficients`' (k, pf).

    dh, dc: cotangents of h_t and c_t (accumulation dtype). Returns (dz [..., 4H], dc_{t-1}), equal
    to the VJP of :func:`lstm_pointwise` up to rounding (tested in float64).
    """
    pf = pf.astype(dc.dtype)
    dct = dc + dh * pf[..., :hidden]
    dz = jnp.concatenate([dct, dct, dct, dh], axis=-1) * k.astype(dct.dtype)
    return dz, dct * pf[..., hidden:]


def _rows_gram(a: Array, b: Array) -> Array:
    """``a^T b`` over every leading row: a [..., K], b [..., N] with the same leading shape -> [K, N].

    Why not ``einsum("tbk,tbn->kn")``: XLA:CPU (YNNPACK) ran that dot with two contracting dimensions
    at ~180 GFLOP/s, and the same dot on the arrays flattened to [T*B, K] and [T*B, N] at ~330 (the
    LSTM's weight gradients at T=1024, B=32, H=256: 91-100 against 52 ms each, 2026-12-04). The
    reshapes of contiguous leading axes are free.
    """
    return jnp.matmul(a.reshape(-1, a.shape[-1]).T, b.reshape(-1, b.shape[-1]))


def shift_prev(h0: Array, out_tm: Array) -> Array:
    """h_{t-1} for every t, time-major: [h0, out_0, ..., out_{T-2}].

    Outputs past a sequence's end are zero rather than the carried state, but the gate cotangents
    there are zero too, so the weight gradient is unaffected.
    """
    if out_tm.shape[0] == 0:
        return out_tm
    return jnp.concatenate([h0[None].astype(out_tm.dtype), out_tm[:-1]], axis=0)


# --------------------------------------------------------------------------------------------
# LSTM core


def _lstm_forward(w_ih, w_hh, b, x, h0, c0, mask, *, hoist: bool, unroll, save: bool, cells: bool = False,
                  time_major: bool = False, kernel: PallasLSTMStep | None = None):
    """Forward scan. x [B, T, I] ([T, B, I] with `time_major`); returns out_tm [T, B, H], (hT, cT),
    residuals (the backward coefficients k [T, B, 4H] and pf [T, B, 2H], see
    :func:`lstm_backward_coefficients`) or None.

    With `cells` (not with `save`) out_tm is [T, B, 2H]: the outputs, then the cell states c_t (zero
    past a sequence's end, like the outputs) in the outputs' dtype. With `kernel` each step's matmul,
    gate math and saved products are one Pallas kernel (:mod:`jaxseq.ops.pallas_lstm`).
    """
    acc = c0.dtype
    hidden = w_hh.shape[0]
    in_place = kernel is not None and kernel.in_place
    if hoist or in_place:  # the in-place kernel reads its step of the hoisted projection itself
        xs = jnp.einsum("tbi,ig->tbg" if time_major else "bti,ig->tbg", x, w_ih) + b
    else:
        xs = x if time_major else jnp.swapaxes(x, 0, 1)
    if in_place:
        # One kernel launch per step, writing the outputs and saved products in place.
        return lstm_sequence_pallas(xs, h0, c0, w_hh, lengths=_mask_lengths(mask), save=save, unroll=unroll,
                                    config=kernel)

    def step(carry, inp):
        h, c = carry
        xt, m = inp
        gx = xt if hoist else xt @ w_ih + b
        if kernel is not None:
            h_new, c_new, *coefficients = lstm_step_pallas(gx, h, c, w_hh, save=save, config=kernel)
        else:
            z = (gx + h @ w_hh).astype(acc)
            gates, c_new, h_new = lstm_pointwise(z, c, hidden)
            h_new = h_new.astype(h.dtype)
            if save:
                coefficients = lstm_backward_coefficients(gates, c, c_new, h.dtype)
        if m is None:
            h_next, c_next, out = h_new, c_new, h_new
        else:
            h_next = jnp.where(m, h_new, h)
            c_next = jnp.where(m, c_new, c)
            out = jnp.where(m, h_new, jnp.zeros_like(h_new))
        if save:
            return (h_next, c_next), (out, *coefficients)
        if cells:
            c_out = c_new if m is None else jnp.where(m, c_new, jnp.zeros_like(c_new))
            return (h_next, c_next), jnp.concatenate([out, c_out.astype(out.dtype)], axis=-1)
        return (h_next, c_next), out

    (hT, cT), ys = lax.scan(step, (h0, c0), (xs, mask), unroll=unroll)
    if save:
        out, k, pf = ys
        return out, (hT, cT), (k, pf)
    return ys, (hT, cT), None


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lstm_custom(hoist, unroll, kernel, w_ih, w_hh, b, x, h0, c0, mask):
    out, state, _ = _lstm_forward(w_ih, w_hh, b, x, h0, c0, mask, hoist=hoist, unroll=unroll, save=False,
                                  kernel=kernel)
    return out, state


def _lstm_custom_fwd(hoist, unroll, kernel, w_ih, w_hh, b, x, h0, c0, mask):
    # The input is kept time-major: the backward's dx and input-weight matmuls then run over
    # [T*B, ...] rows without transposing the [T, B, 4H] gate gradients (on XLA:CPU such a transpose
    # cost more than the matmul it fed).
    x_tm = jnp.swapaxes(x, 0, 1)
    out, state, (k, pf) = _lstm_forward(
        w_ih, w_hh, b, x_tm, h0, c0, mask, hoist=hoist, unroll=unroll, save=True, time_major=True,
        kernel=kernel,
    )
    return (out, state), (w_ih, w_hh, x_tm, h0, out, k, pf, mask)


def _lstm_custom_bwd(hoist, unroll, kernel, res, cts):
    with jax.named_scope("recurrence"):
        return _lstm_custom_bwd_body(hoist, unroll, kernel, res, cts)


def _lstm_custom_bwd_body(hoist, unroll, kernel, res, cts):
    w_ih, w_hh, x_tm, h0, out, k, pf, mask = res
    d_out, (d_hT, d_cT) = cts
    acc = d_cT.dtype
    cdt = w_hh.dtype
    if kernel is not None and kernel.in_place:
        # One Pallas launch per backward step; the step form (in_place=False) keeps the XLA scan below.
        dz, (dh0, dc0) = lstm_sequence_backward_pallas(
            d_out.astype(cdt), k, pf, d_hT.astype(acc), d_cT.astype(acc), w_hh, lengths=_mask_lengths(mask),
            unroll=unroll, config=kernel,
        )
        d_b = jnp.sum(dz, axis=(0, 1), dtype=acc)
    else:
        dz, (dh0, dc0), d_b = _lstm_backward_scan(w_hh, k, pf, mask, d_out, d_hT, d_cT, unroll)
    # dz [T, B, 4H]: one big matmul each over all batch*time rows, all time-major; dx is transposed
    # to batch-major once, at the end ([T, B, I] is a quarter of dz's size).
    h_prev = shift_prev(h0, out)
    d_w_ih = _rows_gram(x_tm, dz)
    d_w_hh = _rows_gram(h_prev, dz)
    dx = jnp.swapaxes(jnp.einsum("tbg,gi->tbi", dz, w_ih.T), 0, 1)
    return d_w_ih, d_w_hh, d_b.astype(cdt), dx, dh0.astype(h0.dtype), dc0.astype(acc), None


def _lstm_backward_scan(w_hh, k, pf, mask, d_out, d_hT, d_cT, unroll):
    """The serial part of the backward pass as an XLA scan: (dz [T, B, 4H], (dh_0, dc_0), d_b [4H]).

    The bias gradient is summed in the carry, step by step: that cost less than a separate reduction
    of the [T, B, 4H] dz after the scan (one-layer step 352 -> 345 ms, medians of 5 alternating
    rounds, 2-core EPYC with huge pages, 2026-12-04)."""
    acc = d_cT.dtype
    cdt = w_hh.dtype
    hidden = w_hh.shape[0]
    w_hh_t = w_hh.T

    def step(carry, inp):
        dh, dc, db = carry
        kt, pft, dy, m = inp
        dh_tot = dh + dy.astype(acc)
        if m is not None:
            dh_tot = jnp.where(m, dh_tot, 0.0)
            dc_in = jnp.where(m, dc, 0.0)
        else:
            dc_in = dc
        dz, dc_prev = lstm_coefficient_vjp(kt, pft, dh_tot, dc_in, hidden)
        dz = dz.astype(cdt)
        # The only per-step matmul of the backward pass: weight gradients wait for the end.
        dh_prev = (dz @ w_hh_t).astype(acc)
        if m is not None:
            dh_prev = jnp.where(m, dh_prev, dh)
            dc_prev = jnp.where(m, dc_prev, dc)
        return (dh_prev, dc_prev, db + jnp.sum(dz, axis=0, dtype=acc)), dz

    carry0 = (d_hT.astype(acc), d_cT.astype(acc), jnp.zeros(k.shape[-1], acc))
    (dh0, dc0, d_b), dz = lax.scan(step, carry0, (k, pf, d_out, mask), reverse=True, unroll=unroll)
    return dz, (dh0, dc0), d_b


_lstm_custom.defvjp(_lstm_custom_fwd, _lstm_custom_bwd)


def lstm_scan(
    params: LSTMParams,
    x: Array,
    *,
    initial_state: tuple[Array, Array] | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    dilation: int = 1,
    unroll: int | bool = 1,
    hoist_input: bool | None = None,
    backward: Backward = "auto",
    return_cells: bool = False,
    step_kernel: str | PallasLSTMStep = "xla",
) -> tuple[Array, tuple[Array, Array]]:
    """Run an LSTM over ``x`` ``[batch, time, input]``.

    Args:
      params: ``LSTMParams`` (gate order i, f, g, o).
      x: ``[batch, time, input]`` floating array (float32, bfloat16, float64...).
      initial_state: ``(h0, c0)`` each ``[batch, hidden]``; zeros when None.
      lengths: ``[batch]`` int in ``[0, time]`` (checked when concrete, clipped under a
        trace); see the module docstring.
      reverse: run backwards in time (within each sequence's length when ``lengths`` is given).
      dilation: read the state from ``dilation`` steps back.
      unroll: ``lax.scan`` unroll factor.
      hoist_input: one input matmul before the scan (True), per step (False), per backend (None).
      backward: ``"auto"`` | ``"custom"`` | ``"autodiff"``; see the module docstring.
        ``jax.jvp``/``jax.jacfwd`` need ``"autodiff"``.
      return_cells: also return the cell state of every step (for a penalty on it, as ES-RNN's
        c-state penalty). Its gradient comes from differentiating the forward scan, so
        ``backward`` must be ``"auto"`` or ``"autodiff"``.
      step_kernel: ``"xla"`` (default): each time step is XLA ops. ``"pallas"`` or a
        :class:`jaxseq.ops.pallas_lstm.PallasLSTMStep`: each forward step (recurrent matmul, gates,
        cell, saved backward products) is one Pallas kernel, Triton on a GPU and interpret mode on
        the CPU (tests only: it is slow there); in the default in-place form each backward step
        is one kernel too. Needs the custom backward (``backward`` "auto" or
        "custom", no ``return_cells``) and ``hidden`` a multiple of the tiling's blocks; the batch
        is padded to a multiple of ``block_batch`` inside. The default in-place form reads the
        input projection from one hoisted ``[time, batch, 4*hidden]`` buffer whatever
        ``hoist_input`` says.

    Returns:
      ``(outputs [batch, time, hidden], (h_final [batch, hidden], c_final [batch, hidden]))`` in the
      dtype of ``x``; with ``return_cells``, ``((outputs, cells [batch, time, hidden]), (h_final,
      c_final))`` (cells past a sequence's end are zero, like the outputs).
    """
    params, x, lengths, dilation, hidden = validate_common(
        "lstm_scan", params, x, 4, lengths, dilation, unroll, hoist_input, backward
    )
    batch = x.shape[0]
    cdt, acc = x.dtype, acc_dtype(x.dtype)
    if initial_state is None:
        h0 = jnp.zeros((batch, hidden), cdt)
        c0 = jnp.zeros((batch, hidden), acc)
    else:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            raise ValueError(
                "lstm_scan: `initial_state` must be a pair (h0, c0), each [batch, hidden] = "
                f"({batch}, {hidden}), got {type(initial_state).__name__}"
            )
        h0 = _check_state("lstm_scan", "initial_state[0] (h0)", initial_state[0], batch, hidden)
        c0 = _check_state("lstm_scan", "initial_state[1] (c0)", initial_state[1], batch, hidden)
        h0, c0 = h0.astype(cdt), c0.astype(acc)
    if return_cells and backward == "custom":
        raise ValueError('lstm_scan: return_cells=True needs backward="auto" or "autodiff", got "custom"')
    kernel = resolve_step_kernel("lstm_scan", step_kernel)
    if kernel is not None:
        if backward == "autodiff" or return_cells:
            raise ValueError(
                "lstm_scan: step_kernel='pallas' needs the custom backward pass (backward='auto' or "
                f"'custom', return_cells=False), got backward={backward!r}, return_cells={return_cells!r}"
            )
        kernel.check("lstm_scan", hidden)
    custom = backward in ("auto", "custom") and not return_cells
    if custom:
        check_forward_mode("lstm_scan", _FORWARD_MODE_FIX, params, x, initial_state)

    with explain_forward_mode("lstm_scan", _FORWARD_MODE_FIX) if custom else nullcontext():
        out, state = lstm_impl(
            tuple(params), x, h0, c0, lengths,
            reverse=bool(reverse), dilation=dilation, unroll=unroll,
            hoist=resolve_hoist(hoist_input), custom=custom, cells=bool(return_cells), kernel=kernel,
        )
    if return_cells:  # the scan emitted [outputs | cells] along the feature axis
        return (out[..., :hidden], out[..., hidden:]), state
    return out, state


# Validation happens eagerly above; the rest is one jitted function so that an eager call compiles
# once instead of dispatching each reshape/pad/gather op by op (inside an outer jit it inlines).
@partial(jax.jit, static_argnames=("reverse", "dilation", "unroll", "hoist", "custom", "cells", "kernel"))
def lstm_impl(params, x, h0, c0, lengths, *, reverse, dilation, unroll, hoist, custom, cells=False,
              kernel=None):
    """The jitted LSTM scan after validation (reverse, dilation, masking around the forward core)."""
    with jax.named_scope("recurrence"):
        return _lstm_body(params, x, h0, c0, lengths, reverse=reverse, dilation=dilation,
                          unroll=unroll, hoist=hoist, custom=custom, cells=cells, kernel=kernel)


def _pad_batch(a: Array | None, rows: int) -> Array | None:
    if a is None or rows == 0:
        return a
    return jnp.pad(a, ((0, rows),) + ((0, 0),) * (a.ndim - 1))


def _lstm_body(params, x, h0, c0, lengths, *, reverse, dilation, unroll, hoist, custom, cells, kernel=None):
    cdt = x.dtype
    w_ih, w_hh, b = (p.astype(cdt) for p in params)

    def core(xx, state0, lens):
        hh, cc = state0
        batch = xx.shape[0]
        pad = 0
        if kernel is not None:  # an empty batch gets one block too: the kernel's grid cannot be empty
            pad = -batch % kernel.block_batch or (kernel.block_batch if batch == 0 else 0)
        if pad:
            # The kernel's programs own whole blocks of rows: padded rows (zero input, zero state,
            # length 0 where lengths are given) are computed and dropped.
            xx, hh, cc, lens = (_pad_batch(a, pad) for a in (xx, hh, cc, lens))
        mask = time_mask(lens, xx.shape[1])
        if custom:
            out, st = _lstm_custom(hoist, unroll, kernel, w_ih, w_hh, b, xx, hh, cc, mask)
        else:
            out, st, _ = _lstm_forward(
                w_ih, w_hh, b, xx, hh, cc, mask, hoist=hoist, unroll=unroll, save=False, cells=cells
            )
        if pad:
            out, st = out[:, :batch], tuple(s[:batch] for s in st)
        return jnp.swapaxes(out, 0, 1), st

    out, (hT, cT) = _run(core, x, (h0, c0), lengths, reverse, dilation, custom)
    return out, (hT.astype(cdt), cT.astype(cdt))


# --------------------------------------------------------------------------------------------
# GRU core


def _gru_forward(w_ih, w_hh, b_ih, b_hh, x, h0, mask, *, hoist: bool, unroll, save: bool):
    """Forward scan. x [B, T, I]; returns out_tm [T, B, H], hT, residuals or None."""
    acc = acc_dtype(h0.dtype)
    hidden = w_hh.shape[0]
    if hoist:
        xs = jnp.einsum("bti,ig->tbg", x, w_ih) + b_ih
    else:
        xs = jnp.swapaxes(x, 0, 1)

    def step(h, inp):
        xt, m = inp
        gi = (xt if hoist else xt @ w_ih + b_ih).astype(acc)
        gh = (h @ w_hh + b_hh).astype(acc)
        r = jax.nn.sigmoid(gi[:, :hidden] + gh[:, :hidden])
        z = jax.nn.sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
        ghn = gh[:, 2 * hidden :]
        n = jnp.tanh(gi[:, 2 * hidden :] + r * ghn)
        h_new = ((1.0 - z) * n + z * h.astype(acc)).astype(h.dtype)
        if m is None:
            h_next, out = h_new, h_new
        else:
            h_next = jnp.where(m, h_new, h)
            out = jnp.where(m, h_new, jnp.zeros_like(h_new))
        if save:
            return h_next, (out, jnp.concatenate([r, z, n, ghn], axis=-1).astype(h.dtype))
        return h_next, out

    hT, ys = lax.scan(step, h0, (xs, mask), unroll=unroll)
    if save:
        out, res = ys
        return out, hT, res
    return ys, hT, None


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _gru_custom(hoist, unroll, w_ih, w_hh, b_ih, b_hh, x, h0, mask):
    out, hT, _ = _gru_forward(w_ih, w_hh, b_ih, b_hh, x, h0, mask, hoist=hoist, unroll=unroll, save=False)
    return out, hT


def _gru_custom_fwd(hoist, unroll, w_ih, w_hh, b_ih, b_hh, x, h0, mask):
    out, hT, res = _gru_forward(
        w_ih, w_hh, b_ih, b_hh, x, h0, mask, hoist=hoist, unroll=unroll, save=True
    )
    return (out, hT), (w_ih, w_hh, x, h0, out, res, mask)


def _gru_custom_bwd(hoist, unroll, res_all, cts):
    with jax.named_scope("recurrence"):
        return _gru_custom_bwd_body(hoist, unroll, res_all, cts)


def _gru_custom_bwd_body(hoist, unroll, res_all, cts):
    w_ih, w_hh, x, h0, out, res, mask = res_all
    d_out, d_hT = cts
    cdt = w_hh.dtype
    acc = acc_dtype(cdt)
    hidden = w_hh.shape[0]
    w_hh_t = w_hh.T
    h_prev = shift_prev(h0, out)

    def step(dh, inp):
        a, hp, dy, m = inp
        a = a.astype(acc)
        r, z = a[:, :hidden], a[:, hidden : 2 * hidden]
        n, ghn = a[:, 2 * hidden : 3 * hidden], a[:, 3 * hidden :]
        dh_tot = dh + dy.astype(acc)
        if m is not None:
            dh_tot = jnp.where(m, dh_tot, 0.0)
        dn_pre = dh_tot * (1.0 - z) * (1.0 - n * n)
        dr_pre = dn_pre * ghn * r * (1.0 - r)
        dz_pre = dh_tot * (hp.astype(acc) - n) * z * (1.0 - z)
        dgi = jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1).astype(cdt)
        dgh = jnp.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1).astype(cdt)
        dh_prev = dh_tot * z + (dgh @ w_hh_t).astype(acc)
        if m is not None:
            dh_prev = jnp.where(m, dh_prev, dh)
        return dh_prev, (dgi, dgh)

    dh0, (dgi, dgh) = lax.scan(
        step, d_hT.astype(acc), (res, h_prev, d_out, mask), reverse=True, unroll=unroll
    )
    d_w_ih = jnp.einsum("bti,tbg->ig", x, dgi)
    d_w_hh = jnp.einsum("tbh,tbg->hg", h_prev, dgh)
    d_b_ih = jnp.sum(dgi, axis=(0, 1), dtype=acc).astype(cdt)
    d_b_hh = jnp.sum(dgh, axis=(0, 1), dtype=acc).astype(cdt)
    dx = jnp.einsum("tbg,ig->bti", dgi, w_ih)
    return d_w_ih, d_w_hh, d_b_ih, d_b_hh, dx, dh0.astype(h0.dtype), None


_gru_custom.defvjp(_gru_custom_fwd, _gru_custom_bwd)


def gru_scan(
    params: GRUParams,
    x: Array,
    *,
    initial_state: Array | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    dilation: int = 1,
    unroll: int | bool = 1,
    hoist_input: bool | None = None,
    backward: Backward = "auto",
) -> tuple[Array, Array]:
    """Run a GRU over ``x`` ``[batch, time, input]``.

    Args are those of :func:`lstm_scan`, except ``initial_state`` is ``h0`` ``[batch, hidden]``.

    Returns:
      ``(outputs [batch, time, hidden], h_final [batch, hidden])`` in the dtype of ``x``.
    """
    params, x, lengths, dilation, hidden = validate_common(
        "gru_scan", params, x, 3, lengths, dilation, unroll, hoist_input, backward
    )
    batch = x.shape[0]
    cdt = x.dtype
    if initial_state is None:
        h0 = jnp.zeros((batch, hidden), cdt)
    else:
        h0 = _check_state("gru_scan", "initial_state", initial_state, batch, hidden).astype(cdt)

    custom = backward in ("auto", "custom")
    if custom:
        check_forward_mode("gru_scan", _FORWARD_MODE_FIX, params, x, initial_state)
    with explain_forward_mode("gru_scan", _FORWARD_MODE_FIX) if custom else nullcontext():
        return gru_impl(
            tuple(params), x, h0, lengths,
            reverse=bool(reverse), dilation=dilation, unroll=unroll,
            hoist=resolve_hoist(hoist_input), custom=custom,
        )


@partial(jax.jit, static_argnames=("reverse", "dilation", "unroll", "hoist", "custom"))
def gru_impl(params, x, h0, lengths, *, reverse, dilation, unroll, hoist, custom):
    """The jitted GRU scan after validation (reverse, dilation, masking around the forward core)."""
    with jax.named_scope("recurrence"):
        return _gru_body(params, x, h0, lengths, reverse=reverse, dilation=dilation,
                         unroll=unroll, hoist=hoist, custom=custom)


def _gru_body(params, x, h0, lengths, *, reverse, dilation, unroll, hoist, custom):
    cdt = x.dtype
    w_ih, w_hh, b_ih, b_hh = (p.astype(cdt) for p in params)

    def core(xx, state0, lens):
        mask = time_mask(lens, xx.shape[1])
        (hh,) = state0
        if custom:
            out, hT = _gru_custom(hoist, unroll, w_ih, w_hh, b_ih, b_hh, xx, hh, mask)
        else:
            out, hT, _ = _gru_forward(
                w_ih, w_hh, b_ih, b_hh, xx, hh, mask, hoist=hoist, unroll=unroll, save=False
            )
        return jnp.swapaxes(out, 0, 1), (hT,)

    out, (hT,) = _run(core, x, (h0,), lengths, reverse, dilation, custom)
    return out, hT


# --------------------------------------------------------------------------------------------
# float64 NumPy references (plain Python loops, for tests)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _reference_loop(step, x, state0, lengths, reverse, dilation):
    """Per-sequence loop: processing index k reads the state from index k - dilation."""
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    lens = np.full(batch, time) if lengths is None else np.asarray(lengths)
    outs, finals = None, []
    for bi in range(batch):
        s0 = tuple(np.asarray(s, np.float64)[bi] for s in state0)
        L = int(lens[bi])
        order = list(range(L))[::-1] if reverse else list(range(L))
        hist: list[tuple] = []
        for k, t in enumerate(order):
            prev = hist[k - dilation] if k - dilation >= 0 else s0
            new = step(x[bi, t], prev)
            hist.append(new)
            if outs is None:
                outs = np.zeros((batch, time, new[0].shape[0]))
            outs[bi, t] = new[0]
        finals.append(hist[-1] if hist else s0)
    if outs is None:
        outs = np.zeros((batch, time, state0[0].shape[1]))
    return outs, tuple(np.stack([f[i] for f in finals]) for i in range(len(state0)))


def lstm_cell(params: LSTMParams, x: Array, h: Array, c: Array) -> tuple[Array, Array]:
    """One LSTM step, gate order i, f, g, o (PyTorch's): x [batch, input], h, c [batch, hidden] -> (h, c).

    For decoders whose next input depends on the last output (input feeding), which a scan over a given
    sequence cannot express; the gate math runs in float32 and the state returns in ``x``'s dtype.
    """
    w_ih, w_hh, b = as_params("lstm_cell", params, LSTMParams)
    hidden = h.shape[-1]
    z = (x @ w_ih + h @ w_hh + b).astype(jnp.float32)
    i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c = jax.nn.sigmoid(f) * c.astype(jnp.float32) + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h.astype(x.dtype), c.astype(x.dtype)


def lstm_reference(
    params: LSTMParams,
    x: Any,
    *,
    initial_state: tuple[Any, Any] | None = None,
    lengths: Any = None,
    reverse: bool = False,
    dilation: int = 1,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """LSTM as a Python loop in float64 NumPy; same semantics as :func:`lstm_scan`."""
    w_ih, w_hh, b = (np.asarray(p, np.float64) for p in as_params("lstm_reference", params, LSTMParams))
    hidden = w_hh.shape[0]
    batch = np.shape(x)[0]
    if initial_state is None:
        initial_state = (np.zeros((batch, hidden)), np.zeros((batch, hidden)))

    def step(xt, prev):
        h, c = prev
        z = xt @ w_ih + h @ w_hh + b
        i, f, g, o = np.split(z, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c

    out, (h, c) = _reference_loop(step, x, initial_state, lengths, reverse, dilation)
    return out, (h, c)


def gru_reference(
    params: GRUParams,
    x: Any,
    *,
    initial_state: Any = None,
    lengths: Any = None,
    reverse: bool = False,
    dilation: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """GRU as a Python loop in float64 NumPy; same semantics as :func:`gru_scan`."""
    w_ih, w_hh, b_ih, b_hh = (np.asarray(p, np.float64)
                              for p in as_params("gru_reference", params, GRUParams))
    hidden = w_hh.shape[0]
    batch = np.shape(x)[0]
    h0 = np.zeros((batch, hidden)) if initial_state is None else initial_state

    def step(xt, prev):
        (h,) = prev
        gi = xt @ w_ih + b_ih
        gh = h @ w_hh + b_hh
        r = _sigmoid(gi[:hidden] + gh[:hidden])
        z = _sigmoid(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
        n = np.tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
        return ((1.0 - z) * n + z * h,)

    out, (h,) = _reference_loop(step, x, (h0,), lengths, reverse, dilation)
    return out, h
