"""ES-RNN: the Holt-Winters recursion, its gradients, the losses, a tiny fit, bad input."""
import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.data.m4 import smape, snaive
from jaxseq.models.esrnn import (
    ESRNN,
    ESRNNConfig,
    fit_esrnn,
    forecast_esrnn,
    holt_winters_multiplicative,
    initial_log_seasons,
    level_variability_penalty,
    best_members_mean,
    member_forecasts,
    mean_by_member,
    member_holdout_smape,
    pinball_loss,
    snapshot_forecasts,
    prepare_series,
    prepare_series_padded,
)


def _hw_loop(y, alpha, gammas, inits, horizon):
    """Plain python Holt-Winters (level + K multiplicative seasons), one series."""
    seasons = [list(s) for s in inits]
    levels, s_used = [], []
    level = None
    for t, yt in enumerate(y):
        s_now = [seasons[k][t] for k in range(len(seasons))]
        prod = float(np.prod(s_now)) if s_now else 1.0
        level = yt / prod if t == 0 else alpha * yt / prod + (1 - alpha) * level
        for k, g in enumerate(gammas):
            others = prod / s_now[k]
            seasons[k].append(g * yt / (level * others) + (1 - g) * s_now[k])
        levels.append(level)
        s_used.append(prod)
    n = len(y)
    for j in range(horizon):
        prod = 1.0
        for k, s in enumerate(seasons):
            m = len(inits[k])
            prod *= s[n + (j % m)]  # the last produced period, repeated
        s_used.append(prod)
    return np.array(levels), np.array(s_used)


def _random_case(rng, b=3, t=40, periods=(4, 6)):
    y = rng.uniform(1.0, 3.0, (b, t))
    alpha = rng.uniform(0.1, 0.9, b)
    gamma = rng.uniform(0.1, 0.9, (b, len(periods)))
    inits = [rng.uniform(0.7, 1.3, (b, m)) for m in periods]
    return y, alpha, gamma, inits


@pytest.mark.parametrize("periods", [(4, 6), (5,), ()])
def test_holt_winters_matches_python_loop_float64(periods):
    rng = np.random.default_rng(0)
    y, alpha, gamma, inits = _random_case(rng, periods=periods)
    h = 9
    with jax.enable_x64(True):
        lev, s = holt_winters_multiplicative(
            jnp.asarray(y), jnp.asarray(alpha), jnp.asarray(gamma).reshape(3, len(periods)),
            [jnp.asarray(i) for i in inits], horizon=h,
        )
        assert lev.dtype == jnp.float64
        for i in range(3):
            ref_l, ref_s = _hw_loop(y[i], alpha[i], gamma[i], [init[i] for init in inits], h)
            np.testing.assert_allclose(np.asarray(lev[i]), ref_l, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(s[i]), ref_s, rtol=1e-12)


def test_gradient_through_recursion_matches_finite_differences():
    rng = np.random.default_rng(1)
    y, alpha, gamma, inits = _random_case(rng, b=2, t=16, periods=(4,))
    with jax.enable_x64(True):
        y_j = jnp.asarray(y)

        def f(theta):
            a_logit, g_logit, s_log = theta
            lev, s = holt_winters_multiplicative(
                y_j, jax.nn.sigmoid(a_logit), jax.nn.sigmoid(g_logit), [jnp.exp(s_log)], horizon=4
            )
            return jnp.sum(jnp.log(lev) ** 2) + jnp.sum(s[:, -4:] ** 2) + jnp.mean(level_variability_penalty(lev))

        theta = (jnp.asarray(alpha - 0.5), jnp.asarray(gamma - 0.5), jnp.asarray(np.log(inits[0])))
        grads = jax.grad(f)(theta)
        f = jax.jit(f)
        flat, unravel = jax.flatten_util.ravel_pytree(theta)
        g_flat, _ = jax.flatten_util.ravel_pytree(grads)
        assert np.isfinite(np.asarray(g_flat)).all() and np.abs(np.asarray(g_flat)).max() > 0
        eps = 1e-6
        fd = np.array([
            (f(unravel(flat.at[k].add(eps))) - f(unravel(flat.at[k].add(-eps)))) / (2 * eps)
            for k in range(flat.size)
        ])
        np.testing.assert_allclose(np.asarray(g_flat), fd, rtol=1e-6, atol=1e-8)


