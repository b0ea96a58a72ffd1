"""`jaxseq longrange`: which sequence models solve which long-range tasks at which lengths.

    jaxseq longrange --preset default --out profiles/longrange [--workdir runs/longrange]
                     [--tasks copy mqar] [--models lstm transformer-rope] [--lengths 64 256]
                     [--steps N] [--lrs 3e-3 1e-2] [--budget-s S] [--lstm-forget-bias 1] [--report-only]

Trains each model of `jaxseq.models.classifier.MODEL_SPECS` (LSTM, GRU, minGRU, minLSTM, causal
Transformer with sinusoidal or rotary positions; widths chosen so that parameter counts match a
target per task) on each task of `jaxseq.data.synthetic` (copy with delay, selective copy, MQAR,
adding) at each length, through the common training engine (`jaxseq.train.loop.train`:
checkpoints, TensorBoard logs, progress), then scores it on fresh held-out sequences with
`task.accuracy`. Protocol:

* every run has the same step budget, batch size, optimiser (AdamW, warm-up + cosine) and seed;
* learning rate: the preset's small sweep runs at the shortest length of each (task, model); the
  best value (held-out accuracy, then lower eval loss) is reused at the longer lengths (preset
  `sweep_every_length` sweeps at every length instead);
* a (task, model) whose accuracy at a length is no better than chance (below
  ``chance + 0.1 * (1 - chance)``) is not trained at longer lengths ("skipped": recorded);
* per-model length caps (`max_len`) and the sweep's time budget (`budget_s`) are recorded as
  "not run (budget)" — never silently dropped;
* "solved" means held-out per-position accuracy >= 99% (adding: |error| < tolerance).

Outputs in OUT: ``results.jsonl`` (one record per (task, model, length, lr) run; a rerun skips finished
runs and retries errors and budget gaps), ``plan.json`` (the grid), ``REPORT.md`` and PNG plots, all
generated from the JSONL. Workdirs (engine checkpoints, TensorBoard logs) go to ``--workdir``
(default ``runs/longrange``); checkpoints are deleted once a run's record is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["PRESETS", "Preset", "TaskData", "run_longrange", "write_report", "add_parser"]

SOLVED = 0.99
_DEFAULT_WORKDIR = "runs/longrange"
_EVAL_SEED_OFFSET = 1_000_003  # engine's eval batches (loss)
_TEST_SEED_OFFSET = 2_000_003  # held-out accuracy


@dataclasses.dataclass(frozen=True)
class Preset:
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    lengths: tuple[int, ...]
    lrs: tuple[float, ...]
    steps: int
    batch_size: int
    target_params: int
    layers: int = 2
    num_heads: int = 2
    difficulty: tuple[tuple[str, int], ...] = (("copy", 4), ("selective_copy", 4), ("mqar", 4), ("adding", 2))
    task_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("copy", (("num_symbols", 8),)),
        ("selective_copy", (("num_symbols", 8),)),
        ("mqar", (("vocab_size", 34),)),  # 16 keys, 16 values
        ("adding", (("tolerance", 0.04),)),
    )
    eval_examples: int = 256  # held-out sequences for the accuracy
    sweep_every_length: bool = False
    max_len: tuple[tuple[str, int], ...] = ()  # per-model length caps (budget)
    budget_s: float | None = None  # stop starting runs after this much wall time (recorded as not run)
    seed: int = 0
    lstm_forget_bias: float = 0.0  # added to the LSTM forget-gate bias at init (0: PyTorch's init)

    def difficulty_of(self, task: str) -> int:
        return dict(self.difficulty)[task]

    def options_of(self, task: str) -> dict[str, Any]:
        return dict(dict(self.task_options).get(task, ()))

    def cap_of(self, model: str) -> int | None:
        return dict(self.max_len).get(model)


_ALL_MODELS = ("lstm", "gru", "mingru", "minlstm", "transformer-sin", "transformer-rope")
_ALL_TASKS = ("copy", "selective_copy", "mqar", "adding")

PRESETS: dict[str, Preset] = {
    # The tests: one task, two models, two tiny lengths, a two-value sweep, a handful of steps.
    "smoke": Preset(
        tasks=("copy",), models=("lstm", "transformer-rope"), lengths=(16, 32), lrs=(3e-3, 1e-2),
        steps=6, batch_size=8, target_params=6000, difficulty=(("copy", 2), ("selective_copy", 2),
                                                               ("mqar", 2), ("adding", 2)),
        eval_examples=16,
    ),
    # The study on a 2-core CPU, < 30 min: lengths 64 to 4096 in factors of 8. Measured here (2026-11-27,
    # quiet): a recurrent run at T=1024 costs ~0.16 s per step at batch 32, so a 300-step, batch-32
    # protocol over 64..4096 takes hours (the `thorough` preset); this one trains 200 steps at batch 16,
    # raises the LSTM's forget-gate bias by 1 (Jozefowicz et al. 2015; at PyTorch's init the LSTM
    # learned nothing in 300 steps), and caps the Transformers at 512 (their T=4096 step is ~50x the
    # cost of T=512 on 2 cores). What the time limit leaves out is recorded as "not run (budget)".
    "default": Preset(
        tasks=_ALL_TASKS, models=_ALL_MODELS, lengths=(64, 512, 4096), lrs=(3e-3, 1e-2),
        steps=200, batch_size=16, target_params=50_000, eval_examples=256,
        max_len=(("transformer-sin", 512), ("transformer-rope", 512)),
        budget_s=27 * 60, lstm_forget_bias=1.0,
    ),
    # The first default (until 2026-11-27): 300 steps at batch 32 over 64..4096; about 55 minutes for
    # 64..1024 on 2 cores. Its results are in profiles/longrange/thorough/.
    "thorough": Preset(
        tasks=_ALL_TASKS, models=_ALL_MODELS, lengths=(64, 256, 1024, 4096), lrs=(3e-3, 1e-2),
        steps=300, batch_size=32, target_params=50_000, eval_examples=256,
        max_len=(("transformer-sin", 1024), ("transformer-rope", 1024)),
        budget_s=27 * 60,
    ),
    # Longer: more steps, a 3-value sweep at every length, up to 8192 (hours on a CPU).
    "full": Preset(
        tasks=_ALL_TASKS, models=_ALL_MODELS, lengths=(64, 256, 1024, 4096, 8192), lrs=(1e-3, 3e-3, 1e-2),
        steps=2000, batch_size=32, target_params=100_000, eval_examples=512, sweep_every_length=True,
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
    if model == "lstm" and preset.lstm_forget_bias:
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
    if preset.steps < 1:
        raise ValueError(f"--steps: expected >= 1, got {preset.steps}")
    if preset.batch_size < 1:
        raise ValueError(f"--batch-size: expected >= 1, got {preset.batch_size}")
    if any(not lr > 0 for lr in preset.lrs):
        raise ValueError(f"--lrs: expected positive values, got {list(preset.lrs)}")
    if preset.budget_s is not None and preset.budget_s <= 0:
        raise ValueError(f"--budget-s: expected > 0, got {preset.budget_s}")
    # Every task must accept every length (fails fast with the task's own message).
    for task in preset.tasks:
        for T in preset.lengths:
            try:
                TaskData(task, T, preset.difficulty_of(task), **preset.options_of(task))
            except ValueError as e:
                raise ValueError(f"--lengths: task {task} at length {T}: {e}") from None


def run_key(preset: Preset, task: str, model: str, length: int, lr: float) -> str:
    point = {"task": task, "model": model, "length": length, "lr": lr, "steps": preset.steps,
             "batch_size": preset.batch_size, "difficulty": preset.difficulty_of(task),
             "options": preset.options_of(task), "target_params": preset.target_params,
             "layers": preset.layers, "seed": preset.seed}
    if model == "lstm" and preset.lstm_forget_bias:  # only when set: older keys stay valid
        point["lstm_forget_bias"] = preset.lstm_forget_bias
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def _workdir(root: Path, task: str, model: str, length: int, lr: float, preset: Preset) -> Path:
    fb = f"_fb{preset.lstm_forget_bias:g}" if model == "lstm" and preset.lstm_forget_bias else ""
    return root / task / model / (f"T{length}_lr{lr:g}_s{preset.steps}_b{preset.batch_size}"
                                  f"_d{preset.difficulty_of(task)}_p{preset.target_params}_seed{preset.seed}{fb}")


def _latest(records: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        out[r["key"]] = r
    return out


def _score(rec: dict) -> tuple[float, float]:
    """Sort key for the LR choice: accuracy first, then lower eval loss."""
    if rec.get("status") != "ok":
        return (-1.0, -math.inf)
    loss = rec.get("eval_loss")
    return (rec.get("token_accuracy", -1.0), -(loss if loss is not None and math.isfinite(loss) else math.inf))


def no_signal(rec: dict) -> bool:
    """True when a run learned nothing usable (accuracy at most chance + 10% of the headroom)."""
    if rec.get("status") != "ok":
        return True
    chance = rec.get("chance") or 0.0
    return rec.get("token_accuracy", 0.0) < chance + 0.1 * (1.0 - chance)


# ------------------------------------------------------------------------------------------------ one run
def train_one(preset: Preset, task: str, model: str, length: int, lr: float, workdir: Path, *,
              engine_progress: bool = False, keep_checkpoints: bool = False) -> dict[str, Any]:
    """Train one (task, model, length, lr) through `jaxseq.train.loop.train` and score it."""
    import jax
    from flax import nnx

    from jaxseq.models.classifier import MODEL_SPECS, build_model, count_parameters
    from jaxseq.train.config import TrainConfig
    from jaxseq.train.loop import NonFiniteLossError, train

    data = TaskData(task, length, preset.difficulty_of(task), **preset.options_of(task))
    d_model, n_params = width_for(model, data, preset)
    kw = model_kwargs(model, data, preset)

    def model_fn(config: Any, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
        del config, vocab_size  # sizes come from the task (regression data has no vocabulary)
        return build_model(model, d_model=d_model, rngs=rngs, **kw)

    base_kind = MODEL_SPECS[model][0]
    config = TrainConfig(
        task="custom", model=base_kind, workdir=str(workdir), d_model=d_model, layers=preset.layers,
        num_heads=preset.num_heads, steps=preset.steps, batch_size=preset.batch_size, seq_len=length,
        seed=preset.seed, lr=lr, eval_every=0, eval_batches=2, log_every=max(1, preset.steps // 20),
        ckpt_every=preset.steps, keep_checkpoints=1, progress=engine_progress,
        extra={"longrange": {"task": task, "model": model, "difficulty": preset.difficulty_of(task)}},
    )
    loss_fn = regression_loss if data.kind == "regression" else None
    rec: dict[str, Any] = {
        "task": task, "model": model, "length": length, "lr": lr, "steps": preset.steps,
        "batch_size": preset.batch_size, "difficulty": preset.difficulty_of(task), "d_model": d_model,
        "params": n_params, "layers": preset.layers, "chance": data.chance, "workdir": str(workdir),
    }
    if "lstm_forget_bias" in kw:
        rec["lstm_forget_bias"] = kw["lstm_forget_bias"]
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        result = train(config, model_fn=model_fn, data=data, loss_fn=loss_fn)
    except NonFiniteLossError as e:
        rec.update(status="diverged", message=str(e)[:500],
                   train_wall_s=time.perf_counter() - w0, train_cpu_s=time.process_time() - c0)
        return rec
    rec["train_wall_s"] = time.perf_counter() - w0
    rec["train_cpu_s"] = time.process_time() - c0
    rec["resumed_from"] = result.resumed_from
    assert count_parameters(result.model) == n_params
    losses = [result.losses[k] for k in sorted(result.losses)]
    rec["final_train_loss"] = float(np.mean(losses[-10:])) if losses else None

    # Held-out accuracy on fresh sequences (another seed than training and the engine's eval).
    w1 = time.perf_counter()
    graphdef, params = nnx.split(result.model)
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    task_obj = data.task(preset.seed + _TEST_SEED_OFFSET)
    hits = tokens = seqs = solved = 0.0
    sq_err = loss_sum = 0.0
    for batch in data.test_batches(seed=preset.seed, batch_size=preset.batch_size,
                                   examples=preset.eval_examples):
        out = np.asarray(forward(params, batch["inputs"]))
        acc = task_obj.accuracy(out, batch)
        n_tok = float(batch["mask"].sum())
        hits += acc["token_accuracy"] * n_tok
        tokens += n_tok
        seqs += batch["inputs"].shape[0]
        solved += acc["sequence_accuracy"] * batch["inputs"].shape[0]
        if "mse" in acc:
            sq_err += acc["mse"] * n_tok
        else:  # held-out cross-entropy at the answer positions
            z = out - out.max(axis=-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            nll = -np.take_along_axis(logp, batch["targets"][..., None].astype(np.int64), axis=-1)[..., 0]
            loss_sum += float((nll * batch["mask"]).sum())
    rec["token_accuracy"] = hits / max(tokens, 1.0)
    rec["sequence_accuracy"] = solved / max(seqs, 1.0)
    if data.kind == "regression":
        rec["test_mse"] = sq_err / max(tokens, 1.0)
        rec["eval_loss"] = rec["test_mse"]
    else:
        rec["eval_loss"] = loss_sum / max(tokens, 1.0)
    rec["test_examples"] = int(seqs)
    rec["eval_wall_s"] = time.perf_counter() - w1
    rec["status"] = "ok"
    if not keep_checkpoints:
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    return rec


# ------------------------------------------------------------------------------------------------ sweep
def _append(path: Path, rec: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def plan_of(preset: Preset) -> dict[str, Any]:
    return {"preset": dataclasses.asdict(preset), "solved_threshold": SOLVED}


def run_longrange(preset: Preset, out: str | Path, *, workdir: str | Path = _DEFAULT_WORKDIR,
                  progress: bool = True, engine_progress: bool = False, keep_checkpoints: bool = False,
                  preset_name: str = "custom") -> list[dict]:
    """Run (or resume) the sweep of `preset`; returns the records written by this call."""
    from jaxseq.bench.sweep import environment_info, load_records

    _validate(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(workdir)
    results = out / "results.jsonl"
    plan = {**plan_of(preset), "preset_name": preset_name}
    (out / "plan.json").write_text(json.dumps(plan, indent=2, default=str) + "\n")
    done = _latest(load_records(results))
    written: list[dict] = []
    lengths = sorted(set(preset.lengths))
    combos = [(t, m) for t in preset.tasks for m in preset.models]
    total = sum(len(preset.lrs) if (i == 0 or preset.sweep_every_length) else 1
                for i in range(len(lengths))) * len(combos)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="longrange", unit="run", dynamic_ncols=True, file=sys.stderr)
    start = time.perf_counter()
    chosen: dict[tuple[str, str], float] = {}  # best LR from the shortest length
    previous: dict[tuple[str, str], dict] = {}  # record used at the previous length

    def emit(rec: dict) -> None:
        rec.update(environment_info())
        rec["preset"] = preset_name
        _append(results, rec)
        done[rec["key"]] = rec
        written.append(rec)

    try:
        for i, T in enumerate(lengths):
            for task, model in combos:
                sweep = i == 0 or preset.sweep_every_length
                lrs = list(preset.lrs) if sweep else [chosen.get((task, model), preset.lrs[0])]
                base = {"task": task, "model": model, "length": T, "phase": "sweep" if sweep else "main"}
                cap = preset.cap_of(model)
                prev = previous.get((task, model))
                recs_here = []
                for lr in lrs:
                    key = run_key(preset, task, model, T, lr)
                    if bar is not None:
                        bar.set_postfix_str(f"{task} {model} T={T} lr={lr:g}")
                    old = done.get(key)
                    if old is not None and old.get("status") in ("ok", "diverged"):
                        recs_here.append(old)
                        if bar is not None:
                            bar.update(1)
                        continue
                    rec = {"key": key, **base, "lr": lr}
                    # Decisions not to train are recomputed on every run (never trusted from the file).
                    if cap is not None and T > cap:
                        rec.update(status="not_run", reason=f"budget: {model} capped at length {cap} in this preset")
                    elif prev is not None and prev.get("status") == "not_run":
                        rec.update(status="not_run", reason=f"budget: length {prev['length']} not run")
                    elif prev is not None and prev.get("status") == "skipped":
                        rec.update(status="skipped", reason=prev.get("reason"))
                    elif prev is not None and prev.get("status") == "error":
                        rec.update(status="skipped", reason=f"error at length {prev['length']}")
                    elif prev is not None and no_signal(prev):
                        rec.update(status="skipped", reason=f"no better than chance at length {prev['length']}")
                    elif preset.budget_s is not None and time.perf_counter() - start > preset.budget_s:
                        rec.update(status="not_run", reason=f"budget: sweep time limit {preset.budget_s:.0f} s reached")
                    else:
                        wd = _workdir(root, task, model, T, lr, preset)
                        try:
                            rec.update(train_one(preset, task, model, T, lr, wd, engine_progress=engine_progress,
                                                 keep_checkpoints=keep_checkpoints))
                            rec["phase"] = base["phase"]
                        except KeyboardInterrupt:
                            raise
                        except Exception as e:  # recorded, retried on the next run
                            rec.update(status="error", message=f"{type(e).__name__}: {e}"[:2000])
                    if not (old is not None and old.get("status") == rec["status"] == "skipped"
                            and old.get("reason") == rec.get("reason")) and not (
                            old is not None and old.get("status") == rec["status"] == "not_run"
                            and old.get("reason") == rec.get("reason")):
                        emit(rec)
                    recs_here.append(rec)
                    if bar is not None:
                        bar.update(1)
                ok = [r for r in recs_here if r.get("status") == "ok"]
                if ok:
                    best = max(ok, key=_score)
                    if i == 0:
                        chosen[(task, model)] = best["lr"]
                    previous[(task, model)] = best
                else:
                    # diverged everywhere counts as no signal; otherwise carry the reason forward.
                    order = ("diverged", "error", "skipped", "not_run")
                    previous[(task, model)] = min(recs_here, key=lambda r: order.index(r.get("status", "error"))
                                                  if r.get("status") in order else 0)
    finally:
        if bar is not None:
            bar.close()
    write_report(out)
    return written


# ------------------------------------------------------------------------------------------------ report
def _fmt_acc(rec: dict | None) -> str:
    if rec is None:
        return "—"
    st = rec.get("status")
    if st == "ok":
        return f"{100 * rec['token_accuracy']:.1f}"
    if st == "skipped":
        return "skip"
    if st == "not_run":
        return "not run (budget)"
    return st or "?"


def summarize(records: list[dict]) -> dict[str, Any]:
    """Per (task, model, length): the chosen record (best LR among the runs at that length)."""
    cells: dict[tuple[str, str, int], dict] = {}
    for rec in _latest(records).values():
        k = (rec["task"], rec["model"], rec["length"])
        cur = cells.get(k)
        if cur is None:
            cells[k] = rec
            continue
        # Prefer ok over anything else, then the better score.
        if rec.get("status") == "ok" and (cur.get("status") != "ok" or _score(rec) > _score(cur)):
            cells[k] = rec
        elif cur.get("status") != "ok" and rec.get("status") == "diverged":
            cells[k] = rec
    return cells


def longest_solved(cells: dict, task: str, model: str, lengths: list[int]) -> int | None:
    best = None
    for T in lengths:
        r = cells.get((task, model, T))
        if r is not None and r.get("status") == "ok" and r["token_accuracy"] >= SOLVED:
            best = T
    return best


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


def write_report(out: str | Path) -> Path:
    """REPORT.md and PNGs in `out`, computed from `out/results.jsonl` and `out/plan.json`."""
    from jaxseq.bench.sweep import load_records

    out = Path(out)
    records = load_records(out / "results.jsonl")
    if not records:
        raise FileNotFoundError(f"{out / 'results.jsonl'}: no records to report")
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
    p = plan.get("preset", {})
    latest = list(_latest(records).values())
    cells = summarize(records)
    tasks = [t for t in (p.get("tasks") or _ALL_TASKS) if any(c[0] == t for c in cells)]
    models = [m for m in (p.get("models") or _ALL_MODELS) if any(c[1] == m for c in cells)]
    lengths = sorted({c[2] for c in cells})
    L: list[str] = []
    L.append("# Long-range synthetic tasks: which model solves which length\n")
    L.append("Generated by `jaxseq longrange` from `results.jsonl` (no hand-written numbers). "
             "Regenerate with `jaxseq longrange --out DIR --report-only`.\n")
    L.append("## Protocol\n")
    if p:
        diff = dict((k, v) for k, v in p.get("difficulty", []))
        L.append(f"- Preset `{plan.get('preset_name', '?')}`: {p['steps']} optimiser steps per run, batch "
                 f"{p['batch_size']}, {p['layers']} layers, AdamW (warm-up 5%, cosine to 0.1×, weight decay 0.1, "
                 f"clip 1.0), seed {p['seed']}, float32, through `jaxseq.train.loop.train` (checkpoints, "
                 f"TensorBoard logs under the run's workdir).")
        L.append(f"- Learning rates {p['lrs']}: "
                 + ("swept at every length." if p.get("sweep_every_length") else
                    f"swept at the shortest length ({lengths[0] if lengths else '?'}) per (task, model); "
                    "the best (held-out accuracy, then eval loss) is reused at longer lengths."))
        L.append(f"- Difficulty: " + ", ".join(f"{t} {diff.get(t)}" for t in tasks)
                 + " (copy/selective copy: symbols to recall; MQAR: key-value pairs; adding: marked numbers). "
                 f"Task options: " + "; ".join(f"{t} {dict(o)}" for t, o in p.get("task_options", []) if t in tasks) + ".")
        L.append(f"- Accuracy: per answer position on {p['eval_examples']} fresh held-out sequences "
                 f"(a seed never used in training); adding counts |prediction − sum| < tolerance. "
                 f"**Solved** = accuracy ≥ {100 * SOLVED:.0f}%.")
        L.append("- Models are causal (the output at step t sees inputs ≤ t). Widths are chosen per task so that "
                 f"parameter counts match the target {p['target_params']:,} as closely as the width grid allows "
                 "(table below). minGRU/minLSTM run their recurrence as a sequential scan (same numbers as the "
                 "log-space parallel scan, faster on 2 CPU cores). Attention: einsum below 512 positions, the "
                 "blockwise (flash-style) kernel from 512 on. LSTM initialisation: "
                 + (f"PyTorch's, plus {p['lstm_forget_bias']:g} on the forget-gate bias." if p.get("lstm_forget_bias")
                    else "PyTorch's (forget-gate bias not raised)."))
        L.append("- A (task, model) no better than chance (accuracy < chance + 10% of the headroom) at one length "
                 "is not trained at longer lengths (`skip`). `not run (budget)`: a per-model length cap or the "
                 "sweep's time limit in this preset" + (f" (caps: {dict((k, v) for k, v in p.get('max_len', []))}; "
                                                         f"time limit {p.get('budget_s')} s)" if p.get("max_len") or p.get("budget_s") else "") + ".")
    L.append("")

    # Parameter counts.
    L.append("## Model sizes (d_model / parameters)\n")
    L.append("| task | " + " | ".join(models) + " |")
    L.append("|---|" + "---|" * len(models))
    for task in tasks:
        row = []
        for m in models:
            r = next((r for r in latest if r["task"] == task and r["model"] == m and "params" in r), None)
            row.append(f"{r['d_model']} / {r['params']:,}" if r else "—")
        L.append(f"| {task} | " + " | ".join(row) + " |")
    L.append("")

    # Accuracy tables.
    L.append("## Held-out accuracy (%) vs length\n")
    L.append("Cell: accuracy at the chosen learning rate; `skip`/`not run (budget)` as in the protocol; "
             "`diverged`: non-finite loss at every learning rate tried.\n")
    for task in tasks:
        L.append(f"### {task}\n")
        L.append("| model | " + " | ".join(f"T={T}" for T in lengths) + " |")
        L.append("|---|" + "---|" * len(lengths))
        for m in models:
            L.append(f"| {m} | " + " | ".join(_fmt_acc(cells.get((task, m, T))) for T in lengths) + " |")
        L.append("")
    if any(t == "adding" for t in tasks):
        L.append("Adding, held-out MSE (predicting the constant 1 gives ≈ 0.167):\n")
        L.append("| model | " + " | ".join(f"T={T}" for T in lengths) + " |")
        L.append("|---|" + "---|" * len(lengths))
        for m in models:
            row = []
            for T in lengths:
                r = cells.get(("adding", m, T))
                row.append(f"{r['test_mse']:.4f}" if r and r.get("status") == "ok" and "test_mse" in r else "—")
            L.append(f"| {m} | " + " | ".join(row) + " |")
        L.append("")

    # Longest solved.
    L.append(f"## Longest length solved (accuracy ≥ {100 * SOLVED:.0f}%)\n")
    L.append("| task | " + " | ".join(models) + " |")
    L.append("|---|" + "---|" * len(models))
    solved: dict[tuple[str, str], int | None] = {}
    for task in tasks:
        row = []
        for m in models:
            s = longest_solved(cells, task, m, lengths)
            solved[(task, m)] = s
            tried = [T for T in lengths if (c := cells.get((task, m, T))) is not None and c.get("status") == "ok"]
            untried = [T for T in lengths if T not in tried]
            note = ""
            if s is not None and untried and max(untried) > s and all(T > s for T in untried):
                note = f" (>{s} not run)"
            row.append((str(s) if s is not None else "none") + note)
        L.append(f"| {task} | " + " | ".join(row) + " |")
    L.append("")

    # Learning-rate sweep.
    L.append("## Learning-rate sweep\n")
    sweep_lrs = p.get("lrs", [])
    if len(sweep_lrs) < 2:
        L.append(f"One learning rate ({sweep_lrs}): no sweep.\n")
    else:
        L.append("| task | model | T | " + " | ".join(f"lr={lr:g}" for lr in sweep_lrs) + " | chosen |")
        L.append("|---|---|---|" + "---|" * (len(sweep_lrs) + 1))
    for task in tasks:
        for m in models:
            for T in lengths:
                runs = {r["lr"]: r for r in latest if r["task"] == task and r["model"] == m and r["length"] == T
                        and r.get("status") in ("ok", "diverged")}
                if len(runs) < 2:
                    continue
                cells_lr = []
                for lr in p.get("lrs", []):
                    r = runs.get(lr)
                    cells_lr.append("—" if r is None else (f"{100 * r['token_accuracy']:.1f}"
                                                           if r["status"] == "ok" else r["status"]))
                ch = cells.get((task, m, T))
                L.append(f"| {task} | {m} | {T} | " + " | ".join(cells_lr) + f" | {ch['lr']:g} |")
    L.append("")

    # Time.
    L.append("## Training time\n")
    L.append("Seconds per run (wall / process CPU, compilation included), mean over tasks and learning rates; "
             "the total is every run recorded, sweep included.\n")
    L.append("| model | " + " | ".join(f"T={T}" for T in lengths) + " | total wall (s) | total CPU (s) |")
    L.append("|---|" + "---|" * (len(lengths) + 2))
    for m in models:
        row = []
        for T in lengths:
            rs = [r for r in latest if r["model"] == m and r["length"] == T and "train_wall_s" in r]
            row.append(f"{np.mean([r['train_wall_s'] for r in rs]):.1f} / {np.mean([r['train_cpu_s'] for r in rs]):.1f}"
                       if rs else "—")
        tw = sum(r.get("train_wall_s", 0.0) + r.get("eval_wall_s", 0.0) for r in latest if r["model"] == m)
        tc = sum(r.get("train_cpu_s", 0.0) for r in latest if r["model"] == m)
        L.append(f"| {m} | " + " | ".join(row) + f" | {tw:.0f} | {tc:.0f} |")
    runs_ok = [r for r in latest if r.get("status") == "ok"]
    total_wall = sum(r.get("train_wall_s", 0.0) + r.get("eval_wall_s", 0.0) for r in latest)
    loads = [r["load"][0] for r in latest if r.get("load")]
    L.append("")
    stamps = sorted(r["timestamp"] for r in latest if r.get("timestamp"))
    if len(stamps) >= 2:
        import datetime as _dt

        span = (_dt.datetime.fromisoformat(stamps[-1]) - _dt.datetime.fromisoformat(stamps[0])).total_seconds()
        L.append(f"Records span {stamps[0]} to {stamps[-1]} ({span / 60:.1f} min between the first and the last "
                 "record, the first run's own time not included).\n")
    L.append(f"{len(runs_ok)} runs finished, {sum(r.get('status') == 'diverged' for r in latest)} diverged, "
             f"{sum(r.get('status') == 'error' for r in latest)} errors, "
             f"{sum(r.get('status') == 'skipped' for r in latest)} skipped, "
             f"{sum(r.get('status') == 'not_run' for r in latest)} not run (budget); "
             f"training + scoring wall time {total_wall / 60:.1f} min. "
             + (f"1-minute load average at record time: median {np.median(loads):.1f}, max {max(loads):.1f} "
                f"(the machine was shared; times are upper bounds)." if loads else ""))
    L.append("")
    names = _plots(out, cells, tasks, models, lengths, records)
    L.append("## Plots\n")
    for n in names:
        L.append(f"![{n}]({n})\n")

    # Findings.
    L.append("## Findings (computed from the table above)\n")
    L.extend(_findings(cells, solved, tasks, models, lengths, steps=p.get("steps", "?"), n_lrs=len(p.get("lrs", []))))
    subs = sorted(d for d in out.iterdir() if d.is_dir() and (d / "results.jsonl").is_file())
    if subs:
        L.append("\n## Other sweeps in this folder\n")
        for d in subs:
            sp = json.loads((d / "plan.json").read_text()).get("preset", {}) if (d / "plan.json").is_file() else {}
            defaults = {f.name: f.default for f in dataclasses.fields(Preset)
                        if f.default is not dataclasses.MISSING}
            changed = {k: v for k, v in sp.items() if p and p.get(k, defaults.get(k)) != v}
            L.append(f"- [{d.name}/REPORT.md]({d.name}/REPORT.md): settings that differ from this sweep: "
                     + (", ".join(f"{k}={v}" for k, v in changed.items()) or "none") + ".")
    errs = [r for r in latest if r.get("status") == "error"]
    if errs:
        L.append("\n## Errors\n")
        for r in errs:
            L.append(f"- {r['task']} {r['model']} T={r['length']} lr={r['lr']:g}: {r.get('message', '')[:300]}")
    path = out / "REPORT.md"
    path.write_text("\n".join(L) + "\n")
    return path


def _findings(cells: dict, solved: dict, tasks: list[str], models: list[str], lengths: list[int],
              steps: Any = "?", n_lrs: int = 0) -> list[str]:
    F: list[str] = []
    rnns = [m for m in models if not m.startswith("transformer")]
    trans = [m for m in models if m.startswith("transformer")]
    for task in tasks:
        parts = []
        for m in models:
            s = solved.get((task, m))
            parts.append(f"{m} {s if s is not None else 'none'}")
        F.append(f"- **{task}** — longest length solved: " + ", ".join(parts) + ".")
    # The claim "LSTMs can only model limited sequence lengths".
    if "lstm" in models:
        lstm_best = {t: solved.get((t, "lstm")) for t in tasks}
        long_ok = {t: s for t, s in lstm_best.items() if s is not None}
        if long_ok:
            top_task = max(long_ok, key=long_ok.get)
            F.append(f"- LSTM solved {len(long_ok)} of {len(tasks)} tasks at some length; its longest solved length "
                     f"is {long_ok[top_task]} ({top_task}).")
        else:
            F.append("- LSTM solved none of the tasks at any length in this budget.")
        for t in tasks:
            s_l = lstm_best.get(t)
            runs = [(T, cells.get((t, "lstm", T))) for T in lengths]
            accs = [(T, r["token_accuracy"]) for T, r in runs if r is not None and r.get("status") == "ok"]
            if s_l is not None and s_l == max(T for T, _ in accs):
                longest_tried = max(T for T, _ in accs)
                if longest_tried >= 1024:
                    F.append(f"  - {t}: LSTM solves every length it was trained at, up to {longest_tried}: no length "
                             "limit shows within the lengths run — this contradicts the claim that LSTMs can only "
                             "model limited sequence lengths (for this task, at this budget).")
                else:
                    F.append(f"  - {t}: LSTM solves every length it was trained at, but only lengths up to "
                             f"{longest_tried} ran: no evidence either way about longer sequences.")
            elif accs:
                first_fail = next((T for T, a in accs if a < SOLVED), None)
                F.append(f"  - {t}: LSTM accuracy by length " + ", ".join(f"{T}: {100 * a:.1f}%" for T, a in accs)
                         + (f"; first below {100 * SOLVED:.0f}% at {first_fail}." if first_fail else "."))
                if first_fail == min(T for T, _ in accs):
                    others = [m for m in models if m != "lstm" and solved.get((t, m)) is not None
                              and solved[(t, m)] >= first_fail]
                    trend = ""
                    if len(accs) >= 2:
                        trend = (f"; its accuracy {'falls' if accs[-1][1] < accs[0][1] else 'does not fall'} with "
                                 f"length ({100 * accs[0][1]:.1f}% at {accs[0][0]} → {100 * accs[-1][1]:.1f}% at "
                                 f"{accs[-1][0]})")
                    chance = next((r.get("chance") for _, r in runs if r is not None and r.get("chance")), None)
                    at_chance = chance is not None and accs[0][1] < chance + 0.1 * (1 - chance)
                    F.append("    Not solved even at the shortest length"
                             + (" (no better than chance: the task was not learned at all in this budget)"
                                if at_chance else "") + trend
                             + (f"; solved at that length by: {', '.join(others)}." if others else
                                "; no other model solved it there either." if len(models) > 1 else
                                " (no other model in this sweep)."))
        if trans:
            better = [t for t in tasks if (solved.get((t, "lstm")) or 0) > max((solved.get((t, m)) or 0) for m in trans)]
            worse = [t for t in tasks if (solved.get((t, "lstm")) or 0) < max((solved.get((t, m)) or 0) for m in trans)]
            F.append(f"- LSTM vs the best Transformer (longest solved length): LSTM longer on {better or 'no task'}, "
                     f"Transformer longer on {worse or 'no task'}, equal elsewhere.")
    for m in models:
        n = sum(solved.get((t, m)) is not None for t in tasks)
        drops = []
        if len(lengths) >= 2:
            a, b = lengths[0], lengths[1]
            for t in tasks:
                ra, rb = cells.get((t, m, a)), cells.get((t, m, b))
                if ra and rb and ra.get("status") == "ok" and rb.get("status") == "ok":
                    drops.append(100 * (rb["token_accuracy"] - ra["token_accuracy"]))
        F.append(f"- {m}: solved {n}/{len(tasks)} tasks at ≥ 1 length"
                 + (f"; accuracy change from T={lengths[0]} to T={lengths[1]}, mean over the {len(drops)} tasks run "
                    f"at both: {np.mean(drops):+.1f} points." if drops else "."))
    long_runs = [k for k, r in cells.items() if k[2] >= 1024 and r.get("status") == "ok"]
    if any(T >= 1024 for T in lengths):
        F.append(f"- Runs finished at length ≥ 1024: {len(long_runs)}"
                 + (" — this sweep gives no evidence about any model at 1024 and beyond." if not long_runs else
                    " (" + ", ".join(f"{t}/{m}/{T}" for t, m, T in sorted(long_runs)) + ")."))
    F.append(f"- Caveat: one seed, a fixed step budget of {steps} steps per run, and "
             + (f"a {n_lrs}-value learning-rate sweep" if n_lrs > 1 else "a single learning rate")
             + " (see the protocol); a failure here means *not learned in this budget*, not *cannot be "
             "represented*. Longer lengths were skipped after a no-better-than-chance result at a shorter one.")
    return F


# ------------------------------------------------------------------------------------------------ CLI
def preset_from_args(args: argparse.Namespace) -> Preset:
    if args.preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {args.preset!r}")
    p = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    if args.tasks:
        changes["tasks"] = tuple(args.tasks)
    if args.models:
        changes["models"] = tuple(args.models)
    if args.lengths:
        changes["lengths"] = tuple(args.lengths)
    if args.lrs:
        changes["lrs"] = tuple(args.lrs)
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.budget_s is not None:
        changes["budget_s"] = args.budget_s
    if args.lstm_forget_bias is not None:
        changes["lstm_forget_bias"] = args.lstm_forget_bias
    p = dataclasses.replace(p, **changes)
    _validate(p)
    return p


def _cmd(args: argparse.Namespace) -> int:
    if args.report_only:
        path = write_report(args.out)
        print(f"wrote {path}")
        return 0
    preset = preset_from_args(args)
    t0 = time.perf_counter()
    written = run_longrange(preset, args.out, workdir=args.workdir, progress=not args.no_progress,
                            engine_progress=args.run_progress, keep_checkpoints=args.keep_checkpoints,
                            preset_name=args.preset)
    print(f"jaxseq longrange: {len(written)} new records in {time.perf_counter() - t0:.0f} s; "
          f"report {Path(args.out) / 'REPORT.md'}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq longrange`."""
    p = subparsers.add_parser("longrange", help="LSTM/GRU/minGRU/minLSTM/Transformer on long-range synthetic tasks",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    p.add_argument("--out", default="profiles/longrange", help="output folder (results.jsonl, REPORT.md, PNGs)")
    p.add_argument("--workdir", default=_DEFAULT_WORKDIR, help="root of the runs' engine workdirs")
    p.add_argument("--tasks", nargs="+", help=f"tasks (replaces the preset's): {', '.join(_ALL_TASKS)}")
    p.add_argument("--models", nargs="+", help=f"models (replaces the preset's): {', '.join(_ALL_MODELS)}")
    p.add_argument("--lengths", nargs="+", type=int, help="sequence lengths (replaces the preset's)")
    p.add_argument("--lrs", nargs="+", type=float, help="learning rates to sweep (replaces the preset's)")
    p.add_argument("--steps", type=int, help="optimiser steps per run")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--budget-s", type=float, help="stop starting runs after this many seconds")
    p.add_argument("--lstm-forget-bias", type=float,
                   help="add this to the LSTM forget-gate bias at initialisation (default 0: PyTorch's init)")
    p.add_argument("--report-only", action="store_true", help="only regenerate REPORT.md and plots from OUT")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the engine checkpoints of finished runs")
    p.add_argument("--run-progress", action="store_true", help="the engine's per-run progress bars too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
