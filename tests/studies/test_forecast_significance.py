"""Paired bootstrap over series, the decisive-difference rule and the forecast report's section."""
from pathlib import Path

import numpy as np
import pytest

from jaxseq.studies.forecasting import significance as fs
from jaxseq.studies import forecasting as forecast

COMMITTED = Path(__file__).resolve().parents[2] / "profiles" / "cpu-2core" / "forecast"


def _errors(rng, n, level):
    """Positive, skewed per-series errors [n] (like sMAPE) around `level`."""
    return level * rng.lognormal(0.0, 0.8, n)


def test_clearly_better_is_decisive_with_the_right_sign():
    rng = np.random.default_rng(1)
    b = _errors(rng, 300, 10.0)
    a = b * 0.7 + rng.normal(0, 0.2, 300)  # a lower on (almost) every series
    d = fs.paired_bootstrap(a, b, resamples=2000)
    assert d.decisive and d.sign == -1
    assert d.low <= d.mean <= d.high < 0
    assert d.mean == pytest.approx(float(np.mean(a - b)))
    assert d.share_a_better > 0.9 and d.n == 300 and d.resamples == 2000 and d.confidence == 0.95
    flipped = fs.paired_bootstrap(b, a, resamples=2000)
    assert flipped.decisive and flipped.sign == 1 and flipped.low > 0
    assert flipped.mean == pytest.approx(-d.mean)


def test_same_plus_symmetric_noise_is_not_decisive():
    rng = np.random.default_rng(2)
    b = _errors(rng, 400, 10.0)
    e = rng.normal(0, 3.0, 200)
    a = b + np.concatenate([e, -e])  # mean difference exactly 0
    d = fs.paired_bootstrap(a, b, resamples=2000)
    assert not d.decisive and d.sign == 0
    assert d.low < 0 < d.high and abs(d.mean) < 1e-12
    assert d.share_a_better == pytest.approx(0.5)
    same = fs.paired_bootstrap(b, b, resamples=100)  # identical errors: a zero-width interval at 0
    assert (same.low, same.high, same.share_a_better, same.decisive) == (0.0, 0.0, 0.0, False)


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    a, b = _errors(rng, 50, 5.0), _errors(rng, 50, 5.0)
    assert fs.paired_bootstrap(a, b, seed=7) == fs.paired_bootstrap(list(a), list(b), seed=7)
    other = fs.paired_bootstrap(a, b, seed=8)
    assert (other.low, other.high) != (fs.paired_bootstrap(a, b, seed=7).low, fs.paired_bootstrap(a, b, seed=7).high)
    # Chunked resampling (forced small chunks) draws the same stream as one block.
    old = fs._CHUNK
    try:
        fs._CHUNK = 50 * 3
        chunked = fs.paired_bootstrap(a, b, seed=7)
    finally:
        fs._CHUNK = old
    assert chunked == fs.paired_bootstrap(a, b, seed=7)


@pytest.mark.parametrize(
    "a, b, kw, match",
    [
        (np.ones(5), np.ones(4), {}, "same shape"),
        (np.ones((2, 3)), np.ones((2, 3)), {}, "^a must be 1-D"),
        (np.ones(4), np.ones((4, 1)), {}, "^b must be 1-D"),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), {}, "^a has 1 non-finite"),
        (np.ones(3), np.array([1.0, 2.0, np.inf]), {}, "^b has 1 non-finite"),
        (np.ones(1), np.ones(1), {}, "at least 2 series"),
        (np.ones(3), np.ones(3), {"resamples": 0}, "resamples"),
        (np.ones(3), np.ones(3), {"resamples": 2.5}, "resamples"),
        (np.ones(3), np.ones(3), {"confidence": 1.0}, "confidence"),
        (np.ones(3), np.ones(3), {"confidence": 0}, "confidence"),
    ],
)
def test_input_validation(a, b, kw, match):
    with pytest.raises(ValueError, match=match):
        fs.paired_bootstrap(a, b, **kw)


def _fixture(esrnn_factor: float, n: int = 200):
    """Per-series sMAPE and MASE of the claim's models on the same n series; ES-RNN's errors are
    arima's times `esrnn_factor`."""
    rng = np.random.default_rng(0)
    base_s, base_m = _errors(rng, n, 10.0), _errors(rng, n, 1.0)
    jitter = lambda: rng.uniform(0.97, 1.03, n)  # noqa: E731
    factors = {"arima": 1.0, "ets": 1.6, "theta": 1.8, "lstm": 1.2, "transformer": 1.3, "mingru": 1.4,
               "esrnn": esrnn_factor, "snaive": 1.5}
    smape = {m: base_s * f * jitter() for m, f in factors.items()}
    mase = {m: base_m * f * jitter() for m, f in factors.items()}
    return smape, mase