def test_pinball_loss_values():
    pred = jnp.array([1.0, 2.0, 3.0])
    target = jnp.array([2.0, 2.0, 1.0])  # u = +1, 0, -2
    np.testing.assert_allclose(pinball_loss(pred, target, 0.5), (0.5 + 0 + 1.0) / 3, rtol=1e-6)
    np.testing.assert_allclose(pinball_loss(pred, target, 0.9), (0.9 + 0 + 0.2) / 3, rtol=1e-6)
    np.testing.assert_allclose(pinball_loss(pred, target, 0.1), (0.1 + 0 + 1.8) / 3, rtol=1e-6)
    mask = jnp.array([True, False, True])
    np.testing.assert_allclose(pinball_loss(pred, target, 0.9, mask=mask), (0.9 + 0.2) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="tau"):
        pinball_loss(pred, target, 1.0)


def test_level_penalty_and_initial_seasons():
    lev = jnp.exp(jnp.array([[0.0, 1.0, 3.0, 6.0]]))  # d = 1, 2, 3 -> dd = 1, 1
    np.testing.assert_allclose(level_variability_penalty(lev), [1.0], rtol=1e-6)
    np.testing.assert_allclose(level_variability_penalty(jnp.exp(jnp.arange(5.0))[None]), [0.0], atol=1e-10)
    with pytest.raises(ValueError, match="levels"):
        level_variability_penalty(jnp.ones((2, 2)))
    pattern = np.log(np.array([0.8, 1.0, 1.2, 1.0]))
    pattern -= pattern.mean()
    y = 5.0 * np.exp(np.tile(pattern, 10))[None]
    (idx,) = initial_log_seasons(y, (4,))
    np.testing.assert_allclose(idx[0], pattern, atol=1e-12)


def _seasonal_series(n=8, length=150, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length + 12)
    out = []
    for i in range(n):
        season = 1.0 + 0.4 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6))
        trend = (3.0 + i) * (1.0 + 0.004 * t * rng.uniform(-1, 1))
        out.append(trend * season * np.exp(rng.normal(0, 0.03, len(t))))
    return [s[:length] for s in out], np.stack([s[length:] for s in out])


TINY = dict(input_size=12, extra_seasonalities=(), max_len=150, dilations=((1, 2), (6,)), hidden_size=12,
            batch_size=4, ensemble_size=1, average_last_epochs=3, learning_rate=1e-2)

# Compilation dominates these tests, so the fits below share one data shape (4 series of 72 points,
# horizon 6, TINY's network): the library caches the compiled train step per model structure and
# step settings (the epochs, member count or averaging do not enter it) and the forecast per shape,
# so most fits reuse a step or forecast compiled by an earlier one.
PAIR = dict(TINY, ensemble_size=2, average_last_epochs=1)


@pytest.fixture(scope="module")
def pair_fit():
    """Two members, two epochs, seed 3: shared by the ensemble and member-independence tests."""
    train, _ = _seasonal_series(n=4, length=72)
    return train, fit_esrnn(train, horizon=6, seasonality=12, config=ESRNNConfig(epochs=2, **PAIR), seed=3,
                            progress=False)


def test_tiny_fit_reduces_loss_and_beats_seasonal_naive():
    train, test = _seasonal_series(n=4, length=72)
    test = test[:, :6]
    cfg = ESRNNConfig(epochs=60, **TINY)
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, seed=0, progress=False)
    losses = [r["loss"] for r in fitted.history]
    assert losses[-1] < 0.5 * losses[0]
    fc = forecast_esrnn(fitted, train)
    assert fc.shape == (4, 6) and np.isfinite(fc).all()
    assert smape(test, fc).mean() < smape(test, snaive(train, 6, 12)).mean()


