"""ES-RNN forecasts: per-snapshot and per-member forecasts, the ensemble mean, member selection."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.models.esrnn.series import prepare_training_series
from jaxseq.models.esrnn.trainer import ESRNNFitted


@functools.partial(jax.jit, static_argnums=0)
def _forecast_snapshot(graphdef, state, y, cats):
    """One snapshot's forecast [n, horizon]; module-level so that every call with the same model
    structure and shapes (all snapshots, and repeated forecasts of a fit) reuses one compilation."""
    return nnx.merge(graphdef, state)(y, categories=cats)


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
    y_np, _ = prepare_training_series(train_series, cfg, fitted.horizon, fitted.periods)
    if holdout:
        if y_np.shape[1] - holdout < cfg.input_size + 3:
            raise ValueError(f"holdout={holdout} leaves fewer than input_size + 3 points of {y_np.shape[1]}")
        y_np = y_np[:, :-holdout]
    y = jnp.asarray(y_np)
    cats = None if fitted.categories is None else jnp.asarray(fitted.categories)
    members = fitted.snapshot_members or [0] * len(fitted.snapshots)
    for member, state in zip(members, fitted.snapshots):
        yield member, np.asarray(_forecast_snapshot(fitted.graphdef, state, y, cats), np.float64)


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
    truth = prepare_training_series(train_series, cfg, h, fitted.periods)[0][:, -h:]
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
