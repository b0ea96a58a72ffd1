"""Benchmark workloads: one step function + its arguments for each model of the study.

A point is a dict::

    {"model": "lstm", "seq_len": 1024, "batch": 32, "width": 256, "dtype": "float32", "mode": "train"}

with optional `heads` (attention; default width // 64, at least 1), `unroll` ("lstm"/"gru": the
`lax.scan` unroll factor, default 1), `layers` and `bidirectional` (the stacked LSTMs "lstm-layer",
"torch-lstm" and "cudnn-lstm": number of layers, default 1, and both directions per layer, default
False), `schedule` ("lstm-layer": how `jaxseq.nn.LSTM` runs its stack, see its docstring; default
"auto"), `step_kernel` ("lstm", "lstm-layer": "xla" or "pallas", one Pallas kernel per forward time
step, `jaxseq.ops.pallas_lstm`; default "xla") with `block_hidden` (its tiling; default 16) and
`pallas_in_place` (false: the step kernel inside `lax.scan` instead of one launch per step; default
true) and, for data-parallel points, `devices` and `parallel` ("jit" | "pmap"). `build_workload(point)`
returns a `Workload` whose `fn(*args)` is one step: "forward" returns the outputs, "train" returns the gradients of a mean loss with respect
to the parameters and the inputs (what a training step's backward pass computes; no optimizer update).

Models (`MODELS`):
- jaxseq ops: "lstm", "gru" (`lax.scan`), "mingru", "minlstm" (lax.associative_scan, linear space),
  "attn-<backend>" for each backend of `jaxseq.ops.attention` (the causal attention op alone on
  q, k, v [batch, time, heads, head_dim]; no projections);
- jaxseq.nn layers at equal width: "lstm-layer" (`jaxseq.nn.LSTM`), "transformer-block"
  (`jaxseq.nn.TransformerBlock`, causal, MLP ratio 4);
- anchors: "torch-lstm" (`torch.nn.LSTM`), "torch-sdpa" (`F.scaled_dot_product_attention`),
  "flax-lstm" (`nnx.RNN(nnx.OptimizedLSTMCell)`), "cudnn-lstm" (`jax.experimental.rnn.lstm`, GPU only).
torch is imported only when a torch anchor is built.
"""
from __future__ import annotations

from typing import Any, Callable

from jaxseq.bench import flops as F
from jaxseq.bench.generation import build_generation_workload, normalize_generation_point
# A point's label (`model_label`, typed as `PointLabel`) lives in `labels`; both stay importable from here.
from jaxseq.bench.labels import PointLabel, model_label
# The workload type and its measuring live in `measure`, which `generation` builds on as well; they stay
# importable from here.
from jaxseq.bench.measure import (DTYPES, Workload, blocked_step, jnp_dtype, measure_workload,
                                  point_with_required_fields)

__all__ = ["Workload", "MODELS", "model_label", "PointLabel", "RECURRENT_MODELS", "ATTENTION_MODELS",
           "build_workload", "available_models", "normalize_point", "attention_backends", "measure_workload",
           "blocked_step", "layer_apply"]

MODES = ("forward", "train", "generate")  # "generate": jaxseq.bench.generation
PARALLEL = ("jit", "pmap")
RECURRENT_MODELS = ("lstm", "gru", "mingru", "minlstm")
LAYER_MODELS = ("lstm-layer", "transformer-block")
ANCHOR_MODELS = ("torch-lstm", "torch-sdpa", "flax-lstm", "cudnn-lstm")
_ALL_ATTENTION_BACKENDS = ("naive", "vmapped", "blockwise", "xla", "cudnn")
ATTENTION_MODELS = tuple(f"attn-{b}" for b in _ALL_ATTENTION_BACKENDS)
MODELS = RECURRENT_MODELS + ATTENTION_MODELS + LAYER_MODELS + ANCHOR_MODELS


def attention_backends() -> tuple[str, ...]:
    """Backends `jaxseq.ops.attention` offers (without "auto"); empty if the module is missing."""
    try:
        from jaxseq.ops.attention import ATTENTION_BACKENDS
    except ImportError:
        return ()
    return tuple(b for b in ATTENTION_BACKENDS if b != "auto")


def available_models(backend: str | None = None) -> tuple[str, ...]:
    """Models that can run on `backend` (default: jax's default backend) with what is installed."""
    import importlib.util

    import jax

    backend = backend or jax.default_backend()
    out = []
    attn = set(attention_backends())
    for m in MODELS:
        if m.startswith("attn-"):
            b = m[len("attn-"):]
            if b not in attn or (b == "cudnn" and backend != "gpu"):
                continue
        if m == "cudnn-lstm" and backend != "gpu":
            continue  # jax.experimental.rnn.lstm raises on CPU
        if m.startswith("torch-") and not _torch_matches(backend):
            continue
        if m in LAYER_MODELS and not _importable("jaxseq.nn"):
            continue
        out.append(m)
    return tuple(out)


