"""Per-position sequence model: tokens or float features -> per-position logits or a regression value.

`SequenceModel(kind, *, d_model, num_layers, vocab_size=None | input_dim=None, out_features, ...)`:

* input: int tokens ``[batch, time]`` (give ``vocab_size``; an embedding table) or float features
  ``[batch, time, input_dim]`` (give ``input_dim``; a linear projection);
* body: a causal stack — ``jaxseq.nn.{LSTM, GRU, MinGRU, MinLSTM}`` (width ``d_model``) or a
  decoder-only ``jaxseq.nn.TransformerDecoder`` (pre-norm, causal attention, final LayerNorm) with
  ``positional="sinusoidal"`` or ``"rope"`` (rotary);
* head: a linear map to ``out_features`` per position (``[batch, time, out_features]``).

``lstm_forget_bias`` (LSTM only, default 0: PyTorch's initialisation) adds a constant to the forget
gate's bias at initialisation. ``lstm_chrono`` (LSTM only, an int ``T_max`` or None) instead sets the
chrono initialisation of Tallec & Ollivier (2018): forget-gate bias ``log(u)``, ``u ~ U[1, T_max - 1]``
per unit, and input-gate bias ``-log(u)``, so the units' memory time scales spread up to ``T_max``.

Every output at step t depends only on inputs up to t, so the long-range tasks of
`jaxseq.data.synthetic` cannot be solved by looking ahead. The model kinds used by `jaxseq longrange`
are named in ``MODEL_SPECS``: ``lstm``, ``gru``, ``mingru``, ``minlstm``, ``transformer-sin``,
``transformer-rope``. `matched_width` picks, per kind, the width whose parameter count is closest to a
target (matched-size comparisons).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq import nn as jnn
from jaxseq.nn.signature import init_signature

RNN_KINDS = {"lstm": jnn.LSTM, "gru": jnn.GRU, "mingru": jnn.MinGRU, "minlstm": jnn.MinLSTM}
POSITIONALS = ("sinusoidal", "rope")
# Registry names -> (body kind, positional encoding or None).
MODEL_SPECS: dict[str, tuple[str, str | None]] = {
    "lstm": ("lstm", None),
    "gru": ("gru", None),
    "mingru": ("mingru", None),
    "minlstm": ("minlstm", None),
    "transformer-sin": ("transformer", "sinusoidal"),
    "transformer-rope": ("transformer", "rope"),
}


@init_signature
class SequenceModel(nnx.Module):
    def __init__(
        self,
        kind: str,
        *,
        d_model: int,
        num_layers: int,
        out_features: int,
        vocab_size: int | None = None,
        input_dim: int | None = None,
        positional: str = "sinusoidal",
        num_heads: int = 2,
        mlp_ratio: int = 4,
        attention_backend: str = "auto",
        min_rnn_mode: str = "sequential",
        lstm_forget_bias: float = 0.0,
        lstm_chrono: int | None = None,
        dropout: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ) -> None:
        name = "SequenceModel"
        if kind not in (*RNN_KINDS, "transformer"):
            raise ValueError(f"{name}: kind must be one of {', '.join((*RNN_KINDS, 'transformer'))}, got {kind!r}")
        if (vocab_size is None) == (input_dim is None):
            raise ValueError(f"{name}: give exactly one of vocab_size (token input) or input_dim (float input)")
        for arg, value in (("d_model", d_model), ("num_layers", num_layers), ("out_features", out_features),
                           ("vocab_size", vocab_size), ("input_dim", input_dim)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        self.kind = kind
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.out_features = int(out_features)
        self.vocab_size = None if vocab_size is None else int(vocab_size)
        self.input_dim = None if input_dim is None else int(input_dim)
        if self.vocab_size is not None:
            self.embed = jnn.Embedding(self.vocab_size, self.d_model, dtype=dtype, rngs=rngs)
        else:
            self.embed = nnx.Linear(self.input_dim, self.d_model, dtype=dtype, rngs=rngs)
        if kind in RNN_KINDS:
            kw: dict[str, Any] = {"mode": min_rnn_mode} if kind in ("mingru", "minlstm") else {}
            self.body = RNN_KINDS[kind](self.d_model, self.d_model, num_layers=self.num_layers,
                                        dropout=dropout, dtype=dtype, rngs=rngs, **kw)
            self.positional = None
            if (lstm_forget_bias or lstm_chrono is not None) and kind != "lstm":
                raise ValueError(f"{name}: lstm_forget_bias and lstm_chrono are for kind 'lstm', got kind {kind!r}")
            if lstm_chrono is not None:
                if lstm_forget_bias:
                    raise ValueError(f"{name}: give lstm_chrono or lstm_forget_bias, not both")
                if isinstance(lstm_chrono, bool) or not isinstance(lstm_chrono, (int, np.integer)) \
                        or lstm_chrono < 3:
                    raise ValueError(f"{name}: lstm_chrono must be an int T_max >= 3, got {lstm_chrono!r}")
                # Chrono initialisation (Tallec & Ollivier 2018, section 4): a unit with forget bias
                # log(u) keeps its memory for about u steps; spreading u over [1, T_max - 1] gives
                # every time scale up to the task's length a unit, and the input gate opens as little.
                h = self.d_model
                for layer in self.body.layers:
                    for op in layer:
                        u = jax.random.uniform(rngs.params(), (h,), minval=1.0, maxval=float(lstm_chrono) - 1.0)
                        b = op.b[...]
                        op.b[...] = b.at[h:2 * h].set(jnp.log(u).astype(b.dtype)).at[:h].set(
                            -jnp.log(u).astype(b.dtype))
            if lstm_forget_bias:
                # Gate order i, f, g, o: add the constant to the forget gate's bias (Gers et al. 2000;
                # Jozefowicz et al. 2015), on top of PyTorch's uniform initialisation.
                h = self.d_model
                for layer in self.body.layers:
                    for op in layer:
                        op.b[...] = op.b[...].at[h:2 * h].add(float(lstm_forget_bias))
        else:
            if positional not in POSITIONALS:
                raise ValueError(f"{name}: positional must be one of {POSITIONALS}, got {positional!r}")
            if self.d_model % num_heads:
                raise ValueError(f"{name}: d_model={self.d_model} is not divisible by num_heads={num_heads}")
            if positional == "rope" and (self.d_model // num_heads) % 2:
                raise ValueError(f"{name}: rotary positions need an even head_dim, got "
                                 f"d_model/num_heads = {self.d_model // num_heads}")
            self.positional = positional
            self.body = jnn.TransformerDecoder(
                self.d_model, num_heads, self.num_layers, cross_attention=False, positional=positional,
                mlp_ratio=mlp_ratio, dropout=dropout, backend=attention_backend, dtype=dtype, rngs=rngs,
            )
        self.head = nnx.Linear(self.d_model, self.out_features, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """inputs [batch, time] int or [batch, time, input_dim] float -> [batch, time, out_features]."""
        inputs = jnp.asarray(inputs)
        if self.vocab_size is not None:
            if inputs.ndim != 2 or not jnp.issubdtype(inputs.dtype, jnp.integer):
                raise ValueError(f"SequenceModel: token inputs must be int [batch, time], got shape "
                                 f"{tuple(inputs.shape)} dtype {inputs.dtype}")
        elif inputs.ndim != 3 or inputs.shape[-1] != self.input_dim:
            raise ValueError(f"SequenceModel: float inputs must be [batch, time, {self.input_dim}], got shape "
                             f"{tuple(inputs.shape)}")
        with jax.named_scope("embedding"):  # a name in the profiler's op metadata
            x = self.embed(inputs)
        if self.kind in RNN_KINDS:
            x, _ = self.body(x)
        else:
            x = self.body(x)
        return self.head(x)


def build_model(
    name: str, *, d_model: int, num_layers: int, out_features: int, vocab_size: int | None = None,
    input_dim: int | None = None, rngs: nnx.Rngs, **kwargs: Any,
) -> SequenceModel:
    """A `SequenceModel` by registry name (``MODEL_SPECS``)."""
    if name not in MODEL_SPECS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_SPECS)}")
    kind, positional = MODEL_SPECS[name]
    if positional is not None:
        kwargs["positional"] = positional
    return SequenceModel(kind, d_model=d_model, num_layers=num_layers, out_features=out_features,
                         vocab_size=vocab_size, input_dim=input_dim, rngs=rngs, **kwargs)


def count_parameters(model: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def parameter_count(name: str, **kwargs: Any) -> int:
    """Parameters of `build_model(name, **kwargs)` without allocating them (shape evaluation only)."""
    abstract = nnx.eval_shape(lambda: build_model(name, rngs=nnx.Rngs(0), **kwargs))
    return count_parameters(abstract)


def matched_width(
    name: str, target_params: int, *, multiple: int = 4, lo: int = 4, hi: int = 1024, **kwargs: Any
) -> tuple[int, int]:
    """(d_model, parameter count) of the width, a multiple of `multiple` in [lo, hi], whose parameter
    count is closest to `target_params`; `kwargs` are the other `build_model` arguments."""
    if target_params < 1:
        raise ValueError(f"target_params must be >= 1, got {target_params}")
    lo = max(multiple, lo - lo % multiple)
    widths = list(range(lo, hi + 1, multiple))
    if not widths:
        raise ValueError(f"no width that is a multiple of {multiple} in [{lo}, {hi}]")

    def count(d: int) -> int:
        return parameter_count(name, d_model=d, **kwargs)

    # Parameter count grows with width: bisect for the first width at or above the target.
    a, b = 0, len(widths) - 1
    while a < b:
        m = (a + b) // 2
        if count(widths[m]) < target_params:
            a = m + 1
        else:
            b = m
    candidates = {widths[i] for i in (a - 1, a) if 0 <= i < len(widths)}
    scored = sorted((abs(count(d) - target_params), d) for d in candidates)
    d = scored[0][1]
    return d, count(d)
