"""`jaxseq forecast` end to end on 3 M4 Hourly series with tiny models; reuse; bad input."""
import functools
import json

import numpy as np
import pytest

from jaxseq.studies import forecasting as forecast
from jaxseq.cli import main
from jaxseq.data.m4 import load_forecasts


@pytest.fixture
def tiny_esrnn(monkeypatch):
    import jaxseq.models.esrnn as esrnn

    tiny = functools.partial(esrnn.ESRNNConfig, input_size=12, extra_seasonalities=(), dilations=((1, 2),),
                             max_len=100, batch_size=3)
    monkeypatch.setattr(esrnn, "ESRNNConfig", tiny)


def test_forecast_end_to_end_and_reuse(tmp_path, capsys, tiny_esrnn):
    out = tmp_path / "fc"
    argv = ["forecast", "--dataset", "m4-hourly", "--model", "naive2", "snaive", "ses", "lstm,esrnn",
            "--series", "3", "--out", str(out), "--jobs", "1", "--steps", "3", "--epochs", "1",
            "--ensemble", "1", "--hidden-size", "8", "--no-progress"]
    assert main(argv) == 0
    for model in ("naive2", "snaive", "ses", "lstm", "esrnn"):
        ids, values = load_forecasts(out / f"Hourly-n3-{model}.csv", horizon=48)
        assert len(ids) == 3 and values.shape == (3, 48) and np.isfinite(values).all()
        meta = json.loads((out / f"Hourly-n3-{model}.json").read_text())
        assert meta["n_series"] == 3 and meta["wall_s"] >= 0
    report = (out / "REPORT.md").read_text()
    assert "| esrnn |" in report and "| naive2 | " in report and "| 1.000 |" in report
    assert "0.440" in report and "0.410" in report  # Smyl, best Hourly (published)
    assert "2-core CPU shared with other jobs" in report
    assert len(list((out / "plots").glob("*.png"))) == 3
    assert len(list((out / "cache" / "ses").glob("*.npz"))) == 3  # per-series cache
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")}
    capsys.readouterr()
    assert main(argv[:-1] + ["--no-plots", "--no-progress"]) == 0
    assert "reusing" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")} == before


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--dataset", "m5-hourly"], "--dataset"),
        (["--model", "prophet"], "--model"),
        (["--series", "0"], "--series"),
        (["--series", "100000"], "exceeds"),
        (["--esrnn-budget", "0"], "--esrnn-budget"),
    ],
)
def test_bad_input(tmp_path, capsys, extra, match):
    argv = ["forecast", "--model", "naive2", "--out", str(tmp_path), "--no-plots", "--no-progress"] + extra
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_parse_dataset():
    assert forecast.parse_dataset("m4-hourly") == "Hourly"
    assert forecast.parse_dataset("M4-Daily") == "Daily"
    with pytest.raises(ValueError, match="m4-hourly"):
        forecast.parse_dataset("hourly")