def _torch_matches(backend: str) -> bool:
    # torch anchors must run on the same kind of device as the JAX runs they anchor: a CPU-only
    # torch on a GPU machine would compare a CPU LSTM with a GPU one.
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    if backend == "cpu":
        return True
    import torch

    return backend == "gpu" and torch.cuda.is_available()


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def normalize_point(point: dict[str, Any]) -> dict[str, Any]:
    """Check a point's fields and fill defaults (heads). Raises ValueError naming the bad field."""
    if point.get("mode") == "generate":
        return normalize_generation_point(point)
    p = point_with_required_fields(point)
    p.setdefault("mode", "train")
    if p["model"] not in MODELS:
        raise ValueError(f"point model must be one of {MODELS}, got {p['model']!r}")
    if p["dtype"] not in DTYPES:
        raise ValueError(f"point dtype must be one of {DTYPES}, got {p['dtype']!r}")
    if p["mode"] not in MODES:
        raise ValueError(f"point mode must be one of {MODES}, got {p['mode']!r}")
    for field in ("seq_len", "batch", "width"):
        if not isinstance(p[field], int) or p[field] < 1:
            raise ValueError(f"point {field} must be a positive int, got {p[field]!r}")
    if "unroll" in p:
        if p["model"] not in ("lstm", "gru"):
            raise ValueError(f"point unroll applies to 'lstm' and 'gru' only, got model {p['model']!r}")
        if not isinstance(p["unroll"], int) or isinstance(p["unroll"], bool) or p["unroll"] < 1:
            raise ValueError(f"point unroll must be a positive int, got {p['unroll']!r}")
    stack_models = ("lstm-layer", "torch-lstm", "cudnn-lstm")
    if "layers" in p:
        if p["model"] not in stack_models:
            raise ValueError(f"point layers applies to {stack_models} only, got model {p['model']!r}")
        if not isinstance(p["layers"], int) or isinstance(p["layers"], bool) or p["layers"] < 1:
            raise ValueError(f"point layers must be a positive int, got {p['layers']!r}")
    if "bidirectional" in p:
        if p["model"] not in stack_models:
            raise ValueError(f"point bidirectional applies to {stack_models} only, got model {p['model']!r}")
        if not isinstance(p["bidirectional"], bool):
            raise ValueError(f"point bidirectional must be true or false, got {p['bidirectional']!r}")
    if "schedule" in p:
        from jaxseq.nn.recurrent import SCHEDULES

        if p["model"] != "lstm-layer":
            raise ValueError(f"point schedule applies to 'lstm-layer' only, got model {p['model']!r}")
        if p["schedule"] not in SCHEDULES:
            raise ValueError(f"point schedule must be one of {SCHEDULES}, got {p['schedule']!r}")
    if "step_kernel" in p or "block_hidden" in p or "pallas_in_place" in p:
        if p["model"] not in ("lstm", "lstm-layer"):
            raise ValueError(f"point step_kernel applies to 'lstm' and 'lstm-layer' only, got model {p['model']!r}")
        if p.get("step_kernel", "xla") not in ("xla", "pallas"):
            raise ValueError(f"point step_kernel must be 'xla' or 'pallas', got {p['step_kernel']!r}")
        if "block_hidden" in p:
            from jaxseq.ops.pallas_lstm import PallasLSTMStep

            if p.get("step_kernel") != "pallas":
                raise ValueError("point block_hidden applies to step_kernel 'pallas' only")
            PallasLSTMStep(block_hidden=p["block_hidden"])  # ValueError naming block_hidden
        if "pallas_in_place" in p:
            if p.get("step_kernel") != "pallas":
                raise ValueError("point pallas_in_place applies to step_kernel 'pallas' only")
            if not isinstance(p["pallas_in_place"], bool):
                raise ValueError(f"point pallas_in_place must be true or false, got {p['pallas_in_place']!r}")
    if "devices" in p or "parallel" in p:
        p.setdefault("devices", 1)
        p.setdefault("parallel", "jit")
        if p["parallel"] not in PARALLEL:
            raise ValueError(f"point parallel must be one of {PARALLEL}, got {p['parallel']!r}")
        if p["mode"] != "train":
            raise ValueError("data-parallel points time a training step: mode must be 'train'")
    return p


