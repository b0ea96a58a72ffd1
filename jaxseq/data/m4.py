"""M4 competition data, benchmarks and metrics, exactly as the organisers defined them.

Sources and definitions: ``data/m4/REFERENCE.md`` (Makridakis, Spiliotis & Assimakopoulos 2020;
the organisers' ``Benchmarks and Evaluation.R``). Summary:

* ``load_m4(frequency)`` reads the competition CSVs (``<Freq>-train.csv``, ``<Freq>-test.csv``).
  Hourly ships with the repository (``data/m4/``) and is verified by sha256 before use; other
  frequencies load from a user ``data_dir`` and are validated line by line instead.
* ``smape`` (percent), ``mase`` (seasonal-naive scale at lag m on the training part), and ``owa``
  (relative to Naive2, from the *aggregated* sMAPE and MASE of the whole set); ``evaluate`` does all
  three for a data set.
* ``naive``, ``snaive`` and ``naive2`` (the R code's 90% autocorrelation seasonality test and
  classical multiplicative decomposition) reproduce the organisers' benchmark forecasts.
* ``load_forecasts`` / ``write_forecasts`` handle the M4 submission format (``id,F1..Fh``, ``NA``
  padding, CRLF or LF).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FREQUENCIES",
    "SHIPPED_DIR",
    "SHIPPED_SHA256",
    "ChecksumError",
    "M4Dataset",
    "M4Score",
    "load_m4",
    "load_forecasts",
    "write_forecasts",
    "load_benchmark_forecasts",
    "SERIES_COUNT",
    "SHORTEST_TRAIN",
    "write_synthetic_m4",
    "verify_sha256",
    "smape",
    "mase",
    "mase_scale",
    "owa",
    "evaluate",
    "naive",
    "snaive",
    "naive2",
    "seasonality_test",
    "seasonal_indices",
]

# (horizon h, seasonal period m = M4-info's `Frequency`, used as MASE lag and by the benchmarks).
FREQUENCIES: dict[str, tuple[int, int]] = {
    "Yearly": (6, 1),
    "Quarterly": (8, 4),
    "Monthly": (18, 12),
    "Weekly": (13, 1),
    "Daily": (14, 1),
    "Hourly": (48, 24),
}

# Series per frequency in the competition (REFERENCE.md, "M4 constants per frequency").
SERIES_COUNT: dict[str, int] = {
    "Yearly": 23000, "Quarterly": 24000, "Monthly": 48000, "Weekly": 359, "Daily": 4227, "Hourly": 414,
}

# The shortest training series of each frequency in the competition files (Yearly Y...: 13 values,
# ..., Hourly: 700): the lengths every model must handle. Synthetic test files use them.
SHORTEST_TRAIN: dict[str, int] = {
    "Yearly": 13, "Quarterly": 16, "Monthly": 42, "Weekly": 80, "Daily": 93, "Hourly": 700,
}

# The repository's data folder (data/m4 next to the jaxseq package); JAXSEQ_M4_DIR overrides it
# for installs where the package does not sit in a checkout.
SHIPPED_DIR = Path(os.environ.get("JAXSEQ_M4_DIR", Path(__file__).resolve().parents[2] / "data" / "m4"))

# sha256 of the shipped files; their provenance and checks are recorded in data/m4/README.md.
SHIPPED_SHA256: dict[str, str] = {
    "Hourly-train.csv": "ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f",
    "Hourly-test.csv": "71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42",
    "benchmark_forecasts/Hourly-Naive.csv": "458cbc56a61a60d77498bd7588fdc157aa9793950ea6009acdab35021069508e",
    "benchmark_forecasts/Hourly-Naive2.csv": "6f3992db1dccfcccc44ba5ab4a5bf306a0823cc527e758fc2aa7f2ab5d58d6b8",
    "benchmark_forecasts/Hourly-SES.csv": "0141befd6ff43f861f8b21686622a389fa652c8f5ff325c94c741d8c4d26c4c5",
    "benchmark_forecasts/Hourly-sNaive.csv": "cf28d37d4683278417d43fab525fca606c2ca2c14e7b53222a2737c7f434c777",
    "m4_point_forecast_accuracy_by_frequency.csv": "9523900a771dcaf9a5c3b306f51475432f05d80d6bcce887f5587c9b8b1547bd",
}

_NA = {"", "NA"}


class ChecksumError(ValueError):
    """A shipped data file does not have the expected sha256 (edited, truncated or re-encoded)."""


@dataclass(frozen=True)
class M4Dataset:
    """One M4 frequency: ``train[i]`` (variable length) is followed by ``test[i]`` (``horizon`` values)."""

    frequency: str
    ids: list[str]
    train: list[np.ndarray]
    test: np.ndarray  # [n, horizon] float64
    horizon: int
    seasonality: int

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | slice) -> "M4Dataset":
        """The series at ``index`` (positions), keeping their order; for quick runs on a few series."""
        idx = list(range(len(self.ids)))[index] if isinstance(index, slice) else [int(i) for i in index]
        return M4Dataset(
            self.frequency,
            [self.ids[i] for i in idx],
            [self.train[i] for i in idx],
            self.test[idx],
            self.horizon,
            self.seasonality,
        )

    def holdout_split(self) -> "M4Dataset":
        """A validation split of the training data: each training series without its last
        ``horizon`` values, which become the test values (the real test set is not touched)."""
        h = self.horizon
        short = [i for i, s in enumerate(self.train) if len(s) <= h]
        if short:
            raise ValueError(f"holdout_split needs training series longer than horizon={h}; "
                             f"series {self.ids[short[0]]} has {len(self.train[short[0]])} values")
        return M4Dataset(self.frequency, list(self.ids), [s[:-h] for s in self.train],
                         np.stack([s[-h:] for s in self.train]).astype(np.float64), h, self.seasonality)


@dataclass(frozen=True)
class M4Score:
    """Aggregated scores of one forecast set: means over series, OWA from those means."""

    smape: float
    mase: float
    owa: float
    smape_per_series: np.ndarray
    mase_per_series: np.ndarray


# ----------------------------------------------------------------------------- files


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise ``ChecksumError`` naming the file and both sums unless ``sha256(path) == expected``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"M4 data file not found: {path}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 is {actual}, expected {expected}. The file was changed or truncated; "
            f"restore it from the repository (see data/m4/README.md)."
        )


def _frequency(frequency: str) -> str:
    for name in FREQUENCIES:
        if name.lower() == str(frequency).lower():
            return name
    raise ValueError(f"frequency must be one of {list(FREQUENCIES)}, got {frequency!r}")


def _shipped(relative: str) -> Path:
    path = SHIPPED_DIR / relative
    verify_sha256(path, SHIPPED_SHA256[relative])
    return path


def _parse_value(text: str, path: Path, line: int, column: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}, column {column}: non-numeric value {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}, line {line}, column {column}: non-finite value {text!r}")
    return value


def _read_rows(path: Path, *, header_prefix: str) -> list[tuple[int, str, list[str]]]:
    """Rows of an M4 CSV as ``(line number, id, raw fields)``, with the header checked and dropped.

    ``csv`` handles the quoted fields of the competition files and CRLF line ends alike.
    """
    if not path.is_file():
        raise FileNotFoundError(f"M4 data file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}, line 1: file is empty (expected a header starting with {header_prefix!r})")
        if header[0].strip() != header_prefix:
            raise ValueError(f"{path}, line 1: header must start with {header_prefix!r}, got {header[0]!r}")
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not x.strip() for x in fields):
                continue  # blank line (e.g. a trailing newline)
            sid = fields[0].strip()
            if not sid:
                raise ValueError(f"{path}, line {line}: empty series id")
            rows.append((line, sid, fields[1:]))
    if not rows:
        raise ValueError(f"{path}: no series after the header")
    return rows


def _series_values(path: Path, line: int, sid: str, fields: list[str]) -> np.ndarray:
    """Values of one right-padded row; padding (empty or NA) may only trail the values."""
    n = len(fields)
    while n and fields[n - 1].strip() in _NA:
        n -= 1
    if n == 0:
        raise ValueError(f"{path}, line {line}: series {sid!r} is empty")
    values = np.empty(n)
    for j in range(n):
        text = fields[j].strip()
        if text in _NA:
            raise ValueError(f"{path}, line {line}, column {j + 2}: missing value inside series {sid!r}")
        values[j] = _parse_value(text, path, line, j + 2)
    return values


def _load_pair(train_path: Path, test_path: Path, frequency: str) -> M4Dataset:
    horizon, m = FREQUENCIES[frequency]
    train_rows = _read_rows(train_path, header_prefix="V1")
    test_rows = _read_rows(test_path, header_prefix="V1")
    ids, train = [], []
    seen: dict[str, int] = {}
    for line, sid, fields in train_rows:
        if sid in seen:
            raise ValueError(f"{train_path}, line {line}: duplicate series id {sid!r} (first on line {seen[sid]})")
        seen[sid] = line
        ids.append(sid)
        train.append(_series_values(train_path, line, sid, fields))
    test = np.empty((len(test_rows), horizon))
    for i, (line, sid, fields) in enumerate(test_rows):
        if i >= len(ids):
            raise ValueError(
                f"{test_path}, line {line}: series {sid!r} has no training part; "
                f"{train_path} has only {len(ids)} series"
            )
        if sid != ids[i]:
            raise ValueError(
                f"{test_path}, line {line}: series id {sid!r} differs from {ids[i]!r} at the same position "
                f"in {train_path} (line {train_rows[i][0]}); train and test must list the same ids in the same order"
            )
        values = _series_values(test_path, line, sid, fields)
        if len(values) != horizon:
            raise ValueError(
                f"{test_path}, line {line}: series {sid!r} has {len(values)} test values, expected the "
                f"{frequency} horizon {horizon}"
            )
        test[i] = values
    if len(test_rows) != len(ids):
        raise ValueError(
            f"{test_path}: {len(test_rows)} series, but {train_path} has {len(ids)} "
            f"(first missing: {ids[len(test_rows)]!r}); is the file truncated?"
        )
    return M4Dataset(frequency, ids, train, test, horizon, m)


def load_m4(frequency: str = "Hourly", data_dir: str | os.PathLike | None = None) -> M4Dataset:
    """Load one M4 frequency from the competition CSVs ``<Freq>-train.csv`` and ``<Freq>-test.csv``.

    ``data_dir=None`` uses the files shipped in ``data/m4/`` (Hourly only), verified by sha256.
    A user ``data_dir`` (e.g. the ``Dataset/Train`` and ``Dataset/Test`` files of
    ``Mcompetitions/M4-methods`` copied into one folder) is not checksummed, but every row is
    validated; malformed files raise ``ValueError`` naming the file and line.
    """
    freq = _frequency(frequency)
    names = (f"{freq}-train.csv", f"{freq}-test.csv")
    if data_dir is None:
        if names[0] not in SHIPPED_SHA256:
            raise FileNotFoundError(
                f"only Hourly ships with jaxseq; for {freq} pass data_dir=... holding {names[0]} and {names[1]} "
                f"(from github.com/Mcompetitions/M4-methods, Dataset/Train and Dataset/Test)"
            )
        train_path, test_path = _shipped(names[0]), _shipped(names[1])
    else:
        train_path, test_path = Path(data_dir) / names[0], Path(data_dir) / names[1]
    return _load_pair(train_path, test_path, freq)


def load_forecasts(path: str | os.PathLike, *, horizon: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read an M4-format forecast CSV: header ``id,F1..Fw``, one row per series, ``NA`` padding.

    Returns ``(ids, values)`` with ``values`` float64 ``[n, w]``, ``NaN`` where the file has ``NA``.
    With ``horizon``, only the first ``horizon`` columns are kept and each must be present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"forecast file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0].strip() != "id":
            raise ValueError(f"{path}, line 1: header must be 'id,F1,...', got {header!r}")
        width = len(header) - 1
        if horizon is not None:
            if horizon > width:
                raise ValueError(f"{path}, line 1: {width} forecast columns, fewer than horizon={horizon}")
            width = horizon
        ids, rows = [], []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) - 1 < width:
                raise ValueError(f"{path}, line {line}: {len(fields) - 1} forecast values, expected {width}")
            row = np.full(width, np.nan)
            for j in range(width):
                text = fields[j + 1].strip()
                if text in _NA:
                    if horizon is not None:
                        raise ValueError(f"{path}, line {line}, column {j + 2}: missing forecast (NA) within horizon {horizon}")
                    continue
                row[j] = _parse_value(text, path, line, j + 2)
            ids.append(fields[0].strip())
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no forecasts after the header")
    return ids, np.stack(rows)


def write_forecasts(path: str | os.PathLike, ids: Sequence[str], forecasts: np.ndarray | Sequence) -> None:
    """Write forecasts in the M4 submission format (``id,F1..Fh``; ``NaN`` written as ``NA``).

    Values are written with ``repr`` (shortest round-trip form), so ``load_forecasts`` gives back
    the same floats. The file is written to a temporary name and renamed, so it is never partial.
    """
    values = np.asarray(forecasts, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(ids):
        raise ValueError(f"forecasts must have shape [len(ids)={len(ids)}, horizon], got {values.shape}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(",".join(["id"] + [f"F{j + 1}" for j in range(values.shape[1])]) + "\n")
            for sid, row in zip(ids, values):
                f.write(",".join([str(sid)] + ["NA" if math.isnan(v) else repr(float(v)) for v in row]) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_benchmark_forecasts(method: str, frequency: str = "Hourly") -> tuple[list[str], np.ndarray]:
    """The organisers' shipped forecasts of a benchmark (``Naive``, ``sNaive``, ``Naive2``, ``SES``)."""
    freq = _frequency(frequency)
    rel = f"benchmark_forecasts/{freq}-{method}.csv"
    if rel not in SHIPPED_SHA256:
        shipped = sorted(k.split("-", 1)[1][:-4] for k in SHIPPED_SHA256 if k.startswith("benchmark_forecasts/"))
        raise ValueError(f"no shipped forecasts for {method!r} at {freq}; shipped: {shipped}")
    return load_forecasts(_shipped(rel), horizon=FREQUENCIES[freq][0])


