"""ES-RNN model: the Holt-Winters recursion, the losses, and the `ESRNN` NNX module (network + per-series
smoothing parameters). The method and its deviations from Smyl are described in `jaxseq.models.esrnn`."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.signature import init_signature
from jaxseq.ops.rnn import LSTMParams, init_lstm_params, lstm_scan

Array = jax.Array

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
    return masked_mean(loss, jnp.broadcast_to(mask, loss.shape))


def masked_mean(x: Array, mask: Array, axis: int | None = None) -> Array:
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
    return masked_mean(dd2, jnp.arange(dd2.shape[1])[None, :] >= start[:, None], axis=1)


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


@init_signature
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
        self.periods = as_periods(seasonality)
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


def as_periods(seasonality: int | Sequence[int]) -> tuple[int, ...]:
    """Seasonality as a tuple of periods > 1 (period 1 means none); ValueError for a period < 1."""
    if isinstance(seasonality, (int, np.integer)):
        periods = (int(seasonality),)
    else:
        periods = tuple(int(m) for m in seasonality)
    if any(m < 1 for m in periods):
        raise ValueError(f"seasonality periods must be >= 1, got {seasonality}")
    return tuple(m for m in periods if m > 1)
