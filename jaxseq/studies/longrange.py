"""`jaxseq longrange`: how long a sequence each model can learn each long-range task at.

    jaxseq longrange --preset default [--out DIR] [--workdir runs/longrange]
                     [--tasks copy mqar] [--models lstm transformer-rope] [--lengths 64 256 1024]
                     [--max-steps N] [--lrs 3e-3 1e-2] [--seeds 3] [--budget-s S] [--report-only]

Trains each model of `jaxseq.models.classifier.MODEL_SPECS` (LSTM, GRU, minGRU, minLSTM, causal
Transformer with sinusoidal or rotary positions; widths chosen so that parameter counts match a
target per task) on each task of `jaxseq.data.synthetic` (copy with delay, selective copy, MQAR,
adding) through the common training engine (`jaxseq.train.loop.train` with its `should_stop` /
`on_eval` hooks: checkpoints, TensorBoard logs, resumption) and finds, per (task, model), the
*frontier*: the longest length it solves and the shortest at which it fails. Protocol (issue 15):

* **One cell** = (task, model, length, learning rate, seed). It trains until it is **solved**
  (validation accuracy >= 99% at `confirm` consecutive checks on held-out sequences: a seed never
  used in training; adding counts |prediction - sum| < tolerance) or its validation curve has **plateaued**: over the last
  `patience` steps neither the validation loss fell below ``(1 - min_delta) x`` its best value before
  that window nor the validation accuracy rose more than ``min_delta`` above its best before it. The
  step cap (`max_steps`) ends the others: outcome **cap**. A cell cut by the study's time budget is
  **budget**. Only *plateau* counts as a failure; *cap*, *budget*, *diverged* (non-finite loss) and
  *error* are inconclusive and never counted as failures. Every cell records its outcome, the steps
  trained, the steps and training sequences (steps x batch) to solve, its validation curve, and the
  accuracy on a second fresh held-out set (the test set).
* **Learning rate**: the preset's sweep runs at the shortest length of each (task, model); the best
  (solved, then fewest steps to solve, then validation accuracy, then loss) is used everywhere else.
* **Length search**: lengths rise along the preset's grid (per task: `task_lengths`) until the
  first failure; then the study bisects (geometric midpoint) between the last success and the first
  failure until their ratio is <= 2, so each frontier is known within a factor of 2. A capped cell
  bounds the search the same way but is no failure: the frontier is then a lower bound ("cap at T").
  A divergence or an error stops the search with that reason. A per-model length cap (`max_len`)
  is stated.
* **Seeds**: the lengths on both sides of the frontier (last success, first failure) are trained with
  `seeds` seeds in all (model init and data order); the report gives each seed and the spread.
* **Capacity**: beside each model, the size of its recurrent state in bits (float32: 32 bits per
  number; LSTM 2 x width x layers numbers, GRU/minGRU/minLSTM width x layers; a Transformer's
  key-value cache grows with the length) and the bits the task asks it to hold.
* Scheduling: the search cells (seed 0) of every (task, model) run before any extra seed, shortest
  length first, so a time budget cuts the seeds and the longest cells, and every search advances
  before any goes far.

Presets: ``smoke`` (the tests), ``default`` (what fits 45 minutes on a 2-core CPU: delayed copy at
T=64 for every model, the adding problem up to T=512 for the LSTM and at 64 for the Transformers),
``full`` (every task and model, lengths 64 -> 256, adding 64 -> 512; hours on 2 cores, resumable, so
``--budget-s`` may split it into passes) and ``gpu`` (up to T=16384; ``scripts/gpu_longrange.sh``).
A preset may run a task for some models only (``task_models``). No preset has a wall-clock budget
unless ``--budget-s`` is given (cells it cuts are recorded as such and rerun).

Outputs in OUT (default: this machine's ``profiles/<machine_slug>/longrange/``, and
``.../longrange/<preset>/`` for presets other than ``default``): ``results.jsonl`` (one line per
finished cell, with the machine's fingerprint; a rerun skips the cells this machine finished with a
final outcome and retries budget cuts and errors, resuming a cut cell from its engine checkpoint),
``plan.json``, ``REPORT.md`` and PNG plots, all generated from the JSONL (one machine's records: the
newest machine's, or ``--machine``'s). Records of the superseded first protocol (a fixed step budget
per run, no ``outcome`` field; in git history) are refused. Workdirs (engine checkpoints, TensorBoard logs, the validation curve) go to ``--workdir``
(default ``runs/longrange``); checkpoints are deleted once a cell's record is final.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["PRESETS", "Preset", "TaskData", "Search", "run_longrange", "write_report", "default_out", "cell_outcome",
           "add_parser", "search", "plateaued", "solved_at", "frontier_of", "state_floats", "task_bits"]

SOLVED = 0.99
PROTOCOL = 2  # records of the first protocol (fixed step budget) carry no "protocol" field
_DEFAULT_WORKDIR = "runs/longrange"
_EVAL_SEED_OFFSET = 1_000_003  # validation set (the engine's eval batches: stop decisions)
_TEST_SEED_OFFSET = 2_000_003  # test set (accuracy reported beside)
#: Outcomes that end a cell for good; "budget" and "error" are retried by a rerun.
FINAL = ("solved", "plateau", "cap", "diverged")
_V1_NOTE = ("**First protocol** (before issue 15): every run had the same fixed step budget, so a low "
            "accuracy here can mean *not trained long enough*; these records carry no outcome "
            "(solved / plateau / cap) and no frontier search.")


@dataclasses.dataclass(frozen=True)
class Preset:
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    lengths: tuple[int, ...]  # the rising grid; bisection fills in between
    lrs: tuple[float, ...]
    max_steps: int  # the step cap of one cell
    batch_size: int
    target_params: int
    eval_every: int = 100  # steps between validation checks (stop decisions)
    patience: int = 1000  # plateau window, in steps
    min_delta: float = 0.01  # relative loss improvement / absolute accuracy gain that counts
    seeds: int = 3  # seeds at the frontier lengths (seed 0 included)
    confirm: int = 2  # consecutive validation checks >= 99% that make "solved" (one can be luck)
    warmup_steps: int = 100  # then cosine decay over max_steps to 0.1x
    ckpt_every: int = 1000  # engine checkpoints: a killed cell resumes from the last one
    layers: int = 2
    num_heads: int = 2
    difficulty: tuple[tuple[str, int], ...] = (("copy", 4), ("selective_copy", 4), ("mqar", 4), ("adding", 2))
    task_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("copy", (("num_symbols", 8),)),
        ("selective_copy", (("num_symbols", 8),)),
        ("mqar", (("vocab_size", 34),)),  # 16 keys, 16 values
        ("adding", (("tolerance", 0.04),)),
    )
    eval_examples: int = 128  # sequences in the validation set and in the test set
    max_len: tuple[tuple[str, int], ...] = ()  # per-model length caps (cost)
    task_lengths: tuple[tuple[str, tuple[int, ...]], ...] = ()  # per-task grids replacing `lengths`
    # Per-task batch sizes replacing `batch_size` (MQAR: at batch 16 even the Transformers stay at the
    # 1/D of picking among the in-context values; at batch 64 they bind keys to values in a few hundred steps).
    task_batch: tuple[tuple[str, int], ...] = ()
    # Per-task model lists replacing `models` (a preset that must fit a time budget runs the costly
    # tasks for fewer models).
    task_models: tuple[tuple[str, tuple[str, ...]], ...] = ()
    budget_s: float | None = None  # wall-clock budget of the whole study
    seed: int = 0
    lstm_forget_bias: float = 1.0  # added to the LSTM forget-gate bias at init (Jozefowicz et al. 2015)
    # Chrono initialisation of the LSTM's gates up to the cell's length (Tallec & Ollivier 2018);
    # replaces lstm_forget_bias when set.
    lstm_chrono: bool = False
    plateau_start: int = 0  # no plateau verdict before this step (slow starters: long-lag adding)
    scope: str = ""  # why the preset runs what it runs (the report states it)

    @property
    def steps(self) -> int:
        """The step cap (`max_steps`; the first protocol's name for its fixed step budget)."""
        return self.max_steps

    def difficulty_of(self, task: str) -> int:
        return dict(self.difficulty)[task]

    def options_of(self, task: str) -> dict[str, Any]:
        return dict(dict(self.task_options).get(task, ()))

    def batch_of(self, task: str) -> int:
        """The batch size of the task's cells (`task_batch`, else `batch_size`)."""
        return dict(self.task_batch).get(task, self.batch_size)

    def models_of(self, task: str) -> tuple[str, ...]:
        """The models run on `task` (`task_models`, else `models`), in the preset's model order."""
        chosen = dict(self.task_models).get(task)
        return self.models if chosen is None else tuple(m for m in self.models if m in chosen)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (task, model) the preset runs."""
        return [(t, m) for t in self.tasks for m in self.models_of(t)]

    def cap_of(self, model: str) -> int | None:
        return dict(self.max_len).get(model)

    def grid_of(self, model: str, task: str | None = None) -> list[int]:
        """The rising lengths of (task, model): the task's grid (else the preset's) up to the model's cap;
        the cap itself joins when the grid passes it (a cap of 256 on the grid 64, 512 gives 64, 256)."""
        cap = self.cap_of(model)
        grid = dict(self.task_lengths).get(task, self.lengths) if task is not None else self.lengths
        below = [T for T in sorted(set(grid)) if cap is None or T <= cap]
        if cap is not None and below and max(grid) > cap and cap not in below:
            below.append(cap)
        return below


_ALL_MODELS = ("lstm", "gru", "mingru", "minlstm", "transformer-sin", "transformer-rope")
_ALL_TASKS = ("copy", "selective_copy", "mqar", "adding")
_TRANSFORMERS = ("transformer-sin", "transformer-rope")

PRESETS: dict[str, Preset] = {
    # The tests: one task, two one-layer models, lengths 8 and 32 (a failure at 32 after a success at 8
    # bisects to 16), a two-value sweep, a 120-step cap checked every 20 steps (plateau window 40),
    # 2 seeds at the frontier (the third's path is the same; the fake-training tests run 3);
    # compilation dominates (~3 s per cell on 2 cores).
    "smoke": Preset(
        tasks=("copy",), models=("lstm", "transformer-rope"), lengths=(8, 32), lrs=(1e-2, 3e-2),
        max_steps=120, batch_size=8, target_params=6000, eval_every=20, patience=40, warmup_steps=5,
        ckpt_every=120, layers=1, difficulty=(("copy", 2), ("selective_copy", 2), ("mqar", 2), ("adding", 2)),
        eval_examples=16, seeds=2,
    ),
    # The whole grid on a 2-core CPU (`full`: about 4 hours; resumable, so it may run in passes with
    # --budget-s). Step times (quiet, batch 16, ~50k parameters): T=64 ~6.5 ms (recurrent) /
    # 10 ms (Transformer); T=256 ~33 / ~100 ms; T=512 (LSTM) ~185 ms; compilation ~3 s per cell.
    # Protocol 2's first run (Intel 2-core, 2026-12-01: cap 2500, window 500, forget-gate bias +4) left
    # GRU and minLSTM copy at T=64 capped at 94% / 93%, and the LSTM's adding at T=512 stopped as a
    # plateau at step 651 (sigmoid(4)^512 ~ 1e-4: the constant bias forgets over the lag). Measured
    # on the AMD 2-core, 2026-12-02, with the settings below: GRU copy T=64 (lr 3e-3) solved at
    # step 3350; LSTM adding T=512 with chrono initialisation (Tallec & Ollivier 2018: time scales up to
    # T) left chance at step ~300 and was at 92% by step 850. Hence chrono for the LSTM, a 5000-step cap
    # (80k sequences, about Hochreiter & Schmidhuber's 74k for T=100) and a 1000-step plateau window
    # (no verdict before step 1050). Grid 64 -> 256 (adding 64 -> 512), the Transformers stop at 256.
    # MQAR at batch 16 (protocol 2, and again with these settings, 2026-12-02): every model, the Transformers
    # too, stalls at ~25% = 1/D (choosing among the D values in context); at batch 64 Transformer-RoPE
    # solves T=64 at step 450 (lr 3e-3) / 600 (1e-3), 29-38k sequences, hence MQAR at batch 64.
    # Four resumed passes (AMD 2-core, 2026-12-02/03: 42 + 117 + 25 + 75 min) finished it: 134 cells,
    # 240 minutes of cell time (profiles/cpu-amd-epyc-2core/longrange/full).
    "full": Preset(
        tasks=_ALL_TASKS, models=_ALL_MODELS, lengths=(64, 256), lrs=(3e-3, 1e-2),
        max_steps=5000, batch_size=16, target_params=50_000, eval_every=50, patience=1000,
        eval_examples=128, max_len=(("transformer-sin", 256), ("transformer-rope", 256)),
        task_lengths=(("adding", (64, 512)),), task_batch=(("mqar", 64),), lstm_chrono=True,
    ),
    # What fits 45 minutes on the 2-core CPU with the whole protocol (learning-rate sweep, rise and
    # bisection, 3 seeds at the frontier lengths), sized from the `full` records' cell times (AMD
    # 2-core): the recurrent models need 2,500-4,700 steps on copy at T=64 (20-85 s a cell) and the
    # LSTM 2,300 on adding at T=512 (150 s); one more length per task would double the study. So:
    # delayed copy at T=64 for every model, and the adding problem up to T=512 for the LSTM and
    # (up to 64) the Transformers, with `full`'s settings (its cells have the same keys).
    # Selective copy, MQAR and the longer lengths are `full`'s.
    "default": Preset(
        tasks=("copy", "adding"), models=_ALL_MODELS, lengths=(64,), lrs=(3e-3, 1e-2),
        max_steps=5000, batch_size=16, target_params=50_000, eval_every=50, patience=1000,
        eval_examples=128, max_len=(("transformer-sin", 64), ("transformer-rope", 64)),
        task_lengths=(("adding", (64, 512)),),
        task_models=(("adding", ("lstm", "transformer-sin", "transformer-rope")),), lstm_chrono=True,
        scope="sized to fit 45 minutes on a 2-core CPU from the `full` preset's cell times: delayed copy at T=64 for "
              "every model and the adding problem up to T=512 for the LSTM (at 64 for the Transformers); each "
              "further length would about double it. Selective copy, MQAR and the longer lengths: `--preset full`.",
    ),
    # One GPU (scripts/gpu_longrange.sh): every model up to T=16384, batch 32, a 20k-step cap, plateau
    # window 2000 steps. The full grid takes hours; the script's wall-clock cap (budget_s, ~7 min)
    # cuts it and the report says which cells it cut; a rerun continues.
    "gpu": Preset(
        tasks=_ALL_TASKS, models=_ALL_MODELS, lengths=(64, 256, 1024, 4096, 16384), lrs=(3e-3, 1e-2),
        max_steps=20_000, batch_size=32, target_params=50_000, eval_every=200, patience=2000,
        eval_examples=256, ckpt_every=1000, task_batch=(("mqar", 128),), budget_s=7 * 60, lstm_chrono=True,
    ),
}


# ------------------------------------------------------------------------------------------------ data
class TaskData:
    """A `jaxseq.data.synthetic` task as the engine's `data` object.

    Training batches are ``task(seed).batch(step)``; the engine's eval batches and the held-out test
    batches come from other seeds. ``mask`` becomes the loss ``weights``.
    """

    def __init__(self, name: str, seq_len: int, difficulty: int, **options: Any) -> None:
        from jaxseq.data import synthetic

        self.name = name
        self.seq_len = int(seq_len)
        self.difficulty = int(difficulty)
        self.options = options
        self._tasks: dict[int, Any] = {}
        probe = synthetic.make_task(name, seq_len, difficulty, seed=0, **options)  # validates
        self.kind = probe.kind
        self.num_classes = probe.num_classes
        self.input_dim = probe.input_dim
        # The engine builds the model with vocab_size; regression data has no vocabulary.
        self.vocab_size = int(probe.vocab_size) if probe.vocab_size else 1
        self.chance = float(probe.chance_token_accuracy)
        self.eval_seed = 0

    def task(self, seed: int) -> Any:
        from jaxseq.data import synthetic

        if seed not in self._tasks:
            self._tasks[seed] = synthetic.make_task(self.name, self.seq_len, self.difficulty, seed=seed,
                                                    **self.options)
        return self._tasks[seed]

    @staticmethod
    def to_engine(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"inputs": batch["inputs"], "targets": batch["targets"],
                "weights": batch["mask"].astype(np.float32)}

    def _check_len(self, seq_len: int) -> None:
        if seq_len != self.seq_len:
            raise ValueError(f"TaskData({self.name}): built for seq_len={self.seq_len}, asked for {seq_len}")

    def train_batch(self, *, seed: int, step: int, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        self._check_len(seq_len)
        self.eval_seed = seed
        return self.to_engine(self.task(seed).batch(step, batch_size))

    def eval_batches(self, *, batch_size: int, seq_len: int, max_batches: int | None) -> Iterable[dict]:
        self._check_len(seq_len)
        task = self.task(self.eval_seed + _EVAL_SEED_OFFSET)
        for i in range(max_batches or 1):
            yield self.to_engine(task.batch(i, batch_size))

    def test_batches(self, *, seed: int, batch_size: int, examples: int) -> Iterable[dict]:
        """Held-out batches in the task's own format (with "mask"), for `task.accuracy`."""
        task = self.task(seed + _TEST_SEED_OFFSET)
        n = max(1, math.ceil(examples / batch_size))
        for i in range(n):
            yield task.batch(i, batch_size)