def _heads(p: dict[str, Any]) -> int:
    heads = p.get("heads") or max(1, p["width"] // 64)
    if p["width"] % heads:
        raise ValueError(f"point heads={heads} must divide width={p['width']}")
    return heads


# ----------------------------------------------------------------------------------------------
# JAX models as (apply(params, x) -> outputs, params, x)


def _rnn_apply(p: dict[str, Any]):
    """apply, params, x, analytic FLOPs for the jaxseq recurrent ops."""
    import jax
    import jax.numpy as jnp

    B, T, W, dt = p["batch"], p["seq_len"], p["width"], jnp_dtype(p["dtype"])
    kp, kx = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (B, T, W), jnp.float32).astype(dt)
    model = p["model"]
    if model in ("lstm", "gru"):
        from jaxseq.ops import rnn

        unroll = p.get("unroll", 1)
        if model == "lstm":
            params = rnn.init_lstm_params(kp, W, W, dtype=dt)
            kernel = _step_kernel(p)
            apply = lambda prm, xx: rnn.lstm_scan(prm, xx, unroll=unroll, step_kernel=kernel)[0]  # noqa: E731
            flops = F.lstm_flops(B, T, W, W, mode=p["mode"])
        else:
            params = rnn.init_gru_params(kp, W, W, dtype=dt)
            apply = lambda prm, xx: rnn.gru_scan(prm, xx, unroll=unroll)[0]  # noqa: E731
            flops = F.gru_flops(B, T, W, W, mode=p["mode"])
    else:
        from jaxseq.ops import linear_recurrence as lr

        if model == "mingru":
            params = lr.init_mingru_params(kp, W, W, dtype=dt)
            # mode="parallel": lax.associative_scan in linear space, the form the study compares;
            # the log-space scan ran 3.2x slower on the 2-core CPU (B=8, W=128, T=4096, train).
            apply = lambda prm, xx: lr.mingru(prm, xx, mode="parallel")[0]  # noqa: E731
            flops = F.mingru_flops(B, T, W, W, mode=p["mode"])
        else:
            params = lr.init_minlstm_params(kp, W, W, dtype=dt)
            apply = lambda prm, xx: lr.minlstm(prm, xx, mode="parallel")[0]  # noqa: E731
            flops = F.minlstm_flops(B, T, W, W, mode=p["mode"])
    return apply, params, x, flops


def _step_kernel(p: dict[str, Any]):
    """The point's `step_kernel` as jaxseq.ops.rnn.lstm_scan takes it."""
    if p.get("step_kernel", "xla") == "xla":
        return "xla"
    from jaxseq.ops.pallas_lstm import PallasLSTMStep

    return PallasLSTMStep(block_hidden=p.get("block_hidden", 16), in_place=p.get("pallas_in_place", True))


def _nnx_apply(module, call: Callable):
    """Pure form of an NNX module: apply(params, x), params. Non-Param state stays closed over.

    Splitting out only `nnx.Param` keeps RNG counters out of the differentiated part (flax 0.12:
    grad over merged RNG state fails with "Cannot mutate RngCount from a different trace level").
    """
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(prm, x):
        return call(nnx.merge(graphdef, prm, rest), x)

    return apply, params


