"""The report's "Generation" section from synthetic records, and the presets' generation points."""
import math

import pytest

from jaxseq.bench.generation import state_bytes_per_sequence
from jaxseq.bench.sweep import point_key
from jaxseq.studies.scaling import report
from jaxseq.studies.scaling import sweep as scale

CONTEXTS = (256, 1024, 4096, 16384)


def gen_record(model, context, ms, *, B=1, W=256, k=16):
    point = {"model": model, "seq_len": context, "batch": B, "width": W, "dtype": "float32",
             "mode": "generate", "warmup": 1, "repeats": 7}
    state = state_bytes_per_sequence(model, context=context, width=W, layers=2)
    result = {
        "framework": "jax", "tokens": B * k, "notes": "",
        "memory": {"temp_bytes": 100, "argument_bytes": state + 1000},
        "median_s": ms * k / 1e3, "tokens_per_s": B * k / (ms * k / 1e3), "compile_s": 0.5,
        "load_before": [0.5] * 3, "flops_analytic": 1e6, "tflops_per_s": None, "mfu": None,
        "context": context, "layers": 2, "new_tokens": k, "ms_per_token": ms,
        "state_bytes_per_seq": state, "compiled_bytes_per_seq": state + 1100 + 1000,
        "compiled_state_bytes_per_seq": state + 1100, "params": 250, "param_bytes": 1000,
    }
    return {"key": point_key(point), "status": "ok", "message": None, "point": point,
            "result": result, "device": {"backend": "cpu", "cpu_count": 2}}


def records(transformer_ms, lstm_ms=1.0, mingru_ms=0.2):
    recs = []
    for T, tm in zip(CONTEXTS, transformer_ms):
        recs += [gen_record("lstm", T, lstm_ms), gen_record("mingru", T, mingru_ms),
                 gen_record("transformer", T, tm)]
    return recs


def test_crossover_found_and_interpolated():
    finds = report.generation_findings(records([0.5, 0.8, 2.0, 4.0]))
    f = next(f for f in finds if f["rnn"] == "lstm")
    assert f["kind"] == "crossover"
    # log-log between (1024, 0.8) and (4096, 2.0)
    frac = math.log(1 / 0.8) / math.log(2.0 / 0.8)
    want = math.exp(math.log(1024) + frac * math.log(4))
    assert f["context"] == pytest.approx(want)
    kv, _ = f["memory"]["transformer"]
    assert kv == pytest.approx(2 * 2 * want * 256 * 4)  # the key/value cache at that context
    assert f["memory"]["lstm"][0] == 2 * 2 * 256 * 4
    text = report.generation_sentence(f)
    assert f"about {want:,.0f} tokens" in text and "between the measured contexts 1,024 and 4,096" in text
    # minGRU (0.2 ms) is faster than the Transformer everywhere: crossover below 256
    g = next(f for f in finds if f["rnn"] == "mingru")
    assert g["kind"] == "always_slower" and g["context"] == 256
    assert "below it, not within the measured contexts" in report.generation_sentence(g)


def test_no_crossover_within_the_measured_contexts():
    finds = report.generation_findings(records([0.1, 0.2, 0.4, 0.9], mingru_ms=0.01))
    f = next(f for f in finds if f["rnn"] == "lstm")
    assert f["kind"] == "never" and f["context"] == 16384
    text = report.generation_sentence(f)
    assert "not slower than the lstm's within the measured contexts (up to 16,384)" in text
    assert "64 MiB of state" in text  # the cache at 16384: 2 * 2 * 16384 * 256 * 4 bytes


def test_report_section_table_and_plot(tmp_path):
    train = {"key": "t", "status": "ok", "point": {"model": "lstm", "seq_len": 128, "batch": 8,
                                                   "width": 128, "mode": "train"},
             "result": {"framework": "jax", "median_s": 0.01, "tokens_per_s": 1e5,
                        "memory": {"temp_bytes": 1}}}
    study = report.Study(records([0.5, 0.8, 2.0, 4.0]) + [train], [])
    assert len(study.generation) == 12 and len(study.single) == 1  # kept apart
    text = report.build_report(study, tmp_path)
    assert "## Generation" in text
    section = text.split("## Generation")[1].split("\n## ")[0]
    assert "first becomes slower than the lstm's" in section
    assert "| model | context 256 | context 1024 | context 4096 | context 16384 |" in section
    assert "| transformer | 0.5 | 0.8 | 2 | 4 |" in section
    assert "| lstm | 4 KiB / " in section and "| transformer | 1 MiB / " in section  # state at 256
    assert (tmp_path / "generation_vs_context.png").stat().st_size > 0
    # Generation points stay out of the training tables.
    assert "generate" not in text.split("## Step time per configuration")[1]


def test_report_without_generation_points_has_no_section(tmp_path):
    train = {"key": "t", "status": "ok", "point": {"model": "lstm", "seq_len": 128, "batch": 8,
                                                   "width": 128, "mode": "train"},
             "result": {"framework": "jax", "median_s": 0.01, "tokens_per_s": 1e5}}
    text = report.build_report(report.Study([train], []), tmp_path)
    assert "## Generation" not in text and not (tmp_path / "generation_vs_context.png").exists()


def test_presets_have_generation_points():
    smoke = [p for p in scale.build_points("smoke") if p["mode"] == "generate"]
    assert {p["model"] for p in smoke} == {"lstm", "mingru", "transformer"}
    cpu = [p for p in scale.build_points("cpu") if p["mode"] == "generate"]
    assert {p["seq_len"] for p in cpu} >= set(CONTEXTS)
    assert {(p["batch"], p["width"]) for p in cpu} == {(1, 256)}
    assert len(cpu) == 3 * len({p["seq_len"] for p in cpu})
    for preset in ("gpu", "gpu-generate"):
        pts = [p for p in scale.build_points(preset) if p["mode"] == "generate"]
        assert max(p["seq_len"] for p in pts) == 65536
    # "transformer" is a generation model only: it selects the generation points alone.
    only = scale.build_points("cpu", models=["transformer"], include_devices=False)
    assert only and all(p["mode"] == "generate" and p["model"] == "transformer" for p in only)
    assert not any(p["mode"] == "generate" for p in scale.trace_points(scale.build_points("cpu")))
