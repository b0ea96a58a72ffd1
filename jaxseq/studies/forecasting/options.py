"""The options of `jaxseq forecast`: the parser's arguments, their checks and their defaults."""
from __future__ import annotations

import argparse

from jaxseq.studies.forecasting.presets import MODELS

__all__ = ["add_options", "check_args", "build_parser_namespace"]


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the command's options to `p`."""
    p.add_argument("--dataset", default="m4-hourly", help="m4-<frequency> (default m4-hourly)")
    p.add_argument("--model", nargs="+", default=["all"], metavar="MODEL",
                   help=f"one or more of {', '.join(MODELS)}, or all (comma-separated also works)")
    p.add_argument("--series", type=int, help="deterministic random subset of N series (default all)")
    p.add_argument("--data-dir", help="folder with <Freq>-train.csv / -test.csv (default: the shipped data/m4)")
    p.add_argument("--out", help="output folder (default: this machine's profiles/<machine>/forecast/)")
    p.add_argument("--cache-dir", help="per-series cache of the statistical fits (default "
                   "$XDG_CACHE_HOME/jaxseq/forecast, else ~/.cache/jaxseq/forecast)")
    p.add_argument("--force", action="store_true", help="recompute models whose forecast CSV exists")
    p.add_argument("--jobs", type=int, help="worker processes for the statistical fits (default: all cores)")
    p.add_argument("--engine", choices=("local", "dask", "ray"), default="local",
                   help="where ses/theta/ets/arima fit: a local process pool (default), a Dask cluster or Ray "
                        "(forecasts are the same; see --engine-address)")
    p.add_argument("--engine-address", metavar="ADDR",
                   help="scheduler of a running cluster, e.g. tcp://host:8786 (dask) or host:6379 (ray); "
                        "default: start a local one with --jobs workers")
    p.add_argument("--seed", type=int, default=0, help="seed of the neural models")
    p.add_argument("--epochs", type=int, help="ES-RNN epochs (default: ESRNNConfig)")
    p.add_argument("--ensemble", type=int, help="ES-RNN seeds in the ensemble (default: ESRNNConfig)")
    p.add_argument("--steps", type=int,
                   help="planned training steps of lstm/transformer/mingru (default 20000, cut by --neural-budget)")
    p.add_argument("--hidden-size", type=int, help="hidden size of the neural models")
    p.add_argument("--esrnn-budget", type=float, default=None,
                   help="opt-in ES-RNN wall-clock cap in s (default: none, the configured epochs run, so the "
                        "seed alone fixes the forecasts, however fast the machine; the report says if the cap cut "
                        "training)")
    p.add_argument("--esrnn-config", metavar="FILE.json",
                   help="JSON object of ESRNNConfig fields overriding the frequency's ES-RNN configuration")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one ESRNNConfig field (value read as JSON: --set level_penalty=50 "
                        "--set 'dilations=[[1,2],[4,8]]'); repeatable, applied after --esrnn-config")
    p.add_argument("--neural-budget", type=float, default=150.0,
                   help="wall-clock budget per lstm/transformer/mingru in s (default 150)")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_args(a: argparse.Namespace) -> None:
    """Raise ValueError for option values out of range (counts < 1, budgets <= 0, an address without engine)."""
    if getattr(a, "engine_address", None) and getattr(a, "engine", "local") == "local":
        raise ValueError("--engine-address needs --engine dask or ray")
    for name in ("series", "jobs", "epochs", "ensemble", "steps", "hidden_size"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name in ("esrnn_budget", "neural_budget"):
        v = getattr(a, name)
        if v is not None and not v > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0 seconds, got {v}")


def build_parser_namespace(**kw) -> argparse.Namespace:
    """Defaults of the command's options (for `run_forecast` called from Python)."""
    p = argparse.ArgumentParser()
    add_options(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns
