"""ES-RNN: Smyl's hybrid of exponential smoothing and a dilated LSTM, trained end to end in JAX.

After S. Smyl (2020), "A hybrid method of exponential smoothing and recurrent neural networks for
time series forecasting", IJF 36(1):75-85 — the winner of M4 — and the configuration of his
published C++/DyNet code for Hourly series (`ES_RNN_E.cc`, "Hourly" block): input window 24,
output 48, seasonalities 24 and 168, dilations ((1, 4), (24, 168)), LSTM state size 40, training
quantile τ = 0.49, Adam from 1e-2 with step decays, gradient clipping at 50, input noise 0.001.

How the model works, per series i (all series of a batch at once, vectorised):

* Holt-Winters with multiplicative seasonality (one or two periods) and no trend. The level
  smoothing α_i = sigmoid(a_i), the seasonal smoothings γ_ik = sigmoid(g_ik) and the initial seasonal
  indices s_ik[0..m_k) = exp(σ_ik) are per-series parameters. The recursion, run with `lax.scan`
  over time (so JAX differentiates through it) is, with S_t = Π_k s_k[t]::

      l_0 = y_0 / S_0
      l_t = α y_t / S_t + (1 - α) l_{t-1}                         (t ≥ 1)
      s_k[t + m_k] = γ_k y_t / (l_t · S_t / s_k[t]) + (1 - γ_k) s_k[t]   (t ≥ 0)

  (for two seasonalities this is exactly Smyl's update: each season is refreshed with the data
  divided by the new level and the *old* value of the other season). Seasonal indices needed
  beyond the last one produced (horizon > period) repeat the last period, as in Smyl's code.
* The network reads, at every time t with a full window, the last `input_size` observations
  deseasonalised and divided by the current level, in logs: x_t = log(y[t-I+1..t] / (S · l_t)),
  optionally followed by a one-hot category. Its target is log(y[t+1..t+h] / (S · l_t)); the
  forecast from the last time n-1 is exp(output) · l_{n-1} · S[n..n+h).
* The network is a stack of blocks of dilated LSTM layers with residual connections between
  blocks (block b > 0 adds its input to its output), then (optionally) a tanh dense layer and a
  linear adapter to `horizon` outputs. Smyl's Hourly run had the tanh layer switched off
  (`ADD_NL_LAYER = false`); the paper describes it; it is on by default here (`nonlinear_layer`).
* Loss: pinball loss at τ on the normalised log targets (scaled by 2, as Smyl's, so τ = 0.5 is the
  MAE) + `level_penalty` × the mean squared second difference of the log levels.

Choices and simplifications (documented deviations from Smyl):

* Hourly uses both seasonalities (24 and 168), as Smyl's Hourly model did (`ESRNNConfig.
  extra_seasonalities = (168,)`).
* The input window is 48 hours for half of the members and 96 for the other half, not Smyl's 24
  for all (`ESRNNConfig.input_size = (48, 96)`; each window's members train as one vmapped group,
  the groups one after another). On the validation split (3 members) 48 scored OWA 0.4641 and
  0.4676 for seeds 0 and 1 against 0.4682 and 0.4729 with 24; 6 members with both windows scored
  0.4601 for seeds 0 and 10 against 0.4613 for 6 members with 48 alone (last 12 epochs averaged).
* Series of different lengths (M4 Hourly: 169 of 700 points, 245 of 960): with `pad_to_longest`
  (the default) every series keeps up to `max_len` = 1000 points and the shorter ones are
  left-padded with their own first week repeated backwards, the padding masked out of the loss and
  the level penalty, so a batch is a rectangle [batch, 960]; without it all are cut to the shortest
  (700), as in the first version. On a validation split (the last 48 points of each training
  series; 3 members) cutting gave OWA 0.4775 and padding to the longest 0.4691.
* Minibatches of `batch_size` series instead of one series per update; per-series parameters are
  updated by a *sparse* Adam (only the rows of the series in the batch move, with their own
  moment estimates and step counts — what Smyl's separate per-series DyNet trainer does).
* The initial seasonal indices start from the data (mean log-ratio of the first cycles to their
  cycle mean) instead of Smyl's constant, which saves epochs on a CPU budget.
* The ensemble averages the forecasts of `ensemble_size` members (seeds seed..seed+M-1) and, within
  each member, the forecasts of the last `average_last_epochs` = 12 epochs (Smyl averaged over the
  last 5; 12, the epochs after the step to 1e-3, scored better than 4 in 9 of 10 validation runs,
  by 0.001-0.003 OWA, and equal in the tenth). The members of one input window train together:
  one `vmap`ped step over a leading member axis.
* Smyl's c-state penalty (`c_state_penalty`; his Hourly run used 1) and ensemble of specialists
  (`specialists_top`; his Hourly run kept the best 4 of 5 nets per series) are implemented but
  off: on the validation split neither helped (c-state penalty 1: OWA 0.4791 against 0.4682 and
  0.4729 for two seeds of the base, 3 members; specialists 4 of 5: 0.4659 against 0.4662 for 5
  plain members). No attentive LSTM (Smyl's Hourly run did not use it either).
* Dilated layers are `jaxseq.ops.rnn.lstm_scan(..., dilation=d)`, which runs d interleaved chains
  folded into the batch, so a dilation-168 layer over ~650 steps is a 4-step scan.

Every M4 frequency has its configuration (`FREQUENCY_CONFIGS`, `esrnn_config(freq, overrides)`):
Smyl's published settings for Yearly, Quarterly, Monthly, Weekly and Daily (sources and the
deviations in `config.py`), the tuned defaults above for Hourly. Yearly and Weekly run without a
seasonal component (as Smyl), Daily with a weekly one. No series is dropped for being short: with
`pad_to_longest` every series is left-padded to a common length and the padding is masked.
Training runs the configured epochs unless `fit_esrnn(time_budget_s=...)` caps it, so a seed
fixes the forecasts.

Layout: `model` (Holt-Winters recursion, losses, the `ESRNN` module), `config` (`ESRNNConfig`,
per-frequency configurations, overrides), `series` (validation, cutting and padding),
`trainer` (the vmapped ensemble step, epochs, specialists, `fit_esrnn`), `ensemble` (snapshot and
member forecasts, `forecast_esrnn`, member selection).
"""

