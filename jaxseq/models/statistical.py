"""Classical statistical forecasting baselines (via Nixtla's ``statsforecast``), cached per series.

``forecast_statistical(train_series, horizon, seasonality, model, cache_dir=..., n_jobs=...)``
fits one model per series and returns point forecasts ``[n_series, horizon]``. Each series'
forecast is written to its own small file as soon as it is done (temporary file, then
``os.replace``), so a killed run loses at most the fits in flight and a rerun reuses everything
already computed. The cache key covers the model, its options, horizon, seasonality, the fitted
window, the statsforecast version and the series values themselves, so stale results are never
reused.

Models (``MODELS``): ``auto_arima`` (AutoARIMA, Hyndman & Khandakar's stepwise auto.arima),
``auto_ets``, ``theta``, ``optimized_theta``, ``ses`` (SES with optimised alpha) and
``seasonal_naive``. ``statsforecast`` is imported lazily, so the rest of jaxseq works without it.

Note: these fit the raw series. The M4 organisers' SES/Theta benchmarks first deseasonalise with
the classical decomposition (``jaxseq.data.m4.seasonal_indices``), so they are not the same numbers.

Timing (M4 Hourly H1 / H201, n = 700 / 960, season 24, statsforecast 2.1.1, CPU seconds of one
process on the shared 2-core machine; wall time was 2-4x more under load):

    AutoARIMA, library defaults (exact ML, stepwise)        22.3 / 8.1 s   sMAPE 4.071 / 0.354
    AutoARIMA, approximation=True     (= ARIMA_PRACTICAL)    1.2 / 1.7 s   sMAPE 4.071 / 0.350
    AutoARIMA, approximation=True, last 240 observations     0.7 / 1.1 s   sMAPE 3.117 / 0.370

``approximation=True`` (the CSS approximation R's auto.arima itself uses for long series) is ~10x
faster with the same or nearly the same forecasts, so all 414 Hourly series take ~10 CPU-minutes.
AutoETS ~2 s wall per series, OptimizedTheta ~0.1 s, the others milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ENGINES", "MODELS", "ARIMA_PRACTICAL", "StatisticalForecasts", "forecast_statistical", "select_series", "make_model"]

# name -> statsforecast class name
MODELS: dict[str, str] = {
    "auto_arima": "AutoARIMA",
    "auto_ets": "AutoETS",
    "theta": "Theta",
    "optimized_theta": "OptimizedTheta",
    "ses": "SimpleExponentialSmoothingOptimized",
    "seasonal_naive": "SeasonalNaive",
}
_SEASONAL = {"auto_arima", "auto_ets", "theta", "optimized_theta", "seasonal_naive"}

# A documented setting that makes AutoARIMA practical on long hourly series: the approximate (CSS)
# likelihood during the order search. Pass as ``forecast_statistical(..., **ARIMA_PRACTICAL)``;
# adding ``max_train_length=240`` (last 10 days) saves another ~1.5x (module docstring).
ARIMA_PRACTICAL: dict[str, Any] = {"options": {"approximation": True}}


@dataclass(frozen=True)
class StatisticalForecasts:
    """Forecasts of the selected series, in the order of ``index`` (positions in the input)."""

    index: np.ndarray  # [k] int: which input series
    forecasts: np.ndarray  # [k, horizon]
    fit_seconds: np.ndarray  # [k] wall time of each fit (the original fit's, for cached ones)
    cached: np.ndarray  # [k] bool: read from the cache rather than fitted in this call


def _statsforecast_models():
    try:
        import statsforecast.models as sf_models
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "jaxseq.models.statistical needs the optional package 'statsforecast': "
            "pip install 'statsforecast>=2.1'"
        ) from e
    return sf_models


def _statsforecast_version() -> str:
    import statsforecast

    return str(getattr(statsforecast, "__version__", "unknown"))


def make_model(model: str, seasonality: int, **options: Any):
    """The statsforecast model object for ``model`` with ``season_length=seasonality`` where it applies."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    cls = getattr(_statsforecast_models(), MODELS[model])
    if model in _SEASONAL:
        options = {"season_length": int(seasonality), **options}
    return cls(**options)