def regression_loss(module: Any, batch: dict, *, train: bool) -> tuple[Any, Any]:
    """Squared error of output channel 0 at the weighted positions (adding: the last step)."""
    import jax.numpy as jnp

    del train
    pred = module(batch["inputs"])[..., 0].astype(jnp.float32)
    w = batch["weights"].astype(jnp.float32)
    err = pred - batch["targets"].astype(jnp.float32)
    return jnp.sum(w * err * err), jnp.sum(w)


# ------------------------------------------------------------------------------------------------ models
_WIDTH_CACHE: dict[tuple, tuple[int, int]] = {}


def model_kwargs(model: str, data: TaskData, preset: Preset) -> dict[str, Any]:
    kw: dict[str, Any] = {"num_layers": preset.layers}
    if data.kind == "regression":
        kw.update(input_dim=data.input_dim, out_features=1)
    else:
        kw.update(vocab_size=data.vocab_size, out_features=data.num_classes)
    if model.startswith("transformer"):
        kw["num_heads"] = preset.num_heads
    if model == "lstm" and preset.lstm_chrono:
        kw["lstm_chrono"] = max(3, data.seq_len)
    elif model == "lstm" and preset.lstm_forget_bias:
        kw["lstm_forget_bias"] = preset.lstm_forget_bias
    return kw