from __future__ import annotations

from jaxseq.models.esrnn.config import FREQUENCY_CONFIGS, ESRNNConfig, esrnn_config, load_config_file, parse_overrides
from jaxseq.models.esrnn.ensemble import (
    best_members_mean,
    forecast_esrnn,
    mean_by_member,
    member_forecasts,
    member_holdout_smape,
    snapshot_forecasts,
)
from jaxseq.models.esrnn.model import (
    ESRNN,
    HWParams,
    SeriesParam,
    holt_winters_multiplicative,
    initial_log_seasons,
    level_variability_penalty,
    pinball_loss,
)
from jaxseq.models.esrnn.series import prepare_series, prepare_series_padded
from jaxseq.models.esrnn.trainer import ESRNNFitted, fit_esrnn

__all__ = [
    "ESRNN",
    "ESRNNConfig",
    "ESRNNFitted",
    "FREQUENCY_CONFIGS",
    "HWParams",
    "SeriesParam",
    "esrnn_config",
    "fit_esrnn",
    "forecast_esrnn",
    "load_config_file",
    "parse_overrides",
    "member_forecasts",
    "snapshot_forecasts",
    "mean_by_member",
    "best_members_mean",
    "member_holdout_smape",
    "holt_winters_multiplicative",
    "initial_log_seasons",
    "level_variability_penalty",
    "pinball_loss",
    "prepare_series",
    "prepare_series_padded",
]

# The public classes are documented (and listed by the package tests) under the package name, where
# users import them from; the submodules are the implementation's layout.
for _cls in (ESRNN, ESRNNConfig, ESRNNFitted, HWParams, SeriesParam):
    _cls.__module__ = __name__
del _cls