def test_ensemble_snapshots_and_bad_input(pair_fit):
    train, fitted = pair_fit
    cfg = fitted.config
    assert len(fitted.snapshots) == 2 and {r["member"] for r in fitted.history} == {0, 1}
    with pytest.raises(ValueError, match="fitted series"):
        forecast_esrnn(fitted, train[:2])
    with pytest.raises(ValueError, match="positive"):
        prepare_series([np.r_[train[0][:-1], -1.0]], input_size=12, horizon=6, max_len=100)
    with pytest.raises(ValueError, match="length"):
        prepare_series([np.ones(10)], input_size=12, horizon=6, max_len=100)
    with pytest.raises(ValueError, match="at least one"):
        prepare_series([], input_size=12, horizon=6, max_len=100)
    with pytest.raises(ValueError, match="1-D"):
        prepare_series([np.ones((30, 2))], input_size=12, horizon=6, max_len=100)
    with pytest.raises(ValueError, match="tau"):
        ESRNNConfig(tau=1.5)
    with pytest.raises(ValueError, match="epochs"):
        ESRNNConfig(epochs=0)
    with pytest.raises(ValueError, match="horizon"):
        ESRNN(3, seasonality=12, horizon=0, input_size=4, rngs=__import__("flax").nnx.Rngs(0))
    with pytest.raises(ValueError, match="categories"):
        fit_esrnn(train, horizon=6, seasonality=12, config=cfg, categories=np.ones((2, 2)), progress=False)