# ----------------------------------------------------------------------------- metrics


def _as_2d(name: str, x: np.ndarray | Sequence) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be [horizon] or [series, horizon], got shape {a.shape}")
    return a


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-series sMAPE in percent: ``mean_t 200 |Y - F| / (|Y| + |F|)`` ([R] ``smape_cal``).

    Inputs ``[series, horizon]`` (or ``[horizon]``); returns ``[series]``. A zero denominator gives
    NaN, as in the organisers' code (M4 values are all positive, so it cannot happen there).
    """
    y, f = _as_2d("y_true", y_true), _as_2d("y_pred", y_pred)
    if y.shape != f.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y.shape} and {f.shape}")
    if not np.isfinite(f).all():
        bad = int(np.flatnonzero(~np.isfinite(f).all(axis=1))[0])
        raise ValueError(f"y_pred has non-finite values (first in series {bad})")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f)), axis=1)


def mase_scale(train: Sequence[np.ndarray], seasonality: int) -> np.ndarray:
    """In-sample MAE of the seasonal-naive forecast at lag m: ``mean_{t>m} |y_t - y_{t-m}|`` per series."""
    m = int(seasonality)
    if m < 1:
        raise ValueError(f"seasonality must be >= 1, got {seasonality}")
    scales = np.empty(len(train))
    for i, y in enumerate(train):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1 or len(y) <= m:
            raise ValueError(f"train[{i}] needs more than seasonality={m} values for the MASE scale, got {len(y)}")
        scales[i] = np.mean(np.abs(y[m:] - y[:-m]))
    return scales


def mase(y_true: np.ndarray, y_pred: np.ndarray, train: Sequence[np.ndarray], seasonality: int) -> np.ndarray:
    """Per-series MASE ([R] ``mase_cal``): forecast MAE over the seasonal-naive in-sample scale.

    A series whose training part is constant at lag m has scale 0 and MASE ``inf``, as in R.
    """
    y, f = _as_2d("y_true", y_true), _as_2d("y_pred", y_pred)
    if y.shape != f.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y.shape} and {f.shape}")
    if isinstance(train, np.ndarray) and train.ndim == 1:
        train = [train]
    if len(train) != y.shape[0]:
        raise ValueError(f"train has {len(train)} series, y_true has {y.shape[0]}")
    scale = mase_scale(train, seasonality)
    with np.errstate(divide="ignore"):
        return np.mean(np.abs(y - f), axis=1) / scale


def owa(smape_value: float, mase_value: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall Weighted Average: ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2``.

    All four are *aggregated* scores of the same set of series (not per-series values).
    """
    return 0.5 * (smape_value / smape_naive2 + mase_value / mase_naive2)