def select_series(n: int, series: int | Sequence[int] | None, *, seed: int = 0) -> np.ndarray:
    """Positions of the series to forecast: all (``None``), the given positions, or ``k`` of them.

    An int ``k`` picks a deterministic random subset (``np.random.default_rng(seed)``), returned
    sorted, so quick runs on part of a data set are reproducible and comparable across models.
    """
    if series is None:
        return np.arange(n)
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        if not 1 <= series <= n:
            raise ValueError(f"series={series} must be between 1 and the number of series {n}")
        return np.sort(np.random.default_rng(seed).choice(n, size=int(series), replace=False))
    index = np.asarray(series, dtype=np.int64).ravel()
    if index.size == 0 or index.min() < 0 or index.max() >= n:
        raise ValueError(f"series positions must be non-empty and within [0, {n}), got {series!r}")
    return index


def _cache_path(cache_dir: Path, model: str, settings: dict[str, Any], y: np.ndarray, name: str) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
    return cache_dir / model / f"{safe}-{digest.hexdigest()[:20]}.npz"


def _load_cached(path: Path, horizon: int) -> tuple[np.ndarray, float] | None:
    try:
        with np.load(path) as z:
            f, sec = z["forecast"], float(z["seconds"])
    except (OSError, KeyError, ValueError):
        return None  # missing or unreadable (e.g. disk full during an old run): refit
    return (f, sec) if f.shape == (horizon,) else None


def _fit_one(model: str, options: dict[str, Any], seasonality: int, horizon: int, y: np.ndarray,
             name: str, path: str | None) -> tuple[np.ndarray, float]:
    """Fit one series and (if ``path``) store the result atomically; runs in worker processes."""
    start = time.perf_counter()
    try:
        forecast = np.asarray(make_model(model, seasonality, **options).forecast(y=y, h=horizon)["mean"], np.float64)
    except Exception as e:
        raise RuntimeError(f"{model} failed on series {name!r} (length {len(y)}): {type(e).__name__}: {e}") from e
    seconds = time.perf_counter() - start
    if forecast.shape != (horizon,) or not np.isfinite(forecast).all():
        raise RuntimeError(f"{model} gave a non-finite or mis-shaped forecast for series {name!r}: {forecast}")
    if path is not None:
        _store(path, forecast, seconds)
    return forecast, seconds


def _store(path: str | os.PathLike, forecast: np.ndarray, seconds: float) -> None:
    """Write one series' cache file atomically (readers see the old state or the whole file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, forecast=forecast, seconds=np.float64(seconds))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


ENGINES = ("local", "dask", "ray")


def _run_dask(address: str | None, workers: int, tasks: list[tuple], on_done: Callable) -> None:
    """Fit `tasks` (arguments of `_fit_one`, without a cache path) on a Dask cluster: the scheduler at
    `address`, or a local cluster of `workers` single-threaded processes. `on_done(k, result)` runs
    here, in the order the fits finish, so the cache is written by this process (workers of a real
    cluster do not share its disk)."""
    try:
        from distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError as e:
        raise ImportError("engine='dask' needs dask's distributed scheduler: pip install 'dask[distributed]'") from e
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            client.run(_worker_init)
            futures = [client.submit(_fit_one, *t, pure=False) for t in tasks]
            index = {f.key: k for k, f in enumerate(futures)}
            for fut in dask_completed(futures):
                on_done(index[fut.key], fut.result())
    finally:
        if cluster is not None:
            cluster.close()


def _run_ray(address: str | None, workers: int, tasks: list[tuple], on_done: Callable) -> None:
    """As `_run_dask` on Ray: `ray.init(address)` (None: a local Ray of `workers` CPUs)."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("engine='ray' needs Ray: pip install ray") from e
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else max(workers, 1), include_dashboard=False,
                 runtime_env={"env_vars": {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}})
    try:
        remote = ray.remote(num_cpus=1)(_fit_one)
        refs = [remote.remote(*t) for t in tasks]
        index = {r: k for k, r in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_done(index[done[0]], ray.get(done[0]))
    finally:
        if started:
            ray.shutdown()


def _worker_init() -> None:
    # One fit per process: keep BLAS/OpenMP from spawning threads that fight over the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # statsforecast's ARIMA warns "possible convergence problem" for many series; one line per
    # fit would bury the progress bar.
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="statsforecast")


