"""scripts/gpu_verdict.sh (issue 33): every GPU row of the verdict in one device call. Its CPU dry run end to
end (toy sizes, the pack's layout), a part cut by its cap, the caps' sum, the presets it runs and the short
translation run it asks for (`translate study --max-steps/--decode-sentences`)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_image import GPU_IMAGE_BLOCKER  # tests/gpu_image.py

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_verdict.sh"
PARTS = ("env", "wheels", "lstm", "length", "translation-lstm", "translation-transformer", "generate", "summary")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="no bash or timeout")


def _run(tmp_path: Path, extra_blocked: tuple[str, ...] = (), **env_vars: str) -> subprocess.CompletedProcess:
    """The script as the device runs it (no tensorboardX/statsforecast), on the CPU, packing into tmp/pack."""
    site = tmp_path / "site"
    site.mkdir()
    blocker = GPU_IMAGE_BLOCKER
    if extra_blocked:
        blocker = blocker.replace('("tensorboardX", "statsforecast")',
                                  repr(("tensorboardX", "statsforecast") + extra_blocked))
        assert blocker != GPU_IMAGE_BLOCKER
    (site / "sitecustomize.py").write_text(blocker)
    env = {**os.environ, "PRESET": "smoke", "PYTHON": sys.executable, "PACK": str(tmp_path / "pack"),
           "WORK": str(tmp_path / "work"), "WHEELS": str(tmp_path / "no-wheels"),
           "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", **env_vars}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _parts(pack: Path) -> dict[str, dict]:
    return {p["name"]: p for p in _jsonl(pack / "parts.jsonl")}


@needs_bash
@pytest.mark.parametrize("preset", ["gpu", "smoke"])
def test_default_caps_fit_the_device_window(preset):
    env = {**os.environ, "CAPS_ONLY": "1", "PRESET": preset}
    for k in ("ENV_LIMIT", "WHEELS_LIMIT", "LSTM_LIMIT", "LENGTH_LIMIT", "TR_LIMIT", "GENERATE_LIMIT",
              "SUMMARY_LIMIT", "TOTAL_LIMIT"):
        env.pop(k, None)
    p = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=True)
    caps = int(re.search(r"caps_sum=(\d+)", p.stdout).group(1))
    assert 0 < caps <= 520
    total = int(re.search(r"whole command (\d+)", p.stdout).group(1))
    assert caps <= total <= 540 if preset == "gpu" else caps <= total


@pytest.mark.slow
@needs_bash
def test_dry_run_packs_every_part_in_the_results_layout(tmp_path):
    from jaxseq.bench.sweep import machine_fingerprint, machine_slug, record_fingerprint

    # A results file the checkout already holds for this machine: the pack appends to it, never replaces it.
    committed = tmp_path / "profiles" / machine_slug(machine_fingerprint()) / "scaling" / "results.jsonl"
    committed.parent.mkdir(parents=True)
    committed.write_text('{"key": "committed", "note": "no newline at the end"}')
    p = _run(tmp_path, PROFILES=str(tmp_path / "profiles"), MERGE_COMMITTED="1")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    pack = tmp_path / "pack"
    files = sorted(str(f.relative_to(pack)) for f in pack.rglob("*") if f.is_file())
    assert len(files) <= 8, files
    tr = "translation/smoke-steps3-decode1"
    expected = {"machine.txt", "parts.jsonl", "gpu_verdict.log", "scaling/results.jsonl",
                f"{tr}/results.jsonl", f"{tr}/plan.json"}
    assert expected <= set(files), files
    assert not any("traces" in f or "runs/" in f for f in files)

    parts = _parts(pack)
    assert set(parts) == set(PARTS), parts
    for name, part in parts.items():
        assert {"limit_s", "elapsed_s", "exit_code", "cut", "status"} <= set(part)
        assert part["cut"] is False, part
        assert part["status"] in ("ok", "skipped"), part
    assert parts["lstm"]["status"] == "ok" and parts["translation-transformer"]["status"] == "ok"

    scaling = _jsonl(pack / "scaling/results.jsonl")
    assert scaling[0] == {"key": "committed", "note": "no newline at the end"}  # then this run's records
    scaling = scaling[1:]
    translation = _jsonl(pack / tr / "results.jsonl")
    for rec in scaling + translation:
        assert isinstance(rec.get("fingerprint"), dict) and rec.get("machine_id"), rec
    models = {(r["point"]["model"], r["point"].get("mode")) for r in scaling}
    assert {("torch-lstm", "train"), ("lstm", "train"), ("lstm-layer", "train"), ("mingru", "train"),
            ("transformer-block", "train"), ("transformer", "generate")} <= models
    assert all(r["status"] == "ok" for r in scaling)
    finals = {r["model"]: r for r in translation if r.get("kind") == "final"}
    assert set(finals) == {"lstm", "transformer"}
    for f in finals.values():
        assert f["preset"] == "smoke-steps3-decode1" and f["steps"] <= 3 and f["test_sentences"] == 1
        assert f["beam5"]["warm"]["ms_per_output_token"] > 0 and "steady_target_tokens_per_s" in f
    assert json.loads((pack / tr / "plan.json").read_text())["preset"]["name"] == "smoke-steps3-decode1"

    slug = (pack / "machine.txt").read_text().splitlines()[0]
    assert slug == machine_slug(record_fingerprint(scaling[0]))
    assert "verdict lines (scaling)" in out and "== packed" in out
    assert "gpu_verdict.sh: preset smoke" in (pack / "gpu_verdict.log").read_text()


@needs_bash
def test_a_part_cut_by_its_cap_is_reported_and_translation_without_its_packages_is_skipped(tmp_path):
    # The sweeps get 1 s each (cut while importing); the image lacks sentencepiece/sacrebleu and there are no wheels.
    p = _run(tmp_path, extra_blocked=("sentencepiece", "sacrebleu"),
             LSTM_LIMIT="1", LENGTH_LIMIT="1", GENERATE_LIMIT="1")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    parts = _parts(tmp_path / "pack")
    assert set(parts) == set(PARTS)
    for name in ("lstm", "length", "generate"):
        assert parts[name]["cut"] is True and parts[name]["status"] == "cut", parts[name]
        assert parts[name]["exit_code"] in (124, 137) and parts[name]["limit_s"] == 1
        assert f"CUT: part {name} stopped at its 1s cap" in out
    for name in ("translation-lstm", "translation-transformer"):
        assert parts[name]["status"] == "skipped" and parts[name]["cut"] is False
        assert "sentencepiece" in parts[name]["note"]
        assert f"== {name}: SKIPPED" in out
    assert parts["env"]["status"] == "ok" and parts["summary"]["status"] == "ok"
    assert "parts cut by their caps so far: lstm, length, generate" in out
    log = (tmp_path / "pack" / "gpu_verdict.log").read_text()
    assert "CUT: part lstm" in log and (tmp_path / "pack" / "machine.txt").read_text().strip()


@needs_bash
def test_a_part_with_no_time_left_is_skipped_and_said(tmp_path):
    # TOTAL_LIMIT below the pack reserve: every part is skipped, the pack still has the status files.
    p = _run(tmp_path, TOTAL_LIMIT="5", PACK_RESERVE="10")
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    parts = _parts(tmp_path / "pack")
    assert parts["lstm"]["status"] == "skipped" and parts["lstm"]["cut"] is True
    assert "lstm: SKIPPED, no time left" in p.stdout
    assert (tmp_path / "pack" / "gpu_verdict.log").is_file()


def test_verdict_presets_are_the_gpu_presets_points():
    from jaxseq.studies.scaling import sweep as S

    def keys(preset):
        return {json.dumps(p, sort_keys=True) for p in S.build_points(preset, max_devices=1)}

    reference = keys("gpu") | keys("gpu-lstm-stack")
    for part, n in (("lstm", 6), ("length", 16), ("generate", 18)):
        mine = keys(f"gpu-verdict-{part}")
        assert len(mine) == n and mine <= reference, part  # the same points, so the same record keys
        assert S.build_points(f"smoke-verdict-{part}")
    labels = [p.get("layers", 1) for p in S.build_points("gpu-verdict-lstm")]
    assert labels.count(8) == 3  # torch's 8-layer cuDNN LSTM and two schedules of jaxseq's stack


def test_short_translation_run_options():
    from jaxseq.studies import translation as T

    gpu = T.PRESETS["gpu"]
    short = T.shortened_preset(gpu, max_steps=300, decode_sentences=256)
    assert short.name == "gpu-steps300-decode256"
    assert short.steps == {"lstm": 300, "transformer": 300} and short.test_sentences == 256
    assert short.val_sentences == 256 and short.lstm == gpu.lstm and short.tokens_per_batch == gpu.tokens_per_batch
    assert T.shortened_preset(gpu, max_steps=10**6).steps == gpu.steps  # never more than the preset's
    assert T.shortened_preset(T.PRESETS["smoke"], decode_sentences=5).test_sentences == 1
    with pytest.raises(ValueError, match="--max-steps"):
        T.shortened_preset(gpu, max_steps=0)
    with pytest.raises(SystemExit):  # argparse: an integer >= 1
        T.main(["study", "--preset", "smoke", "--max-steps", "0"])
    # Throughput without compiling: a compile-sized pause is left out, evaluation-free steps count.
    marks = [(k, 0.1 * k) for k in range(1, 11)]
    marks = marks[:7] + [(k, t + 30.0) for k, t in marks[7:]]  # step 8 took 30 s more (a new shape compiling)
    assert T.steady_tokens_per_s(marks, 1000.0) == pytest.approx(10000.0)
    assert T.steady_tokens_per_s([(1, 0.5)], 1000.0) is None
