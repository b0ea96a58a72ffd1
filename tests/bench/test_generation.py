"""Generation workloads (`mode="generate"`): point checks, the analytic memory, a tiny run of each model."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.bench import generation as G
from jaxseq.bench.workloads import MODES, build_workload, normalize_point

TINY = {"seq_len": 8, "batch": 2, "width": 16, "mode": "generate", "new_tokens": 3}


def test_normalize_fills_defaults_and_dispatches():
    assert "generate" in MODES
    p = normalize_point({"model": "transformer", "seq_len": 64, "batch": 1, "width": 128,
                         "mode": "generate"})
    assert p["layers"] == G.DEFAULT_LAYERS and p["new_tokens"] == G.DEFAULT_NEW_TOKENS
    assert p["dtype"] == "float32"


@pytest.mark.parametrize("bad, match", [
    ({"model": "attn-xla"}, "point model must be one of"),
    ({"model": "lstm", "heads": 2}, "heads applies to the 'transformer' only"),
    ({"model": "transformer", "width": 12, "heads": 4}, "even head_dim"),
    ({"model": "lstm", "new_tokens": 0}, "new_tokens must be a positive int"),
    ({"model": "lstm", "layers": True}, "layers must be a positive int"),
    ({"model": "lstm", "devices": 2}, "devices does not apply"),
    ({"model": "lstm", "dtype": "int8"}, "dtype must be one of"),
])
def test_normalize_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        normalize_point({**TINY, **bad})


def test_transformer_is_a_generation_model_only():
    with pytest.raises(ValueError, match="point model must be one of"):
        normalize_point({**TINY, "model": "transformer", "mode": "train"})


def test_state_bytes_formula():
    kw = dict(context=1000, width=256, layers=2)
    assert G.state_bytes_per_sequence("lstm", **kw) == 2 * 2 * 256 * 4
    assert G.state_bytes_per_sequence("mingru", **kw) == 2 * 256 * 4
    assert G.state_bytes_per_sequence("transformer", **kw) == 2 * 2 * 1000 * 256 * 4
    assert G.state_bytes_per_sequence("transformer", dtype="bfloat16", **kw) == 2 * 2 * 1000 * 256 * 2
    assert G.state_bytes_per_sequence("transformer", kv_width=64, **kw) == 2 * 2 * 1000 * 64 * 4
    with pytest.raises(ValueError, match="model must be one of"):
        G.state_bytes_per_sequence("gru", **kw)
    assert G.decode_flops_per_token("transformer", **kw) == 2 * (24 * 256**2 + 4 * 1000 * 256)


@pytest.mark.parametrize("model", G.GENERATE_MODELS)
def test_tiny_workload_runs_and_reports(model):
    w = build_workload({**TINY, "model": model})
    assert isinstance(w, G.GenerationWorkload) and w.tokens == 2 * 3
    ys = jax.block_until_ready(w.fn(*w.args))
    assert ys.shape == (3, 2, 16) and np.all(np.isfinite(np.asarray(ys)))
    res = G.measure_generation(w, warmup=0, repeats=1)
    assert res["ms_per_token"] == pytest.approx(res["median_s"] / 3 * 1e3)
    assert res["tokens_per_s"] == pytest.approx(6 / res["median_s"])
    want = G.state_bytes_per_sequence(model, context=8, width=16, layers=2)
    assert res["state_bytes_per_seq"] == want
    assert res["compiled_bytes_per_seq"] > 0 and res["params"] > 0
    assert res["compiled_state_bytes_per_seq"] == pytest.approx(
        res["compiled_bytes_per_seq"] - res["param_bytes"] / 2)
    assert res["context"] == 8 and res["new_tokens"] == 3 and res["layers"] == 2
    json.dumps(res, default=str)  # fits the sweep's JSONL


def test_transformer_cache_grows_with_context_in_compiled_memory():
    small = G.measure_generation(build_workload({**TINY, "model": "transformer"}), warmup=0,
                                 repeats=1)
    big = G.measure_generation(build_workload({**TINY, "model": "transformer", "seq_len": 200}),
                               warmup=0, repeats=1)
    grown = big["compiled_state_bytes_per_seq"] - small["compiled_state_bytes_per_seq"]
    # At least the cache itself (2 layers x K and V x 192 more positions x 16 floats).
    assert grown >= 2 * 2 * 192 * 16 * 4


def test_lstm_workload_equals_stepping_the_module():
    from flax import nnx

    from jaxseq.nn import LSTM

    w = build_workload({**TINY, "model": "lstm", "batch": 1})
    params, state, x = w.args
    module = LSTM(16, 16, num_layers=2, rngs=nnx.Rngs(0))
    nnx.update(module, params)
    ys = []
    for _ in range(3):
        x, state = module.step(x, state)
        ys.append(x)
    np.testing.assert_allclose(w.fn(*w.args), jnp.stack(ys), rtol=1e-5, atol=1e-6)


def test_run_point_adds_generation_fields():
    from jaxseq.studies.scaling.sweep import run_point

    res = run_point({**TINY, "model": "mingru", "warmup": 0, "repeats": 1})
    assert {"ms_per_token", "state_bytes_per_seq", "compiled_bytes_per_seq", "memory",
            "median_s", "tokens_per_s"} <= set(res)
