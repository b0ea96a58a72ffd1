"""`jaxseq forecast`: M4 forecasts of statistical and neural models, scored beside the published M4 numbers.

    jaxseq forecast --dataset m4-hourly --model all [--series N] [--data-dir D] [--out DIR]

OUT defaults to this machine's `profiles/<machine_slug>/forecast/`.

For each model, writes `OUT/<Freq>[-nN]-<model>.csv` (M4 submission format, `jaxseq.data.m4.
write_forecasts`) and `OUT/<Freq>[-nN]-<model>.json` (fit time, settings), then `OUT/REPORT.md` (sMAPE,
MASE, OWA of every model whose forecasts are present, beside the published M4 numbers, with time
per model and the settings used, and `OUT/NOTES.md` if present) and PNG plots of a few series
(`OUT/plots/`).

* A model whose forecast CSV is already there is not recomputed (unless `--force`): later runs,
  and `--model all`, reuse it.
* ARIMA/ETS/SES/Theta fit one series at a time in `--jobs` worker processes and cache each
  series' forecast under `--cache-dir` (default `~/.cache/jaxseq/forecast`, or
  `$XDG_CACHE_HOME/jaxseq/forecast`; an input cache, never under profiles/) as soon as it is done
  (`jaxseq.models.statistical`), so a killed run loses nothing and `--force` does not refit them
  (delete the cache for that).
* `--engine dask|ray` runs those fits on a cluster instead (`--engine-address tcp://host:8786`, or a
  local cluster of `--jobs` workers); the forecasts are the same and the cache is written here.
* Every M4 frequency runs (`--data-dir` with `<Freq>-train.csv`/`-test.csv`): ES-RNN takes the
  frequency's configuration (`jaxseq.models.esrnn.FREQUENCY_CONFIGS`, after Smyl), changed with
  `--esrnn-config FILE.json` and `--set key=value`; it trains its configured epochs unless
  `--esrnn-budget S` caps it (the report then says so). The global models take
  `jaxseq.models.forecasters.FREQUENCY_INPUT_SIZES`; short series are padded, never dropped.
* `--series N` takes a deterministic random subset of N series (the same for every model); its
  files carry `-nN` in their names, and its OWA uses Naive2 on the same subset.

Models: `naive2`, `snaive` (the M4 benchmarks, `jaxseq.data.m4`); `ses`, `theta` (statsforecast SES
and Theta on the series deseasonalised as the M4 organisers did: classical multiplicative
decomposition when their 90% seasonality test says so, re-seasonalised with the last period's
indices); `ets` (AutoETS, season m), `arima` (AutoARIMA, season m, `ARIMA_PRACTICAL`: the CSS
approximation during the order search); `lstm`, `transformer`, `mingru` (global neural forecasters,
`jaxseq.models.forecasters`); `esrnn` (Smyl's ES-RNN, `jaxseq.models.esrnn`).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxseq.bench.sweep import machine_fields, machine_fingerprint, machine_label

__all__ = ["MODELS", "parse_dataset", "run_forecast", "write_report", "add_parser", "significance_from_folder"]

STATISTICAL = ("naive2", "snaive", "ses", "theta", "ets", "arima")
NEURAL = ("lstm", "transformer", "mingru", "esrnn")
MODELS = STATISTICAL + NEURAL

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



# The study's presets: what `run_preset` runs (the command takes each setting as an option too).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"dataset": "m4-hourly", "models": "all", "series": None},
    # seconds: the two M4 benchmarks on 3 series (no statistical fit, no training)
    "smoke": {"dataset": "m4-hourly", "models": ["naive2", "snaive"], "series": 3},
}


def run_preset(preset: str, out: str | os.PathLike | None = None) -> Path:
    """Forecast and score the preset's models into `out` (default this machine's forecast folder), reusing
    the forecasts already there; returns REPORT.md's path (the study contract's entry point)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    p = PRESETS[preset]
    args = build_parser_namespace(no_progress=True)
    return run_forecast(p["dataset"], p["models"], series=p["series"], out=out, args=args)