def evaluate(
    dataset: M4Dataset,
    forecasts: np.ndarray,
    *,
    ids: Sequence[str] | None = None,
    naive2_forecasts: np.ndarray | None = None,
) -> M4Score:
    """sMAPE, MASE (means over series) and OWA of ``forecasts`` [n, horizon] on ``dataset``.

    ``ids``: the series ids of the rows of ``forecasts`` (e.g. from ``load_forecasts``); rows are
    matched to the data set by id, and every data-set series must be present. Without ``ids`` the
    rows must be in data-set order. Naive2 for OWA is computed with ``naive2`` unless given.
    """
    f = np.asarray(forecasts, dtype=np.float64)
    if ids is not None:
        if len(ids) != f.shape[0]:
            raise ValueError(f"ids has {len(ids)} entries, forecasts has {f.shape[0]} rows")
        row = {sid: i for i, sid in enumerate(ids)}
        missing = [sid for sid in dataset.ids if sid not in row]
        if missing:
            raise ValueError(f"forecasts lack {len(missing)} series of the data set, e.g. {missing[:3]}")
        f = f[[row[sid] for sid in dataset.ids]]
    if f.shape != dataset.test.shape:
        raise ValueError(f"forecasts must have shape {dataset.test.shape} [series, horizon], got {f.shape}")
    s = smape(dataset.test, f)
    m = mase(dataset.test, f, dataset.train, dataset.seasonality)
    if naive2_forecasts is None:
        naive2_forecasts = naive2(dataset.train, dataset.horizon, dataset.seasonality)
    s2 = smape(dataset.test, naive2_forecasts).mean()
    m2 = mase(dataset.test, naive2_forecasts, dataset.train, dataset.seasonality).mean()
    return M4Score(float(s.mean()), float(m.mean()), owa(s.mean(), m.mean(), s2, m2), s, m)


