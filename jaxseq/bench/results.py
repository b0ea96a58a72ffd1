"""Where a bench command's records go (`--out`), and the JSONL files that hold them.

`jaxseq bench ops --out` and `jaxseq bench phases --out` share one rule: no `--out`, no file; `--out FILE`,
that file; `--out` alone (`DEFAULT_OUT`), this machine's own folder of the scaling study,
``profiles/<machine_slug>/scaling/<name>`` (`sweep.machine_folder`, so a faked or refreshed fingerprint
moves it too). The records are appended one JSON line each (`append_jsonl`) and read back with
`read_jsonl` / `load_records`; those are defined beside the sweep runner that resumes from them
(`jaxseq.bench.sweep`) and re-exported here, so a bench command takes all of its result handling from
this module.
"""
from __future__ import annotations

import os
from pathlib import Path

from jaxseq.bench.sweep import append_jsonl, load_records, machine_folder, read_jsonl

__all__ = ["DEFAULT_OUT", "resolve_out", "append_jsonl", "read_jsonl", "load_records"]

# `--out` given without a file: this machine's folder (resolved when the command runs).
DEFAULT_OUT = "@machine"


def resolve_out(out: str | os.PathLike | None, name: str, *, folder: str = "scaling") -> Path | None:
    """The JSONL file an `--out` value names: None for no `--out`, `DEFAULT_OUT` ->
    ``profiles/<machine>/<folder>/<name>``, anything else -> that path."""
    if not out:
        return None
    return machine_folder(folder) / name if out == DEFAULT_OUT else Path(out)
