"""`jaxseq report` on handcrafted records in the exact schema `jaxseq.bench.sweep` writes."""
import json
import math

import pytest

from jaxseq.studies.scaling import report
from jaxseq.bench.sweep import point_key
from jaxseq.cli import main

ENV = {
    "versions": {"python": "3.11.7", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8",
                 "torch": "2.13.0+cpu"},
    "device": {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "host": "box",
               "cpu_count": 2},
}


def record(model, T, seconds, *, B=8, W=128, mode="train", dtype="float32", status="ok",
           devices=None, parallel="jit", temp=None, message=None, load=0.5):
    point = {"model": model, "seq_len": T, "batch": B, "width": W, "dtype": dtype, "mode": mode,
             "warmup": 1, "repeats": 3}
    if devices is not None:
        point.update(devices=devices, parallel=parallel)
    tokens = B * T * (devices or 1)
    torch = model.startswith("torch-")
    result = None
    if status == "ok":
        result = {
            "framework": "torch" if torch else "jax", "tokens": tokens, "notes": "",
            "memory": None if torch else {"temp_bytes": temp or 1000 * T, "argument_bytes": 10,
                                          "output_bytes": 10, "alias_bytes": 0,
                                          "generated_code_bytes": 0, "peak_bytes": None},
            "flops_xla": None if torch else 1e6, "peak_rss_bytes": 2000 * T,
            "device_memory": None,
            "median_s": seconds, "min_s": seconds * 0.9, "max_s": seconds * 1.1,
            "times_s": [seconds] * 3, "compile_s": None if torch else 0.5,
            "load_before": [load, load, load], "load_after": [load, load, load],
            "tokens_per_s": tokens / seconds, "flops_analytic": 1e9, "tflops_per_s": 1e-3 / seconds,
            "peak_flops": None, "mfu": None,
        }
    dev = dict(ENV["device"], device_count=devices or 1)
    return {"key": point_key(point), "status": status, "message": message, "point": point,
            "result": result, "elapsed_s": 1.0, "timestamp": "2026-11-27T08:00:00+00:00",
            "load": [load, load, load], "versions": ENV["versions"], "device": dev}


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


LENGTHS = [128, 256, 512, 1024, 2048, 4096, 16384]


def fixture_records():
    recs = []
    for T in LENGTHS:
        recs.append(record("lstm", T, 1e-3 * T))  # slope 1
        recs.append(record("attn-xla", T, 1e-6 * T * T))  # slope 2, equal to lstm at T=1000
        recs.append(record("torch-lstm", T, 2e-3 * T))  # lstm is 2x its anchor
    recs.append(record("mingru", 4096, 1e-3 * 4096 / 2))  # 2x faster than lstm
    recs.append(record("mingru", 16384, 1e-3 * 16384 / 3))  # 3x: growing
    # targets: LSTM 1.5x torch (met); blockwise 0.8x SDPA (not met), memory linear in T
    recs.append(record("lstm", 1024, 1.0, B=32, W=256))
    recs.append(record("torch-lstm", 1024, 1.5, B=32, W=256))
    for T in (1024, 2048, 4096):
        recs.append(record("attn-blockwise", T, 1e-4 * T, W=256, temp=5000 * T))
        recs.append(record("torch-sdpa", T, 0.8e-4 * T, W=256))
    # device scaling: 1 device 1000 tok/s, 2 devices 1800 tok/s (90%)
    recs.append(record("lstm", 512, 8 * 512 / 1000, devices=1, B=8))
    recs.append(record("lstm", 512, 2 * 8 * 512 / 1800, devices=2, B=8))
    # failures, and a point retried: its last record (ok) counts
    recs.append(record("attn-naive", 16384, 0, status="oom", message="RESOURCE_EXHAUSTED: 8 GB"))
    recs.append(record("gru", 16384, 0, status="timeout", message="point exceeded 120 s"))
    recs.append(record("minlstm", 1024, 0, status="error", message="boom"))
    recs.append(record("minlstm", 1024, 0.2))
    return recs


def test_loglog_slope():
    assert report.loglog_slope([1, 2, 4, 8], [3, 6, 12, 24]) == pytest.approx(1.0)
    assert report.loglog_slope([10, 100, 1000], [5e-2, 5, 500]) == pytest.approx(2.0)
    assert report.loglog_slope([4], [1]) is None


