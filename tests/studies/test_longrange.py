"""`jaxseq longrange`: the task adapter, the matched-size models, the accuracy counted during evaluation,
the plateau rule, the length search (rise, bisection to a factor 2, seeds at the frontier) and the
findings with the training faked, budget cuts and resumption, the first protocol's report, and the
smoke preset end to end."""
import argparse
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.studies import longrange
from jaxseq.bench.sweep import load_records, machine_fingerprint, machine_id
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


def test_chrono_initialisation_spreads_the_lstm_time_scales_up_to_t_max():
    model = build_model("lstm", d_model=64, num_layers=2, vocab_size=6, out_features=6, rngs=nnx.Rngs(0),
                        lstm_chrono=500)
    plain = build_model("lstm", d_model=64, num_layers=2, vocab_size=6, out_features=6, rngs=nnx.Rngs(0))
    for layer, ref in zip(model.body.layers, plain.body.layers):
        b, b0 = np.asarray(layer[0].b[...]), np.asarray(ref[0].b[...])
        i, f = b[:64], b[64:128]
        np.testing.assert_allclose(i, -f, atol=1e-6)  # the input gate opens as little as the forget gate keeps
        u = np.exp(f)  # forget bias log(u): memory of about u steps, u ~ U[1, T_max - 1]
        assert u.min() >= 1.0 - 1e-5 and u.max() <= 499.0 + 1e-3
        assert u.max() > 250 and u.min() < 50  # spread over the range, not a constant
        np.testing.assert_array_equal(b[128:], b0[128:])  # cell input and output gates untouched
    assert not np.array_equal(np.asarray(model.body.layers[0][0].b[64:128]),
                              np.asarray(model.body.layers[1][0].b[64:128]))
    for bad in (2, 3.5, True):
        with pytest.raises(ValueError, match="lstm_chrono"):
            build_model("lstm", d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0),
                        lstm_chrono=bad)
    with pytest.raises(ValueError, match="not both"):
        build_model("lstm", d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0),
                    lstm_chrono=10, lstm_forget_bias=1.0)
    with pytest.raises(ValueError, match="kind 'lstm'"):
        build_model("gru", d_model=8, num_layers=1, vocab_size=6, out_features=6, rngs=nnx.Rngs(0), lstm_chrono=10)
    # The study passes each cell's length, and the cell's identity says chrono (old keys unchanged).
    p = dataclasses.replace(longrange.PRESETS["smoke"], lstm_chrono=True)
    data = longrange.TaskData("copy", 32, 2)
    assert longrange.model_kwargs("lstm", data, p)["lstm_chrono"] == 32
    assert "lstm_chrono" not in longrange.model_kwargs("gru", data, p)
    assert '"lstm_chrono":true' in longrange.run_key(p, "copy", "lstm", 32, 0.01)
    assert "lstm_chrono" not in longrange.run_key(longrange.PRESETS["smoke"], "copy", "lstm", 32, 0.01)


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    for argv, msg in ((["--models", "lstmm"], "--models"), (["--tasks", "copyy"], "--tasks"),
                      (["--lengths", "3"], "too short"), (["--steps", "0"], "--max-steps"),
                      (["--seeds", "0"], "--seeds"), (["--patience", "0"], "--patience")):
        assert main(["longrange", "--out", str(tmp_path), *argv]) == 2
        assert msg in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        longrange.write_report(tmp_path / "nothing")


def test_eval_loss_counts_accuracy_like_the_task_metric():
    """The accuracy behind "solved" (a host callback in the eval loss) equals `task.accuracy`."""
    for name, opts, kw in (("copy", {"num_symbols": 4}, {"vocab_size": 6, "out_features": 6}),
                           ("adding", {}, {"input_dim": 2, "out_features": 1})):
        data = longrange.TaskData(name, 12, 2, **opts)
        model = build_model("lstm", d_model=8, num_layers=1, rngs=nnx.Rngs(0), **kw)
        got = []
        loss_fn = longrange.make_loss_fn(data, lambda h, n: got.append((float(h), float(n))))
        batch = data.train_batch(seed=3, step=0, batch_size=16, seq_len=12)
        graphdef, params = nnx.split(model)

        @jax.jit
        def ev(p, b):
            return loss_fn(nnx.merge(graphdef, p), b, train=False)

        loss, w = ev(params, {k: jnp.asarray(v) for k, v in batch.items()})
        jax.effects_barrier()
        out = np.asarray(model(jnp.asarray(batch["inputs"])))
        raw = data.task(3).batch(0, 16)
        want = data.task(3).accuracy(out, raw)["token_accuracy"]
        assert len(got) == 1 and got[0][1] == float(w) == raw["mask"].sum()
        assert got[0][0] / got[0][1] == pytest.approx(want, abs=1e-6)
        if name == "adding":  # the loss is the squared error at the last step
            ref = ((out[:, -1, 0] - raw["targets"][:, -1]) ** 2).sum()
            assert float(loss) == pytest.approx(ref, rel=1e-5)
        # Training steps report nothing.
        loss_fn(model, {k: jnp.asarray(v) for k, v in batch.items()}, train=True)
        jax.effects_barrier()
        assert len(got) == 1


