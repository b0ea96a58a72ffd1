"""Tests for jaxseq.ops.attention: every backend against a float64 NumPy reference and torch SDPA,
gradients, padding, transformations, memory scaling and input validation."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.test_util import check_grads

from jaxseq.ops import attention as A
from jaxseq.ops.attention import (
    ATTENTION_BACKENDS,
    attention,
    blockwise_attention,
    dot_product_attention_reference,
    select_backend,
    vmapped_attention,
)

# Backends that run on CPU through the dispatcher ("cudnn" needs a GPU, tested separately).
CPU_BACKENDS = [b for b in ATTENTION_BACKENDS if b != "cudnn"]          # naive, vmapped, blockwise, xla
DISPATCH_NAMES = CPU_BACKENDS + ["auto"]
MASK_BACKENDS = [b for b in CPU_BACKENDS if b != "blockwise"]  # blockwise takes no explicit mask

B, TQ, TK, H, D = 2, 7, 5, 2, 4


def _qkv(b=B, tq=TQ, tk=TK, h=H, d=D, dtype=jnp.float32, seed=0):
    kq, kk, kv = jax.random.split(jax.random.PRNGKey(seed), 3)
    q = jax.random.normal(kq, (b, tq, h, d), jnp.float32).astype(dtype)
    k = jax.random.normal(kk, (b, tk, h, d), jnp.float32).astype(dtype)
    v = jax.random.normal(kv, (b, tk, h, d), jnp.float32).astype(dtype)
    return q, k, v


def np_attention(q, k, v, *, mask=None, is_causal=False, scale=None, q_lengths=None, kv_lengths=None):
    """Float64 NumPy softmax attention; rows with nothing to attend to (or padded rows) are zero."""
    q, k, v = (np.asarray(jnp.asarray(x, jnp.float32), np.float64) for x in (q, k, v))
    b, tq, h, d = q.shape
    tk = k.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
    valid = np.ones((b, h, tq, tk), bool)
    if is_causal:
        valid &= np.tril(np.ones((tq, tk), bool))[None, None]
    if q_lengths is not None:
        valid &= (np.arange(tq)[None, :] < np.asarray(q_lengths)[:, None])[:, None, :, None]
    if kv_lengths is not None:
        valid &= (np.arange(tk)[None, :] < np.asarray(kv_lengths)[:, None])[:, None, None, :]
    if mask is not None:
        valid &= np.asarray(mask)
    logits = np.where(valid, logits, -np.inf)
    row_max = np.max(logits, axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    w = np.where(valid, np.exp(logits - row_max), 0.0)
    denom = w.sum(-1, keepdims=True)
    w = np.where(denom > 0, w / np.where(denom > 0, denom, 1.0), 0.0)
    return np.einsum("bhqk,bkhd->bqhd", w, v)


_STATIC = ("is_causal", "scale", "block_q", "block_kv")


def _run(backend, q, k, v, *, jit=True, **kw):
    """attention(...) with small blockwise tiles; jitted by default (one compile instead of many
    eager op dispatches keeps the tests fast). Array options (lengths, mask) are traced then."""
    if backend == "blockwise":
        kw.setdefault("block_q", 3)
        kw.setdefault("block_kv", 2)
    if not jit:
        return attention(q, k, v, backend=backend, **kw)
    static = {n: kw.pop(n) for n in _STATIC if n in kw}
    return jax.jit(lambda q, k, v, kw: attention(q, k, v, backend=backend, **static, **kw))(q, k, v, kw)


_run_eager = _run


# ---------------------------------------------------------------------------------------------------
# 1. shapes and dtypes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", DISPATCH_NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_shape_dtype(backend, dtype):
    q, k, v = _qkv(dtype=dtype)
    out = _run(backend, q, k, v, is_causal=True)
    assert out.shape == q.shape
    assert out.dtype == dtype
    ref = np_attention(q, k, v, is_causal=True)
    tol = 1e-5 if dtype == jnp.float32 else 5e-2
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, atol=tol, rtol=tol)


# ---------------------------------------------------------------------------------------------------
# 2. equality with a naive float64 reference
# ---------------------------------------------------------------------------------------------------

CASES = {
    "self": dict(tq=6, tk=6, kw={}),
    "self_causal_scale": dict(tq=6, tk=6, kw=dict(is_causal=True, scale=0.7)),
    "cross": dict(tq=7, tk=5, kw={}),
    "cross_causal": dict(tq=5, tk=7, kw=dict(is_causal=True)),
    "cross_causal_long_q": dict(tq=7, tk=5, kw=dict(is_causal=True)),
    "lengths": dict(tq=7, tk=5, kw=dict(q_lengths=np.array([7, 3], np.int32),      # kv length 0:
                                         kv_lengths=np.array([0, 5], np.int32))),  # zero rows
    "lengths_causal": dict(tq=6, tk=6, kw=dict(is_causal=True, q_lengths=np.array([4, 6], np.int32),
                                                kv_lengths=np.array([6, 3], np.int32))),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(backend, case):
    c = CASES[case]
    q, k, v = _qkv(tq=c["tq"], tk=c["tk"], seed=1)
    out = _run(backend, q, k, v, **c["kw"])
    ref = np_attention(q, k, v, **c["kw"])
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", MASK_BACKENDS)
@pytest.mark.parametrize("mask_shape,is_causal", [((B, H, TQ, TK), False), ((1, 1, TQ, TK), True),
                                                  ((B, 1, TQ, TK), True), ((1, H, TQ, TK), False)])
def test_explicit_mask(backend, mask_shape, is_causal):
    q, k, v = _qkv(seed=2)
    rng = np.random.default_rng(0)
    mask = rng.random(mask_shape) < 0.6
    mask[..., 0, :] = False          # one query row with nothing to attend to -> zeros
    kw = dict(mask=jnp.asarray(mask), is_causal=is_causal, kv_lengths=np.array([5, 3], np.int32))
    out = _run(backend, q, k, v, **kw)
    ref = np_attention(q, k, v, **{**kw, "mask": mask})
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-5, rtol=1e-5)
    assert np.all(np.asarray(out)[:, 0] == 0)


@pytest.mark.parametrize("block_q,block_kv,is_causal", [(1, 1, True), (2, 3, False), (3, 5, True),
                                                        (5, 2, True), (4, 4, False), (64, 64, True)])
def test_blockwise_block_sizes(block_q, block_kv, is_causal):
    """Block sizes that do not divide T (and larger than T) agree with the full-matrix op."""
    q, k, v = _qkv(b=2, tq=11, tk=13, seed=3)
    kv_lengths = np.array([13, 6], np.int32)
    out = _run("blockwise", q, k, v, is_causal=is_causal, kv_lengths=kv_lengths,
               block_q=block_q, block_kv=block_kv)
    ref = _run("naive", q, k, v, is_causal=is_causal, kv_lengths=kv_lengths)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=2e-5, rtol=1e-5)


def test_blockwise_long_blocks_default():
    """Default tiles (256) over a sequence with several tiles and a ragged end."""
    q, k, v = _qkv(b=1, tq=300, tk=300, h=1, d=8, seed=4)
    for causal in (False, True):
        out = _run("blockwise", q, k, v, is_causal=causal, block_q=128, block_kv=96)
        ref = np_attention(q, k, v, is_causal=causal)
        np.testing.assert_allclose(np.asarray(out), ref, atol=3e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# 3. torch SDPA parity
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", ["self", "self_causal", "cross", "cross_causal", "lengths_mask"])
def test_matches_torch_sdpa(backend, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tq, tk = (6, 6) if case.startswith("self") else (7, 5)
    q, k, v = _qkv(tq=tq, tk=tk, seed=5)
    tq_, tk_, tv_ = (torch.from_numpy(np.array(x)).permute(0, 2, 1, 3) for x in (q, k, v))
    kw = {}
    tkw = {}
    rows = slice(None)
    if case.endswith("causal"):
        kw["is_causal"] = tkw["is_causal"] = True
    if case == "lengths_mask":
        kv_lengths = np.array([3, 5], np.int32)
        kw["kv_lengths"] = kv_lengths
        m = np.arange(tk)[None, :] < kv_lengths[:, None]                     # [B, Tk]
        tkw["attn_mask"] = torch.from_numpy(np.broadcast_to(m[:, None, None, :], (B, 1, tq, tk)).copy())
    expected = F.scaled_dot_product_attention(tq_, tk_, tv_, **tkw).permute(0, 2, 1, 3).numpy()
    out = _run(backend, q, k, v, **kw)
    np.testing.assert_allclose(np.asarray(out)[:, rows], expected[:, rows], rtol=1e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------------------
# 4. gradients
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn,is_causal", [("blockwise", False), ("blockwise", True), ("vmapped", True)])
def test_check_grads_float64(fn, is_causal):
    with jax.enable_x64(True):
        q, k, v = _qkv(b=2, tq=5, tk=6, h=2, d=3, dtype=jnp.float64, seed=6)
        kv_lengths = jnp.array([6, 4], jnp.int32)
        if fn == "blockwise":
            f = lambda q, k, v: blockwise_attention(q, k, v, is_causal=is_causal, kv_lengths=kv_lengths,
                                                    block_q=2, block_kv=4)
        else:
            f = lambda q, k, v: vmapped_attention(q, k, v, is_causal=is_causal, kv_lengths=kv_lengths)
        f = jax.jit(f)
        assert f(q, k, v).dtype == jnp.float64
        check_grads(f, (q, k, v), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["blockwise", "vmapped", "xla"])
def test_grads_match_reference_float32(backend):
    q, k, v = _qkv(b=2, tq=9, tk=7, seed=7)
    kw = dict(is_causal=True, q_lengths=np.array([9, 5], np.int32), kv_lengths=np.array([7, 2], np.int32))
    w = jax.random.normal(jax.random.PRNGKey(8), q.shape)

    def loss(backend):
        return lambda q, k, v: jnp.sum(_run(backend, q, k, v, jit=False, **kw) * w)

    g = jax.jit(jax.grad(loss(backend), argnums=(0, 1, 2)))(q, k, v)
    g_ref = jax.jit(jax.grad(loss("naive"), argnums=(0, 1, 2)))(q, k, v)
    for a, r in zip(g, g_ref):
        assert np.all(np.isfinite(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), atol=2e-5, rtol=1e-4)


def test_blockwise_grad_bfloat16_finite():
    q, k, v = _qkv(dtype=jnp.bfloat16, seed=9)
    g = jax.jit(jax.grad(lambda q: jnp.sum(blockwise_attention(q, k, v, is_causal=True, block_q=2,
                                                        block_kv=2).astype(jnp.float32))))(q)
    assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


# ---------------------------------------------------------------------------------------------------
# 5. padding: padded runs equal unpadded runs on the valid part; padded query rows are zero
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_padded_equals_unpadded(backend, is_causal=True):
    q, k, v = _qkv(b=2, tq=8, tk=8, seed=10)
    lens = np.array([5, 8], np.int32)
    out = _run(backend, q, k, v, is_causal=is_causal, q_lengths=lens, kv_lengths=lens)
    for b, n in enumerate(lens):
        alone = _run(backend, q[b:b + 1, :n], k[b:b + 1, :n], v[b:b + 1, :n], is_causal=is_causal)
        np.testing.assert_allclose(np.asarray(out[b, :n]), np.asarray(alone[0]), atol=2e-6, rtol=1e-5)
        assert np.all(np.asarray(out[b, n:]) == 0)     # documented: padded query rows are zero


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_padding_content_ignored(backend):
    """Garbage in padded keys/values must not change the valid outputs (nor make NaN)."""
    q, k, v = _qkv(b=2, tq=6, tk=6, seed=11)
    lens = np.array([3, 6], np.int32)
    k2 = k.at[0, 3:].set(1e4)
    v2 = v.at[0, 3:].set(jnp.nan)
    a = _run(backend, q, k, v, kv_lengths=lens, q_lengths=lens)
    bb = _run(backend, q, k2, v2.at[0, 3:].set(123.0), kv_lengths=lens, q_lengths=lens)
    np.testing.assert_allclose(np.asarray(a), np.asarray(bb), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# 6. transformations
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_jit_vmap_grad(backend):
    q, k, v = _qkv(b=2, tq=6, tk=6, seed=12)
    lens = jnp.array([4, 6], jnp.int32)

    def f(q, k, v, lens):
        return _run(backend, q, k, v, jit=False, is_causal=True, kv_lengths=lens, q_lengths=lens)

    ref = np_attention(q, k, v, is_causal=True, q_lengths=lens, kv_lengths=lens)
    jf = jax.jit(f)
    np.testing.assert_allclose(np.asarray(jf(q, k, v, lens)), ref, atol=2e-5, rtol=1e-5)  # lengths traced
    # vmap over an extra leading axis (3 scaled copies, each with its own lengths), under jit.
    c = jnp.array([1.0, 0.5, -2.0])[:, None, None, None, None]
    lens3 = jnp.array([[4, 6], [6, 2], [0, 6]], jnp.int32)
    batched = jax.jit(jax.vmap(f))(q * c, k * c, v * c, lens3)
    for i in range(3):
        ci = float(c[i, 0, 0, 0, 0])
        np.testing.assert_allclose(np.asarray(batched[i]),
                                   np_attention(q * ci, k * ci, v * ci, is_causal=True, q_lengths=lens3[i],
                                                kv_lengths=lens3[i]), atol=5e-5, rtol=1e-5)
    g = jax.jit(jax.grad(lambda q, k, v: jnp.sum(f(q, k, v, lens) ** 2), argnums=(0, 1, 2)))(q, k, v)
    assert all(x.shape == y.shape and np.all(np.isfinite(np.asarray(x))) for x, y in zip(g, (q, k, v)))


# ---------------------------------------------------------------------------------------------------
# 7. memory scaling
# ---------------------------------------------------------------------------------------------------


def _grad_temp_bytes(fn, T, **kw):
    shape = jax.ShapeDtypeStruct((1, T, 1, 16), jnp.float32)
    g = jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v, is_causal=True, **kw)), argnums=(0, 1, 2))
    mem = jax.jit(g).lower(shape, shape, shape).compile().memory_analysis()
    if mem is None:
        pytest.skip("memory_analysis unavailable on this backend")
    return mem.temp_size_in_bytes


def test_blockwise_memory_linear_in_T():
    blk = [_grad_temp_bytes(blockwise_attention, T, block_q=128, block_kv=128) for T in (512, 2048)]
    naive = [_grad_temp_bytes(dot_product_attention_reference, T) for T in (512, 2048)]
    ratio_blk = blk[1] / max(blk[0], 1)
    ratio_naive = naive[1] / max(naive[0], 1)
    assert ratio_blk < 8, (blk, ratio_blk)
    assert ratio_naive > ratio_blk, (naive, blk)
    assert naive[1] > blk[1]


# ---------------------------------------------------------------------------------------------------
# 8. validation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", DISPATCH_NAMES)
def test_bad_inputs(backend):
    q, k, v = _qkv()
    _run = functools.partial(_run_eager, jit=False)   # concrete lengths: range checked before tracing
    with pytest.raises(ValueError, match=r"\bq\b.*rank 4"):
        _run(backend, q[0], k, v)
    with pytest.raises(ValueError, match=r"\bk\b.*rank 4"):
        _run(backend, q, k[..., None], v)
    with pytest.raises(ValueError, match="head_dim"):
        _run(backend, q, k[..., :3], v)
    _, k3, v3 = _qkv(h=3)                       # 2 query heads over 3 k/v heads: not a grouping
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        _run(backend, q, k3, v3)
    with pytest.raises(ValueError, match="k and v must have the same number of heads"):
        _run(backend, q, k, v[:, :, :1])
    with pytest.raises(ValueError, match="batch"):
        _run(backend, q, k[:1], v[:1])
    with pytest.raises(ValueError, match="time"):
        _run(backend, q, k, v[:, :3])
    with pytest.raises(TypeError, match="dtype"):
        _run(backend, q, k.astype(jnp.bfloat16), v)
    with pytest.raises(TypeError, match="floating"):
        _run(backend, q.astype(jnp.int32), k.astype(jnp.int32), v.astype(jnp.int32))
    with pytest.raises(ValueError, match="kv_lengths"):
        _run(backend, q, k, v, kv_lengths=np.array([TK + 1, 1], np.int32))
    with pytest.raises(ValueError, match="kv_lengths"):
        _run(backend, q, k, v, kv_lengths=np.array([-1, 1], np.int32))
    with pytest.raises(ValueError, match="q_lengths"):
        _run(backend, q, k, v, q_lengths=np.array([1, 2, 3], np.int32))
    with pytest.raises(ValueError, match="q_lengths"):
        _run(backend, q, k, v, q_lengths=np.array([[1, 2]], np.int32))
    with pytest.raises(TypeError, match="kv_lengths"):
        _run(backend, q, k, v, kv_lengths=np.array([1.0, 2.0], np.float32))
    with pytest.raises((ValueError, TypeError), match="scale"):
        _run(backend, q, k, v, scale=-1.0)


@pytest.mark.parametrize("backend", MASK_BACKENDS)
def test_bad_mask(backend):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="mask"):
        attention(q, k, v, backend=backend, mask=jnp.ones((TQ, TK), bool))
    with pytest.raises(ValueError, match="mask"):
        attention(q, k, v, backend=backend, mask=jnp.ones((1, 1, TQ, TK + 1), bool))
    with pytest.raises(TypeError, match="mask"):
        attention(q, k, v, backend=backend, mask=jnp.ones((1, 1, TQ, TK), jnp.float32))


def test_unknown_backend_and_blockwise_options():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="backend.*'flash2'"):
        attention(q, k, v, backend="flash2")
    with pytest.raises(ValueError, match="mask"):
        attention(q, k, v, backend="blockwise", mask=jnp.ones((1, 1, TQ, TK), bool))
    for bad in (0, -4, 2.5, True, "8"):
        with pytest.raises(ValueError, match="block_q"):
            blockwise_attention(q, k, v, block_q=bad)
        with pytest.raises(ValueError, match="block_kv"):
            attention(q, k, v, backend="blockwise", block_kv=bad)
    # tile sizes are ignored by the other backends
    out = attention(q, k, v, backend="naive", block_q=2, block_kv=2)
    assert out.shape == q.shape


def test_cudnn_on_cpu_is_a_clear_error():
    if jax.default_backend() == "gpu":
        pytest.skip("cuDNN available")
    q, k, v = _qkv(dtype=jnp.bfloat16, d=8)
    with pytest.raises(RuntimeError, match="GPU"):
        attention(q, k, v, backend="cudnn")
    with pytest.raises(RuntimeError, match="GPU"):
        A.jax_nn_attention(q, k, v, implementation="cudnn")
    # "auto" never picks cudnn off GPU, and jax_nn_attention's default falls back to "xla".
    assert select_backend(q, k, v) in ("naive", "blockwise")
    assert not A.cudnn_supported(q, k, v)
    out = jax.jit(A.jax_nn_attention)(q, k, v)
    assert out.shape == q.shape and out.dtype == jnp.bfloat16


def test_select_backend_cpu():
    if jax.default_backend() == "gpu":
        pytest.skip("CPU policy")
    short = _qkv(b=1, tq=8, tk=8, h=1)
    long = [jax.ShapeDtypeStruct((1, A.AUTO_BLOCKWISE_MIN_LEN, 1, 4), jnp.float32)] * 3
    assert select_backend(*short) == "naive"
    assert select_backend(*long) == "blockwise"
    assert select_backend(*long, mask=jnp.ones((1, 1, 1, 1), bool)) == "naive"
