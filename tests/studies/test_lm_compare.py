"""`jaxseq lm-compare --quick`: the comparison's plumbing (JSONL, plot, report, resume) on tiny models."""
from __future__ import annotations

import json

from jaxseq.bench.sweep import machine_fingerprint, machine_id
from jaxseq.cli import main


def test_quick_comparison_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "charlm"
    args = ["lm-compare", "--out", str(out), "--quick", "--budget-s", "1.5", "--models", "lstm", "transformer"]
    assert main(args) == 0
    recs = [json.loads(line) for line in (out / "lm_compare.jsonl").read_text().splitlines()]
    done = {r["model"]: r for r in recs if r["type"] == "done"}
    assert set(done) == {"lstm", "transformer"}
    for r in done.values():
        assert r["steps"] >= 1 and r["final_val_loss"] > 0 and r["cpu_s"] > 0
    evals = [r for r in recs if r["type"] == "eval"]
    assert {r["machine_id"] for r in recs} == {machine_id(machine_fingerprint())}
    assert {"cpu_s", "wall_s", "step", "val_loss", "val_bpc"} <= set(evals[0])
    assert (out / "val_loss_vs_cpu.png").stat().st_size > 1000
    report = (out / "README.md").read_text()
    assert "| lstm |" in report and "| transformer |" in report and "bits/char" in report
    # Rerun: finished models are skipped, nothing is trained again.
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done already, skipped") == 2
    assert len((out / "lm_compare.jsonl").read_text().splitlines()) == len(recs)


def test_unknown_model_is_exit_2(tmp_path, capsys):
    assert main(["lm-compare", "--out", str(tmp_path), "--models", "lstm", "rnn9"]) == 2
    assert "--models" in capsys.readouterr().err
