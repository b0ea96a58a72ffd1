"""The resumable loop in-process: the generic data/loss interface, resume, checkpoints, logs, profiles."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _train_helpers import tiny_config, tiny_model_fn
from jaxseq.data import charlm
from jaxseq.train import metrics as metrics_lib
from jaxseq.train.checkpoint import Checkpointer
from jaxseq.train.loop import load_model, train
from jaxseq.train.profiling import trace_files


@pytest.fixture(scope="module")
def data():
    return charlm.load_tinyshakespeare()


class SumData:
    """A regression task through the generic interface: predict the mean of the digits (custom loss)."""

    vocab_size = 10

    def _batch(self, rng, batch_size, seq_len):
        x = rng.integers(0, 10, size=(batch_size, seq_len)).astype(np.int32)
        return {"inputs": x, "targets": x.mean(axis=1).astype(np.float32) / 10.0,
                "weights": np.ones((batch_size,), np.float32)}

    def train_batch(self, *, seed, step, batch_size, seq_len):
        return self._batch(np.random.default_rng([seed, step]), batch_size, seq_len)

    def eval_batches(self, *, batch_size, seq_len, max_batches):
        rng = np.random.default_rng(12345)
        for _ in range(max_batches or 2):
            yield self._batch(rng, batch_size, seq_len)


def mse_loss(module, batch, *, train):
    pred = module(batch["inputs"])[:, :, 0].mean(axis=1)
    err = (pred - batch["targets"]) ** 2 * batch["weights"]
    return err.sum(), batch["weights"].sum()


def test_custom_data_and_loss_interface(tmp_path):
    cfg = tiny_config(tmp_path / "run", task="custom", steps=30, eval_every=15, ckpt_every=15, lr=3e-2)
    res = train(cfg, model_fn=tiny_model_fn, data=SumData(), loss_fn=mse_loss)
    assert res.step == 30 and sorted(res.evals) == [15, 30]
    assert np.mean([res.losses[k] for k in range(26, 31)]) < np.mean([res.losses[k] for k in range(1, 6)])
    # The trained module is returned ready to evaluate, and reloads identically from the workdir.
    batch = next(SumData().eval_batches(batch_size=8, seq_len=16, max_batches=1))
    out = np.asarray(res.model(jnp.asarray(batch["inputs"])))
    model, _, vocab, step = load_model(cfg.workdir, model_fn=tiny_model_fn)
    assert step == 30 and vocab is None
    np.testing.assert_array_equal(np.asarray(model(jnp.asarray(batch["inputs"]))), out)
    # Custom loss: eval/loss logged, no bits/char.
    recs = metrics_lib.read_jsonl(tmp_path / "run" / "logs" / "metrics.jsonl")
    assert any("eval/loss" in r for r in recs) and not any("eval/bits_per_char" in r for r in recs)


def test_custom_task_needs_data(tmp_path):
    with pytest.raises(ValueError, match="custom"):
        train(tiny_config(tmp_path / "run", task="custom"), model_fn=tiny_model_fn)


def test_params_change_compile_once_resume_and_round_trip(tmp_path, data):
    full = train(tiny_config(tmp_path / "full", steps=6, ckpt_every=3), model_fn=tiny_model_fn, data=data)
    assert full.trace_counts["train"] == 1  # no recompilation after the first step
    # Parameters moved from their initial values.
    init = train(tiny_config(tmp_path / "zero", steps=1, lr=1e-12, warmup_steps=0), model_fn=tiny_model_fn,
                 data=data)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(jax.tree.leaves(init.state.params),
                                                      jax.tree.leaves(full.state.params)))
    # Stop at 3, rerun the same workdir to 6: bitwise the same parameters and optimiser state.
    part = tmp_path / "part"
    first = train(tiny_config(part, steps=3, ckpt_every=3), model_fn=tiny_model_fn, data=data)
    assert first.step == 3
    cfg = tiny_config(part, steps=6, ckpt_every=3)
    second = train(cfg, model_fn=tiny_model_fn, data=data)
    assert second.resumed_from == 3 and second.step == 6 and sorted(second.losses) == [4, 5, 6]
    for a, b in zip(jax.tree.leaves(second.state), jax.tree.leaves(full.state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal([second.losses[k] for k in (4, 5, 6)], [full.losses[k] for k in (4, 5, 6)])
    # Save/restore round trip of the full state through the Checkpointer.
    ck = Checkpointer(tmp_path / "ck", async_save=False)
    ck.save(6, full.state, {"step": 6})
    restored, meta = ck.restore(6, full.state, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    ck.close()
    assert meta == {"step": 6}
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(full.state)):
        np.testing.assert_array_equal(np.asarray(a), b)
        assert np.asarray(a).dtype == b.dtype


def test_tmp_checkpoints_cleaned(tmp_path, data):
    cfg = tiny_config(tmp_path / "run", steps=2, ckpt_every=1)
    train(cfg, model_fn=tiny_model_fn, data=data)
    ckdir = tmp_path / "run" / "checkpoints"
    leftover = ckdir / "3.orbax-checkpoint-tmp-1234567"
    (leftover / "state").mkdir(parents=True)
    train(tiny_config(tmp_path / "run", steps=3, ckpt_every=1), model_fn=tiny_model_fn, data=data)
    assert not leftover.exists()
    assert not list(ckdir.glob("*orbax-checkpoint-tmp*"))
    assert sorted(p.name for p in ckdir.iterdir() if p.name.isdigit())[-1] == "3"


def test_tensorboard_scalars_and_profile_trace(tmp_path, data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    cfg = tiny_config(tmp_path / "run", steps=6, eval_every=3, log_every=2, profile_steps="3:5", peak_tflops=1.0)
    train(cfg, model_fn=tiny_model_fn, data=data)
    logdir = tmp_path / "run" / "logs"
    # Events of the run in logs/<run name> (the workdir's name by default), so TensorBoard names the run.
    assert not list(logdir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(logdir / "run"))
    acc.Reload()
    # tensorboard.summary.Writer writes v2 summaries: tensors tagged with the "scalars" plugin (what the
    # TensorBoard UI plots as scalars).
    tags = set(acc.Tags()["tensors"])
    want = {"train/loss", "eval/loss", "eval/bits_per_char", "train/learning_rate", "train/grad_norm",
            "perf/step_time", "perf/tokens_per_sec", "perf/tflops_per_sec", "perf/mfu"}
    assert want <= tags, want - tags
    assert all(acc.SummaryMetadata(t).plugin_data.plugin_name == "scalars" for t in want)
    assert [e.step for e in acc.Tensors("eval/loss")] == [3, 6]
    values = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("train/loss")]
    assert len(values) == 3 and all(np.isfinite(values))
    # jax.profiler trace of steps 3..4 (step 1 = compilation excluded), under the same run name.
    [xplane] = trace_files(logdir)
    assert xplane.relative_to(logdir).parts[:3] == ("run", "plugins", "profile")
    cfg_saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg_saved["profile_steps"] == "3:5" and cfg_saved["run_name"] == "run"


def test_run_name_is_kept_on_resume(tmp_path, data):
    train(tiny_config(tmp_path / "first", steps=2, ckpt_every=2), model_fn=tiny_model_fn, data=data)
    (tmp_path / "first").rename(tmp_path / "moved")
    res = train(tiny_config(tmp_path / "moved", steps=4, ckpt_every=2), model_fn=tiny_model_fn, data=data)
    assert res.resumed_from == 2
    logs = tmp_path / "moved" / "logs"
    assert sorted(p.name for p in logs.iterdir() if p.is_dir()) == ["first"]
    assert len(list((logs / "first").glob("events.out.tfevents.*"))) == 2  # one file per process start
    # An explicit name; a path is not a name.
    train(tiny_config(tmp_path / "named", steps=1, run_name="lstm-a"), model_fn=tiny_model_fn, data=data)
    assert list((tmp_path / "named" / "logs" / "lstm-a").glob("events.out.tfevents.*"))
    for bad in ("a/b", ".", ""):
        with pytest.raises(ValueError, match="--run-name"):
            tiny_config(tmp_path / "x", run_name=bad)


def test_parallel_modes_through_the_loop_and_hooks(tmp_path, data):
    runs = {}
    for mode in ("jit", "pmap", "sharded"):
        evals = []
        res = train(tiny_config(tmp_path / mode, steps=8, parallel=mode, eval_every=2),
                    model_fn=tiny_model_fn, data=data,
                    should_stop=lambda k: k >= 3, on_eval=lambda k, v: evals.append((k, v)))
        assert res.stopped_early and res.step == 3 and [k for k, _ in evals] == [2, 3]
        runs[mode] = [res.losses[k] for k in (1, 2, 3)]
    for mode in ("pmap", "sharded"):
        np.testing.assert_allclose(runs[mode], runs["jit"], rtol=2e-5, err_msg=mode)


@pytest.mark.parametrize("kind, options", [
    ("mingru", {"dtype": "bfloat16"}),  # bf16 compute, float32 master parameters
    ("minlstm", {"remat": "full", "grad_accum": 2}),
])
def test_language_model_kinds_through_the_loop(tmp_path, data, kind, options, capsys):
    cfg = tiny_config(tmp_path / kind, model=kind, steps=3, eval_every=3, progress=True, **options)
    res = train(cfg, data=data)  # the default model: jaxseq.models.lm.LanguageModel
    assert res.step == 3 and np.isfinite(res.evals[3])
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(res.state.params))
    assert res.trace_counts["train"] == 1
    err = capsys.readouterr().err
    assert f"{kind}/jit" in err and "tok/s" in err and "loss=" in err  # the tqdm bar


def test_default_optimizer_is_adamw_warmup_cosine_clip(tmp_path):
    import optax

    from jaxseq.train.optim import optimizer_from_config

    cfg = tiny_config(tmp_path, steps=100, warmup_steps=10, lr=1e-3)
    tx, schedule = optimizer_from_config(cfg)
    lrs = [float(schedule(s)) for s in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(lrs, [0.0, 5e-4, 1e-3, 1e-4 + 0.9e-3 * 0.5, 1e-4], rtol=1e-5, atol=1e-9)
    # Global-norm clipping at 1.0: a huge gradient gives a bounded first Adam step; weight decay on matrices.
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    state = tx.init(params)
    upd, _ = tx.update({"w": jnp.full((2, 2), 1e6), "b": jnp.zeros((2,))}, state, params)
    assert np.all(np.isfinite(np.asarray(upd["w"]))) and float(jnp.abs(upd["w"]).max()) < 1e-3
    assert isinstance(tx, optax.GradientTransformation)
    # Warm-up defaults to 5% of steps.
    assert tiny_config(tmp_path, steps=200, warmup_steps=None).warmup == 10