def test_findings_follow_the_data():
    smape, mase = _fixture(esrnn_factor=0.6)
    found = fs.decisive_findings(smape, mase, resamples=1000)
    assert [(f.role, f.model, f.baseline) for f in found] == [
        ("best neural", "lstm", "arima"), ("best neural", "lstm", "ets"), ("best neural", "lstm", "theta"),
        ("hybrid", "esrnn", "arima"), ("hybrid", "esrnn", "ets"), ("hybrid", "esrnn", "theta")]
    verdicts = {(f.model, f.baseline): f.verdict for f in found}
    assert verdicts == {("lstm", "arima"): "worse", ("lstm", "ets"): "better", ("lstm", "theta"): "better",
                        ("esrnn", "arima"): "better", ("esrnn", "ets"): "better", ("esrnn", "theta"): "better"}
    for f in found:
        assert f.smape.mean == pytest.approx(np.mean(smape[f.model]) - np.mean(smape[f.baseline]))
        assert f.mase.mean == pytest.approx(np.mean(mase[f.model]) - np.mean(mase[f.baseline]))
    better = fs.conclusion(found)
    assert better == ("The best neural model (lstm) is decisively better than ets and theta and decisively worse "
                      "than arima; ES-RNN is decisively better than arima, ets and theta.")

    smape, mase = _fixture(esrnn_factor=2.0)  # the same, but ES-RNN worse than all three
    swapped = fs.decisive_findings(smape, mase, resamples=1000)
    assert {f.verdict for f in swapped if f.model == "esrnn"} == {"worse"}
    worse = fs.conclusion(swapped)
    assert worse != better and worse.endswith("ES-RNN is decisively worse than arima, ets and theta.")


def test_not_decisive_detail_absent_models_and_section():
    smape, mase = _fixture(esrnn_factor=0.6)
    smape["esrnn"], mase["esrnn"] = smape["arima"] * 0.5, mase["arima"] * 1.5  # better in sMAPE, worse in MASE
    mase["lstm"] = mase["arima"][::-1].copy()  # same values, reordered: no decisive MASE difference
    del smape["theta"], mase["theta"]
    del smape["transformer"]  # in one metric only: not considered
    found = fs.decisive_findings(smape, mase, resamples=1000)
    assert [(f.model, f.baseline) for f in found] == [("lstm", "arima"), ("lstm", "ets"), ("esrnn", "arima"),
                                                      ("esrnn", "ets")]
    esrnn_arima = found[2]
    assert not esrnn_arima.decisive and esrnn_arima.detail == "better in sMAPE, worse in MASE"
    assert found[0].verdict == "not decisive" and found[0].detail == "worse in sMAPE only"
    text = fs.conclusion(found)
    assert "not decisively different from arima (better in sMAPE, worse in MASE)" in text
    lines = fs.report_section(found)
    assert lines[0] == fs.RULE and "10,000 resamples" in fs.RULE and "95%" in fs.RULE
    rows = [ln for ln in lines if ln.startswith("| esrnn") or ln.startswith("| lstm")]
    assert len(rows) == 4 and rows[2].endswith("| no (better in sMAPE, worse in MASE) |")
    assert lines[-1] == f"**Conclusion:** {text}"
    assert fs.decisive_findings({"naive2": smape["arima"]}, {"naive2": mase["arima"]}) == []
    assert fs.conclusion([]).startswith("No pair")


def test_compare_models_pairs_and_errors():
    smape, _ = _fixture(esrnn_factor=0.6)
    rows = fs.compare_models(smape, against=["arima", "ets", "absent"], models=["esrnn", "arima"], resamples=200)
    assert [(r.model, r.baseline) for r in rows] == [("esrnn", "arima"), ("esrnn", "ets"), ("arima", "ets")]
    with pytest.raises(ValueError, match="esrnn vs arima: b has 1 non-finite"):
        fs.compare_models({"esrnn": np.ones(3), "arima": np.array([1.0, np.inf, 1.0])}, against=["arima"],
                          models=["esrnn"])


def test_report_has_the_section_and_plot(tmp_path):
    from jaxseq.data.m4 import load_m4, write_forecasts, write_synthetic_m4

    ds = load_m4("Hourly", write_synthetic_m4(tmp_path / "data", "Hourly", lengths=[700] * 12, seed=3))
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    for model, scale in {"arima": 0.2, "ets": 0.3, "lstm": 0.25, "esrnn": 0.05}.items():
        write_forecasts(out / f"Hourly-{model}.csv", ds.ids, ds.test * (1 + scale * rng.uniform(0.5, 1.5, ds.test.shape)))
    report = forecast.write_report(ds, full_size=len(ds), out=out, dataset="m4-hourly", plots=True).read_text()
    section = report.split("## Is any difference decisive?")[1].split("## Published")[0]
    assert report.index("## Measured here") < report.index("## Is any difference decisive?")
    assert fs.RULE in section and "| esrnn − arima |" in section and "| lstm − ets (best neural) |" in section
    assert "theta" not in section.split("**Conclusion:**")[0]  # absent: skipped
    assert "ES-RNN is decisively better than arima and ets." in section
    assert "![Hourly-smape-distribution](plots/Hourly-smape-distribution.png)" in section
    assert (out / "plots" / "Hourly-smape-distribution.png").stat().st_size > 1000
    again = forecast.write_report(ds, full_size=len(ds), out=out, dataset="m4-hourly", plots=False).read_text()
    assert "smape-distribution" not in again and "ES-RNN is decisively better than arima and ets." in again


def test_committed_folder_findings():
    found = forecast.significance_from_folder(COMMITTED)
    pairs = {(f.model, f.baseline): f for f in found}
    es = pairs[("esrnn", "arima")]
    assert es.role == "hybrid" and es.smape.n == 414 and es.mase.n == 414
    assert es.smape.low <= es.smape.mean <= es.smape.high
    assert {b for (m, b) in pairs if m == "esrnn"} == {"arima", "ets", "theta"}
    report = (COMMITTED / "REPORT.md").read_text()
    assert f"**Conclusion:** {fs.conclusion(found)}" in report  # the committed report is current
