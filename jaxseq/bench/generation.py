"""Generation workloads: per-token decode latency and memory per sequence at a given context length.

Training is where attention parallelises; generation is sequential for every model. A generation point
is a sweep point with ``mode="generate"``::

    {"model": "lstm", "seq_len": 4096, "batch": 1, "width": 256, "dtype": "float32", "mode": "generate"}

``seq_len`` is the *context length*: the number of tokens already decoded when the timed tokens are
generated. Optional fields: ``layers`` (default 2), ``new_tokens`` (k, default 16: tokens generated
per timed call) and, for the Transformer, ``heads`` (default ``width // 64``, at least 1).

Models (``GENERATE_MODELS``), all stacks of ``layers`` layers of width ``width`` (matched width and
depth, not matched parameters: see ``params`` in the record):

- ``"lstm"``: :class:`jaxseq.nn.LSTM` stepped with :meth:`~jaxseq.nn.LSTM.step` (carry ``(h, c)``);
- ``"mingru"``: :class:`jaxseq.nn.MinGRU` stepped with ``step`` (state ``h``);
- ``"transformer"``: a decoder-only :class:`jaxseq.nn.TransformerDecoder` (pre-norm blocks of causal
  self-attention and an MLP of ratio 4, RoPE positions, no cross-attention) stepped with
  ``decode_step`` over a key/value cache of ``max_len = context + new_tokens`` positions.

The names are the sweep's names for the same recurrences ("lstm", "mingru"), here as the nn stacks,
plus "transformer" for the decoder stack; only generation points accept "transformer".

What is timed: one jitted call that generates ``new_tokens`` tokens with a ``lax.scan`` of the step,
each output fed back as the next input (no embedding or vocabulary projection, the same for every
model, so the per-token cost is the stack's). The state at the context length is *not* computed: the
recurrent states are random and the Transformer's cache is pre-filled with random keys/values for the
``context`` positions (prefill is not timed; its cost is a training-style forward pass, which the
scaling sweep's "forward" points measure). ``ms_per_token`` is the median call time over
``new_tokens``. The compiled call also copies the Transformer's cache once per call (its input is not
donated, so the scan's in-place updates need a copy): one cache read+write per ``new_tokens`` tokens,
against one cache read per token for the attention itself.

Memory per sequence: ``state_bytes_per_seq``, the analytic state a sequence carries between tokens
(LSTM ``2*L*H``, minGRU ``L*H``, Transformer ``2*L*context*kv_heads*head_dim`` elements, times the
dtype's size), and ``compiled_bytes_per_seq``, XLA's argument + temporary bytes of the compiled call
divided by the batch (parameters included; ``compiled_state_bytes_per_seq`` leaves them out).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from jaxseq.bench.measure import DTYPES, Workload, jnp_dtype, measure_workload, point_with_required_fields

__all__ = ["GENERATE_MODELS", "DEFAULT_LAYERS", "DEFAULT_NEW_TOKENS", "GenerationWorkload",
           "normalize_generation_point", "state_bytes_per_sequence", "decode_flops_per_token",
           "build_generation_workload", "generation_fields", "measure_generation"]

GENERATE_MODELS = ("lstm", "mingru", "transformer")
DEFAULT_LAYERS = 2
DEFAULT_NEW_TOKENS = 16
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclasses.dataclass
class GenerationWorkload(Workload):
    """A :class:`Workload` whose call generates ``new_tokens`` tokens per sequence at ``context``."""

    model: str = ""
    context: int = 0
    batch: int = 0
    layers: int = DEFAULT_LAYERS
    new_tokens: int = DEFAULT_NEW_TOKENS
    state_bytes_per_seq: int = 0
    param_count: int = 0
    param_bytes: int = 0


def _positive_int(point: dict[str, Any], field: str) -> int:
    v = point[field]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"point {field} must be a positive int, got {v!r}")
    return v


def normalize_generation_point(point: dict[str, Any]) -> dict[str, Any]:
    """Check a ``mode="generate"`` point and fill its defaults (layers, new_tokens, heads).

    Raises ValueError naming the bad field.
    """
    p = point_with_required_fields(point)
    p.setdefault("mode", "generate")
    if p["mode"] != "generate":
        raise ValueError(f"generation points need mode 'generate', got {p['mode']!r}")
    if p["model"] not in GENERATE_MODELS:
        raise ValueError(f"point model must be one of {GENERATE_MODELS} for mode 'generate',"
                         f" got {p['model']!r}")
    if p["dtype"] not in DTYPES:
        raise ValueError(f"point dtype must be one of {DTYPES}, got {p['dtype']!r}")
    p.setdefault("layers", DEFAULT_LAYERS)
    p.setdefault("new_tokens", DEFAULT_NEW_TOKENS)
    for field in ("seq_len", "batch", "width", "layers", "new_tokens"):
        _positive_int(p, field)
    for field in ("devices", "parallel", "unroll"):
        if field in p:
            raise ValueError(f"point {field} does not apply to mode 'generate'")
    if p["model"] == "transformer":
        heads = p.get("heads") or max(1, p["width"] // 64)
        if p["width"] % heads or (p["width"] // heads) % 2:
            raise ValueError(f"point heads={heads} must divide width={p['width']} into an even"
                             " head_dim (RoPE)")
    elif "heads" in p:
        raise ValueError(f"point heads applies to the 'transformer' only, got model {p['model']!r}")
    return p


def state_bytes_per_sequence(model: str, *, context: int, width: int, layers: int,
                             dtype: str = "float32", kv_width: int | None = None) -> int:
    """Bytes of state one sequence carries from token to token (analytic).

    LSTM ``2 * layers * width`` (h and c), minGRU ``layers * width``, Transformer ``2 * layers *
    context * kv_width`` (keys and values of every earlier position; ``kv_width = kv_heads *
    head_dim``, default ``width``), times the dtype's size.
    """
    if model not in GENERATE_MODELS:
        raise ValueError(f"model must be one of {GENERATE_MODELS}, got {model!r}")
    if dtype not in _ITEMSIZE:
        raise ValueError(f"dtype must be one of {tuple(_ITEMSIZE)}, got {dtype!r}")
    size = _ITEMSIZE[dtype]
    if model == "lstm":
        return 2 * layers * width * size
    if model == "mingru":
        return layers * width * size
    return 2 * layers * context * (kv_width or width) * size


def decode_flops_per_token(model: str, *, context: int, width: int, layers: int) -> int:
    """Forward FLOPs of one decoded token of one sequence (matmuls only, MaxText convention).

    LSTM ``16 W^2`` per layer (``2 (I + H) 4H``), minGRU ``4 W^2`` (two input projections),
    Transformer ``24 W^2 + 4 * context * W`` (q, k, v, out and a ratio-4 MLP; scores and the weighted
    sum over the context).
    """
    w = width
    per_layer = {"lstm": 16 * w * w, "mingru": 4 * w * w,
                 "transformer": 24 * w * w + 4 * context * w}[model]
    return layers * per_layer


def build_generation_workload(point: dict[str, Any]) -> GenerationWorkload:
    """The jitted k-token decode call of one generation point (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    p = normalize_generation_point(point)
    model, ctx, B, W = p["model"], p["seq_len"], p["batch"], p["width"]
    L, k, dt = p["layers"], p["new_tokens"], jnp_dtype(p["dtype"])
    rngs = nnx.Rngs(0)
    key_x, key_s = jax.random.split(jax.random.key(1))
    x0 = jax.random.normal(key_x, (B, W), jnp.float32).astype(dt)
    kv_width = W
    if model in ("lstm", "mingru"):
        from jaxseq.nn import LSTM, MinGRU

        cls = LSTM if model == "lstm" else MinGRU
        module = cls(W, W, num_layers=L, dtype=dt, param_dtype=dt, rngs=rngs)
        # The state at the context length: random, as if `ctx` tokens had been read (not timed).
        # Positive for the minGRU, whose states are positive (g() > 0).
        state = jax.tree.map(
            lambda z: jnp.abs(jax.random.normal(key_s, z.shape, jnp.float32)).astype(dt) * 0.5,
            module.init_state(B, dt))
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)

        def decode(prm, state, x0):
            m = nnx.merge(graphdef, prm, rest)

            def body(carry, _):
                x, s = carry
                y, s = m.step(x, s)
                return (y, s), y

            _, ys = jax.lax.scan(body, (x0, state), None, length=k)
            return ys

        args = (params, state, x0)
    else:
        from jaxseq.nn import TransformerDecoder
        from jaxseq.nn.attention import KVCache

        heads = p.get("heads") or max(1, W // 64)
        module = TransformerDecoder(W, heads, L, cross_attention=False, positional="rope",
                                    dtype=dt, param_dtype=dt, rngs=rngs)
        cache = module.init_cache(B, ctx + k, dtype=dt)
        # Pre-filled with random keys/values: positions < ctx stand for the context, the rest are
        # masked by the step (it attends to positions <= t) until it writes them.
        keys = jax.random.split(key_s, 2 * L)
        kv = []
        for i, c in enumerate(cache.self_kv):
            kv.append(KVCache(*(jax.random.normal(keys[2 * i + j], c.k.shape, jnp.float32).astype(dt)
                                for j in range(2))))
            kv_width = c.k.shape[2] * c.k.shape[3]
        cache = cache._replace(self_kv=tuple(kv))
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)

        def decode(prm, cache, x0):
            m = nnx.merge(graphdef, prm, rest)

            def body(carry, _):
                x, c, t = carry
                y, c = m.decode_step(x[:, None, :], c, t)
                return (y[:, 0], c, t + 1), y[:, 0]

            _, ys = jax.lax.scan(body, (x0, cache, jnp.asarray(ctx, jnp.int32)), None, length=k)
            return ys

        args = (params, cache, x0)

    leaves = jax.tree.leaves(params)
    n_params = sum(int(a.size) for a in leaves)
    p_bytes = sum(int(a.size) * a.dtype.itemsize for a in leaves)
    flops = decode_flops_per_token(model, context=ctx, width=W, layers=L) * B * k
    return GenerationWorkload(
        name=f"{model}-generate", framework="jax", fn=jax.jit(decode), args=args, tokens=B * k,
        flops=flops,
        notes=f"{L} layers, {k} tokens per call at context {ctx}; state/cache random (prefill not"
              " timed)",
        model=model, context=ctx, batch=B, layers=L, new_tokens=k,
        state_bytes_per_seq=state_bytes_per_sequence(model, context=ctx, width=W, layers=L,
                                                      dtype=p["dtype"], kv_width=kv_width),
        param_count=n_params, param_bytes=p_bytes,
    )


def generation_fields(w: GenerationWorkload, result: dict[str, Any]) -> dict[str, Any]:
    """The generation numbers of a measured workload (``result`` from ``measure_workload``)."""
    mem = result.get("memory") or {}
    arg, temp = mem.get("argument_bytes"), mem.get("temp_bytes")
    compiled = None if arg is None or temp is None else arg + temp
    median = result.get("median_s")
    return {
        "context": w.context,
        "layers": w.layers,
        "new_tokens": w.new_tokens,
        "ms_per_token": None if median is None else median / w.new_tokens * 1e3,
        "state_bytes_per_seq": w.state_bytes_per_seq,
        "compiled_bytes_per_seq": None if compiled is None else compiled / w.batch,
        "compiled_state_bytes_per_seq": (None if compiled is None
                                         else (compiled - w.param_bytes) / w.batch),
        "params": w.param_count,
        "param_bytes": w.param_bytes,
    }


def measure_generation(w: GenerationWorkload, **kwargs: Any) -> dict[str, Any]:
    """``measure_workload`` plus :func:`generation_fields` (``tokens_per_s`` = generated tokens/s,
    all sequences of the batch together)."""
    out = measure_workload(w, **kwargs)
    out.update(generation_fields(w, out))
    return out
