"""The study's models, presets and datasets: which M4 frequency, which models, where results and caches go."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["STATISTICAL", "NEURAL", "MODELS", "PRESETS", "default_out", "default_cache", "parse_dataset",
           "parse_models"]

STATISTICAL = ("naive2", "snaive", "ses", "theta", "ets", "arima")
NEURAL = ("lstm", "transformer", "mingru", "esrnn")
MODELS = STATISTICAL + NEURAL

# The study's presets: what `run_preset` runs (the command takes each setting as an option too).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"dataset": "m4-hourly", "models": "all", "series": None},
    # seconds: the two M4 benchmarks on 3 series (no statistical fit, no training)
    "smoke": {"dataset": "m4-hourly", "models": ["naive2", "snaive"], "series": 3},
}


def default_out() -> Path:
    """This machine's folder of the study: profiles/<machine_slug>/forecast/."""
    from jaxseq.studies.base import default_out as _default_out

    return _default_out("forecast")


def default_cache() -> Path:
    """Where the statistical fits are cached per series: an input cache, outside profiles/."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root, "jaxseq", "forecast")


def parse_dataset(name: str) -> str:
    """`m4-hourly` -> `Hourly` (any M4 frequency; only Hourly ships with the repository)."""
    from jaxseq.data.m4 import FREQUENCIES

    parts = str(name).lower().split("-", 1)
    freqs = {f.lower(): f for f in FREQUENCIES}
    if len(parts) != 2 or parts[0] != "m4" or parts[1] not in freqs:
        raise ValueError(f"--dataset must be one of {['m4-' + f for f in freqs]}, got {name!r}")
    return freqs[parts[1]]


def parse_models(requested: list[str]) -> list[str]:
    """`--model` values (names, `all`, comma-separated lists) -> the models, in order, each once."""
    out: list[str] = []
    for m in requested:
        for part in str(m).split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part == "all":
                out.extend(MODELS)
            elif part in MODELS:
                out.append(part)
            else:
                raise ValueError(f"--model must be among {list(MODELS) + ['all']}, got {part!r}")
    if not out:
        raise ValueError("--model: no model given")
    return list(dict.fromkeys(out))
