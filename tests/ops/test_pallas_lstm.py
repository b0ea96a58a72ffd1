"""Tests for jaxseq.ops.pallas_lstm: the one-kernel LSTM step (interpret mode on the CPU), the scan
and the NNX layer with ``step_kernel="pallas"``, and the kernel's Triton lowering for CUDA (exported
on the CPU host: it checks what Triton accepts, not GPU speed)."""

from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from flax import nnx
from jax.test_util import check_grads

from jaxseq.nn import GRU, LSTM
from jaxseq.ops import rnn
from jaxseq.ops.pallas_lstm import (
    PallasLSTMStep,
    lstm_sequence_backward_pallas,
    lstm_sequence_pallas,
    lstm_step_pallas,
    resolve_step_kernel,
)
from jaxseq.ops.rnn import init_lstm_params, lstm_reference, lstm_scan

TILINGS = [PallasLSTMStep(), PallasLSTMStep(block_hidden=32, block_k=16), PallasLSTMStep(block_k=32)]
# The scan's two forms: one launch per step over [time, ...] buffers (default), and the step kernel
# inside lax.scan.
FORMS = {"in_place": "pallas", "step": PallasLSTMStep(in_place=False)}


def _step_inputs(b, h, dtype, seed=0):
    ks = jax.random.split(jax.random.key(seed), 4)
    acc = jnp.promote_types(dtype, jnp.float32)
    gx = jax.random.normal(ks[0], (b, 4 * h)).astype(dtype)
    hh = jax.random.normal(ks[1], (b, h)).astype(dtype)
    c = jax.random.normal(ks[2], (b, h)).astype(acc)
    w = (0.3 * jax.random.normal(ks[3], (h, 4 * h))).astype(dtype)
    return gx, hh, c, w


def _xla_step(gx, h, c, w, save):
    """The scan's XLA step: the same pointwise code and saved products as lstm_scan."""
    hidden = h.shape[1]
    z = (gx + h @ w).astype(c.dtype)
    gates, c_new, h_new = rnn.lstm_pointwise(z, c, hidden)
    out = (h_new.astype(h.dtype), c_new)
    if save:
        out += rnn.lstm_backward_coefficients(gates, c, c_new, h.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# the kernel


@pytest.mark.parametrize("save", [False, True])
@pytest.mark.parametrize("config", TILINGS, ids=["default", "bh32-bk16", "bk32"])
def test_step_equals_xla_step(config, save):
    args = _step_inputs(32, 64, jnp.float32)
    got = lstm_step_pallas(*args, save=save, config=config)
    want = _xla_step(*args, save)
    assert len(got) == (4 if save else 2)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-6, atol=2e-6)


def test_step_float64_is_exact():
    with jax.enable_x64(True):
        args = _step_inputs(16, 32, jnp.float64)
        for g, w in zip(lstm_step_pallas(*args, save=True), _xla_step(*args, True)):
            assert g.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-13)


def test_step_bfloat16_keeps_a_float32_cell():
    args = _step_inputs(16, 32, jnp.bfloat16)
    got = lstm_step_pallas(*args, save=True)
    want = _xla_step(*args, True)
    assert [g.dtype for g in got] == [jnp.bfloat16, jnp.float32, jnp.bfloat16, jnp.bfloat16]
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), rtol=2e-2, atol=2e-2)


