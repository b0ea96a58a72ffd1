"""Token-level language model over any jaxseq sequence layer, its analytic FLOP count, and sampling.

`LanguageModel(vocab_size, *, kind, d_model, num_layers, ...)`: tokens [batch, time] int32 ->
logits [batch, time, vocab]. The body is `jaxseq.nn.{LSTM,GRU,MinGRU,MinLSTM}` (width d_model) or a
decoder-only `jaxseq.nn.TransformerDecoder` (pre-norm, sinusoidal positions, final LayerNorm); a linear
head maps d_model to the vocabulary.
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
KINDS = (*RNN_KINDS, "transformer")

def rnn_layer_flops(kind: str, d_in: int, hidden: int) -> float:
    """Forward matmul FLOPs per token of one recurrent layer: LSTM 2·(I+H)·4H, GRU 2·(I+H)·3H,
    minGRU 2·I·2H (gate and candidate), minLSTM 2·I·3H (forget, input, candidate)."""
    if kind == "lstm":
        return 2.0 * (d_in + hidden) * 4 * hidden
    if kind == "gru":
        return 2.0 * (d_in + hidden) * 3 * hidden
    if kind == "mingru":
        return 2.0 * d_in * 2 * hidden
    if kind == "minlstm":
        return 2.0 * d_in * 3 * hidden
    raise ValueError(f"kind: expected one of {', '.join(RNN_KINDS)}, got {kind!r}")


def transformer_layer_flops(d_model: int, seq_len: int, *, mlp_ratio: int = 4, causal: bool = True) -> float:
    """Forward FLOPs per token of one pre-norm block, counted as MaxText/PaLM do: projections
    (q, k, v, out: 4·2·d²), MLP (2·2·d·r·d) and attention scores + weighted values (2·2·T·d per token),
    the attention term halved for a causal mask (only the lower triangle is useful work)."""
    attention = 4.0 * seq_len * d_model
    if causal:
        attention /= 2
    return 8.0 * d_model**2 + 4.0 * mlp_ratio * d_model**2 + attention


@init_signature
class LanguageModel(nnx.Module):
    def __init__(
        self,
        vocab_size: int,
        *,
        kind: str,
        d_model: int,
        num_layers: int,
        dropout: float = 0.0,
        num_heads: int = 4,
        mlp_ratio: int = 4,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"LanguageModel: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        for arg, value in (("vocab_size", vocab_size), ("d_model", d_model), ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"LanguageModel: {arg} must be a positive int, got {value!r}")
        self.kind = kind
        self.vocab_size = int(vocab_size)
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.mlp_ratio = int(mlp_ratio)
        self.embed = jnn.Embedding(vocab_size, d_model, dtype=dtype, rngs=rngs)
        if kind in RNN_KINDS:
            self.body = RNN_KINDS[kind](
                d_model, d_model, num_layers=num_layers, dropout=dropout, dtype=dtype, rngs=rngs
            )
        else:
            # Sinusoidal positions need no table: sampling may run past the training length.
            self.body = jnn.TransformerDecoder(
                d_model, num_heads, num_layers, cross_attention=False, positional="sinusoidal",
                mlp_ratio=mlp_ratio, dropout=dropout, dtype=dtype, rngs=rngs,
            )
        # Dropout on the embeddings and on the RNN's output (the stack drops between its layers);
        # the Transformer drops inside its blocks.
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs)
        self.head = nnx.Linear(d_model, vocab_size, dtype=dtype, rngs=rngs)

    @property
    def is_recurrent(self) -> bool:
        return self.kind in RNN_KINDS

    def __call__(self, tokens: jax.Array, *, initial_state: Any = None, return_state: bool = False):
        """tokens [batch, time] int -> logits [batch, time, vocab] (float32 when dtype is float32).

        RNN kinds: `initial_state`/`return_state` carry the recurrent state across calls (step-by-step
        generation); the Transformer has no state (pass the whole prefix) and returns `None` for it.
        """
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(
                f"LanguageModel: tokens must be int [batch, time], got shape {tuple(tokens.shape)} dtype {tokens.dtype}"
            )
        with jax.named_scope("embedding"):  # a name in the profiler's op metadata
            x = self.embed(tokens)
        state = None
        if self.is_recurrent:
            x, state = self.body(self.dropout(x), initial_state=initial_state)
            x = self.dropout(x)
        else:
            if initial_state is not None:
                raise ValueError("LanguageModel: initial_state is only for recurrent kinds")
            x = self.body(x)
        logits = self.head(x)
        return (logits, state) if return_state else logits

    def flops_per_token(self, seq_len: int, *, causal: bool = True) -> float:
        """Analytic forward matmul FLOPs per token (×3 for a training step). Embedding lookups are
        gathers (0 FLOPs); the output projection is 2·d·V; `causal=False` counts the full attention
        matrix (what XLA's cost analysis reports, since masked entries are still computed)."""
        d, n = self.d_model, self.num_layers
        head = 2.0 * d * self.vocab_size
        if self.is_recurrent:
            return head + n * rnn_layer_flops(self.kind, d, d)
        return head + n * transformer_layer_flops(d, seq_len, mlp_ratio=self.mlp_ratio, causal=causal)


def generate(
    model: LanguageModel,
    prompt: np.ndarray,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    context: int = 256,
) -> np.ndarray:
    """Sample `length` tokens after `prompt` (1-D int array, non-empty); returns only the new tokens.

    RNN kinds run the prompt once and then one token at a time, carrying the recurrent state (O(1) per
    token). The Transformer has no KV cache here: each token re-runs the last `context` tokens in a
    fixed-size window (causal, so right padding does not change the position read), one compilation.
    `temperature <= 0` means greedy (argmax).
    """
    prompt = np.asarray(prompt, np.int32).reshape(-1)
    if prompt.size == 0:
        raise ValueError("generate: prompt must contain at least one token")
    if length < 0:
        raise ValueError(f"generate: length must be >= 0, got {length}")
    graphdef, params, rest = nnx.split(nnx.view(model, deterministic=True), nnx.Param, ...)

    def pick(logits, key):
        logits = logits.astype(jnp.float32)
        if temperature <= 0:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)

    key = jax.random.PRNGKey(seed)
    out: list[int] = []
    if model.is_recurrent:

        @jax.jit
        def run(params, rest, tokens, state, key):
            m = nnx.merge(graphdef, params, rest)
            logits, state = m(tokens, initial_state=state, return_state=True)
            return pick(logits[:, -1], key), state

        # The prompt in one call, then one token per call (two compilations in all).
        tok, state = run(params, rest, jnp.asarray(prompt[None]), None, jax.random.fold_in(key, 0))
        for i in range(length):
            out.append(int(tok[0]))
            if i + 1 < length:
                tok, state = run(params, rest, tok[:, None], state, jax.random.fold_in(key, i + 1))
        return np.asarray(out, np.int32)

    @jax.jit
    def window(params, rest, buf, pos, key):
        m = nnx.merge(graphdef, params, rest)
        logits = m(buf)
        return pick(jax.lax.dynamic_index_in_dim(logits[0], pos, keepdims=False), key)

    seq = list(prompt)
    for i in range(length):
        ctx = seq[-context:]
        buf = np.zeros((1, context), np.int32)
        buf[0, : len(ctx)] = ctx
        tok = int(window(params, rest, jnp.asarray(buf), len(ctx) - 1, jax.random.fold_in(key, i)))
        seq.append(tok)
        out.append(tok)
    return np.asarray(out, np.int32)