def test_solved_needs_consecutive_checks():
    h = [(10, 1.0, 0.5), (20, 0.1, 0.995), (30, 0.2, 0.9), (40, 0.1, 0.99), (50, 0.1, 1.0), (60, 0.1, 1.0)]
    assert longrange.solved_at(h, 1) == 1 and longrange.solved_at(h, 2) == 3 and longrange.solved_at(h, 3) == 3
    assert longrange.solved_at(h[:4], 2) is None and longrange.solved_at([], 1) is None


def test_plateau_rule():
    flat = [(k, 2.0, 0.1) for k in range(10, 110, 10)]
    assert longrange.plateaued(flat, patience=50, min_delta=0.01)
    assert not longrange.plateaued(flat[:5], patience=50, min_delta=0.01)  # window not yet covered
    falling = [(k, 2.0 - 0.01 * k, 0.1) for k in range(10, 110, 10)]
    assert not longrange.plateaued(falling, patience=50, min_delta=0.01)
    # The loss flat but the accuracy rising: still learning.
    rising = [(k, 2.0, 0.1 + 0.005 * k) for k in range(10, 110, 10)]
    assert not longrange.plateaued(rising, patience=50, min_delta=0.01)
    # An improvement smaller than min_delta (relative) does not count.
    slow = [(k, 2.0 - 0.0001 * k, 0.1) for k in range(10, 110, 10)]
    assert longrange.plateaued(slow, patience=50, min_delta=0.01)
    assert not longrange.plateaued([], patience=50, min_delta=0.01)
    # No verdict before `start` (a long-lag task can sit at chance for a while, then learn).
    assert not longrange.plateaued(flat, patience=50, min_delta=0.01, start=110)
    assert longrange.plateaued(flat, patience=50, min_delta=0.01, start=100)



def test_a_plateau_stop_stays_a_plateau_after_the_final_off_grid_evaluation():
    # The curve of a real cell (selective copy, LSTM, T=64, Intel 2-core, 2026-12-01): the plateau rule
    # stopped it after the evaluation at step 550; the engine's last evaluation at step 551 moves the
    # window and shows a noise-sized gain, which must not turn the plateau into "cap".
    h = [[50, 2.0933, 0.1445], [100, 2.1122, 0.1309], [150, 2.1024, 0.1016], [200, 2.0874, 0.1016],
         [250, 2.0862, 0.1113], [300, 2.0848, 0.1406], [350, 2.0883, 0.1309], [400, 2.0853, 0.1289],
         [450, 2.0844, 0.1270], [500, 2.0839, 0.1289], [550, 2.0935, 0.1484]]
    preset = dataclasses.replace(longrange.PRESETS["default"], patience=500)  # the window that run had
    assert longrange.plateaued(h, preset.patience, preset.min_delta)
    final = h + [[551, 2.0925, 0.1660]]
    assert not longrange.plateaued(final, preset.patience, preset.min_delta)
    assert longrange.cell_outcome(final, "plateau", preset) == "plateau"
    assert longrange.cell_outcome(final, None, preset) == "cap"  # the step cap ended it
    assert longrange.cell_outcome(final, "budget", preset) == "budget"
    solved = final + [[600, 0.01, 1.0], [650, 0.01, 1.0]]
    assert longrange.cell_outcome(solved, "solved", preset) == "solved"
    assert longrange.cell_outcome(h, None, preset) == "plateau"  # the rule holds at the cap

