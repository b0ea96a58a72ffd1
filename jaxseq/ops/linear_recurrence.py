"""Diagonal linear recurrences and the minimal RNNs built on them (pure JAX).

The recurrence ``h_t = a_t * h_{t-1} + b_t`` (elementwise, over axis 1 of ``[batch, time, features]``
arrays) has no matmul between steps, so it can be computed in ``O(log T)`` depth with
``jax.lax.associative_scan`` instead of ``T`` sequential steps. minGRU and minLSTM (Feng et al. 2024,
"Were RNNs All We Needed?", arXiv 2410.01201) are exactly such recurrences: their gates read only the
input ``x_t``, never ``h_{t-1}``.

Three ways to run them, selected by ``mode`` and all giving the same numbers (up to rounding):

* ``"log"`` (default): the log-space scan of Heinsen (2023) from the paper's appendix,
  ``log h_t = a*_t + logcumsumexp(log b - a*)_t`` with ``a* = cumsum(log a)``. It never forms the
  running product of the ``a_t`` (which underflows for long sequences), but needs ``h > 0``.
* ``"parallel"``: ``lax.associative_scan`` on plain values.
* ``"sequential"``: ``lax.scan`` over time.

The candidate state uses the paper's positive activation ``g(x) = x + 0.5 if x >= 0 else sigmoid(x)``
in *every* mode (the paper's linear-space listings use the raw ``Linear_h(x)``); using ``g``
everywhere is what lets the three modes agree, and it keeps ``h`` positive so the log mode is valid.

Half-precision inputs (bfloat16/float16) are accumulated in float32 and cast back at the end.

Inputs may be NumPy arrays or Python numbers (a number for ``a``/``b``/``h0`` broadcasts like a
size-1 array); ``params`` may be the NamedTuple, a plain tuple/list in field order or a dict keyed
by the field names. Every op runs inside ``jax.named_scope("recurrence")`` (profiles and HLO op
names group its time under "recurrence").

Zero initial state in log mode: ``mingru``/``minlstm`` fold ``h0`` into the first step as
``log(b_0 + a_0 * h0)`` (never ``log h0``), so ``h0 = 0`` is valid there and its gradients are
finite, under ``jit`` as eagerly; ``h0`` must be ``>= 0`` (checked when concrete; under a trace a
first state ``b_0 + a_0 * h0`` below ``finfo.tiny`` is floored at ``finfo.tiny``).
:func:`log_linear_recurrence` takes ``log_h0`` directly: ``log_h0 = -inf`` is ``h0 = 0`` (finite
gradients too).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseq.ops._checks import as_array, as_params

Array = jax.Array

RECURRENCE_METHODS: tuple[str, ...] = ("associative", "sequential")
MIN_RNN_MODES: tuple[str, ...] = ("log", "parallel", "sequential")

__all__ = [
    "RECURRENCE_METHODS",
    "MIN_RNN_MODES",
    "linear_recurrence",
    "log_linear_recurrence",
    "linear_recurrence_reference",
    "MinGRUParams",
    "MinLSTMParams",
    "init_mingru_params",
    "init_minlstm_params",
    "mingru",
    "minlstm",
    "mingru_step",
    "minlstm_step",
    "mingru_reference",
    "minlstm_reference",
    "g",
    "log_g",
]


# ----------------------------------------------------------------------------------------------
# Validation helpers (run on shapes/dtypes, so they work before and during tracing).
# ----------------------------------------------------------------------------------------------

def _check_rank3(name: str, arr: Array, *, scalar_ok: bool = False) -> None:
    if jnp.ndim(arr) != 3 and not (scalar_ok and jnp.ndim(arr) == 0):
        also = " or a scalar" if scalar_ok else ""
        raise ValueError(
            f"`{name}` must have shape [batch, time, features] (rank 3){also}, got shape {jnp.shape(arr)}"
        )


def _as_input(name: str, x: object, where: str = "linear_recurrence") -> Array:
    """NumPy arrays, lists and Python numbers as jax arrays; a Python int is taken as a float
    (weakly typed, so it adopts the dtype of the arrays it meets)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = float(x)
    return as_array(where, name, x)


