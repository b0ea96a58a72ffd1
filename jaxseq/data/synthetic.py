"""Synthetic long-range tasks, generated deterministically on the fly.

Four tasks that probe memory over long distances, each a class with the same interface:

* ``copy``           — copying with a delay (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016):
                       memorise ``difficulty`` symbols, wait through blanks, reproduce them.
* ``selective_copy`` — selective copying (Gu & Dao 2023, "Mamba"): ``difficulty`` symbols scattered
                       at random positions among noise; reproduce them in order at the end.
* ``mqar``           — multi-query associative recall (Arora et al. 2023, "Zoology"):
                       ``difficulty`` key–value pairs, then every key queried once.
* ``adding``         — the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015):
                       ``(value, marker)`` pairs; regress the sum of the ``difficulty`` marked values.

Every task is built as ``Task(seq_len, difficulty, *, seed=0, ...)`` and produces batches with
``task.batch(step, batch_size)``: the batch is a pure function of ``(seed, step, batch_size)``, so a
resumed run sees exactly the data it would have seen, and nothing is stored on disk. A batch is a
dict of NumPy arrays (or JAX arrays with ``as_jax=True``)::

    inputs   int32   [batch, time]        (adding: float32 [batch, time, 2])
    targets  int32   [batch, time]        (adding: float32 [batch, time]; the sum at the last step)
    mask     float32 [batch, time]        1.0 exactly at the answer positions that are scored

All positions of every sequence have a target (``BLANK`` where nothing is to be recalled), so a
loss over all positions (as in Arjovsky et al.) is possible; ``mask`` selects the scored ones.
``task.accuracy(outputs, batch)`` returns per-token accuracy over the masked positions and the
per-sequence exact-match rate. Token ids are laid out as ``0 = BLANK`` (noise / filler),
``1 = DELIM`` (the "now answer" cue) and data symbols from ``2`` on (MQAR uses no delimiter).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BLANK",
    "DELIM",
    "SyntheticTask",
    "CopyTask",
    "SelectiveCopyTask",
    "MQARTask",
    "AddingTask",
    "TASKS",
    "make_task",
]

BLANK = 0
DELIM = 1
_FIRST_SYMBOL = 2

Batch = dict[str, Any]


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as int, or raise naming the argument and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _seed_entropy(seed: Any) -> list[int]:
    """Turn an int seed or a JAX PRNG key into entropy for ``np.random.SeedSequence``.

    NumPy generation (rather than ``jax.random``) keeps batches bit-identical across JAX versions
    and backends, and costs no device time; a JAX key is accepted for convenience.
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return [int(seed)]
    if isinstance(seed, jax.Array):
        if jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
            seed = jax.random.key_data(seed)
        data = np.asarray(seed)
        if data.dtype.kind not in "ui" or data.size == 0:
            raise TypeError(f"seed must be an int or a JAX PRNG key, got array of dtype {data.dtype}")
        return [int(v) for v in data.astype(np.uint32).ravel()]
    raise TypeError(f"seed must be an int or a JAX PRNG key, got {type(seed).__name__}")


