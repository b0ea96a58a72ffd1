"""REPORT.md's "What the traces show": from the traces of the study folder, absent without traces."""
from __future__ import annotations

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxseq.studies.scaling.report import Study, build_report, trace_findings

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "profiles" / "cpu-2core" / "scaling" / "traces" / "mingru_T512_float32"


def test_no_traces_no_section(tmp_path):
    assert trace_findings(tmp_path / "traces") == []
    (tmp_path / "traces").mkdir()
    assert trace_findings(tmp_path / "traces") == []
    text = build_report(Study(records=[], bench=[]), tmp_path, traces_dir=tmp_path / "traces")
    assert "What the traces show" not in text


def test_old_traces_say_they_have_no_named_part(tmp_path):
    shutil.copytree(COMMITTED, tmp_path / "traces" / COMMITTED.name)
    text = build_report(Study(records=[], bench=[]), tmp_path, traces_dir=tmp_path / "traces")
    section = text.split("## What the traces show", 1)[1]
    assert "No trace here carries a named part" in section
    [row] = [line for line in section.splitlines() if line.startswith(f"| `{COMMITTED.name}`")]
    assert row.count("×") == 3 and "| none |" in row


def test_named_parts_are_listed_with_their_shares(tmp_path):
    @jax.jit
    def f(x):
        # The barrier keeps XLA from fusing the two parts into one op (a fusion takes its root's name).
        with jax.named_scope("attention"):
            y = jax.lax.optimization_barrier(jax.nn.softmax(x @ x) @ x)
        with jax.named_scope("mlp"):
            return (jnp.tanh(y) @ x).sum()

    x = jnp.ones((128, 128)) / 128
    jax.block_until_ready(f(x))
    with jax.profiler.trace(str(tmp_path / "traces" / "toy_T128_float32")):
        jax.block_until_ready(f(x))
    section = "\n".join(trace_findings(tmp_path / "traces"))
    assert "No trace here carries a named part" not in section
    [row] = [line for line in section.splitlines() if line.startswith("| `toy_T128_float32`")]
    parts = row.split(" | ")[2]
    assert parts.startswith("attention ") and ", mlp " in parts and parts.count("%") == 2, row