# ---------------------------------------------------------------------------------------- faked training
def _fake_cells(truth, calls, *, override=None):
    """train_one faked: `truth[(task, model)]` = longest length solved (plateau above it).

    `override(task, model, length, lr, seed_index)` may return another outcome ("cap", "budget", ...).
    """
    def train_one(preset, task, model, length, lr, workdir, *, seed_index=0, **kw):
        calls.append((task, model, length, lr, seed_index))
        o = override(task, model, length, lr, seed_index) if override else None
        o = o or ("solved" if length <= truth[(task, model)] else "plateau")
        status = {"diverged": "diverged", "budget": "budget"}.get(o, "ok")
        acc = 1.0 if o == "solved" else 0.3
        return {"protocol": longrange.PROTOCOL, "task": task, "model": model, "length": length, "lr": lr,
                "seed": preset.seed + seed_index, "seed_index": seed_index, "status": status, "outcome": o,
                "steps": 100, "steps_to_solve": 50 + seed_index if o == "solved" else None,
                "val_accuracy": acc, "val_loss": 0.1 if o == "solved" else 1.0, "token_accuracy": acc,
                "d_model": 16, "params": 1000, "layers": preset.layers, "chance": 0.1,
                "train_wall_s": 0.5, "train_cpu_s": 0.5, "history": [[100, 1.0, acc]]}
    return train_one


def _grid_preset(**kw):
    base = dict(tasks=("copy",), models=("lstm", "transformer-rope"), lengths=(8, 32, 128, 512),
                lrs=(1e-2, 3e-2), max_steps=100, batch_size=8, target_params=6000, seeds=3,
                difficulty=(("copy", 2), ("selective_copy", 2), ("mqar", 2), ("adding", 2)))
    base.update(kw)
    return longrange.Preset(**base)


@pytest.fixture
def no_plots(monkeypatch):
    monkeypatch.setattr(longrange.report, "_plots", lambda *a, **k: [])


def test_search_rises_bisects_to_factor_two_and_runs_seeds(monkeypatch, tmp_path, no_plots):
    calls: list = []
    truth = {("copy", "lstm"): 40, ("copy", "transformer-rope"): 10 ** 6}
    # The larger learning rate diverges for the LSTM: the sweep must pick 1e-2 and keep it.
    override = lambda t, m, T, lr, k: "diverged" if (m == "lstm" and lr == 3e-2) else None  # noqa: E731
    monkeypatch.setattr(longrange.run, "train_one", _fake_cells(truth, calls, override=override))
    preset = _grid_preset()
    out = tmp_path / "out"
    written = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    lstm = [(T, lr, k) for t, m, T, lr, k in calls if m == "lstm"]
    # Sweep at 8, rise 8 -> 32 -> 128 (fails), bisect at 64 (fails): 32 <= F < 64; seeds at 32 and 64.
    assert lstm[:2] == [(8, 1e-2, 0), (8, 3e-2, 0)]
    assert [T for T, _, k in lstm[2:] if k == 0] == [32, 128, 64]
    assert all(lr == 1e-2 for _, lr, _ in lstm[2:])
    assert sorted((T, k) for T, _, k in lstm if k > 0) == [(32, 1), (32, 2), (64, 1), (64, 2)]
    # The Transformer solves everything: no bisection, seeds at the top of the grid.
    tr = [(T, k) for t, m, T, lr, k in calls if m == "transformer-rope"]
    assert [T for T, k in tr if k == 0] == [8, 8, 32, 128, 512] and sorted(k for T, k in tr if T == 512) == [0, 1, 2]
    assert len(written) == len(calls) == len(set(calls))
    s = longrange.frontier_of(preset, "copy", "lstm", written)
    assert (s.lo, s.hi, s.done) == (32, 64, True)
    # The shortest cells run first, across models: no T=128 cell before every T=32 cell; every search
    # cell (seed 0) before any extra seed.
    order = [T for _, _, T, _, k in calls if k == 0]
    assert order.index(128) > max(i for i, T in enumerate(order) if T == 32)
    ks = [k for *_, k in calls]
    assert ks == sorted(ks, key=lambda k: k > 0)
    report = (out / "REPORT.md").read_text()
    assert "32 ≤ F < 64" in report and "F ≥ 512" in report
    assert "lstm vs attention: shorter than attention's: fails at 64 where transformer-rope solves 512" in report
    assert "shorter: copy/lstm; longer: none; not shorter: none; undetermined: none" in report
    # Resume: nothing runs again.
    n = len(calls)
    assert longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False) == []
    assert len(calls) == n


