"""`jaxseq study`: the whole scaling study in one go (what `make study` runs).

    jaxseq study [--out DIR] [--preset cpu] [--skip-bench] [--quick] [--force]

Four steps, the first three resumable, into one folder: by default this machine's
`profiles/<machine_slug>/scaling/` (`.../scaling/<preset>/` for presets other than cpu and gpu); the
other machines' folders are only read, as the references the report puts beside this machine's
numbers. A machine whose study is committed (same fingerprint and versions) resumes it.

1. `jaxseq bench ops` -> OUT/bench_ops.jsonl: the op benchmark against torch (LSTM at T=256 and 1024,
   attention at T=1024 and 2048 by default; `--bench-full` adds attention at T=4096, about six more
   minutes on two cores, mostly XLA's T^2 attention). Skipped when the file already holds every row
   it would write, measured on this machine, unless `--force`.
2. `jaxseq scale --preset PRESET --trace` -> OUT/results.jsonl and OUT/traces/ (this machine's
   finished points and existing traces are skipped on a rerun).
3. `jaxseq report --in OUT` -> OUT/REPORT.md and PNG plots, with this machine beside the references.
4. `jaxseq verdict` -> profiles/<machine>/VERDICT.md: every claim judged from this machine's study
   folders, the other machines beside it (skipped when OUT is not a profiles/<machine>/scaling/ folder).

A failing step is reported and the next one still runs (the report covers what exists); the exit
code is 1 when a step failed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jaxseq.studies import verdict
from jaxseq.studies.base import study_root

__all__ = ["DEFAULT_BENCH_ARGS", "bench_namespace", "bench_done", "run_study", "add_parser"]

# The study's bench ops: the default lengths without attention at T=4096 (XLA's attention alone
# takes ~3 min per step group there on two cores); blockwise attention and torch SDPA at T=4096 are
# in the cpu preset. Three paired rounds rather than bench ops' five: each round times every
# attention backend twice, and the XLA and naive kernels take seconds a step at T=2048.
DEFAULT_BENCH_ARGS = ("--attn-lengths", "1024", "2048", "--pairs", "3")


def bench_namespace(argv: list[str]) -> argparse.Namespace:
    """Parse `jaxseq bench ops ARGV` with bench ops' own parser."""
    from jaxseq.bench import ops_bench

    parser = argparse.ArgumentParser(prog="jaxseq study (bench ops)")
    ops_bench.add_parser(parser.add_subparsers(dest="command"))
    try:
        return parser.parse_args(["bench", "ops", *argv])
    except SystemExit as e:  # argparse exits on bad options: make it the study's error
        raise ValueError(f"bad bench ops arguments {argv}") from e


def _point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def bench_done(ns: argparse.Namespace, path: Path) -> tuple[int, int]:
    """(rows of this bench ops run already in `path` from this machine, rows it would write)."""
    from jaxseq.bench import ops_bench
    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.studies.base import own_records

    try:
        expected = [p for _, _, pts in ops_bench.bench_cases(ns) for p in pts]
    except Exception:  # bench ops changed its internals: never skip
        return 0, -1
    have = {_point_key(r["point"]) for r in own_records(read_jsonl(path))
            if isinstance(r.get("point"), dict) and r.get("status")}
    return sum(_point_key(p) in have for p in expected), len(expected)


def _banner(i: int, n: int, text: str) -> None:
    print(f"\n=== [study {i}/{n}] {text} ===", flush=True)


