"""`jaxseq.bench.kernels`: the HLO parser, kernels per loop iteration, loop roles, the CLI."""
from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from jaxseq.bench.kernels import (
    build_step, format_loops, loop_kernel_counts, loop_kernels_from_hlo, main, parse_hlo,
)
from jaxseq.ops.rnn import init_lstm_params, lstm_scan

T, B, H = 6, 2, 8


def _dots(loop) -> int:
    """Matmuls of a body, fused (CPU ynn/oneDNN, GPU GEMM fusions) or not, or library calls."""
    return sum(1 for k in loop.instructions if k.kind in ("dot", "custom-call") or k.detail.endswith(": dot"))


def _scan_fn(n_matmuls: int, extra_op: bool = False, reverse: bool = False):
    def fn(w, xs):
        def step(h, x):
            z = h @ w
            if n_matmuls == 2:
                z = jnp.tanh(z) @ w.T
            h = jnp.tanh(z + x)
            if extra_op:  # a sort is never fused: one more kernel per step on every backend
                h = jnp.sort(h, axis=-1)
            return h, h
        return lax.scan(step, jnp.zeros((B, H)), xs, reverse=reverse)[1]
    return fn


@pytest.fixture(scope="module")
def args():
    return jnp.ones((H, H)) * 0.1, jnp.ones((T, B, H))


def test_one_matmul_scan_has_one_forward_loop(args):
    loops = loop_kernel_counts(_scan_fn(1), *args)
    assert len(loops) == 1
    (lp,) = loops
    assert lp.trip_count == T and lp.role == "forward" and lp.depth == 0
    assert _dots(lp) == 1
    assert lp.kernels == len(lp.instructions) == sum(lp.breakdown.values()) == len(lp.names)
    assert lp.condition_kernels >= 1
    # Buffer renames are never counted.
    free = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
    assert not free & set(lp.breakdown)


def test_second_matmul_and_extra_op_change_the_count(args):
    (one,) = loop_kernel_counts(_scan_fn(1), *args)
    (two,) = loop_kernel_counts(_scan_fn(2), *args)
    assert _dots(two) == 2
    assert two.kernels > one.kernels
    (more,) = loop_kernel_counts(_scan_fn(2, extra_op=True), *args)
    assert more.kernels == two.kernels + 1 and more.breakdown.get("sort") == 1


def test_reverse_scan_role(args):
    (lp,) = loop_kernel_counts(_scan_fn(1, reverse=True), *args)
    assert lp.role == "forward (reverse time)"


def test_nested_scans_report_both_loops(args):
    w, xs = args

    def fn(w, xs):
        def outer(h, x):
            inner = lax.scan(lambda c, _: (jnp.tanh(c @ w), None), h + x, None, length=3)[0]
            return inner, inner
        return lax.scan(outer, jnp.zeros((B, H)), xs)[1]

    loops = loop_kernel_counts(fn, w, xs)
    assert [lp.depth for lp in loops] == [0, 1]
    outer, inner = loops
    assert outer.trip_count == T and inner.trip_count == 3
    assert outer.breakdown.get("while") == 1 and outer.nested == (inner.name,)
    assert inner.body != outer.body and _dots(inner) == 1


def test_lstm_training_step_has_one_forward_and_one_backward_loop():
    params = init_lstm_params(jax.random.PRNGKey(0), 4, H)
    x = jnp.ones((B, T, 4))

    def loss(p, xx):
        return jnp.sum(lstm_scan(p, xx)[0])

    loops = loop_kernel_counts(jax.grad(loss, argnums=(0, 1)), params, x)
    roles = [lp.role.split(" ")[0] for lp in loops]
    assert roles == ["forward", "backward"]
    fwd, bwd = loops
    assert fwd.trip_count == bwd.trip_count == T
    assert "reverse time" in bwd.role
    # The custom backward does one matmul per step; the forward one or two (input matmul in the body).
    assert _dots(bwd) == 1 and _dots(fwd) in (1, 2)
    # autodiff's backward has a second per-step matmul (dW accumulation or the dx product).
    loops_ad = loop_kernel_counts(
        jax.grad(lambda p, xx: jnp.sum(lstm_scan(p, xx, backward="autodiff")[0]), argnums=(0, 1)),
        params, x)
    assert [lp.role.split(" ")[0] for lp in loops_ad] == ["forward", "backward"]
    assert _dots(loops_ad[1]) >= 2