@pytest.mark.parametrize("lengths", [(8, 32, 128, 512), (8, 64, 512), (10, 20, 40, 80, 160, 320, 640)])
@pytest.mark.parametrize("cap_from", [None, 100, 300])
def test_frontier_is_within_a_factor_of_two_for_any_true_frontier(monkeypatch, tmp_path, lengths, cap_from):
    """Any true frontier is bracketed within 2x; lengths >= `cap_from` end at the step cap (no failure)."""
    preset = _grid_preset(models=("lstm",), lengths=lengths, lrs=(1e-2,), seeds=1)
    for true in (lengths[0], 9, 11, 13, 33, 47, 63, 64, 65, 100, 127, 129, 200, 333, 511):
        if true < lengths[0]:
            continue
        calls: list = []
        capped = (lambda t, m, T, lr, k: "cap" if T >= cap_from else None) if cap_from else None  # noqa: E731
        fake = _fake_cells({("copy", "lstm"): true}, calls, override=capped)
        done = {}

        def lookup(key):
            return done.get(key)

        while True:
            s = longrange.search(preset, "copy", "lstm", lookup)
            if not s.pending:
                break
            T, lr, k = s.pending[0]
            done[longrange.run_key(preset, "copy", "lstm", T, lr, k)] = fake(preset, "copy", "lstm", T, lr, None,
                                                                          seed_index=k)
        assert len(calls) == len(set(calls))  # no cell twice
        if cap_from is not None and cap_from <= lengths[0]:
            assert s.stopped == f"cap at {lengths[0]}" and s.lo is None
            continue
        assert s.lo is not None and s.lo <= true, (lengths, true, s)
        if s.hi is not None:  # a real failure, bracketed within 2x
            assert true < s.hi <= 2 * s.lo and (cap_from is None or s.hi < cap_from), (lengths, true, s)
        elif s.stopped.startswith("cap at "):  # the cap bounds it: never a failure, probed to 2x
            c = int(s.stopped.split()[-1])
            assert cap_from is not None and c >= cap_from and c <= 2 * s.lo and s.lo < cap_from, (true, s)
        else:
            assert true >= lengths[-1] and s.lo == lengths[-1] and "solved every length" in s.stopped



def test_a_capped_bisection_midpoint_ends_the_search():
    # Seen on 2026-12-01 (copy, minGRU, grid 64 -> 256): solved at 64, plateau at 256, the midpoint 128
    # ended by the step cap. The search probed 128 again forever; it must stop and say why.
    preset = _grid_preset(models=("mingru",), lengths=(64, 256), lrs=(1e-2,), seeds=2)
    calls: list = []
    fake = _fake_cells({("copy", "mingru"): 64}, calls,
                       override=lambda t, m, T, lr, k: "cap" if T == 128 else None)
    done = {}
    for _ in range(20):
        s = longrange.search(preset, "copy", "mingru", done.get)
        if not s.pending:
            break
        T, lr, k = s.pending[0]
        done[longrange.run_key(preset, "copy", "mingru", T, lr, k)] = fake(preset, "copy", "mingru", T, lr, None,
                                                                          seed_index=k)
    assert not s.pending, "the search did not end"
    assert (s.lo, s.hi, s.tried) == (64, 256, [64, 256, 128])
    assert s.stopped == "bisection ended by the step cap at 128"
    assert "64 ≤ F < 256 — bisection ended by the step cap at 128" in longrange.frontier_text(s)
    assert sorted((T, k) for _, _, T, _, k in calls if k > 0) == [(64, 1), (256, 1)]

