"""`jaxseq study` end to end (smoke preset, tiny bench ops), the cpu preset's coverage of the
issue's targets, trace selection, scripts/gpu_study.sh syntax, and imports without the packages
the GPU image lacks."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxseq.studies.scaling import report, sweep as scale
from jaxseq.bench.sweep import load_records, machine_fingerprint, machine_id
from jaxseq.cli import main
from gpu_image import GPU_IMAGE_BLOCKER as BLOCKER  # tests/gpu_image.py

ROOT = Path(__file__).resolve().parents[2]
TINY_BENCH = ("--lstm-lengths 8 --attn-lengths 16 --width 16 --heads 2 --lstm-batch 2 "
              "--attn-batch 2 --warmup 0 --repeats 1 --backends xla --stacks")


def _has(points, **kw):
    return any(all(p.get(k) == v for k, v in kw.items()) and "devices" not in p for p in points)


def test_cpu_preset_covers_the_targets():
    pts = scale.build_points("cpu")
    for model in ("lstm", "torch-lstm", "flax-lstm"):  # LSTM >= 1.0x torch at B32 H256 T1024
        assert _has(pts, model=model, seq_len=1024, batch=32, width=256, mode="train")
    for T in (1024, 2048, 4096):  # blockwise vs SDPA at T=2048, memory over three lengths
        for model in ("attn-blockwise", "torch-sdpa"):
            assert _has(pts, model=model, seq_len=T, batch=8, width=256, mode="train")
    for T in report.MIN_RNN_TARGET_LENGTHS:  # minGRU vs LSTM at equal settings
        for model in ("lstm", "mingru"):
            assert _has(pts, model=model, seq_len=T, batch=8, width=128, mode="train")
    assert {p["devices"] for p in pts if "devices" in p} == {1, 2, 4, 8}
    assert {p["parallel"] for p in pts if "devices" in p} == {"jit", "pmap"}
    assert {"forward", "train"} <= {p["mode"] for p in pts}
    # shortest lengths first within each grid
    main_grid = [p for p in pts if p["batch"] == 8 and p["width"] == 128 and p["mode"] == "train"
                 and "devices" not in p and p["seq_len"] <= 2048]
    assert [p["seq_len"] for p in main_grid] == sorted(p["seq_len"] for p in main_grid)


def test_trace_points_stay_short():
    pts = scale.build_points("cpu")
    picks = scale.trace_points(pts, 2, scale.PRESETS["cpu"].trace_max_len)
    assert picks and max(p["seq_len"] for p in picks) <= scale.PRESETS["cpu"].trace_max_len
    assert not any(p["model"].startswith("torch-") or "devices" in p for p in picks)
    assert {(p["batch"], p["width"]) for p in picks} == {(8, 128)}  # the main grid's settings
    lstm = sorted(p["seq_len"] for p in picks if p["model"] == "lstm")
    assert lstm == [128, 512]


def _fast_xla_flags() -> str:
    """Test-only XLA flags that cut the compile time of the study's tiny programs ~3x (compiling is most
    of this test's time): backend optimisation level 0, and XLA:CPU's loop emitters in place of its
    fusion emitters. Neither changes what a program computes, and XLA_FLAGS are recorded beside each
    result but are no part of the machine id. "" where this jaxlib lacks either option (XLA would stop
    at start-up on an unknown flag)."""
    import jax

    try:
        jax.jit(lambda: 0, compiler_options={"xla_backend_optimization_level": 0,
                                             "xla_cpu_use_fusion_emitters": False}).lower().compile()
    except Exception:
        return ""
    return "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def test_study_smoke_end_to_end(tmp_path, capsys):
    # A results tree of the one layout: this machine's scaling folder beside a committed reference.
    profiles = tmp_path / "profiles"
    (profiles / "cpu-2core").mkdir(parents=True)
    (profiles / "cpu-2core" / "scaling").symlink_to(ROOT / "profiles" / "cpu-2core" / "scaling")
    out = profiles / "this-machine" / "scaling"
    argv = ["study", "--out", str(out), "--preset", "smoke", "--quick", "--bench-args", TINY_BENCH,
            "--no-progress"]
    # In a fresh process, as a user runs it: a profiler trace also carries the HLO of every program the
    # process compiled before, so in this long-lived test process the same two traces weigh ~75 MB.
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {_fast_xla_flags()}".strip()  # the device worker too
    res = subprocess.run([sys.executable, "-m", "jaxseq.cli", *argv], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = load_records(out / "results.jsonl")
    assert len(recs) == len(scale.build_points("smoke"))
    assert all(r["status"] == "ok" for r in recs), [r["message"] for r in recs]
    bench = (out / "bench_ops.jsonl").read_text().splitlines()
    assert len(bench) == 5 and all(json.loads(l)["status"] == "ok" for l in bench)
    # Every record (sweep and bench ops) belongs to this machine.
    me = machine_id(machine_fingerprint())
    assert {r["machine_id"] for r in recs} == {json.loads(l)["machine_id"] for l in bench} == {me}
    text = (out / "REPORT.md").read_text()
    assert "## Findings" in text and "## bench ops" in text and "## Profiler traces" in text
    assert "## Your machine beside the references" in text and "`cpu-2core/scaling` (reference)" in text
    assert (out / "step_time_vs_length.png").exists()
    assert (out / "scaling_devices.png").exists()
    # The study ends with this machine's verdict, the reference's column beside it.
    verdict = (profiles / "this-machine" / "VERDICT.md").read_text()
    assert "`cpu-2core` (reference)" in verdict and "| 1 | LSTMs cannot be parallelised" in verdict
    assert "The verdict on this-machine" in res.stdout
    traces = list((out / "traces").rglob("*.xplane.pb"))
    assert len(traces) == 2
    assert scale.dir_size(out / "traces") < 16 * 2**20  # two tiny steps; sizes vary with the profiler
    capsys.readouterr()
    # rerun: bench ops skipped, no new points, traces kept
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "already in" in printed and "skipped" in printed
    assert len(load_records(out / "results.jsonl")) == len(recs)
    assert len((out / "bench_ops.jsonl").read_text().splitlines()) == 5
    assert sorted((out / "traces").rglob("*.xplane.pb")) == sorted(traces)


def test_study_rejects_bad_options(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path), "--preset", "nope", "--skip-bench"]) == 2
    assert "--preset" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.sh")))
def test_shell_scripts_parse(script):
    # The GPU scripts run unattended the day a device is lent: a syntax error would waste its minutes.
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], check=True)


def test_bench_imports_without_tensorboardx_or_statsforecast(tmp_path):
    # The GPU image has neither: scripts/gpu_study.sh must still import what it runs.
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    code = ("import sys, importlib\n"
            "for m in ('bench.sweep', 'bench.timing', 'bench.flops', 'bench.workloads', "
            "'bench.ops_bench', 'studies.scaling.sweep', 'studies.scaling.report', "
            "'studies.scaling.study'):\n"
            "    importlib.import_module('jaxseq.' + m)\n"
            "import jaxseq.cli\n"
            "try:\n"
            "    jaxseq.cli.build_parser(); print('cli ok')\n"
            "except Exception as e:\n"
            "    print('cli FAILED', type(e).__name__, e)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('tensorboardX', 'statsforecast'))))")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("[]"), res.stdout
    # jaxseq.cli imports other subcommands' modules too; gpu_study.sh falls back to
    # `python -m jaxseq.studies.scaling.sweep` when it does not import, so only report it here.
    if "cli FAILED" in res.stdout:
        pytest.xfail("jaxseq.cli does not build without tensorboardX/statsforecast: "
                     + res.stdout.splitlines()[0])
