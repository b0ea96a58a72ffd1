"""A minimal reader of `jax.profiler` traces (`*.xplane.pb`) for the compiled HLO modules they keep.

A trace's "/host:metadata" plane holds, per compiled program, an `HloProto` (the program's optimized HLO
module). No HLO or XPlane proto classes ship with jax or xprof, so this module reads the protobuf wire
format itself: `proto_fields` walks one message, `read_varint`/`packed_varints`/`proto_text` decode its
values, `metadata_hlo_protos` finds the HLO protos of the metadata plane and `hlo_modules_from_xplane`
turns them into :class:`jaxseq.bench.hlo.HloModuleText` (what `jaxseq.bench.kernels` counts).
`jaxseq.bench.traces` reads the same protos for the op names of a trace summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from jaxseq.bench.hlo import HloComputation, HloInstruction, HloModuleText

__all__ = ["read_varint", "proto_fields", "proto_text", "packed_varints", "shape_text", "metadata_hlo_protos",
           "hlo_modules_from_xplane"]

# --- protobuf wire format -------------------------------------------------------------------------


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, index just past it) of the base-128 varint starting at `buf[i]`."""
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def proto_fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, Any]]:
    """(field number, value) of one message: ints for varints, (start, end) for length-delimited."""
    end = len(buf) if end is None else end
    i = start
    while i < end:
        key, i = read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = (i, i + n), i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"xplane: unsupported protobuf wire type {wire}")
        yield num, value


def proto_text(buf: bytes, span: tuple[int, int]) -> str:
    """The UTF-8 string of a length-delimited field's `(start, end)` span (bad bytes replaced)."""
    return buf[span[0]:span[1]].decode("utf-8", "replace")


def packed_varints(buf: bytes, span: tuple[int, int] | int) -> list[int]:
    """The ints of a repeated varint field: a packed `(start, end)` span, or one unpacked value."""
    if isinstance(span, int):  # a single unpacked value
        return [span]
    out, i = [], span[0]
    while i < span[1]:
        v, i = read_varint(buf, i)
        out.append(v)
    return out


def shape_text(buf: bytes, span: tuple[int, int]) -> str:
    """ShapeProto -> 'e<type>[d0,d1]' or a tuple '(…)'; enough for `is_scalar` and for reading.
    Fields (xla_data.proto): element_type = 2 (TUPLE = 13), dimensions = 3, tuple_shapes = 4."""
    etype, dims, parts = 0, [], []
    for n, v in proto_fields(buf, *span):
        if n == 2:
            etype = v
        elif n == 3:
            dims += packed_varints(buf, v)
        elif n == 4:
            parts.append(shape_text(buf, v))
    if etype == 13:
        return "(" + ", ".join(parts) + ")"
    return f"e{etype}[{','.join(map(str, dims))}]"


# --- the metadata plane ---------------------------------------------------------------------------


def metadata_hlo_protos(xspace: bytes) -> Iterator[tuple[str, int | None, tuple[int, int]]]:
    """(program name, program id or None, HloProto span) of each HLO module kept in an XSpace's
    "/host:metadata" plane, in the order the plane lists them.

    Field numbers (tsl/profiler/protobuf/xplane.proto): XSpace.planes = 1; XPlane.name = 2,
    .event_metadata = 4 (map: key 1, value 2), .stat_metadata = 5; XEventMetadata.name = 2,
    .stats = 5; XStatMetadata.id = 1, .name = 2; XStat.metadata_id = 1, .uint64_value = 3,
    .int64_value = 4, .bytes_value = 6. The program id is the "program_id" stat's value when there is
    one (else None; event names such as "jit_step(46)" carry it too)."""
    for f, plane in proto_fields(xspace):
        if f != 1:
            continue
        fields = list(proto_fields(xspace, *plane))
        if next((proto_text(xspace, v) for n, v in fields if n == 2), "") != "/host:metadata":
            continue
        stat_names: dict[int, str] = {}
        for n, entry in fields:
            if n == 5:
                for n2, v in proto_fields(xspace, *entry):
                    if n2 == 2:
                        meta = dict(proto_fields(xspace, *v))
                        if 2 in meta:
                            stat_names[meta.get(1, 0)] = proto_text(xspace, meta[2]).lower()
        for n, entry in fields:
            if n != 4:
                continue
            for n2, v in proto_fields(xspace, *entry):
                if n2 != 2:
                    continue
                proto = program = None
                module_name = ""
                for n3, v3 in proto_fields(xspace, *v):
                    if n3 == 2:
                        module_name = proto_text(xspace, v3)
                    elif n3 == 5:
                        stat = dict(proto_fields(xspace, *v3))
                        key = stat_names.get(stat.get(1, 0), "")
                        if key in ("hlo proto", "hlo_proto") and 6 in stat:
                            proto = stat[6]
                        elif key == "program_id":
                            program = stat.get(3, stat.get(4))
                if proto is not None:
                    yield module_name, program, proto