def test_inconclusive_cells_are_never_failures(monkeypatch, tmp_path, no_plots):
    """A cap or a divergence stops the search with its reason: never a frontier, never a failure."""
    calls: list = []
    models = ("lstm", "gru", "mingru", "minlstm", "transformer-rope")
    truth = {("copy", m): 10 ** 6 for m in models}
    truth[("copy", "minlstm")] = 40

    def override(t, m, T, lr, k):
        return {("gru", 128): "cap", ("mingru", 32): "diverged"}.get((m, T))

    monkeypatch.setattr(longrange.run, "train_one", _fake_cells(truth, calls, override=override))
    preset = _grid_preset(models=models, lrs=(1e-2,))
    out = tmp_path / "out"
    recs = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    # The cap at 128 is no failure: the search probes 64 below it (solved) and stops, a lower bound.
    gru = longrange.frontier_of(preset, "copy", "gru", recs)
    assert (gru.lo, gru.hi, gru.stopped) == (64, None, "cap at 128")
    assert [T for t, m, T, lr, k in calls if m == "gru" and k == 0] == [8, 32, 128, 64]
    assert sorted(k for t, m, T, lr, k in calls if m == "gru" and T == 64) == [0, 1, 2]  # seeds at the bound
    assert not [c for c in calls if c[1] == "gru" and c[2] == 128 and c[4] > 0]
    mg = longrange.frontier_of(preset, "copy", "mingru", recs)
    assert (mg.lo, mg.hi, mg.stopped) == (8, None, "diverged at 32")
    report = (out / "REPORT.md").read_text()
    assert "gru vs attention: undetermined" in report and "mingru vs attention: undetermined" in report
    assert "lstm vs attention: not shorter" in report and "minlstm vs attention: shorter" in report
    assert "shorter: copy/minlstm; longer: none; not shorter: copy/lstm; undetermined: copy/gru, copy/mingru" in report
    assert "Only plateaued cells count as failures" in report and "cap 1" in report
    # Final outcomes are not run again.
    n = len(calls)
    assert longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False) == [] and len(calls) == n


def test_budget_cut_cell_is_pending_and_resumed(monkeypatch, tmp_path, no_plots):
    """A cell cut by the time budget stops the study, is no result, and is trained again by a rerun."""
    calls: list = []
    truth = {("copy", "lstm"): 40, ("copy", "transformer-rope"): 10 ** 6}
    cut = lambda t, m, T, lr, k: "budget" if (m, T) == ("lstm", 32) else None  # noqa: E731
    monkeypatch.setattr(longrange.run, "train_one", _fake_cells(truth, calls, override=cut))
    preset = _grid_preset(lrs=(1e-2,))
    out = tmp_path / "out"
    recs = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    # Cells run in length order: both T=8 cells, then lstm T=32 (cut): nothing starts after it.
    assert [(m, T) for t, m, T, lr, k in calls] == [("lstm", 8), ("transformer-rope", 8), ("lstm", 32)]
    s = longrange.frontier_of(preset, "copy", "lstm", recs)
    assert (s.lo, s.hi, s.pending[:1], s.budget_cut) == (8, None, [(32, 1e-2, 0)], True)
    left = [r for r in recs if r["outcome"] == "budget"]
    assert {(r["model"], r["length"]) for r in left} == {("lstm", 32), ("transformer-rope", 32)}
    report = (out / "REPORT.md").read_text()
    assert "cut by the time budget (next: T=32" in report and "The time budget cut this study" in report
    calls.clear()
    monkeypatch.setattr(longrange.run, "train_one", _fake_cells(truth, calls))
    recs = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    assert ("copy", "lstm", 32, 1e-2, 0) in calls and ("copy", "lstm", 8, 1e-2, 0) not in calls
    s = longrange.frontier_of(preset, "copy", "lstm", load_records(out / "results.jsonl"))
    assert (s.lo, s.hi, s.done) == (32, 64, True)


def test_time_budget_records_cells_it_leaves_out(monkeypatch, tmp_path, no_plots, capsys):
    calls: list = []
    monkeypatch.setattr(longrange.run, "train_one", _fake_cells({("copy", "lstm"): 100, ("copy", "transformer-rope"): 100},
                                                            calls))
    preset = _grid_preset(budget_s=1e-9)
    out = tmp_path / "out"
    recs = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    assert calls == [] and recs and all(r["outcome"] == "budget" and "time budget" in r["reason"] for r in recs)
    report = (out / "REPORT.md").read_text()
    assert "The time budget cut this study" in report
    longrange.run_longrange(dataclasses.replace(preset, budget_s=None), out, workdir=tmp_path / "wd",
                            progress=False)
    assert calls  # the cells left out run on the next call