# ----------------------------------------------------------------------------- benchmarks


def _batched(fn):
    """Let a per-series forecaster take one series (-> [h]) or a sequence of series (-> [n, h])."""

    def wrapper(train, horizon: int, seasonality: int = 1):
        horizon = int(horizon)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if seasonality < 1:
            raise ValueError(f"seasonality must be >= 1, got {seasonality}")
        if not isinstance(train, (list, tuple)):
            train = np.asarray(train, dtype=np.float64)
        # One series is a 1-D array or a sequence of numbers; anything else is a batch of series
        # (a list of arrays of different lengths, or a 2-D array of equal-length ones).
        single = train.ndim == 1 if isinstance(train, np.ndarray) else bool(len(train)) and np.ndim(train[0]) == 0
        if single:
            return fn(_series(train, 0), horizon, int(seasonality))
        return np.stack([fn(_series(y, i), horizon, int(seasonality)) for i, y in enumerate(train)])

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def _series(y, i: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"series {i} must be a non-empty 1-D array, got shape {y.shape}")
    return y


@_batched
def naive(y: np.ndarray, horizon: int, seasonality: int = 1) -> np.ndarray:
    """Naive (Naive1): the last observation repeated ``horizon`` times."""
    return np.full(horizon, y[-1])


@_batched
def snaive(y: np.ndarray, horizon: int, seasonality: int = 1) -> np.ndarray:
    """Seasonal naive ([R] ``naive_seasonal``): the last ``m`` observations repeated.

    ``F_{n+k} = y_{n-m+1+((k-1) mod m)}``; equals Naive for m = 1. A series shorter than m repeats
    all of itself, as R's ``tail(input, m)`` does.
    """
    return np.resize(y[-seasonality:], horizon)


