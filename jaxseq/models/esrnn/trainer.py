"""ES-RNN training: the vmapped ensemble train step (shared Adam + sparse per-series Adam), epochs,
specialists, window groups, and `fit_esrnn`."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxseq.models.esrnn.config import ESRNNConfig, input_sizes
from jaxseq.models.esrnn.model import (ESRNN, SeriesParam, as_periods, masked_mean, initial_log_seasons,
                                       level_variability_penalty, pinball_loss)
from jaxseq.models.esrnn.series import prepare_training_series

Array = jax.Array

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


# ESRNNConfig fields that the train step and the series losses do not read (the schedule, the
# ensemble's size, selection and data preparation): `_step_config` resets them, so fits that differ
# only in them share one cached, compiled step (the member count enters through the shapes).
_NOT_IN_STEP = ("epochs", "learning_rate", "lr_decay", "ensemble_size", "average_last_epochs", "best_members",
                "specialists_top", "max_len", "batch_size", "pad_to_longest", "init_seasons_from_data")


def _step_config(config: ESRNNConfig) -> ESRNNConfig:
    defaults = ESRNNConfig.__dataclass_fields__
    return dataclasses.replace(config, **{f: defaults[f].default for f in _NOT_IN_STEP})


@functools.lru_cache(maxsize=8)
def _make_steps(graphdef, config: ESRNNConfig):
    """The jitted train step of the whole ensemble (cached: fits of the same model structure and
    step settings, `_step_config`, e.g. repeated seeds or other epoch counts, reuse one compilation).

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
            loss = loss + config.c_state_penalty * masked_mean(out["cell_sq"], mask)
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


@functools.lru_cache(maxsize=8)
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
        match) once the second epoch's time is known. None (the default): every configured epoch
        runs, so the forecasts depend on the seed only, not on the machine's speed.
      progress: print one line per epoch.
      categories: optional [n, C] one-hot (or any) per-series features appended to the inputs.

    Returns:
      `ESRNNFitted`; forecast with `forecast_esrnn(fitted, train_series)`.
    """
    config = config or ESRNNConfig()
    if len(input_sizes(config)) > 1:
        return _fit_window_groups(train_series, horizon=horizon, seasonality=seasonality, config=config, seed=seed,
                                  time_budget_s=time_budget_s, progress=progress, categories=categories)
    periods = tuple(dict.fromkeys(as_periods(seasonality) + tuple(config.extra_seasonalities)))
    y_np, start_np = prepare_training_series(train_series, config, horizon, periods)
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
    sizes = input_sizes(config)
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
        self.train_step = _make_steps(graphdef, _step_config(config))
        m_num = config.ensemble_size
        self.rngs = [np.random.default_rng(seed + m) for m in range(m_num)]
        self.member_losses: np.ndarray | None = None
        if config.specialists_top is not None:
            self.series_losses = _make_series_losses(graphdef, _step_config(config))
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
