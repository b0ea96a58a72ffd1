"""`jaxseq report`: REPORT.md and PNG plots from a study folder's JSONL files.

    jaxseq report --in profiles/cpu-2core/scaling [--out DIR]

`write_report` reads the folder and writes REPORT.md and the plots; `add_parser` registers the subcommand
and `main` runs it as `python -m jaxseq.studies.scaling.report` (see the package's docstring).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from jaxseq.studies.base import folder_name
from jaxseq.studies.scaling.report.findings import anchor_table, target_lines
from jaxseq.studies.scaling.report.markdown import build_report
from jaxseq.studies.scaling.report.records import REPORT, load_study
from jaxseq.studies.scaling.report.references import load_references


def write_report(folder: str | Path, out: str | Path | None = None, *, machine: str | None = None,
                 references: list[str | Path] | None = None) -> Path:
    """Read `folder`, write REPORT.md and the PNGs into `out` (default `folder`); return REPORT.md.

    `machine`: whose records (default the newest machine's); `references`: folders of other machines
    to put beside it (default the other machines' `profiles/*/scaling/`; [] for none).
    """
    folder = Path(folder)
    out = Path(out) if out else folder
    study = load_study(folder, machine)
    refs = load_references(folder, study, references)
    text = build_report(study, out, source=folder_name(folder, "scaling"), traces_dir=folder / "traces",
                        references=refs)
    path = out / REPORT
    path.write_text(text + "\n")
    return path


def _cmd(args: argparse.Namespace) -> int:
    refs = [] if args.no_references else args.references
    path = write_report(args.input, args.out, machine=args.machine, references=refs)
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"wrote {path} and {len(pngs)} plots ({', '.join(pngs)})")
    if args.table:
        study = load_study(args.input, args.machine)
        print(anchor_table(study))
        for line in target_lines(study):
            print(line.replace("**", ""))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq report`."""
    p = subparsers.add_parser("report", help="REPORT.md + plots from a study folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--in", dest="input", required=True,
                   help="study folder holding results.jsonl and/or bench_ops.jsonl")
    p.add_argument("--out", help="where REPORT.md and the PNGs go (default: the --in folder)")
    p.add_argument("--machine", help="report this machine's records (an id, id prefix or slug; "
                   "default: the machine of the newest record in the folder)")
    p.add_argument("--references", nargs="+", metavar="DIR",
                   help="study folders of other machines to put beside this one (default: the "
                        "other machines' profiles/*/scaling/)")
    p.add_argument("--no-references", action="store_true", help="no comparison with other machines")
    p.add_argument("--table", action="store_true",
                   help="also print a short table (model, T, ms, tokens/s, ratio to anchor) and "
                        "the target lines")
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    """`python -m jaxseq.studies.scaling.report --in DIR`: `jaxseq report` without importing jaxseq.cli."""
    parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.scaling.report")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq report: error: {e}", file=sys.stderr)
        return 2
