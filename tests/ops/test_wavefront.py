"""Tests for jaxseq.ops.wavefront: wavefront == layer-by-layer == float64 loop, gradients, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from jaxseq.ops.rnn import init_lstm_params, lstm_reference
from jaxseq.ops.wavefront import lstm_stack_scan

B, T, H = 3, 6, 4
LENS = np.array([6, 2, 0], np.int32)


def _params(n_layers, in_size, dtype=jnp.float32, h=H):
    return [init_lstm_params(jax.random.PRNGKey(10 + l), in_size if l == 0 else h, h, dtype=dtype)
            for l in range(n_layers)]


def _x(in_size, dtype=jnp.float32, b=B, t=T):
    return jax.random.normal(jax.random.PRNGKey(1), (b, t, in_size), dtype)


def _state(n_layers, b=B, h=H, dtype=jnp.float32):
    k1, k2 = jax.random.split(jax.random.PRNGKey(2))
    return (0.5 * jax.random.normal(k1, (n_layers, b, h), dtype),
            0.5 * jax.random.normal(k2, (n_layers, b, h), dtype))


def _masks(n_layers, b=B, t=T, h=H, dtype=jnp.float32):
    keep = jax.random.bernoulli(jax.random.PRNGKey(3), 0.7, (n_layers - 1, b, t, h))
    return keep.astype(dtype) / 0.7


def _stack_reference(params, x, *, initial_state=None, lengths=None, residual_from=None,
                     dropout_masks=None, dilations=None):
    """The stack composed from the float64 NumPy loop `lstm_reference`, one layer at a time."""
    n = len(params)
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    k = n if residual_from is None else residual_from
    valid = np.ones((batch, time, 1)) if lengths is None else \
        (np.arange(time)[None, :] < np.asarray(lengths)[:, None])[..., None]
    inp, hs, cs = x, [], []
    for l, p in enumerate(params):
        st = None if initial_state is None else tuple(np.asarray(s[l], np.float64) for s in initial_state)
        out, (h, c) = lstm_reference(p, inp, initial_state=st, lengths=lengths,
                                     dilation=1 if dilations is None else dilations[l])
        if l >= k:
            out = (out + inp) * valid
        if dropout_masks is not None and l < n - 1:
            out = out * np.asarray(dropout_masks[l], np.float64)
        inp = out
        hs.append(h)
        cs.append(c)
    return inp, (np.stack(hs), np.stack(cs))


def _close(a, b, tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64),
                                   rtol=tol, atol=tol)


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _jit(f):
    return jax.jit(f, compiler_options=FAST_COMPILE)


def _grads(losses, *args):
    """Gradients (wrt every argument) of each loss, all in one compiled program."""
    n = len(args)
    return _jit(lambda *a: [jax.grad(f, argnums=tuple(range(n)))(*a) for f in losses])(*args)


# (layers, input size, options): every option appears with L = 1, 2 and 3 and with input != hidden.
CASES = [
    (1, 5, dict()),
    (1, H, dict(lengths=LENS, residual_from=0, state=True)),
    (1, 5, dict(lengths=LENS, dilations=True)),
    (2, 5, dict()),
    (2, H, dict(lengths=LENS, state=True, masks=True)),
    (2, 5, dict(residual_from=1, masks=True, dilations=True)),
    (3, 5, dict(lengths=LENS)),
    (3, 5, dict(lengths=LENS, residual_from=1, masks=True, state=True)),
    (3, H, dict(lengths=LENS, residual_from=0, masks=True, state=True, dilations=True)),
    (3, H, dict(residual_from=2, dilations=True)),
]


def _kwargs(opts, n_layers):
    kw = {k: v for k, v in opts.items() if k not in ("state", "masks", "dilations")}
    if opts.get("state"):
        kw["initial_state"] = _state(n_layers)
    if opts.get("masks"):
        kw["dropout_masks"] = _masks(n_layers)
    if opts.get("dilations"):
        kw["dilations"] = [3, 1, 2][:n_layers]
    return kw


@pytest.mark.parametrize("n_layers, in_size, opts", CASES,
                         ids=lambda v: (",".join(v) or "plain") if isinstance(v, dict) else str(v))
def test_schedules_match_float64_reference(n_layers, in_size, opts):
    params, x = _params(n_layers, in_size), _x(in_size)
    kw = _kwargs(opts, n_layers)
    ref = _stack_reference(params, x, **kw)
    variants = (("layers", "auto"), ("wavefront", "custom"), ("wavefront", "autodiff"))
    # The three in one compiled program (compile time is this test's cost).
    results = _jit(lambda p, xx: [lstm_stack_scan(p, xx, schedule=schedule, backward=backward, **kw)
                                  for schedule, backward in variants])(params, x)
    assert len(results) == len(variants)
    for out, (h, c) in results:
        assert out.shape == (B, T, H) and h.shape == c.shape == (n_layers, B, H)
        assert out.dtype == h.dtype == c.dtype == jnp.float32
        _close((out, (h, c)), ref, 2e-5)
        if "lengths" in kw:  # past a sequence's end every output is zero
            assert np.all(np.asarray(out)[2] == 0) and np.all(np.asarray(out)[1, 2:] == 0)


def test_unroll_and_numpy_inputs():
    params, x = _params(2, 5), _x(5)
    ref = lstm_stack_scan(params, x, lengths=LENS, schedule="layers")
    np_params = [tuple(np.asarray(a) for a in p) for p in params]
    got = lstm_stack_scan(np_params, np.asarray(x), lengths=LENS, unroll=3)
    _close(got, ref, 1e-5)


def test_bfloat16_close_to_float32():
    params, x = _params(3, H), _x(H)
    out32, _ = lstm_stack_scan(params, x, lengths=LENS, residual_from=1)
    out16, (h16, c16) = lstm_stack_scan(params, x.astype(jnp.bfloat16), lengths=LENS, residual_from=1)
    assert out16.dtype == h16.dtype == c16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out16, np.float32), out32, atol=5e-2)
    g = jax.grad(lambda xx: jnp.sum(lstm_stack_scan(params, xx)[0].astype(jnp.float32)))(
        x.astype(jnp.bfloat16))
    assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


# ---------------------------------------------------------------------------------------------
# gradients


def _loss(schedule, backward, **kw):
    def f(params, x, state, masks=None):
        extra = {} if masks is None else {"dropout_masks": masks}
        out, (h, c) = lstm_stack_scan(params, x, initial_state=state, schedule=schedule,
                                      backward=backward, **kw, **extra)
        return jnp.sum(jnp.sin(3.0 * out)) + jnp.sum(h * h) + jnp.sum(jnp.cos(c))
    return f


GRAD_OPTIONS = [
    dict(lengths=LENS, residual_from=0, dilations=[2, 1, 3]),
    dict(residual_from=2, dilations=[1, 3, 2], unroll=2),
]


@pytest.mark.parametrize("opts", GRAD_OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_custom_vjp_equals_autodiff_float64(opts):
    with jax.enable_x64(True):
        params, x = _params(3, H, jnp.float64), _x(H, jnp.float64)
        state, masks = _state(3, dtype=jnp.float64), _masks(3, dtype=jnp.float64)
        losses = [_loss("wavefront", "custom", **opts), _loss("wavefront", "autodiff", **opts)]
        if "lengths" in opts:  # one case is enough against the other schedule (compile time)
            losses.append(_loss("layers", "autodiff", **opts))
        g_custom, g_auto, *g_layers = _grads(losses, params, x, state, masks)
        for leaf in jax.tree.leaves(g_custom):
            assert leaf.dtype == jnp.float64
        _close(g_custom, g_auto, 1e-11)
        for g in g_layers:
            _close(g_custom, g, 1e-11)


def test_custom_vjp_input_projected_outside_float32():
    """input != hidden: layer 0's W_ih is outside the batched matmul (its own gradient path)."""
    args = (_params(2, 5), _x(5), _state(2), _masks(2))
    kw = dict(lengths=LENS, residual_from=1, dilations=[2, 1])
    g_custom, g_layers = _grads([_loss("wavefront", "custom", **kw), _loss("layers", "autodiff", **kw)],
                                *args)
    _close(g_custom, g_layers, 2e-5)


