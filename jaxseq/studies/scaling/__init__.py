"""The scaling study: speed, memory and parallel scaling against length, batch and devices.

`sweep` (`jaxseq scale`) measures points into `results.jsonl`; `report` (`jaxseq report`) writes
`REPORT.md` and plots from it; `study` (`jaxseq study`, what `make study` runs) does bench ops, the
sweep and the report into one folder, by default this machine's `profiles/<machine_slug>/scaling/`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxseq.studies.scaling.sweep import PRESETS

__all__ = ["PRESETS", "add_parser", "run_preset", "write_report", "write_folder_report"]


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq scale`, `jaxseq report` and `jaxseq study`."""
    from jaxseq.studies.scaling import report, study, sweep

    sweep.add_parser(subparsers)
    report.add_parser(subparsers)
    study.add_parser(subparsers)


def write_report(folder: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """`jaxseq.studies.scaling.report.write_report`: REPORT.md and plots of a study folder."""
    from jaxseq.studies.scaling.report import write_report as _write_report

    return _write_report(folder, out, **kwargs)


def write_folder_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and plots) of a results folder from its records alone (the study contract's name).

    The scaling report always draws its plots; `plots` is accepted for the contract."""
    return write_report(out)


def run_preset(preset: str, out: str | Path | None = None) -> Path:
    """`jaxseq study --preset PRESET`: bench ops, the sweep with traces, the report and (in a profiles/
    folder) the verdict; returns REPORT.md's path (RuntimeError naming the failed steps otherwise)."""
    from jaxseq.studies.scaling.study import run_study

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    summary = run_study(out, preset, progress=False)
    if summary["failed"] or not summary.get("report"):
        raise RuntimeError(f"jaxseq study --preset {preset}: a step failed: {summary['steps']}")
    return Path(summary["report"])