def run_study(out: str | Path | None = None, preset: str = "cpu", *, skip_bench: bool = False,
              bench_args: list[str] | None = None, force: bool = False, trace: bool = True,
              timeout_s: float | None = None, peak_tflops: float | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run bench ops, the scale preset and the report into `out`; return what each step did.

    `out` None: this machine's folder (`jaxseq.studies.scaling.sweep.resolve_out`).
    """
    from jaxseq.bench.sweep import machine_fingerprint, machine_id, machine_label
    from jaxseq.studies.scaling import report, sweep as scale

    if preset not in scale.PRESETS:
        raise ValueError(f"--preset must be one of {tuple(scale.PRESETS)}, got {preset!r}")
    scale.grow_gpu_memory()
    out = scale.resolve_out(out, preset)
    out.mkdir(parents=True, exist_ok=True)
    fp = machine_fingerprint()
    print(f"jaxseq study -> {out}\nmachine: {machine_label(fp)} (id {machine_id(fp)})", flush=True)
    bench_path = out / report.BENCH_OPS
    summary: dict[str, Any] = {"out": str(out), "machine_id": machine_id(fp), "steps": {}}
    failed = False
    t_all = time.perf_counter()

    # 1. bench ops
    _banner(1, 4, "bench ops")
    t0 = time.perf_counter()
    if skip_bench:
        summary["steps"]["bench"] = "skipped (--skip-bench)"
        print("skipped (--skip-bench)")
    else:
        argv = list(DEFAULT_BENCH_ARGS if bench_args is None else bench_args)
        ns = bench_namespace(argv + ["--out", str(bench_path), "--verbose"])
        have, want = bench_done(ns, bench_path)
        if want > 0 and have == want and not force:
            summary["steps"]["bench"] = (f"skipped: all {want} rows already in {bench_path} "
                                         "for this machine")
            print(f"all {want} rows already in {bench_path} for this machine; skipped "
                  "(--force reruns it)")
        else:
            print(f"jaxseq bench ops {shlex.join(argv)} -> {bench_path}"
                  + (f" ({have} of {want} rows there; running all)" if have else ""), flush=True)
            try:
                ns.func(ns)
                summary["steps"]["bench"] = f"ran in {time.perf_counter() - t0:.0f} s"
            except Exception as e:  # the sweep and the report still run
                failed = True
                summary["steps"]["bench"] = f"FAILED: {type(e).__name__}: {e}"[:300]
                print(summary["steps"]["bench"], file=sys.stderr)

    # 2. scale sweep + traces
    _banner(2, 4, f"scale --preset {preset}{' --trace' if trace else ''}")
    t0 = time.perf_counter()
    try:
        records = scale.run_scale(preset, out, trace=trace, timeout_s=timeout_s,
                                  peak_tflops=peak_tflops, progress=progress)
        bad = sum(r["status"] != "ok" for r in records)
        summary["steps"]["scale"] = (f"{len(records)} points run ({bad} not ok) in "
                                     f"{time.perf_counter() - t0:.0f} s")
    except Exception as e:
        failed = True
        summary["steps"]["scale"] = f"FAILED: {type(e).__name__}: {e}"[:300]
        print(summary["steps"]["scale"], file=sys.stderr)
    print(summary["steps"]["scale"], flush=True)

    # 3. report
    _banner(3, 4, "report")
    try:
        path = report.write_report(out)
        summary["steps"]["report"] = str(path)
        summary["report"] = str(path)
        print(f"wrote {path}")
    except Exception as e:
        failed = True
        summary["steps"]["report"] = f"FAILED: {type(e).__name__}: {e}"[:300]
        print(summary["steps"]["report"], file=sys.stderr)
    # 4. the verdict of this machine, beside the other machines' (only for a folder of the results rule)
    _banner(4, 4, "verdict")
    split = study_root(out, "scaling")
    if split is None:
        summary["steps"]["verdict"] = "skipped: --out is not a profiles/<machine>/scaling/ folder"
    else:
        try:
            machine = split[1]
            summary["verdict"] = str(verdict.write_verdict(machine, verdict.machines(split[0])))
            summary["steps"]["verdict"] = summary["verdict"]
        except Exception as e:
            failed = True
            summary["steps"]["verdict"] = f"FAILED: {type(e).__name__}: {e}"[:300]
            print(summary["steps"]["verdict"], file=sys.stderr)
    summary["elapsed_s"] = round(time.perf_counter() - t_all, 1)
    summary["failed"] = failed
    print(f"\nstudy done in {summary['elapsed_s']:.0f} s -> {out}")
    for step, what in summary["steps"].items():
        print(f"  {step}: {what}")
    if summary.get("report"):
        # The findings' target lines are the study's headline: print them last.
        text = Path(summary["report"]).read_text().splitlines()
        targets = [ln for ln in text if ln.startswith("- **")]
        if targets:
            print("targets:")
            for ln in targets:
                print("  " + ln[2:].replace("**", ""))
    if summary.get("verdict"):
        print(f"\nThe verdict on {Path(summary['verdict']).parent.name} ({summary['verdict']}):")
        print(verdict.short_table(Path(summary["verdict"]).parent))
    return summary


def _cmd(args: argparse.Namespace) -> int:
    if args.quick:
        bench_args = ["--quick"]
    elif args.bench_full:
        bench_args = []
    else:
        bench_args = None
    if args.bench_args is not None:
        bench_args = (bench_args or []) + shlex.split(args.bench_args)
    summary = run_study(args.out, args.preset, skip_bench=args.skip_bench, bench_args=bench_args,
                        force=args.force, trace=not args.no_trace, timeout_s=args.timeout,
                        peak_tflops=args.peak_tflops, progress=not args.no_progress)
    return 1 if summary["failed"] else 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq study`."""
    p = subparsers.add_parser("study", help="bench ops + scale sweep + report into one folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="study folder (default: this machine's profiles/<machine>/scaling/, or "
                   "profiles/<machine>/scaling/<preset>/ for presets other than cpu and gpu)")
    p.add_argument("--preset", default="cpu", help="scale preset (default %(default)s)")
    p.add_argument("--skip-bench", action="store_true", help="do not run bench ops")
    p.add_argument("--quick", action="store_true", help="bench ops --quick (short lengths)")
    p.add_argument("--bench-full", action="store_true",
                   help="bench ops with all its default lengths (adds attention at T=4096)")
    p.add_argument("--bench-args", help="extra bench ops options as one string, e.g. "
                   "'--repeats 3 --backends blockwise xla'")
    p.add_argument("--force", action="store_true",
                   help="run bench ops even when its rows are already in bench_ops.jsonl")
    p.add_argument("--no-trace", action="store_true", help="no profiler traces")
    p.add_argument("--timeout", type=float, help="per-point limit of the sweep (preset default)")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (CPUs have none listed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd)
