"""Both directions of a bidirectional LSTM/GRU layer in one scan (pure JAX, no Flax).

A bidirectional layer is usually two scans: the forward direction, then the backward direction
(``reverse=True``, each sequence reversed within its own length). Here the backward direction's
input is reversed within each sequence's length *before* the scan, the two directions are stacked
along a leading direction axis ``[2, batch, time, ·]``, and one ``lax.scan`` advances both: each
step does both directions' matmuls (more rows per step, one loop iteration instead of two). After
the reversal both directions read their inputs at the same positions, so one time mask (``t <
length``) serves both.

Results equal ``lstm_scan(params_fwd, x)`` and ``lstm_scan(params_bwd, x, reverse=True)`` (same
``lengths``) concatenated along features: ``outputs [batch, time, 2*hidden]`` (forward first),
final states stacked ``[2, batch, hidden]`` (direction 0 forward, 1 backward, PyTorch's order;
the backward final state is the one after reading back to time 0).

Options (keyword-only), as in :mod:`jaxseq.ops.rnn`: ``initial_state``, ``lengths``, ``unroll``,
``hoist_input`` and ``backward`` (``"custom"``/``"auto"``: a ``jax.custom_vjp`` whose backward is
one reverse scan doing both directions, one ``dz @ w_hh^T`` per step per direction, with weight
and input gradients as large matmuls after the scan; ``"autodiff"``: JAX differentiates the
forward scan, which forward mode needs). Also:

* ``fused``: False runs the two :func:`jaxseq.ops.rnn.lstm_scan` recurrences instead (the
  reference and fallback).
* ``layout``: how one step multiplies the two directions' ``[batch, k]`` rows by their own
  ``[k, n]`` weights. ``"batched"``: one batched ``dot_general`` over the direction axis
  (``einsum('dbk,dkn->dbn')``); ``"split"``: two ordinary matmuls in the same step;
  ``"blockdiag"``: directions folded into the feature axis, ``[batch, 2k] @ blockdiag(W_f, W_b)``
  (one plain matmul, twice the FLOPs, half of them on zeros); ``"concat"``: as ``"batched"``, and
  for the LSTM with the input matmul inside the step (``hoist_input`` False) one matmul per
  direction and step, ``[x_t, h] @ [w_ih; w_hh]`` (the GRU keeps its two products, since ``r``
  multiplies only the hidden one). ``"auto"`` picks per backend (see ``_CPU_LAYOUT`` for the
  measurement behind the CPU choice).

Validation (shapes, equal parameter shapes across directions, options, concrete lengths) happens
before tracing; errors are ``ValueError``/``TypeError`` naming the argument. The whole op runs
inside ``jax.named_scope("recurrence")``. Matmuls run in the input dtype; gates and the LSTM cell
in at least float32; outputs and final states come back in the input dtype.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

from jaxseq.ops._checks import as_array, as_params, check_forward_mode, explain_forward_mode
from jaxseq.ops.rnn import (
    GRUParams,
    LSTMParams,
    acc_dtype,
    gather_time,
    gru_impl,
    lstm_impl,
    lstm_backward_coefficients,
    lstm_coefficient_vjp,
    lstm_pointwise,
    permute_time,
    resolve_hoist,
    reverse_index,
    shift_prev,
    time_mask,
    validate_common,
)

Array = jax.Array
Backward = Literal["auto", "custom", "autodiff"]
Layout = Literal["auto", "batched", "split", "blockdiag", "concat"]

__all__ = ["lstm_bidirectional_scan", "gru_bidirectional_scan"]

_LAYOUTS = ("auto", "batched", "split", "blockdiag", "concat")
# Measured on the project's 2-core CPU (2026-12-01, shared with other jobs, load 5.5-9: noisy),
# training step of one layer, B=32, I=H=256, T=512, float32, custom backward, interleaved rounds,
# median ms: unfused 2686 / batched 2694 / concat 2764 / blockdiag 4155 (load ~5.7); an earlier
# run at load ~9: unfused 2684 / batched 3102 / split 3709 / blockdiag 3796. "batched" is the
# best fused layout but only ties the two-scan layer there: per-step matmul time, not loop
# overhead, bounds XLA:CPU at this size, and a batched dot runs the two directions one after
# the other. Off CPU (one kernel launch per direction and step saved) "batched" is the default.
_CPU_LAYOUT = "batched"
_FORWARD_MODE_FIX = "backward='autodiff'"


# --------------------------------------------------------------------------------------------
# per-direction matmuls: a [D, B, K] times the direction's own w [D, K, N] -> [D, B, N]


def _prep(w: Array, layout: str) -> Array:
    """Weights in the form :func:`_dmm` wants: [D, K, N], or [D*K, D*N] block-diagonal."""
    if layout in ("batched", "split", "concat"):
        return w
    d, k, n = w.shape
    eye = jnp.eye(d, dtype=w.dtype)
    # [D, K, D, N] with w[d] on the diagonal blocks: a gather-free, differentiable block_diag.
    return (eye[:, None, :, None] * w[:, :, None, :]).reshape(d * k, d * n)


def _dmm(a: Array, w: Array, layout: str) -> Array:
    if layout in ("batched", "concat"):
        return jnp.einsum("dbk,dkn->dbn", a, w)
    if layout == "split":
        return jnp.stack([a[i] @ w[i] for i in range(a.shape[0])])
    d, b, _ = a.shape
    y = jnp.swapaxes(a, 0, 1).reshape(b, -1) @ w
    return jnp.swapaxes(y.reshape(b, d, -1), 0, 1)


# --------------------------------------------------------------------------------------------
# LSTM core, both directions batched on a leading axis


def _bi_lstm_forward(w_ih, w_hh, b, xs, h0, c0, mask, *, hoist, unroll, layout, save, time_major=False):
    """xs [D, B, T, I] ([T, D, B, I] with `time_major`; direction 1 already reversed); h0 [D, B, H];
    c0 [D, B, H] (acc dtype).

    Returns out_tm [T, D, B, H], (hT, cT), residuals (backward coefficients k [T, D, B, 4H] and
    pf [T, D, B, 2H], see ``jaxseq.ops.rnn.lstm_backward_coefficients``) or None.
    """
    acc = c0.dtype
    hidden = w_hh.shape[1]
    whh = _prep(w_hh, layout)
    concat = layout == "concat" and not hoist
    if hoist:
        seq = jnp.einsum("tdbi,dig->tdbg" if time_major else "dbti,dig->tdbg", xs, w_ih) + b[:, None, :]
    else:
        seq = xs if time_major else jnp.transpose(xs, (2, 0, 1, 3))  # [T, D, B, I]
        wih = _prep(w_ih, layout)
    if concat:  # one matmul per direction and step: [x_t, h] @ [w_ih; w_hh]
        w_cat = jnp.concatenate([w_ih, w_hh], axis=1)

    def step(carry, inp):
        h, c = carry
        xt, m = inp
        if concat:
            z = (_dmm(jnp.concatenate([xt, h], axis=-1), w_cat, layout) + b[:, None, :]).astype(acc)
        else:
            gx = xt if hoist else _dmm(xt, wih, layout) + b[:, None, :]
            z = (gx + _dmm(h, whh, layout)).astype(acc)
        gates, c_new, h_new = lstm_pointwise(z, c, hidden)
        h_new = h_new.astype(h.dtype)
        if m is None:
            h_next, c_next, out = h_new, c_new, h_new
        else:
            h_next = jnp.where(m, h_new, h)
            c_next = jnp.where(m, c_new, c)
            out = jnp.where(m, h_new, jnp.zeros_like(h_new))
        if save:
            return (h_next, c_next), (out, *lstm_backward_coefficients(gates, c, c_new, h.dtype))
        return (h_next, c_next), out

    (hT, cT), ys = lax.scan(step, (h0, c0), (seq, mask), unroll=unroll)
    if save:
        out, k, pf = ys
        return out, (hT, cT), (k, pf)
    return ys, (hT, cT), None


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _bi_lstm_custom(hoist, unroll, layout, w_ih, w_hh, b, xs, h0, c0, mask):
    out, state, _ = _bi_lstm_forward(w_ih, w_hh, b, xs, h0, c0, mask, hoist=hoist, unroll=unroll,
                                     layout=layout, save=False)
    return out, state


def _bi_lstm_custom_fwd(hoist, unroll, layout, w_ih, w_hh, b, xs, h0, c0, mask):
    # Time-major input kept for the backward's matmuls (as in jaxseq.ops.rnn's one-direction core).
    xs_tm = jnp.transpose(xs, (2, 0, 1, 3))
    out, state, (k, pf) = _bi_lstm_forward(
        w_ih, w_hh, b, xs_tm, h0, c0, mask, hoist=hoist, unroll=unroll, layout=layout, save=True,
        time_major=True,
    )
    return (out, state), (w_ih, w_hh, xs_tm, h0, out, k, pf, mask)


def _bi_lstm_custom_bwd(hoist, unroll, layout, res, cts):
    with jax.named_scope("recurrence"):
        return _bi_lstm_custom_bwd_body(unroll, layout, res, cts)


def _bi_lstm_custom_bwd_body(unroll, layout, res, cts):
    w_ih, w_hh, xs_tm, h0, out, k, pf, mask = res
    d_out, (d_hT, d_cT) = cts
    acc = d_cT.dtype
    cdt = w_hh.dtype
    hidden = w_hh.shape[1]
    whh_t = _prep(jnp.swapaxes(w_hh, 1, 2), layout)  # [D, 4H, H]

    def step(carry, inp):
        dh, dc = carry
        kt, pft, dy, m = inp
        dh_tot = dh + dy.astype(acc)
        if m is not None:
            dh_tot = jnp.where(m, dh_tot, 0.0)
            dc_in = jnp.where(m, dc, 0.0)
        else:
            dc_in = dc
        dz, dc_prev = lstm_coefficient_vjp(kt, pft, dh_tot, dc_in, hidden)
        dz = dz.astype(cdt)
        # The only per-step matmuls of the backward pass (one per direction).
        dh_prev = _dmm(dz, whh_t, layout).astype(acc)
        if m is not None:
            dh_prev = jnp.where(m, dh_prev, dh)
            dc_prev = jnp.where(m, dc_prev, dc)
        return (dh_prev, dc_prev), dz

    carry0 = (d_hT.astype(acc), d_cT.astype(acc))
    (dh0, dc0), dz = lax.scan(step, carry0, (k, pf, d_out, mask), reverse=True, unroll=unroll)
    # dz [T, D, B, 4H]: weight, bias and input gradients as one large matmul each per direction,
    # time-major; only dx (a quarter of dz's size) is transposed back to [D, B, T, I].
    h_prev = shift_prev(h0, out)
    d_w_ih = jnp.einsum("tdbi,tdbg->dig", xs_tm, dz)
    d_w_hh = jnp.einsum("tdbh,tdbg->dhg", h_prev, dz)
    d_b = jnp.sum(dz, axis=(0, 2), dtype=acc).astype(cdt)
    dxs = jnp.transpose(jnp.einsum("tdbg,dgi->tdbi", dz, jnp.swapaxes(w_ih, 1, 2)), (1, 2, 0, 3))
    return d_w_ih, d_w_hh, d_b, dxs, dh0.astype(h0.dtype), dc0.astype(acc), None


_bi_lstm_custom.defvjp(_bi_lstm_custom_fwd, _bi_lstm_custom_bwd)


# --------------------------------------------------------------------------------------------
# GRU core, both directions batched on a leading axis


def _bi_gru_forward(w_ih, w_hh, b_ih, b_hh, xs, h0, mask, *, hoist, unroll, layout, save):
    """xs [D, B, T, I] (direction 1 already reversed); h0 [D, B, H]. Returns out_tm [T, D, B, H], hT, res."""
    acc = acc_dtype(h0.dtype)
    hidden = w_hh.shape[1]
    whh = _prep(w_hh, layout)
    bih, bhh = b_ih[:, None, :], b_hh[:, None, :]
    if hoist:
        seq = jnp.einsum("dbti,dig->tdbg", xs, w_ih) + bih
    else:
        seq = jnp.transpose(xs, (2, 0, 1, 3))
        wih = _prep(w_ih, layout)

    def step(h, inp):
        xt, m = inp
        gi = (xt if hoist else _dmm(xt, wih, layout) + bih).astype(acc)
        gh = (_dmm(h, whh, layout) + bhh).astype(acc)
        r = jax.nn.sigmoid(gi[..., :hidden] + gh[..., :hidden])
        z = jax.nn.sigmoid(gi[..., hidden : 2 * hidden] + gh[..., hidden : 2 * hidden])
        ghn = gh[..., 2 * hidden :]
        n = jnp.tanh(gi[..., 2 * hidden :] + r * ghn)
        h_new = ((1.0 - z) * n + z * h.astype(acc)).astype(h.dtype)
        if m is None:
            h_next, out = h_new, h_new
        else:
            h_next = jnp.where(m, h_new, h)
            out = jnp.where(m, h_new, jnp.zeros_like(h_new))
        if save:
            return h_next, (out, jnp.concatenate([r, z, n, ghn], axis=-1).astype(h.dtype))
        return h_next, out

    hT, ys = lax.scan(step, h0, (seq, mask), unroll=unroll)
    if save:
        out, res = ys
        return out, hT, res
    return ys, hT, None


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _bi_gru_custom(hoist, unroll, layout, w_ih, w_hh, b_ih, b_hh, xs, h0, mask):
    out, hT, _ = _bi_gru_forward(w_ih, w_hh, b_ih, b_hh, xs, h0, mask, hoist=hoist, unroll=unroll,
                                 layout=layout, save=False)
    return out, hT


def _bi_gru_custom_fwd(hoist, unroll, layout, w_ih, w_hh, b_ih, b_hh, xs, h0, mask):
    out, hT, res = _bi_gru_forward(w_ih, w_hh, b_ih, b_hh, xs, h0, mask, hoist=hoist,
                                   unroll=unroll, layout=layout, save=True)
    return (out, hT), (w_ih, w_hh, xs, h0, out, res, mask)


def _bi_gru_custom_bwd(hoist, unroll, layout, res_all, cts):
    with jax.named_scope("recurrence"):
        return _bi_gru_custom_bwd_body(unroll, layout, res_all, cts)


def _bi_gru_custom_bwd_body(unroll, layout, res_all, cts):
    w_ih, w_hh, xs, h0, out, res, mask = res_all
    d_out, d_hT = cts
    cdt = w_hh.dtype
    acc = acc_dtype(cdt)
    hidden = w_hh.shape[1]
    whh_t = _prep(jnp.swapaxes(w_hh, 1, 2), layout)
    h_prev = shift_prev(h0, out)

    def step(dh, inp):
        a, hp, dy, m = inp
        a = a.astype(acc)
        r, z = a[..., :hidden], a[..., hidden : 2 * hidden]
        n, ghn = a[..., 2 * hidden : 3 * hidden], a[..., 3 * hidden :]
        dh_tot = dh + dy.astype(acc)
        if m is not None:
            dh_tot = jnp.where(m, dh_tot, 0.0)
        dn_pre = dh_tot * (1.0 - z) * (1.0 - n * n)
        dr_pre = dn_pre * ghn * r * (1.0 - r)
        dz_pre = dh_tot * (hp.astype(acc) - n) * z * (1.0 - z)
        dgi = jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1).astype(cdt)
        dgh = jnp.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1).astype(cdt)
        dh_prev = dh_tot * z + _dmm(dgh, whh_t, layout).astype(acc)
        if m is not None:
            dh_prev = jnp.where(m, dh_prev, dh)
        return dh_prev, (dgi, dgh)

    dh0, (dgi, dgh) = lax.scan(
        step, d_hT.astype(acc), (res, h_prev, d_out, mask), reverse=True, unroll=unroll
    )
    d_w_ih = jnp.einsum("dbti,tdbg->dig", xs, dgi)
    d_w_hh = jnp.einsum("tdbh,tdbg->dhg", h_prev, dgh)
    d_b_ih = jnp.sum(dgi, axis=(0, 2), dtype=acc).astype(cdt)
    d_b_hh = jnp.sum(dgh, axis=(0, 2), dtype=acc).astype(cdt)
    dxs = jnp.einsum("tdbg,dig->dbti", dgi, w_ih)
    return d_w_ih, d_w_hh, d_b_ih, d_b_hh, dxs, dh0.astype(h0.dtype), None


_bi_gru_custom.defvjp(_bi_gru_custom_fwd, _bi_gru_custom_bwd)


# --------------------------------------------------------------------------------------------
# shared plumbing: reversal within lengths, stacking, un-stacking


def _stack_directions(x: Array, lengths: Array | None, custom: bool):
    """x [B, T, I] -> xs [2, B, T, I] (direction 1 reversed within lengths), and the un-reverser."""
    time = x.shape[1]
    if lengths is None:
        rev = partial(jnp.flip, axis=1)
    else:
        idx = reverse_index(lengths, time)
        permute = permute_time if custom else gather_time
        rev = lambda a: permute(a, idx)  # noqa: E731 - an involution: it also undoes itself
    return jnp.stack([x, rev(x)]), rev


def _unstack_outputs(out_tm: Array, rev) -> Array:
    """out_tm [T, 2, B, H] -> [B, T, 2H]: forward, then backward put back in original time order."""
    fwd = jnp.swapaxes(out_tm[:, 0], 0, 1)
    bwd = rev(jnp.swapaxes(out_tm[:, 1], 0, 1))
    return jnp.concatenate([fwd, bwd], axis=-1)


def _resolve_layout(layout: str) -> str:
    if layout != "auto":
        return layout
    return _CPU_LAYOUT if jax.default_backend() == "cpu" else "batched"


# --------------------------------------------------------------------------------------------
# validation


def _validate(kind, cls, n_gates, params_fwd, params_bwd, x, lengths, unroll, hoist_input,
              backward, fused, layout):
    """Checks before tracing; returns (params_fwd, params_bwd, x, lengths, hidden)."""
    pf, pb = (_named_params(kind, name, p, cls)
              for name, p in (("params_fwd", params_fwd), ("params_bwd", params_bwd)))
    for f in cls._fields:
        sf, sb = jnp.shape(getattr(pf, f)), jnp.shape(getattr(pb, f))
        if sf != sb:
            raise ValueError(
                f"{kind}: `params_fwd.{f}` and `params_bwd.{f}` must have the same shape (both "
                f"directions share input and hidden sizes), got {sf} and {sb}"
            )
    if not isinstance(fused, bool):
        raise TypeError(f"{kind}: `fused` must be a bool, got {fused!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"{kind}: `layout` must be one of {_LAYOUTS}, got {layout!r}")
    # Everything else (x, params vs x, lengths, unroll, hoist_input, backward) as lstm_scan/gru_scan
    # check it, with the messages re-addressed to this op and its argument names.
    inner = "lstm_scan" if cls is LSTMParams else "gru_scan"
    try:
        pf, x, lengths, _, hidden = validate_common(
            inner, pf, x, n_gates, lengths, 1, unroll, hoist_input, backward
        )
    except (TypeError, ValueError) as e:
        msg = str(e).replace(f"{inner}:", f"{kind}:", 1).replace("`params.", "`params_fwd/params_bwd.")
        raise type(e)(msg) from None
    return pf, pb, x, lengths, hidden


def _named_params(kind: str, name: str, params: Any, cls: type) -> Any:
    try:
        return as_params(kind, params, cls)
    except TypeError as e:
        raise TypeError(str(e).replace("`params`", f"`{name}`", 1)) from None


def _check_stacked_state(kind: str, name: str, s: Any, batch: int, hidden: int) -> Array:
    s = as_array(kind, name, s)
    if tuple(s.shape) != (2, batch, hidden):
        raise ValueError(
            f"{kind}: `{name}` must have shape [2, batch, hidden] = (2, {batch}, {hidden}) "
            f"(direction 0 forward, 1 backward), got {tuple(s.shape)}"
        )
    return s


# --------------------------------------------------------------------------------------------
# public ops


def lstm_bidirectional_scan(
    params_fwd: LSTMParams,
    params_bwd: LSTMParams,
    x: Array,
    *,
    initial_state: tuple[Array, Array] | None = None,
    lengths: Array | None = None,
    fused: bool = True,
    backward: Backward = "auto",
    unroll: int | bool = 1,
    hoist_input: bool | None = None,
    layout: Layout = "auto",
) -> tuple[Array, tuple[Array, Array]]:
    """Bidirectional LSTM layer over ``x`` ``[batch, time, input]``, both directions in one scan.

    Args:
      params_fwd, params_bwd: ``LSTMParams`` of the forward and backward directions (same shapes).
      x: ``[batch, time, input]`` floating array.
      initial_state: ``(h0, c0)``, each ``[2, batch, hidden]`` (direction 0 forward, 1 backward);
        zeros when None.
      lengths: ``[batch]`` int in ``[0, time]``: outputs past a sequence's end are zero and the
        backward direction starts at each sequence's last valid step.
      fused: one scan for both directions (True) or two :func:`~jaxseq.ops.rnn.lstm_scan` calls.
      backward: ``"auto"`` | ``"custom"`` | ``"autodiff"``; ``jax.jvp``/``jax.jacfwd`` need
        ``"autodiff"``.
      unroll: ``lax.scan`` unroll factor.
      hoist_input: one input matmul before the scan (True), per step (False), per backend (None).
      layout: per-step matmul layout of the fused scan; see the module docstring.

    Returns:
      ``(outputs [batch, time, 2*hidden], (h [2, batch, hidden], c [2, batch, hidden]))`` in the
      dtype of ``x``; ``outputs[..., :hidden]`` is the forward direction.
    """
    kind = "lstm_bidirectional_scan"
    pf, pb, x, lengths, hidden = _validate(kind, LSTMParams, 4, params_fwd, params_bwd, x, lengths,
                                           unroll, hoist_input, backward, fused, layout)
    batch = x.shape[0]
    cdt, acc = x.dtype, acc_dtype(x.dtype)
    if initial_state is None:
        h0 = jnp.zeros((2, batch, hidden), cdt)
        c0 = jnp.zeros((2, batch, hidden), acc)
    else:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            raise ValueError(
                f"{kind}: `initial_state` must be a pair (h0, c0), each [2, batch, hidden] = "
                f"(2, {batch}, {hidden}), got {type(initial_state).__name__}"
            )
        h0 = _check_stacked_state(kind, "initial_state[0] (h0)", initial_state[0], batch, hidden)
        c0 = _check_stacked_state(kind, "initial_state[1] (c0)", initial_state[1], batch, hidden)
        h0, c0 = h0.astype(cdt), c0.astype(acc)
    custom = backward in ("auto", "custom")
    if custom:
        check_forward_mode(kind, _FORWARD_MODE_FIX, pf, pb, x, initial_state)
    with explain_forward_mode(kind, _FORWARD_MODE_FIX) if custom else nullcontext():
        return _bi_lstm_impl(
            tuple(pf), tuple(pb), x, h0, c0, lengths, fused=fused, custom=custom, unroll=unroll,
            hoist=resolve_hoist(hoist_input), layout=_resolve_layout(layout),
        )


@partial(jax.jit, static_argnames=("fused", "custom", "unroll", "hoist", "layout"))
def _bi_lstm_impl(pf, pb, x, h0, c0, lengths, *, fused, custom, unroll, hoist, layout):
    with jax.named_scope("recurrence"):
        cdt = x.dtype
        if not fused:
            outs, hs, cs = [], [], []
            for d, p in enumerate((pf, pb)):
                o, (h, c) = lstm_impl(p, x, h0[d], c0[d], lengths, reverse=bool(d), dilation=1,
                                       unroll=unroll, hoist=hoist, custom=custom)
                outs.append(o), hs.append(h), cs.append(c)
            return jnp.concatenate(outs, axis=-1), (jnp.stack(hs), jnp.stack(cs))
        w_ih, w_hh, b = (jnp.stack([a, c]).astype(cdt) for a, c in zip(pf, pb))
        xs, rev = _stack_directions(x, lengths, custom)
        mask = time_mask(lengths, x.shape[1])
        if custom:
            out, (hT, cT) = _bi_lstm_custom(hoist, unroll, layout, w_ih, w_hh, b, xs, h0, c0, mask)
        else:
            out, (hT, cT), _ = _bi_lstm_forward(w_ih, w_hh, b, xs, h0, c0, mask, hoist=hoist,
                                                unroll=unroll, layout=layout, save=False)
        return _unstack_outputs(out, rev), (hT.astype(cdt), cT.astype(cdt))


def gru_bidirectional_scan(
    params_fwd: GRUParams,
    params_bwd: GRUParams,
    x: Array,
    *,
    initial_state: Array | None = None,
    lengths: Array | None = None,
    fused: bool = True,
    backward: Backward = "auto",
    unroll: int | bool = 1,
    hoist_input: bool | None = None,
    layout: Layout = "auto",
) -> tuple[Array, Array]:
    """Bidirectional GRU layer; arguments as :func:`lstm_bidirectional_scan`, except
    ``initial_state`` is ``h0`` ``[2, batch, hidden]``.

    Returns:
      ``(outputs [batch, time, 2*hidden], h [2, batch, hidden])`` in the dtype of ``x``.
    """
    kind = "gru_bidirectional_scan"
    pf, pb, x, lengths, hidden = _validate(kind, GRUParams, 3, params_fwd, params_bwd, x, lengths,
                                           unroll, hoist_input, backward, fused, layout)
    batch = x.shape[0]
    if initial_state is None:
        h0 = jnp.zeros((2, batch, hidden), x.dtype)
    else:
        h0 = _check_stacked_state(kind, "initial_state", initial_state, batch, hidden).astype(x.dtype)
    custom = backward in ("auto", "custom")
    if custom:
        check_forward_mode(kind, _FORWARD_MODE_FIX, pf, pb, x, initial_state)
    with explain_forward_mode(kind, _FORWARD_MODE_FIX) if custom else nullcontext():
        return _bi_gru_impl(
            tuple(pf), tuple(pb), x, h0, lengths, fused=fused, custom=custom, unroll=unroll,
            hoist=resolve_hoist(hoist_input), layout=_resolve_layout(layout),
        )


@partial(jax.jit, static_argnames=("fused", "custom", "unroll", "hoist", "layout"))
def _bi_gru_impl(pf, pb, x, h0, lengths, *, fused, custom, unroll, hoist, layout):
    with jax.named_scope("recurrence"):
        if not fused:
            outs, hs = [], []
            for d, p in enumerate((pf, pb)):
                o, h = gru_impl(p, x, h0[d], lengths, reverse=bool(d), dilation=1,
                                 unroll=unroll, hoist=hoist, custom=custom)
                outs.append(o), hs.append(h)
            return jnp.concatenate(outs, axis=-1), jnp.stack(hs)
        w_ih, w_hh, b_ih, b_hh = (jnp.stack([a, c]).astype(x.dtype) for a, c in zip(pf, pb))
        xs, rev = _stack_directions(x, lengths, custom)
        mask = time_mask(lengths, x.shape[1])
        if custom:
            out, hT = _bi_gru_custom(hoist, unroll, layout, w_ih, w_hh, b_ih, b_hh, xs, h0, mask)
        else:
            out, hT, _ = _bi_gru_forward(w_ih, w_hh, b_ih, b_hh, xs, h0, mask, hoist=hoist,
                                         unroll=unroll, layout=layout, save=False)
        return _unstack_outputs(out, rev), hT
