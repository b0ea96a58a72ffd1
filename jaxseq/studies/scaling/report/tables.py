"""Number and Markdown table formatting of the report."""
from __future__ import annotations

from typing import Any


def fmt_cell(v: Any, digits: int = 3) -> str:
    """One table cell: "-" for None, floats to `digits` significant figures, the rest as str."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def to_mib(b: Any) -> float | None:
    """Bytes to MiB (None stays None)."""
    return None if b is None else b / 2**20


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table's lines: the header, the rule, one line a row (cells by `fmt_cell`)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(fmt_cell(c) for c in row) + " |" for row in rows]
    return out


def fmt_bytes(b: Any) -> str:
    """A byte count in a human unit ("-" for None)."""
    if b is None:
        return "-"
    b = float(b)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def pivot(models: dict[str, list[dict[str, Any]]], value) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of a model x seq_len table: one row a model, `value(record)` in each cell."""
    Ts = sorted({r["point"]["seq_len"] for recs in models.values() for r in recs})
    rows = []
    for m in sorted(models):
        by_t = {r["point"]["seq_len"]: value(r) for r in models[m]}
        rows.append([m] + [by_t.get(T) for T in Ts])
    return ["model"] + [f"T={T}" for T in Ts], rows


def first_line(msg: Any, limit: int = 140) -> str:
    """The first line of `msg`, cut to `limit` characters, with "|" made "/" (safe in a table cell)."""
    text = (str(msg or "").strip().splitlines() or [""])[0]
    return (text[: limit - 1] + "…" if len(text) > limit else text).replace("|", "/")