def width_for(model: str, data: TaskData, preset: Preset) -> tuple[int, int]:
    """(d_model, parameter count) matched to the preset's target for this task's input/output sizes."""
    from jaxseq.models.classifier import matched_width

    kw = model_kwargs(model, data, preset)
    key = (model, preset.target_params, tuple(sorted(kw.items())))
    if key not in _WIDTH_CACHE:
        # Rotary positions need an even head dim: widths are multiples of 2 * heads for Transformers.
        multiple = 2 * preset.num_heads if model.startswith("transformer") else 4
        _WIDTH_CACHE[key] = matched_width(model, preset.target_params, multiple=multiple, **kw)
    return _WIDTH_CACHE[key]



def make_loss_fn(data: TaskData, sink: Callable[[Any, Any], None]) -> Callable[..., tuple[Any, Any]]:
    """The engine's loss for `data`, which on evaluation also counts correct answers into `sink`.

    The engine's `on_eval` hook gets only the loss; the held-out accuracy that decides "solved" is
    summed per eval batch by a host callback (`sink(hits, count)`), read and reset in `on_eval`.
    Classification: token cross-entropy (float32 softmax) at the weighted positions; regression:
    squared error of channel 0 (`regression_loss`), correct when |error| < the task's tolerance.
    """
    import jax
    import jax.numpy as jnp
    import optax

    tol = getattr(data.task(0), "tolerance", None)

    def loss_fn(module: Any, batch: dict, *, train: bool) -> tuple[Any, Any]:
        out = module(batch["inputs"])
        w = batch["weights"].astype(jnp.float32)
        if data.kind == "regression":
            err = out[..., 0].astype(jnp.float32) - batch["targets"].astype(jnp.float32)
            loss = jnp.sum(w * err * err)
            correct = jnp.abs(err) < tol
        else:
            logits = out.astype(jnp.float32)
            loss = jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]))
            correct = jnp.argmax(logits, axis=-1) == batch["targets"]
        if not train:
            jax.debug.callback(sink, jnp.sum(w * correct), jnp.sum(w))
        return loss, jnp.sum(w)

    return loss_fn


def state_floats(model: str, d_model: int, layers: int) -> int | None:
    """Numbers in the recurrent state carried between steps (None: a Transformer's cache grows with T)."""
    if model in _TRANSFORMERS:
        return None
    return (2 if model == "lstm" else 1) * d_model * layers  # LSTM: h and c; the others: h


def task_bits(task: str, difficulty: int, options: dict[str, Any]) -> float:
    """Bits the model must hold between the last input it needs and the answer, at least.

    copy / selective copy: ``difficulty`` symbols of ``num_symbols`` (their order is implied);
    MQAR: a value for each of ``difficulty`` keys (``log2`` of the number of value assignments);
    adding: the running sum to the tolerance, ``log2(difficulty / (2 tolerance))``.
    """
    from jaxseq.data import synthetic

    if task in ("copy", "selective_copy"):
        n = options.get("num_symbols", 8 if task == "copy" else 16)
        return difficulty * math.log2(n)
    if task == "mqar":
        t = synthetic.MQARTask(3 * difficulty, difficulty, **options)
        # distinct values: log2(V! / (V - D)!)
        return sum(math.log2(t.num_values - i) for i in range(difficulty))
    if task == "adding":
        return math.log2(difficulty / (2 * options.get("tolerance", 0.04)))
    raise ValueError(f"task: unknown {task!r}; expected one of {', '.join(_ALL_TASKS)}")


# ------------------------------------------------------------------------------------------------ plan
def _validate(preset: Preset) -> None:
    from jaxseq.models.classifier import MODEL_SPECS

    if not preset.tasks or not preset.models or not preset.lengths or not preset.lrs:
        raise ValueError("--tasks, --models, --lengths and the learning rates must be non-empty")
    bad = [t for t in preset.tasks if t not in _ALL_TASKS]
    if bad:
        raise ValueError(f"--tasks: unknown {bad}; expected some of {', '.join(_ALL_TASKS)}")
    bad = [m for m in preset.models if m not in MODEL_SPECS]
    if bad:
        raise ValueError(f"--models: unknown {bad}; expected some of {', '.join(MODEL_SPECS)}")
    if any((not isinstance(t, int)) or t < 1 for t in preset.lengths):
        raise ValueError(f"--lengths: expected positive ints, got {list(preset.lengths)}")
    for name in ("max_steps", "batch_size", "eval_every", "patience", "seeds", "ckpt_every", "confirm"):
        if getattr(preset, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(preset, name)}")
    if preset.plateau_start < 0:
        raise ValueError(f"--plateau-start: expected >= 0, got {preset.plateau_start}")
    if preset.warmup_steps < 0:
        raise ValueError(f"warmup_steps: expected >= 0, got {preset.warmup_steps}")
    if not 0 <= preset.min_delta < 1:
        raise ValueError(f"min_delta: expected 0 <= value < 1, got {preset.min_delta}")
    if any(not lr > 0 for lr in preset.lrs):
        raise ValueError(f"--lrs: expected positive values, got {list(preset.lrs)}")
    if preset.budget_s is not None and preset.budget_s <= 0:
        raise ValueError(f"--budget-s: expected > 0, got {preset.budget_s}")
    # Every task must accept every length (fails fast with the task's own message); bisection
    # points lie between grid lengths, and every task's minimum length is a lower bound only.
    for task, b in preset.task_batch:
        if task not in _ALL_TASKS or not isinstance(b, int) or b < 1:
            raise ValueError(f"task_batch: expected (task in {', '.join(_ALL_TASKS)}, batch >= 1), got ({task!r}, {b!r})")
    for task, chosen in preset.task_models:
        bad = [m for m in chosen if m not in preset.models]
        if task not in _ALL_TASKS or not chosen or bad:
            raise ValueError(f"task_models: expected (task in {', '.join(_ALL_TASKS)}, a non-empty subset of the "
                             f"models {list(preset.models)}), got ({task!r}, {list(chosen)!r})")
    for task, grid in preset.task_lengths:
        if any((not isinstance(t, int)) or t < 1 for t in grid) or not grid:
            raise ValueError(f"task_lengths: {task}: expected positive ints, got {list(grid)}")
    for task in preset.tasks:
        for T in sorted(set(preset.lengths) | set(dict(preset.task_lengths).get(task, ()))):
            try:
                TaskData(task, T, preset.difficulty_of(task), **preset.options_of(task))
            except ValueError as e:
                raise ValueError(f"--lengths: task {task} at length {T}: {e}") from None


def run_key(preset: Preset, task: str, model: str, length: int, lr: float, seed_index: int = 0) -> str:
    """The identity of a cell under this preset's protocol (what a rerun matches to skip it)."""
    point = {"protocol": PROTOCOL, "task": task, "model": model, "length": length, "lr": lr,
             "seed": preset.seed + seed_index, "max_steps": preset.max_steps, "batch_size": preset.batch_of(task),
             "eval_every": preset.eval_every, "patience": preset.patience, "min_delta": preset.min_delta,
             "confirm": preset.confirm, "warmup_steps": preset.warmup_steps, "eval_examples": preset.eval_examples,
             "difficulty": preset.difficulty_of(task), "options": preset.options_of(task),
             "target_params": preset.target_params, "layers": preset.layers}
    if model == "lstm":
        point["lstm_forget_bias"] = preset.lstm_forget_bias
        if preset.lstm_chrono:  # only when set: the keys of earlier runs stay valid
            point["lstm_chrono"] = True
    if preset.plateau_start:
        point["plateau_start"] = preset.plateau_start
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def _workdir(root: Path, task: str, model: str, length: int, lr: float, seed: int, preset: Preset) -> Path:
    fb = ("_chrono" if preset.lstm_chrono else f"_fb{preset.lstm_forget_bias:g}") if model == "lstm" else ""
    fb += f"_ps{preset.plateau_start}" if preset.plateau_start else ""
    return root / task / model / (f"T{length}_lr{lr:g}_seed{seed}_cap{preset.max_steps}_b{preset.batch_of(task)}"
                                  f"_e{preset.eval_every}_p{preset.patience}_d{preset.difficulty_of(task)}"
                                  f"_n{preset.target_params}{fb}")


