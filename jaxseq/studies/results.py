"""The results layout: one rule for every study folder, the committed ones included.

    profiles/<machine_slug>/<study folder>/[<preset>/]

`study_folders` finds every folder of every registered study under a profiles root, `regenerate`
rewrites a folder's report from its records alone (the reports hold no clock time, no absolute path
and no hand-typed number, so a regenerated report is byte-identical to the committed one: a test
runs them all), and `write_index` writes `profiles/README.md`, the generated list of what is there
(study, preset, machine, date, commit, host-speed anchor).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from jaxseq.bench.sweep import read_jsonl, record_fingerprint, machine_label
from jaxseq.studies import STUDIES, StudySpec
from jaxseq.studies.base import REPO_PROFILES

__all__ = ["StudyFolder", "study_folders", "regenerate", "folder_records", "folder_summary", "index_markdown",
           "write_index", "INDEX"]

INDEX = "README.md"


@dataclasses.dataclass(frozen=True)
class StudyFolder:
    """One results folder: whose (machine folder), which study, which preset ("" = the default)."""

    spec: StudySpec
    path: Path
    machine: str
    preset: str

    @property
    def report(self) -> Path:
        return self.path / self.spec.report


def _has_results(spec: StudySpec, folder: Path) -> bool:
    if spec.name == "forecasting":
        return any(folder.glob("*-*.csv"))
    return (folder / spec.results).is_file() or (spec.name == "scaling" and (folder / "bench_ops.jsonl").is_file())


def study_folders(root: str | os.PathLike = REPO_PROFILES) -> list[StudyFolder]:
    """Every study folder under `root` (`<machine>/<study>/` and its preset folders one level below),
    sorted by machine, study and preset."""
    root = Path(root)
    found = []
    if not root.is_dir():
        return found
    for machine in sorted(p for p in root.iterdir() if p.is_dir()):
        for spec in STUDIES:
            base = machine / spec.folder
            if not base.is_dir():
                continue
            candidates = [(base, "")] + [(p, p.name) for p in sorted(base.iterdir()) if p.is_dir()]
            found += [StudyFolder(spec, p, machine.name, preset) for p, preset in candidates
                      if _has_results(spec, p)]
    return found


def _writer(spec: StudySpec) -> Callable[..., Path]:
    module = importlib.import_module(spec.module)
    return getattr(module, "write_folder_report")


def regenerate(folder: StudyFolder, *, plots: bool = True) -> Path:
    """Rewrite `folder`'s report (and plots unless `plots` is False) from its records; return it."""
    return _writer(folder.spec)(folder.path, plots=plots)


def folder_records(folder: StudyFolder) -> list[dict[str, Any]]:
    """Every record of a study folder: its JSONL lines (a scaling folder's bench ops rows too), or a
    forecasting folder's per-model `.json` files."""
    if folder.spec.name == "forecasting":
        return [json.loads(p.read_text()) for p in sorted(folder.path.glob("*.json"))
                if p.stem.count("-") >= 1 and p.stem.split("-")[0][:1].isupper()]
    recs = read_jsonl(folder.path / folder.spec.results)
    if folder.spec.name == "scaling":
        recs += read_jsonl(folder.path / "bench_ops.jsonl")
    return recs


def folder_summary(folder: StudyFolder) -> dict[str, str]:
    """A study folder's provenance: date(s), commit(s), host anchor and machine label, as text."""
    recs = folder_records(folder)
    times = sorted({str(r.get("timestamp") or r.get("written") or "")[:10] for r in recs} - {""})
    commits = sorted({str(r["commit"]) for r in recs if r.get("commit")})
    anchors = [float(r["host_matmul_gflops"]) for r in recs if r.get("host_matmul_gflops")]
    fps = [record_fingerprint(r) for r in recs if r.get("fingerprint") or r.get("device")]
    words = [str(r["machine"]) for r in recs if isinstance(r.get("machine"), str)]
    label = machine_label(fps[-1]) if fps else (f"not fingerprinted: \"{words[-1]}\"" if words else "not recorded")
    return {
        "date": (times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}") if times else "not recorded",
        "commit": ", ".join(f"`{c}`" for c in commits) if commits else "not recorded",
        "anchor": (f"{min(anchors):.0f}–{max(anchors):.0f} GFLOP/s" if len(set(anchors)) > 1
                   else f"{anchors[0]:.0f} GFLOP/s") if anchors else "not recorded",
        "label": label,
        "records": str(len(recs)),
    }


def index_markdown(root: str | os.PathLike = REPO_PROFILES) -> str:
    """The generated index of `root`: one row per study folder."""
    rows = []
    for f in study_folders(root):
        s = folder_summary(f)
        rel = Path(f.machine, f.spec.folder, f.preset).as_posix()
        link = f"[`{rel}/`]({rel}/{f.spec.report})" if f.report.is_file() else f"`{rel}/`"
        rows.append(f"| {f.spec.name} | {f.preset or 'default'} | `{f.machine}` | {s['label']} | {s['date']} "
                    f"| {s['commit']} | {s['anchor']} | {s['records']} | {link} |")
    verdicts = sorted(p.parent.name for p in Path(root).glob("*/VERDICT.md"))
    lines = [
        "# profiles/ — results, one folder per machine and study",
        "",
        "Generated by `jaxseq verdict --index` from the records; do not edit by hand.",
        "",
        "One rule places every result: `profiles/<machine>/<study>/[<preset>/]`, where `<machine>` is the",
        "machine's slug (`jaxseq.bench.sweep.machine_slug`: `cpu-<model>-<N>core`, `<backend>-<device>x<N>`;",
        "`cpu-2core` and `gpu-nvidia-h200x1` hold records written before fingerprints, whose CPU model was not",
        "recorded). A study's command writes its default preset into `<study>/` and other presets into",
        "`<study>/<preset>/`; every record carries the machine's fingerprint; a rerun resumes only the points",
        "of the same machine id (same CPU or GPU model, core count, jax and jaxlib versions). Each machine's",
        "`VERDICT.md` is the answer, claim by claim, computed from its folders (`jaxseq verdict`).",
        "",
        "| study | preset | machine | fingerprint | date | commit | host-speed anchor (2048² float32 matmul) "
        "| records | report |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Verdict pages: " + (", ".join(f"[`{m}`]({m}/VERDICT.md)" for m in verdicts) if verdicts else "none yet") + ".",
        "",
        "`commit` is the source commit recorded with the records (records written before that field existed",
        "say not recorded; the commit that added them is in `git log -- profiles/<machine>/<study>`).",
        "Statistical-fit caches are inputs, not results: `jaxseq forecast --cache-dir` (default",
        "`~/.cache/jaxseq/forecast`). Training workdirs (`runs/`) and most profiler traces stay local.",
        "",
    ]
    return "\n".join(lines)


def write_index(root: str | os.PathLike = REPO_PROFILES) -> Path:
    """Write `root/README.md` (the index); return its path."""
    path = Path(root) / INDEX
    path.write_text(index_markdown(root))
    return path
