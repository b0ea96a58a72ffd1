"""The tasks as the training engine's data (`TaskData`), the losses, the matched model widths, the state
and task bits, and the validation of a preset (every task must accept every length it runs at).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from jaxseq.studies.longrange.presets import ALL_TASKS, EVAL_SEED_OFFSET, TEST_SEED_OFFSET, TRANSFORMERS, Preset


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
        task = self.task(self.eval_seed + EVAL_SEED_OFFSET)
        for i in range(max_batches or 1):
            yield self.to_engine(task.batch(i, batch_size))

    def test_batches(self, *, seed: int, batch_size: int, examples: int) -> Iterable[dict]:
        """Held-out batches in the task's own format (with "mask"), for `task.accuracy`."""
        task = self.task(seed + TEST_SEED_OFFSET)
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
    if model in TRANSFORMERS:
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
    raise ValueError(f"task: unknown {task!r}; expected one of {', '.join(ALL_TASKS)}")


def validate_preset(preset: Preset) -> None:
    """Raise ValueError (naming the CLI flag) for a preset with an unknown task/model or an out-of-range knob."""
    from jaxseq.models.classifier import MODEL_SPECS

    if not preset.tasks or not preset.models or not preset.lengths or not preset.lrs:
        raise ValueError("--tasks, --models, --lengths and the learning rates must be non-empty")
    bad = [t for t in preset.tasks if t not in ALL_TASKS]
    if bad:
        raise ValueError(f"--tasks: unknown {bad}; expected some of {', '.join(ALL_TASKS)}")
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
        if task not in ALL_TASKS or not isinstance(b, int) or b < 1:
            raise ValueError(f"task_batch: expected (task in {', '.join(ALL_TASKS)}, batch >= 1), got ({task!r}, {b!r})")
    for task, chosen in preset.task_models:
        bad = [m for m in chosen if m not in preset.models]
        if task not in ALL_TASKS or not chosen or bad:
            raise ValueError(f"task_models: expected (task in {', '.join(ALL_TASKS)}, a non-empty subset of the "
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
