"""The study's report: the scores of the forecasts in a results folder beside the published M4 rows, the
significance section, the settings and the plots (REPORT.md)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxseq.bench.sweep import machine_label
from jaxseq.studies.forecasting.files import forecast_stem, read_existing
from jaxseq.studies.forecasting.plots import series_plots, smape_distribution_plot
from jaxseq.studies.forecasting.presets import MODELS, parse_dataset
from jaxseq.studies.forecasting.significance import RULE, decisive_findings, report_section

__all__ = ["PUBLISHED", "write_report", "write_folder_report", "significance_from_folder"]

# Published M4 rows shown in the report: (label, method_id in the accuracy CSV).
PUBLISHED = (
    ("Naive2 (M4 benchmark)", "Naive2"),
    ("sNaive (M4 benchmark)", "sNaive"),
    ("SES (M4 benchmark)", "SES"),
    ("Theta (M4 benchmark)", "Theta"),
    ("Comb (M4 benchmark)", "Com"),
    ("MLP (M4 ML benchmark)", "MLP"),
    ("RNN (M4 ML benchmark)", "RNN"),
    ("Smyl ES-RNN (ID 118, M4 winner)", "118"),
    ("Doornik et al. (ID 238, best Hourly)", "238"),
)


def _best_entry(freq: str, pub: dict[str, tuple[float, float, float]]) -> tuple[str, tuple[float, float, float]] | None:
    """The submission (numeric method id) with the lowest published OWA at `freq`."""
    subs = {k: v for k, v in pub.items() if k.isdigit()}
    if not subs:
        return None
    key = min(subs, key=lambda k: subs[k][2])
    return key, subs[key]


def _published(freq: str) -> dict[str, tuple[float, float, float]]:
    from jaxseq.data.m4 import SHIPPED_DIR

    path = SHIPPED_DIR / "m4_point_forecast_accuracy_by_frequency.csv"
    rows: dict[str, tuple[float, float, float]] = {}
    if not path.is_file():
        return rows
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                rows[r["method_id"]] = (float(r[f"sMAPE_{freq}"]), float(r[f"MASE_{freq}"]), float(r[f"OWA_{freq}"]))
            except (KeyError, ValueError):
                continue
    return rows


def _naive2_check(ds, n2: np.ndarray, published: tuple[float, float, float] | None, subset: bool) -> str:
    """One line: this Naive2 against the organisers' (their forecast file where it ships, their
    published scores on a full run)."""
    from jaxseq.data.m4 import evaluate, load_benchmark_forecasts

    parts = []
    try:
        ids, official = load_benchmark_forecasts("Naive2", ds.frequency)
    except (ValueError, FileNotFoundError):
        parts.append(f"the organisers' Naive2 forecasts for {ds.frequency} are not shipped, so only scores can be compared")
    else:
        row = {sid: i for i, sid in enumerate(ids)}
        mine = [i for i, sid in enumerate(ds.ids) if sid in row]
        if mine:
            diff = float(np.max(np.abs(n2[mine] - official[[row[ds.ids[i]] for i in mine]])))
            parts.append(f"max |this Naive2 - the organisers' Naive2 forecast| over {len(mine)} series = {diff:.2e}")
    if published is not None and subset:
        parts.append(f"its scores on these {len(ds)} series are not comparable with the published ones "
                     f"(over all {ds.frequency} series of M4)")
    elif published is not None:
        sc = evaluate(ds, n2, naive2_forecasts=n2)
        same = round(sc.smape, 3) == round(published[0], 3) and round(sc.mase, 3) == round(published[1], 3)
        parts.append(f"this Naive2 scores sMAPE {sc.smape:.3f} / MASE {sc.mase:.3f} against the published "
                     f"{published[0]:.3f} / {published[1]:.3f}: {'reproduced' if same else 'NOT reproduced'} to three decimals")
    return "**Naive2 check:** " + "; ".join(parts) + "."


def _fmt_time(meta: dict[str, Any]) -> str:
    s = meta.get("settings", {})
    wall = meta.get("wall_s")
    if "fit_cpu_s_sum" in s:
        where = s.get("engine", "local")
        txt = (f"{s['fit_cpu_s_sum']:.0f} s of fits (sum of the per-series fit times, {s['fit_s_per_series']:.2f} s/series;"
               f" {s.get('jobs', 1)} workers{'' if where == 'local' else ', ' + where})")
        if s.get("series_from_cache"):
            txt += f"; this run {wall:.0f} s wall, {s['series_from_cache']} series from cache"
        return txt
    if "train_time_s" in s:
        txt = f"{s['train_time_s']:.0f} s train ({wall:.0f} s wall)"
        if s.get("budget_cut_training"):
            txt += f"; **training cut by --esrnn-budget {s.get('time_budget_s'):g} s**"
        return txt
    return f"{wall:.2f} s" if wall is not None else ""


def _machines(results: dict[str, tuple[Any, dict[str, Any], np.ndarray]]) -> str:
    """The machines the forecasts' `.json` files name (their fingerprint's label, or their own words)."""
    names = []
    for _, meta, _ in results.values():
        fp = meta.get("fingerprint")
        name = machine_label(fp) if isinstance(fp, dict) else meta.get("machine")
        if name and name not in names:
            names.append(name)
    return "; ".join(names) or "not recorded"


def _made(results: dict[str, tuple[Any, dict[str, Any], np.ndarray]]) -> str:
    """The dates the forecasts were written (from their `.json`), so a regenerated report is identical."""
    days = sorted({str(meta.get("written", ""))[:10] for _, meta, _ in results.values()} - {""})
    if not days:
        return "on an unrecorded date"
    return f"on {days[0]}" if len(days) == 1 else f"from {days[0]} to {days[-1]}"


def write_folder_report(out: str | os.PathLike, *, plots: bool = True, dataset: str = "m4-hourly",
                        data_dir: str | os.PathLike | None = None) -> Path:
    """REPORT.md of a results folder from its forecast files alone (the full `dataset`)."""
    from jaxseq.data.m4 import load_m4

    ds = load_m4(parse_dataset(dataset), data_dir)
    return write_report(ds, full_size=len(ds), out=Path(out), dataset=dataset, plots=plots)


def _per_series_errors(results: dict[str, tuple[Any, dict[str, Any], np.ndarray]]
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({model: per-series sMAPE [series]}, {model: per-series MASE [series]}) of scored results."""
    return ({m: r[0].smape_per_series for m, r in results.items()},
            {m: r[0].mase_per_series for m, r in results.items()})


