"""Number and Markdown table formatting of the report."""
from __future__ import annotations

from typing import Any


def _fmt(v: Any, digits: int = 3) -> str:
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


def _mb(b: Any) -> float | None:
    return None if b is None else b / 2**20


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


def _bytes(b: Any) -> str:
    if b is None:
        return "-"
    b = float(b)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def _pivot(models: dict[str, list[dict[str, Any]]], value) -> tuple[list[str], list[list[Any]]]:
    Ts = sorted({r["point"]["seq_len"] for recs in models.values() for r in recs})
    rows = []
    for m in sorted(models):
        by_t = {r["point"]["seq_len"]: value(r) for r in models[m]}
        rows.append([m] + [by_t.get(T) for T in Ts])
    return ["model"] + [f"T={T}" for T in Ts], rows


def _first_line(msg: Any, limit: int = 140) -> str:
    text = (str(msg or "").strip().splitlines() or [""])[0]
    return (text[: limit - 1] + "…" if len(text) > limit else text).replace("|", "/")
