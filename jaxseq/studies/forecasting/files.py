"""The forecast files of a results folder: their names, reading them back, JSON-safe settings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["forecast_stem", "read_existing", "jsonable"]


def jsonable(x):
    """`x` as JSON would give it back (anything JSON cannot hold written as its `str`)."""
    return json.loads(json.dumps(x, default=str))


def forecast_stem(freq: str, n_selected: int, n_total: int, model: str) -> str:
    """`<Freq>-<model>`, or `<Freq>-n<N>-<model>` for a subset of N series: the files' name without suffix."""
    return f"{freq}-{model}" if n_selected == n_total else f"{freq}-n{n_selected}-{model}"


def read_existing(csv_path: Path, ds) -> np.ndarray | None:
    """The forecasts in `csv_path` for `ds`'s series, in its order [series, horizon]; None when the file is
    missing, unreadable or lacks one of the series."""
    from jaxseq.data.m4 import load_forecasts

    if not csv_path.is_file():
        return None
    try:
        ids, values = load_forecasts(csv_path, horizon=ds.horizon)
    except ValueError:
        return None
    row = {sid: i for i, sid in enumerate(ids)}
    if any(sid not in row for sid in ds.ids):
        return None
    return values[[row[sid] for sid in ds.ids]]