def default_out() -> Path:
    """This machine's folder of the study: profiles/<machine_slug>/forecast/."""
    from jaxseq.studies.base import default_out as _default_out

    return _default_out("forecast")


def default_cache() -> Path:
    """Where the statistical fits are cached per series: an input cache, outside profiles/."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root, "jaxseq", "forecast")


def parse_dataset(name: str) -> str:
    """`m4-hourly` -> `Hourly` (any M4 frequency; only Hourly ships with the repository)."""
    from jaxseq.data.m4 import FREQUENCIES

    parts = str(name).lower().split("-", 1)
    freqs = {f.lower(): f for f in FREQUENCIES}
    if len(parts) != 2 or parts[0] != "m4" or parts[1] not in freqs:
        raise ValueError(f"--dataset must be one of {['m4-' + f for f in freqs]}, got {name!r}")
    return freqs[parts[1]]


def _models(requested: list[str]) -> list[str]:
    out: list[str] = []
    for m in requested:
        for part in str(m).split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part == "all":
                out.extend(MODELS)
            elif part in MODELS:
                out.append(part)
            else:
                raise ValueError(f"--model must be among {list(MODELS) + ['all']}, got {part!r}")
    if not out:
        raise ValueError("--model: no model given")
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------- models


@dataclasses.dataclass
class _Ctx:
    freq: str
    ds: Any  # M4Dataset (the selected series)
    out: Path
    cache: Path
    jobs: int
    seed: int
    args: argparse.Namespace


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="series", file=sys.stderr, leave=False)


def _deseasonalise(train, horizon: int, m: int):
    """The M4 organisers' seasonal adjustment: (adjusted series, out-of-sample indices [n, h])."""
    from jaxseq.data.m4 import seasonal_indices, seasonality_test

    adj, si_out = [], np.ones((len(train), horizon))
    for i, y in enumerate(train):
        y = np.asarray(y, np.float64)
        if m > 1 and seasonality_test(y, m):
            s = seasonal_indices(y, m)
            adj.append(y / s)
            si_out[i] = np.resize(s[-m:], horizon)
        else:
            adj.append(y)
    return adj, si_out


def _run_statistical(model: str, ctx: _Ctx) -> tuple[np.ndarray, dict[str, Any]]:
    from jaxseq.data import m4
    from jaxseq.models import statistical as st

    ds, h, m = ctx.ds, ctx.ds.horizon, ctx.ds.seasonality
    if model == "naive2":
        return m4.naive2(ds.train, h, m), {"method": "M4 Naive2 (jaxseq.data.m4.naive2)"}
    if model == "snaive":
        return m4.snaive(ds.train, h, m), {"method": "M4 sNaive (jaxseq.data.m4.snaive)"}
    bar = _progress(len(ds), model, not ctx.args.no_progress)
    kw = dict(cache_dir=ctx.cache, n_jobs=ctx.jobs, ids=ds.ids, progress=None if bar is None else bar.update,
              engine=ctx.args.engine, engine_address=ctx.args.engine_address)
    try:
        if model in ("ses", "theta"):
            adj, si_out = _deseasonalise(ds.train, h, m)
            r = st.forecast_statistical(adj, h, 1, "ses" if model == "ses" else "theta", **kw)
            fc = r.forecasts * si_out
            if model == "theta":
                fc = np.maximum(fc, 0.0)
            settings = {
                "method": f"statsforecast {'SimpleExponentialSmoothingOptimized' if model == 'ses' else 'Theta'}"
                " on the M4-deseasonalised series (90% seasonality test, classical multiplicative"
                " decomposition), re-seasonalised",
            }
        elif model == "ets":
            r = st.forecast_statistical(ds.train, h, m, "auto_ets", **kw)
            fc = r.forecasts
            settings = {"method": f"statsforecast AutoETS(season_length={m}), library defaults, full series"}
        else:
            opts = dict(st.ARIMA_PRACTICAL["options"])
            r = st.forecast_statistical(ds.train, h, m, "auto_arima", options=opts, **kw)
            fc = r.forecasts
            settings = {
                "method": f"statsforecast AutoARIMA(season_length={m}, {', '.join(f'{k}={v}' for k, v in opts.items())}),"
                " stepwise search and all other options at library defaults, full training series",
            }
    finally:
        if bar is not None:
            bar.close()
    settings.update(
        statsforecast=st._statsforecast_version(),
        fit_cpu_s_sum=float(r.fit_seconds.sum()),
        fit_s_per_series=float(r.fit_seconds.mean()),
        series_from_cache=int(r.cached.sum()),
        jobs=ctx.jobs,
        engine=ctx.args.engine if ctx.args.engine_address is None else f"{ctx.args.engine} at {ctx.args.engine_address}",
    )
    return fc, settings


