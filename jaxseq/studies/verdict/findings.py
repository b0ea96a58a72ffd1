"""The verdict's data types and its one rule.

A claim is judged from evidence rows. Each row is one measured comparison with its own stated
threshold and a direction: +1 (the row supports the claim), -1 (it contradicts it) or 0 (inside the
threshold band: no side). The claim's verdict follows `RULE`, the same for every claim.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

__all__ = ["Evidence", "ClaimVerdict", "Claim", "RULE", "verdict_of", "SUPPORTED", "REFUTED", "MIXED",
           "NOT_MEASURED"]

SUPPORTED, REFUTED, MIXED, NOT_MEASURED = "supported", "refuted", "mixed", "not measured here"

RULE = ("Each claim is judged from evidence rows, each a measured comparison with its own threshold that "
        "supports the claim (+), contradicts it (−) or falls inside the band (·). The claim is **supported** "
        "when at least one row is + and none is −, **refuted** when at least one row is − and none is +, "
        "**mixed** when rows point both ways or all fall inside the band, and **not measured here** when "
        "this machine has no row.")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One measured comparison: what, the number, the threshold, and which way it points."""

    name: str
    value: str        # the number(s), e.g. "1.62x (406 vs 251 ms) at T=16384"
    threshold: str    # e.g. "+ at >= 2x, - at <= 1x"
    direction: int    # +1 supports, -1 contradicts, 0 within the band

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"direction must be -1, 0 or 1, got {self.direction!r}")

    @property
    def sign(self) -> str:
        return {1: "+", -1: "−", 0: "·"}[self.direction]


def verdict_of(evidence: Sequence[Evidence]) -> str:
    """`RULE` applied to the rows."""
    if not evidence:
        return NOT_MEASURED
    signs = {e.direction for e in evidence}
    if 1 in signs and -1 not in signs:
        return SUPPORTED
    if -1 in signs and 1 not in signs:
        return REFUTED
    return MIXED


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the story and how to reproduce its evidence."""

    key: str          # short id, e.g. "parallel"
    number: int
    text: str         # the claim in the story's words
    studies: tuple[str, ...]   # the study folders its evidence comes from
    command: str      # what reproduces it on a machine


@dataclasses.dataclass(frozen=True)
class ClaimVerdict:
    """One claim judged on one machine."""

    claim: Claim
    evidence: tuple[Evidence, ...]
    sources: tuple[str, ...]      # "<machine>/<study>: date, commit" of the records used
    plots: tuple[str, ...]        # paths relative to the machine folder
    unmeasured: tuple[str, ...]   # what this machine lacks for the claim
    context: tuple[str, ...] = ()  # measured numbers beside the rows that are no evidence either way
    cost: str = ""                 # the recorded wall time of its studies on this machine, in words

    @property
    def verdict(self) -> str:
        return verdict_of(self.evidence)
