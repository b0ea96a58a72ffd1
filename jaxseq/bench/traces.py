"""`jaxseq trace summary DIR`: where the time of a `jax.profiler` trace went, without a browser.

    jaxseq trace summary runs/lstm/logs          # a training run's profile (--profile-steps)
    jaxseq trace summary profiles/cpu-2core/scaling/traces   # a sweep's traces (jaxseq scale --trace)
    jaxseq trace summary DIR --top 5 --json

DIR may hold one or more traces at any depth (a run's logdir, a `traces/` folder, one profile folder
`plugins/profile/<time>/`, or one `*.xplane.pb` file). For each trace it prints the XLA op time per
named part of the model and the top device ops by total time, with their counts.

Where the numbers come from. A trace's device events (GPU kernels on the device planes; on the CPU
backend, the XLA ops executed on the host threads) carry the HLO op name (`fusion.3`, `while.1`) and
the program id, but not the model's names. `jax.named_scope` writes those names into each HLO
instruction's metadata (`op_name`, e.g. `jit(step)/transpose(jvp(recurrence))/while/body/dot_general`),
and the trace keeps the compiled HLO modules in its metadata plane. So this module reads the `.xplane.pb`
(events through `jax.profiler.ProfileData`; the HLO modules through a small protobuf reader, since no
HLO proto classes ship with jax or xprof), maps each event to its instruction's `op_name`, and names the
event after the outermost known scope in that path (`NAMED_PARTS`; wrappers such as `jvp(...)` and
`transpose(...)` are looked through, so the backward pass counts towards the same part). Everything
else is "other". Time is each op's *self* time (on the CPU backend a `while` op encloses the ops of its
body, which are subtracted from it), summed over threads/streams: op time, not wall time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Sequence

from jaxseq.bench.xplane import metadata_hlo_protos, proto_fields, proto_text

#: The names jaxseq gives the parts of a step with `jax.named_scope` (models, nn, ops, train.steps).
NAMED_PARTS: tuple[str, ...] = ("embedding", "recurrence", "attention", "mlp", "loss", "optimizer_update", "eval")
OTHER = "other"

__all__ = ["NAMED_PARTS", "OTHER", "OpTime", "TraceSummary", "find_traces", "summarize_trace",
           "summarize_traces", "format_summaries", "part_of", "add_parser", "self_times", "hlo_op_names"]


@dataclasses.dataclass(frozen=True)
class OpTime:
    """One device op (GPU kernel or CPU XLA op) aggregated over the trace."""

    name: str
    part: str  # a NAMED_PARTS entry or "other"
    total_s: float  # self time summed over its occurrences
    count: int


@dataclasses.dataclass(frozen=True)
class TraceSummary:
    name: str  # the run as TensorBoard's Profile tab names it: <run folder>/<profile time>
    path: Path  # the .xplane.pb
    op_time_s: float  # all device-op self time
    parts: dict[str, float]  # part -> seconds, NAMED_PARTS order then "other"; zero parts left out
    ops: list[OpTime]  # by total time, longest first
    steps: list[float]  # durations (s) of the StepTraceAnnotation steps in the trace, in order

    def share(self, part: str) -> float:
        return self.parts.get(part, 0.0) / self.op_time_s if self.op_time_s else 0.0

    @property
    def has_named_parts(self) -> bool:
        return any(p != OTHER for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "op_time_s": self.op_time_s,
                "parts": self.parts, "steps": self.steps,
                "ops": [dataclasses.asdict(o) for o in self.ops]}


# --- names ---------------------------------------------------------------------------------------

_WRAPPER = re.compile(r"([A-Za-z_][\w\-]*)\((.*)\)")
# Wrappers that name a function (jit(loss) is a function called "loss", not the "loss" scope).
_FUNCTION_WRAPPERS = {"jit", "pjit", "pmap", "xla_pmap", "core_call", "closed_call"}


def part_of(op_name: str | None, parts: Sequence[str] = NAMED_PARTS) -> str:
    """The outermost of `parts` named in an op_name path, looking through jvp(...)/transpose(...)/vmap(...).

    >>> part_of("jit(step)/transpose(jvp(recurrence))/while/body/dot_general")
    'recurrence'
    >>> part_of("jit(step)/eval/embedding/gather")
    'eval'
    """
    if not op_name:
        return OTHER
    for comp in op_name.split("/"):
        while (m := _WRAPPER.fullmatch(comp)) and m.group(1) not in _FUNCTION_WRAPPERS:
            comp = m.group(2)
        if comp in parts:
            return comp
    return OTHER


# --- the HLO modules of the metadata plane (read by `jaxseq.bench.xplane`) ----------------------

def _instruction_op_names(buf: bytes, span: tuple[int, int]) -> dict[str, str]:
    """HloProto -> {instruction name: metadata.op_name}.

    Field numbers (xla/service/hlo.proto): HloProto.hlo_module = 1; HloModuleProto.computations = 3;
    HloComputationProto.instructions = 2; HloInstructionProto.name = 1, .metadata = 7;
    OpMetadata.op_name = 2."""
    out: dict[str, str] = {}
    for f, module in proto_fields(buf, *span):
        if f != 1:
            continue
        for f2, comp in proto_fields(buf, *module):
            if f2 != 3:
                continue
            for f3, instr in proto_fields(buf, *comp):
                if f3 != 2:
                    continue
                name = op_name = None
                for f4, v in proto_fields(buf, *instr):
                    if f4 == 1:
                        name = proto_text(buf, v)
                    elif f4 == 7:
                        op_name = next((proto_text(buf, v5) for f5, v5 in proto_fields(buf, *v) if f5 == 2), None)
                if name and op_name:
                    out[name] = op_name
    return out


def hlo_op_names(xspace: bytes) -> dict[int, dict[str, str]]:
    """{program id: {HLO instruction name: op_name}} from an XSpace's "/host:metadata" plane
    (`jaxseq.bench.xplane.metadata_hlo_protos`; a program without a "program_id" stat takes the id
    its name carries, e.g. "jit_step(46)")."""
    out: dict[int, dict[str, str]] = {}
    for module_name, program, proto in metadata_hlo_protos(xspace):
        if program is None:  # names look like "jit_step(46)"
            m = re.search(r"\((\d+)\)$", module_name)
            program = int(m.group(1)) if m else None
        if program is not None:
            out[int(program)] = _instruction_op_names(xspace, proto)
    return out


# --- events --------------------------------------------------------------------------------------

def _kernel_to_instruction(name: str) -> str:
    # GPU kernels are named after their fusion with '.' -> '_' (loop_add_fusion.2 -> loop_add_fusion_2).
    return re.sub(r"_(\d+)$", r".\1", name)


def self_times(events: list[tuple[int, int, Any]]) -> Iterator[tuple[int, Any]]:
    """(self time, payload) of (start, duration, payload) events of one thread: an event that lies
    wholly inside another is subtracted from it; events that only overlap are left whole."""
    events = sorted(events, key=lambda e: (e[0], -e[1]))
    stack: list[list[Any]] = []  # [end, self time, payload]

    def pop() -> tuple[int, Any]:
        _, own, payload = stack.pop()
        return own, payload

    for start, dur, payload in events:
        end = start + dur
        while stack and (stack[-1][0] <= start or end > stack[-1][0]):
            yield pop()
        if stack:
            stack[-1][1] -= dur
        stack.append([end, dur, payload])
    while stack:
        yield pop()


def summarize_trace(path: str | Path, *, name: str | None = None, parts: Sequence[str] = NAMED_PARTS) -> TraceSummary:
    """The summary of one `*.xplane.pb` (see the module docstring)."""
    from jax.profiler import ProfileData  # jax only when a trace is read

    path = Path(path)
    raw = path.read_bytes()
    names = hlo_op_names(raw)
    data = ProfileData.from_serialized_xspace(raw)

    device_lines, host_lines, steps = [], [], []
    for plane in data.planes:
        on_device = plane.name.startswith("/device:")
        lines = list(plane.lines)
        if on_device and any(ln.name == "XLA Ops" for ln in lines):
            lines = [ln for ln in lines if ln.name == "XLA Ops"]  # derived line: the streams repeat it
        for line in lines:
            ops = []
            for ev in line.events:
                stats = dict(ev.stats)
                if "hlo_op" in stats:
                    ops.append((int(ev.start_ns), int(ev.duration_ns), (ev.name, stats)))
                elif not on_device and "step_num" in stats:
                    steps.append((int(ev.start_ns), ev.duration_ns / 1e9))
            if ops:
                (device_lines if on_device else host_lines).append(ops)
    # On an accelerator the device planes hold the ops (kernels do not nest, but those of one CUDA
    # graph may overlap on a stream: each keeps its duration); on the CPU backend the host threads
    # run them, and a while/conditional op encloses the ops of its body.
    if device_lines:
        timed = [((dur, payload) for _, dur, payload in ops) for ops in device_lines]
    else:
        timed = [self_times(ops) for ops in host_lines]

    total: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    by_part: dict[str, float] = defaultdict(float)
    for ops in timed:
        for own_ns, (ev_name, stats) in ops:
            program = names.get(int(stats.get("program_id", -1)), {})
            hlo_op = str(stats["hlo_op"])
            part = part_of(program.get(hlo_op), parts)
            if part == OTHER and ev_name != hlo_op:  # e.g. kernels inside a command buffer
                part = part_of(program.get(ev_name) or program.get(_kernel_to_instruction(ev_name)), parts)
            seconds = max(own_ns, 0) / 1e9
            total[(ev_name, part)] += seconds
            count[(ev_name, part)] += 1
            by_part[part] += seconds
    ops_sorted = sorted((OpTime(n, p, t, count[(n, p)]) for (n, p), t in total.items()),
                        key=lambda o: (-o.total_s, o.name))
    ordered = {p: by_part[p] for p in (*parts, OTHER) if by_part.get(p)}
    return TraceSummary(
        name=name or path.parent.name, path=path, op_time_s=sum(by_part.values()), parts=ordered,
        ops=ops_sorted, steps=[d for _, d in sorted(steps)],
    )


def find_traces(folder: str | Path) -> list[tuple[str, Path]]:
    """(name, xplane path) of every trace under `folder`, named as TensorBoard's Profile tab names the
    run: `<run folder relative to folder>/<profile time>` (plus `:host` when a profile has several)."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such file or folder")
    if folder.is_file():
        if not folder.name.endswith(".xplane.pb"):
            raise ValueError(f"DIR: expected a folder or a *.xplane.pb file, got {folder}")
        return [(folder.parent.name, folder)]
    found = []
    files = sorted(folder.glob("**/*.xplane.pb"))
    per_session: dict[Path, int] = defaultdict(int)
    for f in files:
        per_session[f.parent] += 1
    for f in files:
        session = f.parent
        if session == folder:
            name = folder.name
        else:
            rel = session.relative_to(folder).parts
            if len(rel) >= 3 and rel[-3:-1] == ("plugins", "profile"):
                rel = rel[:-3] + rel[-1:]  # as TensorBoard: run folder + profile time
            name = "/".join(rel)
        if per_session[session] > 1:
            name += ":" + f.name[: -len(".xplane.pb")]
        found.append((name, f))
    return found