def _check_float(name: str, arr: Array) -> None:
    if not jnp.issubdtype(jnp.result_type(arr), jnp.floating):
        raise TypeError(f"`{name}` must be a floating-point array, got dtype {jnp.result_type(arr)}")


def _compute_dtype(dtype) -> jnp.dtype:
    """float32 for half-precision inputs (a long scan in bf16 loses the state), else the input dtype."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize < 4:
        return jnp.dtype(jnp.float32)
    return dtype


def _concrete_or_none(x: Array) -> np.ndarray | None:
    """The value of `x` as NumPy if it is concrete, None under a trace (jit/grad/vmap)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _broadcast_shape(a_name: str, a_shape, b_name: str, b_shape) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(tuple(a_shape), tuple(b_shape)))
    except ValueError:
        raise ValueError(
            f"`{a_name}` shape {tuple(a_shape)} does not broadcast against `{b_name}` shape "
            f"{tuple(b_shape)} (expected [batch, time, features] with size-1 axes allowed)"
        ) from None


def _check_state(name: str, state: Array, batch: int, features: int) -> None:
    if jnp.ndim(state) not in (0, 2):
        raise ValueError(
            f"`{name}` must have shape [batch, features] = ({batch}, {features}) (or be a "
            f"scalar), got shape {jnp.shape(state)}"
        )
    try:
        ok = tuple(jnp.broadcast_shapes(jnp.shape(state), (batch, features))) == (batch, features)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must have shape [batch, features] = ({batch}, {features}), "
            f"got shape {jnp.shape(state)}"
        )


def _checked_recurrence_inputs(
    a: tuple[str, Array], b: tuple[str, Array], h0: tuple[str, Array | None]
) -> tuple[int, int, int]:
    """Checks the (name, array) decay, input and initial state of a recurrence; returns the
    broadcast ``(batch, time, features)``. One of the two may be a scalar."""
    (a_name, a_arr), (b_name, b_arr), (h0_name, h0_arr) = a, b, h0
    _check_rank3(a_name, a_arr, scalar_ok=jnp.ndim(b_arr) == 3)
    _check_rank3(b_name, b_arr, scalar_ok=jnp.ndim(a_arr) == 3)
    _check_float(a_name, a_arr)
    _check_float(b_name, b_arr)
    shape = _broadcast_shape(a_name, jnp.shape(a_arr), b_name, jnp.shape(b_arr))
    if shape[1] < 1:
        raise ValueError(f"`{a_name}`/`{b_name}` must have at least one time step (axis 1), got shape {shape}")
    if h0_arr is not None:
        _check_state(h0_name, h0_arr, shape[0], shape[2])
        _check_float(h0_name, h0_arr)
    return shape


# ----------------------------------------------------------------------------------------------
# Linear recurrence
# ----------------------------------------------------------------------------------------------

def _combine(left: tuple[Array, Array], right: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose two affine maps h -> a*h + b: apply `left` (earlier) then `right` (later)."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def linear_recurrence(
    a: Array,
    b: Array,
    *,
    h0: Array | None = None,
    reverse: bool = False,
    method: str = "associative",
) -> Array:
    """Diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t`` along axis 1.

    Args:
      a: decay, ``[batch, time, features]`` or any rank-3 shape that broadcasts against ``b``
        (e.g. ``[1, time, features]`` shared over the batch), or a scalar (then ``b`` is rank 3).
      b: input, ``[batch, time, features]`` (may itself broadcast against ``a``).
      h0: initial state ``[batch, features]`` (broadcastable); None means zeros. It is folded into the
        first input, ``b_0 <- b_0 + a_0 * h0``, so no extra scan element is needed.
      reverse: run from the last step to the first: ``h_t = a_t * h_{t+1} + b_t``, with ``h0`` the
        state after the last step (folded into ``b_{T-1}``).
      method: ``"associative"`` (``lax.associative_scan``, O(log T) depth) or ``"sequential"``
        (``lax.scan``). Both compute the same values.

    Returns:
      ``h``, ``[batch, time, features]`` (the broadcast shape of ``a`` and ``b``), in the result dtype
      of ``a`` and ``b``; half-precision inputs are accumulated in float32.
    """
    if method not in RECURRENCE_METHODS:
        raise ValueError(f"`method` must be one of {RECURRENCE_METHODS}, got {method!r}")
    a, b = _as_input("a", a), _as_input("b", b)
    h0 = None if h0 is None else _as_input("h0", h0)
    shape = _checked_recurrence_inputs(("a", a), ("b", b), ("h0", h0))
    with jax.named_scope("recurrence"):
        return _linear_recurrence(a, b, h0, shape, reverse, method)