def seasonality_test(y: np.ndarray, seasonality: int) -> bool:
    """The organisers' 90% seasonality test ([R] ``SeasonalityTest``).

    Seasonal iff ``|r_m| > 1.645 * sqrt((1 + 2 * sum_{k<m} r_k^2) / n)``, with R's ``acf``
    (mean removed, lag-0 normalised). Not seasonal if m <= 1 or n < 3m. R's ``acf`` computes only
    ``floor(10 * log10(n))`` lags by default, so ``r_m`` is NA — hence not seasonal — when m exceeds
    that (e.g. Hourly series shorter than 252); kept for fidelity.
    """
    y = np.asarray(y, dtype=np.float64)
    n, m = len(y), int(seasonality)
    if m <= 1 or n < 3 * m:
        return False
    if m > min(math.floor(10 * math.log10(n)), n - 1):
        return False
    x = y - y.mean()
    denom = float(np.dot(x, x))
    if denom == 0.0:
        return False  # constant series: R's acf is NaN -> the test's NA counts as not seasonal
    r = np.array([np.dot(x[: n - k], x[k:]) / denom for k in range(1, m + 1)])
    limit = 1.645 * math.sqrt((1.0 + 2.0 * float(np.sum(r[: m - 1] ** 2))) / n)
    return bool(abs(r[m - 1]) > limit)