def test_check_grads_float64():
    with jax.enable_x64(True):
        params = _params(2, 3, jnp.float64, h=2)
        x = _x(3, jnp.float64, b=2, t=3)
        state = _state(2, b=2, h=2, dtype=jnp.float64)
        masks = _masks(2, b=2, t=3, h=2, dtype=jnp.float64)
        f = _loss("wavefront", "custom", lengths=np.array([3, 1], np.int32), residual_from=1,
                  dilations=[2, 1])
        check_grads(jax.jit(f), (params, x, state, masks), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_grad_of_grad_runs():
    params, x = _params(2, H), _x(H, t=3)
    f = _loss("wavefront", "custom")
    fa = _loss("wavefront", "autodiff")
    gg = lambda loss: jax.grad(lambda xx: jnp.sum(jax.grad(loss, argnums=1)(params, xx, None) ** 2))  # noqa: E731
    g, g_ref = _jit(lambda xx: (gg(f)(xx), gg(fa)(xx)))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# transformations


def test_jit_vmap_grad():
    params, x = _params(2, H), _x(H)
    lens = jnp.asarray(LENS)
    eager, _ = lstm_stack_scan(params, x, lengths=lens, residual_from=1)
    jitted = jax.jit(lambda p, xx, ln: lstm_stack_scan(p, xx, lengths=ln, residual_from=1)[0])(
        params, x, lens)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    # Traced lengths cannot be checked: they are clipped to [0, time].
    clipped = jax.jit(lambda ln: lstm_stack_scan(params, x, lengths=ln)[0])(jnp.array([9, 2, -1]))
    np.testing.assert_allclose(clipped, lstm_stack_scan(params, x, lengths=jnp.array([6, 2, 0]))[0],
                               rtol=1e-6, atol=1e-6)

    xs = jnp.stack([x, 2 * x])
    vm = jax.vmap(lambda xx: lstm_stack_scan(params, xx, lengths=lens, residual_from=1)[0])(xs)
    np.testing.assert_allclose(vm[0], eager, rtol=1e-6, atol=1e-6)

    # An ensemble: vmap over parameters through the custom VJP's gradient, under jit.
    ps = jax.tree.map(lambda a: jnp.stack([a, -a]), params)
    f = _loss("wavefront", "custom", lengths=lens)
    gs = jax.jit(jax.vmap(jax.grad(f), in_axes=(0, None, None)))(ps, x, None)
    g1 = jax.grad(f)(jax.tree.map(lambda a: -a, params), x, None)
    for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-5)


