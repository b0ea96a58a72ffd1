"""`jaxseq longrange`: how long a sequence each model can learn each long-range task at.

    jaxseq longrange --preset default [--out DIR] [--workdir runs/longrange]
                     [--tasks copy mqar] [--models lstm transformer-rope] [--lengths 64 256 1024]
                     [--max-steps N] [--lrs 3e-3 1e-2] [--seeds 3] [--budget-s S] [--report-only]

The command line (`add_parser`, `main`: ``python -m jaxseq.studies.longrange``) and the preset it builds from the
options (`preset_from_args`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from jaxseq.studies.longrange.presets import ALL_MODELS, ALL_TASKS, DEFAULT_WORKDIR, PRESETS, Preset
from jaxseq.studies.longrange.report import write_report
from jaxseq.studies.longrange.run import default_out, run_longrange
from jaxseq.studies.longrange.tasks import validate_preset


def preset_from_args(args: argparse.Namespace) -> Preset:
    if args.preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {args.preset!r}")
    p = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    for name in ("tasks", "models", "lengths", "lrs"):
        if getattr(args, name):
            changes[name] = tuple(getattr(args, name))
    if args.lengths:
        changes["task_lengths"] = ()  # the grid given applies to every task
    if args.models:
        changes["task_models"] = ()  # the models given run on every task
    if args.batch_size is not None:
        changes["task_batch"] = ()  # the batch given applies to every task
    for name in ("max_steps", "batch_size", "budget_s", "lstm_forget_bias", "seeds", "eval_every", "patience",
                 "plateau_start", "lstm_chrono"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    p = dataclasses.replace(p, **changes)
    validate_preset(p)
    return p


def _cmd(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out(args.preset)
    if args.report_only:
        path = write_report(out, machine=args.machine)
        print(f"wrote {path}")
        return 0
    if args.machine:
        raise ValueError("--machine picks whose records a report shows: use it with --report-only")
    preset = preset_from_args(args)
    t0 = time.perf_counter()
    print(f"jaxseq longrange --preset {args.preset} -> {out}", flush=True)
    written = run_longrange(preset, out, workdir=args.workdir, progress=not args.no_progress,
                            engine_progress=args.run_progress, keep_checkpoints=args.keep_checkpoints,
                            preset_name=args.preset)
    n_budget = sum(r.get("outcome") == "budget" for r in written)
    print(f"jaxseq longrange: {len(written)} new records in {time.perf_counter() - t0:.0f} s; "
          f"report {out / 'REPORT.md'}"
          + (f"; the time budget ({preset.budget_s:.0f} s) cut {n_budget} cells (rerun to continue)"
             if n_budget else ""))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq longrange`."""
    p = subparsers.add_parser("longrange", help="LSTM/GRU/minGRU/minLSTM/Transformer: length frontiers on "
                              "long-range synthetic tasks", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    p.add_argument("--out", help="output folder (results.jsonl, REPORT.md, PNGs); default: this machine's "
                   "profiles/<machine>/longrange/ (preset default) or profiles/<machine>/longrange/<preset>/")
    p.add_argument("--machine", help="with --report-only: whose records to report (id, id prefix or slug; "
                   "default the newest machine's)")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="root of the cells' engine workdirs")
    p.add_argument("--tasks", nargs="+", help=f"tasks (replaces the preset's): {', '.join(ALL_TASKS)}")
    p.add_argument("--models", nargs="+", help=f"models (replaces the preset's): {', '.join(ALL_MODELS)}")
    p.add_argument("--lengths", nargs="+", type=int, help="the rising length grid (replaces the preset's)")
    p.add_argument("--lrs", nargs="+", type=float, help="learning rates to sweep (replaces the preset's)")
    p.add_argument("--max-steps", "--steps", dest="max_steps", type=int, help="step cap of one cell")
    p.add_argument("--batch-size", type=int, help="batch size of every cell (replaces the preset's, per-task ones too)")
    p.add_argument("--seeds", type=int, help="seeds at the frontier lengths (seed 0 included)")
    p.add_argument("--eval-every", type=int, help="steps between validation checks")
    p.add_argument("--patience", type=int, help="plateau window in steps")
    p.add_argument("--budget-s", type=float, help="wall-clock budget of the study (cells cut are recorded)")
    p.add_argument("--lstm-forget-bias", type=float, help="added to the LSTM forget-gate bias at initialisation")
    p.add_argument("--lstm-chrono", action=argparse.BooleanOptionalAction, default=None,
                   help="chrono initialisation of the LSTM gates up to each cell's length (Tallec & Ollivier 2018)")
    p.add_argument("--plateau-start", type=int, help="no plateau verdict before this step")
    p.add_argument("--report-only", action="store_true", help="only regenerate REPORT.md and plots from OUT")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the engine checkpoints of finished cells")
    p.add_argument("--run-progress", action="store_true", help="the engine's per-cell progress bars too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    """`python -m jaxseq.studies.longrange ...`: the same options as `jaxseq longrange`, without
    importing the other studies (an image lacking one of their packages still runs this one)."""
    parser = argparse.ArgumentParser(prog="jaxseq longrange")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["longrange", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq longrange: error: {e}", file=sys.stderr)
        return 2
