"""M4 loader, metrics and benchmarks against the organisers' published numbers and files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxseq.data import m4

# Published Hourly scores ([E] in data/m4/REFERENCE.md): sMAPE, MASE, OWA (3 decimals).
PUBLISHED_HOURLY = {
    "Naive": (43.003, 11.608, 3.593),
    "sNaive": (13.912, 1.193, 0.627),
    "Naive2": (18.383, 2.395, 1.000),
    "SES": (18.094, 2.385, 0.990),
}


@pytest.fixture(scope="module")
def hourly() -> m4.M4Dataset:
    return m4.load_m4("Hourly")


def test_hourly_facts(hourly):
    assert (hourly.frequency, hourly.horizon, hourly.seasonality) == ("Hourly", 48, 24)
    assert len(hourly) == 414 and hourly.ids[0] == "H1" and hourly.ids[-1] == "H414"
    assert hourly.test.shape == (414, 48)
    lengths = np.array([len(y) for y in hourly.train])
    assert (lengths == 700).sum() == 169 and (lengths == 960).sum() == 245 and lengths.sum() == 353_500
    assert all((y > 0).all() for y in hourly.train) and (hourly.test > 0).all()
    assert hourly.test[0, :3].tolist() == [619.0, 565.0, 532.0]
    sub = hourly.subset([2, 0])
    assert sub.ids == ["H3", "H1"] and sub.test.shape == (2, 48)
    assert m4.load_m4("hourly").ids == hourly.ids  # case-insensitive frequency


def test_holdout_split_moves_the_last_horizon_of_each_training_series(hourly):
    val = hourly.subset([0, 5]).holdout_split()
    h = hourly.horizon
    assert val.ids == [hourly.ids[0], hourly.ids[5]] and val.horizon == h and val.test.shape == (2, h)
    for i, j in enumerate((0, 5)):
        np.testing.assert_array_equal(val.train[i], hourly.train[j][:-h])
        np.testing.assert_array_equal(val.test[i], hourly.train[j][-h:])
    tiny = m4.M4Dataset("Hourly", ["T1"], [np.ones(h)], np.ones((1, h)), h, 24)
    with pytest.raises(ValueError, match="longer than horizon=48; series T1 has 48"):
        tiny.holdout_split()


def test_frequency_table():
    assert m4.FREQUENCIES == {
        "Yearly": (6, 1), "Quarterly": (8, 4), "Monthly": (18, 12),
        "Weekly": (13, 1), "Daily": (14, 1), "Hourly": (48, 24),
    }
    with pytest.raises(ValueError, match="frequency must be one of"):
        m4.load_m4("Minutely")
    with pytest.raises(FileNotFoundError, match="only Hourly ships.*data_dir"):
        m4.load_m4("Daily")


@pytest.mark.parametrize("method", sorted(PUBLISHED_HOURLY))
def test_benchmark_forecasts_reproduce_published_scores(hourly, method):
    ids, forecasts = m4.load_benchmark_forecasts(method)
    score = m4.evaluate(hourly, forecasts, ids=ids)
    smape, mase, owa = PUBLISHED_HOURLY[method]
    assert round(score.smape, 3) == smape
    assert round(score.mase, 3) == mase
    assert abs(score.owa - owa) < 1e-3  # [E] computed OWA from rounded scores (REFERENCE.md)
    assert score.smape_per_series.shape == (414,)


def test_naive2_matches_organisers_file(hourly):
    ids, official = m4.load_benchmark_forecasts("Naive2")
    assert ids == hourly.ids
    ours = m4.naive2(hourly.train, hourly.horizon, hourly.seasonality)
    assert np.max(np.abs(ours - official) / np.abs(official)) < 1e-6
    assert sum(m4.seasonality_test(y, 24) for y in hourly.train) == 413  # REFERENCE.md [V]


@pytest.mark.parametrize("method", ["Naive", "sNaive"])
def test_naive_and_snaive_match_organisers_files(hourly, method):
    _, official = m4.load_benchmark_forecasts(method)
    fn = {"Naive": m4.naive, "sNaive": m4.snaive}[method]
    np.testing.assert_allclose(fn(hourly.train, 48, 24), official, rtol=1e-12)


# ----------------------------------------------------------------------------- metrics by hand


def test_smape_mase_owa_by_hand():
    y = np.array([[100.0, 200.0]])
    f = np.array([[110.0, 180.0]])
    # 200*10/210 and 200*20/380, averaged
    assert m4.smape(y, f)[0] == pytest.approx((2000 / 210 + 4000 / 380) / 2)
    train = [np.array([1.0, 3.0, 2.0, 6.0])]
    # lag 2 scale: mean(|2-1|, |6-3|) = 2; forecast MAE 15 -> MASE 7.5
    assert m4.mase_scale(train, 2)[0] == 2.0
    assert m4.mase(y, f, train, 2)[0] == 7.5
    assert m4.mase(y, f, train, 1)[0] == pytest.approx(15 / ((2 + 1 + 4) / 3))
    assert m4.owa(10.0, 1.0, 20.0, 4.0) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="more than seasonality=4"):
        m4.mase_scale(train, 4)
    with pytest.raises(ValueError, match="non-finite"):
        m4.smape(y, np.array([[np.nan, 1.0]]))


def test_naive_family_single_series_and_short_cases():
    y = np.arange(1.0, 8.0)  # 1..7
    assert m4.naive(y, 3).tolist() == [7.0] * 3
    assert m4.snaive(y, 5, 3).tolist() == [5.0, 6.0, 7.0, 5.0, 6.0]
    assert m4.snaive(np.array([1.0, 2.0]), 3, 4).tolist() == [1.0, 2.0, 1.0]  # R's tail(): whole series
    assert m4.naive2(y, 4, 3).tolist() == [7.0] * 4  # n < 3m: not seasonal -> Naive
    assert m4.naive([np.ones(3), np.arange(5.0)], 2).tolist() == [[1, 1], [4, 4]]  # ragged batch


def test_seasonality_test_and_decomposition():
    t = np.arange(24 * 30)
    pattern = 1.0 + 0.5 * np.sin(2 * np.pi * np.arange(24) / 24)
    y = 100.0 * (1 + 0.001 * t) * pattern[t % 24]
    assert m4.seasonality_test(y, 24)
    s = m4.seasonal_indices(y, 24)
    assert s.shape == y.shape and s[:24].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(s[:24], pattern / pattern.mean(), rtol=2e-3)
    f = m4.naive2(y, 48, 24)
    np.testing.assert_allclose(f, y[-1] / s[-1] * np.tile(s[-24:], 2))
    # R's acf computes floor(10*log10(n)) lags: 250 hourly points give 23 < 24 lags -> not seasonal
    assert not m4.seasonality_test(y[:250], 24) and m4.seasonality_test(y[:260], 24)
    assert not m4.seasonality_test(np.random.default_rng(0).normal(size=500) + 10, 24)
    assert not m4.seasonality_test(y, 1)


# ----------------------------------------------------------------------------- files and errors


def test_checksum_error_names_file_and_sum(tmp_path, monkeypatch):
    for name in ("Hourly-train.csv", "Hourly-test.csv"):
        shutil.copy(m4.SHIPPED_DIR / name, tmp_path / name)
    with open(tmp_path / "Hourly-test.csv", "r+b") as f:  # flip one digit
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(b"7" if b != b"7" else b"8")
    monkeypatch.setattr(m4, "SHIPPED_DIR", tmp_path)
    expected = m4.SHIPPED_SHA256["Hourly-test.csv"]
    with pytest.raises(m4.ChecksumError, match=rf"Hourly-test\.csv.*expected {expected}"):
        m4.load_m4("Hourly")
    # the same edited file loads without a checksum as a user directory
    assert len(m4.load_m4("Hourly", data_dir=tmp_path)) == 414


def _write(path: Path, text: str) -> Path:
    path.write_text(text, newline="")
    return path


WEEKLY_TRAIN = '"V1","V2","V3","V4","V5"\n"W1","1","2","3",""\n"W2","4","5","6","7"\n'
WEEKLY_TEST = '"V1",' + ",".join(f'"V{j}"' for j in range(2, 15)) + "\n"


def _test_row(sid: str, n: int = 13) -> str:
    return f'"{sid}",' + ",".join(f'"{j + 1}"' for j in range(n)) + "\n"


def test_user_frequency_loads(tmp_path):
    _write(tmp_path / "Weekly-train.csv", WEEKLY_TRAIN)
    _write(tmp_path / "Weekly-test.csv", WEEKLY_TEST + _test_row("W1") + _test_row("W2"))
    ds = m4.load_m4("Weekly", data_dir=tmp_path)
    assert (ds.horizon, ds.seasonality, ds.ids) == (13, 1, ["W1", "W2"])
    assert [y.tolist() for y in ds.train] == [[1, 2, 3], [4, 5, 6, 7]]
    np.testing.assert_array_equal(m4.naive2(ds.train, 13, 1), m4.naive(ds.train, 13))  # m=1


@pytest.mark.parametrize(
    "train, test, file, match",
    [
        (WEEKLY_TRAIN.replace('"5"', '"5x"'), None, "Weekly-train.csv", r"line 3, column 3: non-numeric value '5x'"),
        (WEEKLY_TRAIN.replace('"5"', '""'), None, "Weekly-train.csv", r"line 3, column 3: missing value inside"),
        (WEEKLY_TRAIN.replace('"1","2","3"', '"","",""'), None, "Weekly-train.csv", r"line 2: series 'W1' is empty"),
        (WEEKLY_TRAIN.replace('"W2"', '"W1"'), None, "Weekly-train.csv", r"line 3: duplicate series id 'W1'"),
        (None, WEEKLY_TEST + _test_row("W1") + _test_row("W2", 12), "Weekly-test.csv", r"line 3: series 'W2' has 12 test values, expected the Weekly horizon 13"),
        (None, WEEKLY_TEST + _test_row("W1") + _test_row("W9"), "Weekly-test.csv", r"line 3: series id 'W9' differs from 'W2'"),
        (None, WEEKLY_TEST + _test_row("W1"), "Weekly-test.csv", r"1 series, but .* has 2 .*truncated"),
        (None, WEEKLY_TEST + _test_row("W1") + _test_row("W2").replace('"7"', '"inf"'), "Weekly-test.csv", r"line 3, column 8: non-finite"),
        (None, "", "Weekly-test.csv", r"line 1: file is empty"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, train, test, file, match):
    _write(tmp_path / "Weekly-train.csv", train if train is not None else WEEKLY_TRAIN)
    _write(tmp_path / "Weekly-test.csv", test if test is not None else WEEKLY_TEST + _test_row("W1") + _test_row("W2"))
    with pytest.raises(ValueError, match=rf"{file}.*{match}"):
        m4.load_m4("Weekly", data_dir=tmp_path)


def test_forecast_files_roundtrip_na_and_crlf(tmp_path):
    p = _write(tmp_path / "sub.csv", "id,F1,F2,F3\r\nH1,1.5,2,3\r\nY1,4,NA,NA\r\n")
    ids, values = m4.load_forecasts(p)
    assert ids == ["H1", "Y1"] and values[0].tolist() == [1.5, 2, 3]
    assert values[1, 0] == 4 and np.isnan(values[1, 1:]).all()
    with pytest.raises(ValueError, match=r"sub\.csv, line 3, column 3: missing forecast \(NA\) within horizon 2"):
        m4.load_forecasts(p, horizon=2)
    assert m4.load_forecasts(p, horizon=1)[1].tolist() == [[1.5], [4.0]]
    out = tmp_path / "out.csv"
    x = np.array([[0.1, 1 / 3, 1e-300], [2.5, math.nan, 7.0]])
    m4.write_forecasts(out, ["A", "B"], x)
    ids2, y = m4.load_forecasts(out)
    assert ids2 == ["A", "B"]
    np.testing.assert_array_equal(y, x)  # bit-exact, NaN <-> NA
    assert out.read_text().splitlines()[2] == "B,2.5,NA,7.0"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind
    with pytest.raises(ValueError, match="line 2, column 2: non-numeric"):
        m4.load_forecasts(_write(tmp_path / "bad.csv", "id,F1\nH1,abc\n"))
    with pytest.raises(ValueError, match="shape"):
        m4.write_forecasts(out, ["A"], x)


def test_evaluate_checks_ids_and_shapes(hourly):
    sub = hourly.subset(slice(0, 3))
    f = m4.snaive(sub.train, 48, 24)
    # rows given in another order are matched by id
    score = m4.evaluate(sub, f[::-1], ids=sub.ids[::-1])
    assert score.smape == pytest.approx(m4.evaluate(sub, f).smape)
    with pytest.raises(ValueError, match="lack 1 series.*H3"):
        m4.evaluate(sub, f[:2], ids=sub.ids[:2])
    with pytest.raises(ValueError, match=r"shape \(3, 48\)"):
        m4.evaluate(sub, f[:, :10])


@pytest.mark.parametrize("freq", list(m4.FREQUENCIES))
def test_synthetic_files_have_the_real_shortest_lengths_and_load(tmp_path, freq):
    m4.write_synthetic_m4(tmp_path, freq, seed=2)
    ds = m4.load_m4(freq, data_dir=tmp_path)
    short = {"Yearly": 13, "Quarterly": 16, "Monthly": 42, "Weekly": 80, "Daily": 93, "Hourly": 700}[freq]
    assert [len(y) for y in ds.train] == [short, int(1.5 * short), 2 * short]
    assert ds.test.shape == (3, m4.FREQUENCIES[freq][0]) and ds.ids == [f"{freq[0]}{i}" for i in (1, 2, 3)]
    assert all((y > 0).all() for y in ds.train) and (ds.test > 0).all()
    first = (tmp_path / f"{freq}-train.csv").read_text().splitlines()[1]
    assert first.startswith(f'"{freq[0]}1","') and first.endswith(',""')  # M4's quoting and empty padding
    with pytest.raises(ValueError, match="lengths"):
        m4.write_synthetic_m4(tmp_path, freq, lengths=[0])
