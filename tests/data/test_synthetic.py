"""Correct-by-construction tests for the synthetic long-range tasks.

Each task is checked with an oracle written here, independently of the generator: it reads only
``inputs`` (never ``targets``) and must score 100%. A random predictor must score near chance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.data.synthetic import (
    BLANK,
    DELIM,
    TASKS,
    AddingTask,
    CopyTask,
    MQARTask,
    SelectiveCopyTask,
    make_task,
)

# ----------------------------------------------------------------------------- oracles (inputs only)


def oracle_copy(inputs: np.ndarray, length: int) -> np.ndarray:
    preds = np.full_like(inputs, BLANK)
    for b, row in enumerate(inputs):
        delim = list(row).index(DELIM)
        preds[b, delim + 1 : delim + 1 + length] = row[:length]
    return preds


def oracle_selective_copy(inputs: np.ndarray) -> np.ndarray:
    preds = np.full_like(inputs, BLANK)
    for b, row in enumerate(inputs):
        delim = int(np.flatnonzero(row == DELIM)[-1])
        symbols = [int(x) for x in row[:delim] if x != BLANK]
        preds[b, delim + 1 : delim + 1 + len(symbols)] = symbols
    return preds


def oracle_mqar(inputs: np.ndarray, pairs: int) -> np.ndarray:
    preds = np.full_like(inputs, BLANK)
    for b, row in enumerate(inputs):
        table = {int(row[2 * i]): int(row[2 * i + 1]) for i in range(pairs)}
        for t in range(2 * pairs, len(row)):
            if row[t] != BLANK:
                preds[b, t] = table[int(row[t])]
    return preds


def oracle_adding(inputs: np.ndarray) -> np.ndarray:
    values, markers = inputs[..., 0].astype(np.float64), inputs[..., 1]
    return (values * (markers == 1)).sum(axis=1)


def _random_logits(task, batch, seed=0):
    b, t = batch["targets"].shape
    return np.random.default_rng(seed).normal(size=(b, t, task.num_classes)).astype(np.float32)


# ----------------------------------------------------------------------------- shared properties


SMALL = {
    "copy": dict(seq_len=30, difficulty=5),
    "selective_copy": dict(seq_len=40, difficulty=6),
    "mqar": dict(seq_len=48, difficulty=8, vocab_size=64),
    "adding": dict(seq_len=50, difficulty=2),
}


def _make(name: str, seed=0):
    kw = dict(SMALL[name])
    return make_task(name, kw.pop("seq_len"), kw.pop("difficulty"), seed=seed, **kw)


def test_registry_names():
    assert set(TASKS) == {"copy", "selective_copy", "mqar", "adding"}
    with pytest.raises(ValueError, match="unknown task"):
        make_task("cpy", 10, 2)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shapes_dtypes_and_determinism(name):
    task = _make(name, seed=3)
    b1 = task.batch(7, 4)
    b2 = _make(name, seed=3).batch(7, 4)  # a fresh object: only (seed, step) matter
    other_step = task.batch(8, 4)
    other_seed = _make(name, seed=4).batch(7, 4)
    T = task.seq_len
    for k in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(b1[k], b2[k])
    assert not np.array_equal(b1["inputs"], other_step["inputs"])
    assert not np.array_equal(b1["inputs"], other_seed["inputs"])
    assert b1["mask"].shape == (4, T) and b1["mask"].dtype == np.float32
    if name == "adding":
        assert b1["inputs"].shape == (4, T, 2) and b1["inputs"].dtype == np.float32
        assert b1["targets"].shape == (4, T) and b1["targets"].dtype == np.float32
    else:
        assert b1["inputs"].shape == (4, T) and b1["inputs"].dtype == np.int32
        assert b1["targets"].dtype == np.int32
        assert b1["inputs"].min() >= 0 and b1["inputs"].max() < task.vocab_size
        assert b1["targets"].max() < task.num_classes
    # batches are independent of the order they are requested in
    np.testing.assert_array_equal(next(task.batches(4, start_step=7))["inputs"], b1["inputs"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_jax_output_and_jax_key_seed(name):
    task = _make(name)
    jb = task.batch(0, 3, as_jax=True)
    assert all(isinstance(v, jax.Array) for v in jb.values())
    np.testing.assert_array_equal(np.asarray(jb["inputs"]), task.batch(0, 3)["inputs"])
    kw = dict(SMALL[name])
    t1 = make_task(name, kw.pop("seq_len"), kw.pop("difficulty"), seed=jax.random.key(5), **kw)
    t2 = type(t1)(t1.seq_len, t1.difficulty, seed=jax.random.PRNGKey(5), **kw)
    np.testing.assert_array_equal(t1.batch(2, 3)["inputs"], t2.batch(2, 3)["inputs"])


# ----------------------------------------------------------------------------- copy


def test_copy_oracle_mask_and_chance():
    task = CopyTask(40, 6, seed=1, num_symbols=8)
    batch = task.batch(0, 256)
    L, T = 6, 40
    assert task.delay == T - 2 * L - 1
    # mask covers exactly the last L positions; the delimiter sits right before them
    assert (batch["mask"][:, T - L :] == 1).all() and batch["mask"][:, : T - L].sum() == 0
    assert (batch["inputs"][:, T - L - 1] == DELIM).all()
    assert (batch["inputs"][:, L : T - L - 1] == BLANK).all()
    acc = task.accuracy(oracle_copy(batch["inputs"], L), batch)
    assert acc == {"token_accuracy": 1.0, "sequence_accuracy": 1.0}
    rand = task.accuracy(_random_logits(task, batch), batch)
    assert abs(rand["token_accuracy"] - 1 / task.num_classes) < 0.03
    assert rand["sequence_accuracy"] < 0.01
    # guessing uniformly among the data symbols is the task's chance level
    guess = np.random.default_rng(0).integers(2, task.vocab_size, size=batch["targets"].shape)
    assert abs(task.accuracy(guess, batch)["token_accuracy"] - task.chance_token_accuracy) < 0.03


def test_copy_errors():
    with pytest.raises(ValueError, match=r"seq_len=10 is too short.*difficulty=5.*>= .*11"):
        CopyTask(10, 5)
    CopyTask(11, 5)  # zero delay is allowed
    with pytest.raises(ValueError, match="difficulty must be >= 1"):
        CopyTask(10, 0)
    with pytest.raises(TypeError, match="seq_len must be an int"):
        CopyTask(10.0, 2)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        CopyTask(10, 2, seed=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        CopyTask(10, 2).batch(0, 0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        CopyTask(10, 2).batch(-1, 2)


# ----------------------------------------------------------------------------- selective copy


def test_selective_copy_oracle_mask_and_chance():
    task = SelectiveCopyTask(64, 8, seed=2)
    batch = task.batch(3, 256)
    K, T = 8, 64
    C = T - K - 1
    assert ((batch["inputs"][:, :C] != BLANK).sum(axis=1) == K).all()  # K symbols in the context
    assert (batch["inputs"][:, C] == DELIM).all()
    assert (batch["mask"].sum(axis=1) == K).all() and (batch["mask"][:, C + 1 :] == 1).all()
    # positions really are scattered: not always the same
    first = np.argmax(batch["inputs"][:, :C] != BLANK, axis=1)
    assert len(np.unique(first)) > 5
    acc = task.accuracy(oracle_selective_copy(batch["inputs"]), batch)
    assert acc == {"token_accuracy": 1.0, "sequence_accuracy": 1.0}
    rand = task.accuracy(_random_logits(task, batch), batch)
    assert abs(rand["token_accuracy"] - 1 / task.num_classes) < 0.03
    assert rand["sequence_accuracy"] == 0.0


def test_selective_copy_errors():
    with pytest.raises(ValueError, match=r"too short for difficulty=8 scattered.*>= .*17"):
        SelectiveCopyTask(16, 8)
    SelectiveCopyTask(17, 8).batch(0, 2)  # tightest fit: every context position is a symbol


# ----------------------------------------------------------------------------- MQAR


def test_mqar_oracle_mask_and_chance():
    task = MQARTask(64, 8, seed=0, vocab_size=128)
    batch = task.batch(5, 256)
    D = 8
    inputs = batch["inputs"]
    keys, values = inputs[:, 0 : 2 * D : 2], inputs[:, 1 : 2 * D : 2]
    assert (keys >= 2).all() and (keys < 2 + task.num_keys).all()
    assert (values >= 2 + task.num_keys).all() and (values < task.vocab_size).all()
    assert all(len(set(r)) == D for r in keys) and all(len(set(r)) == D for r in values)
    # every key is queried exactly once, and the mask covers exactly the query positions
    queries = inputs[:, 2 * D :]
    assert all(sorted(q[q != BLANK]) == sorted(k) for q, k in zip(queries, keys))
    np.testing.assert_array_equal(batch["mask"][:, 2 * D :] == 1, queries != BLANK)
    assert batch["mask"][:, : 2 * D].sum() == 0
    acc = task.accuracy(oracle_mqar(inputs, D), batch)
    assert acc == {"token_accuracy": 1.0, "sequence_accuracy": 1.0}
    rand = task.accuracy(_random_logits(task, batch), batch)
    assert rand["token_accuracy"] < 0.03 and rand["sequence_accuracy"] == 0.0
    guess = np.random.default_rng(0).integers(2 + task.num_keys, task.vocab_size, size=inputs.shape)
    assert abs(task.accuracy(guess, batch)["token_accuracy"] - task.chance_token_accuracy) < 0.02


def test_mqar_errors():
    with pytest.raises(ValueError, match=r"too short for difficulty=8 key-value pairs.*>= .*24"):
        MQARTask(23, 8)
    MQARTask(24, 8, vocab_size=18).batch(0, 2)  # tightest fit in length and vocabulary
    with pytest.raises(ValueError, match=r"vocab_size=17 is too small.*>= .*18"):
        MQARTask(24, 8, vocab_size=17)


# ----------------------------------------------------------------------------- adding


def test_adding_oracle_markers_and_baseline():
    task = AddingTask(100, 2, seed=0)
    batch = task.batch(0, 4000)
    inputs = batch["inputs"]
    markers = inputs[..., 1]
    assert ((markers == 1).sum(axis=1) == 2).all() and set(np.unique(markers)) == {0.0, 1.0}
    # one marker in each half (Le et al. 2015)
    assert (markers[:, :50].sum(axis=1) == 1).all() and (markers[:, 50:].sum(axis=1) == 1).all()
    assert (inputs[..., 0] >= 0).all() and (inputs[..., 0] < 1).all()
    assert (batch["mask"][:, -1] == 1).all() and batch["mask"][:, :-1].sum() == 0
    sums = oracle_adding(inputs)
    np.testing.assert_allclose(batch["targets"][:, -1], sums, rtol=1e-6)
    assert task.accuracy(sums, batch)["token_accuracy"] == 1.0
    # the same prediction given at every step, or with a trailing feature axis
    full = np.repeat(sums[:, None], 100, axis=1)[..., None]
    assert task.accuracy(full, batch)["sequence_accuracy"] == 1.0
    # constant-1 predictor: MSE ~ 1/6 and |err| < 0.04 with probability ~0.0784
    const = task.accuracy(np.ones(4000, np.float32), batch)
    assert abs(const["mse"] - 1 / 6) < 0.015
    assert abs(const["token_accuracy"] - task.chance_token_accuracy) < 0.015
    # an answer off by the tolerance is wrong
    assert task.accuracy(sums + 0.05, batch)["token_accuracy"] == 0.0


def test_adding_more_markers_and_errors():
    task = AddingTask(9, 3, seed=1)
    batch = task.batch(0, 200)
    markers = batch["inputs"][..., 1]
    for seg in (slice(0, 3), slice(3, 6), slice(6, 9)):
        assert (markers[:, seg].sum(axis=1) == 1).all()
    assert task.accuracy(oracle_adding(batch["inputs"]), batch)["token_accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"too short for difficulty=3 marked"):
        AddingTask(2, 3)
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        AddingTask(10, 2, tolerance=0)
    with pytest.raises(ValueError, match="shape"):
        task.accuracy(np.zeros((200, 5)), batch)


# ----------------------------------------------------------------------------- metric details


def test_accuracy_counts_only_masked_positions_and_is_jittable():
    task = CopyTask(12, 3, seed=0)
    batch = task.batch(0, 2)
    preds = oracle_copy(batch["inputs"], 3)
    # wrong everywhere outside the mask: still perfect
    noisy = np.where(batch["mask"] > 0, preds, 7)
    assert task.accuracy(noisy, batch)["token_accuracy"] == 1.0
    # one wrong token in sequence 0: token acc 5/6, exact match 1/2
    noisy[0, -1] = 2 if noisy[0, -1] != 2 else 3
    acc = task.accuracy(noisy, batch)
    assert acc == {"token_accuracy": pytest.approx(5 / 6), "sequence_accuracy": 0.5}
    jb = {k: jnp.asarray(v) for k, v in batch.items()}
    jacc = jax.jit(task.accuracy)(jnp.asarray(noisy), jb)
    assert float(jacc["token_accuracy"]) == pytest.approx(5 / 6) and float(jacc["sequence_accuracy"]) == 0.5
    with pytest.raises(ValueError, match="num_classes"):
        task.accuracy(np.zeros((2, 12, 3)), batch)
