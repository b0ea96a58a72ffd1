"""`jaxseq bench phases`: the LSTM step's forward and backward timed apart against torch."""
import json
import statistics

import pytest

pytest.importorskip("torch")

from jaxseq.bench import phases  # noqa: E402
from jaxseq.cli import main  # noqa: E402


def test_record_holds_each_side_per_round_and_the_median_per_round_ratios():
    rec = phases.time_lstm_phases(batch=2, seq_len=4, hidden=8, rounds=3)
    assert (rec["batch"], rec["seq_len"], rec["hidden"], rec["rounds"]) == (2, 4, 8, 3)
    for side in ("torch", "jaxseq"):
        s = rec[side]
        assert len(s["forward_s"]) == len(s["backward_s"]) == 3
        assert all(t > 0 for t in s["forward_s"])  # a forward is never free
        assert s["step_s"] == pytest.approx([a + b for a, b in zip(s["forward_s"], s["backward_s"])])
        assert s["forward_median_s"] == statistics.median(s["forward_s"])
    t, j = rec["torch"], rec["jaxseq"]
    want = [a / b for a, b in zip(t["backward_s"], j["backward_s"]) if b > 0]  # a difference: may be <= 0
    assert rec["speed_vs_torch"]["backward"] == (pytest.approx(statistics.median(want)) if want else None)
    assert rec["speed_vs_torch"]["step"] == pytest.approx(
        statistics.median(a / b for a, b in zip(t["step_s"], j["step_s"])))
    assert "x torch" in phases.format_phases(rec)


def test_stacks_and_bidirectional_layers_time_the_module_against_torchs_twin():
    rec = phases.time_lstm_phases(batch=2, seq_len=4, hidden=8, layers=2, bidirectional=True, rounds=1)
    assert (rec["layers"], rec["bidirectional"]) == (2, True)
    assert rec["torch"]["step_median_s"] > 0 and rec["jaxseq"]["forward_median_s"] > 0
    assert phases.format_phases(rec).startswith("2-layer bidirectional LSTM")


@pytest.mark.parametrize("kwargs, match", [({"batch": 0}, "`batch`"), ({"hidden": 2.5}, "`hidden`"),
                                           ({"rounds": 0}, "`rounds`"), ({"seq_len": True}, "`seq_len`"),
                                           ({"layers": 0}, "`layers`")])
def test_bad_sizes_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        phases.time_lstm_phases(**{"batch": 2, "seq_len": 4, "hidden": 8, "rounds": 1, **kwargs})
    with pytest.raises(TypeError, match="`bidirectional`"):
        phases.time_lstm_phases(batch=2, seq_len=4, hidden=8, rounds=1, bidirectional="yes")


def test_cli_appends_one_record_with_the_machine(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    args = ["bench", "phases", "--batch", "2", "--seq-len", "4", "--hidden", "8", "--rounds", "1"]
    assert main([*args, "--out", str(out)]) == 0
    assert main([*args, "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 2 and recs[0]["bench"] == "phases" and "machine_id" in recs[0] and "memory" in recs[0]
    assert "forward ms" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "phases", "--rounds", "0"])
    assert e.value.code == 2


def test_a_backward_that_noise_made_non_positive_gives_no_ratio(monkeypatch):
    # jaxseq's backward is whole step minus forward: at toy sizes it can come out <= 0.
    fake = {"torch": lambda: (0.2, 0.4), "jaxseq": lambda: (0.1, 0.0)}
    monkeypatch.setattr(phases, "lstm_phase_steps", lambda *a, **k: fake)
    rec = phases.time_lstm_phases(batch=2, seq_len=4, hidden=8, rounds=2)
    assert rec["speed_vs_torch"] == {"forward": 2.0, "backward": None, "step": pytest.approx(6.0)}
    assert "x torch         2.00            -      6.00" in phases.format_phases(rec)
