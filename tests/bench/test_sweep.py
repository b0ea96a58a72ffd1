"""The resumable sweep: resume, OOM / error recording, per-point timeout in a worker process."""
import json
import time

import pytest

from jaxseq.bench.sweep import Sweep, classify_exception, load_records, point_key

CALLS: list[dict] = []


def square(point):
    CALLS.append(point)
    return {"y": point["x"] ** 2}


def flaky(point):
    # Module-level (the spawned worker imports it by name).
    if point["x"] == 1:
        raise MemoryError("pretend out of memory")
    if point["x"] == 2:
        raise ValueError("bad point")
    if point["x"] == 3:
        time.sleep(30)
    return {"y": point["x"]}


def test_point_key_is_canonical():
    assert point_key({"a": 1, "b": 2}) == point_key({"b": 2, "a": 1})


def test_resume_skips_finished_points(tmp_path):
    path = tmp_path / "r.jsonl"
    points = [{"x": i} for i in range(3)]
    CALLS.clear()
    recs = Sweep(path, points, square, progress=False).run()
    assert [r["status"] for r in recs] == ["ok"] * 3
    assert [r["result"]["y"] for r in recs] == [0, 1, 4]
    rec = recs[0]
    for field in ("versions", "device", "load", "timestamp", "elapsed_s"):
        assert field in rec
    assert rec["versions"]["jax"] and "backend" in rec["device"]
    CALLS.clear()
    assert Sweep(path, points, square, progress=False).run() == []
    assert CALLS == []
    # A new point runs alone; a line cut short by a kill is ignored.
    with open(path, "a") as f:
        f.write('{"key": "trunc')
    recs = Sweep(path, points + [{"x": 5}], square, progress=False).run()
    assert [r["point"] for r in recs] == [{"x": 5}]
    assert len(load_records(path)) == 4


def test_oom_and_error_recorded_in_process(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = Sweep(path, [{"x": 1}, {"x": 2}, {"x": 0}], flaky, progress=False).run()
    assert [r["status"] for r in recs] == ["oom", "error", "ok"]
    assert "MemoryError" in recs[0]["message"] and "bad point" in recs[1]["message"]
    lines = [json.loads(l) for l in open(path)]
    assert len(lines) == 3
    # retry=("error",) reruns only the error point
    recs = Sweep(path, [{"x": 1}, {"x": 2}, {"x": 0}], flaky, progress=False, retry=("error",)).run()
    assert [r["point"]["x"] for r in recs] == [2]


def test_classify_exception():
    assert classify_exception(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying")) == "oom"
    assert classify_exception(RuntimeError("shape mismatch")) == "error"


def test_timeout_in_worker(tmp_path):
    path = tmp_path / "r.jsonl"
    points = [{"x": 3}, {"x": 1}, {"x": 4}]
    recs = Sweep(path, points, flaky, per_point_timeout_s=4, progress=False).run()
    assert [r["status"] for r in recs] == ["timeout", "oom", "ok"]
    assert recs[2]["result"] == {"y": 4}
    assert recs[0]["device"]  # device of the killed worker is still recorded