def test_per_series_member_selection():
    train, _ = _seasonal_series(n=4, length=72)
    cfg = ESRNNConfig(epochs=2, **{**TINY, "ensemble_size": 3, "average_last_epochs": 2})
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, progress=False)
    assert fitted.snapshot_members == [0, 0, 1, 1, 2, 2]
    fcs = member_forecasts(fitted, train)
    assert fcs.shape == (3, 4, 6) and np.isfinite(fcs).all()
    # every member has as many snapshots: the mean of the members is the mean of the snapshots
    np.testing.assert_allclose(forecast_esrnn(fitted, train), fcs.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(forecast_esrnn(fitted, train, best_members=3), fcs.mean(axis=0), rtol=1e-6)
    # every snapshot, grouped by member: each member's snapshots average to its member forecast
    snap_members, snaps = snapshot_forecasts(fitted, train)
    assert snap_members.tolist() == [0, 0, 1, 1, 2, 2] and snaps.shape == (6, 4, 6)
    for m in range(3):
        np.testing.assert_allclose(snaps[snap_members == m].mean(axis=0), fcs[m], rtol=1e-6)
    np.testing.assert_allclose(mean_by_member(snap_members, snaps), fcs, rtol=1e-6)
    np.testing.assert_array_equal(mean_by_member(snap_members, snaps, last=1), snaps[[1, 3, 5]])
    with pytest.raises(ValueError, match=r"last must be in \[1, 2\]"):
        mean_by_member(snap_members, snaps, last=3)
    # holdout sMAPE, checked against a direct computation from the holdout forecasts
    err = member_holdout_smape(fitted, train)
    y = prepare_series(train, input_size=cfg.input_size, horizon=6, max_len=cfg.max_len)
    hold = member_forecasts(fitted, train, holdout=6)
    np.testing.assert_allclose(err[1], smape(y[:, -6:], hold[1]), rtol=1e-5)
    # best 1: each series takes exactly its best member's forecast; best 2: the mean of its two best
    one = forecast_esrnn(fitted, train, best_members=1)
    two = forecast_esrnn(fitted, train, best_members=2)
    for i in range(4):
        order = np.argsort(err[:, i], kind="stable")
        np.testing.assert_allclose(one[i], fcs[order[0], i], rtol=1e-6)
        np.testing.assert_allclose(two[i], fcs[order[:2], i].mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="best_members"):
        forecast_esrnn(fitted, train, best_members=0)
    with pytest.raises(ValueError, match="best_members"):
        ESRNNConfig(best_members=0)


def test_best_members_mean_picks_lowest_errors():
    fcs = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)  # member m, series i
    err = np.array([[3.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    out = best_members_mean(fcs, err, 2)
    np.testing.assert_allclose(out[0], (fcs[1, 0] + fcs[2, 0]) / 2)  # series 0: members 1, 2
    np.testing.assert_allclose(out[1], (fcs[0, 1] + fcs[1, 1]) / 2)  # series 1: members 0, 1
    np.testing.assert_allclose(best_members_mean(fcs, err, 3), fcs.mean(axis=0))
    with pytest.raises(ValueError, match="k must be"):
        best_members_mean(fcs, err, 4)
    with pytest.raises(ValueError, match="errors"):
        best_members_mean(fcs, err[:, :1], 1)


def test_padded_series_and_masked_penalty():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 2, 40), rng.uniform(1, 2, 30)
    y, start = prepare_series_padded([a, b], input_size=4, horizon=3, max_len=100, period=7)
    assert y.shape == (2, 40) and list(start) == [0, 10]
    np.testing.assert_allclose(y[0], a, rtol=1e-6)
    np.testing.assert_allclose(y[1, 10:], b, rtol=1e-6)
    for t in range(10):  # in-phase backwards repetition of b's first 7 values
        assert y[1, t] == pytest.approx(b[(t - 10) % 7], rel=1e-6)
    y2, start2 = prepare_series_padded([a, b], input_size=4, horizon=3, max_len=35, period=7)
    assert y2.shape == (2, 35) and list(start2) == [0, 5]
    levels = jnp.asarray(rng.uniform(1, 2, (2, 12)), jnp.float32)
    pen = level_variability_penalty(levels, start=jnp.array([0, 5]))
    np.testing.assert_allclose(pen[0], level_variability_penalty(levels)[0], rtol=1e-6)
    np.testing.assert_allclose(pen[1], level_variability_penalty(levels[1:, 5:])[0], rtol=1e-6)


def test_fit_with_padding_to_the_longest_series():
    train, test = _seasonal_series(n=4, length=72)
    train = [s if i % 2 else s[-56:] for i, s in enumerate(train)]  # two lengths, as M4 Hourly
    cfg = ESRNNConfig(epochs=3, pad_to_longest=True, **{**TINY, "average_last_epochs": 1})
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, progress=False)
    assert fitted.length == 72 and np.isfinite([r["loss"] for r in fitted.history]).all()
    fc = forecast_esrnn(fitted, train)
    assert fc.shape == (4, 6) and np.isfinite(fc).all()
    assert member_forecasts(fitted, train, holdout=6).shape == (1, 4, 6)


def test_members_train_independently_in_one_vmapped_step(pair_fit):
    """Member j of an ensemble is the run with seed + j alone: the vmapped members do not mix."""
    train, fitted = pair_fit
    cfg = fitted.config
    pair = member_forecasts(fitted, train)
    solo_cfg = dataclasses.replace(cfg, ensemble_size=1)
    for j in range(2):
        solo = fit_esrnn(train, horizon=6, seasonality=12, config=solo_cfg, seed=3 + j, progress=False)
        np.testing.assert_allclose(pair[j], member_forecasts(solo, train)[0], rtol=2e-4)
    assert not np.allclose(pair[0], pair[1], rtol=1e-3)


def test_members_with_different_input_windows():
    """input_size=(a, b): contiguous member groups, one per window; member m is seed + m's solo run
    with its group's window, and the forecast is the mean of the members."""
    train, _ = _seasonal_series(n=4, length=72)
    cfg = ESRNNConfig(epochs=2, **{**TINY, "input_size": (12, 8), "ensemble_size": 3, "average_last_epochs": 1})
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, seed=5, progress=False)
    assert [p.config.input_size for p in fitted.parts] == [12, 8]
    assert fitted.snapshot_members == [0, 1, 2] and {r["member"] for r in fitted.history} == {0, 1, 2}
    members = member_forecasts(fitted, train)
    for m, window in ((0, 12), (2, 8)):
        solo_cfg = dataclasses.replace(cfg, input_size=window, ensemble_size=1)
        solo = fit_esrnn(train, horizon=6, seasonality=12, config=solo_cfg, seed=5 + m, progress=False)
        np.testing.assert_allclose(members[m], member_forecasts(solo, train)[0], rtol=2e-4)
    np.testing.assert_allclose(forecast_esrnn(fitted, train), members.mean(axis=0), rtol=1e-9)
    snap_members, snaps = snapshot_forecasts(fitted, train)
    assert snap_members.tolist() == [0, 1, 2] and snaps.shape == (3, 4, 6)
    assert member_holdout_smape(fitted, train).shape == (3, 4)
    assert ESRNNConfig(input_size=[24, 48]).input_size == (24, 48)  # a list (from JSON) becomes a tuple
    assert ESRNNConfig(input_size=(24, 48, 96), ensemble_size=2).input_size == (24, 48)  # first windows
    assert ESRNNConfig(input_size=(24, 48), ensemble_size=1).input_size == 24
    with pytest.raises(ValueError, match="specialists_top needs one input_size"):
        ESRNNConfig(input_size=(24, 48), ensemble_size=4, specialists_top=2)
    for bad in ((), (24, 0), 0, (24, True)):
        with pytest.raises(ValueError, match="input_size must be an int >= 1"):
            ESRNNConfig(input_size=bad)