def seasonal_indices(y: np.ndarray, seasonality: int) -> np.ndarray:
    """Classical multiplicative decomposition's seasonal component (R ``decompose(type="multiplicative")``).

    Trend: centred moving average of order m (the 2xm MA with weights [1/2, 1, ..., 1, 1/2]/m for
    even m). Index of season position i (counted from the first observation) = mean of the defined
    ratios ``y_t / trend_t`` at that position, then normalised to mean 1. Returns ``s_t`` for every
    observation, shape ``[n]``.
    """
    y = np.asarray(y, dtype=np.float64)
    n, m = len(y), int(seasonality)
    if m <= 1 or n < 2 * m:
        raise ValueError(f"decomposition needs seasonality > 1 and at least 2 periods (n >= {2 * m}), got n={n}, m={m}")
    w = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        w[0] = w[-1] = 0.5 / m
    half = len(w) // 2
    trend = np.full(n, np.nan)
    trend[half : n - half] = np.convolve(y, w, mode="valid")
    ratio = y / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    figure /= figure.mean()
    return np.resize(figure, n)


@_batched
def naive2(y: np.ndarray, horizon: int, seasonality: int = 1) -> np.ndarray:
    """Naive2 ([R] ``Benchmarks``): Naive on the seasonally adjusted series, re-seasonalised.

    If ``seasonality_test`` finds the series seasonal, ``F_{n+k} = (y_n / s_n) * SIout_k`` with
    ``s`` from ``seasonal_indices`` and ``SIout`` its last m values repeated; otherwise Naive.
    """
    if not seasonality_test(y, seasonality):
        return np.full(horizon, y[-1])
    s = seasonal_indices(y, seasonality)
    return (y[-1] / s[-1]) * np.resize(s[-seasonality:], horizon)


# ----------------------------------------------------------------------------- synthetic files

# The cycle of the synthetic series (a visible season where the frequency has one in practice).
_SYNTHETIC_PERIOD = {"Yearly": 1, "Quarterly": 4, "Monthly": 12, "Weekly": 52, "Daily": 7, "Hourly": 24}


def write_synthetic_m4(
    directory: str | os.PathLike,
    frequency: str,
    *,
    lengths: Sequence[int] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``<Freq>-train.csv`` and ``<Freq>-test.csv`` of synthetic positive series in the exact M4
    file format (quoted values, ``V1..`` header, shorter rows padded with empty fields) into
    ``directory`` and return it; ``load_m4(frequency, directory)`` reads them.

    ``lengths`` are the training lengths (default: the frequency's real shortest, ``SHORTEST_TRAIN``,
    then 1.5x and 2x that). Series are level x trend x season x noise, ids ``<F>1``, ``<F>2``, ...
    (F = the frequency's initial, as in M4); the test part continues each series for the horizon.
    """
    freq = _frequency(frequency)
    horizon, _ = FREQUENCIES[freq]
    shortest = SHORTEST_TRAIN[freq]
    lengths = [shortest, int(1.5 * shortest), 2 * shortest] if lengths is None else [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be positive training lengths, got {lengths}")
    rng = np.random.default_rng(seed)
    m = _SYNTHETIC_PERIOD[freq]
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    width = max(lengths)
    train_rows = ['"V1",' + ",".join(f'"V{j}"' for j in range(2, width + 2))]
    test_rows = ['"V1",' + ",".join(f'"V{j}"' for j in range(2, horizon + 2))]
    for i, n in enumerate(lengths):
        t = np.arange(n + horizon)
        # A drift of -40% to +150% over the whole series, whatever its length: always positive.
        level = 100.0 * (1 + i) * np.exp(rng.uniform(-0.5, 0.9) * t / len(t))
        season = 1 + (0.2 * np.sin(2 * np.pi * t / m + rng.uniform(0, 2 * np.pi)) if m > 1 else 0.0)
        y = level * season * np.exp(rng.normal(0, 0.02, len(t)))
        sid = f"{freq[0]}{i + 1}"
        vals = [f'"{v:.4f}"' for v in y[:n]] + ['""'] * (width - n)
        train_rows.append(f'"{sid}",' + ",".join(vals))
        test_rows.append(f'"{sid}",' + ",".join(f'"{v:.4f}"' for v in y[n:]))
    (out / f"{freq}-train.csv").write_text("\n".join(train_rows) + "\n")
    (out / f"{freq}-test.csv").write_text("\n".join(test_rows) + "\n")
    return out