def significance_from_folder(out: str | os.PathLike, *, dataset: str = "m4-hourly",
                             data_dir: str | os.PathLike | None = None) -> list:
    """The findings of the report's "Is any difference decisive?" section for a results folder (the
    full `dataset`), as `jaxseq.studies.forecast_significance.Finding`s; writes nothing."""
    from jaxseq.data.m4 import evaluate, load_m4, naive2

    ds = load_m4(parse_dataset(dataset), data_dir)
    n2 = naive2(ds.train, ds.horizon, ds.seasonality)
    results = {}
    for model in MODELS:
        fc = read_existing(Path(out) / f"{forecast_stem(ds.frequency, len(ds), len(ds), model)}.csv", ds)
        if fc is not None:
            results[model] = (evaluate(ds, fc, naive2_forecasts=n2), {}, fc)
    return decisive_findings(*_per_series_errors(results))


def _significance_lines(ds, results, out: Path, plots: bool) -> list[str]:
    """The report's "Is any difference decisive?" section (`jaxseq.studies.forecast_significance`),
    with the per-series sMAPE box plot when `plots`."""
    lines = ["", "## Is any difference decisive?", ""]
    try:
        findings = decisive_findings(*_per_series_errors(results))
    except ValueError as e:  # e.g. a one-series run, or a non-finite MASE (a constant training series)
        return lines + [RULE, "", f"Not computed: {e}."]
    lines += report_section(findings)
    if plots and findings:
        p = smape_distribution_plot(ds, results, out)
        lines += ["", f"![{p.stem}](plots/{p.name})"]
    return lines


