"""`jaxseq longrange`: the task adapter, the matched-size models, input checks, and the smoke preset end to end."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.studies import longrange
from jaxseq.bench.sweep import load_records
from jaxseq.cli import main
from jaxseq.models.classifier import MODEL_SPECS, build_model, matched_width, parameter_count


def test_task_data_adapter():
    data = longrange.TaskData("copy", 16, 2, num_symbols=4)
    assert data.vocab_size == 6 and data.kind == "classification"
    b = data.train_batch(seed=0, step=3, batch_size=4, seq_len=16)
    assert set(b) == {"inputs", "targets", "weights"}
    assert b["inputs"].dtype == np.int32 and b["weights"].dtype == np.float32
    assert b["weights"].sum() == 4 * 2  # the answer positions only
    again = data.train_batch(seed=0, step=3, batch_size=4, seq_len=16)
    assert all(np.array_equal(b[k], again[k]) for k in b)  # pure function of (seed, step)
    ev = next(iter(data.eval_batches(batch_size=4, seq_len=16, max_batches=1)))
    test = next(iter(data.test_batches(seed=0, batch_size=4, examples=4)))
    assert not np.array_equal(ev["inputs"], b["inputs"]) and "mask" in test
    with pytest.raises(ValueError, match="seq_len"):
        data.train_batch(seed=0, step=0, batch_size=2, seq_len=32)
    add = longrange.TaskData("adding", 8, 2)
    assert add.kind == "regression" and add.vocab_size == 1
    assert add.train_batch(seed=0, step=0, batch_size=2, seq_len=8)["inputs"].shape == (2, 8, 2)


def test_models_are_causal_and_size_matched():
    assert set(MODEL_SPECS) == {"lstm", "gru", "mingru", "minlstm", "transformer-sin", "transformer-rope"}
    widths = {m: matched_width(m, 5000, multiple=4, hi=128, num_layers=1, vocab_size=6, out_features=6)
              for m in ("lstm", "mingru", "transformer-rope")}
    for m, (d, n) in widths.items():
        assert abs(n - 5000) / 5000 < 0.25, (m, d, n)
        assert parameter_count(m, d_model=d, num_layers=1, vocab_size=6, out_features=6) == n
    x = jnp.asarray(np.random.default_rng(0).integers(0, 6, (2, 12)), jnp.int32)
    for m in ("lstm", "transformer-rope"):
        model = build_model(m, d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0))
        y = model(x)
        assert y.shape == (2, 12, 6)
        y2 = model(x.at[:, 7:].set(0))  # changing the future leaves the past alone
        np.testing.assert_allclose(np.asarray(y[:, :7]), np.asarray(y2[:, :7]), atol=1e-5)
    reg = build_model("mingru", d_model=8, num_layers=1, input_dim=2, out_features=1, rngs=nnx.Rngs(0))
    batch = longrange.TaskData("adding", 8, 2).train_batch(seed=0, step=0, batch_size=3, seq_len=8)
    loss, w = longrange.regression_loss(reg, {k: jnp.asarray(v) for k, v in batch.items()}, train=True)
    assert float(w) == 3.0 and np.isfinite(float(loss))
    plain = build_model("lstm", d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0))
    biased = build_model("lstm", d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0),
                         lstm_forget_bias=1.0)
    diff = np.asarray(biased.body.layers[0][0].b[...] - plain.body.layers[0][0].b[...])
    np.testing.assert_allclose(diff, np.r_[np.zeros(8), np.ones(8), np.zeros(16)], atol=1e-6)  # i, f, g, o
    with pytest.raises(ValueError, match="exactly one"):
        build_model("lstm", d_model=8, num_layers=1, out_features=2, rngs=nnx.Rngs(0))


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    for argv, msg in ((["--models", "lstmm"], "--models"), (["--tasks", "copyy"], "--tasks"),
                      (["--lengths", "3"], "too short"), (["--steps", "0"], "--steps")):
        assert main(["longrange", "--out", str(tmp_path), *argv]) == 2
        assert msg in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        longrange.write_report(tmp_path / "nothing")


@pytest.mark.slow
def test_smoke_preset_end_to_end_and_resume(tmp_path):
    out, wd = tmp_path / "out", tmp_path / "wd"
    argv = ["longrange", "--preset", "smoke", "--out", str(out), "--workdir", str(wd), "--no-progress"]
    assert main(argv) == 0
    recs = load_records(out / "results.jsonl")
    p = longrange.PRESETS["smoke"]
    ran = [r for r in recs if r["status"] in ("ok", "diverged")]
    # The sweep at the shortest length for every model, then one run (or a recorded skip) per longer length.
    assert {(r["model"], r["lr"]) for r in ran if r["length"] == 16} == {(m, lr) for m in p.models for lr in p.lrs}
    assert {(r["model"], r["length"]) for r in recs} == {(m, T) for m in p.models for T in p.lengths}
    for r in recs:
        if r["status"] == "ok":
            assert 0.0 <= r["token_accuracy"] <= 1.0 and r["train_wall_s"] > 0 and r["train_cpu_s"] > 0
            assert r["params"] > 0 and (wd.exists())
        assert r["status"] in ("ok", "diverged", "skipped"), r
    # Through the engine: TensorBoard logs kept, checkpoints deleted after the record.
    assert list(wd.rglob("events.out.tfevents*")) and not list(wd.rglob("checkpoints/*"))
    report = (out / "REPORT.md").read_text()
    assert "Longest length solved" in report and "T=32" in report and "lstm" in report
    assert (out / "accuracy_vs_length.png").stat().st_size > 0
    assert json.loads((out / "plan.json").read_text())["preset"]["steps"] == p.steps
    # Resume: nothing is trained again.
    assert longrange.run_longrange(p, out, workdir=wd, progress=False, preset_name="smoke") == []
    assert main(["longrange", "--out", str(out), "--report-only"]) == 0