def test_task_grids_and_model_caps():
    preset = _grid_preset(task_lengths=(("adding", (16, 64, 256)),), max_len=(("transformer-rope", 32),))
    assert preset.grid_of("lstm", "copy") == [8, 32, 128, 512] and preset.grid_of("lstm", "adding") == [16, 64, 256]
    assert preset.grid_of("transformer-rope", "copy") == [8, 32]
    s = longrange.search(preset, "adding", "lstm", lambda key: None)
    assert s.pending == [(16, 1e-2, 0), (16, 3e-2, 0)]
    with pytest.raises(ValueError, match="task_lengths"):
        longrange.run_longrange(_grid_preset(task_lengths=(("copy", (0,)),)), "/nonexistent/x", progress=False)


def test_state_and_task_bits():
    assert longrange.state_floats("lstm", 32, 2) == 128 and longrange.state_floats("gru", 32, 2) == 64
    assert longrange.state_floats("transformer-rope", 32, 2) is None
    assert longrange.task_bits("copy", 4, {"num_symbols": 8}) == 12.0
    assert longrange.task_bits("mqar", 2, {"vocab_size": 34}) == pytest.approx(math.log2(16 * 15))
    assert longrange.task_bits("adding", 2, {"tolerance": 0.04}) == pytest.approx(math.log2(25))


