"""ES-RNN series preparation: validation, cutting to a common length or left-padding to the longest."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxseq.models.esrnn.config import ESRNNConfig, input_sizes

def _checked_lengths(train_series: Sequence[np.ndarray], *, input_size: int, horizon: int,
                     min_length: int | None = None) -> list[int]:
    """The series' lengths, after the checks `prepare_series` documents; `min_length` (default
    input_size + horizon + 3) is the shortest series accepted."""
    if horizon is None or int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    if len(train_series) == 0:
        raise ValueError("train_series must hold at least one series")
    need = input_size + horizon + 3 if min_length is None else min_length
    lengths = []
    for i, s in enumerate(train_series):
        s = np.asarray(s)
        if s.ndim != 1:
            raise ValueError(f"train_series[{i}] must be 1-D, got shape {s.shape}")
        if len(s) < need:
            raise ValueError(
                f"train_series[{i}] has length {len(s)} < {need}"
                + (" = input_size + horizon + 3 (cutting every series to the shortest needs that many; "
                   "ESRNNConfig.pad_to_longest=True pads short series instead)" if min_length is None else "")
            )
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"train_series[{i}] must be finite and positive (multiplicative model)")
        lengths.append(len(s))
    return lengths


def prepare_series(
    train_series: Sequence[np.ndarray], *, input_size: int, horizon: int, max_len: int
) -> np.ndarray:
    """Validate and cut the series to a rectangle [n, T], T = min(max_len, shortest length).

    Raises ValueError (naming the argument) for an empty list, non-1-D or non-finite series,
    non-positive values (the model is multiplicative and works in logs), or series shorter than
    input_size + horizon + 3 (at least a few training windows, and 3 levels for the penalty).
    """
    lengths = _checked_lengths(train_series, input_size=input_size, horizon=horizon)
    need = input_size + horizon + 3
    t_len = min(max_len, min(lengths))
    if t_len < need:
        raise ValueError(f"max_len={max_len} < input_size + horizon + 3 = {need}")
    return np.stack([np.asarray(s, np.float64)[-t_len:] for s in train_series]).astype(np.float32)


def prepare_series_padded(
    train_series: Sequence[np.ndarray], *, input_size: int, horizon: int, max_len: int, period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like `prepare_series`, but T = min(max_len, longest length); returns (y [n, T], start [n]).

    Series shorter than T are left-padded: the padding repeats the series' first `period` values
    backwards in phase, so y[i, t] for t < start[i] equals y[i, start + (t - start) mod period].
    `start[i]` is the first real observation.

    Series of any length >= 1 are accepted, so no real series is ever dropped: T is at least
    input_size + horizon + 3 (when max_len allows), and a series shorter than that is padded like
    any other. Training positions whose input window reaches into the padding are masked out of the
    loss (`start`), so a series too short for one full input window + horizon contributes no
    forecast-loss term; it still gets its own smoothing, and its forecast reads its padded last
    window (for M4 this never happens with `FREQUENCY_CONFIGS`: the shortest series of every
    frequency has room for at least one window).
    """
    need = input_size + horizon + 3
    lengths = _checked_lengths(train_series, input_size=input_size, horizon=horizon, min_length=1)
    if max_len < need:
        raise ValueError(f"max_len={max_len} < input_size + horizon + 3 = {need}")
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    t_len = min(max_len, max(max(lengths), need))
    y = np.empty((len(train_series), t_len), np.float32)
    start = np.zeros(len(train_series), np.int32)
    for i, s in enumerate(train_series):
        s = np.asarray(s, np.float64)[-t_len:]
        o = t_len - len(s)
        start[i] = o
        y[i, o:] = s
        if o:
            m = min(period, len(s))
            y[i, :o] = s[(np.arange(-o, 0)) % m]
    return y, start


def prepare_training_series(train_series, config: ESRNNConfig, horizon: int, periods: tuple[int, ...]):
    """(y [n, T], start [n]) as the model is trained on: cut to the shortest or padded to the longest."""
    input_size = max(input_sizes(config))  # the longest window sets the length checks
    if config.pad_to_longest:
        return prepare_series_padded(train_series, input_size=input_size, horizon=horizon,
                                     max_len=config.max_len, period=max(periods) if periods else 1)
    y = prepare_series(train_series, input_size=input_size, horizon=horizon, max_len=config.max_len)
    return y, np.zeros(len(y), np.int32)