def _run_neural(model: str, ctx: _Ctx) -> tuple[np.ndarray, dict[str, Any]]:
    a, ds = ctx.args, ctx.ds
    if model == "esrnn":
        from jaxseq.models.esrnn import fit_esrnn, forecast_esrnn

        cfg = esrnn_settings(ctx.freq, a)
        fitted = fit_esrnn(ds.train, horizon=ds.horizon, seasonality=ds.seasonality, config=cfg, seed=ctx.seed,
                           time_budget_s=a.esrnn_budget, progress=not a.no_progress)
        fc = forecast_esrnn(fitted, ds.train)
        epochs_run: dict[int, int] = {}
        for rec in fitted.history:
            epochs_run[rec["member"]] = rec["epoch"] + 1
        cut = [m for m, e in sorted(epochs_run.items()) if e < cfg.epochs]
        settings = {
            "method": f"ES-RNN after Smyl (2020), jaxseq.models.esrnn, {ctx.freq} configuration",
            "config": _jsonable(dataclasses.asdict(cfg)),
            "seasonalities": list(fitted.periods),
            "series_length_used": fitted.length,
            "epochs_run_per_member": list(epochs_run.values()),
            "snapshots_averaged": len(fitted.snapshots),
            "final_loss": float(fitted.history[-1]["loss"]) if fitted.history else None,
            "time_budget_s": a.esrnn_budget,
            "budget_cut_training": bool(cut),
            "train_time_s": fitted.train_time_s,
        }
        if cut:
            settings["budget_note"] = (f"--esrnn-budget {a.esrnn_budget:g} s cut training: members {cut} ran "
                                       f"{[epochs_run[m] for m in cut]} of {cfg.epochs} epochs; forecasts depend on "
                                       "the machine's speed")
        return fc, settings
    from jaxseq.models.forecasters import GlobalForecasterConfig, fit_global_forecaster, forecast_global

    # The wall-clock budget ends training; the step count only sets the planned cosine schedule.
    from jaxseq.models.forecasters import FREQUENCY_INPUT_SIZES

    over = {"steps": a.steps if a.steps is not None else 20000, "input_size": FREQUENCY_INPUT_SIZES[ctx.freq]}
    if a.hidden_size is not None:
        over["hidden_size"] = a.hidden_size
    cfg = GlobalForecasterConfig(**over)
    fitted = fit_global_forecaster(ds.train, kind=model, horizon=ds.horizon, seasonality=ds.seasonality, config=cfg,
                                   seed=ctx.seed, time_budget_s=a.neural_budget, progress=not a.no_progress)
    fc = forecast_global(fitted, ds.train)
    settings = {
        "method": f"global {model}, jaxseq.models.forecasters",
        "config": _jsonable(dataclasses.asdict(cfg)),
        "steps_run": fitted.steps_done,
        "final_loss": fitted.history[-1] if fitted.history else None,
        "time_budget_s": a.neural_budget,
        "train_time_s": fitted.train_time_s,
    }
    return fc, settings


