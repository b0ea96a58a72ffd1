"""Global neural forecasters: shapes, windowing vs numpy, a tiny fit, bad input."""
import numpy as np
import pytest

from jaxseq.models.forecasters import (
    KINDS,
    GlobalForecasterConfig,
    fit_global_forecaster,
    forecast_global,
    normalise_windows,
    window_batch,
)


def _series(n=5, length=120, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return [
        (5.0 + i) * (1.0 + 0.3 * np.sin(2 * np.pi * t / period + rng.random())) + rng.normal(0, 0.05, length)
        for i in range(n)
    ] + [np.linspace(1.0, 3.0, length + 7)]  # a different length too


TINY = dict(input_size=24, hidden_size=8, num_layers=1, num_heads=2, batch_size=8)


def test_window_batch_matches_numpy_reference():
    series = _series()
    sid = np.array([0, 3, 5, 5])
    starts = np.array([0, 10, 50, len(series[5]) - 30])
    x, y, scale = window_batch(series, sid, starts, input_size=24, horizon=6, seasonality=12)
    for k, (j, s) in enumerate(zip(sid, starts)):
        inp, tgt = series[j][s : s + 24], series[j][s + 24 : s + 30]
        ref_scale = inp[-12:].mean()  # mean of the last season of the input
        np.testing.assert_allclose(scale[k], ref_scale, rtol=1e-12)
        np.testing.assert_allclose(x[k], np.log(inp / ref_scale), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(y[k], np.log(tgt / ref_scale), rtol=1e-10, atol=1e-12)
    x2, y2, _ = window_batch(series, sid, starts, input_size=24, horizon=6, seasonality=12, log_transform=False)
    np.testing.assert_allclose(x2, np.exp(x) - 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="outside series"):
        window_batch(series, [0], [len(series[0]) - 29], input_size=24, horizon=6, seasonality=12)
    # a season longer than the window uses the whole window
    xn, sc = normalise_windows(np.array([[1.0, 2.0, 3.0]]), seasonality=24)
    np.testing.assert_allclose(sc, [2.0])


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_fit_shapes_and_loss_decreases(kind):
    series = _series()
    # without the seasonal skip: the model starts far from the answer, so the loss must fall
    cfg = GlobalForecasterConfig(steps=40, learning_rate=3e-3, seasonal_skip=False, **TINY)
    fitted = fit_global_forecaster(series, kind=kind, horizon=6, seasonality=12, config=cfg, seed=0)
    assert fitted.steps_done == 40 and len(fitted.history) == 10
    assert fitted.history[-1] < fitted.history[0]
    fc = forecast_global(fitted, series)
    assert fc.shape == (len(series), 6) and np.isfinite(fc).all() and (fc > 0).all()
    # forecasts are on the series' scale: within a factor 2 of the last season's mean
    last = np.array([s[-12:].mean() for s in series])
    assert np.all((fc.mean(axis=1) > last / 2) & (fc.mean(axis=1) < 2 * last))


@pytest.mark.parametrize("kind", KINDS)
def test_seasonal_skip_starts_as_seasonal_naive(kind):
    from flax import nnx

    from jaxseq.models.forecasters import GlobalForecaster

    model = GlobalForecaster(kind=kind, horizon=7, hidden_size=8, num_layers=1, num_heads=2, seasonal_skip=3,
                             rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 10)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.tile(x[:, -3:], 3)[:, :7],
                               atol=1e-6)


def test_time_budget_cuts_steps():
    cfg = GlobalForecasterConfig(steps=100000, **TINY)
    fitted = fit_global_forecaster(_series(), kind="lstm", horizon=6, seasonality=12, config=cfg, time_budget_s=3.0)
    assert 5 <= fitted.steps_done < 100000  # stops once over budget (the first 5 steps include compiling)


def test_bad_input():
    good = _series()
    cfg = GlobalForecasterConfig(steps=1, **TINY)
    with pytest.raises(ValueError, match="kind"):
        fit_global_forecaster(good, kind="gru3", horizon=6, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="horizon"):
        fit_global_forecaster(good, kind="lstm", horizon=0, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="at least one"):
        fit_global_forecaster([], kind="lstm", horizon=6, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="empty"):
        fit_global_forecaster([np.ones(0)], kind="lstm", horizon=6, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="positive"):
        fit_global_forecaster([-np.ones(40)], kind="lstm", horizon=6, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="1-D"):
        fit_global_forecaster([np.ones((40, 2))], kind="lstm", horizon=6, seasonality=12, config=cfg)
    with pytest.raises(ValueError, match="seasonality"):
        fit_global_forecaster(good, kind="lstm", horizon=6, seasonality=0, config=cfg)
    with pytest.raises(ValueError, match="loss"):
        GlobalForecasterConfig(loss="mse")
    with pytest.raises(ValueError, match="steps"):
        GlobalForecasterConfig(steps=0)
    with pytest.raises(ValueError, match="divisible"):
        fit_global_forecaster(good, kind="transformer", horizon=6, seasonality=12,
                              config=GlobalForecasterConfig(steps=1, **{**TINY, "hidden_size": 9}))


def test_short_series_are_padded_not_dropped():
    from jaxseq.models.forecasters import _left_pad

    # Padding repeats the first season backwards in phase: y[t] = y[start + (t - start) mod m].
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.array_equal(_left_pad(s, 9, 3), [2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0][1:])
    assert _left_pad(s, 3, 3) is s
    cfg = GlobalForecasterConfig(steps=2, **TINY)
    i_sz = cfg.input_size
    short = [np.full(5, 2.0), np.linspace(1.0, 2.0, i_sz + 10)]  # the first has no full window
    fitted = fit_global_forecaster(short, kind="lstm", horizon=6, seasonality=12, config=cfg)
    fc = forecast_global(fitted, short)
    assert fc.shape == (2, 6) and np.isfinite(fc).all()
    # Every series too short: all are padded to one window each, and training still runs.
    fitted = fit_global_forecaster([np.full(3, 1.0), np.full(4, 3.0)], kind="mingru", horizon=6, seasonality=1,
                                   config=cfg)
    assert fitted.steps_done == 2 and np.isfinite(forecast_global(fitted, [np.full(3, 1.0), np.full(4, 3.0)])).all()