def test_report_from_handcrafted_records(tmp_path):
    write_jsonl(tmp_path / "results.jsonl", fixture_records())
    assert main(["report", "--in", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    # slopes computed from the data
    assert "lstm (B=8 W=128 float32 train, T=128-16384): step time ~ T^1.00, about linear" in text
    assert "attn-xla (B=8 W=128 float32 train, T=128-16384): step time ~ T^2.00, about quadratic" \
        in text
    # crossover: attention 1e-6 T^2 vs lstm 1e-3 T cross at T=1000
    assert "attn-xla vs lstm (B=8 W=128 float32 train): attention becomes slower than lstm at " \
        "T=1024 (1.02x its time), crossing near T=1,000" in text
    assert "mingru vs lstm (B=8 W=128 float32 train): lstm time / mingru time = 2.00x at T=4096, " \
        "3.00x at T=16384 - the factor grows with T" in text
    # anchors and targets
    assert "| lstm | torch-lstm | B=8 W=128 float32 train |" in text and "2.00x" in text
    assert "scale sweep: 1.50x (met" in text
    assert "scale sweep: 0.80x (NOT met" in text
    assert "XLA temporaries ~ T^1.00 over T=1024-4096" in text
    assert "2.00x at T=4096, 3.00x at T=16384 (B=8 W=128 float32 train) - met" in text
    # device scaling, environment, failures, retried point
    assert "2 dev: 1.80x (90%)" in text
    assert "versions: " in text and "jax 0.10.2" in text and "device: cpu" in text
    assert "| oom | attn-naive | 16384 |" in text and "RESOURCE_EXHAUSTED" in text
    assert "| timeout | gru | 16384 |" in text
    assert "| error | minlstm |" not in text  # its retry succeeded
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert {"step_time_vs_length.png", "tokens_per_s_vs_length.png", "memory_vs_length.png",
            "compile_time_vs_length.png", "tflops_vs_length.png", "scaling_devices.png"} <= pngs
    for name in pngs:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text


def test_report_partial_and_bench_only(tmp_path, capsys):
    # One model, one length; a line cut short by a kill; bench_ops.jsonl beside it.
    (tmp_path / "results.jsonl").write_text(json.dumps(record("gru", 64, 0.01)) + "\n{\"key\": ")
    bench = []
    for model, secs in (("torch-lstm", 1.4), ("lstm", 1.0)):
        rec = record(model, 1024, secs, B=32, W=256)
        bench.append({"bench": "ops", "case": "lstm", "anchor": "torch-lstm",
                      "ratio_vs_anchor": 1.4 / secs, "status": "ok", "point": rec["point"],
                      "result": rec["result"], **ENV, "load": [0.1] * 3, "timestamp": "t"})
    write_jsonl(tmp_path / "bench_ops.jsonl", bench)
    out = tmp_path / "rep"
    assert main(["report", "--in", str(tmp_path), "--out", str(out), "--table"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "bench ops: 1.40x (met" in text
    assert "Where attention becomes slower" not in text  # no attention in the data
    assert "| gru |" in text
    printed = capsys.readouterr().out
    assert "gru" in printed and "bench ops: 1.40x (met" in printed
    # bench ops only
    (tmp_path / "results.jsonl").unlink()
    assert main(["report", "--in", str(tmp_path)]) == 0


def test_report_errors(tmp_path, capsys):
    assert main(["report", "--in", str(tmp_path / "missing")]) == 2
    assert main(["report", "--in", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "neither results.jsonl nor bench_ops.jsonl" in err
    assert math.isfinite(report.loglog_slope([1, 2], [1, 1]))


def test_report_gpu_targets(tmp_path):
    # A GPU study: the GPU targets replace the CPU ones; unrolled variants are their own series.
    def gpu(rec, mfu=None):
        rec["device"] = dict(rec["device"], backend="gpu", device_kind="NVIDIA H100 80GB HBM3")
        if mfu is not None:
            rec["result"].update(mfu=mfu, tflops_per_s=mfu * 989)
        return rec

    lstm = record("lstm", 1024, 0.020, B=16, W=768, dtype="float16")
    unrolled = record("lstm", 1024, 0.004, B=16, W=768, dtype="float16")
    unrolled["point"]["unroll"] = 8
    unrolled["key"] = point_key(unrolled["point"])
    recs = [gpu(lstm), gpu(unrolled),
            gpu(record("torch-lstm", 1024, 0.005, B=16, W=768, dtype="float16")),
            gpu(record("attn-cudnn", 4096, 0.010, B=16, W=1024, dtype="bfloat16")),
            gpu(record("attn-xla", 4096, 0.020, B=16, W=1024, dtype="bfloat16")),
            gpu(record("transformer-block", 2048, 0.05, B=16, W=1024, dtype="bfloat16"), mfu=0.31),
            gpu(record("transformer-block", 2048, 0.09, B=16, W=2048, dtype="bfloat16"), mfu=0.52)]
    write_jsonl(tmp_path / "results.jsonl", recs)
    assert main(["report", "--in", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    # CPU targets are not among a GPU study's findings (the comparison table beside the committed
    # references lists every machine's headline points, CPU ones included).
    assert "batch 32, hidden 256" not in text.split("## Findings")[1]
    assert "jaxseq lstm training step vs torch.nn.LSTM on cuDNN" in text
    assert "scale sweep: 0.25x (NOT met" in text  # plain scan: 20 ms vs 5 ms
    assert "scale sweep: 1.25x (met" in text  # unroll 8: 4 ms vs 5 ms
    assert "attn-xla training step vs cuDNN flash attention" in text and "0.50x (NOT met" in text
    assert "best 52.0% (514 TFLOP/s) at T=2048 B=16 W=2048 bfloat16 - met" in text
    assert "| lstm+unroll8 |" in text


def _with(rec, **fields):
    rec["point"].update(fields)
    rec["key"] = point_key(rec["point"])
    return rec


def test_report_stack_targets(tmp_path):
    # Issue 13: the 4-layer and 2-layer bidirectional stacks against their torch twins (bench ops
    # rows, labelled by layers/bidirectional/schedule), and the GPU 8-layer stack per schedule.
    bench = []
    for model, secs, fields in (("torch-lstm", 1.0, dict(layers=4)), ("lstm-layer", 1.25, dict(layers=4)),
                                ("lstm-layer", 0.8, dict(layers=4, schedule="wavefront")),
                                ("torch-lstm", 1.0, dict(layers=2, bidirectional=True)),
                                ("lstm-layer", 0.9, dict(layers=2, bidirectional=True))):
        rec = _with(record(model, 512, secs, B=32, W=256), **fields)
        bench.append({"bench": "ops", "status": "ok", "point": rec["point"], "result": rec["result"],
                      **ENV, "load": [0.1] * 3, "timestamp": "t"})
    write_jsonl(tmp_path / "bench_ops.jsonl", bench)
    lines = report.target_lines(report.load_study(tmp_path))
    stack = [ln for ln in lines if "4 stacked layers" in ln]
    bi = [ln for ln in lines if "2 bidirectional layers" in ln]
    assert len(stack) == 1 and "bench ops: 0.80x (NOT met" in stack[0]  # the default schedule's row
    assert len(bi) == 1 and "bench ops: 1.11x (met" in bi[0]

    def gpu(rec):
        rec["device"] = dict(rec["device"], backend="gpu", device_kind="NVIDIA H200")
        return rec

    gdir = tmp_path / "gpu"
    gdir.mkdir()
    recs = [gpu(_with(record("torch-lstm", 1024, 0.10, B=16, W=1024, dtype="float16"), layers=8)),
            gpu(_with(record("lstm-layer", 1024, 0.20, B=16, W=1024, dtype="float16"), layers=8,
                      schedule="layers")),
            gpu(_with(record("lstm-layer", 1024, 0.07, B=16, W=1024, dtype="float16"), layers=8,
                      schedule="wavefront")),
            gpu(_with(record("lstm-layer", 1024, 0.125, B=16, W=1024, dtype="float16"), layers=8,
                      step_kernel="pallas"))]
    write_jsonl(gdir / "results.jsonl", recs)
    lines = report.target_lines(report.load_study(gdir))
    eight = {ln.split("(")[1].split(" ")[0]: ln for ln in lines if "8-layer stack" in ln}
    assert "scale sweep: 0.50x (NOT met" in eight["layers"]
    assert "scale sweep: 1.43x (met" in eight["wavefront"]
    assert "scale sweep: 0.80x (NOT met" in eight["pallas"] and "(pallas step)" in eight["pallas"]


def _lstm_target_and_report(folder, bench):
    """Write bench ops rows to `folder`; return (the one-layer LSTM target line, REPORT.md's text)."""
    write_jsonl(folder / "bench_ops.jsonl", bench)
    line = next(ln for ln in report.target_lines(report.load_study(folder)) if "torch.nn.LSTM (batch 32" in ln)
    assert main(["report", "--in", str(folder), "--out", str(folder / "rep")]) == 0
    return line, (folder / "rep" / "REPORT.md").read_text()


def test_report_keeps_bench_rows_per_huge_page_setting(tmp_path):
    # The same points measured with and without malloc huge pages: both ratios are reported, each
    # with its setting, and neither overwrites the other (issue 13: the setting moves the ratio).
    bench = []
    for mem, (t_torch, t_jax) in (({"transparent_hugepage": "madvise", "malloc_hugetlb": None}, (0.50, 0.45)),
                                  ({"transparent_hugepage": "madvise", "malloc_hugetlb": "1"}, (0.30, 0.36))):
        for model, secs in (("torch-lstm", t_torch), ("lstm", t_jax)):
            rec = record(model, 1024, secs, B=32, W=256)
            bench.append({"bench": "ops", "case": "lstm", "status": "ok", "point": rec["point"],
                          "result": rec["result"], **ENV, "memory": mem, "load": [0.1] * 3,
                          "timestamp": "t"})
    line, text = _lstm_target_and_report(tmp_path, bench)
    assert len(report.load_study(tmp_path).bench) == 4
    assert "bench ops (THP madvise): 1.11x (met" in line
    assert "bench ops (THP madvise + malloc hugetlb=1): 0.83x (NOT met" in line
    assert "1.11x (450 vs 500 ms) (bench ops, THP madvise); 0.83x (360 vs 300 ms) (bench ops, THP madvise + malloc hugetlb=1)" in text
    assert "| large buffers |" in text and "THP madvise + malloc hugetlb=1 |" in text


def test_bench_rows_without_a_memory_setting_give_way_to_later_ones():
    rec = lambda model, mem: {"point": {"model": model, "seq_len": 8}, **({"memory": mem} if mem else {})}  # noqa: E731
    huge = {"transparent_hugepage": "madvise", "malloc_hugetlb": "1"}
    rows = [rec("a", None), rec("b", None), rec("a", huge), rec("c", huge), rec("c", None)]
    kept = report.newest_bench_rows(rows)
    # a: the unstated row is superseded; b: only an unstated row; c: the unstated row is the newer
    assert [(r["point"]["model"], "memory" in r) for r in kept] == [("b", False), ("a", True), ("c", True),
                                                                    ("c", False)]


def test_report_judges_bench_targets_on_paired_rounds(tmp_path):
    bench = []
    for model, secs in (("torch-lstm", 0.30), ("lstm", 0.40)):
        rec = record(model, 1024, secs, B=32, W=256)
        row = {"bench": "ops", "case": "lstm", "status": "ok", "point": rec["point"], "result": rec["result"],
               **ENV, "load": [0.1] * 3, "timestamp": "t"}
        if model == "lstm":  # separate medians say 0.75x; the rounds timed seconds apart say ~1.02x
            row["paired"] = {"median": 1.02, "min": 0.97, "max": 1.1, "rounds": 3, "ratios": [0.97, 1.02, 1.1],
                             "times_s": [0.31, 0.3, 0.29], "anchor_times_s": [0.3, 0.306, 0.319]}
        bench.append(row)
    line, text = _lstm_target_and_report(tmp_path, bench)
    assert "bench ops: 1.02x paired, 0.97-1.10 over 3 rounds (met" in line
    assert "0.75x from the separate medians" in line
    assert "0.75x (400 vs 300 ms), 1.02x paired (bench ops)" in text
    assert "| x anchor paired |" in text


def test_report_shows_bench_phases_of_the_same_machine(tmp_path):
    bench = []
    for model, secs in (("torch-lstm", 0.30), ("lstm", 0.40)):
        rec = record(model, 1024, secs, B=32, W=256)
        bench.append({"bench": "ops", "case": "lstm", "status": "ok", "point": rec["point"],
                      "result": rec["result"], **ENV, "load": [0.1] * 3, "timestamp": "t"})
    (tmp_path / "bench_ops.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bench))
    huge = {"transparent_hugepage": "madvise", "malloc_hugetlb": "1"}

    def phases(fwd_j, env):
        side = lambda f, b: {"forward_median_s": f, "backward_median_s": b, "step_median_s": f + b}  # noqa: E731
        return {"bench": "phases", "model": "lstm", "batch": 32, "seq_len": 1024, "hidden": 256, "rounds": 7,
                "torch": side(0.100, 0.186), "jaxseq": side(fwd_j, 0.221),
                "speed_vs_torch": {"forward": 0.100 / fwd_j, "backward": 0.84, "step": 0.74},
                **env, "memory": huge}
    other = {**ENV, "device": {**ENV["device"], "device_kind": "other-cpu"}}
    lines = [phases(0.300, ENV), phases(0.1665, ENV), phases(0.050, other)]  # rerun of a shape: newest counts
    (tmp_path / "bench_phases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    study = report.load_study(tmp_path)
    assert [r["jaxseq"]["forward_median_s"] for r in study.phases] == [0.1665]
    text = report.build_report(study, tmp_path)
    assert "## bench phases" in text
    assert "| 1 | 1024 | 32 | 256 | 7 | 100 | 186 | 286 | 166 | 221 | 388 | 0.601 | 0.84 | 0.74 |" in text
    stack = {**phases(0.2, ENV), "layers": 4, "bidirectional": True}  # another shape: a row of its own
    (tmp_path / "bench_phases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*lines, stack]))
    text = report.build_report(report.load_study(tmp_path), tmp_path)
    assert "| 4 bidirectional | 1024 |" in text and "| 1 | 1024 |" in text
    assert report.phases_section([]) == []