def layer_apply(p: dict[str, Any]):
    """(apply, params, x, flops) of a point's flax layer ("lstm-layer", "transformer-block",
    "flax-lstm"): `apply(params, x)` runs the layer on the point's input `x` (batch, seq_len, width);
    `flops` is the analytic count per step. Shared by the workloads and `jaxseq.bench.phases`."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    B, T, W, dt = p["batch"], p["seq_len"], p["width"], jnp_dtype(p["dtype"])
    x = jax.random.normal(jax.random.key(1), (B, T, W), jnp.float32).astype(dt)
    rngs = nnx.Rngs(0)
    model = p["model"]
    if model == "lstm-layer":
        from jaxseq.nn import LSTM

        L, bi = p.get("layers", 1), p.get("bidirectional", False)
        module = LSTM(W, W, num_layers=L, bidirectional=bi, schedule=p.get("schedule", "auto"),
                      step_kernel=_step_kernel(p), dtype=dt, param_dtype=dt, rngs=rngs)
        apply, params = _nnx_apply(module, lambda m, xx: m(xx)[0])
        flops = stack_lstm_flops(B, T, W, L, bi, p["mode"])
    elif model == "transformer-block":
        from jaxseq.nn import TransformerBlock

        heads = _heads(p)
        module = TransformerBlock(W, heads, rngs=rngs, dtype=dt, param_dtype=dt)
        apply, params = _nnx_apply(module, lambda m, xx: m(xx, is_causal=True))
        flops = F.transformer_block_flops(B, T, W, heads, causal=True, mode=p["mode"])
    elif model == "flax-lstm":
        # Parameters are made in float32 (flax's orthogonal init has no bfloat16 QR) and cast after;
        # rngs=False and an explicit zero carry: the RNN would otherwise draw from an RNG stream on
        # every call (carry init), which cannot be mutated from inside jit/grad.
        cell = nnx.OptimizedLSTMCell(W, W, dtype=dt, rngs=rngs)
        module = nnx.RNN(cell, rngs=False)
        carry = (jnp.zeros((B, W), dt), jnp.zeros((B, W), dt))
        apply, params = _nnx_apply(module, lambda m, xx: m(xx, initial_carry=carry))
        params = jax.tree.map(lambda a: a.astype(dt), params)
        flops = F.lstm_flops(B, T, W, W, mode=p["mode"])
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(model)
    return apply, params, x, flops


def _attention_qkv(p: dict[str, Any]):
    import jax
    import jax.numpy as jnp

    B, T, W, dt = p["batch"], p["seq_len"], p["width"], jnp_dtype(p["dtype"])
    H = _heads(p)
    keys = jax.random.split(jax.random.key(2), 3)
    shape = (B, T, H, W // H)
    return tuple(jax.random.normal(k, shape, jnp.float32).astype(dt) for k in keys), H


def _jax_workload(p: dict[str, Any]) -> Workload:
    import jax
    import jax.numpy as jnp

    model, mode = p["model"], p["mode"]
    tokens = p["batch"] * p["seq_len"]
    if model.startswith("attn-"):
        from jaxseq.ops.attention import attention

        backend = model[len("attn-"):]
        (q, k, v), heads = _attention_qkv(p)

        def attn(q, k, v):
            return attention(q, k, v, backend=backend, is_causal=True)

        flops = F.attention_flops(p["batch"], p["seq_len"], heads, p["width"] // heads, causal=True,
                                  mode=mode)
        if mode == "forward":
            return Workload(model, "jax", attn, (q, k, v), tokens, flops)

        def loss(q, k, v):
            return jnp.mean(attn(q, k, v).astype(jnp.float32))

        return Workload(model, "jax", jax.grad(loss, argnums=(0, 1, 2)), (q, k, v), tokens, flops)

    if model == "cudnn-lstm":
        apply, params, x, flops = _cudnn_lstm_apply(p)
    elif model in RECURRENT_MODELS:
        apply, params, x, flops = _rnn_apply(p)
    else:
        apply, params, x, flops = layer_apply(p)
    if mode == "forward":
        return Workload(model, "jax", apply, (params, x), tokens, flops)

    def loss(prm, xx):
        return jnp.mean(apply(prm, xx).astype(jnp.float32))

    return Workload(model, "jax", jax.grad(loss, argnums=(0, 1)), (params, x), tokens, flops)


def _cudnn_lstm_apply(p: dict[str, Any]):
    """jax.experimental.rnn.lstm: cuDNN on GPU, float32 only (bf16 raises NotImplementedError)."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import rnn as jrnn

    B, T, W, dt = p["batch"], p["seq_len"], p["width"], jnp_dtype(p["dtype"])
    L, bi = p.get("layers", 1), p.get("bidirectional", False)
    D = 2 if bi else 1
    weights = jrnn.init_lstm_weight(jax.random.key(0), W, W, L, bi).astype(dt)
    x = jax.random.normal(jax.random.key(1), (B, T, W), jnp.float32).astype(dt)
    zeros = jnp.zeros((L * D, B, W), dt)
    lengths = jnp.full((B,), T, jnp.int32)

    def apply(w, xx):
        y, _, _ = jrnn.lstm(xx, zeros, zeros, w, lengths, input_size=W, hidden_size=W,
                            num_layers=L, dropout=0.0, bidirectional=bi)
        return y

    return apply, weights, x, stack_lstm_flops(B, T, W, L, bi, p["mode"])


def stack_lstm_flops(batch: int, seq_len: int, width: int, layers: int, bidirectional: bool,
                     mode: str) -> int:
    """Analytic FLOPs of an LSTM stack of `layers` at input = hidden = `width`; a bidirectional layer is
    two directions, and the layers above it read both (2 * width features)."""
    if not bidirectional:
        return F.lstm_flops(batch, seq_len, width, width, num_layers=layers, mode=mode)
    first = F.lstm_flops(batch, seq_len, width, width, mode=mode)
    rest = F.lstm_flops(batch, seq_len, 2 * width, width, mode=mode) * (layers - 1)
    return 2 * (first + rest)


