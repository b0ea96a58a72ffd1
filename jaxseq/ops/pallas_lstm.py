"""LSTM time steps as single Pallas kernels: recurrent matmul, gates, cell and saved products forward,
the cell's VJP and ``dz @ w_hh^T`` backward.

Why: on a GPU an LSTM time step is bound by kernel launches, not FLOPs. XLA runs the scan body of
:func:`jaxseq.ops.rnn.lstm_scan` as a recurrent matmul plus several small fusions per step (about
12 kernels per step on the H200, ``profiles/gpu-nvidia-h200x1/scaling``). This kernel does the whole step in one launch:

    z = gx + h @ w_hh                     (gx = x_t @ w_ih + b, hoisted out of the scan)
    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of z's four gate blocks
    c' = f * c + i * g                    h' = o * tanh(c')

and, for the custom backward pass, the products ``k`` [4H] and ``pf`` [2H] of
``jaxseq.ops.rnn.lstm_backward_coefficients`` in the same dtypes (the cell and the products are
``jaxseq.ops._lstm_math``'s functions, which the XLA scans use too). The backward step
(:func:`lstm_sequence_backward_pallas`, the in-place form's) is one kernel too: the cell's VJP from
``k`` and ``pf`` (multiply-adds) and ``dh_{t-1} = dz_t @ w_hh^T``. Each program needs the whole row of
``dz_t`` for its block of ``dh_{t-1}``, so it rebuilds it chunk by chunk (cheap elementwise work, read
from cache) and writes only its own units' columns. The step form (``in_place=False``) keeps
``lstm_scan``'s XLA backward scan.

Tiling: a grid of ``[batch / block_batch, hidden / block_hidden]`` programs. Program ``(bi, hj)``
owns hidden units ``hj*block_hidden ...`` of all four gates for its batch rows: it reads the four
``[hidden, block_hidden]`` column blocks of ``w_hh`` in ``block_k`` row chunks, so the gate math
needs no data from another program. All block sizes are powers of two and at least 16 (the Triton
lowering needs power-of-two array sizes, and its ``dot`` needs every dimension >= 16).

Backends: on a GPU the kernel lowers through Pallas' Triton backend (forced with
``pallas.triton.CompilerParams``: since jax 0.10 ``pallas_call`` defaults to Mosaic GPU on CUDA);
on the CPU it runs in Pallas' interpret mode, which is for tests only (it is far slower than
``step_kernel="xla"``). The Triton lowering is checked here without a GPU by exporting for
``cuda`` (``tests/ops/test_pallas_lstm.py``); whether the kernel is fast on a GPU is measured by
``scripts/gpu_lstm.sh``, not assumed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxseq.ops._lstm_math import backward_products, cell_forward

Array = jax.Array

_MIN_BLOCK = 16  # Triton's dot needs every operand dimension >= 16


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


@dataclasses.dataclass(frozen=True)
class PallasLSTMStep:
    """Tiling and backend of the Pallas LSTM step (hashable: it is a static argument under jit).

    Attributes:
      block_batch: batch rows per program; the scan pads the batch to a multiple of it.
      block_hidden: hidden units (of each of the four gates) per program; must divide ``hidden``.
      block_k: rows of ``w_hh`` read per chunk of the recurrent matmul; None: the largest power of
        two up to 128 that divides ``hidden``.
      num_warps, num_stages: Triton compiler parameters (GPU only; None keeps Triton's default).
      interpret: None picks by backend (interpret mode on the CPU, compiled on a GPU); True or
        False forces it (False on a CPU host is how the tests lower the kernel for CUDA).
      in_place: the scan's form. True (default): :func:`lstm_sequence_pallas`, one launch per time
        step: the kernel reads its step of the hoisted input projection, applies the ``lengths``
        mask and writes the output and saved products straight into the ``[time, ...]`` buffers
        (aliased, so updated in place); the backward pass is :func:`lstm_sequence_backward_pallas`,
        one launch per step as well. False: :func:`lstm_step_pallas` inside ``lax.scan``, whose
        slice of the input and writes of the outputs are XLA ops around the kernel, and XLA's
        backward scan.
    """

    block_batch: int = 16
    block_hidden: int = 16
    block_k: int | None = None
    num_warps: int | None = 4
    num_stages: int | None = None
    interpret: bool | None = None
    in_place: bool = True

    def __post_init__(self):
        for name in ("block_batch", "block_hidden", "block_k"):
            v = getattr(self, name)
            if v is None and name == "block_k":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not _is_pow2(v) or v < _MIN_BLOCK:
                raise ValueError(
                    f"PallasLSTMStep: `{name}` must be a power of two >= {_MIN_BLOCK}, got {v!r}"
                )
        for name in ("num_warps", "num_stages"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"PallasLSTMStep: `{name}` must be None or an int >= 1, got {v!r}")
        if self.interpret not in (None, True, False):
            raise ValueError(f"PallasLSTMStep: `interpret` must be None, True or False, got {self.interpret!r}")
        if not isinstance(self.in_place, bool):
            raise ValueError(f"PallasLSTMStep: `in_place` must be True or False, got {self.in_place!r}")

    def k_block(self, hidden: int) -> int:
        """The row chunk of ``w_hh`` for this ``hidden``."""
        if self.block_k is not None:
            return self.block_k
        bk = 128
        while bk > _MIN_BLOCK and hidden % bk:
            bk //= 2
        return bk

    def check(self, kind: str, hidden: int) -> None:
        """ValueError naming ``step_kernel`` unless this tiling fits ``hidden`` (before tracing)."""
        if hidden % self.block_hidden or hidden % self.k_block(hidden):
            raise ValueError(
                f"{kind}: step_kernel='pallas' needs hidden ({hidden}) to be a multiple of block_hidden "
                f"({self.block_hidden}) and block_k ({self.k_block(hidden)}), powers of two >= "
                f"{_MIN_BLOCK}; use step_kernel='xla' or a PallasLSTMStep that divides it"
            )


def resolve_step_kernel(kind: str, step_kernel: Any) -> PallasLSTMStep | None:
    """``"xla"`` -> None, ``"pallas"`` -> the default :class:`PallasLSTMStep`, an instance as is."""
    if isinstance(step_kernel, PallasLSTMStep):
        return step_kernel
    if step_kernel == "xla":
        return None
    if step_kernel == "pallas":
        return PallasLSTMStep()
    raise ValueError(
        f"{kind}: `step_kernel` must be 'xla', 'pallas' or a PallasLSTMStep, got {step_kernel!r}"
    )


def _use_interpret(config: PallasLSTMStep) -> bool:
    if config.interpret is not None:
        return config.interpret
    backend = jax.default_backend()
    if backend == "cpu":
        return True
    if backend == "gpu":
        return False
    raise ValueError(
        f"step_kernel='pallas' supports GPUs (Triton) and the CPU (interpret mode), not {backend!r}; "
        "use step_kernel='xla'"
    )


def _step_kernel(hidden: int, bb: int, bh: int, bk: int, save: bool, acc: Any, *, in_place: bool = False,
                 masked: bool = False):
    """The kernel body. Refs: [t (int32 [1]), lengths ([batch], masked only)] gx, h, c, w_hh, then the
    outputs h', c' and, with `save`, k and pf. With `in_place`, gx is [time, batch, 4H] read at step t,
    and the outputs are followed by the [time, ...] buffers (out, then k and pf with `save`) written
    at step t; the step's own k and pf outputs are then not produced."""

    def kernel(*refs):
        from jax.experimental import pallas as pl

        refs = list(refs)
        t = refs.pop(0)[0] if in_place else None
        len_ref = refs.pop(0) if masked else None
        gx_ref, h_ref, c_ref, w_ref, *out_refs = refs
        if in_place:  # the aliased [time, ...] buffers come in as inputs, then again as outputs
            out_refs = out_refs[1 + 2 * save:]
        rows = pl.ds(pl.program_id(0) * bb, bb)
        col0 = pl.program_id(1) * bh

        def gate_cols(gate: int):
            return pl.ds(gate * hidden + col0, bh)

        def at_t(cols):  # this program's block of a gx/k/pf ref, at step t when those span time
            return (t, rows, cols) if in_place else (rows, cols)

        z = [gx_ref[at_t(gate_cols(q))].astype(acc) for q in range(4)]
        # The recurrent matmul in row chunks: one [bb, bk] slice of h feeds all four gates' dots.
        for kk in range(hidden // bk):
            hk = h_ref[rows, pl.ds(kk * bk, bk)]
            for q in range(4):
                w = w_ref[pl.ds(kk * bk, bk), gate_cols(q)]
                z[q] = z[q] + jnp.dot(hk, w, preferred_element_type=acc)
        own = pl.ds(col0, bh)
        c_prev = c_ref[rows, own].astype(acc)
        gates, c_new, tc = cell_forward(*z, c_prev)
        h_ref_out, c_ref_out = out_refs[0], out_refs[1]
        h_new = (gates[3] * tc).astype(h_ref_out.dtype)
        out = h_new
        if masked:
            # The scan's masked carry: past a sequence's end the state is held and the output is 0.
            m = (t < len_ref[rows])[:, None]
            out = jnp.where(m, h_new, jnp.zeros_like(h_new))
            h_new = jnp.where(m, h_new, h_ref[rows, own])
            c_next = jnp.where(m, c_new, c_prev)
        else:
            c_next = c_new
        h_ref_out[rows, own] = h_new
        c_ref_out[rows, own] = c_next.astype(c_ref_out.dtype)
        if in_place:
            out_buf = out_refs[2]
            out_buf[t, rows, own] = out.astype(out_buf.dtype)
        if save:
            k_ref, pf_ref = out_refs[3:5] if in_place else out_refs[2:4]
            ks, (pf_h, pf_c) = backward_products(gates, c_prev, tc)
            for q in range(4):
                k_ref[at_t(gate_cols(q))] = ks[q].astype(k_ref.dtype)
            pf_ref[at_t(own)] = pf_h.astype(pf_ref.dtype)
            pf_ref[at_t(pl.ds(hidden + col0, bh))] = pf_c.astype(pf_ref.dtype)

    return kernel


def lstm_step_pallas(
    gx: Array,
    h: Array,
    c: Array,
    w_hh: Array,
    *,
    save: bool = False,
    config: PallasLSTMStep | None = None,
) -> tuple[Array, ...]:
    """One LSTM step as one kernel.

    Args:
      gx: ``[batch, 4*hidden]`` input part of the gates (``x_t @ w_ih + b``), gate order i, f, g, o.
      h: ``[batch, hidden]`` previous output, in the compute dtype (that of ``w_hh``).
      c: ``[batch, hidden]`` previous cell state (float32 or wider); the gate and cell math run in
        ``c``'s dtype, at least float32.
      w_hh: ``[hidden, 4*hidden]``.
      save: also return the backward products ``k`` ``[batch, 4*hidden]`` and ``pf``
        ``[batch, 2*hidden]`` in ``h``'s dtype (see ``jaxseq.ops.rnn.lstm_backward_coefficients``).
      config: tiling and backend; None is ``PallasLSTMStep()``.

    Returns:
      ``(h_new [batch, hidden] in h's dtype, c_new [batch, hidden] in c's dtype)``, then ``k, pf``
      with ``save``. ``batch`` must be a positive multiple of ``config.block_batch`` (``lstm_scan`` pads).
    """
    config = config or PallasLSTMStep()
    batch, hidden = h.shape
    bb, bh, bk = _checked_tiling("lstm_step_pallas", config, gx, h, c, w_hh, lead=())
    out_shape = [jax.ShapeDtypeStruct((batch, hidden), h.dtype), jax.ShapeDtypeStruct((batch, hidden), c.dtype)]
    if save:
        out_shape += [jax.ShapeDtypeStruct((batch, 4 * hidden), h.dtype),
                      jax.ShapeDtypeStruct((batch, 2 * hidden), h.dtype)]
    call = _grid_call(_step_kernel(hidden, bb, bh, bk, save, jnp.promote_types(c.dtype, jnp.float32)),
                      tuple(out_shape), config, batch, hidden, "lstm_step")
    return tuple(call(gx, h, c, w_hh))


def _checked_tiling(kind: str, config: PallasLSTMStep, gx, h, c, w_hh, *, lead: tuple[int, ...]):
    """(block_batch, block_hidden, block_k) once the operands' shapes fit (ValueError naming the one
    that does not); `lead` is gx's leading axes before [batch, 4*hidden]."""
    batch, hidden = h.shape
    config.check(kind, hidden)
    want = {"gx": (*lead, batch, 4 * hidden), "c": (batch, hidden), "w_hh": (hidden, 4 * hidden)}
    for name, a in (("gx", gx), ("c", c), ("w_hh", w_hh)):
        if tuple(a.shape) != want[name]:
            raise ValueError(f"{kind}: `{name}` must have shape {want[name]}, got {tuple(a.shape)}")
    if batch == 0 or batch % config.block_batch:
        raise ValueError(
            f"{kind}: batch ({batch}) must be a positive multiple of block_batch ({config.block_batch}); "
            "lstm_scan pads it"
        )
    return config.block_batch, config.block_hidden, config.k_block(hidden)


def _grid_call(kernel, out_shape, config: PallasLSTMStep, batch: int, hidden: int, name: str, *,
               aliases: dict[int, int] | None = None):
    """The kernel over the [batch / block_batch, hidden / block_hidden] grid, on this backend."""
    from jax.experimental import pallas as pl

    interpret = _use_interpret(config)
    params = None
    if not interpret:
        from jax.experimental.pallas import triton as pltriton

        kw = {k: v for k, v in (("num_warps", config.num_warps), ("num_stages", config.num_stages)) if v is not None}
        params = pltriton.CompilerParams(**kw)
    return pl.pallas_call(
        kernel, out_shape=out_shape, grid=(batch // config.block_batch, hidden // config.block_hidden),
        input_output_aliases=aliases or {}, interpret=interpret, compiler_params=params, name=name,
    )


def lstm_sequence_pallas(
    gx: Array,
    h0: Array,
    c0: Array,
    w_hh: Array,
    *,
    lengths: Array | None = None,
    save: bool = False,
    unroll: int | bool = 1,
    config: PallasLSTMStep | None = None,
) -> tuple[Array, tuple[Array, Array], tuple[Array, Array] | None]:
    """The LSTM recurrence over a hoisted input projection, one kernel launch per time step.

    Each step's kernel reads ``gx[t]``, applies the ``lengths`` mask and writes ``out[t]`` (and the
    saved products ``k[t]``, ``pf[t]``) into ``[time, ...]`` buffers that it takes and returns
    aliased, so the loop body is the kernel alone: no slice of ``gx`` and no update of the outputs
    around it.

    Args:
      gx: ``[time, batch, 4*hidden]`` input projection plus bias, time-major, compute dtype.
      h0: ``[batch, hidden]`` compute dtype; c0: ``[batch, hidden]`` float32 or wider.
      w_hh: ``[hidden, 4*hidden]``.
      lengths: ``[batch]`` int32 in ``[0, time]`` or None (every sequence full). Past a
        sequence's end its output is zero and its state is held, as in ``lax.scan`` with a mask.
      save: also return the backward products ``(k [time, batch, 4H], pf [time, batch, 2H])``.
      unroll: the ``fori_loop`` unroll factor.
      config: tiling and backend (``batch`` a positive multiple of ``block_batch``).

    Returns:
      ``(out [time, batch, hidden], (h_T, c_T), (k, pf) or None)``.
    """
    config = config or PallasLSTMStep()
    time = gx.shape[0] if gx.ndim == 3 else -1
    batch, hidden = h0.shape
    bb, bh, bk = _checked_tiling("lstm_sequence_pallas", config, gx, h0, c0, w_hh, lead=(time,))
    cdt = h0.dtype
    buf_shapes = [jax.ShapeDtypeStruct((time, batch, hidden), cdt)]
    if save:
        buf_shapes += [jax.ShapeDtypeStruct((time, batch, 4 * hidden), cdt),
                       jax.ShapeDtypeStruct((time, batch, 2 * hidden), cdt)]
    state_shapes = [jax.ShapeDtypeStruct(h0.shape, cdt), jax.ShapeDtypeStruct(c0.shape, c0.dtype)]
    masked = lengths is not None
    first_buf = 1 + masked + 4  # t, [lengths], gx, h, c, w_hh, then the buffers
    call = _grid_call(
        _step_kernel(hidden, bb, bh, bk, save, jnp.promote_types(c0.dtype, jnp.float32), in_place=True,
                     masked=masked),
        tuple(state_shapes + buf_shapes), config, batch, hidden, "lstm_sequence_step",
        aliases={first_buf + j: 2 + j for j in range(len(buf_shapes))},
    )
    lead = (lengths.astype(jnp.int32),) if masked else ()

    def body(t, carry):
        h, c, bufs = carry
        h, c, *bufs = call(jnp.reshape(t, (1,)).astype(jnp.int32), *lead, gx, h, c, w_hh, *bufs)
        return h, c, tuple(bufs)

    bufs0 = tuple(jnp.zeros(b.shape, b.dtype) for b in buf_shapes)
    hT, cT, bufs = jax.lax.fori_loop(0, time, body, (h0, c0, bufs0), unroll=unroll)
    return bufs[0], (hT, cT), (bufs[1], bufs[2]) if save else None


def _backward_kernel(hidden: int, bb: int, bh: int, bk: int, acc: Any, cdt: Any, *, masked: bool):
    """One backward time step. Refs: t, [lengths], dy [T, B, H], k [T, B, 4H], pf [T, B, 2H], dh, dc
    [B, H] (acc), w_hh, dz buffer [T, B, 4H] (aliased: in, then out), then the outputs dh_{t-1}, dc_{t-1}
    and the dz buffer.

    Program (bi, j) owns hidden units j*bh... of dh_{t-1} = dz_t @ w_hh^T, which needs dz_t's whole
    row: it rebuilds dz_t chunk by chunk from k, pf, dh and dc (multiply-adds, the same as
    ``jaxseq.ops.rnn.lstm_coefficient_vjp``), and writes only its own units' four gate columns of dz_t.
    """

    def kernel(*refs):
        from jax.experimental import pallas as pl

        refs = list(refs)
        t = refs.pop(0)[0]
        len_ref = refs.pop(0) if masked else None
        dy_ref, k_ref, pf_ref, dh_ref, dc_ref, w_ref, _dz_in, dh_out, dc_out, dz_ref = refs
        rows = pl.ds(pl.program_id(0) * bb, bb)
        col0 = pl.program_id(1) * bh
        m = (t < len_ref[rows])[:, None] if masked else None

        def cell_grads(cols):
            """(dh_total, dc_t) on `cols` of the hidden units: the cotangents entering the cell."""
            dh_tot = dh_ref[rows, cols] + dy_ref[t, rows, cols].astype(acc)
            dc_in = dc_ref[rows, cols]
            if masked:
                dh_tot = jnp.where(m, dh_tot, 0.0)
                dc_in = jnp.where(m, dc_in, 0.0)
            return dh_tot, dc_in + dh_tot * pf_ref[t, rows, cols].astype(acc)

        def dz_gate(q: int, dh_tot, dct, start, size):
            d = dh_tot if q == 3 else dct
            return (d * k_ref[t, rows, pl.ds(q * hidden + start, size)].astype(acc)).astype(cdt)

        total = jnp.zeros((bb, bh), acc)
        for kk in range(hidden // bk):
            dh_tot, dct = cell_grads(pl.ds(kk * bk, bk))
            for q in range(4):
                w = w_ref[pl.ds(col0, bh), pl.ds(q * hidden + kk * bk, bk)]  # [bh, bk]: w_hh^T's block
                total = total + jax.lax.dot_general(
                    dz_gate(q, dh_tot, dct, kk * bk, bk), w, (((1,), (1,)), ((), ())),
                    preferred_element_type=acc)
        own = pl.ds(col0, bh)
        dh_tot, dct = cell_grads(own)
        for q in range(4):
            dz_ref[t, rows, pl.ds(q * hidden + col0, bh)] = dz_gate(q, dh_tot, dct, col0, bh)
        dc_prev = dct * pf_ref[t, rows, pl.ds(hidden + col0, bh)].astype(acc)
        dh_prev = total
        if masked:  # past a sequence's end the cotangents pass through untouched
            dh_prev = jnp.where(m, dh_prev, dh_ref[rows, own])
            dc_prev = jnp.where(m, dc_prev, dc_ref[rows, own])
        dh_out[rows, own] = dh_prev.astype(dh_out.dtype)
        dc_out[rows, own] = dc_prev.astype(dc_out.dtype)

    return kernel


def lstm_sequence_backward_pallas(
    dy: Array,
    k: Array,
    pf: Array,
    dh_T: Array,
    dc_T: Array,
    w_hh: Array,
    *,
    lengths: Array | None = None,
    unroll: int | bool = 1,
    config: PallasLSTMStep | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """The backward recurrence of :func:`lstm_sequence_pallas`, one kernel launch per time step.

    Args:
      dy: ``[time, batch, hidden]`` cotangent of the outputs (compute dtype).
      k, pf: the saved products ``[time, batch, 4H]`` and ``[time, batch, 2H]`` (compute dtype).
      dh_T, dc_T: ``[batch, hidden]`` cotangents of the final state, in the accumulation dtype.
      w_hh: ``[hidden, 4*hidden]`` (compute dtype).
      lengths, unroll, config: as for :func:`lstm_sequence_pallas`.

    Returns:
      ``(dz [time, batch, 4H] in w_hh's dtype, (dh_0, dc_0))``: the gate pre-activations' cotangents,
      from which the weight, bias and input gradients are one large matmul each, and the initial
      state's cotangents. Equal to ``jaxseq.ops.rnn``'s XLA backward scan up to rounding (its
      ``dz @ w_hh^T`` rounds to the compute dtype; this kernel accumulates in float32).
    """
    config = config or PallasLSTMStep()
    time = k.shape[0] if k.ndim == 3 else -1
    batch, hidden = dh_T.shape
    bb, bh, bk = _checked_tiling("lstm_sequence_backward_pallas", config, k, dh_T, dc_T, w_hh, lead=(time,))
    for name, a, width in (("dy", dy, hidden), ("pf", pf, 2 * hidden)):
        if tuple(a.shape) != (time, batch, width):
            raise ValueError(
                f"lstm_sequence_backward_pallas: `{name}` must have shape {(time, batch, width)}, got {tuple(a.shape)}"
            )
    acc, cdt = jnp.promote_types(dc_T.dtype, jnp.float32), w_hh.dtype
    masked = lengths is not None
    dz_shape = jax.ShapeDtypeStruct((time, batch, 4 * hidden), cdt)
    call = _grid_call(
        _backward_kernel(hidden, bb, bh, bk, acc, cdt, masked=masked),
        (jax.ShapeDtypeStruct((batch, hidden), acc), jax.ShapeDtypeStruct((batch, hidden), acc), dz_shape),
        config, batch, hidden, "lstm_sequence_backward_step",
        aliases={1 + masked + 6: 2},  # t, [lengths], dy, k, pf, dh, dc, w_hh, then dz
    )
    lead = (lengths.astype(jnp.int32),) if masked else ()

    def body(i, carry):
        dh, dc, dz = carry
        t = time - 1 - i
        return call(jnp.reshape(t, (1,)).astype(jnp.int32), *lead, dy, k, pf, dh, dc, w_hh, dz)

    init = (dh_T.astype(acc), dc_T.astype(acc), jnp.zeros(dz_shape.shape, cdt))
    dh0, dc0, dz = jax.lax.fori_loop(0, time, body, init, unroll=unroll)
    return dz, (dh0, dc0)