def test_step_bad_input():
    gx, h, c, w = _step_inputs(16, 32, jnp.float32)
    with pytest.raises(ValueError, match="batch \\(8\\) must be a positive multiple of block_batch"):
        lstm_step_pallas(gx[:8], h[:8], c[:8], w)
    with pytest.raises(ValueError, match="batch \\(0\\) must be a positive multiple"):
        lstm_step_pallas(gx[:0], h[:0], c[:0], w)
    with pytest.raises(ValueError, match="`w_hh` must have shape \\(32, 128\\)"):
        lstm_step_pallas(gx, h, c, w[:, :64])
    with pytest.raises(ValueError, match="`gx` must have shape"):
        lstm_step_pallas(gx[:, :64], h, c, w)
    with pytest.raises(ValueError, match="`c` must have shape"):
        lstm_step_pallas(gx, h, c[:, :16], w)
    with pytest.raises(ValueError, match="lstm_sequence_pallas: `gx` must have shape \\(4, 16, 128\\)"):
        lstm_sequence_pallas(jnp.stack([gx] * 4)[..., :64], h, c, w)
    with pytest.raises(ValueError, match="multiple of block_hidden"):
        lstm_step_pallas(gx, h, c, w, config=PallasLSTMStep(block_hidden=64))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(block_batch=24), "block_batch"),
        (dict(block_hidden=8), "block_hidden"),
        (dict(block_k=48), "block_k"),
        (dict(block_batch=True), "block_batch"),
        (dict(num_warps=0), "num_warps"),
        (dict(interpret="yes"), "interpret"),
        (dict(in_place=1), "in_place"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PallasLSTMStep(**kw)


def test_config_k_block_and_resolve():
    assert PallasLSTMStep().k_block(768) == 128
    assert PallasLSTMStep().k_block(48) == 16
    assert PallasLSTMStep(block_k=32).k_block(768) == 32
    assert resolve_step_kernel("f", "xla") is None
    assert resolve_step_kernel("f", "pallas") == PallasLSTMStep()
    cfg = PallasLSTMStep(block_hidden=32)
    assert resolve_step_kernel("f", cfg) is cfg
    with pytest.raises(ValueError, match="f: `step_kernel` must be"):
        resolve_step_kernel("f", "triton")
    hash(cfg)  # a static argument under jit


# ---------------------------------------------------------------------------------------------
# lstm_scan(step_kernel="pallas")

B, T, I, H = 5, 6, 7, 32  # batch 5 is padded to the kernel's 16 rows inside
LENS = np.array([6, 2, 0, 5, 3], np.int32)

SCAN_OPTIONS = [
    dict(),
    dict(lengths=LENS),
    dict(lengths=LENS, reverse=True),
    dict(reverse=True),
    dict(dilation=2),
    dict(dilation=3, lengths=LENS),
    dict(hoist_input=True),
    dict(hoist_input=False, unroll=2),
    dict(initial_state=True),
]


def _scan_inputs(dtype=jnp.float32):
    params = init_lstm_params(jax.random.key(0), I, H, dtype=dtype)
    x = jax.random.normal(jax.random.key(1), (B, T, I)).astype(dtype)
    k1, k2 = jax.random.split(jax.random.key(2))
    state = (0.5 * jax.random.normal(k1, (B, H)).astype(dtype), 0.5 * jax.random.normal(k2, (B, H)).astype(dtype))
    return params, x, state


def _kw(opts, state):
    kw = dict(opts)
    if kw.pop("initial_state", False):
        kw["initial_state"] = state
    return kw


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("opts", SCAN_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_scan_equals_float64_reference(opts, form):
    params, x, state = _scan_inputs()
    kw = _kw(opts, state)
    out, (h, c) = lstm_scan(params, x, step_kernel=FORMS[form], **kw)
    ref_kw = {k: v for k, v in kw.items() if k not in ("hoist_input", "unroll")}
    r_out, (r_h, r_c) = lstm_reference(params, x, **ref_kw)
    assert out.shape == (B, T, H) and h.shape == c.shape == (B, H)
    for g, w in ((out, r_out), (h, r_h), (c, r_c)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("opts", SCAN_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_scan_gradients_equal_xla_step(opts, form):
    params, x, state = _scan_inputs()
    kw = _kw(opts, state)

    def loss(p, xx, st, kernel):
        kw2 = dict(kw)
        if "initial_state" in kw2:
            kw2["initial_state"] = st
        out, (h, c) = lstm_scan(p, xx, step_kernel=kernel, **kw2)
        return jnp.sum(out * out) + jnp.sum(jnp.sin(h)) + jnp.sum(c * c)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    got = grad(params, x, state, FORMS[form])
    want = grad(params, x, state, "xla")
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("form", FORMS)
def test_scan_check_grads_float64(form):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), init_lstm_params(jax.random.key(0), 3, 16))
        x = jax.random.normal(jax.random.key(1), (2, 4, 3), jnp.float64)

        def f(p, xx):
            out, (h, c) = lstm_scan(p, xx, lengths=np.array([4, 2]), step_kernel=FORMS[form])
            return jnp.sum(out) + jnp.sum(h * c)

        check_grads(f, (params, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_scan_bfloat16_close_to_float32():
    params, x, _ = _scan_inputs()
    out32, _ = lstm_scan(params, x, step_kernel="pallas")
    p16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    out16, (h16, c16) = lstm_scan(p16, x.astype(jnp.bfloat16), step_kernel="pallas")
    assert out16.dtype == h16.dtype == c16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out16, np.float32), np.asarray(out32), atol=3e-2)


@pytest.mark.parametrize("form", FORMS)
def test_scan_bfloat16_gradients_close_to_xla(form):
    """bfloat16: the kernels accumulate dh_{t-1} in float32 where XLA rounds it, so close, not equal."""
    params, x, _ = _scan_inputs(jnp.bfloat16)

    def loss(p, xx, kernel):
        out, (h, c) = lstm_scan(p, xx, lengths=LENS, step_kernel=kernel)
        return jnp.sum(out.astype(jnp.float32) ** 2) + jnp.sum(c.astype(jnp.float32))

    got = jax.grad(loss, argnums=(0, 1))(params, x, FORMS[form])
    want = jax.grad(loss, argnums=(0, 1))(params, x, "xla")
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == jnp.bfloat16
        g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
        assert np.abs(g - w).max() <= 2e-2 * np.abs(w).max()


def test_scan_under_jit_and_vmap():
    params, x, _ = _scan_inputs()
    want, _ = lstm_scan(params, x, step_kernel="xla")
    got, _ = jax.jit(lambda p, xx: lstm_scan(p, xx, step_kernel="pallas"))(params, x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    xs = jnp.stack([x, 2 * x])
    got_v, _ = jax.vmap(lambda xx: lstm_scan(params, xx, step_kernel="pallas"))(xs)
    np.testing.assert_allclose(np.asarray(got_v[0]), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_sequence_backward_equals_xla_backward_scan(masked):
    """The backward kernel against rnn's XLA backward scan on the same saved products, float64."""
    with jax.enable_x64(True):
        t, b, h = 5, 16, 32
        ks = jax.random.split(jax.random.key(3), 6)
        k = jax.random.normal(ks[0], (t, b, 4 * h), jnp.float64)
        pf = jax.random.normal(ks[1], (t, b, 2 * h), jnp.float64)
        dy = jax.random.normal(ks[2], (t, b, h), jnp.float64)
        dh_T, dc_T = (jax.random.normal(kk, (b, h), jnp.float64) for kk in ks[3:5])
        w = 0.3 * jax.random.normal(ks[5], (h, 4 * h), jnp.float64)
        lengths = jnp.asarray(np.arange(b) % (t + 1), jnp.int32) if masked else None
        mask = None if lengths is None else (jnp.arange(t)[:, None] < lengths[None, :])[:, :, None]
        want_dz, (want_dh, want_dc), want_db = rnn._lstm_backward_scan(w, k, pf, mask, dy, dh_T, dc_T, 1)
        dz, (dh0, dc0) = lstm_sequence_backward_pallas(dy, k, pf, dh_T, dc_T, w, lengths=lengths)
        # the XLA scan sums the bias gradient in its carry; it must equal the sum of its own dz
        np.testing.assert_allclose(np.asarray(want_db), np.asarray(want_dz).sum(axis=(0, 1)), rtol=1e-12,
                                   atol=1e-12)
        for g, w_ in ((dz, want_dz), (dh0, want_dh), (dc0, want_dc)):
            assert g.shape == w_.shape and g.dtype == w_.dtype
            np.testing.assert_allclose(np.asarray(g), np.asarray(w_), rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match="`pf` must have shape"):
            lstm_sequence_backward_pallas(dy, k, pf[..., :h], dh_T, dc_T, w)


@pytest.mark.parametrize("shape", [(3, 0, I), (0, 4, I)], ids=["no-time", "no-batch"])
def test_scan_empty_inputs(shape):
    params, _, _ = _scan_inputs()
    x = jnp.zeros(shape)
    for form in FORMS.values():
        out, (h, c) = lstm_scan(params, x, step_kernel=form)
        assert out.shape == (shape[0], shape[1], H) and h.shape == c.shape == (shape[0], H)
        grads = jax.grad(lambda p: jnp.sum(lstm_scan(p, x, step_kernel=form)[1][1]))(params)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(step_kernel="cuda"), "`step_kernel` must be 'xla', 'pallas' or a PallasLSTMStep"),
        (dict(step_kernel="pallas", backward="autodiff"), "needs the custom backward"),
        (dict(step_kernel="pallas", return_cells=True), "needs the custom backward"),
        (dict(step_kernel=PallasLSTMStep(block_hidden=64)), "multiple of block_hidden \\(64\\)"),
    ],
)
def test_scan_bad_step_kernel(kw, match):
    params, x, _ = _scan_inputs()
    with pytest.raises(ValueError, match=match):
        lstm_scan(params, x, **kw)


# ---------------------------------------------------------------------------------------------
# jaxseq.nn.LSTM(step_kernel="pallas")


@pytest.mark.parametrize(
    "kw", [dict(num_layers=2, residual=True), dict(num_layers=2, bidirectional=True), dict(dilations=[2])],
    ids=["residual-stack", "bidirectional", "dilated"],
)
def test_layer_equals_xla_layer(kw):
    x = jax.random.normal(jax.random.key(1), (3, 6, 8))
    lengths = jnp.array([6, 2, 4])

    def loss(m):
        out, (h, c) = m(x, lengths=lengths)
        return jnp.sum(out * out) + jnp.sum(h) + jnp.sum(c)

    a = LSTM(8, 32, rngs=nnx.Rngs(0), schedule="layers", **kw)
    b = LSTM(8, 32, rngs=nnx.Rngs(0), step_kernel="pallas", **kw)
    la, ga = nnx.value_and_grad(loss)(a)
    lb, gb = nnx.value_and_grad(loss)(b)
    np.testing.assert_allclose(float(lb), float(la), rtol=1e-5)
    for g, w in zip(jax.tree.leaves(gb), jax.tree.leaves(ga)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    "cls, kw, match",
    [
        (LSTM, dict(schedule="wavefront"), "schedule must be 'auto' or 'layers'"),
        (LSTM, dict(schedule="fused"), "schedule must be 'auto' or 'layers'"),
        (LSTM, dict(backward="autodiff"), "needs backward='auto' or 'custom'"),
        (GRU, dict(), "GRU: step_kernel must be 'xla'"),
    ],
)
def test_layer_bad_step_kernel(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(8, 32, rngs=nnx.Rngs(0), step_kernel="pallas", **kw)
    with pytest.raises(ValueError, match="multiple of block_hidden"):
        LSTM(8, 24, rngs=nnx.Rngs(0), step_kernel="pallas")


# ---------------------------------------------------------------------------------------------
# the Triton lowering, checked without a GPU


def _export_for_cuda(fn, *args):
    from jax import export

    pytest.importorskip("jax.experimental.pallas.triton")
    return export.export(
        jax.jit(fn), platforms=["cuda"],
        disabled_checks=[export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")],
    )(*args).mlir_module()


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("save", [False, True])
def test_step_lowers_to_triton(dtype, save):
    """What the H200 preset runs (B=16, H=768): the kernel passes Pallas' Triton lowering."""
    b, h = 16, 768
    cfg = PallasLSTMStep(interpret=False)
    S = jax.ShapeDtypeStruct
    text = _export_for_cuda(
        lambda gx, hh, c, w: lstm_step_pallas(gx, hh, c, w, save=save, config=cfg),
        S((b, 4 * h), dtype), S((b, h), dtype), S((b, h), jnp.float32), S((h, 4 * h), dtype),
    )
    assert text.count("__gpu$xla.gpu.triton") == 1
    assert "grid_x = 1" in text and f"grid_y = {h // 16}" in text


@pytest.mark.parametrize("in_place", [True, False])
def test_training_step_lowers_to_triton(in_place):
    """The whole scan, forward and custom backward, with the Triton step inside the while loop
    (with lengths, so the in-place form's mask is lowered too)."""
    params = init_lstm_params(jax.random.key(0), 64, 64, dtype=jnp.float16)
    cfg = PallasLSTMStep(interpret=False, in_place=in_place)

    def loss(p, x, lengths):
        out = lstm_scan(p, x, step_kernel=cfg, hoist_input=True, lengths=lengths)[0]
        return jnp.sum(out.astype(jnp.float32))

    S = jax.ShapeDtypeStruct
    text = _export_for_cuda(
        jax.grad(loss), jax.tree.map(lambda a: S(a.shape, a.dtype), params), S((16, 8, 64), jnp.float16),
        S((16,), jnp.int32),
    )
    # the in-place form's backward step is a kernel too; the step form keeps XLA's backward scan
    assert text.count("__gpu$xla.gpu.triton") == (2 if in_place else 1)
    assert text.count("stablehlo.while") == 2
    if in_place:  # the [time, ...] buffers are updated in place: outputs alias operands
        assert "output_operand_alias" in text


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_in_place_loop_body_is_the_kernel(mode):
    """In the in-place form the loop bodies (forward, and backward in training) hold no slice or
    update around the kernel."""
    params = init_lstm_params(jax.random.key(0), 64, 64, dtype=jnp.float16)
    S = jax.ShapeDtypeStruct

    def body_of(cfg):
        def fwd(p, x):
            return lstm_scan(p, x, step_kernel=cfg, hoist_input=True)[0]

        fn = fwd if mode == "forward" else jax.grad(lambda p, x: jnp.sum(fwd(p, x).astype(jnp.float32)))
        return _export_for_cuda(fn, jax.tree.map(lambda a: S(a.shape, a.dtype), params), S((16, 8, 64), jnp.float16))

    in_place = body_of(PallasLSTMStep(interpret=False))
    step = body_of(PallasLSTMStep(interpret=False, in_place=False))
    assert "dynamic_update_slice" not in in_place and "dynamic_slice" not in in_place
    assert "dynamic_update_slice" in step and "dynamic_slice" in step


def test_triton_rejects_a_non_power_of_two_tile():
    """Why the config insists on powers of two: Triton refuses other tile sizes when lowering."""
    from jax.experimental import pallas as pl

    pltriton = pytest.importorskip("jax.experimental.pallas.triton")

    def kernel(x_ref, o_ref):
        o_ref[pl.ds(0, 16), pl.ds(0, 24)] = x_ref[pl.ds(0, 16), pl.ds(0, 24)] * 2

    def f(x):
        return pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), grid=(1,),
                              compiler_params=pltriton.CompilerParams())(x)

    with pytest.raises(ValueError, match="power of 2"):
        _export_for_cuda(f, jax.ShapeDtypeStruct((16, 24), jnp.float32))