def _latest(records: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        out[r["key"]] = r
    return out


def outcome_of(rec: dict | None) -> str | None:
    """A record's outcome; records without one (a fake or a hand-written record) are read from status."""
    if rec is None:
        return None
    if rec.get("outcome"):
        return rec["outcome"]
    st = rec.get("status")
    if st == "ok":
        acc = rec.get("val_accuracy", rec.get("token_accuracy", 0.0))
        return "solved" if acc >= SOLVED else "cap"
    return {"diverged": "diverged", "error": "error", "not_run": "budget", "budget": "budget"}.get(st, "error")


def _lr_score(rec: dict) -> tuple:
    """Sort key for the learning-rate choice (higher is better)."""
    o = outcome_of(rec)
    if o in ("diverged", "error", "budget", None):
        return (0, 0.0, -1.0, -math.inf)
    loss = rec.get("val_loss")
    steps = rec.get("steps_to_solve") or rec.get("steps") or 0
    return (2 if o == "solved" else 1, -float(steps) if o == "solved" else 0.0,
            float(rec.get("val_accuracy", rec.get("token_accuracy", 0.0))),
            -(loss if loss is not None and math.isfinite(loss) else math.inf))


def plateaued(history: list, patience: int, min_delta: float, start: int = 0) -> bool:
    """True when the validation curve stopped improving (the protocol's plateau rule).

    `history`: ``[(step, val_loss, val_accuracy), ...]`` in step order. Plateau at the last step k:
    ``k >= start``, some evaluation lies at or before ``k - patience``, and none after it has a loss
    below ``(1 - min_delta)`` x the best loss up to ``k - patience`` or an accuracy above the best
    accuracy up to then plus ``min_delta``.
    """
    if not history:
        return False
    k = history[-1][0]
    if k < start:
        return False
    before = [h for h in history if h[0] <= k - patience]
    if not before:
        return False
    recent = [h for h in history if h[0] > k - patience]
    best_loss = min(h[1] for h in before)
    best_acc = max(h[2] for h in before)
    loss_better = min(h[1] for h in recent) < best_loss - min_delta * abs(best_loss)
    acc_better = max(h[2] for h in recent) > best_acc + min_delta
    return not (loss_better or acc_better)


def cell_outcome(history: list, stop: str | None, preset: Preset) -> str:
    """A finished cell's outcome from its validation curve and why training stopped.

    `stop` is what `should_stop` decided ("solved", "plateau", "budget") or None when the step cap
    ended training. The engine evaluates once more at the step it stops at, off the evaluation grid:
    that point may shift the plateau window and show a noise-sized gain, so a stop the plateau rule
    made stays a plateau (found on the Intel 2-core run of 2026-12-01: selective copy, LSTM, T=64,
    stopped as a plateau at step 551 and was recorded as "cap").
    """
    if solved_at(history, preset.confirm) is not None:
        return "solved"
    if stop == "budget":
        return "budget"
    if stop == "plateau" or plateaued(history, preset.patience, preset.min_delta, preset.plateau_start):
        return "plateau"
    return "cap"


def solved_at(history: list, confirm: int) -> int | None:
    """Index of the first of `confirm` consecutive validation checks at accuracy >= SOLVED, or None.

    One check at 99% of a small validation set can be luck (the adding task scores one answer per
    sequence); `confirm` consecutive ones make "solved", dated by the first of them.
    """
    run = 0
    for i, h in enumerate(history):
        run = run + 1 if h[2] >= SOLVED else 0
        if run >= confirm:
            return i - confirm + 1
    return None


@dataclasses.dataclass
class Search:
    """Where the length search of one (task, model) stands, computed from its finished cells.

    `lo`: the longest length solved (seed 0), `hi`: the shortest failure (plateau) above it; None when
    there is none. `stopped`: why the search ended without a failure (an inconclusive cell, or the
    top of the grid), None while it runs or when it found a failure. `pending`: the cells still to
    run, as (length, lr, seed_index), in order.
    """

    task: str
    model: str
    lr: float | None = None
    lo: int | None = None
    hi: int | None = None
    stopped: str | None = None
    tried: list[int] = dataclasses.field(default_factory=list)  # seed-0 lengths, in search order
    pending: list[tuple[int, float, int]] = dataclasses.field(default_factory=list)
    budget_cut: bool = False  # the next pending cell was cut or left out by a time budget

    @property
    def done(self) -> bool:
        return not self.pending

    def frontier_lengths(self) -> list[int]:
        return [T for T in (self.lo, self.hi) if T is not None]


def search(preset: Preset, task: str, model: str, lookup: Callable[[str], dict | None]) -> Search:
    """The search state of (task, model) given `lookup(run_key) -> record or None` (a pure function).

    Sweep the learning rates at the shortest length (seed 0); rise along the grid with the chosen
    rate until the first plateau; bisect geometrically between the last success and the first
    failure until their ratio is <= 2. A cell ended by the step cap is no failure: the search probes
    below it the same way (raising the lower bound) and the frontier stays a lower bound, "cap at T".
    A divergence or an error stops the search there. Then the other seeds at the frontier lengths.
    """
    s = Search(task, model)
    grid = preset.grid_of(model, task)
    if not grid:
        s.stopped = f"no length of the grid is within {model}'s cap {preset.cap_of(model)}"
        return s
    start = grid[0]

    def rec(T: int, lr: float, seed_index: int = 0) -> dict | None:
        """The cell's record; a budget cut counts as not run (it is pending, never a result)."""
        r = lookup(run_key(preset, task, model, T, lr, seed_index))
        return None if outcome_of(r) == "budget" else r

    def pend(cells: list[tuple[int, float, int]]) -> Search:
        s.pending = cells
        s.budget_cut = bool(cells) and outcome_of(lookup(run_key(preset, task, model, cells[0][0], cells[0][1],
                                                                 cells[0][2]))) == "budget"
        return s

    sweep = [(lr, rec(start, lr)) for lr in preset.lrs]
    missing = [(start, lr, 0) for lr, r in sweep if r is None]
    if missing:
        return pend(missing)
    best_lr, _ = max(sweep, key=lambda x: _lr_score(x[1]))
    s.lr = best_lr
    capped: int | None = None  # the shortest length ended by the step cap (no failure below it yet)

    def visit(T: int) -> bool:
        """Record the outcome at T; False when the search must stop there (divergence, error)."""
        nonlocal capped
        s.tried.append(T)
        o = outcome_of(rec(T, s.lr))
        if o == "solved":
            s.lo = T
        elif o == "plateau":
            s.hi = T
        elif o == "cap":
            capped = T if capped is None else min(capped, T)
        else:
            s.stopped = f"{o} at {T}"
            return False
        return True

    for T in grid:
        if rec(T, s.lr) is None:
            return pend([(T, s.lr, 0)])
        if not visit(T) or s.lo != T:
            break
    if s.stopped is None:
        while True:
            # The nearer of the failure and the cap bounds from above: a capped midpoint ends the
            # bisection (probing it again would loop forever; it did, on 2026-12-01).
            top = min((T for T in (s.hi, capped) if T is not None), default=None)
            if s.lo is None or top is None or top <= 2 * s.lo:
                break
            mid = int(round(math.sqrt(s.lo * top)))
            if not s.lo < mid < top or mid in s.tried:
                break
            if rec(mid, s.lr) is None:
                return pend([(mid, s.lr, 0)])
            if not visit(mid):
                break
        if s.stopped is None and s.hi is not None and capped is not None and s.lo is not None \
                and s.lo < capped < s.hi and s.hi > 2 * s.lo:
            s.stopped = f"bisection ended by the step cap at {capped}"
        if s.stopped is None and s.hi is None:
            if capped is not None:
                s.stopped = f"cap at {capped}"
            elif s.lo == grid[-1]:
                s.stopped = f"solved every length of the grid up to {grid[-1]}" + (
                    f" ({model} capped at {preset.cap_of(model)})" if preset.cap_of(model) else "")
    return pend([(T, s.lr, k) for T in s.frontier_lengths() for k in range(1, preset.seeds)
                 if rec(T, s.lr, k) is None])


def frontier_of(preset: Preset, task: str, model: str, records: list[dict]) -> Search:
    """`search` over finished records (what the report reads)."""
    by_key = _latest(records)
    return search(preset, task, model, by_key.get)


# ------------------------------------------------------------------------------------------------ one cell
def _checkpoint_steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def train_one(preset: Preset, task: str, model: str, length: int, lr: float, workdir: Path, *,
              seed_index: int = 0, deadline: float | None = None, engine_progress: bool = False,
              keep_checkpoints: bool = False) -> dict[str, Any]:
    """Train one cell through `jaxseq.train.loop.train` until solved, plateaued, capped or `deadline`.

    `deadline`: a `time.time()` value; past it the cell stops at the next step with outcome "budget"
    and keeps its checkpoint (a rerun resumes it). Returns the cell's record (without "key").
    """
    import jax
    from flax import nnx

    from jaxseq.models.classifier import MODEL_SPECS, build_model, count_parameters
    from jaxseq.train.config import TrainConfig
    from jaxseq.train.loop import NonFiniteLossError, train

    seed = preset.seed + seed_index
    data = TaskData(task, length, preset.difficulty_of(task), **preset.options_of(task))
    data.eval_seed = seed  # the validation set of this seed, even before the first training batch
    d_model, n_params = width_for(model, data, preset)
    kw = model_kwargs(model, data, preset)

    def model_fn(config: Any, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
        del config, vocab_size  # sizes come from the task (regression data has no vocabulary)
        return build_model(model, d_model=d_model, rngs=rngs, **kw)

    batch_size = preset.batch_of(task)
    config = TrainConfig(
        task="custom", model=MODEL_SPECS[model][0], workdir=str(workdir), d_model=d_model,
        layers=preset.layers, num_heads=preset.num_heads, steps=preset.max_steps,
        batch_size=batch_size, seq_len=length, seed=seed, lr=lr, warmup_steps=preset.warmup_steps,
        eval_every=preset.eval_every, eval_batches=max(1, math.ceil(preset.eval_examples / batch_size)),
        log_every=preset.eval_every, ckpt_every=preset.ckpt_every, keep_checkpoints=1, progress=engine_progress,
        extra={"longrange": {"task": task, "model": model, "difficulty": preset.difficulty_of(task)}},
    )
    counts = {"hits": 0.0, "n": 0.0}

    def sink(hits: Any, n: Any) -> None:
        counts["hits"] += float(hits)
        counts["n"] += float(n)

    # The validation curve survives a kill beside the engine's checkpoint: entries after the step the
    # engine resumes from are dropped (they are evaluated again).
    hist_path = workdir / "history.json"
    ck = _checkpoint_steps(workdir)
    history: list[list[float]] = []
    if hist_path.is_file() and ck:
        history = [h for h in json.loads(hist_path.read_text()) if h[0] <= ck[-1]]
    why: dict[str, str] = {}

    def on_eval(k: int, loss: float) -> None:
        jax.effects_barrier()  # the callbacks of this evaluation have all run
        acc = counts["hits"] / max(counts["n"], 1.0)
        counts.update(hits=0.0, n=0.0)
        history[:] = [h for h in history if h[0] < k] + [[int(k), float(loss), float(acc)]]
        workdir.mkdir(parents=True, exist_ok=True)
        hist_path.write_text(json.dumps(history))

    def should_stop(k: int) -> bool:
        if deadline is not None and time.time() > deadline:
            why["stop"] = "budget"
            return True
        if solved_at(history, preset.confirm) is not None:
            why["stop"] = "solved"
            return True
        if plateaued(history, preset.patience, preset.min_delta, preset.plateau_start):
            why["stop"] = "plateau"
            return True
        return False

    rec: dict[str, Any] = {
        "protocol": PROTOCOL, "task": task, "model": model, "length": length, "lr": lr, "seed": seed,
        "seed_index": seed_index, "max_steps": preset.max_steps, "batch_size": batch_size,
        "eval_every": preset.eval_every, "patience": preset.patience, "min_delta": preset.min_delta,
        "difficulty": preset.difficulty_of(task), "d_model": d_model, "params": n_params,
        "layers": preset.layers, "chance": data.chance, "workdir": str(workdir),
        "state_floats": state_floats(model, d_model, preset.layers),
        "task_bits": task_bits(task, preset.difficulty_of(task), preset.options_of(task)),
    }
    if model == "lstm":
        rec["lstm_forget_bias"] = preset.lstm_forget_bias
        rec["lstm_chrono"] = bool(preset.lstm_chrono)
    rec["plateau_start"] = preset.plateau_start
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        result = train(config, model_fn=model_fn, data=data, loss_fn=make_loss_fn(data, sink),
                       should_stop=should_stop, on_eval=on_eval)
    except NonFiniteLossError as e:
        rec.update(status="diverged", outcome="diverged", message=str(e)[:500], history=history,
                   train_wall_s=time.perf_counter() - w0, train_cpu_s=time.process_time() - c0)
        if not keep_checkpoints:
            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
        return rec
    rec["train_wall_s"] = time.perf_counter() - w0
    rec["train_cpu_s"] = time.process_time() - c0
    rec["resumed_from"] = result.resumed_from
    assert count_parameters(result.model) == n_params
    rec["steps"] = result.step
    rec["sequences"] = result.step * batch_size
    rec["history"] = history
    at = solved_at(history, preset.confirm)
    first = history[at] if at is not None else None
    outcome = cell_outcome(history, why.get("stop"), preset)
    rec["outcome"] = outcome
    rec["steps_to_solve"] = int(first[0]) if first else None
    rec["sequences_to_solve"] = int(first[0]) * batch_size if first else None
    if history:
        rec["val_loss"], rec["val_accuracy"] = history[-1][1], history[-1][2]
        rec["best_val_loss"] = min(h[1] for h in history)
    if outcome == "budget":  # resumed later: no test yet, keep the checkpoint
        rec["status"] = "budget"
        return rec

    # The test set: fresh held-out sequences from a third seed, scored by the task's own metric.
    w1 = time.perf_counter()
    graphdef, params = nnx.split(result.model)
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    task_obj = data.task(seed + _TEST_SEED_OFFSET)
    hits = tokens = seqs = solved = 0.0
    sq_err = 0.0
    for batch in data.test_batches(seed=seed, batch_size=batch_size, examples=preset.eval_examples):
        out = np.asarray(forward(params, batch["inputs"]))
        acc = task_obj.accuracy(out, batch)
        n_tok = float(batch["mask"].sum())
        hits += acc["token_accuracy"] * n_tok
        tokens += n_tok
        seqs += batch["inputs"].shape[0]
        solved += acc["sequence_accuracy"] * batch["inputs"].shape[0]
        if "mse" in acc:
            sq_err += acc["mse"] * n_tok
    rec["token_accuracy"] = hits / max(tokens, 1.0)
    rec["sequence_accuracy"] = solved / max(seqs, 1.0)
    if data.kind == "regression":
        rec["test_mse"] = sq_err / max(tokens, 1.0)
    rec["test_examples"] = int(seqs)
    rec["eval_wall_s"] = time.perf_counter() - w1
    rec["status"] = "ok"
    if not keep_checkpoints:
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    return rec


# ------------------------------------------------------------------------------------------------ study
def _append(path: Path, rec: dict) -> None:
    from jaxseq.bench.sweep import append_jsonl

    append_jsonl(path, rec)


def default_out(preset_name: str = "default") -> Path:
    """This machine's folder for a preset: profiles/<machine>/longrange[/<preset>] ("default": none)."""
    from jaxseq.studies.base import default_out as _default_out

    return _default_out("longrange", "" if preset_name == "default" else preset_name)


def plan_of(preset: Preset) -> dict[str, Any]:
    return {"protocol": PROTOCOL, "preset": dataclasses.asdict(preset), "solved_threshold": SOLVED}


def run_longrange(preset: Preset, out: str | Path, *, workdir: str | Path = _DEFAULT_WORKDIR,
                  progress: bool = True, engine_progress: bool = False, keep_checkpoints: bool = False,
                  preset_name: str = "custom") -> list[dict]:
    """Run (or resume) the study of `preset`; returns the records written by this call.

    Only this machine's records of `out/results.jsonl` with a final outcome count as done
    (`jaxseq.studies.base`); budget cuts and errors run again.
    """
    from jaxseq.bench.sweep import environment_info, load_records
    from jaxseq.studies.base import own_records, this_machine_id

    _validate(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(workdir)
    results = out / "results.jsonl"
    plan = {**plan_of(preset), "preset_name": preset_name}
    (out / "plan.json").write_text(json.dumps(plan, indent=2, default=str) + "\n")
    done = {k: r for k, r in _latest(own_records(load_records(results))).items()
            if r.get("protocol") == PROTOCOL and outcome_of(r) in FINAL}
    written: list[dict] = []
    combos = preset.pairs()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="longrange", unit="cell", dynamic_ncols=True, file=sys.stderr)
    start = time.time()
    deadline = None if preset.budget_s is None else start + preset.budget_s
    spent = False  # a cell came back cut by the budget: start no other

    def emit(rec: dict) -> None:
        rec.update(environment_info())
        rec["preset"] = preset_name
        _append(results, rec)
        done[rec["key"]] = rec
        written.append(rec)

    try:
        while True:
            nexts = []
            for i, (task, model) in enumerate(combos):
                s = search(preset, task, model, done.get)
                if s.pending:
                    T, lr, k = s.pending[0]
                    nexts.append((k > 0, T, i, k, lr, task, model))
            if not nexts:
                break
            if spent or (deadline is not None and time.time() > deadline):
                # What the budget leaves out is recorded (retried by a rerun), never dropped.
                for _, T, _, k, lr, task, model in nexts:
                    if outcome_of(done.get(run_key(preset, task, model, T, lr, k))) == "budget":
                        continue  # cut while running: its record says so already
                    emit({"key": run_key(preset, task, model, T, lr, k), "protocol": PROTOCOL, "task": task,
                          "model": model, "length": T, "lr": lr, "seed": preset.seed + k, "seed_index": k,
                          "status": "budget", "outcome": "budget",
                          "reason": f"not started: the study's time budget of {preset.budget_s or 0:.0f} s was spent"})
                break
            _, T, _, k, lr, task, model = min(nexts)
            key = run_key(preset, task, model, T, lr, k)
            if bar is not None:
                bar.set_postfix_str(f"{task} {model} T={T} lr={lr:g} seed={preset.seed + k}")
            rec: dict[str, Any] = {"key": key, "task": task, "model": model, "length": T, "lr": lr,
                                   "seed": preset.seed + k, "seed_index": k, "protocol": PROTOCOL}
            try:
                rec.update(train_one(preset, task, model, T, lr,
                                     _workdir(root, task, model, T, lr, preset.seed + k, preset),
                                     seed_index=k, deadline=deadline, engine_progress=engine_progress,
                                     keep_checkpoints=keep_checkpoints))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # recorded, retried on the next run
                rec.update(status="error", outcome="error", message=f"{type(e).__name__}: {e}"[:2000])
            rec["key"] = key
            rec.setdefault("outcome", outcome_of(rec))
            if rec["outcome"] == "budget":
                spent = True
                rec["reason"] = f"cut by the study's time budget of {preset.budget_s or 0:.0f} s"
            emit(rec)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    write_report(out, machine=this_machine_id())
    return written


# ------------------------------------------------------------------------------------------------ report
def _preset_from_plan(p: dict[str, Any]) -> Preset:
    """The Preset saved in plan.json (JSON lists back to tuples; unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(Preset)}

    def tup(x: Any) -> Any:
        return tuple(tup(v) for v in x) if isinstance(x, list) else x

    return Preset(**{k: tup(v) for k, v in p.items() if k in names})


def write_report(out: str | Path, *, machine: str | None = None,
                 references: list[str | Path] | None = None) -> Path:
    """REPORT.md and PNGs in `out`, computed from `out/results.jsonl` and `out/plan.json`.

    One machine's records: `machine` (id, id prefix or slug), else the newest machine's. Only records of
    the current protocol are read: a folder holding only first-protocol records (fixed step budgets, no
    `protocol` field; superseded, kept in git history) is a ValueError.
    """
    from jaxseq.bench.sweep import load_records
    from jaxseq.studies.base import select_machine

    out = Path(out)
    records = load_records(out / "results.jsonl")
    if not records:
        raise FileNotFoundError(f"{out / 'results.jsonl'}: no records to report")
    chosen = select_machine(records, machine)
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
    new = [r for r in chosen.records if r.get("protocol") == PROTOCOL]
    if not new or plan.get("protocol") != PROTOCOL:
        raise ValueError(f"{out}: no records of the current protocol ({PROTOCOL}) for machine "
                         f"{chosen.slug}; the first protocol's records are no longer read")
    return _write_report_v2(out, chosen, new, plan, len(chosen.records) - len(new), references)


def write_folder_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and plots) of a results folder from its records alone (the study contract's name).

    The long-range report always draws its plots; `plots` is accepted for the contract."""
    return write_report(out)


def _bits(n: float | None) -> str:
    return "—" if n is None else f"{n:,.0f}" if n >= 100 else f"{n:.1f}"


def _frontier_text(s: Search) -> str:
    if s.lo is not None and s.hi is not None:
        txt = f"{s.lo} ≤ F < {s.hi}"
    elif s.lo is not None:
        txt = f"F ≥ {s.lo}"
    elif s.hi is not None:
        txt = f"F < {s.hi} (fails at the shortest length)"
    else:
        txt = "unknown"
    if s.stopped:
        txt += f" — {s.stopped}"
    if s.pending:
        T, lr, k = s.pending[0]
        txt += (" — cut by the time budget" if s.budget_cut else " — search unfinished") + \
            f" (next: T={T}, lr={lr:g}, seed index {k})"
    return txt


def _seed_text(preset: Preset, s: Search, T: int, by_key: dict[str, dict]) -> str:
    parts, steps = [], []
    n_solved = n_run = 0
    for k in range(preset.seeds):
        r = by_key.get(run_key(preset, s.task, s.model, T, s.lr, k))
        o = outcome_of(r)
        if o is None:
            parts.append(f"s{preset.seed + k}: not run")
            continue
        n_run += 1
        if o == "solved":
            n_solved += 1
            at = r.get("steps_to_solve")
            if at is not None:
                steps.append(at)
            parts.append(f"s{preset.seed + k}: solved" + (f" at {at}" if at is not None else ""))
        else:
            parts.append(f"s{preset.seed + k}: {o} ({100 * r.get('val_accuracy', 0.0):.0f}%)")
    spread = f"; steps to solve {min(steps)}–{max(steps)}" if len(steps) >= 2 else ""
    return f"T={T}: {n_solved}/{n_run} solved{spread} ({', '.join(parts)})"


def _compare(r: Search, a: Search, a_name: str) -> tuple[str, str]:
    """('shorter' | 'longer' | 'not shorter' | 'undetermined', sentence) for recurrent r vs attention a."""
    top_r = bool(r.stopped and r.stopped.startswith("solved every"))
    if r.hi is not None and a.lo is not None and r.hi <= a.lo:
        lo_f = a.lo / r.hi
        hi_f = f", < {a.hi / r.lo:g}×" if a.hi is not None and r.lo else ""
        return "shorter", (f"shorter than attention's: fails at {r.hi} where {a_name} solves {a.lo} "
                           f"(frontier ratio > {lo_f:g}×{hi_f})")
    if a.hi is not None and r.lo is not None and a.hi <= r.lo:
        return "longer", f"longer than attention's: solves {r.lo} where {a_name} fails at {a.hi} (ratio > {r.lo / a.hi:g}×)"
    if r.lo is not None and (a.lo is None or r.lo >= a.lo) and (top_r or r.hi is None) and not r.pending:
        return "not shorter", (f"not shorter: solves up to {r.lo}"
                               + (f", {a_name} up to {a.lo}" if a.lo is not None else f", {a_name} none")
                               + (f" ({a_name}: {a.stopped})" if a.stopped else ""))
    why = "; ".join(x for x in (f"{r.model}: {_frontier_text(r)}", f"{a_name}: {_frontier_text(a)}"))
    return "undetermined", f"undetermined ({why})"


def _write_report_v2(out: Path, chosen: Any, records: list[dict], plan: dict, n_old: int,
                     references: list[str | Path] | None) -> Path:
    p = plan["preset"]
    preset = _preset_from_plan(p)
    by_key = _latest(records)
    latest = list(by_key.values())
    tasks = [t for t in preset.tasks if any(r.get("task") == t for r in latest)]
    models = [m for m in preset.models if any(r.get("model") == m for r in latest)]
    ran = {t: [m for m in preset.models_of(t) if m in models] for t in tasks}  # the models of each task
    searches = {(t, m): search(preset, t, m, by_key.get) for t in tasks for m in ran[t]}
    L: list[str] = ["# Long-range synthetic tasks: each model's length frontier\n",
                    "Generated by `jaxseq longrange` from `results.jsonl` (no hand-written numbers). "
                    "Regenerate with `jaxseq longrange --out DIR --report-only`.\n",
                    chosen.note() + "\n"]
    if n_old:
        L.append(f"{n_old} records of the first protocol (fixed step budget, no outcome) are in this folder "
                 "for this machine and left out here.\n")
    L.append("## Protocol\n")
    diff = dict(preset.difficulty)
    narrowed = [t for t in tasks if preset.models_of(t) != preset.models]  # tasks run for some models only
    L += [
        f"- Preset `{plan.get('preset_name', '?')}` through `jaxseq.train.loop.train`: batch {preset.batch_size}"
        + "".join(f" ({t}: {b})" for t, b in preset.task_batch if t in tasks) + ", "
        f"{preset.layers} layers, AdamW (warm-up {preset.warmup_steps} steps, cosine to 0.1× at the cap, weight "
        f"decay 0.1, clip 1.0), float32; LSTM gates at init: "
        + ("chrono initialisation up to each cell's length T (forget-gate bias log u, input-gate bias −log u, "
           "u ~ U[1, T − 1] per unit; Tallec & Ollivier 2018)." if preset.lstm_chrono
           else f"forget-gate bias +{preset.lstm_forget_bias:g}."),
        f"- A cell trains until **solved** (validation accuracy ≥ {100 * SOLVED:.0f}% on {preset.eval_examples} "
        f"held-out sequences at {preset.confirm} consecutive checks, every {preset.eval_every} steps; steps to "
        "solve: the first of them) or **plateau** (over the last "
        f"{preset.patience} steps the validation loss did not fall below (1 − {preset.min_delta:g})× its best "
        f"before that window, nor the accuracy rise more than {preset.min_delta:g} above its best"
        + (f"; judged from step {preset.plateau_start} on" if preset.plateau_start else "") + "), under a cap "
        f"of {preset.max_steps} steps ({preset.max_steps * preset.batch_size:,} sequences"
        + "".join(f"; {t}: {preset.max_steps * b:,}" for t, b in preset.task_batch if t in tasks) + "): **cap**. "
        "Only *plateau* is a failure; *cap*, *budget* (the study's time limit"
        + (f", {preset.budget_s:.0f} s" if preset.budget_s else "") + "), *diverged* and *error* are inconclusive.",
        f"- Learning rates {list(preset.lrs)} swept at the shortest length per (task, model); the best (solved, "
        "fewest steps, accuracy, loss) is used at every other length and seed.",
        f"- Lengths rise along {list(preset.lengths)}"
        + "".join(f", {t}: {list(g)}" for t, g in preset.task_lengths if t in tasks)
        + (f" (caps: {dict(preset.max_len)})" if preset.max_len else "")
        + " until the first failure, then geometric bisection until the frontier is known within 2×; a capped "
        "cell bounds the search from above the same way but stays inconclusive (frontier ≥ the last success, "
        f"\"cap at T\"). {preset.seeds} seeds (from {preset.seed}) at the lengths on both sides of the frontier; "
        "search cells run before extra seeds, shortest first.",
        *([f"- Scope: {preset.scope}"] if preset.scope else []),
        *([f"- Models: {', '.join(preset.models)}; per task: "
           + "; ".join(f"{t}: {', '.join(preset.models_of(t))}" for t in narrowed)
           + " (this preset's scope; the others are not run here)."] if narrowed else []),
        "- Difficulty: " + ", ".join(f"{t} {diff.get(t)}" for t in tasks) + "; options: "
        + "; ".join(f"{t} {preset.options_of(t)}" for t in tasks) + ". Test accuracy: a second fresh set of "
        f"{preset.eval_examples} sequences, reported beside.",
        f"- Parameter target {preset.target_params:,} per model (widths below). State bits: float32 recurrent "
        "state (LSTM 2 × width × layers numbers, the others width × layers) × 32; task bits: what the answer "
        "requires remembering (`longrange.task_bits`).",
        "",
    ]

    L.append("## Frontiers\n")
    L.append("F: the longest length solved lies in the interval (seed 0 at the chosen learning rate). "
             "Seeds: outcome of each seed at the lengths beside the frontier.\n")
    L.append("| task | model | width / params | state bits | task bits | lr | frontier | seeds |")
    L.append("|---|---|---|---|---|---|---|---|")
    for t in tasks:
        for m in ran[t]:
            s = searches[(t, m)]
            r0 = next((r for r in latest if r.get("task") == t and r.get("model") == m and "params" in r), None)
            size = f"{r0['d_model']} / {r0['params']:,}" if r0 else "—"
            sf = state_floats(m, r0["d_model"], r0.get("layers", preset.layers)) if r0 else None
            sbits = ("grows with T" if m in _TRANSFORMERS else _bits(32 * sf if sf else None))
            tb = _bits(task_bits(t, preset.difficulty_of(t), preset.options_of(t)))
            seeds = "<br>".join(_seed_text(preset, s, T, by_key) for T in s.frontier_lengths()) or "—"
            L.append(f"| {t} | {m} | {size} | {sbits} | {tb} | {s.lr if s.lr is not None else '—'} | "
                     f"{_frontier_text(s)} | {seeds} |")
    L.append("")

    L.append("## Cells\n")
    L.append("| task | model | T | lr | seed | outcome | steps | steps to solve | sequences to solve | "
             "val acc % | test acc % | wall s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = sorted(latest, key=lambda r: (tasks.index(r["task"]) if r["task"] in tasks else 99,
                                          models.index(r["model"]) if r["model"] in models else 99,
                                          r["length"], r.get("seed", 0), r["lr"]))
    for r in order:
        def f(x: Any, pct: bool = False) -> str:
            return "—" if x is None else (f"{100 * x:.1f}" if pct else f"{x:,}" if isinstance(x, int) else f"{x:.1f}")
        L.append(f"| {r['task']} | {r['model']} | {r['length']} | {r['lr']:g} | {r.get('seed', '—')} | "
                 f"{outcome_of(r)} | {f(r.get('steps'))} | {f(r.get('steps_to_solve'))} | "
                 f"{f(r.get('sequences_to_solve'))} | {f(r.get('val_accuracy'), True)} | "
                 f"{f(r.get('token_accuracy'), True)} | {f(r.get('train_wall_s'))} |")
    L.append("")
    cut = [r for r in latest if outcome_of(r) in ("cap", "budget", "diverged", "error")]
    if cut:
        L.append("## Inconclusive cells (never counted as failures)\n")
        for r in cut:
            L.append(f"- {r['task']} {r['model']} T={r['length']} lr={r['lr']:g} seed={r.get('seed')}: "
                     f"{outcome_of(r)}" + (f" after {r['steps']} steps" if r.get("steps") else "")
                     + (f" — {r.get('reason') or r.get('message', '')[:200]}" if r.get("reason") or r.get("message")
                        else ""))
        n_budget = sum(outcome_of(r) == "budget" for r in cut)
        if n_budget:
            L.append(f"\n**The time budget cut this study**: {n_budget} cells were stopped or not started "
                     "by it; rerunning the same command continues them.")
        L.append("")

    # Plots: seed 0 at the chosen learning rate, test accuracy vs length.
    cells = {}
    for (t, m), s in searches.items():
        for r in latest:
            if (r.get("task"), r.get("model"), r.get("lr"), r.get("seed_index", 0)) == (t, m, s.lr, 0):
                cells[(t, m, r["length"])] = r
    lengths = sorted({k[2] for k in cells})
    L.append("## Plots\n")
    if lengths:
        try:
            for n in _plots(out, cells, tasks, models, lengths, records):
                L.append(f"![{n}]({n})\n")
        except ImportError as e:  # an image without matplotlib still gets its report
            L.append(f"No plots: {e}.\n")

    L.append("## Findings (computed from the tables above)\n")
    L.extend(_findings_v2(preset, searches, tasks, ran, latest))

    wall = sum(r.get("train_wall_s", 0.0) + r.get("eval_wall_s", 0.0) for r in latest)
    L.append("\n## Time\n")
    L.append(f"{len(latest)} cells recorded; training + testing wall time {wall / 60:.1f} min. Per model: "
             + ", ".join(f"{m} {sum(r.get('train_wall_s', 0.0) for r in latest if r['model'] == m):.0f} s"
                         for m in models) + ".")
    L.extend(_reference_names(out, chosen, references))
    subs = sorted(d for d in out.iterdir() if d.is_dir() and (d / "REPORT.md").is_file())
    if subs:
        L.append("\n## Other studies in this folder\n")
        L.extend(f"- [{d.name}/REPORT.md]({d.name}/REPORT.md)" for d in subs)
    path = out / "REPORT.md"
    path.write_text("\n".join(L) + "\n")
    return path


def _reference_names(out: Path, chosen: Any, references: list[str | Path] | None) -> list[str]:
    """The reference folders, named with their machine and protocol (frontiers compare only within one)."""
    from jaxseq.bench.sweep import load_records
    from jaxseq.studies.base import folder_name, reference_folders, select_machine

    folders = (reference_folders(out, "longrange") if references is None
               else [Path(r) for r in references])
    L = []
    for folder in folders:
        if Path(folder).resolve() == out.resolve():
            continue
        ref = select_machine(load_records(Path(folder) / "results.jsonl"), exclude=[chosen.machine_id])
        if ref.machine_id is None:
            continue
        proto = "this protocol" if any(r.get("protocol") == PROTOCOL for r in ref.records) else \
            "the first protocol (fixed step budget): not comparable"
        name = folder_name(folder, "longrange")
        L.append(f"- `{name}` ({ref.label}): {proto}; its own REPORT.md has its numbers.")
    return (["", "## References\n"] + L) if L else []


def _findings_v2(preset: Preset, searches: dict[tuple[str, str], Search], tasks: list[str],
                 ran: dict[str, list[str]], latest: list[dict]) -> list[str]:
    """`ran`: the models of each task (a preset may run a task for some models only)."""
    F: list[str] = []
    width = {(r["task"], r["model"]): (r["d_model"], r.get("layers", preset.layers))
             for r in latest if "d_model" in r}
    verdicts: dict[str, list[str]] = {"shorter": [], "longer": [], "not shorter": [], "undetermined": []}
    any_pair = False  # some task has both a recurrent model and a Transformer
    for t in tasks:
        models = ran[t]
        rnns = [m for m in models if m not in _TRANSFORMERS]
        trans = [m for m in models if m in _TRANSFORMERS]
        any_pair = any_pair or bool(trans and rnns)
        F.append(f"- **{t}**: " + "; ".join(f"{m} {_frontier_text(searches[(t, m)])}" for m in models) + ".")
        if trans and rnns:
            a_name = max(trans, key=lambda m: searches[(t, m)].lo or 0)
            a = searches[(t, a_name)]
            for m in rnns:
                v, text = _compare(searches[(t, m)], a, a_name)
                verdicts[v].append(f"{t}/{m}")
                F.append(f"  - {m} vs attention: {text}.")
        bits = task_bits(t, preset.difficulty_of(t), preset.options_of(t))
        caps = []
        for m in rnns:
            if (t, m) in width:
                sb = 32 * state_floats(m, *width[(t, m)])
                caps.append(f"{m} {sb:,} ({sb / bits:,.0f}×)")
        if caps:
            ratios = [32 * state_floats(m, *width[(t, m)]) / bits for m in rnns if (t, m) in width]
            F.append(f"  - Capacity: the task asks for ≈ {bits:.1f} bits; recurrent state bits (× the task's): "
                     + ", ".join(caps) + (". Every state is ≥ 10× the task's bits: a recurrent failure here is "
                                          "a failure to learn, not the state-size bound." if min(ratios) >= 10 else
                                          ". Some state is within 10× of the task's bits: the state size may bind."))
    if any_pair:
        F.append("- Recurrent frontier vs attention's, over all (task, recurrent model): "
                 + "; ".join(f"{k}: {', '.join(v) if v else 'none'}" for k, v in verdicts.items()) + ".")
    if "adding" in tasks and "lstm" in ran["adding"]:
        s = searches[("adding", "lstm")]
        met = s.lo is not None and s.lo >= 500
        F.append(f"- LSTM on adding: {_frontier_text(s)}; Hochreiter & Schmidhuber (1997) solved T = 100, 500, "
                 f"1000. Solved at T ≥ 500 here: {'yes' if met else 'no' if s.hi is not None and s.hi <= 500 else 'not shown'}.")
    if "copy" in tasks:
        models = ran["copy"]
        first = {m: preset.grid_of(m, "copy")[0] for m in models if preset.grid_of(m, "copy")}
        ok = [m for m in models if m in first and (searches[("copy", m)].lo or 0) >= first[m]]
        F.append(f"- Delayed copy at the shortest length ({sorted(set(first.values()))}): solved by "
                 f"{', '.join(ok) or 'none'}; not by {', '.join(m for m in models if m not in ok) or 'none'}.")
    shaky = [r for r in latest if outcome_of(r) == "solved" and r.get("token_accuracy") is not None
             and r["token_accuracy"] < SOLVED]
    if shaky:
        F.append(f"- Solved cells whose test accuracy (a second fresh set) is below {100 * SOLVED:.0f}%: "
                 + ", ".join(f"{r['task']}/{r['model']}/T={r['length']}/lr {r['lr']:g}/seed {r.get('seed')} "
                             f"({100 * r['token_accuracy']:.1f}%)" for r in shaky) + ".")
    counts = {o: sum(outcome_of(r) == o for r in latest) for o in ("solved", "plateau", "cap", "budget",
                                                                      "diverged", "error")}
    F.append("- Cells by outcome: " + ", ".join(f"{k} {v}" for k, v in counts.items())
             + ". Only plateaued cells count as failures.")
    return F


# ------------------------------------------------------------------------------------------------ plots
def _plots(out: Path, cells: dict, tasks: list[str], models: list[str], lengths: list[int],
           records: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    n = len(tasks)
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for model in models:
            xs, ys = [], []
            for T in lengths:
                r = cells.get((task, model, T))
                if r is not None and r.get("status") == "ok":
                    xs.append(T)
                    ys.append(100 * r["token_accuracy"])
            if xs:
                ax.plot(xs, ys, marker="o", label=model)
        chance = next((r.get("chance") for (t, _, _), r in cells.items() if t == task and r.get("chance")), None)
        if chance:
            ax.axhline(100 * chance, color="gray", ls=":", lw=1, label="chance")
        ax.axhline(100 * SOLVED, color="k", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths)
        ax.set_xticklabels([str(t) for t in lengths])
        ax.set_ylim(-2, 102)
        ax.set_title(task)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("held-out accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_length.png", dpi=110)
    plt.close(fig)
    names.append("accuracy_vs_length.png")

    # Training time per run vs length, per model (mean over tasks and learning rates).
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in models:
        xs, ys = [], []
        for T in lengths:
            ts = [r["train_wall_s"] for r in _latest(records).values()
                  if r.get("model") == model and r.get("length") == T and r.get("status") == "ok"]
            if ts:
                xs.append(T)
                ys.append(float(np.mean(ts)))
        if xs:
            ax.plot(xs, ys, marker="o", label=model)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(t) for t in lengths])
    ax.set_xlabel("sequence length")
    ax.set_ylabel("training wall time per run (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "train_time_vs_length.png", dpi=110)
    plt.close(fig)
    names.append("train_time_vs_length.png")
    return names


def preset_from_args(args: argparse.Namespace) -> Preset:
    if args.preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {args.preset!r}")
    p = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    for name in ("tasks", "models", "lengths", "lrs"):
        if getattr(args, name):
            changes[name] = tuple(getattr(args, name))
    if args.lengths:
        changes["task_lengths"] = ()  # the grid given applies to every task
    if args.models:
        changes["task_models"] = ()  # the models given run on every task
    if args.batch_size is not None:
        changes["task_batch"] = ()  # the batch given applies to every task
    for name in ("max_steps", "batch_size", "budget_s", "lstm_forget_bias", "seeds", "eval_every", "patience",
                 "plateau_start", "lstm_chrono"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    p = dataclasses.replace(p, **changes)
    _validate(p)
    return p


def _cmd(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out(args.preset)
    if args.report_only:
        path = write_report(out, machine=args.machine)
        print(f"wrote {path}")
        return 0
    if args.machine:
        raise ValueError("--machine picks whose records a report shows: use it with --report-only")
    preset = preset_from_args(args)
    t0 = time.perf_counter()
    print(f"jaxseq longrange --preset {args.preset} -> {out}", flush=True)
    written = run_longrange(preset, out, workdir=args.workdir, progress=not args.no_progress,
                            engine_progress=args.run_progress, keep_checkpoints=args.keep_checkpoints,
                            preset_name=args.preset)
    n_budget = sum(r.get("outcome") == "budget" for r in written)
    print(f"jaxseq longrange: {len(written)} new records in {time.perf_counter() - t0:.0f} s; "
          f"report {out / 'REPORT.md'}"
          + (f"; the time budget ({preset.budget_s:.0f} s) cut {n_budget} cells (rerun to continue)"
             if n_budget else ""))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq longrange`."""
    p = subparsers.add_parser("longrange", help="LSTM/GRU/minGRU/minLSTM/Transformer: length frontiers on "
                              "long-range synthetic tasks", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    p.add_argument("--out", help="output folder (results.jsonl, REPORT.md, PNGs); default: this machine's "
                   "profiles/<machine>/longrange/ (preset default) or profiles/<machine>/longrange/<preset>/")
    p.add_argument("--machine", help="with --report-only: whose records to report (id, id prefix or slug; "
                   "default the newest machine's)")
    p.add_argument("--workdir", default=_DEFAULT_WORKDIR, help="root of the cells' engine workdirs")
    p.add_argument("--tasks", nargs="+", help=f"tasks (replaces the preset's): {', '.join(_ALL_TASKS)}")
    p.add_argument("--models", nargs="+", help=f"models (replaces the preset's): {', '.join(_ALL_MODELS)}")
    p.add_argument("--lengths", nargs="+", type=int, help="the rising length grid (replaces the preset's)")
    p.add_argument("--lrs", nargs="+", type=float, help="learning rates to sweep (replaces the preset's)")
    p.add_argument("--max-steps", "--steps", dest="max_steps", type=int, help="step cap of one cell")
    p.add_argument("--batch-size", type=int, help="batch size of every cell (replaces the preset's, per-task ones too)")
    p.add_argument("--seeds", type=int, help="seeds at the frontier lengths (seed 0 included)")
    p.add_argument("--eval-every", type=int, help="steps between validation checks")
    p.add_argument("--patience", type=int, help="plateau window in steps")
    p.add_argument("--budget-s", type=float, help="wall-clock budget of the study (cells cut are recorded)")
    p.add_argument("--lstm-forget-bias", type=float, help="added to the LSTM forget-gate bias at initialisation")
    p.add_argument("--lstm-chrono", action=argparse.BooleanOptionalAction, default=None,
                   help="chrono initialisation of the LSTM gates up to each cell's length (Tallec & Ollivier 2018)")
    p.add_argument("--plateau-start", type=int, help="no plateau verdict before this step")
    p.add_argument("--report-only", action="store_true", help="only regenerate REPORT.md and plots from OUT")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the engine checkpoints of finished cells")
    p.add_argument("--run-progress", action="store_true", help="the engine's per-cell progress bars too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    """`python -m jaxseq.studies.longrange ...`: the same options as `jaxseq longrange`, without
    importing the other studies (an image lacking one of their packages still runs this one)."""
    parser = argparse.ArgumentParser(prog="jaxseq longrange")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["longrange", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq longrange: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
