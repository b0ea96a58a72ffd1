"""The claims of the story, and each judged on one machine from its records."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from jaxseq.bench.sweep import read_jsonl
from jaxseq.studies.results import StudyFolder, folder_summary, study_folders
from jaxseq.studies.verdict import evidence as E
from jaxseq.studies.verdict.findings import Claim, ClaimVerdict, Evidence

__all__ = ["CLAIMS", "judge", "study_cost_s"]



def _none(data: E.MachineData) -> list[str]:
    return []


# (claim, its evidence rows, its plots in the study folders, its context lines)
CLAIMS: tuple[tuple[Claim, Callable[[E.MachineData], list[Evidence]], tuple[str, ...],
                    Callable[[E.MachineData], list[str]]], ...] = (
    (Claim("parallel", 1, "LSTMs cannot be parallelised over time in training (the Transformer and "
           "parallel-scan recurrences can)", ("scaling",),
           "make study  (= jaxseq study: bench ops + scale --preset cpu + report; GPU: scripts/gpu_verdict.sh)",
           "scaling"), E.parallel_rows, ("step_time_vs_length.png",), E.parallel_context),
    (Claim("faster", 2, "Transformers process all positions in parallel, so they train much faster",
           ("scaling", "translation", "charlm"),
           "make study; jaxseq translate study --preset default; jaxseq charlm", "scaling+translation+charlm"),
     E.throughput_rows, ("tokens_per_s_vs_length.png", "bleu_vs_time.png", "val_loss_vs_cpu.png"), _none),
    (Claim("length", 3, "The length an LSTM can model is limited", ("longrange",),
           "jaxseq longrange --preset default  (--preset full: every task, hours, resumable)", "longrange"),
     E.length_rows, ("accuracy_vs_length.png",), _none),
    (Claim("translation", 4, "GNMT-style bi-LSTM encoder–decoders with attention were replaced by "
           "Transformers", ("translation",), "jaxseq translate study --preset default", "translation"),
     E.translation_rows, ("bleu_vs_time.png",), _none),
    (Claim("forecast", 5, "On time series neither LSTMs nor Transformers beat ARIMA decisively; the ES-RNN "
           "hybrid won M4", ("forecast",), "jaxseq forecast --dataset m4-hourly --model all", "forecast"),
     E.forecast_rows, ("plots/Hourly-smape-distribution.png",), _none),
    (Claim("lm", 6, "Transformers replaced LSTMs in language modelling", ("charlm",),
           "jaxseq charlm --budget-s 180", "charlm"), E.language_rows, ("val_loss_vs_cpu.png",), _none),
    (Claim("anchor", 7, "Fairness check: the LSTM measured here runs at the vendor's fused LSTM speed "
           "(oneDNN on a CPU, cuDNN on a GPU)", ("scaling",),
           "jaxseq bench ops --out (GPU: scripts/gpu_verdict.sh)", "scaling"), E.anchor_rows, (), _none),
)


def _folder_cost_s(f: StudyFolder) -> float:
    """The wall time the records of `f` say they took (their own clocks), in seconds."""
    name = f.spec.name
    if name == "scaling":
        return sum(float(r.get("elapsed_s") or 0) for r in read_jsonl(f.path / "results.jsonl"))
    if name == "translation":
        return sum(float(r.get("wall_s") or 0) for r in read_jsonl(f.path / "results.jsonl")
                   if r.get("kind") == "final")
    if name == "longrange":
        return sum(float(r.get("train_wall_s") or 0) + float(r.get("eval_wall_s") or 0)
                   for r in read_jsonl(f.path / "results.jsonl"))
    if name == "charlm":
        return sum(float(r.get("wall_s") or 0) for r in read_jsonl(f.path / "lm_compare.jsonl")
                   if r.get("type") == "done")
    if name == "forecasting":
        return sum(float(json.loads(p.read_text()).get("wall_s") or 0) for p in f.path.glob("*-*.json"))
    return 0.0


def study_cost_s(machine: Path, study_folder: str) -> float | None:
    """The default preset's recorded wall time of a study on a machine (None when it did not run)."""
    hits = [f for f in study_folders(machine.parent) if f.machine == machine.name
            and f.spec.folder == study_folder and not f.preset]
    return _folder_cost_s(hits[0]) if hits else None


def claim_cost(machine: Path, claim: Claim) -> str:
    """The recorded wall time of the claim's studies on `machine`, as one sentence."""
    parts = []
    for study in claim.cost.split("+"):
        s = study_cost_s(machine, study)
        parts.append(f"{study} {s / 60:.0f} min" if s is not None else f"{study} not run here")
    return "recorded wall time on this machine: " + ", ".join(parts)


def judge(machine: str | Path) -> list[ClaimVerdict]:
    """Every claim judged from the study folders of `machine` (a `profiles/<machine>/` folder)."""
    machine = Path(machine)
    data = E.MachineData(machine)
    folders = [f for f in study_folders(machine.parent) if f.machine == machine.name]
    out = []
    for claim, rows_of, plots, context_of in CLAIMS:
        rows = tuple(rows_of(data))
        used = [f for f in folders if f.spec.folder in claim.studies]
        sources = tuple(f"`{f.machine}/{'/'.join(p for p in (f.spec.folder, f.preset) if p)}`: "
                        f"{s['date']}, commit {s['commit']}" for f in used for s in [folder_summary(f)])
        found = tuple(str(p.relative_to(machine)) for f in used for name in plots
                      for p in [f.path / name] if p.is_file())
        missing = tuple(f"{study}: not run on this machine" for study in claim.studies
                        if not any(f.spec.folder == study for f in used))
        if not rows and not missing:
            missing = ("the studies ran, but without the points this claim reads",)
        out.append(ClaimVerdict(claim, rows, sources, found, missing, tuple(context_of(data))))
    return out
