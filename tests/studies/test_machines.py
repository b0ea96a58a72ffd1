"""Results belong to a machine: default folders per machine, resume per machine, one machine per
report with the committed references beside it, legacy (fingerprint-less) records as references.

The machine is faked by setting the harness's cached fingerprint (`jaxseq.bench.sweep._FINGERPRINT`),
which every writer and resume check reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxseq.bench import sweep as sweep_mod
from jaxseq.bench.sweep import machine_id, machine_slug, point_key, read_jsonl, record_machine_id
from jaxseq.studies import base, charlm, longrange
from jaxseq.studies.scaling import report, study as study_mod, sweep as scale
from jaxseq.cli import main

ROOT = Path(__file__).resolve().parents[2]
A = {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu_model": "Fake CPU Model A",
     "cpu_count": 3, "jax": "0.10.2", "jaxlib": "0.10.2", "platform_version": "cpu"}
B = dict(A, cpu_model="Fake CPU Model B", cpu_count=5)


def use_machine(monkeypatch, fp):
    monkeypatch.setattr(sweep_mod, "_FINGERPRINT", dict(fp))


def test_default_out_is_this_machines_folder(monkeypatch, tmp_path):
    use_machine(monkeypatch, A)
    slug = machine_slug(A)
    assert slug == "cpu-fake-model-a-3core"
    assert base.default_out() == Path("profiles", slug)
    assert scale.resolve_out(None, "cpu") == Path("profiles", slug, "scaling")
    assert scale.resolve_out(None, "gpu") == Path("profiles", slug, "scaling")
    assert scale.resolve_out(None, "smoke") == Path("profiles", slug, "scaling", "smoke")
    assert scale.resolve_out(tmp_path, "cpu") == tmp_path  # an explicit --out wins
    assert longrange.default_out() == Path("profiles", slug, "longrange")
    assert longrange.default_out("smoke") == Path("profiles", slug, "longrange", "smoke")
    assert charlm.default_out("charlm") == Path("profiles", slug, "charlm")
    from jaxseq.bench import ops_bench

    assert ops_bench.resolve_out(ops_bench.DEFAULT_OUT) == Path("profiles", slug, "scaling", "bench_ops.jsonl")
    from jaxseq.studies import forecasting

    assert forecasting.default_out() == Path("profiles", slug, "forecast")
    assert ops_bench.resolve_out(None) is None
    # --out is optional for every study command now (it used to be required for scale/charlm).
    from jaxseq.cli import build_parser

    parser = build_parser()
    for cmd in ("scale", "study", "longrange", "charlm", "lm-compare"):
        assert parser.parse_args([cmd]).out is None, cmd
    assert parser.parse_args(["bench", "ops", "--out"]).out == ops_bench.DEFAULT_OUT
    # A live slug always names its CPU model: no live machine writes into a legacy folder.
    monkeypatch.setattr(sweep_mod, "_FINGERPRINT", None)
    live = machine_slug(sweep_mod.machine_fingerprint())
    assert live not in {"cpu-2core", "gpu-nvidia-h200x1"}


def _rec(fp, ts, key="p", **kw):
    return {"key": key, "status": "ok", "timestamp": ts, "fingerprint": fp,
            "machine_id": machine_id(fp), **kw}


def test_select_machine_newest_named_and_legacy():
    legacy = {"key": "p", "status": "ok", "timestamp": "2026-11-27T09:00:00+00:00",
              "device": {"backend": "cpu", "device_kind": "cpu", "cpu_count": 2},
              "versions": {"jax": "0.10.2", "jaxlib": "0.10.2"}}
    recs = [legacy, _rec(A, "2026-12-01T10:00:00+00:00"), _rec(B, "2026-12-01T09:00:00+00:00"),
            _rec(B, "2026-12-01T08:00:00+00:00", key="q")]
    sel = base.select_machine(recs)
    assert sel.machine_id == machine_id(A) and len(sel.records) == 1
    assert set(sel.others) == {machine_id(B), record_machine_id(legacy)}
    note = sel.note()
    assert "cpu-fake-model-a-3core" in note and "2 of `cpu-fake-model-b-5core`" in note
    assert "1 of `cpu-2core`" in note and "legacy" in note
    assert base.select_machine(recs, "cpu-fake-model-b-5core").records == recs[2:]
    assert base.select_machine(recs, machine_id(B)[:6]).machine_id == machine_id(B)
    ref = base.select_machine(recs, exclude=[machine_id(A), machine_id(B)])
    assert ref.legacy and ref.slug == "cpu-2core"
    assert base.select_machine(recs[1:2], exclude=[machine_id(A)]).machine_id is None
    with pytest.raises(ValueError, match="matches none.*cpu-fake-model-a-3core"):
        base.select_machine(recs, "nope")


def _scaling_records(fp, ts, lstm_s, torch_s):
    """The CPU LSTM target's two points, at the target's settings, for machine `fp`."""
    out = []
    for model, seconds in (("lstm", lstm_s), ("torch-lstm", torch_s)):
        point = {"model": model, "seq_len": 1024, "batch": 32, "width": 256, "dtype": "float32",
                 "mode": "train", "warmup": 1, "repeats": 3}
        result = {"framework": "torch" if model.startswith("torch") else "jax",
                  "median_s": seconds, "tokens_per_s": 32 * 1024 / seconds, "load_before": [0.1]}
        out.append({"key": point_key(point), "status": "ok", "message": None, "point": point,
                    "result": result, "timestamp": ts,
                    "device": {"backend": "cpu", "device_kind": "cpu", "device_count": 1,
                               "host": "h", "cpu_count": fp.get("cpu_count") if fp else 2},
                    "versions": {"jax": "0.10.2", "jaxlib": "0.10.2"},
                    **({"fingerprint": fp, "machine_id": machine_id(fp)} if fp else {})})
    return out


def _write(path: Path, recs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_report_uses_one_machine_beside_the_references(tmp_path):
    profiles = tmp_path / "profiles"
    mine = profiles / machine_slug(B) / "scaling"
    # In my folder: an older run of machine A (LSTM 2.0x torch) and my run (LSTM 1.5x torch).
    _write(mine / "results.jsonl", _scaling_records(A, "2026-12-01T08:00:00+00:00", 0.5, 1.0)
           + _scaling_records(B, "2026-12-01T09:00:00+00:00", 0.2, 0.3))
    # The committed reference: legacy records (no fingerprint), LSTM 0.74x torch.
    _write(profiles / "cpu-2core" / "scaling" / "results.jsonl",
           _scaling_records(None, "2026-11-27T09:00:00+00:00", 0.629, 0.465))
    path = report.write_report(mine)
    text = path.read_text()
    findings = text.split("## Findings")[1]
    assert "scale sweep: 1.50x (met" in findings and "2.00x" not in findings  # B only, not A
    assert "2 of `cpu-fake-model-a-3core`" in text  # the left-out records are named
    section = text.split("## Your machine beside the references")[1].split("## Findings")[0]
    assert f"your machine: `{machine_slug(B)}`" in section and "`cpu-2core/scaling` (reference)" in section
    row = next(ln for ln in section.splitlines() if ln.startswith("| jaxseq LSTM vs torch.nn.LSTM"))
    assert "1.50x (200 vs 300 ms)" in row and "0.74x (629 vs 465 ms)" in row
    assert "legacy" in section  # the reference's machine is labelled as derived
    # --machine picks A; the references can be switched off.
    report.write_report(mine, machine=machine_id(A), references=[])
    text = path.read_text()
    assert "scale sweep: 2.00x (met" in text and "No reference folders found" in text
    # The committed folder itself reports its own (legacy) machine as "this folder".
    report.write_report(profiles / "cpu-2core" / "scaling", out=tmp_path / "r")
    assert "this folder: `cpu-2core`" in (tmp_path / "r" / "REPORT.md").read_text()
    assert main(["report", "--in", str(mine), "--references", str(tmp_path / "missing")]) == 2


def test_bench_ops_rows_of_another_machine_do_not_count(monkeypatch, tmp_path):
    ns = study_mod.bench_namespace(["--lstm-lengths", "8", "--attn-lengths", "16",
                                    "--backends", "xla"])
    from jaxseq.bench import ops_bench

    points = [p for _, _, pts in ops_bench.bench_cases(ns) for p in pts]
    path = tmp_path / "bench_ops.jsonl"
    _write(path, [{"point": p, "status": "ok", "fingerprint": A, "machine_id": machine_id(A)}
                  for p in points])
    use_machine(monkeypatch, A)
    assert study_mod.bench_done(ns, path) == (len(points), len(points))
    use_machine(monkeypatch, B)
    assert study_mod.bench_done(ns, path) == (0, len(points))


def _fake_train_one(calls):
    def train_one(preset, task, model, length, lr, workdir, **kw):
        calls.append((task, model, length, lr))
        return {"task": task, "model": model, "length": length, "lr": lr, "steps": preset.steps,
                "batch_size": preset.batch_size, "difficulty": 2, "d_model": 8, "params": 100,
                "layers": preset.layers, "chance": 0.1, "train_wall_s": 1.0, "train_cpu_s": 1.0,
                "eval_wall_s": 0.1, "token_accuracy": 1.0, "sequence_accuracy": 1.0,
                "eval_loss": 0.01, "status": "ok"}
    return train_one


def test_longrange_resumes_per_machine(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(longrange.run, "train_one", _fake_train_one(calls))
    monkeypatch.setattr(longrange.report, "_plots", lambda *a, **k: [])  # no matplotlib in a unit test
    preset = longrange.PRESETS["smoke"]
    out = tmp_path / "lr"
    use_machine(monkeypatch, A)
    first = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False,
                                    preset_name="smoke")
    n = len(calls)
    assert n > 0 and {r["machine_id"] for r in first} == {machine_id(A)}
    assert longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False) == []
    assert len(calls) == n  # A resumes
    use_machine(monkeypatch, B)
    second = longrange.run_longrange(preset, out, workdir=tmp_path / "wd", progress=False,
                                     preset_name="smoke")
    assert len(calls) == 2 * n and {r["machine_id"] for r in second} == {machine_id(B)}
    text = (out / "REPORT.md").read_text()
    assert "cpu-fake-model-b-5core" in text and f"{len(first)} of `cpu-fake-model-a-3core`" in text
    # The report of A's records on request.
    longrange.write_report(out, machine=machine_id(A))
    assert "Machine: CPU Fake CPU Model A" in (out / "REPORT.md").read_text()


def test_charlm_resumes_per_machine_and_keeps_other_records(monkeypatch, tmp_path):
    trained: list = []

    def fake_run_one(kind, *, args, data, out, runs, budget):
        trained.append(kind)
        charlm._append(out / charlm.JSONL, {"type": "eval", "model": kind, "step": 1, "cpu_s": 1.0,
                                            "wall_s": 1.0, "val_loss": 2.0, "val_bpc": 2.9})
        done = {"type": "done", "model": kind, "params": 100, "d_model": 8, "layers": 1,
                "steps_planned": 1, "steps": 1, "cpu_s": 1.0, "wall_s": 1.0, "final_val_loss": 2.0,
                "final_val_bpc": 2.9, "batch_size": args.batch_size, "seq_len": args.seq_len,
                "budget_cpu_s": budget}
        charlm._append(out / charlm.JSONL, done)
        return done

    monkeypatch.setattr(charlm, "run_one", fake_run_one)
    monkeypatch.setattr(charlm, "write_plot", lambda records, path: None)
    out = tmp_path / "charlm"
    argv = ["charlm", "--out", str(out), "--quick", "--models", "lstm", "gru"]
    use_machine(monkeypatch, A)
    assert main(argv) == 0 and trained == ["lstm", "gru"]
    # A's unfinished transformer run: machine B must leave it alone, machine A drops it on its rerun.
    charlm._append(out / charlm.JSONL, {"type": "eval", "model": "transformer", "step": 1,
                                        "cpu_s": 1.0, "wall_s": 1.0, "val_loss": 3.0, "val_bpc": 4.3})

    def partial():
        return [r for r in read_jsonl(out / charlm.JSONL) if r.get("model") == "transformer"] \
            if (out / charlm.JSONL).exists() else []

    use_machine(monkeypatch, B)
    assert main(argv) == 0 and trained == ["lstm", "gru", "lstm", "gru"]
    assert len(partial()) == 1
    use_machine(monkeypatch, A)
    assert main(argv) == 0 and len(trained) == 4  # both machines resume their own
    assert partial() == []
    recs = read_jsonl(out / charlm.JSONL)
    assert {r["machine_id"] for r in recs} == {machine_id(A), machine_id(B)}
    assert sum(r["type"] == "done" for r in recs) == 4
    report = (out / "REPORT.md").read_text()
    assert "Fake CPU Model A" in report and "cpu-fake-model-b-5core" in report  # B left out, named