def _random_subsets(rng: np.random.Generator, batch: int, population: int, k: int) -> np.ndarray:
    """``k`` distinct values from ``range(population)`` per row, in uniformly random order.

    Sorting i.i.d. uniforms gives a uniformly random permutation; ``argpartition`` keeps the cost
    linear in ``population`` when only a few of many values are needed (MQAR's large vocabularies).
    """
    u = rng.random((batch, population))
    if k < population:
        idx = np.argpartition(u, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(population), (batch, population)).copy()
    order = np.argsort(np.take_along_axis(u, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


class SyntheticTask(abc.ABC):
    """Base class: deterministic batches, validation, and the accuracy metric.

    Subclasses set ``name`` and ``kind`` and implement ``_sample(rng, batch_size)``.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "classification"  # or "regression"

    def __init__(self, seq_len: int, difficulty: int, *, seed: Any = 0) -> None:
        self.seq_len = _check_int("seq_len", seq_len, 1)
        self.difficulty = _check_int("difficulty", difficulty, 1)
        self.seed = seed
        self._entropy = _seed_entropy(seed)
        # Subclasses finish their own validation; the sequence must fit the task.
        self.vocab_size: int | None = None
        self.num_classes: int | None = None
        self.input_dim: int | None = None  # features per step for float inputs (adding)

    # ------------------------------------------------------------------ generation
    @abc.abstractmethod
    def _sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """Draw one batch of NumPy arrays from ``rng``."""

    def batch(self, step: int, batch_size: int, *, as_jax: bool = False) -> Batch:
        """The batch for training step ``step``: a pure function of ``(seed, step, batch_size)``.

        Each step gets its own ``SeedSequence([*seed, step])`` stream, so batches can be produced in
        any order (or re-produced after a restart) without replaying earlier steps.
        """
        step = _check_int("step", step, 0)
        batch_size = _check_int("batch_size", batch_size, 1)
        rng = np.random.default_rng(np.random.SeedSequence([*self._entropy, step]))
        out = self._sample(rng, batch_size)
        if as_jax:
            out = {k: jnp.asarray(v) for k, v in out.items()}
        return out

    def batches(self, batch_size: int, *, start_step: int = 0, as_jax: bool = False):
        """Endless iterator of ``batch(step)`` for ``step = start_step, start_step + 1, ...``."""
        step = _check_int("start_step", start_step, 0)
        while True:
            yield self.batch(step, batch_size, as_jax=as_jax)
            step += 1

    # ------------------------------------------------------------------ metric
    @property
    def chance_token_accuracy(self) -> float:
        """Expected per-token accuracy of a predictor that guesses uniformly among the answers."""
        raise NotImplementedError

    def accuracy(self, outputs: Any, batch: Batch) -> dict[str, Any]:
        """Per-token accuracy over masked positions and per-sequence exact match.

        ``outputs``: logits ``[batch, time, num_classes]`` or predicted ids ``[batch, time]``
        (classification tasks). Works on NumPy (returns floats) and JAX arrays (returns 0-d
        arrays, so it can be used under ``jax.jit``).
        """
        targets, mask = batch["targets"], batch["mask"]
        xp = jnp if any(isinstance(a, jax.Array) for a in (outputs, targets, mask)) else np
        b, t = targets.shape[:2]
        if outputs.ndim == 3:
            if outputs.shape != (b, t, self.num_classes):
                raise ValueError(
                    f"logits must have shape [batch, time, num_classes]={(b, t, self.num_classes)}, "
                    f"got {tuple(outputs.shape)}"
                )
            preds = xp.argmax(outputs, axis=-1)
        elif outputs.ndim == 2:
            if tuple(outputs.shape) != (b, t):
                raise ValueError(f"predictions must have shape [batch, time]={(b, t)}, got {tuple(outputs.shape)}")
            preds = outputs
        else:
            raise ValueError(f"outputs must be logits [batch, time, classes] or ids [batch, time], got ndim {outputs.ndim}")
        return self._score(preds == targets, mask, xp)

    @staticmethod
    def _score(correct: Any, mask: Any, xp: Any) -> dict[str, Any]:
        scored = mask > 0
        hits = xp.sum(xp.where(scored, correct, False))
        tokens = xp.sum(scored)
        # A sequence counts as solved only if every scored position is right.
        solved = xp.all(xp.where(scored, correct, True), axis=1)
        token_acc = hits / xp.maximum(tokens, 1)
        seq_acc = xp.mean(solved)
        if xp is np:
            return {"token_accuracy": float(token_acc), "sequence_accuracy": float(seq_acc)}
        return {"token_accuracy": token_acc, "sequence_accuracy": seq_acc}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seq_len={self.seq_len}, difficulty={self.difficulty}, seed={self.seed!r})"


class CopyTask(SyntheticTask):
    """Copying with a delay.

    Layout (``L = difficulty``, delay ``T = seq_len - 2L - 1``)::

        inputs : s_1 .. s_L | BLANK x T | DELIM | BLANK x L
        targets: BLANK x (L + T + 1)            | s_1 .. s_L
        mask   : 0 ...                          | 1 x L

    Symbols are drawn i.i.d. from ``num_symbols`` data symbols (8 in Arjovsky et al. 2016).
    """

    name = "copy"

    def __init__(self, seq_len: int, difficulty: int, *, seed: Any = 0, num_symbols: int = 8) -> None:
        super().__init__(seq_len, difficulty, seed=seed)
        self.num_symbols = _check_int("num_symbols", num_symbols, 2)
        if self.seq_len < 2 * self.difficulty + 1:
            raise ValueError(
                f"seq_len={self.seq_len} is too short to copy difficulty={self.difficulty} symbols: "
                f"needs seq_len >= 2*difficulty + 1 = {2 * self.difficulty + 1} (string, delimiter, answer)"
            )
        self.delay = self.seq_len - 2 * self.difficulty - 1
        self.vocab_size = _FIRST_SYMBOL + self.num_symbols
        self.num_classes = self.vocab_size

    @property
    def chance_token_accuracy(self) -> float:
        return 1.0 / self.num_symbols

    def _sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        L, T = self.difficulty, self.seq_len
        symbols = rng.integers(_FIRST_SYMBOL, self.vocab_size, size=(batch_size, L), dtype=np.int32)
        inputs = np.full((batch_size, T), BLANK, np.int32)
        targets = np.full((batch_size, T), BLANK, np.int32)
        mask = np.zeros((batch_size, T), np.float32)
        inputs[:, :L] = symbols
        inputs[:, T - L - 1] = DELIM
        targets[:, T - L :] = symbols
        mask[:, T - L :] = 1.0
        return {"inputs": inputs, "targets": targets, "mask": mask}


class SelectiveCopyTask(SyntheticTask):
    """Selective copying (Gu & Dao 2023).

    ``K = difficulty`` symbols sit at random, sorted positions of a context of length
    ``C = seq_len - K - 1`` filled with ``BLANK`` noise; then ``DELIM`` and ``K`` answer positions::

        inputs : context (K symbols among BLANKs) | DELIM | BLANK x K
        targets: BLANK x (C + 1)                          | the K symbols in order of position
    """

    name = "selective_copy"

    def __init__(self, seq_len: int, difficulty: int, *, seed: Any = 0, num_symbols: int = 16) -> None:
        super().__init__(seq_len, difficulty, seed=seed)
        self.num_symbols = _check_int("num_symbols", num_symbols, 2)
        need = 2 * self.difficulty + 1
        if self.seq_len < need:
            raise ValueError(
                f"seq_len={self.seq_len} is too short for difficulty={self.difficulty} scattered symbols: "
                f"needs seq_len >= 2*difficulty + 1 = {need} (context of >= difficulty, delimiter, answer)"
            )
        self.context_len = self.seq_len - self.difficulty - 1
        self.vocab_size = _FIRST_SYMBOL + self.num_symbols
        self.num_classes = self.vocab_size

    @property
    def chance_token_accuracy(self) -> float:
        return 1.0 / self.num_symbols

    def _sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        K, T, C = self.difficulty, self.seq_len, self.context_len
        symbols = rng.integers(_FIRST_SYMBOL, self.vocab_size, size=(batch_size, K), dtype=np.int32)
        positions = np.sort(_random_subsets(rng, batch_size, C, K), axis=1)
        inputs = np.full((batch_size, T), BLANK, np.int32)
        np.put_along_axis(inputs, positions, symbols, axis=1)
        inputs[:, C] = DELIM
        targets = np.full((batch_size, T), BLANK, np.int32)
        targets[:, C + 1 :] = symbols  # positions are sorted, so this is the order of appearance
        mask = np.zeros((batch_size, T), np.float32)
        mask[:, C + 1 :] = 1.0
        return {"inputs": inputs, "targets": targets, "mask": mask}


class MQARTask(SyntheticTask):
    """Multi-query associative recall (Arora et al. 2023, Zoology).

    ``D = difficulty`` pairs ``k_1 v_1 .. k_D v_D`` (distinct keys, distinct values), then a query
    region of ``seq_len - 2D`` positions in which each key appears once, in random order, at random
    positions among ``BLANK`` noise. The target at a query position is the value bound to that key::

        inputs : k_1 v_1 ... k_D v_D | BLANK .. k_j .. BLANK .. k_i ..
        targets: BLANK x 2D          | BLANK .. v_j .. BLANK .. v_i ..

    Differences from Zoology's generator, on purpose: the value is the target *at* the query
    position (Zoology shifts labels by one and also feeds the value after the query, which would let
    a bidirectional model read the answer), and query positions are uniform rather than drawn with
    its power-law gap distribution. Keys are ids ``[2, 2 + n)``, values ``[2 + n, vocab_size)`` with
    ``n = (vocab_size - 2) // 2`` (Zoology uses vocab_size 8192).
    """

    name = "mqar"

    def __init__(self, seq_len: int, difficulty: int, *, seed: Any = 0, vocab_size: int = 8192) -> None:
        super().__init__(seq_len, difficulty, seed=seed)
        vocab_size = _check_int("vocab_size", vocab_size, 1)
        if vocab_size < _FIRST_SYMBOL + 2 * self.difficulty:
            raise ValueError(
                f"vocab_size={vocab_size} is too small for difficulty={self.difficulty} distinct keys and "
                f"values: needs vocab_size >= 2 + 2*difficulty = {_FIRST_SYMBOL + 2 * self.difficulty}"
            )
        need = 3 * self.difficulty
        if self.seq_len < need:
            raise ValueError(
                f"seq_len={self.seq_len} is too short for difficulty={self.difficulty} key-value pairs: "
                f"needs seq_len >= 3*difficulty = {need} (2 tokens per pair + one query per key)"
            )
        self.num_keys = (vocab_size - _FIRST_SYMBOL) // 2
        self.num_values = vocab_size - _FIRST_SYMBOL - self.num_keys
        self.vocab_size = vocab_size
        self.num_classes = vocab_size

    @property
    def chance_token_accuracy(self) -> float:
        return 1.0 / self.num_values

    def _sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        D, T = self.difficulty, self.seq_len
        keys = _FIRST_SYMBOL + _random_subsets(rng, batch_size, self.num_keys, D)
        values = _FIRST_SYMBOL + self.num_keys + _random_subsets(rng, batch_size, self.num_values, D)
        inputs = np.full((batch_size, T), BLANK, np.int32)
        targets = np.full((batch_size, T), BLANK, np.int32)
        mask = np.zeros((batch_size, T), np.float32)
        inputs[:, 0 : 2 * D : 2] = keys
        inputs[:, 1 : 2 * D : 2] = values
        # Which pair each query asks for (random order), and where the queries go (sorted positions).
        which = _random_subsets(rng, batch_size, D, D)
        pos = 2 * D + np.sort(_random_subsets(rng, batch_size, T - 2 * D, D), axis=1)
        np.put_along_axis(inputs, pos, np.take_along_axis(keys, which, axis=1), axis=1)
        np.put_along_axis(targets, pos, np.take_along_axis(values, which, axis=1), axis=1)
        np.put_along_axis(mask, pos, 1.0, axis=1)
        return {"inputs": inputs.astype(np.int32), "targets": targets, "mask": mask}


class AddingTask(SyntheticTask):
    """The adding problem (Hochreiter & Schmidhuber 1997), in the form of Le et al. (2015).

    Each step is ``(value, marker)`` with ``value ~ U[0, 1)``. ``difficulty`` values are marked
    (2 is the classic task): the sequence is cut into ``difficulty`` equal segments and one random
    position in each is marked, so for 2 markers there is one in each half. The target is the sum of
    the marked values, scored at the last step. A prediction counts as correct when
    ``|prediction - target| < tolerance`` (0.04, Hochreiter & Schmidhuber's criterion). Predicting the
    constant 1 gives MSE 1/6 ≈ 0.167 for two markers, the usual baseline.
    """

    name = "adding"
    kind = "regression"

    def __init__(self, seq_len: int, difficulty: int = 2, *, seed: Any = 0, tolerance: float = 0.04) -> None:
        super().__init__(seq_len, difficulty, seed=seed)
        if self.seq_len < self.difficulty:
            raise ValueError(
                f"seq_len={self.seq_len} is too short for difficulty={self.difficulty} marked numbers: "
                f"needs seq_len >= difficulty (one marker per segment)"
            )
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.tolerance = float(tolerance)
        self.input_dim = 2
        self.vocab_size = None
        self.num_classes = None

    @property
    def chance_token_accuracy(self) -> float:
        # P(|S - 1| < tol) for the constant-1 predictor; exact for 2 markers (triangular density).
        tol = self.tolerance
        return 2 * tol - tol * tol if self.difficulty == 2 else float("nan")

    def _sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        k, T = self.difficulty, self.seq_len
        values = rng.random((batch_size, T), dtype=np.float32)
        # Segment j covers [bounds[j], bounds[j+1]); each is non-empty because seq_len >= k.
        bounds = (np.arange(k + 1) * T) // k
        offs = rng.random((batch_size, k))
        pos = bounds[:-1] + np.floor(offs * np.diff(bounds)).astype(np.int64)
        markers = np.zeros((batch_size, T), np.float32)
        np.put_along_axis(markers, pos, 1.0, axis=1)
        total = np.take_along_axis(values, pos, axis=1).astype(np.float64).sum(axis=1)
        targets = np.zeros((batch_size, T), np.float32)
        targets[:, -1] = total
        mask = np.zeros((batch_size, T), np.float32)
        mask[:, -1] = 1.0
        inputs = np.stack([values, markers], axis=-1)
        return {"inputs": inputs, "targets": targets, "mask": mask}

    def accuracy(self, outputs: Any, batch: Batch) -> dict[str, Any]:
        """Fraction of scored positions with ``|prediction - target| < tolerance``, plus the MSE.

        ``outputs``: ``[batch, time]``, ``[batch, time, 1]`` (a prediction at every step) or
        ``[batch]`` (one prediction per sequence, compared with the last step's target).
        """
        targets, mask = batch["targets"], batch["mask"]
        xp = jnp if any(isinstance(a, jax.Array) for a in (outputs, targets, mask)) else np
        b, t = targets.shape
        if outputs.ndim == 3 and outputs.shape[-1] == 1:
            outputs = outputs[..., 0]
        if outputs.ndim == 1:
            if outputs.shape[0] != b:
                raise ValueError(f"per-sequence predictions must have shape [batch]=({b},), got {tuple(outputs.shape)}")
            outputs = xp.zeros((b, t), outputs.dtype).at[:, -1].set(outputs) if xp is jnp else _last_only(outputs, t)
        if tuple(outputs.shape) != (b, t):
            raise ValueError(
                f"predictions must have shape [batch, time]={(b, t)}, [batch, time, 1] or [batch], got {tuple(outputs.shape)}"
            )
        err = outputs - targets
        scores = self._score(xp.abs(err) < self.tolerance, mask, xp)
        mse = xp.sum(xp.where(mask > 0, err * err, 0.0)) / xp.maximum(xp.sum(mask > 0), 1)
        scores["mse"] = float(mse) if xp is np else mse
        return scores


def _last_only(preds: np.ndarray, time: int) -> np.ndarray:
    out = np.zeros((preds.shape[0], time), preds.dtype)
    out[:, -1] = preds
    return out


TASKS: dict[str, type[SyntheticTask]] = {
    CopyTask.name: CopyTask,
    SelectiveCopyTask.name: SelectiveCopyTask,
    MQARTask.name: MQARTask,
    AddingTask.name: AddingTask,
}


def make_task(name: str, seq_len: int, difficulty: int, *, seed: Any = 0, **options: Any) -> SyntheticTask:
    """Build a task by registry name (``"copy"``, ``"selective_copy"``, ``"mqar"``, ``"adding"``)."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}") from None
    return cls(seq_len, difficulty, seed=seed, **options)
