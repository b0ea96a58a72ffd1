"""Statistical baselines on 2-3 short series: shapes, cache behaviour, subsets, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("statsforecast")

from jaxseq.models import statistical as st  # noqa: E402


def _series() -> list[np.ndarray]:
    t = np.arange(60)
    season = 1 + 0.3 * np.sin(2 * np.pi * t / 6)
    rng = np.random.default_rng(0)
    return [
        100 * season + rng.normal(0, 1, 60),
        np.linspace(10, 40, 48) + rng.normal(0, 0.5, 48),
        50 * season[:36] * (1 + 0.01 * t[:36]),
    ]


def test_seasonal_naive_exact_and_subset():
    ys = _series()
    out = st.forecast_statistical(ys, 8, 6, "seasonal_naive", n_jobs=1)
    assert out.forecasts.shape == (3, 8) and out.index.tolist() == [0, 1, 2] and not out.cached.any()
    for y, f in zip(ys, out.forecasts):
        np.testing.assert_allclose(f, np.resize(y[-6:], 8))
    sub = st.forecast_statistical(ys, 8, 6, "seasonal_naive", n_jobs=1, series=2, subset_seed=1)
    again = st.select_series(3, 2, seed=1)
    assert sub.index.tolist() == again.tolist() and len(set(again)) == 2
    np.testing.assert_array_equal(sub.forecasts, out.forecasts[sub.index])
    assert st.forecast_statistical(ys, 8, 6, "seasonal_naive", n_jobs=1, series=[2]).index.tolist() == [2]


@pytest.mark.parametrize("model", ["auto_ets", "theta", "optimized_theta", "ses", "auto_arima"])
def test_models_give_finite_forecasts(model):
    ys = _series()[:2]
    out = st.forecast_statistical(ys, 6, 6, model, n_jobs=1, options={"approximation": True} if model == "auto_arima" else None)
    assert out.forecasts.shape == (2, 6) and np.isfinite(out.forecasts).all()
    # the trend series keeps rising under every model but SES
    if model != "ses":
        assert out.forecasts[1].mean() > ys[1][-12:].mean()


def test_cache_is_reused_and_keyed_by_settings(tmp_path, monkeypatch):
    ys = _series()
    first = st.forecast_statistical(ys, 6, 6, "theta", cache_dir=tmp_path, n_jobs=1, ids=["a", "b", "c"])
    files = sorted((tmp_path / "theta").glob("*.npz"))
    assert len(files) == 3 and [f.name[0] for f in files] == ["a", "b", "c"]
    assert not list(tmp_path.rglob("*.tmp"))

    def boom(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(st, "_fit_one", boom)
    second = st.forecast_statistical(ys, 6, 6, "theta", cache_dir=tmp_path, n_jobs=1, ids=["a", "b", "c"])
    assert second.cached.all()
    np.testing.assert_array_equal(second.forecasts, first.forecasts)
    np.testing.assert_array_equal(second.fit_seconds, first.fit_seconds)
    monkeypatch.undo()
    # a different fitting window is a different result: only that is refitted
    third = st.forecast_statistical(ys, 6, 6, "theta", cache_dir=tmp_path, n_jobs=1, max_train_length=30)
    assert not third.cached.any() and len(list((tmp_path / "theta").glob("*.npz"))) == 6
    # a corrupt file (a killed run cannot leave one, but a full disk might) is refitted
    files[0].write_bytes(b"garbage")
    fourth = st.forecast_statistical(ys, 6, 6, "theta", cache_dir=tmp_path, n_jobs=1, ids=["a", "b", "c"])
    assert fourth.cached.tolist() == [False, True, True]
    np.testing.assert_allclose(fourth.forecasts, first.forecasts)


def test_parallel_matches_serial(tmp_path):
    ys = _series()[:2]
    serial = st.forecast_statistical(ys, 6, 6, "optimized_theta", n_jobs=1)
    par = st.forecast_statistical(ys, 6, 6, "optimized_theta", n_jobs=2, cache_dir=tmp_path)
    np.testing.assert_allclose(par.forecasts, serial.forecasts, rtol=1e-10)
    assert len(list((tmp_path / "optimized_theta").glob("*.npz"))) == 2


def test_errors(monkeypatch):
    ys = _series()
    with pytest.raises(ValueError, match="model must be one of"):
        st.forecast_statistical(ys, 6, 6, "prophet")
    with pytest.raises(ValueError, match="series=4 must be between 1 and the number of series 3"):
        st.forecast_statistical(ys, 6, 6, "ses", series=4)
    with pytest.raises(ValueError, match=r"train_series\[1\] must be a finite"):
        st.forecast_statistical([ys[0], np.array([1.0, np.nan, 2.0])], 6, 6, "ses", n_jobs=1)
    with pytest.raises(ValueError, match="n_jobs"):
        st.forecast_statistical(ys, 6, 6, "ses", n_jobs=0)
    monkeypatch.setitem(sys.modules, "statsforecast.models", None)
    with pytest.raises(ImportError, match="pip install 'statsforecast"):
        st.forecast_statistical(ys, 6, 6, "ses")


def test_dask_engine_gives_the_local_forecasts_and_fills_the_cache(tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    ys = _series()
    local = st.forecast_statistical(ys, 8, 6, "auto_ets", n_jobs=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        seen = []
        out = st.forecast_statistical(ys, 8, 6, "auto_ets", engine="dask", engine_address=cluster.scheduler_address,
                                      cache_dir=tmp_path, ids=["a", "b", "c"], progress=seen.append)
    np.testing.assert_array_equal(out.forecasts, local.forecasts)
    assert out.index.tolist() == [0, 1, 2] and sum(seen) == 3 and not out.cached.any()
    assert len(list((tmp_path / "auto_ets").glob("*.npz"))) == 3  # written here, not by the workers
    again = st.forecast_statistical(ys, 8, 6, "auto_ets", cache_dir=tmp_path, ids=["a", "b", "c"])
    assert again.cached.all() and np.array_equal(again.forecasts, local.forecasts)


def test_engine_arguments_are_checked():
    with pytest.raises(ValueError, match="engine must be one of"):
        st.forecast_statistical(_series(), 8, 6, "ses", engine="spark")
    with pytest.raises(ValueError, match="engine_address"):
        st.forecast_statistical(_series(), 8, 6, "ses", engine_address="tcp://x:1")


def test_ray_engine_gives_the_local_forecasts():
    pytest.importorskip("ray")  # not in requirements: skipped unless Ray is installed
    ys = _series()[:2]
    local = st.forecast_statistical(ys, 8, 6, "auto_ets", n_jobs=1)
    out = st.forecast_statistical(ys, 8, 6, "auto_ets", engine="ray", n_jobs=2)
    np.testing.assert_array_equal(out.forecasts, local.forecasts)