def test_forward_mode_needs_autodiff():
    params, x = _params(2, H), _x(H)
    t = jnp.ones_like(x)
    with pytest.raises(TypeError, match=r"lstm_stack_scan: forward-mode .* needs backward='autodiff'"):
        jax.jvp(lambda xx: lstm_stack_scan(params, xx)[0], (x,), (t,))
    _, tan = jax.jvp(lambda xx: lstm_stack_scan(params, xx, backward="autodiff")[0], (x,), (t,))
    _, tan_ref = jax.jvp(lambda xx: lstm_stack_scan(params, xx, schedule="layers",
                                                    backward="autodiff")[0], (x,), (t,))
    np.testing.assert_allclose(tan, tan_ref, rtol=1e-5, atol=1e-5)


def _count_loops(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    return len(re.findall(r"stablehlo\.while", text))


def test_wavefront_is_one_scan():
    params, x = _params(3, 5), _x(5)
    fwd = lambda p, xx: lstm_stack_scan(p, xx, lengths=LENS)[0]  # noqa: E731
    assert _count_loops(fwd, params, x) == 1
    # The reference schedule has a loop per layer (identical layers may share one function).
    layers = lambda p, xx: lstm_stack_scan(p, xx, schedule="layers")[0]  # noqa: E731
    assert _count_loops(layers, params, x) >= 2
    for backward in ("custom", "autodiff"):
        loss = lambda p, xx: jnp.sum(lstm_stack_scan(p, xx, backward=backward)[0])  # noqa: E731
        assert _count_loops(jax.grad(loss, argnums=(0, 1)), params, x) == 2


def test_zero_time_and_empty_batch():
    params = _params(2, H)
    out, (h, c) = lstm_stack_scan(params, jnp.zeros((2, 0, H)), initial_state=_state(2, b=2))
    assert out.shape == (2, 0, H)
    _close((h, c), _state(2, b=2), 1e-7)
    out, (h, c) = lstm_stack_scan(params, jnp.zeros((0, 3, H)))
    assert out.shape == (0, 3, H) and h.shape == (2, 0, H)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(schedule="diagonal"), ValueError, "`schedule` must be"),
        (dict(backward="fast"), ValueError, "`backward` must be"),
        (dict(unroll=0), ValueError, "`unroll` must be"),
        (dict(lengths=np.array([7, 1, 1])), ValueError, r"`lengths` values must be in \[0, time=6\]"),
        (dict(lengths=np.array([1, 1])), ValueError, r"`lengths` must have shape \[batch\]"),
        (dict(lengths=np.array([1.0, 1.0, 1.0])), TypeError, "`lengths` must be an integer"),
        (dict(residual_from=4), ValueError, r"`residual_from` must be None or an int in \[0, layers=3\]"),
        (dict(residual_from=-1), ValueError, "`residual_from` must be an int >= 0"),
        (dict(residual_from=0), ValueError, "feature size of x \\(5\\) must equal hidden"),
        (dict(dropout_masks=np.ones((3, B, T, H), np.float32)), ValueError,
         r"`dropout_masks` must have shape \[layers-1, batch, time, hidden\]"),
        (dict(dropout_masks=np.ones((2, B, T, H), np.int32)), TypeError, "floating-point"),
        (dict(dilations=[1, 2]), ValueError, "one int >= 1 per layer"),
        (dict(dilations=[1, 0, 1]), ValueError, r"`dilations\[1\]` must be an int >= 1"),
        (dict(dilations=3), ValueError, "`dilations` must be None or a sequence"),
        (dict(initial_state=np.zeros((3, B, H))), ValueError, "`initial_state` must be a pair"),
        (dict(initial_state=(np.zeros((2, B, H)), np.zeros((3, B, H)))), ValueError,
         r"`initial_state\[0\] \(h0\)` must have shape \[layers, batch, hidden\]"),
    ],
)
def test_bad_inputs_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lstm_stack_scan(_params(3, 5), _x(5), **kwargs)


