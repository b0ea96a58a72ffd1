"""`--profile-steps`: XProf's own step time matches the logged one, evaluations are labelled, not steps,
and the trace names the parts of the step."""
from __future__ import annotations

import json
import statistics

import pytest

from jaxseq.bench.traces import summarize_traces
from jaxseq.data import charlm
from jaxseq.train import metrics as metrics_lib
from jaxseq.train.config import TrainConfig
from jaxseq.train.loop import train
from jaxseq.train.profiling import trace_files


def _xprof_steps(xplane) -> dict[str, float]:
    """{step name: step time ms} from XProf's own overview page (what TensorBoard's Overview shows)."""
    from xprof.convert import raw_to_tool_data

    data, _ = raw_to_tool_data.xspace_to_tool_data([str(xplane)], "overview_page", {"use_saved_result": False})
    for table in json.loads(data):
        if "steptime_ms_average" in (table.get("p") or {}):
            ids = [c["id"] for c in table["cols"]]
            name, ms = ids.index("stepnum"), ids.index("stepTimeMs")
            return {row["c"][name]["v"]: row["c"][ms]["v"] for row in table["rows"]}
    raise AssertionError("no step-time table in XProf's overview page")


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    # Steps of ~5-10 ms on a CPU (an LSTM over 64 characters): long against the host's own overhead.
    workdir = tmp_path_factory.mktemp("prof") / "lstm-run"
    cfg = TrainConfig(workdir=str(workdir), model="lstm", d_model=64, layers=1, steps=9, batch_size=16,
                      seq_len=64, lr=1e-2, warmup_steps=2, eval_every=5, eval_batches=1, ckpt_every=0,
                      log_every=1, profile_steps="3:8", progress=False).validate()
    train(cfg, data=charlm.load_tinyshakespeare())
    return workdir


def test_xprof_step_time_is_the_logged_step_time(profiled_run):
    [xplane] = trace_files(profiled_run / "logs")
    steps = _xprof_steps(xplane)
    # Steps 3..7 are the train steps; the evaluation after step 5 is not one of them.
    assert sorted(steps) == [f"train {k}" for k in range(3, 8)], steps
    logged = {r["step"]: r["perf/step_time"] * 1e3
              for r in metrics_lib.read_jsonl(profiled_run / "logs" / "metrics.jsonl") if "perf/step_time" in r}
    common = [k for k in range(3, 8) if k in logged]  # the step after an evaluation is not timed
    assert len(common) >= 3, logged
    xprof_ms = statistics.median(steps[f"train {k}"] for k in common)
    logged_ms = statistics.median(logged[k] for k in common)
    # An annotation around the asynchronous dispatch alone gave ~1/20 of the logged time here. Medians and 25%:
    # on a fast 2-core host the steps take ~15 ms and single steps vary by +-30% (a clean-clone run measured
    # logged 14.2 / 11.4 / 21.0 ms against XProf 14.7 / 15.8 / 16.6 ms, means 10.1% apart).
    assert xprof_ms == pytest.approx(logged_ms, rel=0.25), (steps, logged)


def test_profile_and_scalars_under_the_run_name(profiled_run):
    logs = profiled_run / "logs"
    assert json.loads((profiled_run / "config.json").read_text())["run_name"] == "lstm-run"
    [xplane] = trace_files(logs)
    assert xplane.relative_to(logs).parts[:3] == ("lstm-run", "plugins", "profile")
    assert list((logs / "lstm-run").glob("events.out.tfevents.*"))
    assert not list(logs.glob("events.out.tfevents.*"))  # TensorBoard would call that run "."


def test_trace_names_the_engine_parts(profiled_run):
    [s] = summarize_traces(profiled_run / "logs")
    assert s.name.startswith("lstm-run/")
    # The evaluation inside the window is its own part; the train step's parts are named.
    for part in ("embedding", "loss", "optimizer_update", "eval"):
        assert s.parts.get(part, 0) > 0, (part, s.parts)
    assert len(s.steps) == 5