def write_report(ds, *, full_size: int, out: Path, dataset: str, plots: bool = True) -> Path:
    """Score every model whose forecasts for `ds` are in `out`; write REPORT.md (+ plots)."""
    from jaxseq.data.m4 import evaluate, naive2

    freq = ds.frequency
    n2 = naive2(ds.train, ds.horizon, ds.seasonality)
    results: dict[str, tuple[Any, dict[str, Any], np.ndarray]] = {}
    for model in MODELS:
        stem = forecast_stem(freq, len(ds), full_size, model)
        fc = read_existing(out / f"{stem}.csv", ds)
        if fc is None:
            continue
        meta_path = out / f"{stem}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        results[model] = (evaluate(ds, fc, naive2_forecasts=n2), meta, fc)
    subset = len(ds) != full_size
    lines = [
        f"# Forecasts: M4 {freq} ({len(ds)} of {full_size} series)",
        "",
        f"Written by `jaxseq forecast --dataset {dataset}`; forecasts made {_made(results)}. "
        f"Machine: {_machines(results)}. Forecast files: `{forecast_stem(freq, len(ds), full_size, '<model>')}.csv` (M4 format), "
        "settings and times in the `.json` beside each.",
        "",
        "sMAPE in percent; MASE with the seasonal-naive scale at lag "
        f"{ds.seasonality}; OWA relative to Naive2 on the same series (definitions: `data/m4/REFERENCE.md`).",
        "",
    ]
    if subset:
        lines += [
            f"**Subset run:** {len(ds)} series chosen deterministically (`--series {len(ds)}`). The published rows are "
            f"over all {full_size} series and are not directly comparable.",
            "",
        ]
    lines += ["## Measured here", "", "| model | sMAPE | MASE | OWA | time |", "|---|---|---|---|---|"]
    for model, (score, meta, _) in sorted(results.items(), key=lambda kv: kv[1][0].owa):
        lines.append(f"| {model} | {score.smape:.3f} | {score.mase:.3f} | {score.owa:.3f} | {_fmt_time(meta)} |")
    if not results:
        lines.append("| (no forecasts yet) | | | | |")
    lines += _significance_lines(ds, results, out, plots)
    pub = _published(freq)
    from jaxseq.data.m4 import SERIES_COUNT

    real = full_size == SERIES_COUNT[freq]  # the competition's files, not a synthetic or partial set
    lines += ["", f"## Published M4 {freq} (all {SERIES_COUNT[freq]} series)", "",
              "From `data/m4/m4_point_forecast_accuracy_by_frequency.csv` (the organisers' `Evaluation and Ranks.xlsx`). "
              "The M4 ARIMA and ETS rows are not available per frequency (see REFERENCE.md).", "",
              "| method | sMAPE | MASE | OWA |", "|---|---|---|---|"]
    for label, key in PUBLISHED:
        if key in pub and not (key == "238" and freq != "Hourly"):
            s, m, o = pub[key]
            lines.append(f"| {label} | {s:.3f} | {m:.3f} | {o:.3f} |")
    best = _best_entry(freq, pub)
    if best is not None and best[0] not in ("118", "238" if freq == "Hourly" else ""):
        s, m, o = best[1]
        lines.append(f"| Best {freq} entry by OWA (ID {best[0]}) | {s:.3f} | {m:.3f} | {o:.3f} |")
    lines += ["", _naive2_check(ds, n2, pub.get("Naive2"), subset or not real)]
    lines += ["", "## Settings", ""]
    for model, (_, meta, _) in results.items():
        s = dict(meta.get("settings", {}))
        method = s.pop("method", "")
        lines.append(f"* **{model}**: {method}.")
        keep = {k: v for k, v in s.items()
                if k not in ("fit_cpu_s_sum", "fit_s_per_series", "jobs", "series_from_cache", "engine")}
        if keep:
            lines.append(f"  `{json.dumps(keep, sort_keys=True)}`")
    if "arima" in results:
        lines += ["", "ARIMA note: the M4 organisers' ARIMA is R `forecast::auto.arima` with defaults (exact ML for "
                  "short series). Here statsforecast's AutoARIMA uses `approximation=True` (the CSS approximation "
                  "R itself switches to for long series) because the exact default costs ~50 s per Hourly series; "
                  "each series' forecast is cached (`--cache-dir`)."]
    notes = out / "NOTES.md"  # hand-written analysis, kept across runs
    if notes.is_file():
        lines += ["", "## Notes (from NOTES.md)", "", notes.read_text().strip()]
    if plots and results:
        pngs = series_plots(ds, results, out)
        if pngs:
            lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in pngs]
    lines.append("")
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report
