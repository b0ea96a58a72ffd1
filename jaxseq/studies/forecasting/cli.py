"""`jaxseq forecast`: M4 forecasts of statistical and neural models, scored beside the published M4 numbers.

The command's registration (`add_parser`); the options are `jaxseq.studies.forecasting.options`, the run
`jaxseq.studies.forecasting.run`.
"""
from __future__ import annotations

import argparse
from typing import Any

from jaxseq.studies.forecasting.options import add_options, check_args
from jaxseq.studies.forecasting.run import run_forecast

__all__ = ["add_parser"]


def _cmd(a: argparse.Namespace) -> int:
    check_args(a)
    report = run_forecast(a.dataset, a.model, series=a.series, data_dir=a.data_dir, out=a.out, force=a.force, args=a)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq forecast`."""
    p = subparsers.add_parser("forecast", help="M4 forecasts (statistical, neural, ES-RNN) and REPORT.md",
                              description=__doc__.split("\n\n")[0])
    add_options(p)
    p.set_defaults(func=_cmd)
