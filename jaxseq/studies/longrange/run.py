"""The study: every (task, model)'s search run cell by cell, shortest first, resumable, under an optional
time budget (`run_longrange`), its plan.json and its default output folder.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from jaxseq.studies.longrange.cell import cell_workdir, train_one
from jaxseq.studies.longrange.presets import DEFAULT_WORKDIR, FINAL, PROTOCOL, SOLVED, Preset
from jaxseq.studies.longrange.report import write_report
from jaxseq.studies.longrange.frontier import latest_by_key, outcome_of, run_key, search
from jaxseq.studies.longrange.tasks import validate_preset


def _append(path: Path, rec: dict) -> None:
    from jaxseq.bench.sweep import append_jsonl

    append_jsonl(path, rec)


def default_out(preset_name: str = "default") -> Path:
    """This machine's folder for a preset: profiles/<machine>/longrange[/<preset>] ("default": none)."""
    from jaxseq.studies.base import default_out as _default_out

    return _default_out("longrange", "" if preset_name == "default" else preset_name)


def plan_of(preset: Preset) -> dict[str, Any]:
    return {"protocol": PROTOCOL, "preset": dataclasses.asdict(preset), "solved_threshold": SOLVED}


def run_longrange(preset: Preset, out: str | Path, *, workdir: str | Path = DEFAULT_WORKDIR,
                  progress: bool = True, engine_progress: bool = False, keep_checkpoints: bool = False,
                  preset_name: str = "custom") -> list[dict]:
    """Run (or resume) the study of `preset`; returns the records written by this call.

    Only this machine's records of `out/results.jsonl` with a final outcome count as done
    (`jaxseq.studies.base`); budget cuts and errors run again.
    """
    from jaxseq.bench.sweep import environment_info, load_records
    from jaxseq.studies.base import own_records, this_machine_id

    validate_preset(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(workdir)
    results = out / "results.jsonl"
    plan = {**plan_of(preset), "preset_name": preset_name}
    (out / "plan.json").write_text(json.dumps(plan, indent=2, default=str) + "\n")
    done = {k: r for k, r in latest_by_key(own_records(load_records(results))).items()
            if r.get("protocol") == PROTOCOL and outcome_of(r) in FINAL}
    written: list[dict] = []
    combos = preset.pairs()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="longrange", unit="cell", dynamic_ncols=True, file=sys.stderr)
    start = time.time()
    deadline = None if preset.budget_s is None else start + preset.budget_s
    spent = False  # a cell came back cut by the budget: start no other

    def emit(rec: dict) -> None:
        rec.update(environment_info())
        rec["preset"] = preset_name
        _append(results, rec)
        done[rec["key"]] = rec
        written.append(rec)

    try:
        while True:
            nexts = []
            for i, (task, model) in enumerate(combos):
                s = search(preset, task, model, done.get)
                if s.pending:
                    T, lr, k = s.pending[0]
                    nexts.append((k > 0, T, i, k, lr, task, model))
            if not nexts:
                break
            if spent or (deadline is not None and time.time() > deadline):
                # What the budget leaves out is recorded (retried by a rerun), never dropped.
                for _, T, _, k, lr, task, model in nexts:
                    if outcome_of(done.get(run_key(preset, task, model, T, lr, k))) == "budget":
                        continue  # cut while running: its record says so already
                    emit({"key": run_key(preset, task, model, T, lr, k), "protocol": PROTOCOL, "task": task,
                          "model": model, "length": T, "lr": lr, "seed": preset.seed + k, "seed_index": k,
                          "status": "budget", "outcome": "budget",
                          "reason": f"not started: the study's time budget of {preset.budget_s or 0:.0f} s was spent"})
                break
            _, T, _, k, lr, task, model = min(nexts)
            key = run_key(preset, task, model, T, lr, k)
            if bar is not None:
                bar.set_postfix_str(f"{task} {model} T={T} lr={lr:g} seed={preset.seed + k}")
            rec: dict[str, Any] = {"key": key, "task": task, "model": model, "length": T, "lr": lr,
                                   "seed": preset.seed + k, "seed_index": k, "protocol": PROTOCOL}
            try:
                rec.update(train_one(preset, task, model, T, lr,
                                     cell_workdir(root, task, model, T, lr, preset.seed + k, preset),
                                     seed_index=k, deadline=deadline, engine_progress=engine_progress,
                                     keep_checkpoints=keep_checkpoints))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # recorded, retried on the next run
                rec.update(status="error", outcome="error", message=f"{type(e).__name__}: {e}"[:2000])
            rec["key"] = key
            rec.setdefault("outcome", outcome_of(rec))
            if rec["outcome"] == "budget":
                spent = True
                rec["reason"] = f"cut by the study's time budget of {preset.budget_s or 0:.0f} s"
            emit(rec)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    write_report(out, machine=this_machine_id())
    return written


def run_preset(preset: str, out: str | Path | None = None) -> Path:
    """Run the preset named `preset` into `out` (default `default_out(preset)`), resuming this machine's
    finished cells; returns REPORT.md's path (the study contract's entry point)."""
    from jaxseq.studies.longrange.presets import PRESETS

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    out = Path(out) if out else default_out(preset)
    run_longrange(PRESETS[preset], out, preset_name=preset, progress=False)
    return out / "REPORT.md"
