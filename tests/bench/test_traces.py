"""`jaxseq trace summary`: named parts from a real jax.profiler trace, self times, run names, the CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from jaxseq.bench.traces import (
    NAMED_PARTS, OTHER, self_times, find_traces, format_summaries, part_of, summarize_traces,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "profiles" / "cpu-2core" / "scaling" / "traces"


@pytest.mark.parametrize("op_name, part", [
    ("jit(step)/jvp(embedding)/gather", "embedding"),
    ("jit(step)/transpose(jvp(recurrence))/while/body/dot_general", "recurrence"),
    ("jit(step)/optimizer_update/mul", "optimizer_update"),
    ("jit(step)/eval/embedding/gather", "eval"),  # the outermost named scope wins
    ("jit(loss)/jvp(jit(_lstm_impl))/while", OTHER),  # a jitted *function* called loss is no scope
    ("jit(step)/lossy/add", OTHER),
    ("", OTHER),
    (None, OTHER),
])
def test_part_of(op_name, part):
    assert part_of(op_name) == part


def test_self_times_subtract_nested_events():
    # while [0, 100) holds a [10, 40) and b [50, 60); b holds c [52, 55); d [100, 120) follows.
    events = [(0, 100, "while"), (10, 30, "a"), (50, 10, "b"), (52, 3, "c"), (100, 20, "d")]
    got = dict((p, t) for t, p in self_times(events))
    assert got == {"while": 100 - 30 - 10, "a": 30, "b": 10 - 3, "c": 3, "d": 20}
    # Overlapping without nesting (concurrent work): both stay whole.
    assert sorted(self_times([(0, 10, "a"), (5, 10, "b")])) == [(10, "a"), (10, "b")]


@pytest.fixture(scope="module")
def scoped_trace(tmp_path_factory):
    """A trace of 3 calls of a jitted function with three named parts, each call a StepTraceAnnotation."""

    @jax.jit
    def f(ids, table, w):
        with jax.named_scope("embedding"):
            e = table[ids]
        with jax.named_scope("recurrence"):
            h = lax.fori_loop(0, 8, lambda i, h: jnp.tanh(h @ w), e)
        with jax.named_scope("loss"):
            loss = jnp.sum((h @ w) ** 2)
        return loss, e.sum() * 3.0

    ids = jnp.arange(128) % 50
    table = jnp.ones((50, 128))
    w = jnp.eye(128) * 0.5
    jax.block_until_ready(f(ids, table, w))  # compiled outside the trace
    folder = tmp_path_factory.mktemp("traces") / "scoped"
    with jax.profiler.trace(str(folder)):
        for k in range(3):
            with jax.profiler.StepTraceAnnotation("train", step_num=k):
                jax.block_until_ready(f(ids, table, w))
    return folder


def test_summary_of_a_real_trace_names_the_parts(scoped_trace):
    [s] = summarize_traces(scoped_trace.parent)
    assert s.name.startswith("scoped/")  # <run folder>/<profile time>, as TensorBoard names it
    assert {"embedding", "recurrence", "loss"} <= set(s.parts), s.parts
    assert s.has_named_parts and len(s.steps) == 3
    assert sum(s.parts.values()) == pytest.approx(s.op_time_s)
    assert sum(o.total_s for o in s.ops) == pytest.approx(s.op_time_s)
    # The loop body runs 8 times per call: its ops occur 24 times; every op of the program runs 3k times.
    body = [o for o in s.ops if o.part == "recurrence" and not o.name.startswith("while")]
    assert body and all(o.count == 24 for o in body), body
    assert all(o.count % 3 == 0 for o in s.ops), s.ops
    # 8 matmuls in the loop against 1 in the loss.
    assert s.share("recurrence") > s.share("loss") > 0
    text = format_summaries([s], top=3)
    assert "recurrence" in text and text.count("\n") >= 3 + len(s.parts) + 3


def test_committed_traces_read_without_named_parts():
    # Recorded before the named scopes existed: all the op time is "other", and still summarised.
    summaries = summarize_traces(COMMITTED)
    assert len(summaries) >= 4
    for s in summaries:
        assert s.op_time_s > 0 and s.ops and list(s.parts) == [OTHER]
        assert s.name.split("/")[0] in {p.name for p in COMMITTED.iterdir()}
    assert "no named part" in format_summaries(summaries)


@pytest.mark.parametrize("name", ["mingru_T256_bfloat16", "lstm_T256_bfloat16"])
def test_gpu_traces_use_the_device_planes(name):
    import gzip

    [s] = summarize_traces(REPO / "profiles" / "gpu-nvidia-h200x1" / "scaling" / "traces" / name)
    # Reference: the kernels of the GPU streams in the trace.json.gz that jax.profiler wrote beside it
    # (one stream here: nothing nests, so each kernel's duration is its self time).
    [tj] = s.path.parent.glob("*.trace.json.gz")
    events = json.loads(gzip.decompress(tj.read_bytes()))["traceEvents"]
    gpu = {e["pid"] for e in events if e.get("name") == "process_name" and "/device:GPU" in e["args"]["name"]}
    kernels = [e for e in events if e.get("ph") == "X" and e["pid"] in gpu and "hlo_op" in e.get("args", {})]
    assert s.op_time_s == pytest.approx(sum(e["dur"] for e in kernels) / 1e6, rel=1e-3)
    assert sum(o.count for o in s.ops) == len(kernels)
    top = max(kernels, key=lambda e: e["dur"])["name"]
    assert top in {o.name for o in s.ops}


def test_find_traces_names_runs_like_tensorboard(tmp_path):
    src = next(COMMITTED.glob("mingru_*/plugins/profile/*"))
    for run in ("traces/a", "runs/x/logs/x"):
        shutil.copytree(src, tmp_path / run / "plugins" / "profile" / src.name)
    names = [n for n, _ in find_traces(tmp_path)]
    assert names == [f"runs/x/logs/x/{src.name}", f"traces/a/{src.name}"]
    # A profile folder or one file on its own.
    assert [n for n, _ in find_traces(tmp_path / "traces/a/plugins/profile" / src.name)] == [src.name]
    [(_, f)] = find_traces(tmp_path / "traces/a")
    assert find_traces(f) == [(src.name, f)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxseq.cli", "trace", "summary", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO),
                          "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})


def test_cli_prints_tables_and_json(scoped_trace, tmp_path):
    r = _cli(str(scoped_trace), "--top", "2")
    assert r.returncode == 0, r.stderr
    assert "recurrence" in r.stdout and "top device ops" in r.stdout
    r = _cli(str(scoped_trace), "--json", "--top", "2")
    assert r.returncode == 0, r.stderr
    [d] = json.loads(r.stdout)
    assert set(d["parts"]) <= {*NAMED_PARTS, OTHER} and len(d["ops"]) == 2


@pytest.mark.parametrize("args, needle", [
    (["/nonexistent/folder"], "no such file"),
    (["tests"], "no profiler trace"),  # a folder without traces
    (["README.md"], "expected a folder or a *.xplane.pb"),
    ([".", "--top", "0"], "--top"),
])
def test_cli_bad_input_is_one_line(args, needle):
    r = _cli(*args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