def test_bad_params_raise():
    x = _x(5)
    with pytest.raises(TypeError, match="non-empty sequence of LSTMParams"):
        lstm_stack_scan([], x)
    with pytest.raises(TypeError, match="non-empty sequence of LSTMParams"):
        lstm_stack_scan(_params(1, 5)[0], x)
    p = _params(2, 5)
    bad = [p[0], p[1]._replace(w_ih=jnp.zeros((5, 4 * H)))]
    with pytest.raises(ValueError, match=r"`params\[1\]\.w_ih` must have shape \[hidden, 4\*hidden\]"):
        lstm_stack_scan(bad, x)
    bad = [p[0], init_lstm_params(jax.random.PRNGKey(0), H, H + 1)]
    with pytest.raises(ValueError, match=r"`params\[1\]\.w_ih`"):
        lstm_stack_scan(bad, x)
    with pytest.raises(ValueError, match=r"`params\[0\]\.w_ih` must have shape \[input"):
        lstm_stack_scan(p, _x(3))
    with pytest.raises(ValueError, match="rank 3"):
        lstm_stack_scan(p, jnp.zeros((B, T)))
    with pytest.raises(TypeError, match="floating-point"):
        lstm_stack_scan(p, jnp.zeros((B, T, 5), jnp.int32))
