"""README "Reading traces", end to end: a profiled `jaxseq train` run and a committed sweep trace in one
logdir, served by a real TensorBoard on 127.0.0.1, asked through the profile plugin's JSON endpoints
(what the Profile tab's pages call)."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from _train_helpers import REPO

TINY = ["--model", "lstm", "--d-model", "16", "--layers", "1", "--batch-size", "8", "--seq-len", "16",
        "--lr", "1e-2", "--warmup-steps", "2", "--eval-every", "0", "--ckpt-every", "0", "--no-progress"]
SWEEP_TRACE = REPO / "profiles" / "cpu-2core" / "scaling" / "traces" / "mingru_T512_float32"
DEADLINE_S = 50  # the whole test, TensorBoard's start included


def _readme_section() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"^### Reading traces\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md: no '### Reading traces' section"
    return m.group(1)


def test_readme_section_names_the_commands():
    section = _readme_section()
    for needle in ("--profile-steps 5:8", "tensorboard --logdir", "--host 127.0.0.1", "jaxseq trace summary",
                   "embedding", "recurrence", "attention", "mlp", "loss", "optimizer_update", "eval"):
        assert needle in section, needle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, timeout: float, **params: str):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
        if r.headers.get("Content-Encoding") == "gzip":  # the plugin's answers are gzip-compressed
            body = gzip.decompress(body)
    return json.loads(body)


def test_tensorboard_serves_the_run_and_the_sweep_trace(tmp_path):
    t0 = time.monotonic()
    left = lambda: max(1.0, DEADLINE_S - (time.monotonic() - t0))  # noqa: E731
    logdir = tmp_path / "study"
    # A profiled training run as the README says (smallest settings), placed beside a sweep's traces.
    env = {"PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "jaxseq.cli", "train", "--workdir", str(logdir / "runs" / "tiny"), *TINY,
         "--steps", "5", "--profile-steps", "3:5"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=left())
    assert run.returncode == 0, run.stderr[-2000:]
    shutil.copytree(SWEEP_TRACE, logdir / "traces" / SWEEP_TRACE.name)  # a copy: XProf writes caches

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "tensorboard.log", "wb")  # a file, not a pipe: a full pipe would stall the server
    tb = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                           "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                listing = _get(base, "/data/plugins_listing", timeout=2)
                break
            except OSError:
                if tb.poll() is not None:
                    pytest.fail(f"tensorboard exited: {(tmp_path / 'tensorboard.log').read_text()[-2000:]}")
                if left() <= 1.0:
                    pytest.fail("tensorboard did not answer in time")
                time.sleep(0.3)
        assert listing["profile"]["enabled"], "the Profile tab is inactive (plugin missing?)"
        # Scalars: the run has a name, not ".".
        assert _get(base, "/data/runs", timeout=left()) == ["runs/tiny/logs/tiny"]

        runs = _get(base, "/data/plugin/profile/runs", timeout=left())
        train_runs = [r for r in runs if r.startswith("runs/tiny/logs/tiny/")]
        sweep_runs = [r for r in runs if r.startswith(f"traces/{SWEEP_TRACE.name}/")]
        assert len(train_runs) == 1 and len(sweep_runs) == 1, runs
        for r in (*train_runs, *sweep_runs):
            tools = _get(base, "/data/plugin/profile/run_tools", timeout=left(), run=r)
            assert {"trace_viewer@", "overview_page"} <= set(tools) or {"trace_viewer", "overview_page"} <= set(tools), tools

        [run_name] = train_runs
        hosts = _get(base, "/data/plugin/profile/hosts", timeout=left(), run=run_name, tag="trace_viewer@")
        host = hosts[0]["hostname"]
        trace = _get(base, "/data/plugin/profile/data", timeout=left(), run=run_name, tag="trace_viewer@", host=host)
        names = {e.get("name") for e in trace["traceEvents"]}
        # The two traced steps, annotated as train steps (what the Overview page groups by).
        assert {"train 3", "train 4"} <= names, sorted(n for n in names if n and n.startswith("train"))
        overview = _get(base, "/data/plugin/profile/data", timeout=left(), run=run_name, tag="overview_page",
                        host=host)
        steps = [t for t in overview if "steptime_ms_average" in (t.get("p") or {})]
        assert steps and [row["c"][0]["v"] for row in steps[0]["rows"]] == ["train 3", "train 4"]
    finally:
        tb.terminate()
        try:
            tb.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tb.kill()
            tb.wait(timeout=10)
        log.close()
    assert time.monotonic() - t0 < DEADLINE_S + 10