def esrnn_settings(freq: str, a: argparse.Namespace):
    """The ES-RNN configuration of a run: the frequency's (`jaxseq.models.esrnn.FREQUENCY_CONFIGS`),
    then `--esrnn-config FILE.json`, then `--set key=value` (in order), then `--epochs`,
    `--ensemble`, `--hidden-size`. Raises ValueError for unknown fields or bad values."""
    from jaxseq.models.esrnn import esrnn_config, load_config_file, parse_overrides

    over: dict[str, Any] = {}
    if getattr(a, "esrnn_config", None):
        over.update(load_config_file(a.esrnn_config))
    over.update(parse_overrides(getattr(a, "set", None)))
    if a.epochs is not None:
        over["epochs"] = a.epochs
    if a.ensemble is not None:
        over["ensemble_size"] = a.ensemble
    if a.hidden_size is not None:
        over["hidden_size"] = a.hidden_size
    if "epochs" in over and "average_last_epochs" not in over:
        # Fewer epochs than the frequency averages over: average all of them.
        base = esrnn_config(freq, {k: v for k, v in over.items() if k != "epochs"})
        over["average_last_epochs"] = min(base.average_last_epochs, max(int(over["epochs"]), 1))
    return esrnn_config(freq, over)


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


# ------------------------------------------------------------------------------------- files


def _stem(freq: str, n_selected: int, n_total: int, model: str) -> str:
    return f"{freq}-{model}" if n_selected == n_total else f"{freq}-n{n_selected}-{model}"


def _load_existing(csv_path: Path, ds) -> np.ndarray | None:
    from jaxseq.data.m4 import load_forecasts

    if not csv_path.is_file():
        return None
    try:
        ids, values = load_forecasts(csv_path, horizon=ds.horizon)
    except ValueError:
        return None
    row = {sid: i for i, sid in enumerate(ids)}
    if any(sid not in row for sid in ds.ids):
        return None
    return values[[row[sid] for sid in ds.ids]]