def test_c_state_penalty_adds_the_mean_square_cell():
    train, _ = _seasonal_series(n=4, length=72)
    nnx = __import__("flax").nnx
    model = ESRNN(4, seasonality=12, horizon=6, input_size=12, dilations=((1, 2), (6,)), hidden_size=8,
                  rngs=nnx.Rngs(0))
    y = jnp.asarray(np.stack(train), jnp.float32)
    from jaxseq.ops.rnn import LSTMParams, lstm_scan

    def cells_of(layer, inp):
        p = LSTMParams(layer.w_ih[...], layer.w_hh[...], layer.b[...])
        (o, c), _ = lstm_scan(p, inp, dilation=layer.dilation, return_cells=True)
        return o, jnp.mean(c**2, axis=-1)

    @jax.jit  # one compilation for every computation below (op by op, each op compiled alone)
    def computed(state, y):
        model = nnx.merge(graphdef, state)
        hw = model.series_rows(jnp.arange(4))
        plain = model.normalised(y, hw)
        out = model.normalised(y, hw, with_cell_penalty=True)
        # by hand: the first layer of each block, on that block's input
        x = jax.random.normal(jax.random.key(0), (4, 20, 12))
        _, cell_sq = model.network(x, with_cell_penalty=True)
        o00, sq0 = cells_of(model.blocks[0][0], x)
        block0 = model.blocks[0][1](o00)
        _, sq1 = cells_of(model.blocks[1][0], block0)
        return plain, out, cell_sq, sq0, sq1

    graphdef, state = nnx.split(model)
    plain, out, cell_sq, sq0, sq1 = computed(state, y)
    np.testing.assert_allclose(out["pred"], plain["pred"], rtol=1e-5, atol=1e-6)
    assert out["cell_sq"].shape == out["pred"].shape[:2] and bool(jnp.all(out["cell_sq"] > 0))
    np.testing.assert_allclose(cell_sq, (sq0 + sq1) / 2, rtol=1e-5, atol=1e-7)
    cfg = ESRNNConfig(epochs=2, c_state_penalty=1.0, **{**TINY, "average_last_epochs": 1})
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, progress=False)
    assert np.isfinite(forecast_esrnn(fitted, train)).all()
    with pytest.raises(ValueError, match="c_state_penalty"):
        ESRNNConfig(c_state_penalty=-1.0)


def test_specialists_train_on_their_series_and_forecast_as_the_best_k():
    from jaxseq.models.esrnn.trainer import _reassign, _specialist_batches

    rng = np.random.default_rng(0)
    losses = np.array([[1.0, 5.0, 2.0], [2.0, 1.0, 3.0], [3.0, 2.0, 1.0]])  # [members, series]
    assign = _reassign(losses, 2, rng)
    np.testing.assert_array_equal(assign, [[1, 0, 1], [1, 1, 0], [0, 1, 1]])
    assert _reassign(np.array([[1.0, 1.0], [2.0, 2.0]]), 1, rng)[1].sum() == 1  # an idle member gets a half
    batches = _specialist_batches(assign, [np.random.default_rng(m) for m in range(3)], steps=3, batch=2)
    assert batches.shape == (3, 3, 2)
    for m in range(3):
        assert set(batches[m].ravel()) == set(np.flatnonzero(assign[m]))

    train, _ = _seasonal_series(n=4, length=72)
    cfg = ESRNNConfig(epochs=2, specialists_top=2, **{**TINY, "ensemble_size": 3, "average_last_epochs": 1})
    fitted = fit_esrnn(train, horizon=6, seasonality=12, config=cfg, progress=False)
    assert fitted.member_losses.shape == (3, 4) and np.isfinite(fitted.member_losses).all()
    expect = best_members_mean(member_forecasts(fitted, train), fitted.member_losses, 2)
    np.testing.assert_allclose(forecast_esrnn(fitted, train), expect, rtol=1e-6)
    with pytest.raises(ValueError, match="specialists_top"):
        ESRNNConfig(ensemble_size=3, specialists_top=4)
    with pytest.raises(ValueError, match="best_members"):
        ESRNNConfig(specialists_top=2, best_members=2)
