"""`jaxseq scale` point grids, end to end on the smoke preset, traces, and a tiny `bench ops`."""
import json

import pytest

from jaxseq.studies.scaling import sweep as scale
from jaxseq.bench.sweep import load_records
from jaxseq.bench import ops_bench
from jaxseq.cli import build_parser, main


def test_build_points_overrides_and_filters():
    pts = scale.build_points("smoke")
    assert pts and all({"model", "seq_len", "batch", "width", "dtype", "mode"} <= set(p) for p in pts)
    assert any("devices" in p for p in pts)
    pts = scale.build_points("smoke", models=["lstm"], lengths=[8], include_devices=False)
    assert {p["model"] for p in pts} == {"lstm"} and {p["seq_len"] for p in pts} == {8}
    pts = scale.build_points("cpu", max_devices=2)
    assert max(p.get("devices", 1) for p in pts) == 2
    pts = scale.build_points("gpu", available=("lstm",))
    assert {p["model"] for p in pts} == {"lstm"}
    with pytest.raises(ValueError, match="--models"):
        scale.build_points("smoke", models=["lstmm"])
    with pytest.raises(ValueError, match="--preset"):
        scale.build_points("huge")


def test_env_for_sets_device_count(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --foo")
    monkeypatch.delenv("JAXSEQ_REAL_DEVICES", raising=False)
    env = scale.env_for({"model": "lstm", "devices": 2})
    assert "--xla_force_host_platform_device_count=2" in env["XLA_FLAGS"]
    assert "=4" not in env["XLA_FLAGS"] and "--foo" in env["XLA_FLAGS"]
    assert scale.env_for({"model": "lstm"}) is None


@pytest.mark.slow
def test_scale_smoke_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["scale", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    recs = load_records(out / "results.jsonl")
    assert len(recs) == len(scale.build_points("smoke"))
    assert all(r["status"] == "ok" for r in recs), [r["message"] for r in recs]
    for r in recs:
        res = r["result"]
        assert res["median_s"] > 0 and res["tokens_per_s"] > 0 and res["flops_analytic"] > 0
        assert r["versions"]["jax"] and r["device"]["backend"] == "cpu" and "load" in r
    dp = [r for r in recs if "devices" in r["point"]]
    assert dp and all(r["device"]["device_count"] == r["point"]["devices"] for r in dp)
    jax_rec = next(r for r in recs if r["point"]["model"] == "lstm" and "devices" not in r["point"])
    assert jax_rec["result"]["memory"]["temp_bytes"] is not None
    assert jax_rec["result"]["compile_s"] > 0
    # rerun: everything is done, nothing runs
    assert main(["scale", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    assert len(load_records(out / "results.jsonl")) == len(recs)


def test_write_traces(tmp_path):
    pts = [{"model": "lstm", "seq_len": 8, "batch": 2, "width": 16, "dtype": "float32",
            "mode": "train"}]
    written = scale.write_traces(tmp_path, pts, per_model=1)
    assert len(written) == 1
    assert list((tmp_path / "traces").rglob("*.xplane.pb"))


def test_run_point_in_process():
    res = scale.run_point({"model": "gru", "seq_len": 8, "batch": 2, "width": 16,
                           "mode": "forward", "warmup": 0, "repeats": 1})
    assert res["framework"] == "jax" and res["tokens"] == 16 and res["flops_xla"] > 0
    json.dumps(res, default=str)


def test_bench_ops_tiny(capsys, tmp_path):
    out = tmp_path / "b.jsonl"
    argv = ["bench", "ops", "--lstm-lengths", "8", "--attn-lengths", "16", "--width", "16",
            "--heads", "2", "--lstm-batch", "2", "--attn-batch", "2", "--warmup", "0",
            "--repeats", "1", "--backends", "xla", "--stack-lengths", "4", "--pairs", "3", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "torch-lstm" in text and "attn-xla" in text and "target:" in text
    # the stack cases: torch's twin first, then the module's default and every explicit schedule
    assert "torch-lstm+L4" in text and "lstm-layer+L2+bi+fused" in text and "lstm-layer+L4+wavefront" in text
    assert "lstm-layer+L4 >= 1.0x" in text
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    # lstm 3 + 4-layer stack 4 + bidirectional stack 5 + attention 2
    assert len(recs) == 14 and all(r["status"] == "ok" for r in recs), [r.get("result") for r in recs]
    # paired rounds (default 5, 3 here): every impl but the anchor, one per round, judged in the target lines
    assert build_parser().parse_args(["bench", "ops"]).pairs == 5
    for r in recs:
        if r["point"]["model"].startswith("torch-") or r["point"]["model"] == "torch-sdpa":
            assert "paired" not in r
        else:
            p = r["paired"]
            assert p["rounds"] == 3 and len(p["times_s"]) == len(p["anchor_times_s"]) == 3
            assert p["median"] == sorted(p["ratios"])[1]
    assert "x anchor paired" in text
    rows = {r["impl"]: r for r in ops_bench.run_ops_bench(
        build_parser().parse_args(argv[:-2] + ["--stacks", "--backends", "xla", "--lstm-lengths", "1024"]))}
    assert rows["torch-lstm"]["paired"] is None and rows["lstm"]["paired"] > 0
    assert "1.0x torch.nn.LSTM tokens/s at T=1024: " in ops_bench.target_lines(list(rows.values()))[0]
    assert " paired (" in ops_bench.target_lines(list(rows.values()))[0]
    assert main(argv[:-2] + ["--stacks", "--pairs", "0", "--out", str(tmp_path / "c.jsonl")]) == 0
    recs = [json.loads(l) for l in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(recs) == 5 and not any("paired" in r for r in recs)  # lstm 3 + attention 2, no rounds


def test_gpu_preset_options_and_targets_first():
    from jaxseq.bench.workloads import MODELS, model_label

    pts = scale.build_points("gpu", available=MODELS, max_devices=1)
    # the GPU targets run first: the LSTM at the published anchor's point (fp16)
    assert pts[0]["seq_len"] == 1024 and pts[0]["batch"] == 16 and pts[0]["width"] == 768
    assert pts[0]["dtype"] == "float16"
    labels = {model_label(p) for p in pts}
    assert {"lstm+unroll8", "lstm+unroll32", "cudnn-lstm", "attn-cudnn"} <= labels
    assert all(p.get("unroll", 1) == 1 for p in pts if p["model"] != "lstm")
    assert any(p.get("heads") == 8 for p in pts)
    assert max(p.get("devices", 1) for p in pts) == 1
    # unrolled variants are not traced (one trace per model)
    assert all("unroll" not in p for p in scale.trace_points(pts, 1, 1024))
    keys = [json.dumps(p, sort_keys=True) for p in pts]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_run_point_unroll_and_half_precision(dtype):
    res = scale.run_point({"model": "lstm", "seq_len": 8, "batch": 2, "width": 16, "dtype": dtype,
                           "unroll": 4, "mode": "train", "warmup": 0, "repeats": 1})
    assert res["framework"] == "jax" and res["median_s"] > 0


def test_point_options_are_checked():
    from jaxseq.bench.workloads import model_label, normalize_point

    base = {"model": "lstm", "seq_len": 8, "batch": 2, "width": 16}
    assert model_label({**base, "unroll": 8}) == "lstm+unroll8"
    assert model_label({**base, "unroll": 1}) == "lstm"
    with pytest.raises(ValueError, match="unroll must be a positive int"):
        normalize_point({**base, "unroll": 0})
    with pytest.raises(ValueError, match="unroll applies to 'lstm' and 'gru' only"):
        normalize_point({**base, "model": "mingru", "unroll": 2})
    with pytest.raises(ValueError, match="dtype must be one of"):
        normalize_point({**base, "dtype": "float8"})


def test_pallas_step_points():
    """The gpu-lstm-stack preset's Pallas points: labels, checks, and one point run on the CPU."""
    from jaxseq.bench.workloads import MODELS, model_label, normalize_point

    base = {"model": "lstm", "seq_len": 8, "batch": 2, "width": 16}
    assert model_label({**base, "step_kernel": "pallas"}) == "lstm+pallas"
    assert model_label({**base, "step_kernel": "pallas", "block_hidden": 32}) == "lstm+pallas-bh32"
    assert model_label({**base, "step_kernel": "xla"}) == "lstm"
    assert model_label({**base, "step_kernel": "pallas", "pallas_in_place": False}) == "lstm+pallas-step"
    with pytest.raises(ValueError, match="pallas_in_place applies to step_kernel 'pallas' only"):
        normalize_point({**base, "pallas_in_place": False})
    with pytest.raises(ValueError, match="step_kernel must be 'xla' or 'pallas'"):
        normalize_point({**base, "step_kernel": "triton"})
    with pytest.raises(ValueError, match="step_kernel applies to 'lstm' and 'lstm-layer' only"):
        normalize_point({**base, "model": "gru", "step_kernel": "pallas"})
    with pytest.raises(ValueError, match="block_hidden applies to step_kernel 'pallas' only"):
        normalize_point({**base, "block_hidden": 32})
    with pytest.raises(ValueError, match="block_hidden"):
        normalize_point({**base, "step_kernel": "pallas", "block_hidden": 24})

    labels = {model_label(p) for p in scale.build_points("gpu-lstm-stack", available=MODELS, max_devices=1)}
    assert {"lstm+pallas", "lstm+pallas-bh32", "lstm+pallas-step", "lstm-layer+L8+pallas"} <= labels
    res = scale.run_point({**base, "step_kernel": "pallas", "mode": "train", "warmup": 0, "repeats": 1})
    assert res["framework"] == "jax" and res["median_s"] > 0


def test_pair_case_skips_failed_workloads_and_survives_errors(monkeypatch, capsys):
    from jaxseq.bench import timing

    calls = []
    ok = lambda name: type("W", (), {"name": name})()  # noqa: E731
    monkeypatch.setattr("jaxseq.bench.workloads.blocked_step", lambda w, compiled=None: (lambda: calls.append((w.name, compiled))))
    out = ops_bench.pair_case([ok("anchor"), None, ok("b")], rounds=2, executables=[None, None, "exe-b"])
    assert out[0] is None and out[1] is None and out[2]["rounds"] == 2
    assert set(calls) == {("anchor", None), ("b", "exe-b")}  # each workload paired with its own executable
    assert ops_bench.pair_case([None, ok("b")], rounds=2) == [None, None]  # no anchor: nothing to pair

    def boom(*a, **k):
        raise MemoryError("out of memory")

    monkeypatch.setattr(timing, "time_paired", boom)
    assert ops_bench.pair_case([ok("anchor"), ok("b")], rounds=2) == [None, None]
    assert "paired rounds skipped for this case (MemoryError: out of memory)" in capsys.readouterr().out
