"""Shared by the training-engine tests: a tiny self-contained NNX language model and small configs.

The engine must not depend on jaxseq.nn, so its tests use this model: embedding -> causal mixing with the
previous position -> tanh MLP (with dropout) -> logits. Small enough to compile in about a second.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax.numpy as jnp
from flax import nnx

REPO = Path(__file__).resolve().parents[2]


class TinyLM(nnx.Module):
    def __init__(self, vocab_size: int, *, d: int = 16, dropout: float = 0.0, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(vocab_size, d, rngs=rngs)
        self.mix = nnx.Linear(2 * d, d, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(d, vocab_size, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        prev = jnp.pad(x, ((0, 0), (1, 0), (0, 0)))[:, :-1]  # causal: position t sees t and t-1
        h = jnp.tanh(self.mix(jnp.concatenate([x, prev], axis=-1)))
        return self.out(self.drop(h))

    def flops_per_token(self, seq_len: int) -> float:
        d, v = self.mix.out_features, self.out.out_features
        return 2.0 * (2 * d * d + d * v)


def tiny_model_fn(config, vocab_size, rngs):
    return TinyLM(vocab_size, d=config.d_model, dropout=config.dropout, rngs=rngs)


def tiny_config(workdir, **kw):
    from jaxseq.train.config import TrainConfig

    base = dict(
        workdir=str(workdir), model="lstm", d_model=16, layers=1, steps=6, batch_size=8, seq_len=16,
        lr=1e-2, warmup_steps=2, eval_every=0, ckpt_every=0, log_every=1, eval_batches=2, progress=False,
    )
    base.update(kw)
    return TrainConfig(**base).validate()
