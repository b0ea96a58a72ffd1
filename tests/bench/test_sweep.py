"""The resumable sweep: resume (per machine), OOM / error recording, per-point timeout in a worker
process; machine fingerprints, ids, folder names, and the fingerprints derived for legacy records."""
import json
import platform
import re
import time
from pathlib import Path

import pytest

from jaxseq.bench import sweep as sweep_mod
from jaxseq.bench.sweep import (FINGERPRINT_FIELDS, Sweep, classify_exception, load_records,
                                machine_fingerprint, machine_id, machine_slug, point_key,
                                record_fingerprint, record_machine_id)

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
MACHINE_A = {"backend": "cpu", "device_kind": "cpu", "device_count": 1,
             "cpu_model": "AMD EPYC 7763 64-Core Processor", "cpu_count": 4, "jax": "0.10.2",
             "jaxlib": "0.10.2", "platform_version": "cpu"}
MACHINE_B = dict(MACHINE_A, cpu_model="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", cpu_count=16)

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
    # Worker records carry the sweep's (this process's) machine, not the worker's view of it.
    assert {r["machine_id"] for r in recs} == {machine_id(machine_fingerprint())}


def test_fingerprint_describes_the_machine_not_the_host(monkeypatch):
    fp = machine_fingerprint()
    assert tuple(fp) == FINGERPRINT_FIELDS
    assert fp["backend"] == "cpu" and fp["jax"] and fp["cpu_count"] >= 1
    # conftest gives this process 4 fake CPU devices: a process setting, not the machine's.
    import jax

    assert len(jax.devices()) == 4 and fp["device_count"] == 1
    assert re.fullmatch(r"[0-9a-f]{12}", machine_id(fp))
    monkeypatch.setattr(platform, "node", lambda: "another-ci-runner")
    assert machine_id(machine_fingerprint(refresh=True)) == machine_id(fp)
    # The id follows the identifying fields, whatever their order, and nothing else.
    assert machine_id(dict(reversed(list(fp.items())))) == machine_id(fp)
    assert machine_id({**fp, "note": "ignored"}) == machine_id(fp)
    assert machine_id({**fp, "jax": "9.9.9"}) != machine_id(fp)


def test_machine_slugs():
    assert machine_slug(MACHINE_A) == "cpu-amd-epyc-7763-64-core-4core"
    assert machine_slug(MACHINE_B) == "cpu-intel-xeon-platinum-8480-16core"
    assert machine_slug(dict(MACHINE_A, cpu_model="Intel(R) Xeon(R) Processor", cpu_count=2)) \
        == "cpu-intel-xeon-2core"
    gpu = dict(MACHINE_A, backend="gpu", device_kind="NVIDIA H200", device_count=8)
    assert machine_slug(gpu) == "gpu-nvidia-h200x8"
    assert machine_slug(dict(MACHINE_A, cpu_model=None, cpu_count=2)) == "cpu-2core"
    # The slug names a folder: no versions in it (they are in the id).
    assert machine_slug(dict(MACHINE_A, jax="0.11.0")) == machine_slug(MACHINE_A)
    assert machine_id(dict(MACHINE_A, jax="0.11.0")) != machine_id(MACHINE_A)


def test_legacy_records_get_a_derived_fingerprint():
    # The committed results were written before fingerprints: one machine per folder, including the
    # device-count points that ran on 2, 4 and 8 fake CPU devices.
    cpu = load_records(PROFILES / "cpu-2core" / "scaling" / "results.jsonl")
    h200 = load_records(PROFILES / "gpu-nvidia-h200x1" / "scaling" / "results.jsonl")
    assert cpu and h200
    assert {r["device"]["device_count"] for r in cpu} == {1, 2, 4, 8}
    assert len({record_machine_id(r) for r in cpu}) == 1
    fp = record_fingerprint(cpu[0])
    assert fp["legacy"] and fp["cpu_count"] == 2 and fp["jax"] == "0.10.2"
    assert machine_slug(fp) == "cpu-2core"
    assert machine_slug(record_fingerprint(h200[0])) == "gpu-nvidia-h200x1"
    assert record_machine_id(h200[0]) != record_machine_id(cpu[0])
    # A live machine with exactly the derived fields is still another machine: never resumed from.
    live = {k: v for k, v in fp.items() if k != "legacy"}
    assert machine_id(live) != machine_id(fp)


def test_resume_is_per_machine(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    points = [{"x": i} for i in range(3)]
    CALLS.clear()
    recs = Sweep(path, points, square, progress=False, machine=MACHINE_A).run()
    assert len(recs) == 3 and len(CALLS) == 3
    assert all(r["fingerprint"] == MACHINE_A and r["machine_id"] == machine_id(MACHINE_A)
               for r in recs)
    # Machine B finds A's points in the file and runs them all itself.
    CALLS.clear()
    sweep_b = Sweep(path, points, square, progress=False, machine=MACHINE_B)
    assert sweep_b.pending() == points and sweep_b.foreign_records() == {machine_id(MACHINE_A): 3}
    recs = sweep_b.run()
    assert [r["point"] for r in recs] == points and len(CALLS) == 3
    assert {r["machine_id"] for r in recs} == {machine_id(MACHINE_B)}
    # Each machine now resumes: nothing left to run for either.
    CALLS.clear()
    assert Sweep(path, points, square, progress=False, machine=MACHINE_A).run() == []
    assert Sweep(path, points, square, progress=False, machine=MACHINE_B).run() == []
    assert CALLS == [] and len(load_records(path)) == 6
    # Without `machine`, the process's own fingerprint (monkeypatched here) decides.
    monkeypatch.setattr(sweep_mod, "_FINGERPRINT", dict(MACHINE_B))
    assert Sweep(path, points, square, progress=False).pending() == []
    # Legacy records (no fingerprint) of the same points do not count as done for anyone.
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text("".join(json.dumps({"key": point_key(p), "status": "ok", "point": p,
                                          "device": {"backend": "cpu", "cpu_count": 4},
                                          "versions": {"jax": "0.10.2"}}) + "\n" for p in points))
    assert Sweep(legacy, points, square, progress=False).pending() == points


@pytest.mark.parametrize("text, tunables, thp, hugetlb, label", [
    ("always [madvise] never\n", None, "madvise", None, "THP madvise"),
    ("[always] madvise never\n", "glibc.malloc.hugetlb=1", "always", "1", "THP always + malloc hugetlb=1"),
    ("always madvise [never]\n", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0", "never", "0", "THP never"),
    (None, "glibc.malloc.hugetlb=2", None, "2", "THP ? + malloc hugetlb=2"),
])
def test_memory_info(tmp_path, monkeypatch, text, tunables, thp, hugetlb, label):
    from jaxseq.bench.sweep import huge_pages_on, memory_info, memory_label

    path = tmp_path / "enabled"
    if text is not None:
        path.write_text(text)
    if tunables is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", tunables)
    info = memory_info(path)
    assert info == {"transparent_hugepage": thp, "malloc_hugetlb": hugetlb}
    assert memory_label(info) == label
    assert huge_pages_on(info) == (thp == "always" or hugetlb not in (None, "0"))
    assert memory_label(None) == memory_label({}) == "not recorded"
    from jaxseq.bench.sweep import environment_info

    assert environment_info()["memory"] == memory_info()
