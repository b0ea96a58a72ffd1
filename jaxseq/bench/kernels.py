"""Count the kernels one recurrent time step launches, from the compiled HLO of any backend.

    jaxseq bench kernels --model lstm --batch 16 --hidden 768 --seq-len 64 --dtype float16 --mode train
    python scripts/count_kernels.py --model gru --mode forward
    python scripts/count_kernels.py --xplane profiles/gpu-nvidia-h200x1/scaling/traces/lstm_T256_bfloat16/plugins/profile/*/vm.xplane.pb

`loop_kernel_counts(fn, *args)` compiles `jax.jit(fn)` for the arguments, reads the compiled module's
text (`.lower(...).compile().as_text()`), finds every `while` loop (each `lax.scan`/`fori_loop`) and
counts, per loop, the instructions of its *body* computation that launch work on the device: one
iteration of the loop runs each of them once. `loop_kernels_from_hlo(text)` does the same for HLO text
saved elsewhere (e.g. dumped on a GPU machine), and `hlo_modules_from_xplane(path)` reads the compiled
modules a `jax.profiler` trace keeps, so the counting itself needs no accelerator.

What counts as a kernel (one entry of the body's schedule):
- `fusion` (any kind: kLoop/kInput/kOutput elementwise fusions and kCustom library fusions such as
  a GPU `gemm_fusion`/Triton GEMM or a CPU YNNPACK/oneDNN `ynn_fusion` around a dot), `custom-call`
  (cuBLAS/cuDNN calls, library calls), un-fused `dot`/`convolution`, un-fused elementwise or data-movement
  ops (`concatenate`, `transpose`, `slice`, `dynamic-slice`, `dynamic-update-slice`, `copy`, `reduce`...),
  collectives (`all-reduce`, `all-gather`, ... and their `-start` halves; the `-done` half is not counted),
  and a nested `while`/`conditional` (one each: the nested loop is also reported as a loop of its own).
- Not counted: `parameter`, `get-tuple-element`, `tuple`, `constant`, `bitcast`, `after-all`,
  `opt-barrier`, `add-dependency`, `domain`, `partition-id`/`replica-id` and the `-done` halves of
  asynchronous pairs: they only rename buffers or are folded by the runtime. A `call` is looked through
  (its computation's instructions count; on GPU that is how command buffers appear).

What a "kernel" costs differs by backend:
- GPU: every counted instruction is at least one kernel launch per iteration (a cuBLAS `custom-call`
  or a GEMM fusion may launch two, e.g. a split-K reduction); a `copy` is a device-to-device copy kernel
  or memcpy; and the loop's *condition* runs as its own small kernel whose predicate is copied back to
  the host every iteration (reported as `condition_kernels`), unless the loop runs inside a CUDA graph
  (`--xla_gpu_enable_command_buffer`) or is unrolled. Launch overhead (~3-8 us each) is what makes a
  per-step cost of ~12 kernels dominate a small-batch LSTM step on an H100/H200.
- CPU: there are no launches. Each counted instruction is a *thunk* the runtime executes in turn: a
  fusion is a compiled loop nest called as one function, a `ynn_fusion`/`onednn` fusion a library call,
  a `copy` a memcpy-like loop. The per-thunk overhead is small (sub-microsecond to a few us) but the
  count still says how many passes over memory one step makes and how many buffers it writes.

Checked against a real GPU run: the committed H200 trace `profiles/gpu-nvidia-h200x1/scaling/traces/lstm_T256_bfloat16`
(`lstm_scan` training step, B=16, W=512, bfloat16, T=256) holds the compiled module; its forward loop
body counts 6 (Triton GEMM, one gate/cell fusion, three residual `dynamic-update-slice` writes, two of
them async `fusion-start`s, the counter add) and its backward body 6 (GEMM + the split-K `reduce`
fusion, the dz `concatenate` fusion, dc, the residual write, the counter add). The trace's device
events agree: 256 of each kernel, i.e. 12 per time step, plus two `memcpy32_post` events per time
step (no separate condition kernel appears in that trace).

Loop roles come from the `while` instruction's `op_name` metadata (written by JAX): `transpose(...)`
in the path marks a loop of the backward (gradient) pass; `while/body/sub` in the body's metadata (the
`length - 1 - i` index of `lax.scan(..., reverse=True)`) marks a loop that walks time backwards. So a
training step of a forward scan usually shows one "forward" loop and one "backward (reverse time)"
loop. Without metadata the role is "loop".

The trip count is the backend's `known_trip_count` when the compiled loop carries one; otherwise it is
read from the condition (`compare(i, constant(N)), direction=LT` with the induction variable starting at
0, step 1); None when neither is there.

This module does the accounting and the CLI; the HLO text parser is `jaxseq.bench.hlo` and the trace
reader `jaxseq.bench.xplane` (their public names stay importable from here).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections import Counter
from typing import Any, Callable, Sequence

# The parser's and the trace reader's names stay importable from here.
from jaxseq.bench.hlo import HloComputation, HloInstruction, HloModuleText, parse_hlo
from jaxseq.bench.xplane import hlo_modules_from_xplane

__all__ = [
    "HloInstruction",
    "HloComputation",
    "HloModuleText",
    "KernelInstruction",
    "LoopKernels",
    "parse_hlo",
    "loop_kernels_from_hlo",
    "loop_kernel_counts",
    "compiled_hlo_text",
    "hlo_modules_from_xplane",
    "format_loops",
    "main",
    "add_parser",
]

# Instructions that only name, split or join buffers: no work on the device.
_FREE_OPCODES = frozenset({
    "parameter", "get-tuple-element", "tuple", "constant", "bitcast", "after-all", "opt-barrier",
    "add-dependency", "domain", "partition-id", "replica-id", "get-dimension-size",
    "set-dimension-size",
})
_COLLECTIVES = frozenset({
    "all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
    "collective-broadcast", "ragged-all-to-all", "send", "recv",
})
_COLLECTIVE_PREFIX = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
                      "collective-broadcast", "ragged-all-to-all")

# --- counting ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelInstruction:
    """One counted instruction of a loop body."""

    name: str
    kind: str  # the breakdown key: "fusion", "custom-call", "copy", "dot", "while", "collective", ...
    detail: str  # fusion kind and what it holds ("kLoop: dynamic-update-slice"), call target, ...
    shape: str
    scalar: bool  # the result is a scalar (e.g. the loop counter's increment)


@dataclasses.dataclass(frozen=True)
class LoopKernels:
    """Kernels per iteration of one `while` loop of a compiled program."""

    name: str  # the while instruction
    body: str
    condition: str
    parent: str  # computation holding the while
    depth: int  # 0 = in the entry computation (or a computation it calls), 1 = inside another loop, ...
    role: str  # "forward", "backward", with " (reverse time)" when the body walks time backwards; "loop"
    trip_count: int | None
    kernels: int  # counted instructions of the body = kernels launched per iteration
    breakdown: dict[str, int]  # kind -> count, largest first
    instructions: tuple[KernelInstruction, ...]
    condition_kernels: int  # the condition computation's own count (per iteration too)
    nested: tuple[str, ...]  # nested while/conditional instructions of the body
    op_name: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.instructions)

    @property
    def contents(self) -> dict[str, int]:
        """Counted instructions by `detail` (what each fusion holds), largest first."""
        return dict(Counter(i.detail for i in self.instructions).most_common())

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["instructions"] = [dataclasses.asdict(i) for i in self.instructions]
        return d


# Inside a fusion, these say what the fusion is for (first match wins, most specific first).
# Static slices, selects and broadcasts are indexing inside a loop nest, so they give no label.
_CONTENT_ORDER = ("dot", "convolution", "custom-call", "dynamic-update-slice", "scatter", "dynamic-slice",
                  "gather", "concatenate", "transpose", "reduce")


def _contents(module: HloModuleText, comp_name: str, seen: set[str] | None = None) -> set[str]:
    """Opcodes inside a computation and the computations it calls."""
    seen = set() if seen is None else seen
    if comp_name in seen or comp_name not in module.computations:
        return set()
    seen.add(comp_name)
    ops: set[str] = set()
    for ins in module.computations[comp_name].instructions:
        ops.add(ins.opcode)
        for c in ins.called:
            ops |= _contents(module, c, seen)
    return ops


def _classify(module: HloModuleText, ins: HloInstruction) -> tuple[str, str] | None:
    """(kind, detail) of an instruction that launches work, None for one that does not."""
    op = ins.opcode
    if op in _FREE_OPCODES or op.endswith("-done") or op == "async-update":
        return None
    if op == "fusion":
        kind = ins.attr("kind") or "fusion"
        m = re.search(r'"kind"\s*:\s*"([^"]+)"', ins.attrs)  # e.g. __triton_gemm, __ynn_fusion
        label = f"{kind}/{m.group(1)}" if m else kind
        inner = _contents(module, ins.called[0]) if ins.called else set()
        holds = next((o for o in _CONTENT_ORDER if o in inner), "elementwise")
        return "fusion", f"{label}: {holds}"
    if op == "custom-call":
        return "custom-call", ins.attr("custom_call_target") or "?"
    if op in _COLLECTIVES or op.startswith(_COLLECTIVE_PREFIX):
        return "collective", op
    if op in ("async-start", "copy-start"):
        inner = _contents(module, ins.called[0]) if ins.called else set()
        return ("copy" if op == "copy-start" else "async"), ",".join(sorted(inner)) or op
    if op == "while":
        return "while", f"body={ins.attr('body')}"
    if op == "conditional":
        return "conditional", ",".join(ins.called)
    return op, op


def _count_body(module: HloModuleText, comp_name: str, seen: frozenset[str] = frozenset()
                ) -> list[tuple[HloInstruction, str, str]]:
    """Counted instructions of a computation, looking through `call`s (command buffers on GPU)."""
    comp = module.computations.get(comp_name)
    if comp is None or comp_name in seen:
        return []
    out: list[tuple[HloInstruction, str, str]] = []
    for ins in comp.instructions:
        if ins.opcode == "call":
            for c in ins.called:
                out += _count_body(module, c, seen | {comp_name})
            continue
        cls = _classify(module, ins)
        if cls is not None:
            out.append((ins, *cls))
    return out


def _trip_count(module: HloModuleText, ins: HloInstruction) -> int | None:
    m = re.search(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"?(\d+)', ins.attrs)
    if m:
        return int(m.group(1))
    cond = module.computations.get(ins.attr("condition") or "")
    return None if cond is None else _trip_from_condition_text(module, cond)


def _trip_from_condition_text(module: HloModuleText, cond: HloComputation) -> int | None:
    values: dict[str, int] = {}
    for c in cond.instructions:
        if c.opcode == "constant" and re.match(r"[su]\d+\[\]", c.shape) and c.operands:
            try:
                values[c.name] = int(c.operands[0])
            except ValueError:
                pass
    if len(values) != 1:
        return None
    # Only trust it when the comparison is "less than" (directly or inside the fused compare).
    directions = set(re.findall(r"direction=(\w+)", " ".join(i.attrs for i in cond.instructions)))
    for i in cond.instructions:
        for c in i.called:
            sub = module.computations.get(c)
            if sub is not None:
                directions |= set(re.findall(r"direction=(\w+)", " ".join(s.attrs for s in sub.instructions)))
    if directions != {"LT"}:
        return None
    return next(iter(values.values()))


def _op_names(module: HloModuleText, comp_name: str, seen: set[str] | None = None) -> list[str]:
    seen = set() if seen is None else seen
    if comp_name in seen or comp_name not in module.computations:
        return []
    seen.add(comp_name)
    names: list[str] = []
    for ins in module.computations[comp_name].instructions:
        names.append(ins.op_name)
        if ins.opcode != "while":  # a nested loop's own indexing is not this loop's
            for c in ins.called:
                names += _op_names(module, c, seen)
    return names


def _role(module: HloModuleText, ins: HloInstruction) -> str:
    op_name = ins.op_name
    if not op_name:
        return "loop"
    role = "backward" if "transpose(" in op_name else "forward"
    body = ins.attr("body") or ""
    if any(re.search(r"while/body/sub$", n) for n in _op_names(module, body)):
        role += " (reverse time)"
    return role


def loop_kernels_from_hlo(text: str | HloModuleText) -> list[LoopKernels]:
    """Every `while` loop of an HLO module with the kernels one iteration of its body launches.

    Loops come in the order they appear inside the entry computation (depth first into the bodies), so a
    training step lists its forward loop before its backward loop; loops in computations the entry
    does not reach are appended after.
    """
    module = parse_hlo(text) if isinstance(text, str) else text
    found: list[LoopKernels] = []
    visited: set[str] = set()

    def walk(comp_name: str, depth: int) -> None:
        if comp_name in visited or comp_name not in module.computations:
            return
        visited.add(comp_name)
        for ins in module.computations[comp_name].instructions:
            if ins.opcode == "while":
                body, cond = ins.attr("body") or "", ins.attr("condition") or ""
                counted = _count_body(module, body)
                nested = tuple(i.name for i, k, _ in counted if k in ("while", "conditional"))
                found.append(LoopKernels(
                    name=ins.name, body=body, condition=cond, parent=comp_name, depth=depth,
                    role=_role(module, ins), trip_count=_trip_count(module, ins),
                    kernels=len(counted),
                    breakdown=dict(Counter(k for _, k, _ in counted).most_common()),
                    instructions=tuple(KernelInstruction(i.name, k, d, i.shape, i.is_scalar)
                                       for i, k, d in counted),
                    condition_kernels=len(_count_body(module, cond)),
                    nested=nested, op_name=ins.op_name,
                ))
                walk(body, depth + 1)
            elif ins.opcode in ("call", "conditional", "async-start"):
                for c in ins.called:
                    walk(c, depth)

    if module.entry is not None:
        walk(module.entry, 0)
    for name in module.computations:  # loops the walk did not reach (no ENTRY, unusual call kinds)
        if name not in visited and any(i.opcode == "while" for i in module.computations[name].instructions):
            walk(name, 0)
    return found


def compiled_hlo_text(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The optimized HLO text of `jax.jit(fn)` (or of `fn` itself when it is already jitted) for the
    given arguments; keyword arguments are traced like positional ones (bind static options with
    `functools.partial` first)."""
    import jax

    if not callable(fn):
        raise TypeError(f"compiled_hlo_text: `fn` must be callable, got {type(fn).__name__}")
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    return jitted.lower(*args, **kwargs).compile().as_text()