def _linear_recurrence(a: Array, b: Array, h0: Array | None, shape: tuple[int, int, int],
                       reverse: bool, method: str) -> Array:
    batch, time, features = shape

    out_dtype = jnp.result_type(a, b)
    cdt = _compute_dtype(out_dtype)
    # associative_scan needs every element to have the same length along the scanned axis.
    a = jnp.broadcast_to(jnp.asarray(a, cdt), shape)
    b = jnp.broadcast_to(jnp.asarray(b, cdt), shape)
    if h0 is not None:
        h0 = jnp.broadcast_to(jnp.asarray(h0, cdt), (batch, features))
        t = time - 1 if reverse else 0
        b = b.at[:, t].add(a[:, t] * h0)

    if method == "associative":
        _, h = jax.lax.associative_scan(_combine, (a, b), reverse=reverse, axis=1)
    else:
        def step(h_prev: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
            a_t, b_t = ab
            h_t = a_t * h_prev + b_t
            return h_t, h_t

        xs = (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1))  # time-major for lax.scan
        _, h = jax.lax.scan(step, jnp.zeros((batch, features), cdt), xs, reverse=reverse)
        h = jnp.swapaxes(h, 0, 1)
    return h.astype(out_dtype)


def log_linear_recurrence(
    log_a: Array,
    log_b: Array,
    *,
    log_h0: Array | None = None,
    reverse: bool = False,
) -> Array:
    """Log-space parallel scan (Heinsen 2023) for ``h_t = a_t * h_{t-1} + b_t`` with ``a, b > 0``.

    ``log h_t = a*_t + logcumsumexp(log b - a*)_t`` with ``a*_t = sum_{s<=t} log a_s``. Unlike the
    associative scan on values, it never forms ``prod a_s`` (which underflows to 0 within a few
    hundred steps of small ``a``), so ``h`` stays finite for long sequences. Precision note: for very
    long sequences ``|a*|`` grows like ``T``, and the float32 rounding of ``a*`` (relative 6e-8) sets
    the error of ``log h`` (absolute ~``|a*| * 6e-8``).

    Args:
      log_a: ``[batch, time, features]`` (rank-3, broadcastable against ``log_b``), log of the decay.
      log_b: ``[batch, time, features]``, log of the (positive) input.
      log_h0: ``[batch, features]``, log of the initial state; None or ``-inf`` means ``h0 = 0``
        (gradients stay finite there).
      reverse: scan from the last step to the first (``h_t = a_t * h_{t+1} + b_t``).

    Returns:
      ``log h``, ``[batch, time, features]``, in the input dtype (float32 accumulation for bf16).
    """
    where = "log_linear_recurrence"
    log_a, log_b = _as_input("log_a", log_a, where), _as_input("log_b", log_b, where)
    log_h0 = None if log_h0 is None else _as_input("log_h0", log_h0, where)
    shape = _checked_recurrence_inputs(("log_a", log_a), ("log_b", log_b), ("log_h0", log_h0))
    with jax.named_scope("recurrence"):
        return _log_linear_recurrence(log_a, log_b, log_h0, shape, reverse)


def _log_linear_recurrence(log_a: Array, log_b: Array, log_h0: Array | None,
                           shape: tuple[int, int, int], reverse: bool) -> Array:
    batch, time, features = shape

    out_dtype = jnp.result_type(log_a, log_b)
    cdt = _compute_dtype(out_dtype)
    log_a = jnp.broadcast_to(jnp.asarray(log_a, cdt), shape)
    log_b = jnp.broadcast_to(jnp.asarray(log_b, cdt), shape)
    if reverse:
        log_a, log_b = jnp.flip(log_a, 1), jnp.flip(log_b, 1)
    if log_h0 is not None:
        # Fold h0 into the first input: b_0 <- b_0 + a_0 * h0, in log space.
        log_h0 = jnp.broadcast_to(jnp.asarray(log_h0, cdt), (batch, features))
        log_b = log_b.at[:, 0].set(jnp.logaddexp(log_b[:, 0], log_a[:, 0] + log_h0))
    a_star = jnp.cumsum(log_a, axis=1)
    log_h = a_star + jax.lax.cumlogsumexp(log_b - a_star, axis=1)
    if reverse:
        log_h = jnp.flip(log_h, 1)
    return log_h.astype(out_dtype)


