"""The `jaxseq` command.

Each subcommand lives in the library module that does the work; that module exposes
`add_parser(subparsers)` which registers the subcommand and sets `func=<callable(args) -> int>`.
This file only collects them, so importing jaxseq.cli stays cheap (modules are imported lazily).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# (subcommand, module that registers it). Modules are imported only when the parser is built.
# The harness and the training engine come first; each study registers its own subcommands
# (jaxseq.studies.STUDIES), so a new study needs no edit here.
def _commands() -> tuple[tuple[str, str], ...]:
    from jaxseq.studies import STUDIES

    return (
        ("bench", "jaxseq.bench.ops_bench"),
        ("train", "jaxseq.train.cli"),
        ("sample", "jaxseq.train.cli"),
        ("trace", "jaxseq.bench.traces"),
        *((cmd, spec.module) for spec in STUDIES for cmd in spec.commands),
    )


COMMANDS: tuple[tuple[str, str], ...] = _commands()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxseq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen: set[str] = set()
    for _, module_name in COMMANDS:
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # A study module not written yet must not break the others.
            if e.name and e.name.startswith("jaxseq"):
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        # Bad input is the user's to fix: one line, exit code 2, no traceback.
        print(f"jaxseq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxseq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
