"""A parser for HLO text modules (`compiled.as_text()`, an XLA dump, `lowered.as_text('hlo')`).

`parse_hlo(text)` turns the text into an :class:`HloModuleText`: its computations, in text order, each
a tuple of :class:`HloInstruction` (name, opcode, result shape, operand names and the rest of the line
as `attrs`). Only the structure kernel counting needs is kept (`jaxseq.bench.kernels`); the same
classes hold the modules read from a profiler trace (`jaxseq.bench.xplane`).
"""
from __future__ import annotations

import dataclasses
import re

__all__ = ["HloInstruction", "HloComputation", "HloModuleText", "parse_hlo"]


@dataclasses.dataclass(frozen=True)
class HloInstruction:
    """One instruction line of an HLO text module."""

    name: str  # without the leading '%'
    opcode: str  # "fusion", "while", "dot", ...
    shape: str  # result shape text, e.g. "f32[16,256]{1,0}" or a tuple "(s32[], f32[2])"
    operands: tuple[str, ...]  # operand instruction names
    attrs: str  # the rest of the line after the operand list (calls=..., metadata=..., backend_config=...)
    is_root: bool = False

    @property
    def called(self) -> tuple[str, ...]:
        """Names of the computations this instruction calls (fusion, while, call, conditional, ...)."""
        out: list[str] = []
        for m in re.finditer(r"\b(calls|to_apply|body|condition|true_computation|false_computation|"
                             r"branch_computations|async_computation|called_computations)="
                             r"(\{[^}]*\}|%?[\w.\-]+)", self.attrs):
            out += [n.lstrip("%") for n in re.findall(r"%?([\w.\-]+)", m.group(2))]
        return tuple(out)

    def attr(self, key: str) -> str | None:
        """A simple `key=value` attribute (value up to the next ',' or space), e.g. `kind`, `body`."""
        m = re.search(rf"(?:^|[\s,]){re.escape(key)}=(%?[\w.\-$]+|\"[^\"]*\")", self.attrs)
        return m.group(1).lstrip("%").strip('"') if m else None

    @property
    def op_name(self) -> str:
        m = re.search(r'op_name="([^"]*)"', self.attrs)
        return m.group(1) if m else ""

    @property
    def is_scalar(self) -> bool:
        return re.fullmatch(r"\w+\[\](\{[^}]*\})?", self.shape) is not None


@dataclasses.dataclass(frozen=True)
class HloComputation:
    name: str
    instructions: tuple[HloInstruction, ...]
    is_entry: bool = False

    def by_name(self) -> dict[str, HloInstruction]:
        return {i.name: i for i in self.instructions}


@dataclasses.dataclass(frozen=True)
class HloModuleText:
    name: str
    computations: dict[str, HloComputation]  # in text order
    entry: str | None


def _balanced(s: str, start: int) -> int:
    """Index just past the bracket group opening at s[start] ('(' or '{'), skipping quoted strings."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack: list[str] = []
    i = start
    in_str = False
    while i < len(s):
        ch = s[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced brackets in HLO text: {s[start:start + 80]!r}")


_COMP_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*(\(.*)?\{\s*$")
_INSTR_HEAD = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*")


def _parse_instruction(line: str) -> HloInstruction | None:
    m = _INSTR_HEAD.match(line)
    if not m:
        return None
    is_root, name = bool(m.group(1)), m.group(2)
    i = m.end()
    if i < len(line) and line[i] == "(":  # tuple shape
        j = _balanced(line, i)
    else:
        j = i
        while j < len(line) and not line[j].isspace():
            if line[j] in "{[(":
                j = _balanced(line, j)
            else:
                j += 1
    shape = line[i:j]
    rest = line[j:].lstrip()
    om = re.match(r"([\w\-]+)\(", rest)
    if not om:
        return None
    opcode = om.group(1)
    k = om.end() - 1
    end = _balanced(rest, k)
    operand_text = rest[k + 1:end - 1]
    # Operands are '%name' (optionally preceded by their shape); a constant keeps its literal and a
    # parameter its number here, and printers that drop the '%' give bare names.
    operands = tuple(re.findall(r"%([\w.\-]+)", operand_text))
    if not operands and operand_text.strip():
        operands = tuple(t.strip().split()[-1] for t in operand_text.split(",") if t.strip())
    attrs = rest[end:].lstrip(", ")
    return HloInstruction(name=name, opcode=opcode, shape=shape, operands=operands, attrs=attrs,
                          is_root=is_root)


def parse_hlo(text: str) -> HloModuleText:
    """Parse an HLO text module (`compiled.as_text()`, an XLA dump, `lowered.as_text('hlo')`).

    Computations are top-level blocks `[ENTRY ]%name (params) -> shape {` ... `}`; every line inside
    that has `%x = shape opcode(operands), attrs` becomes an :class:`HloInstruction`. Lines the parser
    does not recognise (comments, blank lines, module attributes) are skipped.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_hlo: `text` must be a str of HLO text, got {type(text).__name__}")
    module_name = ""
    mm = re.search(r"^HloModule\s+([\w.\-]+)", text, re.M)
    if mm:
        module_name = mm.group(1)
    comps: dict[str, HloComputation] = {}
    entry = None
    current: tuple[str, bool] | None = None
    instrs: list[HloInstruction] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.lstrip().startswith("//"):
            continue
        if current is None:
            if line[0].isspace():
                continue
            h = _COMP_HEADER.match(line)
            if h and not line.startswith("HloModule"):
                current = (h.group(2), bool(h.group(1)))
                instrs = []
            continue
        if line.strip() == "}" and not line[0].isspace():
            name, is_entry = current
            comps[name] = HloComputation(name=name, instructions=tuple(instrs), is_entry=is_entry)
            if is_entry:
                entry = name
            current = None
            continue
        ins = _parse_instruction(line)
        if ins is not None:
            instrs.append(ins)
    if current is not None:
        raise ValueError(f"parse_hlo: computation {current[0]!r} is not closed with '}}'")
    return HloModuleText(name=module_name, computations=comps, entry=entry)