def hlo_modules_from_xplane(path: Any) -> dict[str, HloModuleText]:
    """{module name: HloModuleText} of the compiled HLO modules a `jax.profiler` trace keeps in its
    metadata plane, so kernels per loop can be counted from a trace recorded on another machine (a
    GPU's `*.xplane.pb`) without recompiling there.

    Field numbers (xla/service/hlo.proto): HloProto.hlo_module = 1; HloModuleProto.name = 1,
    .entry_computation_name = 2, .computations = 3; HloComputationProto.name = 1, .instructions = 2,
    .id = 5; HloInstructionProto.name = 1, .opcode = 2, .shape = 3, .metadata = 7 (op_name = 2),
    .fusion_kind = 11, .custom_call_target = 28, .id = 35, .operand_ids = 36,
    .called_computation_ids = 38 (a while's body first, then its condition), .backend_config = 43.
    """
    buf = Path(path).read_bytes()
    modules: dict[str, HloModuleText] = {}
    for _, _, proto in metadata_hlo_protos(buf):
        for n, mod in proto_fields(buf, *proto):
            if n == 1:
                m = _module_from_proto(buf, mod)
                modules[m.name] = m
    return modules


def _module_from_proto(buf: bytes, span: tuple[int, int]) -> HloModuleText:
    name, entry, raw_comps = "", None, []
    for n, v in proto_fields(buf, *span):
        if n == 1:
            name = proto_text(buf, v)
        elif n == 2:
            entry = proto_text(buf, v)
        elif n == 3:
            raw_comps.append(v)
    comp_names: dict[int, str] = {}
    parsed: list[tuple[str, list[dict[int, list[Any]]]]] = []
    for cspan in raw_comps:
        cname, cid, instrs = "", None, []
        for n, v in proto_fields(buf, *cspan):
            if n == 1:
                cname = proto_text(buf, v)
            elif n == 5:
                cid = v
            elif n == 2:
                d: dict[int, list[Any]] = {}
                for n2, v2 in proto_fields(buf, *v):
                    d.setdefault(n2, []).append(v2)
                instrs.append(d)
        if cid is not None:
            comp_names[cid] = cname
        parsed.append((cname, instrs))
    comps: dict[str, HloComputation] = {}
    for cname, instrs in parsed:
        out = []
        ids = {d[35][0]: proto_text(buf, d[1][0]) for d in instrs if 35 in d and 1 in d}
        for d in instrs:
            iname, opcode = proto_text(buf, d[1][0]), proto_text(buf, d[2][0])
            called = [comp_names.get(c, str(c)) for v in d.get(38, []) for c in packed_varints(buf, v)]
            attrs = []
            if 11 in d and isinstance(d[11][0], tuple):
                attrs.append(f"kind={proto_text(buf, d[11][0])}")
            if opcode == "while" and len(called) >= 2:
                attrs.append(f"condition=%{called[1]}, body=%{called[0]}")
            elif opcode == "fusion" and called:
                attrs.append(f"calls=%{called[0]}")
            elif opcode == "conditional" and called:
                attrs.append("branch_computations={" + ", ".join(f"%{c}" for c in called) + "}")
            elif called:
                attrs.append("to_apply=" + ", ".join(f"%{c}" for c in called) if len(called) == 1
                             else "called_computations={" + ", ".join(f"%{c}" for c in called) + "}")
            if 28 in d and isinstance(d[28][0], tuple):
                attrs.append(f'custom_call_target="{proto_text(buf, d[28][0])}"')
            if 7 in d:
                op_name = next((proto_text(buf, v) for n, v in proto_fields(buf, *d[7][0]) if n == 2), "")
                attrs.append(f'metadata={{op_name="{op_name}"}}')
            if 43 in d and d[43][0][1] > d[43][0][0]:
                attrs.append(f"backend_config={proto_text(buf, d[43][0])}")
            operands = tuple(ids.get(o, str(o)) for v in d.get(36, []) for o in packed_varints(buf, v))
            out.append(HloInstruction(name=iname, opcode=opcode, shape=shape_text(buf, d[3][0]) if 3 in d else "",
                                      operands=operands, attrs=", ".join(attrs)))
        comps[cname] = HloComputation(name=cname, instructions=tuple(out), is_entry=cname == entry)
    return HloModuleText(name=name, computations=comps, entry=entry)