def run_forecast(
    dataset: str = "m4-hourly",
    models: list[str] | str = "all",
    *,
    series: int | None = None,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    force: bool = False,
    args: argparse.Namespace | None = None,
) -> Path:
    """Compute (or reuse) the forecasts of `models` and write the report; returns REPORT.md's path."""
    from jaxseq.data.m4 import load_m4, write_forecasts
    from jaxseq.models.statistical import select_series

    freq = parse_dataset(dataset)
    names = _models([models] if isinstance(models, str) else list(models))
    if args is None:
        args = build_parser_namespace()
    if series is not None and (isinstance(series, bool) or int(series) < 1):
        raise ValueError(f"--series must be a positive number of series, got {series}")
    if "esrnn" in names:
        esrnn_settings(freq, args)  # bad --set / --esrnn-config: fail before any model runs
    full = load_m4(freq, data_dir)
    if series is not None and int(series) > len(full):
        raise ValueError(f"--series {series} exceeds the {len(full)} {freq} series")
    index = select_series(len(full), None if series is None or int(series) == len(full) else int(series), seed=0)
    ds = full.subset(index)
    out = default_out() if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache()
    jobs = args.jobs if args.jobs is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    ctx = _Ctx(freq, ds, out, cache, int(jobs), int(args.seed), args)
    for model in names:
        stem = _stem(freq, len(ds), len(full), model)
        csv_path, meta_path = out / f"{stem}.csv", out / f"{stem}.json"
        if not force and _load_existing(csv_path, ds) is not None and meta_path.is_file():
            print(f"[forecast] {model}: reusing {csv_path}", file=sys.stderr, flush=True)
            continue
        print(f"[forecast] {model}: {len(ds)} {freq} series ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        fc, settings = (_run_statistical if model in STATISTICAL else _run_neural)(model, ctx)
        wall = time.perf_counter() - t0
        fc = np.asarray(fc, np.float64)
        if fc.shape != ds.test.shape or not np.isfinite(fc).all():
            raise RuntimeError(f"{model} produced forecasts of shape {fc.shape} (finite: {np.isfinite(fc).all()})")
        write_forecasts(csv_path, ds.ids, fc)
        meta = {
            "model": model,
            "dataset": dataset,
            "n_series": len(ds),
            "wall_s": wall,
            "machine": machine_label(machine_fingerprint()),
            **machine_fields(),
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": settings,
        }
        meta_path.write_text(json.dumps(_jsonable(meta), indent=2) + "\n")
        print(f"[forecast] {model}: done in {wall:.1f}s -> {csv_path}", file=sys.stderr, flush=True)
    return write_report(ds, full_size=len(full), out=out, dataset=dataset, plots=not args.no_plots)


def build_parser_namespace(**kw) -> argparse.Namespace:
    """Defaults of the command's options (for `run_forecast` called from Python)."""
    p = argparse.ArgumentParser()
    _add_options(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


# ------------------------------------------------------------------------------------- report


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
    from jaxseq.studies.forecast_significance import decisive_findings

    ds = load_m4(parse_dataset(dataset), data_dir)
    n2 = naive2(ds.train, ds.horizon, ds.seasonality)
    results = {}
    for model in MODELS:
        fc = _load_existing(Path(out) / f"{_stem(ds.frequency, len(ds), len(ds), model)}.csv", ds)
        if fc is not None:
            results[model] = (evaluate(ds, fc, naive2_forecasts=n2), {}, fc)
    return decisive_findings(*_per_series_errors(results))


def _significance_lines(ds, results, out: Path, plots: bool) -> list[str]:
    """The report's "Is any difference decisive?" section (`jaxseq.studies.forecast_significance`),
    with the per-series sMAPE box plot when `plots`."""
    from jaxseq.studies.forecast_significance import RULE, decisive_findings, report_section

    lines = ["", "## Is any difference decisive?", ""]
    try:
        findings = decisive_findings(*_per_series_errors(results))
    except ValueError as e:  # e.g. a one-series run, or a non-finite MASE (a constant training series)
        return lines + [RULE, "", f"Not computed: {e}."]
    lines += report_section(findings)
    if plots and findings:
        p = _smape_distribution_plot(ds, results, out)
        lines += ["", f"![{p.stem}](plots/{p.name})"]
    return lines


def _smape_distribution_plot(ds, results, out: Path) -> Path:
    """`plots/<Freq>-smape-distribution.png`: a box per model (the table's order) of its per-series
    sMAPE, log scale (values under 0.01 drawn at 0.01), the mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [m for m, _ in sorted(results.items(), key=lambda kv: kv[1][0].owa)]
    data = [np.maximum(results[m][0].smape_per_series, 1e-2) for m in order]
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.boxplot(data, showmeans=True, whis=(5, 95), flierprops={"markersize": 2},
               meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"})
    ax.set_xticks(range(1, len(order) + 1), order)
    ax.set_yscale("log")
    ax.set_ylabel("sMAPE per series (%)")
    ax.set_title(f"M4 {ds.frequency}: per-series sMAPE over {len(ds)} series "
                 "(box: quartiles; whiskers: 5th-95th percentile; triangle: mean)", fontsize=9)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    p = plot_dir / f"{ds.frequency}-smape-distribution.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def write_report(ds, *, full_size: int, out: Path, dataset: str, plots: bool = True) -> Path:
    """Score every model whose forecasts for `ds` are in `out`; write REPORT.md (+ plots)."""
    from jaxseq.data.m4 import evaluate, naive2

    freq = ds.frequency
    n2 = naive2(ds.train, ds.horizon, ds.seasonality)
    results: dict[str, tuple[Any, dict[str, Any], np.ndarray]] = {}
    for model in MODELS:
        stem = _stem(freq, len(ds), full_size, model)
        fc = _load_existing(out / f"{stem}.csv", ds)
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
        f"Machine: {_machines(results)}. Forecast files: `{_stem(freq, len(ds), full_size, '<model>')}.csv` (M4 format), "
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
        pngs = _plots(ds, results, out)
        if pngs:
            lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in pngs]
    lines.append("")
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


def _plots(ds, results, out: Path, count: int = 4) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    picks = sorted(set(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int).tolist()))
    show = [m for m in ("snaive", "ets", "arima", "lstm", "transformer", "mingru", "esrnn") if m in results]
    paths = []
    for i in picks:
        y, sid = np.asarray(ds.train[i]), ds.ids[i]
        back = min(len(y), 3 * ds.horizon)
        fig, ax = plt.subplots(figsize=(9, 3.2))
        t_tr = np.arange(-back, 0)
        t_te = np.arange(ds.horizon)
        ax.plot(t_tr, y[-back:], color="black", lw=1, label="train")
        ax.plot(t_te, ds.test[i], color="black", lw=1.5, ls="--", label="truth", zorder=5)
        for m in show:
            ax.plot(t_te, results[m][2][i], lw=1, label=f"{m} (sMAPE {results[m][0].smape_per_series[i]:.1f})")
        ax.set_title(f"M4 {ds.frequency} {sid}")
        ax.legend(fontsize=7, ncol=2, loc="upper left")
        fig.tight_layout()
        p = plot_dir / f"{ds.frequency}-{sid}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------- CLI


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="m4-hourly", help="m4-<frequency> (default m4-hourly)")
    p.add_argument("--model", nargs="+", default=["all"], metavar="MODEL",
                   help=f"one or more of {', '.join(MODELS)}, or all (comma-separated also works)")
    p.add_argument("--series", type=int, help="deterministic random subset of N series (default all)")
    p.add_argument("--data-dir", help="folder with <Freq>-train.csv / -test.csv (default: the shipped data/m4)")
    p.add_argument("--out", help="output folder (default: this machine's profiles/<machine>/forecast/)")
    p.add_argument("--cache-dir", help="per-series cache of the statistical fits (default "
                   "$XDG_CACHE_HOME/jaxseq/forecast, else ~/.cache/jaxseq/forecast)")
    p.add_argument("--force", action="store_true", help="recompute models whose forecast CSV exists")
    p.add_argument("--jobs", type=int, help="worker processes for the statistical fits (default: all cores)")
    p.add_argument("--engine", choices=("local", "dask", "ray"), default="local",
                   help="where ses/theta/ets/arima fit: a local process pool (default), a Dask cluster or Ray "
                        "(forecasts are the same; see --engine-address)")
    p.add_argument("--engine-address", metavar="ADDR",
                   help="scheduler of a running cluster, e.g. tcp://host:8786 (dask) or host:6379 (ray); "
                        "default: start a local one with --jobs workers")
    p.add_argument("--seed", type=int, default=0, help="seed of the neural models")
    p.add_argument("--epochs", type=int, help="ES-RNN epochs (default: ESRNNConfig)")
    p.add_argument("--ensemble", type=int, help="ES-RNN seeds in the ensemble (default: ESRNNConfig)")
    p.add_argument("--steps", type=int,
                   help="planned training steps of lstm/transformer/mingru (default 20000, cut by --neural-budget)")
    p.add_argument("--hidden-size", type=int, help="hidden size of the neural models")
    p.add_argument("--esrnn-budget", type=float, default=None,
                   help="opt-in ES-RNN wall-clock cap in s (default: none, the configured epochs run, so the "
                        "seed alone fixes the forecasts, however fast the machine; the report says if the cap cut "
                        "training)")
    p.add_argument("--esrnn-config", metavar="FILE.json",
                   help="JSON object of ESRNNConfig fields overriding the frequency's ES-RNN configuration")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one ESRNNConfig field (value read as JSON: --set level_penalty=50 "
                        "--set 'dilations=[[1,2],[4,8]]'); repeatable, applied after --esrnn-config")
    p.add_argument("--neural-budget", type=float, default=150.0,
                   help="wall-clock budget per lstm/transformer/mingru in s (default 150)")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check_args(a: argparse.Namespace) -> None:
    if getattr(a, "engine_address", None) and getattr(a, "engine", "local") == "local":
        raise ValueError("--engine-address needs --engine dask or ray")
    for name in ("series", "jobs", "epochs", "ensemble", "steps", "hidden_size"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name in ("esrnn_budget", "neural_budget"):
        v = getattr(a, name)
        if v is not None and not v > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0 seconds, got {v}")


def _cmd(a: argparse.Namespace) -> int:
    _check_args(a)
    report = run_forecast(a.dataset, a.model, series=a.series, data_dir=a.data_dir, out=a.out, force=a.force, args=a)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq forecast`."""
    p = subparsers.add_parser("forecast", help="M4 forecasts (statistical, neural, ES-RNN) and REPORT.md",
                              description=__doc__.split("\n\n")[0])
    _add_options(p)
    p.set_defaults(func=_cmd)
