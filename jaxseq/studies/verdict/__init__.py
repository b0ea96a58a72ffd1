"""`jaxseq verdict`: the answer on one page, claim by claim, computed from a machine's study records.

    jaxseq verdict                      # this machine: profiles/<machine>/VERDICT.md, and a short table
    jaxseq verdict --machine cpu-2core  # another machine folder under profiles/
    jaxseq verdict --all                # every machine folder, and the generated profiles/README.md index
    jaxseq verdict --readme             # the README's verdict table (all machines), printed

Each claim of the story is judged from evidence rows (`jaxseq.studies.verdict.evidence`), each a
measured comparison with a stated threshold, by one rule for all claims (`findings.RULE`). A study that
has not run on the machine gives no row, and the page names the command that would measure it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jaxseq.bench.sweep import machine_fingerprint, machine_slug
from jaxseq.studies.results import write_index
from jaxseq.studies.verdict.claims import CLAIMS, judge
from jaxseq.studies.verdict.findings import (MIXED, NOT_MEASURED, REFUTED, RULE, SUPPORTED, Claim,
                                             ClaimVerdict, Evidence, verdict_of)
from jaxseq.studies.verdict.render import (VERDICT, machines, readme_table, short_table, verdict_markdown,
                                           write_verdict)

__all__ = ["CLAIMS", "judge", "Claim", "ClaimVerdict", "Evidence", "verdict_of", "RULE", "SUPPORTED",
           "REFUTED", "MIXED", "NOT_MEASURED", "VERDICT", "machines", "readme_table", "short_table",
           "verdict_markdown", "write_verdict", "write_all", "add_parser"]


def write_all(root: str | Path) -> list[Path]:
    """VERDICT.md in every machine folder under `root` (each with the others beside it) and the index."""
    ms = machines(root)
    written = [write_verdict(m, ms) for m in ms]
    write_index(root)
    return written


def _cmd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if args.readme:
        print(readme_table(root))
        return 0
    if args.all:
        for path in write_all(root):
            print(f"wrote {path}")
        print(f"wrote {root / 'README.md'}")
        return 0
    name = args.machine or machine_slug(machine_fingerprint())
    folder = root / name
    if args.machine and not folder.is_dir():
        known = ", ".join(m.name for m in machines(root)) or "none"
        raise ValueError(f"--machine {name!r}: no such folder under {root} (machines there: {known})")
    path = write_verdict(folder, machines(root))
    if args.index:
        write_index(root)
    print(f"The verdict on {name} (rule: see {path}):\n")
    print(short_table(folder))
    print(f"\nwrote {path}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq verdict`."""
    p = subparsers.add_parser("verdict", help="the answer, claim by claim, from this machine's records",
                              description=__doc__.splitlines()[0])
    p.add_argument("--machine", help="a machine folder under --root (default: this machine's slug)")
    p.add_argument("--root", default="profiles", help="the results root (default %(default)s)")
    p.add_argument("--all", action="store_true", help="every machine folder, and the profiles/README.md index")
    p.add_argument("--index", action="store_true", help="also rewrite the profiles/README.md index")
    p.add_argument("--readme", action="store_true", help="print the README's verdict table and exit")
    p.set_defaults(func=_cmd)

