"""`jaxseq charlm --quick`: the comparison's plumbing (JSONL, plot, report, resume) on tiny models; the
former name `jaxseq lm-compare` still works and says it is deprecated."""
from __future__ import annotations

import json

from jaxseq.bench.sweep import machine_fingerprint, machine_id
from jaxseq.cli import main


def test_quick_comparison_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "charlm"
    args = ["charlm", "--out", str(out), "--quick", "--budget-s", "1.5", "--models", "lstm", "transformer"]
    assert main(args) == 0
    assert "deprecated" not in capsys.readouterr().err
    recs = [json.loads(line) for line in (out / "lm_compare.jsonl").read_text().splitlines()]
    done = {r["model"]: r for r in recs if r["type"] == "done"}
    assert set(done) == {"lstm", "transformer"}
    for r in done.values():
        assert r["steps"] >= 1 and r["final_val_loss"] > 0 and r["cpu_s"] > 0
    evals = [r for r in recs if r["type"] == "eval"]
    assert {r["machine_id"] for r in recs} == {machine_id(machine_fingerprint())}
    assert {"cpu_s", "wall_s", "step", "val_loss", "val_bpc"} <= set(evals[0])
    assert (out / "val_loss_vs_cpu.png").stat().st_size > 1000
    assert not (out / "README.md").exists()
    report = (out / "REPORT.md").read_text()
    assert "| lstm |" in report and "| transformer |" in report and "bits/char" in report
    assert "`jaxseq charlm`" in report
    # Rerun: finished models are skipped, nothing is trained again.
    assert main(args) == 0
    assert capsys.readouterr().out.count("done already, skipped") == 2
    assert len((out / "lm_compare.jsonl").read_text().splitlines()) == len(recs)
    # The deprecated alias runs the same command (here: resumes the same folder) and warns on stderr once.
    assert main(["lm-compare", *args[1:]]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("done already, skipped") == 2
    warning = [line for line in captured.err.splitlines() if "deprecated" in line]
    assert len(warning) == 1 and "jaxseq charlm" in warning[0], captured.err


def test_unknown_model_is_exit_2(tmp_path, capsys):
    assert main(["charlm", "--out", str(tmp_path), "--models", "lstm", "rnn9"]) == 2
    assert "--models" in capsys.readouterr().err


def test_run_preset_is_the_contracts_entry_point(tmp_path, monkeypatch):
    # The smoke preset by name; the models' training is faked (the test above trains real ones).
    from jaxseq.studies import charlm

    def fake_run_one(kind, *, args, data, out, runs, budget):
        assert args.quick and budget == charlm.PRESETS["smoke"]["budget_s"]
        done = {"type": "done", "model": kind, "params": 100, "d_model": 8, "layers": 1, "steps_planned": 1,
                "steps": 1, "cpu_s": 1.0, "wall_s": 1.0, "final_val_loss": 2.0, "final_val_bpc": 2.9,
                "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
                "eval_batches": args.eval_batches, "budget_cpu_s": budget}
        charlm._append(out / charlm.JSONL, done)
        return done

    monkeypatch.setattr(charlm, "run_one", fake_run_one)
    monkeypatch.setattr(charlm, "write_plot", lambda records, path: None)
    report = charlm.run_preset("smoke", tmp_path / "c")
    assert report == tmp_path / "c" / "REPORT.md" and "| lstm |" in report.read_text()