HLO = """\
HloModule jit_demo, is_scheduled=true, entry_computation_layout={(f32[4]{0})->f32[4]{0}}

%fused_add (p0: f32[4], p1: f32[4]) -> f32[4] {
  %p0 = f32[4]{0} parameter(0)
  %p1 = f32[4]{0} parameter(1)
  ROOT %add.1 = f32[4]{0} add(%p0, %p1), metadata={op_name="jit(demo)/while/body/closed_call/add"}
}

%fused_dus (q0: f32[5,4], q1: f32[4], q2: s32[]) -> f32[5,4] {
  %q0 = f32[5,4]{1,0} parameter(0)
  %q1 = f32[4]{0} parameter(1)
  %q2 = s32[] parameter(2)
  %bitcast.1 = f32[1,4]{1,0} bitcast(%q1)
  %c0 = s32[] constant(0)
  ROOT %dus = f32[5,4]{1,0} dynamic-update-slice(%q0, %bitcast.1, %q2, %c0)
}

%inner_body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %v = f32[4]{0} get-tuple-element(%t), index=1
  %one = s32[] constant(1)
  %i1 = s32[] add(%i, %one)
  %e = f32[4]{0} exponential(%v)
  ROOT %r = (s32[], f32[4]{0}) tuple(%i1, %e)
}

%inner_cond (t2: (s32[], f32[4])) -> pred[] {
  %t2 = (s32[], f32[4]{0}) parameter(0)
  %i2 = s32[] get-tuple-element(%t2), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(%i2, %n), direction=LT
}

%cb (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  ROOT %cc = f32[4]{0} custom-call(%a), custom_call_target="__cublas$gemm"
}

%outer_body (s: (s32[], f32[4], f32[5,4], /*index=3*/f32[4])) -> (s32[], f32[4], f32[5,4], /*index=3*/f32[4]) {
  %s = (s32[], f32[4]{0}, f32[5,4]{1,0}, /*index=3*/f32[4]{0}) parameter(0)
  %j = s32[] get-tuple-element(%s), index=0
  %h = f32[4]{0} get-tuple-element(%s), index=1
  %ys = f32[5,4]{1,0} get-tuple-element(%s), index=2
  %w = f32[4]{0} get-tuple-element(%s), index=3
  %f = f32[4]{0} fusion(%h, %w), kind=kLoop, calls=%fused_add, metadata={op_name="jit(demo)/while/body/closed_call/add"}
  %cp = f32[4]{0} copy(%f)
  %called = f32[4]{0} call(%cp), to_apply=%cb
  %zero = s32[] constant(0)
  %it = (s32[], f32[4]{0}) tuple(%zero, %called)
  %w2 = (s32[], f32[4]{0}) while(%it), condition=%inner_cond, body=%inner_body
  %g = f32[4]{0} get-tuple-element(%w2), index=1
  %upd = f32[5,4]{1,0} fusion(%ys, %g, %j), kind=kLoop, calls=%fused_dus
  %one.2 = s32[] constant(1)
  %j1 = s32[] add(%j, %one.2)
  ROOT %out = (s32[], f32[4]{0}, f32[5,4]{1,0}, /*index=3*/f32[4]{0}) tuple(%j1, %g, %upd, %w)
}

%outer_cond (s2: (s32[], f32[4], f32[5,4], /*index=3*/f32[4])) -> pred[] {
  %s2 = (s32[], f32[4]{0}, f32[5,4]{1,0}, /*index=3*/f32[4]{0}) parameter(0)
  %k = s32[] get-tuple-element(%s2), index=0
  %five = s32[] constant(5)
  ROOT %lt2 = pred[] compare(%k, %five), direction=LT
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %z = s32[] constant(0)
  %ys0 = f32[5,4]{1,0} broadcast(%x), dimensions={1}
  %init = (s32[], f32[4]{0}, f32[5,4]{1,0}, /*index=3*/f32[4]{0}) tuple(%z, %x, %ys0, %x)
  %loop = (s32[], f32[4]{0}, f32[5,4]{1,0}, /*index=3*/f32[4]{0}) while(%init), condition=%outer_cond, body=%outer_body, metadata={op_name="jit(demo)/transpose(jvp(f))/while"}, backend_config={"known_trip_count":{"n":"5"}}
  ROOT %res = f32[4]{0} get-tuple-element(%loop), index=1
}
"""


def test_parse_hlo_module_structure():
    mod = parse_hlo(HLO)
    assert mod.name == "jit_demo" and mod.entry == "main"
    assert list(mod.computations)[:2] == ["fused_add", "fused_dus"]
    body = mod.computations["outer_body"].by_name()
    assert body["s"].shape.startswith("(s32[]") and "/*index=3*/" in body["s"].shape
    assert body["w2"].opcode == "while" and body["w2"].called == ("inner_cond", "inner_body")
    assert body["f"].attr("kind") == "kLoop" and body["f"].operands == ("h", "w")
    assert body["out"].is_root and body["j"].is_scalar
    assert mod.computations["main"].is_entry


