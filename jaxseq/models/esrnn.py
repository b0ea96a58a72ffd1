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
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxseq.ops.rnn import LSTMParams, init_lstm_params, lstm_scan

Array = jax.Array

__all__ = [
    "ESRNN",
    "ESRNNConfig",
    "ESRNNFitted",
    "HWParams",
    "SeriesParam",
    "fit_esrnn",
    "forecast_esrnn",
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


# --------------------------------------------------------------------------------------------
# Pure functions: smoothing, losses, dilated LSTM
# --------------------------------------------------------------------------------------------


def holt_winters_multiplicative(
    y: Array,
    alpha: Array,
    gamma: Array,
    init_seasons: Sequence[Array],
    *,
    horizon: int = 0,
) -> tuple[Array, Array]:
    """Level-only Holt-Winters recursion with multiplicative seasonalities, vectorised over series.

    Args:
      y: [batch, time] positive observations.
      alpha: [batch] level smoothing in (0, 1).
      gamma: [batch, K] seasonal smoothing per seasonality (K may be 0).
      init_seasons: K arrays [batch, m_k], the seasonal indices of times 0..m_k-1 (positive).
      horizon: how many seasonal indices past the end of `y` to return (for the forecast).

    Returns:
      levels [batch, time] and the combined seasonal factor S_t = Π_k s_k[t] for
      t in [0, time + horizon) as [batch, time + horizon]. Indices past the last one the recursion
      produced repeat the last period (Smyl's extension for horizon > period).
    """
    if y.ndim != 2:
        raise ValueError(f"y must be [batch, time], got shape {y.shape}")
    b, t_len = y.shape
    init_seasons = tuple(init_seasons)
    k_num = len(init_seasons)
    if gamma.shape != (b, k_num):
        raise ValueError(f"gamma must be [batch, K] = {(b, k_num)}, got {gamma.shape}")
    if alpha.shape != (b,):
        raise ValueError(f"alpha must be [batch] = {(b,)}, got {alpha.shape}")
    first = jnp.arange(t_len) == 0

    def step(carry, inp):
        level, bufs = carry
        y_t, is_first = inp
        s_now = tuple(buf[:, 0] for buf in bufs)  # the indices of time t
        s_prod = jnp.prod(jnp.stack(s_now), axis=0) if k_num else jnp.ones_like(y_t)
        deseason = y_t / s_prod
        new_level = jnp.where(is_first, deseason, alpha * deseason + (1.0 - alpha) * level)
        new_bufs = []
        for k, (buf, s_k) in enumerate(zip(bufs, s_now)):
            others = s_prod / s_k  # the *old* indices of the other seasonalities, as Smyl
            g = gamma[:, k]
            s_next = g * y_t / (new_level * others) + (1.0 - g) * s_k  # index of time t + m_k
            # A shift register of the next m_k indices: cheap (m ≤ 168) and scan-friendly.
            new_bufs.append(jnp.concatenate([buf[:, 1:], s_next[:, None]], axis=1))
        return (new_level, tuple(new_bufs)), (new_level, s_prod)

    level0 = jnp.zeros((b,), y.dtype)
    (_, bufs), (levels, s_used) = jax.lax.scan(step, (level0, init_seasons), (y.T, first))
    levels, s_used = levels.T, s_used.T  # [batch, time]
    if horizon > 0:
        future = jnp.ones((b, horizon), y.dtype)
        for buf in bufs:  # buf holds the indices of times T..T+m_k-1; repeat it cyclically
            m_k = buf.shape[1]
            future = future * buf[:, jnp.arange(horizon) % m_k]
        s_used = jnp.concatenate([s_used, future], axis=1)
    return levels, s_used


def pinball_loss(pred: Array, target: Array, tau: float, *, mask: Array | None = None) -> Array:
    """Mean pinball (quantile) loss ρ_τ(u) = max(τ u, (τ - 1) u), u = target - pred.

    `pred`, `target`: any equal shapes. `mask` (broadcastable to them, bool or 0/1) selects the
    entries that count; the mean is over the selected ones. τ = 0.5 gives half the MAE.
    """
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    u = target - pred
    loss = jnp.maximum(tau * u, (tau - 1.0) * u)
    if mask is None:
        return jnp.mean(loss)
    return _masked_mean(loss, jnp.broadcast_to(mask, loss.shape))


def _masked_mean(x: Array, mask: Array, axis: int | None = None) -> Array:
    """Mean of `x` over the entries where `mask` (same shape, bool or 0/1) is set; 0 if none is."""
    w = mask.astype(x.dtype)
    return jnp.sum(x * w, axis=axis) / jnp.maximum(jnp.sum(w, axis=axis), 1.0)


def level_variability_penalty(levels: Array, *, start: Array | None = None) -> Array:
    """Smyl's wiggliness penalty per series: mean over t of (d_{t+1} - d_t)², d_t = Δ log l_t.

    levels: [batch, time] (time ≥ 3) -> [batch]. `start` [batch] (int): only terms whose three
    levels are at times ≥ start count (left-padded series).
    """
    if levels.ndim != 2 or levels.shape[1] < 3:
        raise ValueError(f"levels must be [batch, time>=3], got shape {levels.shape}")
    d = jnp.diff(jnp.log(levels), axis=1)
    dd2 = jnp.diff(d, axis=1) ** 2  # term t uses levels t, t+1, t+2
    if start is None:
        return jnp.mean(dd2, axis=1)
    return _masked_mean(dd2, jnp.arange(dd2.shape[1])[None, :] >= start[:, None], axis=1)


def initial_log_seasons(y: np.ndarray, periods: Sequence[int], *, max_cycles: int = 4) -> list[np.ndarray]:
    """Data-driven start for the log initial seasonal indices, one array [batch, m_k] per period.

    For each period in turn (shortest first): the mean over the first `max_cycles` whole cycles of
    log(y / cycle mean), after dividing out the indices already found. Periods longer than the
    series start at 0 (index 1).
    """
    y = np.asarray(y, np.float64)
    b, t_len = y.shape
    logy = np.log(y)
    out = []
    for m in periods:
        cycles = min(max_cycles, t_len // m)
        if m <= 1 or cycles < 1:
            out.append(np.zeros((b, max(m, 1))))
            continue
        seg = logy[:, : cycles * m].reshape(b, cycles, m)
        seg = seg - seg.mean(axis=2, keepdims=True)
        idx = seg.mean(axis=1)  # [b, m]
        out.append(idx)
        logy = logy - idx[:, np.arange(t_len) % m]
    return out


# --------------------------------------------------------------------------------------------
# The NNX model
# --------------------------------------------------------------------------------------------


class SeriesParam(nnx.Param):
    """A per-series parameter (leading axis = series); trained by a sparse, per-row Adam."""


class HWParams(NamedTuple):
    """The per-series smoothing parameters of a batch of series (rows gathered from the model)."""

    alpha_logit: Array  # [batch]
    gamma_logit: Array  # [batch, K]
    init_log_seasons: tuple[Array, ...]  # K arrays [batch, m_k]


class _DilatedLSTMLayer(nnx.Module):
    def __init__(self, in_features: int, hidden_size: int, *, dilation: int, rngs: nnx.Rngs):
        p = init_lstm_params(rngs.params(), in_features, hidden_size)
        self.w_ih = nnx.Param(p.w_ih)
        self.w_hh = nnx.Param(p.w_hh)
        self.b = nnx.Param(p.b)
        self.dilation = dilation

    def __call__(self, x: Array, *, with_cells: bool = False) -> Array | tuple[Array, Array]:
        params = LSTMParams(self.w_ih[...], self.w_hh[...], self.b[...])
        if with_cells:
            (out, cells), _ = lstm_scan(params, x, dilation=self.dilation, return_cells=True)
            return out, cells
        out, _ = lstm_scan(params, x, dilation=self.dilation)
        return out


class ESRNN(nnx.Module):
    """Smyl's ES-RNN for `num_series` series (per-series smoothing + a shared dilated LSTM).

    Args:
      num_series: number of series (rows of the per-series parameters).
      seasonality: a period or a tuple of periods (e.g. 24 or (24, 168)); 1 or () = none.
      horizon: forecast length h (the adapter's output size).
      input_size: window length I read by the network at each step.
      dilations: blocks of dilations, e.g. ((1, 4), (24, 168)): one LSTM layer per entry.
      hidden_size: LSTM state size (all layers).
      num_categories: size of an optional one-hot category appended to each input window.
      nonlinear_layer: a tanh dense layer before the adapter.
      rngs: `nnx.Rngs` with a `params` stream.
    """

    def __init__(
        self,
        num_series: int,
        *,
        seasonality: int | Sequence[int],
        horizon: int,
        input_size: int,
        dilations: Sequence[Sequence[int]] = ((1, 4), (24, 168)),
        hidden_size: int = 40,
        num_categories: int = 0,
        nonlinear_layer: bool = True,
        rngs: nnx.Rngs,
    ):
        if num_series < 1:
            raise ValueError(f"num_series must be >= 1, got {num_series}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
        if not dilations or any(len(blk) == 0 for blk in dilations):
            raise ValueError(f"dilations must be non-empty blocks of ints, got {dilations}")
        self.periods = _as_periods(seasonality)
        self.horizon = horizon
        self.input_size = input_size
        self.num_series = num_series
        self.num_categories = num_categories
        # Smyl starts the raw smoothing parameters at 0.5 (sigmoid -> 0.62).
        self.alpha_logit = SeriesParam(jnp.full((num_series,), 0.5, jnp.float32))
        self.gamma_logit = SeriesParam(jnp.full((num_series, len(self.periods)), 0.5, jnp.float32))
        self.init_log_seasons = nnx.List(
            [SeriesParam(jnp.zeros((num_series, m), jnp.float32)) for m in self.periods]
        )
        blocks = []
        in_f = input_size + num_categories
        for blk in dilations:
            layers = []
            for d in blk:
                layers.append(_DilatedLSTMLayer(in_f, hidden_size, dilation=int(d), rngs=rngs))
                in_f = hidden_size
            blocks.append(nnx.List(layers))
        self.blocks = nnx.List(blocks)
        self.nonlinear = nnx.Linear(hidden_size, hidden_size, rngs=rngs) if nonlinear_layer else None
        self.adapter = nnx.Linear(hidden_size, horizon, rngs=rngs)

    # -- per-series parameters -----------------------------------------------------------------
    def series_rows(self, idx: Array) -> HWParams:
        """Gather the smoothing parameters of series `idx` [batch] (int)."""
        return HWParams(
            self.alpha_logit[...][idx],
            self.gamma_logit[...][idx],
            tuple(p[...][idx] for p in self.init_log_seasons),
        )

    def smooth(self, y: Array, hw: HWParams) -> tuple[Array, Array]:
        """Levels [batch, T] and seasonal factors [batch, T + horizon] of `y` [batch, T]."""
        return holt_winters_multiplicative(
            y,
            jax.nn.sigmoid(hw.alpha_logit),
            jax.nn.sigmoid(hw.gamma_logit),
            tuple(jnp.exp(s) for s in hw.init_log_seasons),
            horizon=self.horizon,
        )

    # -- network ---------------------------------------------------------------------------------
    def network(self, x: Array, *, with_cell_penalty: bool = False) -> Array | tuple[Array, Array]:
        """[batch, steps, input_size + num_categories] -> [batch, steps, horizon] (normalised logs).

        With `with_cell_penalty` also returns [batch, steps]: the mean square of the cell state of
        the first layer of each block, averaged over blocks (Smyl's c-state penalty term).
        """
        h = x
        cell_sq = []
        for b, block in enumerate(self.blocks):
            out = h
            for j, layer in enumerate(block):
                if with_cell_penalty and j == 0:
                    out, cells = layer(out, with_cells=True)
                    cell_sq.append(jnp.mean(jnp.square(cells), axis=-1))
                else:
                    out = layer(out)
            h = out if b == 0 else h + out  # residual connection between blocks, as Smyl
        if self.nonlinear is not None:
            h = jnp.tanh(self.nonlinear(h))
        pred = self.adapter(h)
        if with_cell_penalty:
            return pred, jnp.mean(jnp.stack(cell_sq), axis=0)
        return pred

    def normalised(
        self,
        y: Array,
        hw: HWParams,
        *,
        categories: Array | None = None,
        for_training: bool = True,
        noise_key: Array | None = None,
        noise_std: float = 0.0,
        with_cell_penalty: bool = False,
    ) -> dict[str, Array]:
        """Run smoothing and network on `y` [batch, T].

        Positions are the times t = I-1 .. T-1 that have a full input window (P = T - I + 1 of
        them); with `for_training` only the first P - h (those whose target lies inside `y`) are
        run. Returns a dict with `pred` [batch, P', h], `target` [batch, P', h] (only with
        `for_training`), `levels` [batch, T], `seasonal` [batch, T + h], and with
        `with_cell_penalty` `cell_sq` [batch, P'] (see `network`).
        """
        b, t_len = y.shape
        i_sz, h = self.input_size, self.horizon
        n_pos = t_len - i_sz + 1 - (h if for_training else 0)
        if n_pos < 1:
            raise ValueError(
                f"series length {t_len} too short for input_size={i_sz} + horizon={h}"
            )
        levels, seasonal = self.smooth(y, hw)
        deseason = y / seasonal[:, :t_len]
        # Position p is time t = p + I - 1. Windows are built from static slices (not gathers):
        # their gradients are pads, which XLA compiles and runs much faster than scatter-adds.
        lev_t = levels[:, i_sz - 1 : i_sz - 1 + n_pos][..., None]  # [b, P, 1]
        x = jnp.stack([deseason[:, k : k + n_pos] for k in range(i_sz)], axis=-1)
        x = jnp.log(x / lev_t)  # [b, P, I]
        if noise_key is not None and noise_std > 0:
            x = x + noise_std * jax.random.normal(noise_key, x.shape, x.dtype)
        if self.num_categories:
            if categories is None:
                raise ValueError("categories [batch, num_categories] required by this model")
            cat = jnp.broadcast_to(categories[:, None, :].astype(x.dtype), (b, n_pos, self.num_categories))
            x = jnp.concatenate([x, cat], axis=-1)
        out = {"levels": levels, "seasonal": seasonal}
        if with_cell_penalty:
            out["pred"], out["cell_sq"] = self.network(x, with_cell_penalty=True)
        else:
            out["pred"] = self.network(x)
        if for_training:
            # Targets of time t: y[t+1..t+h] / (S[t+1..t+h] l_t), all inside y.
            fut = jnp.stack([deseason[:, i_sz - 1 + j : i_sz - 1 + j + n_pos] for j in range(1, h + 1)], axis=-1)
            out["target"] = jnp.log(fut / lev_t)
        return out

    def forecast_rows(self, y: Array, hw: HWParams, *, categories: Array | None = None) -> Array:
        """Forecast [batch, horizon] of the next h values after `y` [batch, T]."""
        t_len = y.shape[1]
        out = self.normalised(y, hw, categories=categories, for_training=False)
        last = out["pred"][:, -1, :]
        return jnp.exp(last) * out["levels"][:, -1:] * out["seasonal"][:, t_len:]

    def __call__(self, y: Array, idx: Array | None = None, *, categories: Array | None = None) -> Array:
        """Forecast [batch, horizon] for series `idx` [batch] (default: all, in order) from y [batch, T]."""
        if idx is None:
            idx = jnp.arange(y.shape[0])
        return self.forecast_rows(y, self.series_rows(idx), categories=categories)


def _as_periods(seasonality: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seasonality, (int, np.integer)):
        periods = (int(seasonality),)
    else:
        periods = tuple(int(m) for m in seasonality)
    if any(m < 1 for m in periods):
        raise ValueError(f"seasonality periods must be >= 1, got {seasonality}")
    return tuple(m for m in periods if m > 1)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ESRNNConfig:
    """Hyper-parameters of `fit_esrnn`; defaults are for M4 Hourly (after Smyl's Hourly run).

    `lr_decay` lists (fraction of the epochs, learning-rate multiplier) steps: Smyl's Hourly run
    went 1e-2 -> 5e-3 at epoch 7, 1e-3 at 18, 3e-4 at 22 of 27.

    Tuning on all 414 M4 Hourly series (one member each, 2-core CPU shared with other jobs;
    OWA of the last-4-epoch average): batch 16 / 12 epochs 0.476, batch 16 / 20 epochs 0.464,
    batch 8 / 16 epochs 0.462, batch 4 / 16 epochs 0.466; batch 16 with per_series_lr_mult=10
    0.595 (levels smoother, forecasts worse). Averaging 3-4 such members gave 0.453-0.455.
    Small batches matter because the shared weights get n/batch updates per epoch (Smyl's
    trainer used one series per update); batch 4 was also the fastest per epoch here. Full
    ensembles with batch 4: 5 × 13-16 epochs 0.451, 3 × 27 epochs 0.447, 6 × 36 epochs 0.447
    (340 s on the 2-core CPU when it was quiet, ~1.5-2 s per epoch), all with series cut to 700
    points. Validation split (last 48 training points, 3 members, scripts/esrnn_validate.py,
    profiles/forecast/esrnn_validation.jsonl): base 0.4775; level_penalty 3 0.4771, 30 0.4798;
    hidden 64 0.4756; tau 0.45 0.4881; learning rate 5e-3 0.4898; padding to the longest series
    with max_len 1000 0.4691 (these defaults). Per-series best-k member selection (`best_members`)
    did not help on the test set (profiles/forecast/esrnn_member_selection.json), so it is off.
    Session 4, members trained together (vmapped), same split: base (input 24) 0.4682 / 0.4729
    (seeds 0 / 1); input_size 48 0.4641 / 0.4676 (now the default), 96 0.4651; tau 0.5 0.4680;
    no tanh layer 0.4687; hidden 64 0.4671; batch 2 0.4712; c_state_penalty 1 0.4791; 5 members
    0.4662, 5 specialists keeping 4 0.4659; 10 members 0.4683 (its first k members: 0.4738 for
    k=1, 0.4680 for k=2, flat after); 10 members × 22 epochs 0.4726; 3 members × 72 epochs 0.4730.
    Session 5: averaging the last 12 epochs instead of 4 lowered the OWA in 9 of 10 runs (equal in
    one), re-averaged from the same saved snapshots (input 48: 0.4641 -> 0.4623 and 0.4676 ->
    0.4649 for seeds 0/1; input 24 and 96 likewise by 0.0012-0.0020). 6 members: input 48 0.4613, input 96 0.4631, input
    (48, 96) 0.4601 (seed 0) and 0.4601 (seed 10), now the defaults.
    """

    # The input window; a tuple splits the ensemble into contiguous groups of members, one per
    # window (sizes as even as np.array_split gives), trained one group after another; with fewer
    # members than windows only the first ensemble_size windows are used. Smyl: 24 for all.
    input_size: int | tuple[int, ...] = (48, 96)
    extra_seasonalities: tuple[int, ...] = (168,)  # added to `seasonality`; Smyl's Hourly: 168
    max_len: int = 1000  # keep at most the last max_len observations (see module doc)
    dilations: tuple[tuple[int, ...], ...] = ((1, 4), (24, 168))
    hidden_size: int = 40
    nonlinear_layer: bool = True
    tau: float = 0.49
    level_penalty: float = 10.0  # Smyl's Hourly code: LEVEL_VARIABILITY_PENALTY = 10
    # Weight of the mean square cell state of each block's first LSTM layer (Smyl's Hourly code:
    # C_STATE_PENALTY = 1). Its gradient goes through autodiff of the scan, not the custom VJP.
    c_state_penalty: float = 0.0
    input_noise: float = 0.001
    batch_size: int = 4
    epochs: int = 36
    learning_rate: float = 1e-2
    lr_decay: tuple[tuple[float, float], ...] = ((7 / 27, 0.5), (18 / 27, 0.1), (22 / 27, 0.03))
    per_series_lr_mult: float = 1.0
    grad_clip: float = 50.0
    ensemble_size: int = 6
    average_last_epochs: int = 12
    init_seasons_from_data: bool = True
    # Per series, average only the `best_members` members with the lowest sMAPE on the last horizon
    # of the training series (forecast from the series without it); None: every member. Smyl ranked
    # his networks per series the same way and kept the best 4 of 5.
    best_members: int | None = None
    # Smyl's ensemble of specialists (ES-RNN-E; his Hourly run kept the best 4 of 5 networks): each
    # series starts assigned to ensemble_size // 2 random members; after every epoch each member's
    # in-sample loss on every series is computed and each series is re-assigned to the
    # `specialists_top` members with the lowest loss, which then train on it (a member draws
    # n * top / ensemble_size series per epoch from its own set). The forecast of a series is the
    # mean of those members' forecasts. None: every member trains on and forecasts every series.
    specialists_top: int | None = None
    # Keep up to max_len points of every series instead of cutting all to the shortest: shorter
    # series are left-padded with their own first cycle of the longest period repeated backwards
    # (so the smoothing has a plausible history to run through), and the padded part is masked
    # out of the loss and the level penalty. M4 Hourly has 169 series of 700 points and 245 of 960.
    pad_to_longest: bool = True

    def __post_init__(self):
        sizes = self.input_size if isinstance(self.input_size, (tuple, list)) else (self.input_size,)
        if not sizes or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 1 for i in sizes):
            raise ValueError(f"ESRNNConfig.input_size must be an int >= 1 or a non-empty tuple of them, "
                             f"got {self.input_size!r}")
        if isinstance(self.input_size, (tuple, list)):
            # Fewer members than windows (e.g. ensemble_size=1 with the default): the first windows.
            sizes = tuple(int(i) for i in sizes)[: max(self.ensemble_size, 1)]
            object.__setattr__(self, "input_size", sizes if len(sizes) > 1 else sizes[0])
        for name in ("max_len", "hidden_size", "batch_size", "epochs", "ensemble_size", "average_last_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"ESRNNConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.best_members is not None and not 1 <= self.best_members:
            raise ValueError(f"ESRNNConfig.best_members must be None or >= 1, got {self.best_members}")
        if self.specialists_top is not None:
            if not 1 <= self.specialists_top <= self.ensemble_size:
                raise ValueError(f"ESRNNConfig.specialists_top must be None or in [1, ensemble_size="
                                 f"{self.ensemble_size}], got {self.specialists_top}")
            if self.best_members is not None:
                raise ValueError("ESRNNConfig: specialists_top and best_members both select members; set one")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"ESRNNConfig.tau must be in (0, 1), got {self.tau}")
        for name in ("level_penalty", "c_state_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"ESRNNConfig.{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.input_size, tuple) and self.specialists_top is not None:
            raise ValueError("ESRNNConfig: specialists_top needs one input_size, e.g. input_size=48 (members of "
                             "different windows are trained apart and cannot be ranked together)")


@dataclasses.dataclass
class ESRNNFitted:
    """What `fit_esrnn` returns: the model structure and the parameter snapshots to average."""

    graphdef: Any
    snapshots: list[Any]  # nnx.State of the whole model, one per (seed, averaged epoch)
    config: ESRNNConfig
    periods: tuple[int, ...]
    horizon: int
    num_series: int
    length: int  # T, the common length the series are cut to
    history: list[dict[str, float]]  # per epoch: member, epoch, loss, forecast loss, penalty, time
    train_time_s: float
    categories: np.ndarray | None = None
    snapshot_members: list[int] = dataclasses.field(default_factory=list)  # member of each snapshot
    # With `config.specialists_top`: each member's in-sample loss per series after the last epoch
    # [members, n], which ranks the members per series for the forecast.
    member_losses: np.ndarray | None = None
    # With several input windows: one fit per window group (members numbered on across groups);
    # `graphdef` is then the first group's and the snapshots are all groups' in member order.
    parts: list["ESRNNFitted"] = dataclasses.field(default_factory=list)


def _checked_lengths(train_series: Sequence[np.ndarray], *, input_size: int, horizon: int) -> list[int]:
    """The series' lengths, after the checks `prepare_series` documents."""
    if horizon is None or int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    if len(train_series) == 0:
        raise ValueError("train_series must hold at least one series")
    need = input_size + horizon + 3
    lengths = []
    for i, s in enumerate(train_series):
        s = np.asarray(s)
        if s.ndim != 1:
            raise ValueError(f"train_series[{i}] must be 1-D, got shape {s.shape}")
        if len(s) < need:
            raise ValueError(
                f"train_series[{i}] has length {len(s)} < input_size + horizon + 3 = {need}"
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
    """
    lengths = _checked_lengths(train_series, input_size=input_size, horizon=horizon)
    need = input_size + horizon + 3
    if max_len < need:
        raise ValueError(f"max_len={max_len} < input_size + horizon + 3 = {need}")
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    t_len = min(max_len, max(lengths))
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


class _SparseAdam(NamedTuple):
    mu: Any
    nu: Any
    count: Array  # [num_series] int32 — updates each row has received


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _lr_multiplier(frac: float, decay: Sequence[tuple[float, float]]) -> float:
    mult = 1.0
    for at, m in decay:
        if frac >= at - 1e-9:
            mult = m
    return mult


def _make_steps(graphdef, config: ESRNNConfig):
    """The jitted train step of the whole ensemble.

    The step is written for one member and `vmap`ped over a leading member axis of the parameters,
    optimiser states, batch indices and keys, so every member gets the same epochs under a budget
    and there is one compilation. It is not faster on the 2-core CPU (6 members: 14.2 s per epoch
    against 6 × 2.42 s one at a time at 960 points): the LSTM gates' elementwise work dominates.
    """
    tx_shared = _shared_optimizer(config)
    clip = optax.clip_by_global_norm(config.grad_clip)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(shared, rows, batch, key):
        out, mask = _training_forward(graphdef, shared, rows, batch, noise_key=key, noise_std=config.input_noise,
                                      with_cell_penalty=config.c_state_penalty > 0)
        # Smyl's pinball is summed over the horizon and scaled by 2/h: 2 × the mean.
        forec = 2.0 * pinball_loss(out["pred"], out["target"], config.tau, mask=mask[..., None])
        pen = jnp.mean(level_variability_penalty(out["levels"], start=batch[1]))
        loss = forec + config.level_penalty * pen
        if config.c_state_penalty > 0:
            loss = loss + config.c_state_penalty * _masked_mean(out["cell_sq"], mask)
        return loss, (forec, pen)

    def member_step(shared, series, opt_state, sadam, key, y_all, start_all, cats_all, idx, lr):
        key, sub = jax.random.split(key)
        rows, batch = _gather(series, y_all, start_all, cats_all, idx)
        (loss, (forec, pen)), (g_shared, g_rows) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            shared, rows, batch, sub
        )
        upd, opt_state = tx_shared.update(g_shared, opt_state, shared)
        shared = jax.tree.map(lambda p, u: p - lr * u, shared, upd)
        # Sparse Adam on this batch's rows (clipped like Smyl's per-series trainer): the other
        # series' parameters and moments stay untouched, each row keeps its own step count.
        g_rows = clip.update(g_rows, optax.EmptyState())[0]
        count = sadam.count.at[idx].add(1)
        c = count[idx].astype(jnp.float32)
        lr_s = lr * config.per_series_lr_mult

        def moments(m, v, g):
            return b1 * m[idx] + (1 - b1) * g, b2 * v[idx] + (1 - b2) * g * g

        mu_r = jax.tree.map(lambda m, v, g: moments(m, v, g)[0], sadam.mu, sadam.nu, g_rows)
        nu_r = jax.tree.map(lambda m, v, g: moments(m, v, g)[1], sadam.mu, sadam.nu, g_rows)

        def step_rows(p, m_r, v_r):
            cc = c.reshape((-1,) + (1,) * (m_r.ndim - 1))
            mhat = m_r / (1 - b1**cc)
            vhat = v_r / (1 - b2**cc)
            return p.at[idx].set(p[idx] - lr_s * mhat / (jnp.sqrt(vhat) + eps))

        series = jax.tree.map(step_rows, series, mu_r, nu_r)
        sadam = _SparseAdam(
            jax.tree.map(lambda m, r: m.at[idx].set(r), sadam.mu, mu_r),
            jax.tree.map(lambda v, r: v.at[idx].set(r), sadam.nu, nu_r),
            count,
        )
        return shared, series, opt_state, sadam, key, jnp.stack([loss, forec, pen])

    # Members: axis 0 of the parameters, states, keys [M] and `idx` [M, batch]; the data and the
    # learning rate are shared. The arguments are an `_EnsembleState`'s fields, then the data.
    return jax.jit(jax.vmap(member_step, in_axes=(0, 0, 0, 0, 0, None, None, None, 0, None)))


def _shared_optimizer(config: ESRNNConfig) -> optax.GradientTransformation:
    """Adam (without its learning rate, applied in the step) on the clipped shared-weight gradients."""
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.scale_by_adam())


def _make_series_losses(graphdef, config: ESRNNConfig):
    """jitted (shared, series, y_all, start_all, cats_all, idx [k]) -> [members, k]: each member's
    in-sample pinball loss on each series of `idx` (no input noise) — Smyl's ranking of specialists."""

    def member_losses(shared, series, y_all, start_all, cats_all, idx):
        out, mask = _training_forward(graphdef, shared, *_gather(series, y_all, start_all, cats_all, idx))
        per_series = jax.vmap(lambda p, t, m: pinball_loss(p, t, config.tau, mask=m))
        return 2.0 * per_series(out["pred"], out["target"], mask[..., None])

    return jax.jit(jax.vmap(member_losses, in_axes=(0, 0, None, None, None, None)))


def _gather(series, y_all, start_all, cats_all, idx):
    """This batch's per-series parameter rows and (y [batch, T], start [batch], categories or None)."""
    rows = jax.tree.map(lambda a: a[idx], series)
    return rows, (y_all[idx], start_all[idx], None if cats_all is None else cats_all[idx])


def _training_forward(graphdef, shared, rows, batch, **normalised_kw) -> tuple[dict[str, Array], Array]:
    """`ESRNN.normalised(..., for_training=True)` on a batch, and the mask [batch, P] of the positions
    that count.

    `rows` holds only this batch's per-series parameters: merging them gives a model of `batch`
    series, so nothing of size num_series enters a gradient. Positions whose input window starts
    before a series' first real value (left padding, `pad_to_longest`) do not count; without padding
    `start` is 0 and every position counts.
    """
    y, start, cats = batch
    model = nnx.merge(graphdef, rows, shared)
    out = model.normalised(y, model.series_rows(jnp.arange(y.shape[0])), categories=cats, for_training=True,
                           **normalised_kw)
    mask = jnp.arange(out["pred"].shape[1])[None, :] >= start[:, None]
    return out, mask


def _specialist_batches(assign: np.ndarray, rngs: Sequence[np.random.Generator], steps: int, batch: int) -> np.ndarray:
    """[members, steps, batch] series indices: member m cycles through shuffles of its own series."""
    out = np.empty((len(rngs), steps * batch), np.int64)
    for m, r in enumerate(rngs):
        own = np.flatnonzero(assign[m])
        reps = -(-steps * batch // len(own))
        out[m] = np.concatenate([r.permutation(own) for _ in range(reps)])[: steps * batch]
    return out.reshape(len(rngs), steps, batch)


def _initial_assignment(members: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """bool [members, n]: each series drawn to a random member members // 2 times (as Smyl's code)."""
    assign = np.zeros((members, n), bool)
    for _ in range(max(members // 2, 1)):
        assign[rng.integers(0, members, n), np.arange(n)] = True
    return _fill_empty_members(assign, rng)


def _reassign(losses: np.ndarray, top: int, rng: np.random.Generator) -> np.ndarray:
    """Each series to its `top` members of lowest loss ([members, n] -> bool [members, n]); a member
    left with no series gets a random half of them (as Smyl's code does)."""
    m_num, n = losses.shape
    assign = np.zeros((m_num, n), bool)
    best = np.argsort(losses, axis=0, kind="stable")[:top]  # [top, n]
    assign[best, np.arange(n)[None, :]] = True
    return _fill_empty_members(assign, rng)


def _fill_empty_members(assign: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = assign.shape[1]
    for m in np.flatnonzero(~assign.any(axis=1)):
        assign[m, rng.choice(n, max(n // 2, 1), replace=False)] = True
    return assign


def _input_sizes(config: ESRNNConfig) -> tuple[int, ...]:
    return config.input_size if isinstance(config.input_size, tuple) else (config.input_size,)


def _prepare(train_series, config: ESRNNConfig, horizon: int, periods: tuple[int, ...]):
    """(y [n, T], start [n]) as the model is trained on: cut to the shortest or padded to the longest."""
    input_size = max(_input_sizes(config))  # the longest window sets the length checks
    if config.pad_to_longest:
        return prepare_series_padded(train_series, input_size=input_size, horizon=horizon,
                                     max_len=config.max_len, period=max(periods) if periods else 1)
    y = prepare_series(train_series, input_size=input_size, horizon=horizon, max_len=config.max_len)
    return y, np.zeros(len(y), np.int32)


def fit_esrnn(
    train_series: Sequence[np.ndarray],
    *,
    horizon: int,
    seasonality: int | Sequence[int],
    config: ESRNNConfig | None = None,
    seed: int = 0,
    time_budget_s: float | None = None,
    progress: bool = True,
    categories: np.ndarray | None = None,
) -> ESRNNFitted:
    """Train an ensemble of ES-RNNs on all `train_series` (one model, per-series smoothing).

    Args:
      train_series: n positive 1-D arrays (lengths may differ; see `prepare_series`).
      horizon: forecast length h (48 for M4 Hourly).
      seasonality: the main period (24 for Hourly); `config.extra_seasonalities` are added.
      config: hyper-parameters (default `ESRNNConfig()`, M4 Hourly).
      seed: ensemble member j uses seed + j.
      time_budget_s: wall-clock budget for the whole ensemble (its members train together, one
        `vmap`ped step); the number of epochs is cut (the learning-rate schedule compressed to
        match) once the second epoch's time is known.
      progress: print one line per epoch.
      categories: optional [n, C] one-hot (or any) per-series features appended to the inputs.

    Returns:
      `ESRNNFitted`; forecast with `forecast_esrnn(fitted, train_series)`.
    """
    config = config or ESRNNConfig()
    if len(_input_sizes(config)) > 1:
        return _fit_window_groups(train_series, horizon=horizon, seasonality=seasonality, config=config, seed=seed,
                                  time_budget_s=time_budget_s, progress=progress, categories=categories)
    periods = tuple(dict.fromkeys(_as_periods(seasonality) + tuple(config.extra_seasonalities)))
    y_np, start_np = _prepare(train_series, config, horizon, periods)
    n, t_len = y_np.shape
    cats_np = None
    if categories is not None:
        cats_np = np.asarray(categories, np.float32)
        if cats_np.ndim != 2 or cats_np.shape[0] != n:
            raise ValueError(f"categories must be [n_series={n}, C], got shape {cats_np.shape}")
    data = (jnp.asarray(y_np), jnp.asarray(start_np), None if cats_np is None else jnp.asarray(cats_np))
    n_members = config.ensemble_size
    t_start = time.perf_counter()
    init_seasons = initial_log_seasons(y_np, periods) if config.init_seasons_from_data else None
    graphdef, state = _init_ensemble(config, n, periods, horizon, 0 if cats_np is None else cats_np.shape[1],
                                     init_seasons, seed)
    trainer = _EpochTrainer(graphdef, config, n, seed, data)
    snapshots, history, snapshot_members = [], [], []
    epochs = config.epochs
    epoch = 0
    while epoch < epochs:
        e_start = time.perf_counter()
        lr = config.learning_rate * _lr_multiplier(epoch / epochs, config.lr_decay)
        state, l_arr = trainer.epoch(state, lr)
        if not np.isfinite(l_arr[:, 0]).all():
            bad = int(np.argmin(np.isfinite(l_arr[:, 0])))
            raise FloatingPointError(f"ES-RNN loss became {l_arr[bad, 0]} at member {bad} epoch {epoch}")
        now = time.perf_counter()
        for m in range(n_members):
            history.append(dict(member=m, epoch=epoch, loss=l_arr[m, 0], forecast_loss=l_arr[m, 1],
                                level_penalty=l_arr[m, 2], epoch_s=now - e_start, lr=lr))
        if progress:
            mean = l_arr.mean(axis=0)
            print(
                f"[esrnn] {n_members} members, epoch {epoch + 1}/{epochs} loss {mean[0]:.4f} "
                f"(pinball {mean[1]:.4f}, level pen {mean[2]:.2e}) lr {lr:.1e} {now - e_start:.1f}s",
                flush=True,
            )
        # Fit the epoch count to the budget once an epoch without compilation was timed: the
        # first epoch includes compiling the train step (a minute on a busy CPU).
        if time_budget_s is not None and epoch == 1:
            per_epoch = now - e_start
            fit = int((time_budget_s - (now - t_start)) // max(per_epoch, 1e-6)) + epoch + 1
            epochs = max(epoch + 1, min(config.epochs, fit))
        snap = epoch >= epochs - config.average_last_epochs
        epoch += 1
        over = time_budget_s is not None and time.perf_counter() - t_start > time_budget_s
        if snap or (over and epoch < epochs):  # over budget: keep at least the latest parameters
            merged = nnx.merge_state(state.series, state.shared)
            for m in range(n_members):
                snapshots.append(jax.tree.map(lambda a, m=m: a[m], merged))
                snapshot_members.append(m)
        if over and epoch < epochs:
            break
    order = np.argsort(snapshot_members, kind="stable")  # grouped by member, epochs in order
    return ESRNNFitted(
        graphdef=graphdef,
        snapshots=[snapshots[i] for i in order],
        config=config,
        periods=periods,
        horizon=horizon,
        num_series=n,
        length=t_len,
        history=history,
        train_time_s=time.perf_counter() - t_start,
        categories=cats_np,
        snapshot_members=[snapshot_members[i] for i in order],
        member_losses=trainer.member_losses,
    )


def _fit_window_groups(train_series, *, horizon, seasonality, config: ESRNNConfig, seed: int,
                       time_budget_s: float | None, progress: bool, categories) -> ESRNNFitted:
    """`fit_esrnn` for several input windows: one vmapped fit per window group, one after another.

    Member m keeps seed + m. Under a budget each group gets an equal share of what is left when it
    starts, so a group that finishes early leaves its time to the next.
    """
    sizes = _input_sizes(config)
    groups = np.array_split(np.arange(config.ensemble_size), len(sizes))
    t_start = time.perf_counter()
    parts = []
    for g, (size, members) in enumerate(zip(sizes, groups)):
        budget = None
        if time_budget_s is not None:
            budget = (time_budget_s - (time.perf_counter() - t_start)) / (len(sizes) - g)
        if progress:
            print(f"[esrnn] members {members[0]}-{members[-1]}: input window {size}", flush=True)
        sub = dataclasses.replace(config, input_size=size, ensemble_size=len(members))
        parts.append(fit_esrnn(train_series, horizon=horizon, seasonality=seasonality, config=sub,
                               seed=seed + int(members[0]), time_budget_s=budget, progress=progress,
                               categories=categories))
    first = parts[0]
    offsets = [int(m[0]) for m in groups]
    return ESRNNFitted(
        graphdef=first.graphdef,
        snapshots=[snap for p in parts for snap in p.snapshots],
        config=config,
        periods=first.periods,
        horizon=horizon,
        num_series=first.num_series,
        length=first.length,
        history=[dict(h, member=h["member"] + o) for p, o in zip(parts, offsets) for h in p.history],
        train_time_s=time.perf_counter() - t_start,
        categories=first.categories,
        snapshot_members=[m + o for p, o in zip(parts, offsets) for m in p.snapshot_members],
        parts=parts,
    )


class _EnsembleState(NamedTuple):
    """Everything the train step updates; every leaf has a leading member axis."""

    shared: Any  # nnx.State of the network weights
    series: Any  # nnx.State of the per-series smoothing parameters
    opt_state: Any  # Adam state of `shared`
    sadam: _SparseAdam  # sparse Adam moments and counts of `series`
    keys: Array  # [members] "rbg" keys for the input noise


def _init_ensemble(config: ESRNNConfig, n: int, periods: tuple[int, ...], horizon: int, num_cat: int,
                   init_seasons: list[np.ndarray] | None, seed: int) -> tuple[Any, _EnsembleState]:
    """(graphdef, initial `_EnsembleState`) of `config.ensemble_size` members with seeds seed + m."""
    members = []
    for member in range(config.ensemble_size):
        model = ESRNN(
            n,
            seasonality=periods,
            horizon=horizon,
            input_size=config.input_size,
            dilations=config.dilations,
            hidden_size=config.hidden_size,
            num_categories=num_cat,
            nonlinear_layer=config.nonlinear_layer,
            rngs=nnx.Rngs(params=seed + member),
        )
        if init_seasons is not None:
            for k, s in enumerate(init_seasons):
                model.init_log_seasons[k][...] = jnp.asarray(s, jnp.float32)
        members.append(nnx.split(model, SeriesParam, nnx.Param))
    series = _stack([m[1] for m in members])  # every leaf gains a leading member axis
    shared = _stack([m[2] for m in members])
    tx_shared = _shared_optimizer(config)
    zeros = jax.tree.map(jnp.zeros_like, series)
    # "rbg" keys: threefry's normal sampler alone doubled the train step's XLA:CPU compile time.
    keys = jnp.stack([jax.random.key(seed + m, impl="rbg") for m in range(config.ensemble_size)])
    return members[0][0], _EnsembleState(
        shared=shared,
        series=series,
        opt_state=jax.vmap(tx_shared.init)(shared),
        sadam=_SparseAdam(zeros, zeros, jnp.zeros((config.ensemble_size, n), jnp.int32)),
        keys=keys,
    )


class _EpochTrainer:
    """One epoch of the ensemble: the batches (plain shuffles, or each member's specialist series),
    the train steps, and with `specialists_top` the members' ranking and re-assignment after it."""

    # Series per ranking call; the last chunk is padded so one shape compiles.
    RANK_CHUNK = 64

    def __init__(self, graphdef, config: ESRNNConfig, n: int, seed: int, data: tuple[Array, Array, Array | None]):
        self.config, self.n, self.data = config, n, data
        self.batch = min(config.batch_size, n)
        self.train_step = _make_steps(graphdef, config)
        m_num = config.ensemble_size
        self.rngs = [np.random.default_rng(seed + m) for m in range(m_num)]
        self.member_losses: np.ndarray | None = None
        if config.specialists_top is not None:
            self.series_losses = _make_series_losses(graphdef, config)
            self.assign_rng = np.random.default_rng(seed + 7919)  # its own stream: member m's shuffles stay seed + m's
            self.assign = _initial_assignment(m_num, n, self.assign_rng)
            self.spec_steps = max(1, round(n * config.specialists_top / m_num / self.batch))

    def _batches(self) -> np.ndarray:
        """[members, steps, batch] series indices for this epoch."""
        if self.config.specialists_top is not None:
            return _specialist_batches(self.assign, self.rngs, self.spec_steps, self.batch)
        steps = self.n // self.batch
        perms = np.stack([r.permutation(self.n)[: steps * self.batch] for r in self.rngs])
        return perms.reshape(len(self.rngs), steps, self.batch)

    def epoch(self, state: _EnsembleState, lr: float) -> tuple[_EnsembleState, np.ndarray]:
        """Train one epoch; returns the new state and the members' mean [loss, pinball, penalty] [M, 3]."""
        lr = jnp.float32(lr)
        perms = self._batches()
        losses = []
        for s in range(perms.shape[1]):
            *new, loss = self.train_step(*state, *self.data, perms[:, s], lr)
            state = _EnsembleState(*new)
            losses.append(loss)
        l_arr = np.asarray(jax.device_get(losses), np.float64).mean(axis=0)
        if self.config.specialists_top is not None:  # rank the members on every series with this epoch's parameters
            self.member_losses = self._rank(state)
            self.assign = _reassign(self.member_losses, self.config.specialists_top, self.assign_rng)
        return state, l_arr

    def _rank(self, state: _EnsembleState) -> np.ndarray:
        """Each member's in-sample loss on every series, [members, n]."""
        chunk = self.RANK_CHUNK
        padded = np.resize(np.arange(self.n), -(-self.n // chunk) * chunk)  # wraps around: valid indices
        out = [self.series_losses(state.shared, state.series, *self.data, jnp.asarray(padded[i:i + chunk]))
               for i in range(0, len(padded), chunk)]
        return np.concatenate(jax.device_get(out), axis=1)[:, : self.n].astype(np.float64)


def _snapshot_forecasts(fitted: ESRNNFitted, train_series: Sequence[np.ndarray], holdout: int):
    """Yield (member, forecast [n, horizon]) per snapshot; `holdout` > 0 cuts that many points off
    the end of each prepared series first (same start, so the learned initial seasons still fit)."""
    if len(train_series) != fitted.num_series:
        raise ValueError(f"train_series must hold the {fitted.num_series} fitted series, got {len(train_series)}")
    if fitted.parts:
        offset = 0
        for part in fitted.parts:
            for member, fc in _snapshot_forecasts(part, train_series, holdout):
                yield member + offset, fc
            offset += part.config.ensemble_size
        return
    cfg = fitted.config
    y_np, _ = _prepare(train_series, cfg, fitted.horizon, fitted.periods)
    if holdout:
        if y_np.shape[1] - holdout < cfg.input_size + 3:
            raise ValueError(f"holdout={holdout} leaves fewer than input_size + 3 points of {y_np.shape[1]}")
        y_np = y_np[:, :-holdout]
    y = jnp.asarray(y_np)
    cats = None if fitted.categories is None else jnp.asarray(fitted.categories)

    @jax.jit
    def one(state):
        model = nnx.merge(fitted.graphdef, state)
        return model(y, categories=cats)

    members = fitted.snapshot_members or [0] * len(fitted.snapshots)
    for member, state in zip(members, fitted.snapshots):
        yield member, np.asarray(one(state), np.float64)


def snapshot_forecasts(fitted: ESRNNFitted, train_series: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every kept snapshot's forecast: (member of each snapshot [S], forecasts [S, n, horizon]).

    Snapshots are grouped by member, epochs in order, so a study can re-average any subset (the
    last k epochs, some members, a median) without refitting.
    """
    return _collect(_snapshot_forecasts(fitted, train_series, 0))


def _collect(pairs) -> tuple[np.ndarray, np.ndarray]:
    members, forecasts = zip(*pairs)
    return np.asarray(members, np.int64), np.stack(forecasts)


def mean_by_member(members: np.ndarray, forecasts: np.ndarray, *, last: int | None = None) -> np.ndarray:
    """[M, n, horizon]: for each member (ascending), the mean of its snapshots' forecasts, or of
    its `last` latest ones. `members` [S] and `forecasts` [S, n, horizon] as `snapshot_forecasts`
    returns them (grouped by member, epochs in order)."""
    out = []
    for m in np.unique(members):
        snaps = forecasts[members == m]
        if last is not None and not 1 <= last <= len(snaps):
            raise ValueError(f"last must be in [1, {len(snaps)}] (the snapshots kept per member), got {last}")
        out.append(snaps[-(last or len(snaps)):].mean(axis=0))
    return np.stack(out)


def member_forecasts(fitted: ESRNNFitted, train_series: Sequence[np.ndarray], *, holdout: int = 0) -> np.ndarray:
    """Each ensemble member's forecast, the mean of its snapshots: [members, n, horizon].

    With `holdout` = h > 0 the forecasts are made from the series without their last h points
    (those points were seen in training, so this ranks members, it does not validate them).
    """
    return mean_by_member(*_collect(_snapshot_forecasts(fitted, train_series, holdout)))


def member_holdout_smape(fitted: ESRNNFitted, train_series: Sequence[np.ndarray]) -> np.ndarray:
    """sMAPE (%) of each member on the last horizon of each training series: [members, n]."""
    h = fitted.horizon
    fc = member_forecasts(fitted, train_series, holdout=h)
    cfg = fitted.config
    truth = _prepare(train_series, cfg, h, fitted.periods)[0][:, -h:]
    truth = truth.astype(np.float64)[None]
    return 200.0 * np.mean(np.abs(fc - truth) / (np.abs(fc) + np.abs(truth)), axis=-1)


def forecast_esrnn(fitted: ESRNNFitted, train_series: Sequence[np.ndarray], *,
                   best_members: int | None = None) -> np.ndarray:
    """Ensemble forecast [n, horizon] (original scale).

    With `config.specialists_top` = k (and no `best_members`), each series averages its k members of
    lowest in-sample loss (`fitted.member_losses`), Smyl's ensemble of specialists.
    Without member selection (`best_members`, default `fitted.config.best_members`, None or >= the
    number of members) it is the mean of every snapshot's forecast. With it, each series averages
    the forecasts of its `best_members` members ranked by `member_holdout_smape`.

    `train_series` must be the series the model was fitted on (same order; the per-series
    smoothing parameters belong to them).
    """
    top = fitted.config.specialists_top
    if best_members is None and top is not None and fitted.member_losses is not None:
        return best_members_mean(member_forecasts(fitted, train_series), fitted.member_losses, top)
    k = fitted.config.best_members if best_members is None else best_members
    if k is not None and k < 1:
        raise ValueError(f"best_members must be >= 1, got {k}")
    n_members = len(set(fitted.snapshot_members)) if fitted.snapshot_members else 1
    if k is None or k >= n_members:
        # The mean of the members' means: members of different window groups may keep different
        # numbers of snapshots (a group cut short by the budget), and each member counts once.
        return member_forecasts(fitted, train_series).mean(axis=0)
    return best_members_mean(member_forecasts(fitted, train_series), member_holdout_smape(fitted, train_series), k)


def best_members_mean(forecasts: np.ndarray, errors: np.ndarray, k: int) -> np.ndarray:
    """Per series, the mean forecast of the `k` members with the lowest error.

    forecasts: [members, n, horizon]; errors: [members, n] (e.g. `member_holdout_smape`).
    """
    if forecasts.ndim != 3 or errors.shape != forecasts.shape[:2]:
        raise ValueError(f"forecasts must be [members, n, horizon] and errors [members, n], got "
                         f"{forecasts.shape} and {errors.shape}")
    if not 1 <= k <= forecasts.shape[0]:
        raise ValueError(f"k must be in [1, {forecasts.shape[0]}], got {k}")
    best = np.argsort(errors, axis=0, kind="stable")[:k]  # [k, n]
    return np.take_along_axis(forecasts, best[:, :, None], axis=0).mean(axis=0)