# ----------------------------------------------------------------------------------------------
# torch anchors


def _torch_workload(p: dict[str, Any]) -> Workload:
    import torch
    import torch.nn.functional as TF

    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[p["dtype"]]
    B, T, W, mode = p["batch"], p["seq_len"], p["width"], p["mode"]
    train = mode == "train"
    tokens = B * T
    if p["model"] == "torch-lstm":
        L, bi = p.get("layers", 1), p.get("bidirectional", False)
        lstm = torch.nn.LSTM(W, W, num_layers=L, bidirectional=bi, batch_first=True).to(device=dev, dtype=dt)
        x = torch.randn(B, T, W, device=dev, dtype=dt, requires_grad=train)
        params = list(lstm.parameters())

        def step(x):
            if not train:
                return lstm(x)[0]
            for prm in params:  # fresh gradients each step, as zero_grad(set_to_none=True) does
                prm.grad = None
            x.grad = None
            out, _ = lstm(x)
            out.float().mean().backward()
            return None

        return Workload("torch-lstm", "torch", step, (x,), tokens,
                        stack_lstm_flops(B, T, W, L, bi, mode), no_grad=not train,
                        notes=f"torch {torch.__version__} on {dev}, {torch.get_num_threads()} threads")

    # torch-sdpa: layout [batch, heads, time, head_dim]
    H = _heads(p)
    qkv = [torch.randn(B, H, T, W // H, device=dev, dtype=dt, requires_grad=train)
           for _ in range(3)]

    def step(q, k, v):
        if not train:
            return TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        for t in (q, k, v):
            t.grad = None
        TF.scaled_dot_product_attention(q, k, v, is_causal=True).float().mean().backward()
        return None

    return Workload("torch-sdpa", "torch", step, tuple(qkv), tokens,
                    F.attention_flops(B, T, H, W // H, causal=True, mode=mode), no_grad=not train,
                    notes=f"torch {torch.__version__} on {dev}, {torch.get_num_threads()} threads")


# ----------------------------------------------------------------------------------------------
# data parallel


def _data_parallel_workload(p: dict[str, Any]) -> Workload:
    """Weak scaling: each device gets `batch` sequences; the gradient is averaged over devices."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = p["devices"]
    if n > jax.device_count():
        raise ValueError(f"point devices={n} but only {jax.device_count()} devices are visible")
    if p["model"].startswith(("attn-", "torch-")):
        raise ValueError(f"data-parallel points support parameterised jax models, not {p['model']}")
    single = dict(p, batch=p["batch"] * n)
    single.pop("devices")
    single.pop("parallel")
    if p["model"] == "cudnn-lstm":
        apply, params, x, flops = _cudnn_lstm_apply(single)
    elif p["model"] in RECURRENT_MODELS:
        apply, params, x, flops = _rnn_apply(single)
    else:
        apply, params, x, flops = layer_apply(single)
    tokens = single["batch"] * p["seq_len"]
    devices = jax.devices()[:n]

    def loss(prm, xx):
        return jnp.mean(apply(prm, xx).astype(jnp.float32))

    if p["parallel"] == "pmap":
        def step(prm, xx):
            return jax.lax.pmean(jax.grad(loss)(prm, xx), "data")

        fn = jax.pmap(step, axis_name="data", devices=devices)
        place = jax.pmap(lambda a: a, devices=devices)  # lays arrays out as pmap expects
        params_r = place(jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), params))
        x_r = place(x.reshape((n, p["batch"]) + x.shape[1:]))
        return Workload(p["model"], "jax", fn, (params_r, x_r), tokens, flops,
                        notes=f"pmap over {n} devices")

    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,),
                         devices=np.asarray(devices))
    params_s = jax.device_put(params, NamedSharding(mesh, P()))
    x_s = jax.device_put(x, NamedSharding(mesh, P("data")))
    fn = jax.jit(jax.grad(loss), out_shardings=NamedSharding(mesh, P()))
    return Workload(p["model"], "jax", fn, (params_s, x_s), tokens, flops,
                    notes=f"sharded jit over {n} devices")


def build_workload(point: dict[str, Any]) -> Workload:
    """The step function and arguments of one point (see the module docstring)."""
    p = normalize_point(point)
    if p["mode"] == "generate":
        return build_generation_workload(p)
    if "devices" in p:
        return _data_parallel_workload(p)
    if p["model"].startswith("torch-"):
        return _torch_workload(p)
    return _jax_workload(p)
