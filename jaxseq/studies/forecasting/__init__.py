"""`jaxseq forecast`: M4 forecasts of statistical and neural models, scored beside the published M4 numbers.

    jaxseq forecast --dataset m4-hourly --model all [--series N] [--data-dir D] [--out DIR]

OUT defaults to this machine's `profiles/<machine_slug>/forecast/`.

For each model, writes `OUT/<Freq>[-nN]-<model>.csv` (M4 submission format, `jaxseq.data.m4.
write_forecasts`) and `OUT/<Freq>[-nN]-<model>.json` (fit time, settings), then `OUT/REPORT.md` (sMAPE,
MASE, OWA of every model whose forecasts are present, beside the published M4 numbers, with time
per model and the settings used, and `OUT/NOTES.md` if present) and PNG plots of a few series
(`OUT/plots/`).

* A model whose forecast CSV is already there is not recomputed (unless `--force`): later runs,
  and `--model all`, reuse it.
* ARIMA/ETS/SES/Theta fit one series at a time in `--jobs` worker processes and cache each
  series' forecast under `--cache-dir` (default `~/.cache/jaxseq/forecast`, or
  `$XDG_CACHE_HOME/jaxseq/forecast`; an input cache, never under profiles/) as soon as it is done
  (`jaxseq.models.statistical`), so a killed run loses nothing and `--force` does not refit them
  (delete the cache for that).
* `--engine dask|ray` runs those fits on a cluster instead (`--engine-address tcp://host:8786`, or a
  local cluster of `--jobs` workers); the forecasts are the same and the cache is written here.
* Every M4 frequency runs (`--data-dir` with `<Freq>-train.csv`/`-test.csv`): ES-RNN takes the
  frequency's configuration (`jaxseq.models.esrnn.FREQUENCY_CONFIGS`, after Smyl), changed with
  `--esrnn-config FILE.json` and `--set key=value`; it trains its configured epochs unless
  `--esrnn-budget S` caps it (the report then says so). The global models take
  `jaxseq.models.forecasters.FREQUENCY_INPUT_SIZES`; short series are padded, never dropped.
* `--series N` takes a deterministic random subset of N series (the same for every model); its
  files carry `-nN` in their names, and its OWA uses Naive2 on the same subset.

Models: `naive2`, `snaive` (the M4 benchmarks, `jaxseq.data.m4`); `ses`, `theta` (statsforecast SES
and Theta on the series deseasonalised as the M4 organisers did: classical multiplicative
decomposition when their 90% seasonality test says so, re-seasonalised with the last period's
indices); `ets` (AutoETS, season m), `arima` (AutoARIMA, season m, `ARIMA_PRACTICAL`: the CSS
approximation during the order search); `lstm`, `transformer`, `mingru` (global neural forecasters,
`jaxseq.models.forecasters`); `esrnn` (Smyl's ES-RNN, `jaxseq.models.esrnn`).

The package, one job a module: `presets` (models, presets, datasets, folders), `run` (running the
models, ES-RNN settings, writing the forecasts), `files` (forecast file names and reading them back),
`report` (REPORT.md: scores beside the published rows, significance section), `plots`, `significance`
(the paired bootstrap; also importable as `jaxseq.studies.forecast_significance`), `options` and `cli`
(`jaxseq forecast`).
"""
from __future__ import annotations

from jaxseq.studies.forecasting.cli import add_parser
from jaxseq.studies.forecasting.options import build_parser_namespace
from jaxseq.studies.forecasting.presets import (MODELS, NEURAL, PRESETS, STATISTICAL, default_cache, default_out,
                                                parse_dataset)
from jaxseq.studies.forecasting.report import (PUBLISHED, significance_from_folder, write_folder_report,
                                               write_report)
from jaxseq.studies.forecasting.run import esrnn_settings, run_forecast, run_preset

__all__ = ["MODELS", "parse_dataset", "run_forecast", "write_report", "add_parser", "significance_from_folder",
           "STATISTICAL", "NEURAL", "PUBLISHED", "PRESETS", "run_preset", "default_out", "default_cache",
           "esrnn_settings", "build_parser_namespace", "write_folder_report"]
