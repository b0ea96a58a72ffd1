"""`jaxseq.nn.LSTM(schedule=...)`: the fused-direction and wavefront schedules equal the layer-by-layer one."""
from __future__ import annotations

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from flax import nnx

from jaxseq.nn import LSTM
from jaxseq.nn.recurrent import SCHEDULES, resolve_schedule

B, T, I, H = 3, 6, 5, 4


from fast_compile import FAST_COMPILE  # noqa: E402  (tests/fast_compile.py)


def _outputs_and_grads(modules, loss, x, **call_kw):
    """(outputs, (module grads, x grad)) of each module, all in one compiled program."""
    graphdefs, states = zip(*(nnx.split(m) for m in modules))

    def run(states, xx):
        res = []
        for gd, st in zip(graphdefs, states):
            m = nnx.merge(gd, st)
            res.append((m(xx, **call_kw), nnx.grad(loss, argnums=(0, 1))(m, xx)))
        return res

    return jax.jit(run, compiler_options=FAST_COMPILE)(states, x)


def _pair(schedule, **kw):
    ref = LSTM(I, H, schedule="layers", rngs=nnx.Rngs(0), **kw)
    other = LSTM(I, H, schedule=schedule, rngs=nnx.Rngs(0), **kw)
    return ref, other


@pytest.mark.parametrize("schedule,kw", [
    ("wavefront", dict(num_layers=3)),
    ("wavefront", dict(num_layers=3, residual=True)),
    ("wavefront", dict(num_layers=2, dilations=(1, 2))),
    ("fused", dict(num_layers=2, bidirectional=True)),
    ("wavefront", dict(num_layers=2, bidirectional=True, residual=True)),
])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_schedule_matches_layers(schedule, kw, with_lengths):
    ref, other = _pair(schedule, **kw)
    x = jax.random.normal(jax.random.key(1), (B, T, I))
    lengths = jnp.array([6, 2, 0]) if with_lengths else None
    n = ref.num_layers * ref.num_directions
    k1, k2 = jax.random.split(jax.random.key(2))
    state = (0.3 * jax.random.normal(k1, (n, B, H)), 0.3 * jax.random.normal(k2, (n, B, H)))

    def loss(m, xx):
        y, (h, c) = m(xx, lengths=lengths, initial_state=state)
        return jnp.sum(y ** 2) + jnp.sum(h * c)

    ((y0, (h0, c0)), g0), ((y1, (h1, c1)), g1) = _outputs_and_grads(
        (ref, other), loss, x, lengths=lengths, initial_state=state)
    for a, b in ((y0, y1), (h0, h1), (c0, c1)):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert len(jax.tree.leaves(g0)) == len(jax.tree.leaves(g1)) > 1
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a, b, atol=5e-5)


def test_wavefront_dropout_is_active_and_deterministic_off():
    m = LSTM(I, H, num_layers=3, dropout=0.5, schedule="wavefront", rngs=nnx.Rngs(0))
    ref = LSTM(I, H, num_layers=3, schedule="layers", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (B, T, I))
    assert not np.allclose(m(x)[0], ref(x)[0])  # masks applied in training mode
    m.eval()
    np.testing.assert_allclose(m(x)[0], ref(x)[0], atol=2e-5)


def test_schedule_option_errors_and_auto():
    with pytest.raises(ValueError, match="schedule"):
        LSTM(I, H, schedule="diagonal", rngs=nnx.Rngs(0))
    assert resolve_schedule("auto", "cpu") in SCHEDULES[1:]
    assert resolve_schedule("auto", "gpu") in SCHEDULES[1:]
    assert resolve_schedule("wavefront", "cpu") == "wavefront"


@pytest.mark.parametrize("schedule", ["fused", "wavefront"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gru_fused_directions_match_layers(schedule, with_lengths):
    from jaxseq.nn import GRU

    ref = GRU(I, H, num_layers=2, bidirectional=True, schedule="layers", rngs=nnx.Rngs(0))
    other = GRU(I, H, num_layers=2, bidirectional=True, schedule=schedule, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (B, T, I))
    lengths = jnp.array([6, 2, 0]) if with_lengths else None
    state = 0.3 * jax.random.normal(jax.random.key(3), (4, B, H))

    def loss(m, xx):
        y, h = m(xx, lengths=lengths, initial_state=state)
        return jnp.sum(y ** 2) + jnp.sum(h ** 3)

    ((y0, h0), g0), ((y1, h1), g1) = _outputs_and_grads(
        (ref, other), loss, x, lengths=lengths, initial_state=state)
    np.testing.assert_allclose(y0, y1, atol=2e-5)
    np.testing.assert_allclose(h0, h1, atol=2e-5)
    assert len(jax.tree.leaves(g0)) == len(jax.tree.leaves(g1)) > 1
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a, b, atol=5e-5)
