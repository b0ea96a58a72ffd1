"""The claims of the story, and each judged on one machine from its records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from jaxseq.studies.results import StudyFolder, folder_records, folder_summary, study_folders
from jaxseq.studies.verdict import evidence as E
from jaxseq.studies.verdict.findings import Claim, ClaimVerdict, Evidence

__all__ = ["CLAIMS", "judge"]


def _none(data: E.MachineData) -> list[str]:
    return []


# (claim, its evidence rows, its plots in the study folders, its context lines)
CLAIMS: tuple[tuple[Claim, Callable[[E.MachineData], list[Evidence]], tuple[str, ...],
                    Callable[[E.MachineData], list[str]]], ...] = (
    (Claim("parallel", 1, "LSTMs cannot be parallelised over time in training (the Transformer and "
           "parallel-scan recurrences can)", ("scaling",),
           "make study  (= jaxseq study: bench ops + scale --preset cpu + report; GPU: scripts/gpu_verdict.sh)"),
     E.parallel_rows, ("step_time_vs_length.png",), E.parallel_context),
    (Claim("faster", 2, "Transformers process all positions in parallel, so they train much faster",
           ("scaling", "translation", "charlm"),
           "make study; jaxseq translate study --preset default; jaxseq charlm"),
     E.throughput_rows, ("tokens_per_s_vs_length.png", "bleu_vs_time.png", "val_loss_vs_cpu.png"), _none),
    (Claim("length", 3, "The length an LSTM can model is limited", ("longrange",),
           "jaxseq longrange --preset default  (--preset full: every task, hours, resumable)"),
     E.length_rows, ("accuracy_vs_length.png",), _none),
    (Claim("translation", 4, "GNMT-style bi-LSTM encoder–decoders with attention were replaced by "
           "Transformers", ("translation",), "jaxseq translate study --preset default"),
     E.translation_rows, ("bleu_vs_time.png",), _none),
    (Claim("forecast", 5, "On time series neither LSTMs nor Transformers beat ARIMA decisively; the ES-RNN "
           "hybrid won M4", ("forecast",), "jaxseq forecast --dataset m4-hourly --model all"),
     E.forecast_rows, ("plots/Hourly-smape-distribution.png",), _none),
    (Claim("lm", 6, "Transformers replaced LSTMs in language modelling", ("charlm",),
           "jaxseq charlm --budget-s 180"), E.language_rows, ("val_loss_vs_cpu.png",), _none),
    (Claim("anchor", 7, "Fairness check: the LSTM measured here runs at the vendor's fused LSTM speed "
           "(oneDNN on a CPU, cuDNN on a GPU)", ("scaling",),
           "jaxseq bench ops --out (GPU: scripts/gpu_verdict.sh)"), E.anchor_rows, (), _none),
)


# The wall time a study's records give for themselves (their own clocks), in seconds, per record.
_RECORD_SECONDS: dict[str, Callable[[dict[str, Any]], float]] = {
    "scaling": lambda r: 0.0 if "bench" in r else float(r.get("elapsed_s") or 0),  # sweep points only
    "translation": lambda r: float(r.get("wall_s") or 0) if r.get("kind") == "final" else 0.0,
    "longrange": lambda r: float(r.get("train_wall_s") or 0) + float(r.get("eval_wall_s") or 0),
    "charlm": lambda r: float(r.get("wall_s") or 0) if r.get("type") == "done" else 0.0,
    "forecasting": lambda r: float(r.get("wall_s") or 0),
}


def _cost(claim: Claim, folders: list[StudyFolder]) -> str:
    """The recorded wall time of the claim's studies (their default presets) on one machine, in words."""
    parts = []
    for study in claim.studies:
        hits = [f for f in folders if f.spec.folder == study and not f.preset]
        if hits:
            seconds = sum(map(_RECORD_SECONDS[hits[0].spec.name], folder_records(hits[0])))
            parts.append(f"{study} {seconds / 60:.0f} min")
        else:
            parts.append(f"{study} not run here")
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
        out.append(ClaimVerdict(claim, rows, sources, found, missing, tuple(context_of(data)),
                                _cost(claim, folders)))
    return out
