"""torch.nn.LSTM / GRU weights in jaxseq.nn.LSTM / GRU: same outputs and final states."""
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.interop.torch import gru_from_torch, load_torch_rnn, lstm_from_torch
from jaxseq.nn import GRU, LSTM

torch = pytest.importorskip("torch")

B, T, I, H = 3, 7, 5, 6


def _torch_rnn(kind, bidirectional=True, num_layers=2, seed=0):
    torch.manual_seed(seed)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True).eval()


def _input(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


def _torch_run(mod, x):
    with torch.no_grad():
        out, state = mod(torch.from_numpy(x))
    if isinstance(state, tuple):
        return out.numpy(), tuple(s.numpy() for s in state)
    return out.numpy(), state.numpy()


def test_module_import_does_not_import_torch():
    import subprocess

    code = ("import sys, jaxseq.interop.torch; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch(kind, bidirectional):
    tm = _torch_rnn(kind, bidirectional)
    build = lstm_from_torch if kind == "lstm" else gru_from_torch
    jm = build(tm)
    assert jm.num_layers == 2 and jm.bidirectional == bidirectional
    x = _input()
    want_out, want_state = _torch_run(tm, x)
    out, state = jm(jnp.asarray(x))
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    if kind == "gru":
        state, want_state = (state,), (want_state,)
    assert len(state) == len(want_state)
    for a, b in zip(state, want_state):  # (h, c) / h, each [num_layers * dirs, batch, hidden]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_padded_batch_matches_torch_per_sequence(kind):
    tm = _torch_rnn(kind, bidirectional=True, seed=1)
    jm = (LSTM if kind == "lstm" else GRU)(I, H, num_layers=2, bidirectional=True,
                                           rngs=nnx.Rngs(0))
    load_torch_rnn(tm, jm)
    x = _input(1)
    lengths = np.array([7, 4, 2])
    out, state = jm(jnp.asarray(x), lengths=jnp.asarray(lengths))
    h = state[0] if kind == "lstm" else state
    for b, n in enumerate(lengths):
        want_out, want_state = _torch_run(tm, x[b:b + 1, :n])
        want_h = want_state[0] if kind == "lstm" else want_state
        np.testing.assert_allclose(out[b, :n], want_out[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h[:, b], want_h[:, 0], rtol=1e-5, atol=1e-5)
        if kind == "lstm":
            np.testing.assert_allclose(state[1][:, b], want_state[1][:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_numpy_state_dict(kind):
    tm = _torch_rnn(kind, bidirectional=True, seed=2)
    sd = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    jm = (lstm_from_torch if kind == "lstm" else gru_from_torch)(sd)
    assert jm.bidirectional and jm.num_layers == 2 and jm.in_features == I
    x = _input(2)
    np.testing.assert_allclose(jm(jnp.asarray(x))[0], _torch_run(tm, x)[0], rtol=1e-5, atol=1e-5)


def test_no_bias_and_bf16_target():
    torch.manual_seed(3)
    tm = torch.nn.GRU(I, H, bias=False, batch_first=True)
    jm = gru_from_torch(tm)
    x = _input(3)
    np.testing.assert_allclose(jm(jnp.asarray(x))[0], _torch_run(tm, x)[0], rtol=1e-5, atol=1e-5)
    jb = GRU(I, H, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    load_torch_rnn(tm, jb)
    assert jb.layers[0][0].w_ih[...].dtype == jnp.bfloat16


def test_errors():
    tm = _torch_rnn("lstm", bidirectional=True)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    with pytest.raises(ValueError, match="GRU"):
        load_torch_rnn(sd, GRU(I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="bidirectional"):
        load_torch_rnn(sd, LSTM(I, H, num_layers=2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(24, 5\)"):
        load_torch_rnn(sd, LSTM(I + 1, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)))
    partial = dict(sd)
    del partial["weight_hh_l1_reverse"]
    with pytest.raises(ValueError, match="missing 'weight_hh_l1_reverse'"):
        lstm_from_torch(partial)
    with pytest.raises(ValueError, match="unexpected state_dict keys"):
        lstm_from_torch({**sd, "foo": np.zeros(1)})
    with pytest.raises(TypeError, match="module_or_state_dict"):
        load_torch_rnn(torch.nn.Linear(2, 2), LSTM(I, H, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="proj_size"):
        lstm_from_torch(torch.nn.LSTM(I, H, proj_size=2))