def forecast_statistical(
    train_series: Sequence[np.ndarray],
    horizon: int,
    seasonality: int,
    model: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    series: int | Sequence[int] | None = None,
    subset_seed: int = 0,
    ids: Sequence[str] | None = None,
    max_train_length: int | None = None,
    options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str = "local",
    engine_address: str | None = None,
) -> StatisticalForecasts:
    """Fit ``model`` to each selected series and forecast ``horizon`` steps.

    Args:
      train_series: the series (1-D arrays, any lengths).
      horizon, seasonality: forecast length and season length (24 for M4 Hourly).
      model: one of ``MODELS``.
      cache_dir: folder for the per-series cache (``None``: no cache).
      n_jobs: worker processes; ``None`` or ``-1`` uses every core available to this process.
      series, subset_seed: which series (see ``select_series``).
      ids: series names, used in cache file names and error messages (default: positions).
      max_train_length: fit on the last N observations only (AutoARIMA's cost grows with length).
      options: extra keyword arguments of the statsforecast model (e.g. ``approximation=True``).
      progress: called with the number of series just finished (cached ones at once, then one
        per completed fit), e.g. a ``tqdm`` bar's ``update``.
      engine: where the fits run: ``"local"`` (a process pool of ``n_jobs`` workers), ``"dask"``
        (a Dask cluster: the scheduler at ``engine_address``, e.g. ``"tcp://host:8786"``, or a local
        cluster of ``n_jobs`` processes) or ``"ray"`` (``ray.init(engine_address)``; untested here).
        Every engine runs the same per-series fit, so the forecasts are the same; the cache is
        written by this process.
      engine_address: the scheduler address of a running cluster (``None``: start a local one).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    horizon, seasonality = int(horizon), int(seasonality)
    if horizon < 1 or seasonality < 1:
        raise ValueError(f"horizon and seasonality must be >= 1, got {horizon} and {seasonality}")
    if max_train_length is not None and max_train_length < 2:
        raise ValueError(f"max_train_length must be >= 2 or None, got {max_train_length}")
    if ids is not None and len(ids) != len(train_series):
        raise ValueError(f"ids has {len(ids)} entries, train_series has {len(train_series)}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine_address is not None and engine == "local":
        raise ValueError("engine_address needs engine='dask' or 'ray'")
    options = dict(options or {})
    index = select_series(len(train_series), series, seed=subset_seed)
    make_model(model, seasonality, **options)  # fail early on a missing package or bad options

    settings = {
        "model": model,
        "options": options,
        "horizon": horizon,
        "seasonality": seasonality,
        "max_train_length": max_train_length,
        "statsforecast": _statsforecast_version(),
    }
    cache = Path(cache_dir) if cache_dir is not None else None
    k = len(index)
    forecasts = np.empty((k, horizon))
    seconds = np.empty(k)
    cached = np.zeros(k, bool)
    jobs: list[tuple[int, np.ndarray, str, str | None]] = []
    for j, i in enumerate(index):
        y = np.asarray(train_series[i], dtype=np.float64)
        if y.ndim != 1 or len(y) < 2 or not np.isfinite(y).all():
            raise ValueError(f"train_series[{i}] must be a finite 1-D array of >= 2 values, got shape {y.shape}")
        if max_train_length is not None:
            y = y[-max_train_length:]
        name = str(ids[i]) if ids is not None else str(int(i))
        path = _cache_path(cache, model, settings, y, name) if cache is not None else None
        hit = _load_cached(path, horizon) if path is not None else None
        if hit is not None:
            forecasts[j], seconds[j] = hit
            cached[j] = True
        else:
            jobs.append((j, y, name, None if path is None else str(path)))
    if progress is not None and cached.any():
        progress(int(cached.sum()))

    workers = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        workers = len(os.sched_getaffinity(0))
    if n_jobs is not None and n_jobs != -1:
        if n_jobs < 1:
            raise ValueError(f"n_jobs must be >= 1, -1 or None, got {n_jobs}")
        workers = n_jobs
    workers = min(workers, len(jobs))
    if engine != "local" and jobs:
        def on_done(k: int, result: tuple[np.ndarray, float]) -> None:
            j, _, _, path = jobs[k]
            forecasts[j], seconds[j] = result
            if path is not None:
                _store(path, *result)
            if progress is not None:
                progress(1)

        tasks = [(model, options, seasonality, horizon, y, name, None) for _, y, name, _ in jobs]
        (_run_dask if engine == "dask" else _run_ray)(engine_address, workers, tasks, on_done)
    elif workers <= 1:
        for j, y, name, path in jobs:
            forecasts[j], seconds[j] = _fit_one(model, options, seasonality, horizon, y, name, path)
            if progress is not None:
                progress(1)
    elif jobs:
        # "spawn": forking a process that has initialised JAX (threads) can deadlock.
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {
                pool.submit(_fit_one, model, options, seasonality, horizon, y, name, path): j
                for j, y, name, path in jobs
            }
            for fut in as_completed(futures):
                forecasts[futures[fut]], seconds[futures[fut]] = fut.result()
                if progress is not None:
                    progress(1)
    return StatisticalForecasts(index, forecasts, seconds, cached)