def test_first_protocol_records_are_refused(tmp_path):
    """Records of the superseded first protocol (no `protocol` field) are no longer read."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"key": "k", "task": "copy", "model": "lstm", "length": 64,
                                                   "status": "ok", "steps": 200}) + "\n")
    with pytest.raises(ValueError, match="first protocol"):
        longrange.write_report(out, references=[])


@pytest.mark.slow
def test_smoke_preset_end_to_end_and_resume(tmp_path):
    out, wd = tmp_path / "out", tmp_path / "wd"
    argv = ["longrange", "--preset", "smoke", "--out", str(out), "--workdir", str(wd), "--no-progress"]
    assert main(argv) == 0
    recs = load_records(out / "results.jsonl")
    assert {r["machine_id"] for r in recs} == {machine_id(machine_fingerprint())}
    p = longrange.PRESETS["smoke"]
    # The sweep at the shortest length for every model.
    assert {(r["model"], r["lr"]) for r in recs if r["length"] == 8 and r["seed"] == p.seed} == \
        {(m, lr) for m in p.models for lr in p.lrs}
    for r in recs:
        assert r["protocol"] == longrange.PROTOCOL and r["outcome"] in longrange.FINAL, r
        h = r["history"]
        assert [s for s, _, _ in h] == list(range(p.eval_every, h[-1][0] + 1, p.eval_every)) or h[-1][0] == r["steps"]
        assert 1 <= r["steps"] <= p.max_steps and r["params"] > 0 and r["train_cpu_s"] > 0
        if r["outcome"] == "solved":  # stopped one step after the confirming check
            last_check = r["steps_to_solve"] + (p.confirm - 1) * p.eval_every
            assert r["val_accuracy"] >= longrange.SOLVED and last_check <= r["steps"] <= last_check + 1
            assert r["sequences_to_solve"] == r["steps_to_solve"] * p.batch_size
        elif r["outcome"] == "plateau":
            assert longrange.plateaued(h, p.patience, p.min_delta) and r["steps"] < p.max_steps + 1
        elif r["outcome"] == "cap":
            assert r["steps"] == p.max_steps and max(a for _, _, a in h) < longrange.SOLVED
        assert 0.0 <= r["token_accuracy"] <= 1.0
    # The search is consistent with what ran: every search finished.
    for m in p.models:
        s = longrange.frontier_of(p, "copy", m, recs)
        assert s.done and (s.hi is None or s.lo is None or s.hi <= 2 * s.lo)
    # Through the engine: TensorBoard logs kept, checkpoints deleted after the record.
    assert list(wd.rglob("events.out.tfevents*")) and not list(wd.rglob("checkpoints/*"))
    report = (out / "REPORT.md").read_text()
    assert "## Frontiers" in report and "| copy | lstm |" in report and "## Findings" in report
    assert json.loads((out / "plan.json").read_text())["preset"]["max_steps"] == p.max_steps
    # Resume: nothing is trained again.
    assert longrange.run_longrange(p, out, workdir=wd, progress=False, preset_name="smoke") == []
    assert main(["longrange", "--out", str(out), "--report-only"]) == 0


def test_cell_cut_by_the_deadline_resumes_from_its_checkpoint(tmp_path):
    """Through the real engine: a cell past its deadline stops at once with outcome "budget" and keeps
    its checkpoint and validation curve; trained again, it resumes there and ends with a final outcome."""
    p = dataclasses.replace(longrange.PRESETS["smoke"], max_steps=30, eval_every=10, patience=20, ckpt_every=10)
    wd = tmp_path / "cell"
    cut = longrange.train_one(p, "copy", "lstm", 8, 1e-2, wd, deadline=0.0)
    assert cut["outcome"] == "budget" and cut["status"] == "budget" and cut["steps"] == 1
    assert cut["history"] and cut["history"][-1][0] == 1 and list((wd / "checkpoints").iterdir())
    again = longrange.train_one(p, "copy", "lstm", 8, 1e-2, wd)
    assert again["resumed_from"] == 1 and again["outcome"] in longrange.FINAL
    steps = [h[0] for h in again["history"]]
    assert steps[0] == 1 and steps[1:] == list(range(10, steps[-1] + 1, 10))[: len(steps) - 1]
    assert not list((wd / "checkpoints").glob("*"))  # deleted once final


def test_task_batch_sets_each_tasks_batch_key_workdir_and_cli(monkeypatch, tmp_path):
    import jaxseq.train.loop as loop

    preset = _grid_preset(tasks=("copy", "mqar"), task_batch=(("mqar", 32),))
    assert preset.batch_of("mqar") == 32 and preset.batch_of("copy") == 8
    assert json.loads(longrange.run_key(preset, "mqar", "lstm", 8, 1e-2))["batch_size"] == 32
    assert json.loads(longrange.run_key(preset, "copy", "lstm", 8, 1e-2))["batch_size"] == 8
    assert "_b32_" in longrange.cell_workdir(tmp_path, "mqar", "lstm", 8, 1e-2, 0, preset).name
    seen = []

    def fake_train(config, **kw):  # what the engine is given; stop there
        seen.append(config)
        raise loop.NonFiniteLossError("stop")

    monkeypatch.setattr(loop, "train", fake_train)
    rec = longrange.train_one(preset, "mqar", "lstm", 8, 1e-2, tmp_path / "cell")
    assert seen[0].batch_size == 32 and seen[0].eval_batches == 4 and rec["batch_size"] == 32
    for bad in ((("mqar", 0),), (("nope", 8),)):
        with pytest.raises(ValueError, match="task_batch"):
            longrange.run_longrange(_grid_preset(task_batch=bad), "/nonexistent/x", progress=False)
    assert longrange.PRESETS["full"].batch_of("mqar") == 64
    # --batch-size applies to every task, the per-task ones included
    parser = argparse.ArgumentParser()
    longrange.add_parser(parser.add_subparsers())
    args = parser.parse_args(["longrange", "--preset", "full", "--batch-size", "8"])
    assert longrange.preset_from_args(args).batch_of("mqar") == 8


def test_a_models_cap_joins_the_grid_it_cuts():
    preset = _grid_preset(lengths=(8, 128), max_len=(("transformer-rope", 32),))
    assert preset.grid_of("transformer-rope", "copy") == [8, 32] and preset.grid_of("lstm", "copy") == [8, 128]
    assert _grid_preset(max_len=(("transformer-rope", 32),)).grid_of("transformer-rope") == [8, 32]
    assert _grid_preset(lengths=(8, 16), max_len=(("lstm", 32),)).grid_of("lstm") == [8, 16]  # not past the grid
    assert longrange.PRESETS["full"].grid_of("transformer-rope", "adding") == [64, 256]


def test_task_models_run_a_task_for_some_models_only(monkeypatch, tmp_path, no_plots):
    calls: list = []
    truth = {(t, m): 32 for t in ("copy", "adding") for m in ("lstm", "gru", "transformer-rope")}
    monkeypatch.setattr(longrange.run, "train_one", _fake_cells(truth, calls))
    preset = _grid_preset(tasks=("copy", "adding"), models=("lstm", "gru", "transformer-rope"),
                          task_models=(("adding", ("transformer-rope", "lstm")),), lengths=(8, 32))
    assert preset.models_of("adding") == ("lstm", "transformer-rope")  # the preset's model order
    assert preset.models_of("copy") == preset.models
    assert preset.pairs() == [("copy", "lstm"), ("copy", "gru"), ("copy", "transformer-rope"),
                              ("adding", "lstm"), ("adding", "transformer-rope")]
    out = tmp_path / "out"
    longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False)
    assert {(t, m) for t, m, *_ in calls} == set(preset.pairs())
    report = (out / "REPORT.md").read_text()
    assert "| copy | gru |" in report and "| adding | gru |" not in report and "| adding | lstm |" in report
    assert "per task: adding: lstm, transformer-rope (this preset's scope" in report
    assert "- Scope:" not in report  # said only when the preset has one
    findings = report.split("## Findings")[1]
    assert "adding/lstm" in findings and "adding/gru" not in findings and "copy/gru" in findings
    for bad in ((("adding", ("nope",)),), (("adding", ()),), (("nope", ("lstm",)),)):
        with pytest.raises(ValueError, match="task_models"):
            longrange.run_longrange(_grid_preset(task_models=bad), "/nonexistent/x", progress=False)
    # --models runs the models given on every task
    parser = argparse.ArgumentParser()
    longrange.add_parser(parser.add_subparsers())
    args = parser.parse_args(["longrange", "--preset", "default", "--models", "gru", "lstm"])
    p = longrange.preset_from_args(args)
    assert p.models_of("adding") == p.models_of("copy") == ("gru", "lstm")


def test_default_preset_holds_the_issues_targets_and_full_keeps_the_grid():
    d, f = longrange.PRESETS["default"], longrange.PRESETS["full"]
    assert d.budget_s is None and f.budget_s is None  # fixed steps; a wall-clock cap is opt-in
    assert set(d.models_of("copy")) == set(longrange.ALL_MODELS) and d.grid_of("lstm", "copy")[0] == 64
    assert "lstm" in d.models_of("adding") and max(d.grid_of("lstm", "adding")) >= 500
    assert d.seeds == 3 and len(d.lrs) >= 2
    assert set(f.tasks) == set(longrange.ALL_TASKS) and f.pairs() == [(t, m) for t in f.tasks for m in f.models]
    assert "45 minutes" in d.scope and not f.scope
    # The default's cells are the full grid's cells (same keys): one protocol, two scopes.
    for t, m in d.pairs():
        assert longrange.run_key(d, t, m, 64, 3e-3) == longrange.run_key(f, t, m, 64, 3e-3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_script_dry_run_on_cpu_reports_what_its_cap_cut(tmp_path):
    """scripts/gpu_longrange.sh end to end as the device would run it, on the CPU (smoke preset, a 1 s
    cap) and without the packages the GPU image lacks: the cap's cuts are said and packed."""
    import subprocess
    import sys

    from gpu_image import GPU_IMAGE_BLOCKER  # tests/gpu_image.py

    root = Path(__file__).resolve().parents[2]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GPU_IMAGE_BLOCKER)
    env = {**os.environ, "PRESET": "smoke", "LR_OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "LIMIT": "1", "PACK": str(tmp_path / "pack"), "WORKDIR": str(tmp_path / "wd"),
           "PYTHONPATH": f"{site}{os.pathsep}{root}"}
    p = subprocess.run(["bash", str(root / "scripts" / "gpu_longrange.sh")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "WALL-CLOCK CAP: the budget cut" in p.stdout and "== frontiers" in p.stdout
    recs = load_records(tmp_path / "pack" / "results.jsonl")
    assert recs and all(r["outcome"] == "budget" for r in recs)
    assert (tmp_path / "pack" / "REPORT.md").is_file() and (tmp_path / "pack" / "plan.json").is_file()


def test_run_preset_runs_the_named_preset_and_reports(monkeypatch, tmp_path, no_plots):
    # The study contract's entry point: the smoke preset by name, into `out`, resumed on a rerun.
    calls: list = []
    monkeypatch.setattr(longrange.run, "train_one",
                        _fake_cells({("copy", "lstm"): 8, ("copy", "transformer-rope"): 32}, calls))
    out = tmp_path / "lr"
    report = longrange.run_preset("smoke", out)
    assert report == out / "REPORT.md" and "copy" in report.read_text() and calls
    n = len(calls)
    assert longrange.run_preset("smoke", out) == report and len(calls) == n  # nothing to rerun
    assert json.loads((out / "plan.json").read_text())["preset_name"] == "smoke"
    with pytest.raises(ValueError, match="preset must be one of"):
        longrange.run_preset("nope", out)
