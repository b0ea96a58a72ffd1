"""Profiler-facing names: the ops' HLO carries the scopes "recurrence" and "attention".

The names are read from the compiled HLO's ``metadata={op_name=...}``, which is what device
events in a profile carry. Under ``jax.grad`` JAX wraps scopes entered outside the
differentiated function as ``jvp(attention)`` / ``transpose(jvp(attention))``, so the check is a
substring test, as a trace reader's should be. XLA:CPU drops the metadata of matmuls it hands to
its YNNPACK fusions, so the checks look at the ops that keep it: loops (``while``) and elementwise
fusions (the softmax's ``exp``).
"""
from __future__ import annotations

import re

import pytest

import jax
import jax.numpy as jnp

from jaxseq.ops import linear_recurrence as LR
from jaxseq.ops import rnn as R
from jaxseq.ops.attention import ATTENTION_BACKENDS, attention

_INSTR = re.compile(r"^\s*(?:ROOT )?%\S+ = .*? ([a-z][\w-]*)\(.*metadata=\{[^}]*op_name=\"([^\"]*)\"", re.M)


def op_names(f, *args) -> list[tuple[str, str]]:
    """(opcode, op_name) of every compiled HLO instruction of ``jax.jit(f)`` that has an op_name."""
    return _INSTR.findall(jax.jit(f).lower(*args).compile().as_text())


def _loss(f):
    return lambda *a: jnp.sum(f(*a) ** 2)


@pytest.mark.parametrize("cell,backward", [("lstm", "auto"), ("lstm", "autodiff"), ("gru", "auto")])
def test_rnn_loops_are_in_recurrence(cell, backward):
    params = (R.init_lstm_params if cell == "lstm" else R.init_gru_params)(jax.random.PRNGKey(0), 3, 4)
    scan = R.lstm_scan if cell == "lstm" else R.gru_scan
    x = jnp.ones((2, 5, 3))
    f = lambda x: scan(params, x, lengths=jnp.array([5, 2]), reverse=True, backward=backward)[0]
    names = op_names(jax.grad(_loss(f)), x)
    loops = [n for op, n in names if op == "while"]
    assert len(loops) >= 2, names          # the forward scan and the backward scan
    assert all("recurrence" in n for n in loops), loops


@pytest.mark.parametrize("variant", ["mingru", "minlstm"])
@pytest.mark.parametrize("mode", ["log", "sequential"])
def test_min_rnns_are_in_recurrence(variant, mode):
    init, fn = (LR.init_mingru_params, LR.mingru) if variant == "mingru" else (LR.init_minlstm_params, LR.minlstm)
    params = init(jax.random.PRNGKey(0), 3, 4)
    x = jnp.ones((2, 5, 3))
    names = op_names(jax.grad(_loss(lambda x: fn(params, x, h0=jnp.ones((2, 4)), mode=mode)[0])), x)
    scoped = [n for _, n in names if "recurrence" in n]
    unscoped = [n for _, n in names if "recurrence" not in n and "/" in n]
    assert scoped, names
    # only the loss itself (the square, the sum and its gradient seed) is outside the scope
    assert all(re.search(r"/(integer_pow|reduce_sum|broadcast_in_dim|mul|pow)$", n) for n in unscoped), unscoped
    if mode == "sequential":
        assert all("recurrence" in n for op, n in names if op == "while")


def test_linear_recurrences_are_in_recurrence():
    a = jnp.full((2, 6, 3), 0.5)
    for f in (lambda b: LR.linear_recurrence(a, b, method="sequential"),
              lambda b: LR.linear_recurrence(a, b),
              lambda b: LR.log_linear_recurrence(jnp.log(a), b)):
        names = op_names(jax.grad(_loss(f)), jnp.ones((2, 6, 3)))
        assert any("recurrence" in n for _, n in names)
        assert all("recurrence" in n for op, n in names if op == "while")


@pytest.mark.parametrize("backend", [b for b in ATTENTION_BACKENDS if b != "cudnn"])
def test_attention_kernel_is_in_attention(backend):
    q = jax.random.normal(jax.random.PRNGKey(0), (1, 24, 2, 8))
    tiles = dict(block_q=8, block_kv=8) if backend == "blockwise" else {}
    f = lambda q: attention(q, q, q, backend=backend, is_causal=True, **tiles)
    names = op_names(jax.grad(_loss(f)), q)
    kernel = [n for op, n in names if op == "while" or re.search(r"/exp$", n)]
    assert kernel, names
    assert all("attention" in n for n in kernel), kernel