def summarize_traces(folder: str | Path, *, parts: Sequence[str] = NAMED_PARTS) -> list[TraceSummary]:
    """`summarize_trace` of every trace under `folder` (FileNotFoundError when there is none)."""
    found = find_traces(folder)
    if not found:
        raise FileNotFoundError(f"{folder}: no profiler trace (*.xplane.pb) under it")
    return [summarize_trace(p, name=n, parts=parts) for n, p in found]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f}"


def format_summaries(summaries: Sequence[TraceSummary], *, top: int = 10) -> str:
    """Plain-text tables: time per named part and the `top` device ops of each trace."""
    out: list[str] = []
    for s in summaries:
        head = f"{s.name}: device-op time {_ms(s.op_time_s)} ms"
        if s.steps:
            head += (f", {len(s.steps)} annotated step{'s' if len(s.steps) > 1 else ''} "
                     f"(mean {_ms(sum(s.steps) / len(s.steps))} ms wall)")
        out += [head, f"  {'part':<18}{'ms':>12}{'share':>9}"]
        for part, sec in s.parts.items():
            out.append(f"  {part:<18}{_ms(sec):>12}{s.share(part):>9.1%}")
        if not s.has_named_parts and s.op_time_s:
            out.append("  (no named part: a trace recorded before jaxseq named its scopes, or another program)")
        out.append(f"  {'top device ops':<44}{'part':<18}{'ms':>12}{'count':>8}")
        for op in s.ops[:top]:
            out.append(f"  {op.name[:43]:<44}{op.part:<18}{_ms(op.total_s):>12}{op.count:>8}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- CLI -----------------------------------------------------------------------------------------

def _summary_cmd(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ValueError(f"--top: expected >= 1, got {args.top}")
    summaries = summarize_traces(args.dir)
    if args.json:
        print(json.dumps([s.to_json() | {"ops": [dataclasses.asdict(o) for o in s.ops[: args.top]]}
                          for s in summaries], indent=2))
    else:
        print(format_summaries(summaries, top=args.top), end="")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq trace summary`."""
    p = subparsers.add_parser("trace", help="read jax.profiler traces without a browser",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="trace_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("summary", help="time per named part and the top device ops of each trace in DIR")
    s.add_argument("dir", metavar="DIR",
                   help="a run's logdir, a traces/ folder, one profile folder or one *.xplane.pb")
    s.add_argument("--top", type=int, default=10, help="device ops listed per trace (default 10)")
    s.add_argument("--json", action="store_true", help="print the summaries as JSON")
    s.set_defaults(func=_summary_cmd)
