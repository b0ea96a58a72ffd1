"""`jaxseq verdict`: the rule, and verdicts that follow the records (change the fixture, the verdict
changes); the committed verdict pages, the index and the README's table are what the command writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxseq.studies.base import REPO_PROFILES
from jaxseq.studies.results import index_markdown
from jaxseq.studies.verdict import (MIXED, NOT_MEASURED, REFUTED, SUPPORTED, Evidence, judge, machines,
                                    readme_table, verdict_markdown, verdict_of)

README = Path(__file__).resolve().parents[2] / "README.md"
FP = {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu_model": "Test CPU", "cpu_count": 2,
      "jax": "0.0", "jaxlib": "0.0", "platform_version": "cpu"}


def _row(d: int) -> Evidence:
    return Evidence("x", "1", "t", d)


@pytest.mark.parametrize("dirs, want", [
    ((), NOT_MEASURED), ((1,), SUPPORTED), ((1, 0), SUPPORTED), ((-1, 0), REFUTED), ((1, -1), MIXED),
    ((0, 0), MIXED)])
def test_rule(dirs, want):
    assert verdict_of([_row(d) for d in dirs]) == want


def test_evidence_rejects_a_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        Evidence("x", "1", "t", 2)


def _scaling(folder: Path, times: dict[str, dict[int, float]]) -> None:
    folder.mkdir(parents=True)
    with (folder / "results.jsonl").open("w") as f:
        for model, by_t in times.items():
            for T, s in by_t.items():
                point = {"model": model, "seq_len": T, "batch": 8, "width": 128, "dtype": "float32",
                         "mode": "train"}
                rec = {"key": f"{model}-{T}", "point": point, "status": "ok", "timestamp": "2026-12-01T00:00:00+00:00",
                       "result": {"median_s": s, "tokens_per_s": 8 * T / s, "framework": "jax"},
                       "device": {"backend": "cpu"}, "fingerprint": FP, "machine_id": "aaaaaaaaaaaa",
                       "commit": "abc1234"}
                f.write(json.dumps(rec) + "\n")


LENGTHS = (256, 1024, 4096)


def _serial(scale: float) -> dict[int, float]:
    return {T: scale * T / 256 for T in LENGTHS}


def test_parallel_claim_follows_the_records(tmp_path):
    # A GPU-like machine: minGRU's lead grows with T and the Transformer block is faster: supported.
    root = tmp_path / "profiles"
    fast = {T: 0.01 * (T / 256) ** 0.3 for T in LENGTHS}
    _scaling(root / "m" / "scaling", {"lstm": _serial(1.0), "mingru": fast, "lstm-layer": _serial(1.0),
                                      "transformer-block": fast})
    [v1] = [v for v in judge(root / "m") if v.claim.key == "parallel"]
    assert v1.verdict == SUPPORTED and [e.direction for e in v1.evidence] == [1, 1, 1, 1]
    assert "abc1234" in " ".join(v1.sources)
    # A CPU-like machine: minGRU a constant 1.5x, the Transformer block slower: the claim is mixed.
    _scaling(root / "n" / "scaling", {"lstm": _serial(1.0), "mingru": _serial(1 / 1.5),
                                      "lstm-layer": _serial(1.0), "transformer-block": _serial(3.0)})
    [v2] = [v for v in judge(root / "n") if v.claim.key == "parallel"]
    assert v2.verdict == MIXED and [e.direction for e in v2.evidence] == [1, 0, 0, -1]
    # Claim 2 reads the same points: the Transformer block's tokens/s decides it here.
    [f1] = [v for v in judge(root / "m") if v.claim.key == "faster"]
    [f2] = [v for v in judge(root / "n") if v.claim.key == "faster"]
    assert (f1.verdict, f2.verdict) == (SUPPORTED, REFUTED)


def _translation(folder: Path, bleu: dict[str, float], tps: dict[str, float], ms: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    recs = []
    for m in ("lstm", "transformer"):
        recs.append({"kind": "final", "model": m, "parameters": 7_500_000, "train_time_s": 600.0,
                     "train_target_tokens_per_s": tps[m], "beam5": {"bleu": bleu[m], "ms_per_output_token": ms[m]},
                     "fingerprint": FP, "machine_id": "aaaaaaaaaaaa"})
        recs += [{"kind": "curve", "model": m, "step": k, "train_time_s": 100.0 * k, "val_bleu": bleu[m] * k / 6,
                  "fingerprint": FP, "machine_id": "aaaaaaaaaaaa"} for k in range(1, 7)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_translation_claim_follows_the_records(tmp_path):
    root = tmp_path / "profiles"
    _translation(root / "a" / "translation", {"lstm": 35.0, "transformer": 33.5}, {"lstm": 6000, "transformer": 4000},
                 {"lstm": 1.0, "transformer": 2.0})
    _translation(root / "b" / "translation", {"lstm": 33.0, "transformer": 36.0}, {"lstm": 4000, "transformer": 6000},
                 {"lstm": 2.0, "transformer": 1.0})
    _translation(root / "c" / "translation", {"lstm": 35.0, "transformer": 35.5}, {"lstm": 5000, "transformer": 5000},
                 {"lstm": 1.0, "transformer": 1.0})
    got = {m: {v.claim.key: v.verdict for v in judge(root / m)} for m in "abc"}
    assert got["a"]["translation"] == REFUTED and got["b"]["translation"] == SUPPORTED
    assert got["c"]["translation"] == MIXED  # within one BLEU and equal speed: inside every band
    assert got["a"]["faster"] == REFUTED and got["b"]["faster"] == SUPPORTED
    assert got["a"]["length"] == NOT_MEASURED


def test_a_machine_without_studies_names_the_commands(tmp_path):
    text = verdict_markdown(tmp_path / "profiles" / "new-machine")
    assert text.count(NOT_MEASURED) >= 7 and "jaxseq translate study" in text and "not run on this machine" in text


def test_cli_unknown_machine_is_one_line_and_exit_2(capsys):
    from jaxseq.cli import main

    assert main(["verdict", "--machine", "no-such-machine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--machine 'no-such-machine'" in err[0]


# ------------------------------------------------------------------------------- the committed pages


@pytest.mark.parametrize("machine", machines(REPO_PROFILES), ids=lambda p: p.name)
def test_committed_verdict_is_what_the_command_writes(machine):
    assert (machine / "VERDICT.md").read_text() == verdict_markdown(machine, machines(REPO_PROFILES))


def test_committed_index_is_what_the_command_writes():
    assert (REPO_PROFILES / "README.md").read_text() == index_markdown(REPO_PROFILES)


def test_readme_verdict_table_is_the_generated_one():
    assert readme_table(REPO_PROFILES) in README.read_text()


def test_a_short_translation_run_gives_speed_rows_only(tmp_path):
    # scripts/gpu_verdict.sh trains each model a few hundred steps: its speeds count, its BLEU does not.
    folder = tmp_path / "profiles" / "g" / "translation" / "gpu-steps300-decode256"
    folder.mkdir(parents=True)
    recs = [{"kind": "final", "model": m, "steady_target_tokens_per_s": tps, "train_target_tokens_per_s": 1.0,
             "beam5": {"bleu": 1.0, "ms_per_output_token": 9.0, "warm": {"ms_per_output_token": ms}},
             "fingerprint": FP, "machine_id": "aaaaaaaaaaaa"}
            for m, tps, ms in (("lstm", 1000.0, 2.0), ("transformer", 3000.0, 1.0))]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = {v.claim.key: v for v in judge(tmp_path / "profiles" / "g")}
    [speed] = got["faster"].evidence
    assert "3.00x" in speed.value and speed.direction == 1 and got["faster"].verdict == SUPPORTED
    [decode] = got["translation"].evidence
    assert "BLEU" not in decode.name and "2.00x" in decode.value and got["translation"].verdict == SUPPORTED
