"""ES-RNN per M4 frequency: Smyl's settings, overrides, short series padded (never dropped), no season."""
import json

import numpy as np
import pytest

from jaxseq.data.m4 import FREQUENCIES, SHORTEST_TRAIN
from jaxseq.models.esrnn import (
    FREQUENCY_CONFIGS,
    ESRNNConfig,
    esrnn_config,
    fit_esrnn,
    forecast_esrnn,
    load_config_file,
    parse_overrides,
    prepare_series_padded,
)

# Smyl's blocks, copied by hand from ES_RNN.cc (Quarterly, Monthly) and ES_RNN_E.cc (Yearly, Weekly,
# Daily): (INPUT_SIZE, dilations, STATE_HSIZE, LEVEL_VARIABILITY_PENALTY, TRAINING_PERCENTILE,
# NUM_OF_TRAIN_EPOCHS, INITIAL_LEARNING_RATE, MAX_SERIES_LENGTH, seasonal periods used).
SMYL = {
    "Yearly": (4, ((1, 6),), 30, 0.0, 50, 12, 1e-4, 60 + 6 + 4 + 2, ()),
    "Quarterly": (4, ((1, 2), (4, 8)), 40, 80.0, 45, 15, 1e-3, 40 * 4 + 8 + 4 + 2, (4,)),
    "Monthly": (12, ((1, 3, 6, 12),), 50, 50.0, 49, 10, 5e-4, 20 * 12 + 18 + 12 + 2, (12,)),
    "Weekly": (10, ((1, 52),), 40, 100.0, 47, 23, 1e-3, 6 * 52 + 13 + 10 + 2, ()),
    "Daily": (7, ((1, 3), (7, 14)), 40, 100.0, 49, 13, 3e-4, 13 * 7 + 14 + 7 + 2, (7,)),
}


@pytest.mark.parametrize("freq", sorted(SMYL))
def test_frequency_configs_follow_smyl(freq):
    cfg = FREQUENCY_CONFIGS[freq]
    inp, dil, hid, lvp, pct, ep, lr, max_len, periods = SMYL[freq]
    assert (cfg.input_size, cfg.dilations, cfg.hidden_size, cfg.level_penalty) == (inp, dil, hid, lvp)
    assert (round(cfg.tau * 100), cfg.epochs, cfg.learning_rate, cfg.max_len) == (pct, ep, lr, max_len)
    m4_period = FREQUENCIES[freq][1]
    got = tuple(dict.fromkeys(p for p in (m4_period, *cfg.extra_seasonalities) if p > 1))
    assert got == periods
    assert not cfg.nonlinear_layer and cfg.average_last_epochs == 5
    # The shortest real series has room for at least one full input window + horizon.
    assert SHORTEST_TRAIN[freq] >= cfg.input_size + FREQUENCIES[freq][0] + 3


def test_hourly_keeps_the_project_defaults():
    assert FREQUENCY_CONFIGS["Hourly"] == ESRNNConfig()
    assert ESRNNConfig().input_size == (48, 96) and ESRNNConfig().epochs == 36
    assert esrnn_config("hourly") == ESRNNConfig()


def test_overrides_file_and_set(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"level_penalty": 5, "dilations": [[1, 2], [4]]}))
    over = load_config_file(p)
    over.update(parse_overrides(["epochs=3", "input-size=[8, 16]", "lr_decay=[]"]))
    cfg = esrnn_config("Quarterly", over)
    assert cfg.level_penalty == 5 and cfg.dilations == ((1, 2), (4,)) and cfg.epochs == 3
    assert cfg.input_size == (8, 16) and cfg.lr_decay == () and cfg.tau == 0.45  # the rest: Quarterly's
    with pytest.raises(ValueError, match="unknown ESRNNConfig field.*'dilation'"):
        esrnn_config("Daily", {"dilation": 3})
    with pytest.raises(ValueError, match="frequency"):
        esrnn_config("Minutely")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(ValueError, match="tau"):
        esrnn_config("Daily", parse_overrides(["tau=2"]))
    with pytest.raises(FileNotFoundError, match="esrnn-config"):
        load_config_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_config_file(tmp_path / "bad.json")


def test_short_series_are_padded_in_phase_and_masked():
    # need = input 4 + horizon 6 + 3 = 13; a 5-point series is padded, not rejected.
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y, start = prepare_series_padded([s, np.arange(1.0, 11.0)], input_size=4, horizon=6, max_len=50, period=3)
    assert y.shape == (2, 13) and start.tolist() == [8, 3]
    # Padding repeats the first period backwards in phase: y[t] = s[(t - start) mod 3] for t < start.
    np.testing.assert_array_equal(y[0], [s[(t - 8) % 3] for t in range(8)] + s.tolist())
    np.testing.assert_array_equal(y[1, 3:], np.arange(1.0, 11.0))


def _series(n_points, period, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n_points)
    season = 1 + (0.2 * np.sin(2 * np.pi * t / period) if period > 1 else 0)
    return 50 * (1 + 0.01 * t) * season * np.exp(rng.normal(0, 0.01, n_points))


def test_a_series_too_short_for_one_window_is_still_forecast():
    # Yearly configuration (no season): series of 13, 30 and 5 values; the 5-point one gives no
    # training window (masked out) but gets a forecast from its padded window.
    cfg = esrnn_config("Yearly", {"epochs": 2, "ensemble_size": 1, "average_last_epochs": 1, "hidden_size": 8})
    train = [_series(13, 1, 0), _series(30, 1, 1), _series(5, 1, 2)]
    fitted = fit_esrnn(train, horizon=6, seasonality=1, config=cfg, progress=False)
    assert fitted.periods == ()  # non-seasonal: no seasonal component at all
    fc = forecast_esrnn(fitted, train)
    assert fc.shape == (3, 6) and np.isfinite(fc).all()
    # Without a season or trend the forecast stays near the series' level (within a factor of 2).
    assert np.all(fc[2] > 0.5 * train[2][-1]) and np.all(fc[2] < 2 * train[2][-1])


def test_training_is_reproducible_without_a_budget():
    cfg = esrnn_config("Quarterly", {"epochs": 2, "ensemble_size": 2, "average_last_epochs": 1, "hidden_size": 8})
    train = [_series(16, 4, 0), _series(40, 4, 1), _series(25, 4, 2)]
    a = forecast_esrnn(fit_esrnn(train, horizon=8, seasonality=4, config=cfg, seed=3, progress=False), train)
    b = forecast_esrnn(fit_esrnn(train, horizon=8, seasonality=4, config=cfg, seed=3, progress=False), train)
    c = forecast_esrnn(fit_esrnn(train, horizon=8, seasonality=4, config=cfg, seed=4, progress=False), train)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