def test_loops_from_handwritten_hlo():
    outer, inner = loop_kernels_from_hlo(HLO)
    assert (outer.name, outer.depth, inner.name, inner.depth) == ("loop", 0, "w2", 1)
    assert outer.trip_count == 5  # backend config
    assert inner.trip_count == 3  # from the condition's constant
    assert outer.role == "backward" and inner.role == "loop"  # inner has no metadata
    # fusion f, copy, the call's custom-call (looked through), the nested while, fusion upd, add j1.
    assert outer.breakdown == {"fusion": 2, "copy": 1, "custom-call": 1, "while": 1, "add": 1}
    assert outer.kernels == 6 and outer.nested == ("w2",)
    assert set(outer.names) == {"f", "cp", "cc", "w2", "upd", "j1"}
    assert dict((k.name, k.detail) for k in outer.instructions)["upd"] == "kLoop: dynamic-update-slice"
    assert inner.breakdown == {"add": 1, "exponential": 1}
    assert outer.condition_kernels == 1
    table = format_loops([outer, inner], seq_len=5, names=True)
    assert "backward" in table and "custom-call" in table and "__cublas$gemm" in table


def test_parse_hlo_errors():
    with pytest.raises(TypeError, match="text"):
        parse_hlo(b"HloModule x")
    with pytest.raises(ValueError, match="not closed"):
        parse_hlo("HloModule m\n\nENTRY %main () -> f32[] {\n  ROOT %c = f32[] constant(1)\n")
    assert loop_kernels_from_hlo("HloModule empty\n") == []


def test_build_step_validates():
    with pytest.raises(ValueError, match="model"):
        build_step("rnn", batch=2, hidden=4, seq_len=3)
    with pytest.raises(ValueError, match="mode"):
        build_step("lstm", batch=2, hidden=4, seq_len=3, mode="eval")
    with pytest.raises(ValueError, match="batch"):
        build_step("lstm", batch=0, hidden=4, seq_len=3)


def test_cli_smoke(capsys, tmp_path):
    hlo = tmp_path / "step.hlo"
    assert main(["--model", "lstm", "--batch", "2", "--hidden", "8", "--seq-len", "4", "--mode", "train",
                 "--names", "--hlo-out", str(hlo)]) == 0
    out = capsys.readouterr().out
    assert "forward" in out and "backward" in out and "per time step" in out
    assert hlo.read_text().startswith("HloModule")
    assert main(["--model", "gru", "--batch", "2", "--hidden", "8", "--seq-len", "4", "--mode",
                 "forward", "--json"]) == 0
    assert '"trip_count": 4' in capsys.readouterr().out
    with pytest.raises(SystemExit, match="layers"):
        main(["--model", "gru", "--layers", "3"])


@pytest.mark.parametrize("model, module", [("lstm-stack", "jaxseq.ops.wavefront"),
                                           ("lstm-bidir", "jaxseq.ops.bidirectional")])
def test_cli_lazy_ops(model, module, capsys):
    argv = ["--model", model, "--batch", "2", "--hidden", "8", "--seq-len", "4", "--mode", "forward"]
    if importlib.util.find_spec(module) is None:
        with pytest.raises(SystemExit, match=module.replace(".", r"\.")):
            main(argv)
    else:
        try:
            assert main(argv) == 0
        except SystemExit as e:  # the module exists but its op is not there yet
            assert module in str(e)
        else:
            assert "forward" in capsys.readouterr().out


def _h200_trace():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "profiles" / "gpu-nvidia-h200x1" / "scaling" / "traces" / "lstm_T256_bfloat16"
    found = sorted(root.rglob("*.xplane.pb"))
    if not found:
        pytest.skip("the committed H200 LSTM trace is not in this checkout")
    return found[0]


def test_gpu_hlo_from_committed_h200_trace(capsys):
    from jaxseq.bench.kernels import hlo_modules_from_xplane

    path = _h200_trace()
    mods = hlo_modules_from_xplane(path)
    loops = loop_kernels_from_hlo(mods["jit_loss"])
    # The H200 training step (B=16, W=512, bf16, T=256): one forward and one backward loop whose
    # bodies launched 6 kernels each per time step (the trace's own counts: 256 of each kernel).
    assert [(lp.role, lp.trip_count, lp.kernels) for lp in loops] == [
        ("forward", 256, 6), ("backward (reverse time)", 256, 6)]
    fwd, bwd = loops
    assert fwd.breakdown == {"fusion": 4, "async": 2}
    assert sum(1 for k in bwd.instructions if k.detail.endswith("gemm_fusion: dot")) == 1
    assert main(["--xplane", str(path)]) == 0
    out = capsys.readouterr().out
    assert "jit_loss" in out and "while.17" in out
