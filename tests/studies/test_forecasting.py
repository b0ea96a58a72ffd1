"""`jaxseq forecast` end to end on 3 M4 Hourly series with tiny models; reuse; bad input."""
import json

import numpy as np
import pytest

from jaxseq.studies import forecasting as forecast
from jaxseq.cli import main
from jaxseq.data.m4 import load_forecasts


# A small ES-RNN through the CLI's overrides (the Hourly defaults compile for minutes on a busy CPU).
TINY_ESRNN = ["--set", "input_size=12", "--set", "extra_seasonalities=[]", "--set", "dilations=[[1,2]]",
              "--set", "max_len=100", "--set", "batch_size=3"]


def test_forecast_end_to_end_and_reuse(tmp_path, capsys):
    out = tmp_path / "fc"
    argv = ["forecast", "--dataset", "m4-hourly", "--model", "naive2", "snaive", "ses", "lstm,esrnn",
            "--series", "3", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--jobs", "1", "--steps", "3", "--epochs", "1",
            "--ensemble", "1", "--hidden-size", "8", *TINY_ESRNN, "--no-progress"]
    assert main(argv) == 0
    for model in ("naive2", "snaive", "ses", "lstm", "esrnn"):
        ids, values = load_forecasts(out / f"Hourly-n3-{model}.csv", horizon=48)
        assert len(ids) == 3 and values.shape == (3, 48) and np.isfinite(values).all()
        meta = json.loads((out / f"Hourly-n3-{model}.json").read_text())
        assert meta["n_series"] == 3 and meta["wall_s"] >= 0
    cfg = json.loads((out / "Hourly-n3-esrnn.json").read_text())["settings"]
    assert cfg["config"]["input_size"] == 12 and cfg["config"]["dilations"] == [[1, 2]]
    assert cfg["seasonalities"] == [24] and cfg["time_budget_s"] is None and not cfg["budget_cut_training"]
    report = (out / "REPORT.md").read_text()
    assert "| esrnn |" in report and "| naive2 | " in report and "| 1.000 |" in report
    assert "0.440" in report and "0.410" in report  # Smyl, best Hourly (published)
    from jaxseq.bench.sweep import machine_fingerprint, machine_label

    assert f"Machine: {machine_label(machine_fingerprint())}." in report  # from the records' fingerprints
    assert meta["fingerprint"] == machine_fingerprint()
    assert len(list((out / "plots").glob("*.png"))) == 3
    assert len(list((tmp_path / "cache" / "ses").glob("*.npz"))) == 3  # per-series cache, outside OUT
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


# Per frequency: (Smyl's published OWA there, ES-RNN input window with one member, its seasonal
# periods, the seasonal period of the statistical models = M4's m).
FREQ_CASES = {
    "Yearly": ("0.778", 4, [], 1),
    "Quarterly": ("0.847", 4, [4], 4),
    "Monthly": ("0.836", 12, [12], 12),
    "Weekly": ("0.851", 10, [], 1),
    "Daily": ("1.046", 7, [7], 1),
    "Hourly": ("0.440", 48, [24, 168], 24),
}


@pytest.mark.parametrize("freq", list(FREQ_CASES))
def test_all_models_on_every_frequency_with_its_shortest_series(tmp_path, freq):
    from jaxseq.data.m4 import FREQUENCIES, SHORTEST_TRAIN, write_synthetic_m4

    data = write_synthetic_m4(tmp_path / "data", freq, seed=1)  # lengths: the real shortest, 1.5x, 2x
    out = tmp_path / "out"
    argv = ["forecast", "--dataset", f"m4-{freq.lower()}", "--data-dir", str(data), "--model", "all",
            "--out", str(out), "--jobs", "1", "--steps", "3", "--epochs", "1", "--ensemble", "1",
            "--hidden-size", "8", "--no-plots", "--no-progress"]
    assert main(argv) == 0
    h, m = FREQUENCIES[freq]
    for model in forecast.MODELS:
        ids, values = load_forecasts(out / f"{freq}-{model}.csv", horizon=h)
        assert ids == [f"{freq[0]}1", f"{freq[0]}2", f"{freq[0]}3"], model  # the shortest one too
        assert values.shape == (3, h) and np.isfinite(values).all() and (values > 0).all(), model
    smyl_owa, window, periods, stat_m = FREQ_CASES[freq]
    assert m == stat_m
    es = json.loads((out / f"{freq}-esrnn.json").read_text())["settings"]
    assert es["config"]["input_size"] == window and es["seasonalities"] == periods
    assert es["epochs_run_per_member"] == [1] and es["budget_cut_training"] is False
    ets = json.loads((out / f"{freq}-ets.json").read_text())["settings"]["method"]
    assert f"season_length={stat_m})" in ets
    report = (out / "REPORT.md").read_text()
    assert f"## Published M4 {freq}" in report and f"| {smyl_owa} |" in report
    assert "**Naive2 check:**" in report and SHORTEST_TRAIN[freq] > 0


def test_bad_esrnn_overrides_fail_before_any_model(tmp_path, capsys):
    base = ["forecast", "--model", "naive2,esrnn", "--series", "2", "--out", str(tmp_path), "--no-plots",
            "--no-progress"]
    assert main(base + ["--set", "dilation=3"]) == 2
    assert "unknown ESRNNConfig field" in capsys.readouterr().err
    assert main(base + ["--esrnn-config", str(tmp_path / "none.json")]) == 2
    assert "--esrnn-config" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))


def test_esrnn_budget_is_opt_in_and_reported_when_it_cuts(tmp_path):
    from jaxseq.data.m4 import write_synthetic_m4

    # Same series lengths, hidden size and ensemble as the Yearly case above: after it, the fits reuse
    # its compiled ES-RNN step and forecast (the epoch count does not enter the compiled step).
    data = write_synthetic_m4(tmp_path / "data", "Yearly")
    out = tmp_path / "out"
    argv = ["forecast", "--dataset", "m4-yearly", "--data-dir", str(data), "--model", "esrnn", "--out", str(out),
            "--epochs", "3", "--ensemble", "1", "--hidden-size", "8", "--esrnn-budget", "0.001",
            "--no-plots", "--no-progress"]
    assert main(argv) == 0
    es = json.loads((out / "Yearly-esrnn.json").read_text())["settings"]
    assert es["budget_cut_training"] is True and es["epochs_run_per_member"] == [1]
    assert "training cut by --esrnn-budget" in (out / "REPORT.md").read_text()
    assert main(argv[:-4] + ["--force", "--no-plots", "--no-progress"]) == 0  # no cap: all 3 epochs
    es = json.loads((out / "Yearly-esrnn.json").read_text())["settings"]
    assert es["budget_cut_training"] is False and es["epochs_run_per_member"] == [3]
    assert "training cut" not in (out / "REPORT.md").read_text()
