"""Running the study: each model's forecasts (statistical fits, global neural models, ES-RNN), written
to the results folder with their settings, then the report."""
from __future__ import annotations

import argparse
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
from jaxseq.studies.forecasting.files import forecast_stem, jsonable, read_existing
from jaxseq.studies.forecasting.options import build_parser_namespace
from jaxseq.studies.forecasting.presets import (PRESETS, STATISTICAL, default_cache, default_out, parse_dataset,
                                                parse_models)
from jaxseq.studies.forecasting.report import write_report

__all__ = ["run_preset", "run_forecast", "esrnn_settings"]


def run_preset(preset: str, out: str | os.PathLike | None = None) -> Path:
    """Forecast and score the preset's models into `out` (default this machine's forecast folder), reusing
    the forecasts already there; returns REPORT.md's path (the study contract's entry point)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    p = PRESETS[preset]
    args = build_parser_namespace(no_progress=True)
    return run_forecast(p["dataset"], p["models"], series=p["series"], out=out, args=args)


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
            "config": jsonable(dataclasses.asdict(cfg)),
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
        "config": jsonable(dataclasses.asdict(cfg)),
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
    names = parse_models([models] if isinstance(models, str) else list(models))
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
        stem = forecast_stem(freq, len(ds), len(full), model)
        csv_path, meta_path = out / f"{stem}.csv", out / f"{stem}.json"
        if not force and read_existing(csv_path, ds) is not None and meta_path.is_file():
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
        meta_path.write_text(json.dumps(jsonable(meta), indent=2) + "\n")
        print(f"[forecast] {model}: done in {wall:.1f}s -> {csv_path}", file=sys.stderr, flush=True)
    return write_report(ds, full_size=len(full), out=out, dataset=dataset, plots=not args.no_plots)
