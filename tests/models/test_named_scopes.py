"""The models put their embedding under `jax.named_scope("embedding")` (what profiler traces group by)."""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxseq.bench.traces import part_of


def _parts(module, x) -> set[str]:
    graphdef, state = nnx.split(module)

    def f(state, x):
        return nnx.merge(graphdef, state)(x)

    text = jax.jit(f).lower(state, x).as_text(debug_info=True)
    return {part_of(n) for n in re.findall(r'loc\("([^"]*)"', text)}


def test_language_model_names_its_embedding():
    from jaxseq.models.lm import LanguageModel

    m = LanguageModel(11, kind="gru", d_model=8, num_layers=1, rngs=nnx.Rngs(0))
    assert "embedding" in _parts(m, jnp.zeros((2, 5), jnp.int32))


@pytest.mark.parametrize("vocab_size, x", [(11, jnp.zeros((2, 5), jnp.int32)), (None, jnp.zeros((2, 5, 3)))])
def test_sequence_model_names_its_embedding(vocab_size, x):
    from jaxseq.models.classifier import build_model

    m = build_model("lstm", d_model=8, num_layers=1, out_features=2, vocab_size=vocab_size,
                    input_dim=None if vocab_size else 3, rngs=nnx.Rngs(0))
    assert "embedding" in _parts(m, x)


def test_forecaster_names_its_embedding():
    from jaxseq.models.forecasters import GlobalForecaster

    m = GlobalForecaster(kind="mingru", horizon=4, hidden_size=8, num_layers=1, rngs=nnx.Rngs(0))
    assert "embedding" in _parts(m, jnp.zeros((2, 12)))