def loop_kernel_counts(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[LoopKernels]:
    """Compile `jax.jit(fn)` for the arguments and count the kernels per iteration of every loop.

    See the module docstring for what is counted. The counts are of the backend jax runs on (CPU
    here, the GPU on a GPU machine): the same program compiles to different bodies per backend.
    """
    return loop_kernels_from_hlo(compiled_hlo_text(fn, *args, **kwargs))


# --- report --------------------------------------------------------------------------------------


def _fmt_breakdown(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def format_loops(loops: Sequence[LoopKernels], *, seq_len: int | None = None, names: bool = False) -> str:
    """A table: loop, role, trip count, kernels per iteration (body + condition), per time step
    (when `seq_len` is given: body kernels x trips / seq_len, which divides out `unroll`), breakdown."""
    head = f"{'loop':<12}{'role':<26}{'trips':>7}{'kernels/iter':>14}{'+cond':>7}"
    if seq_len:
        head += f"{'per time step':>15}"
    lines = [head + "  breakdown"]
    for lp in loops:
        trips = "?" if lp.trip_count is None else str(lp.trip_count)
        row = f"{'  ' * lp.depth + lp.name:<12}{lp.role:<26}{trips:>7}{lp.kernels:>14}{lp.condition_kernels:>7}"
        if seq_len:
            per = "?" if lp.trip_count is None else f"{lp.kernels * lp.trip_count / seq_len:.1f}"
            row += f"{per:>15}"
        lines.append(row + "  " + _fmt_breakdown(lp.breakdown))
        if names:
            for k in lp.instructions:
                lines.append(f"{'':<14}{k.name:<44}{k.kind:<14}{k.detail}{'  (scalar)' if k.scalar else ''}")
    if not loops:
        lines.append("(no while loops in the compiled program)")
    return "\n".join(lines)


# --- CLI -----------------------------------------------------------------------------------------

_MODELS = ("lstm", "gru", "lstm-stack", "lstm-bidir")


def _lazy(module: str, attr: str, model: str) -> Callable[..., Any]:
    import importlib

    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"--model {model} needs {module}.{attr}, which this checkout does not have "
                         f"yet ({type(e).__name__}: {e})") from None


def build_step(model: str, *, batch: int, hidden: int, seq_len: int, input_size: int | None = None,
               layers: int = 1, dtype: str = "float32", mode: str = "train", unroll: int = 1,
               backward: str = "auto", hoist_input: bool | None = None, seed: int = 0,
               step_kernel: str = "xla") -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """(fn, args) of one benchmark program: the op's forward pass, or the gradient of sum(outputs)
    with respect to the parameters and the input (a training step's recurrent part). `step_kernel`
    ("xla" | "pallas" | "pallas-step", the Pallas step kernel inside `lax.scan`) is passed to the
    one-layer "lstm" op."""
    import jax
    import jax.numpy as jnp

    from jaxseq.ops import rnn

    if model not in _MODELS:
        raise ValueError(f"`model` must be one of {_MODELS}, got {model!r}")
    if mode not in ("forward", "train"):
        raise ValueError(f"`mode` must be 'forward' or 'train', got {mode!r}")
    for name, v in (("batch", batch), ("hidden", hidden), ("seq_len", seq_len), ("layers", layers),
                    ("unroll", unroll)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    if step_kernel not in ("xla", "pallas", "pallas-step"):
        raise ValueError(f"`step_kernel` must be 'xla', 'pallas' or 'pallas-step', got {step_kernel!r}")
    if step_kernel != "xla" and model != "lstm":
        raise ValueError(f"`step_kernel` {step_kernel!r} applies to model 'lstm' only, got {model!r}")
    if step_kernel == "pallas-step":
        from jaxseq.ops.pallas_lstm import PallasLSTMStep

        step_kernel = PallasLSTMStep(in_place=False)
    dt = jnp.dtype(dtype)
    in_size = hidden if input_size is None else input_size
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * layers + 1)
    x = jax.random.normal(keys[-1], (batch, seq_len, in_size), dt)
    hoist_kw = {} if hoist_input is None else {"hoist_input": hoist_input}

    if model == "lstm":
        params = rnn.init_lstm_params(keys[0], in_size, hidden, dt)
        op = lambda p, xx: rnn.lstm_scan(p, xx, unroll=unroll, backward=backward, step_kernel=step_kernel,  # noqa: E731
                                         **hoist_kw)[0]
    elif model == "gru":
        params = rnn.init_gru_params(keys[0], in_size, hidden, dt)
        op = lambda p, xx: rnn.gru_scan(p, xx, unroll=unroll, backward=backward, **hoist_kw)[0]  # noqa: E731
    elif model == "lstm-stack":
        stack = _lazy("jaxseq.ops.wavefront", "lstm_stack_scan", model)
        params = [rnn.init_lstm_params(keys[k], in_size if k == 0 else hidden, hidden, dt)
                  for k in range(layers)]
        op = lambda p, xx: stack(p, xx, unroll=unroll, backward=backward)[0]  # noqa: E731
    else:
        bidir = _lazy("jaxseq.ops.bidirectional", "lstm_bidirectional_scan", model)
        params = (rnn.init_lstm_params(keys[0], in_size, hidden, dt),
                  rnn.init_lstm_params(keys[1], in_size, hidden, dt))
        op = lambda p, xx: bidir(p[0], p[1], xx, unroll=unroll, backward=backward, **hoist_kw)[0]  # noqa: E731

    if mode == "forward":
        return op, (params, x)

    def loss(p, xx):
        return jnp.sum(op(p, xx).astype(jnp.float32))

    return jax.grad(loss, argnums=(0, 1)), (params, x)


def _xplane_cmd(args: argparse.Namespace) -> int:
    modules = hlo_modules_from_xplane(args.xplane)
    found = {name: loop_kernels_from_hlo(m) for name, m in modules.items()}
    found = {k: v for k, v in found.items() if v}
    if args.json:
        print(json.dumps({k: [lp.to_json() for lp in v] for k, v in found.items()}, indent=2))
        return 0
    if not found:
        print(f"{args.xplane}: {len(modules)} HLO modules, none with a while loop")
    for name, loops in found.items():
        print(f"{args.xplane} :: {name}")
        print(format_loops(loops, seq_len=args.seq_len if args.seq_len_given else None, names=args.names))
    return 0


def _cmd(args: argparse.Namespace) -> int:
    import jax

    args.seq_len_given = args.seq_len is not None
    args.seq_len = args.seq_len or 64
    if args.xplane:
        return _xplane_cmd(args)
    hoist = {"auto": None, "on": True, "off": False}[args.hoist]
    if args.layers is not None and args.model != "lstm-stack" and args.layers != 1:
        raise SystemExit(f"--layers {args.layers}: only --model lstm-stack has layers")
    args.layers = args.layers or (2 if args.model == "lstm-stack" else 1)
    fn, fargs = build_step(args.model, batch=args.batch, hidden=args.hidden, seq_len=args.seq_len,
                           input_size=args.input, layers=args.layers, dtype=args.dtype, mode=args.mode,
                           unroll=args.unroll, backward=args.backward, hoist_input=hoist,
                           step_kernel=args.step_kernel)
    text = compiled_hlo_text(fn, *fargs)
    if args.hlo_out:
        with open(args.hlo_out, "w") as f:
            f.write(text)
    loops = loop_kernels_from_hlo(text)
    if args.json:
        print(json.dumps([lp.to_json() for lp in loops], indent=2))
        return 0
    print(f"{args.model} {args.mode} B={args.batch} H={args.hidden} T={args.seq_len} layers={args.layers} "
          f"{args.dtype} unroll={args.unroll} backward={args.backward} hoist={args.hoist} "
          f"step_kernel={args.step_kernel} on "
          f"{jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(format_loops(loops, seq_len=args.seq_len, names=args.names))
    if jax.default_backend() == "cpu":
        print("(CPU: a counted instruction is a thunk the runtime runs in turn, not a kernel launch)")
        if args.step_kernel != "xla":
            print("(CPU: the Pallas step runs in interpret mode, as XLA ops looping over its grid; these "
                  "counts say nothing of the GPU kernel)")
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=_MODELS, default="lstm")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--input", type=int, default=None, help="input features (default: = hidden)")
    p.add_argument("--seq-len", type=int, default=None, help="time steps (default 64)")
    p.add_argument("--layers", type=int, default=None, help="layers of lstm-stack (default 2; other models: 1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"))
    p.add_argument("--mode", choices=("forward", "train"), default="train")
    p.add_argument("--unroll", type=int, default=1)
    p.add_argument("--backward", choices=("auto", "custom", "autodiff"), default="auto")
    p.add_argument("--hoist", choices=("auto", "on", "off"), default="auto",
                   help="hoist_input of lstm/gru/lstm-bidir (auto = the backend's default)")
    p.add_argument("--step-kernel", choices=("xla", "pallas", "pallas-step"), default="xla",
                   help="lstm: one Pallas kernel per forward time step (jaxseq.ops.pallas_lstm); "
                        "pallas-step: the step kernel inside lax.scan")
    p.add_argument("--names", action="store_true", help="list every counted instruction of each loop")
    p.add_argument("--json", action="store_true", help="print the loops as JSON")
    p.add_argument("--hlo-out", metavar="FILE", help="also write the compiled HLO text to FILE")
    p.add_argument("--xplane", metavar="FILE", help="count the loops of the HLO modules kept in a "
                   "jax.profiler trace (*.xplane.pb, e.g. one recorded on a GPU) instead of compiling")
    p.set_defaults(func=_cmd)


def add_parser(subparsers: Any, name: str = "kernels") -> argparse.ArgumentParser:
    """Register the counter as a subcommand (e.g. under `jaxseq bench`)."""
    p = subparsers.add_parser(name, help="kernels per iteration of each loop of a compiled RNN step",
                              description=__doc__.splitlines()[0])
    _configure(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`jaxseq bench kernels` / `scripts/count_kernels.py`: parse `argv` and print the table."""
    p = argparse.ArgumentParser(prog="count_kernels", description=__doc__.splitlines()[0])
    _configure(p)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    return args.func(args)