def linear_recurrence_reference(
    a, b, *, h0=None, reverse: bool = False
) -> np.ndarray:
    """Float64 Python loop over time for :func:`linear_recurrence` (tests only)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    shape = np.broadcast_shapes(a.shape, b.shape)
    a = np.broadcast_to(a, shape)
    b = np.broadcast_to(b, shape)
    batch, time, features = shape
    h = np.zeros((batch, features)) if h0 is None else np.broadcast_to(
        np.asarray(h0, np.float64), (batch, features)).copy()
    out = np.zeros(shape)
    steps = range(time - 1, -1, -1) if reverse else range(time)
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


# ----------------------------------------------------------------------------------------------
# minGRU / minLSTM
# ----------------------------------------------------------------------------------------------

class MinGRUParams(NamedTuple):
    """minGRU weights (input-only gates, so no hidden-to-hidden matrix)."""
    w_z: Array  # [input, hidden]  update gate
    b_z: Array  # [hidden]
    w_h: Array  # [input, hidden]  candidate state
    b_h: Array  # [hidden]


class MinLSTMParams(NamedTuple):
    """minLSTM weights (input-only gates)."""
    w_f: Array  # [input, hidden]  forget gate
    b_f: Array  # [hidden]
    w_i: Array  # [input, hidden]  input gate
    b_i: Array  # [hidden]
    w_h: Array  # [input, hidden]  candidate state
    b_h: Array  # [hidden]


def _uniform(key: Array, shape: tuple[int, ...], bound: float, dtype) -> Array:
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)


def _check_sizes(input_size: int, hidden_size: int) -> None:
    if not (isinstance(input_size, (int, np.integer)) and input_size > 0):
        raise ValueError(f"`input_size` must be a positive int, got {input_size!r}")
    if not (isinstance(hidden_size, (int, np.integer)) and hidden_size > 0):
        raise ValueError(f"`hidden_size` must be a positive int, got {hidden_size!r}")


def init_mingru_params(
    key: Array, input_size: int, hidden_size: int, dtype=jnp.float32
) -> MinGRUParams:
    """Uniform(-1/sqrt(input_size), 1/sqrt(input_size)) weights and biases, as torch.nn.Linear."""
    _check_sizes(input_size, hidden_size)
    bound = 1.0 / math.sqrt(input_size)
    k = jax.random.split(key, 4)
    return MinGRUParams(
        w_z=_uniform(k[0], (input_size, hidden_size), bound, dtype),
        b_z=_uniform(k[1], (hidden_size,), bound, dtype),
        w_h=_uniform(k[2], (input_size, hidden_size), bound, dtype),
        b_h=_uniform(k[3], (hidden_size,), bound, dtype),
    )


def init_minlstm_params(
    key: Array, input_size: int, hidden_size: int, dtype=jnp.float32
) -> MinLSTMParams:
    """Uniform(-1/sqrt(input_size), 1/sqrt(input_size)) weights and biases, as torch.nn.Linear."""
    _check_sizes(input_size, hidden_size)
    bound = 1.0 / math.sqrt(input_size)
    k = jax.random.split(key, 6)
    return MinLSTMParams(
        w_f=_uniform(k[0], (input_size, hidden_size), bound, dtype),
        b_f=_uniform(k[1], (hidden_size,), bound, dtype),
        w_i=_uniform(k[2], (input_size, hidden_size), bound, dtype),
        b_i=_uniform(k[3], (hidden_size,), bound, dtype),
        w_h=_uniform(k[4], (input_size, hidden_size), bound, dtype),
        b_h=_uniform(k[5], (hidden_size,), bound, dtype),
    )


def g(x: Array) -> Array:
    """The paper's positive activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous at 0)."""
    # relu inside keeps the unused branch finite for gradients of jnp.where.
    return jnp.where(x >= 0, jax.nn.relu(x) + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
    """``log g(x)`` computed stably: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` below."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _validate_min_rnn(where: str, cls: type, params: object, x: object, h0: object, mode: str,
                      weight_names: tuple[str, ...]) -> tuple[tuple, Array, Array | None, int]:
    """Checks and converts the arguments of mingru/minlstm: (params, x, h0, hidden)."""
    if mode not in MIN_RNN_MODES:
        raise ValueError(f"`mode` must be one of {MIN_RNN_MODES}, got {mode!r}")
    params = as_params(where, params, cls)
    x = as_array(where, "x", x)
    _check_rank3("x", x)
    _check_float("x", x)
    batch, time, in_size = jnp.shape(x)
    if time < 1:
        raise ValueError(f"`x` must have at least one time step (axis 1), got shape {jnp.shape(x)}")
    name = cls.__name__
    w0 = getattr(params, weight_names[0])
    if jnp.ndim(w0) != 2:
        raise ValueError(
            f"`params.{weight_names[0]}` must have shape [input, hidden], got {jnp.shape(w0)}")
    p_in, hidden = jnp.shape(w0)
    if in_size != p_in:
        raise ValueError(
            f"`x` has {in_size} features (shape {jnp.shape(x)}) but `params` ({name}) expect "
            f"input size {p_in} (params.{weight_names[0]} shape {jnp.shape(w0)})"
        )
    for wn in weight_names:
        w = getattr(params, wn)
        bn = "b" + wn[1:]
        bias = getattr(params, bn)
        if jnp.shape(w) != (p_in, hidden):
            raise ValueError(f"`params.{wn}` must have shape ({p_in}, {hidden}), got {jnp.shape(w)}")
        if jnp.shape(bias) != (hidden,):
            raise ValueError(f"`params.{bn}` must have shape ({hidden},), got {jnp.shape(bias)}")
    if h0 is not None:
        h0 = _as_input("h0", h0, where)
        _check_state("h0", h0, batch, hidden)
        _check_float("h0", h0)
        if mode == "log":
            value = _concrete_or_none(h0)
            if value is not None and not np.all(value >= 0):
                raise ValueError(
                    "`h0` must be >= 0 in mode='log' (the log-space scan needs positive states; "
                    "g() keeps every later state positive from a non-negative start). "
                    "Use mode='parallel'/'sequential' for a negative initial state."
                )
    return params, x, h0, hidden


def _fold_h0_log(log_a: Array, log_v: Array, h0: Array) -> Array:
    """``log_v`` with its first step replaced by ``log(v_0 + a_0 * h0)``, the state after step 0.

    Computed as ``m + log(exp(log v_0 - m) + exp(log a_0 - m) * h0)`` with ``m`` the larger log:
    both exponentials are <= 1 and ``log h0`` is never taken, so ``h0 = 0`` is exact and its
    gradient (``a_0 / v_0``) finite. A first state below ``finfo.tiny`` (only possible for a
    negative ``h0``, which eager calls reject) is floored at ``finfo.tiny`` instead of NaN.
    """
    la0, lv0 = log_a[:, 0], log_v[:, 0]
    m = jnp.maximum(la0, lv0)
    h0 = jnp.broadcast_to(jnp.asarray(h0, log_v.dtype), lv0.shape)
    first = jnp.exp(lv0 - m) + jnp.exp(la0 - m) * h0
    first = m + jnp.log(jnp.maximum(first, jnp.finfo(first.dtype).tiny))
    return log_v.at[:, 0].set(first)


def _project(x: Array, ws: tuple[Array, ...], bs: tuple[Array, ...]) -> list[Array]:
    """All input projections for all time steps in one matmul ([B*T, I] @ [I, n*H]), float32 out."""
    hidden = ws[0].shape[1]
    w = jnp.concatenate(ws, axis=1)
    cdt = jnp.promote_types(x.dtype, w.dtype)
    acc = _compute_dtype(cdt)
    b = jnp.concatenate(bs, axis=0).astype(acc)
    proj = jnp.einsum("bti,ih->bth", x.astype(cdt), w.astype(cdt), preferred_element_type=acc) + b
    return [proj[..., k * hidden:(k + 1) * hidden] for k in range(len(ws))]


def _run_min_rnn(log_a: Array, log_v: Array, a: Array, v: Array, h0: Array | None,
                 mode: str, out_dtype) -> tuple[Array, Array]:
    """Shared tail of minGRU/minLSTM: solve ``h_t = a_t h_{t-1} + v_t`` in the chosen mode."""
    if mode == "log":
        if h0 is not None:
            log_v = _fold_h0_log(log_a, log_v, h0)
        h = jnp.exp(_log_linear_recurrence(log_a, log_v, None, log_a.shape, False))
    else:
        method = "associative" if mode == "parallel" else "sequential"
        h = _linear_recurrence(a, v, None if h0 is None else jnp.asarray(h0, a.dtype), a.shape,
                               False, method)
    h = h.astype(out_dtype)
    return h, h[:, -1]


def mingru(
    params: MinGRUParams,
    x: Array,
    *,
    h0: Array | None = None,
    mode: str = "log",
) -> tuple[Array, Array]:
    """minGRU (Feng et al. 2024): ``h_t = (1 - z_t) * h_{t-1} + z_t * g(Linear_h(x_t))``.

    ``z_t = sigmoid(Linear_z(x_t))``. The log mode follows the paper's appendix:
    ``log z = -softplus(-k)``, ``log(1 - z) = -softplus(k)``, ``log h~ = log_g(Linear_h(x))``.
    All modes use ``g`` for the candidate (see the module docstring) and give the same values.

    Args:
      params: :class:`MinGRUParams` with ``w_* [input, hidden]``, ``b_* [hidden]``.
      x: ``[batch, time, input]``.
      h0: initial state ``[batch, hidden]`` (or a scalar); None means zeros. Must be >= 0 in
        ``mode="log"`` (see the module docstring: zero is exact, gradients finite). The paper's
        listing applies ``log_g`` to ``h_0``; here ``h0`` *is* the state, so all modes agree.
      mode: ``"log"`` (default), ``"parallel"`` or ``"sequential"``.

    Returns:
      ``(outputs [batch, time, hidden], h_final [batch, hidden])`` in ``x``'s dtype (bf16 inputs
      are accumulated in float32).
    """
    params, x, h0, _ = _validate_min_rnn("mingru", MinGRUParams, params, x, h0, mode, ("w_z", "w_h"))
    with jax.named_scope("recurrence"):
        return _mingru(params, x, h0, mode)


def _mingru(params: MinGRUParams, x: Array, h0: Array | None, mode: str) -> tuple[Array, Array]:
    k, pre_h = _project(x, (params.w_z, params.w_h), (params.b_z, params.b_h))
    if mode == "log":
        log_coeffs = -jax.nn.softplus(k)          # log(1 - z)
        log_values = -jax.nn.softplus(-k) + log_g(pre_h)  # log z + log h~
        return _run_min_rnn(log_coeffs, log_values, None, None, h0, mode, x.dtype)
    z = jax.nn.sigmoid(k)
    return _run_min_rnn(None, None, 1.0 - z, z * g(pre_h), h0, mode, x.dtype)


def minlstm(
    params: MinLSTMParams,
    x: Array,
    *,
    h0: Array | None = None,
    mode: str = "log",
) -> tuple[Array, Array]:
    """minLSTM (Feng et al. 2024): ``h_t = f'_t * h_{t-1} + i'_t * g(Linear_h(x_t))``.

    ``f = sigmoid(Linear_f(x))``, ``i = sigmoid(Linear_i(x))``, normalised ``f' = f / (f + i)``,
    ``i' = i / (f + i)`` (time-independent scale). The log mode follows the paper's appendix:
    ``diff = softplus(-k_f) - softplus(-k_i)``, ``log f' = -softplus(diff)``,
    ``log i' = -softplus(-diff)``. All modes use ``g`` for the candidate and give the same values.

    Args:
      params: :class:`MinLSTMParams` with ``w_* [input, hidden]``, ``b_* [hidden]``.
      x: ``[batch, time, input]``.
      h0: initial state ``[batch, hidden]`` (or a scalar); None means zeros. Must be >= 0 in
        ``mode="log"`` (zero is exact there, with finite gradients).
      mode: ``"log"`` (default), ``"parallel"`` or ``"sequential"``.

    Returns:
      ``(outputs [batch, time, hidden], h_final [batch, hidden])`` in ``x``'s dtype.
    """
    params, x, h0, _ = _validate_min_rnn("minlstm", MinLSTMParams, params, x, h0, mode,
                                         ("w_f", "w_i", "w_h"))
    with jax.named_scope("recurrence"):
        return _minlstm(params, x, h0, mode)


def _minlstm(params: MinLSTMParams, x: Array, h0: Array | None, mode: str) -> tuple[Array, Array]:
    k_f, k_i, pre_h = _project(x, (params.w_f, params.w_i, params.w_h),
                               (params.b_f, params.b_i, params.b_h))
    # diff = log(i / f); f' = 1 / (1 + i/f) = sigmoid(-diff), i' = sigmoid(diff). Computing the
    # normalised gates through diff in every mode keeps them exact where f + i is tiny.
    diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    if mode == "log":
        log_f = -jax.nn.softplus(diff)
        log_i = -jax.nn.softplus(-diff)
        return _run_min_rnn(log_f, log_i + log_g(pre_h), None, None, h0, mode, x.dtype)
    f_n = jax.nn.sigmoid(-diff)
    i_n = jax.nn.sigmoid(diff)
    return _run_min_rnn(None, None, f_n, i_n * g(pre_h), h0, mode, x.dtype)


# ----------------------------------------------------------------------------------------------
# One step (incremental decoding)
# ----------------------------------------------------------------------------------------------

def _validate_min_step(where: str, cls: type, params: object, x: object, h: object,
                       weight_names: tuple[str, ...]) -> tuple[tuple, Array, Array]:
    """Checks and converts the arguments of mingru_step/minlstm_step: (params, x_t, h)."""
    params = as_params(where, params, cls)
    x = as_array(where, "x", x)
    h = _as_input("h", h, where)
    if jnp.ndim(x) != 2:
        raise ValueError(f"`x` must have shape [batch, input] (one time step, rank 2), got shape "
                         f"{jnp.shape(x)}")
    _check_float("x", x)
    _check_float("h", h)
    for wn in weight_names:
        w, bias = getattr(params, wn), getattr(params, "b" + wn[1:])
        if jnp.ndim(w) != 2 or jnp.shape(w) != jnp.shape(getattr(params, weight_names[0])):
            raise ValueError(f"`params.{wn}` must have shape [input, hidden] like "
                             f"`params.{weight_names[0]}`, got {jnp.shape(w)}")
        if jnp.shape(bias) != (jnp.shape(w)[1],):
            raise ValueError(f"`params.b{wn[1:]}` must have shape ({jnp.shape(w)[1]},), got "
                             f"{jnp.shape(bias)}")
    p_in, hidden = jnp.shape(getattr(params, weight_names[0]))
    if jnp.shape(x)[1] != p_in:
        raise ValueError(f"`x` has {jnp.shape(x)[1]} features (shape {jnp.shape(x)}) but `params` "
                         f"({cls.__name__}) expect input size {p_in}")
    if jnp.shape(h) != (jnp.shape(x)[0], hidden):
        raise ValueError(f"`h` must have shape [batch, hidden] = ({jnp.shape(x)[0]}, {hidden}), got "
                         f"shape {jnp.shape(h)}")
    return params, x, h


def _project_step(x: Array, ws: tuple[Array, ...], bs: tuple[Array, ...]) -> list[Array]:
    """:func:`_project` for one step: x [batch, input] -> n arrays [batch, hidden] (float32 for halves).

    One matmul per weight: concatenating the weights (as the sequence form does, once per call)
    would copy them at every decoded token.
    """
    cdt = jnp.promote_types(x.dtype, ws[0].dtype)
    acc = _compute_dtype(cdt)
    return [jnp.einsum("bi,ih->bh", x.astype(cdt), w.astype(cdt), preferred_element_type=acc)
            + b.astype(acc) for w, b in zip(ws, bs)]


def mingru_step(params: MinGRUParams, x: Array, h: Array) -> Array:
    """One minGRU step: ``h_t = (1 - z_t) * h_{t-1} + z_t * g(Linear_h(x_t))``, ``z = sigmoid(Linear_z(x))``.

    The ``mode="sequential"`` maths of :func:`mingru` for a single time step, for incremental
    decoding (the state is all a minGRU carries between tokens).

    Args:
      params: :class:`MinGRUParams`.
      x: ``[batch, input]``, the input at this step.
      h: ``[batch, hidden]``, the previous state (zeros at the start).

    Returns:
      the new state ``h [batch, hidden]`` (also the step's output) in ``x``'s dtype; half-precision
      inputs are computed in float32. Over a sequence this equals :func:`mingru` exactly up to
      rounding in float32; for bf16/float16 the state is rounded to ``x``'s dtype at every step
      (the scan keeps its carry in float32), so the two drift apart by the half-precision rounding.
    """
    params, x, h = _validate_min_step("mingru_step", MinGRUParams, params, x, h, ("w_z", "w_h"))
    with jax.named_scope("recurrence"):
        k, pre_h = _project_step(x, (params.w_z, params.w_h), (params.b_z, params.b_h))
        z = jax.nn.sigmoid(k)
        h_new = (1.0 - z) * h.astype(k.dtype) + z * g(pre_h)
        return h_new.astype(x.dtype)


def minlstm_step(params: MinLSTMParams, x: Array, h: Array) -> Array:
    """One minLSTM step: ``h_t = f'_t * h_{t-1} + i'_t * g(Linear_h(x_t))`` (normalised gates).

    The ``mode="sequential"`` maths of :func:`minlstm` for a single time step (gates through
    ``diff = softplus(-k_f) - softplus(-k_i)`` as there). Arguments and dtypes as
    :func:`mingru_step`: ``x [batch, input]``, ``h [batch, hidden]`` -> ``h [batch, hidden]``.
    """
    params, x, h = _validate_min_step("minlstm_step", MinLSTMParams, params, x, h,
                                      ("w_f", "w_i", "w_h"))
    with jax.named_scope("recurrence"):
        k_f, k_i, pre_h = _project_step(x, (params.w_f, params.w_i, params.w_h),
                                        (params.b_f, params.b_i, params.b_h))
        diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        h_new = jax.nn.sigmoid(-diff) * h.astype(k_f.dtype) + jax.nn.sigmoid(diff) * g(pre_h)
        return h_new.astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Float64 references (Python loops over time; tests only)
# ----------------------------------------------------------------------------------------------

def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _np_g(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.maximum(x, 0) + 0.5, _np_sigmoid(x))


def mingru_reference(params: MinGRUParams, x, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 step-by-step minGRU, written straight from the paper's sequential equations."""
    p = [np.asarray(v, np.float64) for v in as_params("mingru_reference", params, MinGRUParams)]
    w_z, b_z, w_h, b_h = p
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    h = np.zeros((batch, w_z.shape[1])) if h0 is None else np.asarray(h0, np.float64).copy()
    out = np.zeros((batch, time, w_z.shape[1]))
    for t in range(time):
        z = _np_sigmoid(x[:, t] @ w_z + b_z)
        h_tilde = _np_g(x[:, t] @ w_h + b_h)
        h = (1.0 - z) * h + z * h_tilde
        out[:, t] = h
    return out, h


def minlstm_reference(params: MinLSTMParams, x, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 step-by-step minLSTM, written straight from the paper's sequential equations."""
    p = [np.asarray(v, np.float64) for v in as_params("minlstm_reference", params, MinLSTMParams)]
    w_f, b_f, w_i, b_i, w_h, b_h = p
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    h = np.zeros((batch, w_f.shape[1])) if h0 is None else np.asarray(h0, np.float64).copy()
    out = np.zeros((batch, time, w_f.shape[1]))
    for t in range(time):
        f = _np_sigmoid(x[:, t] @ w_f + b_f)
        i = _np_sigmoid(x[:, t] @ w_i + b_i)
        h_tilde = _np_g(x[:, t] @ w_h + b_h)
        f_n, i_n = f / (f + i), i / (f + i)
        h = f_n * h + i_n * h_tilde
        out[:, t] = h
    return out, h
