"""One cell (task, model, length, learning rate, seed) trained through the common engine until solved,
plateaued, capped or cut by the time budget (`train_one`), and its workdir.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxseq.studies.longrange.presets import TEST_SEED_OFFSET, PROTOCOL, Preset
from jaxseq.studies.longrange.frontier import cell_outcome, plateaued, solved_at
from jaxseq.studies.longrange.tasks import TaskData, make_loss_fn, model_kwargs, state_floats, task_bits, width_for


def cell_workdir(root: Path, task: str, model: str, length: int, lr: float, seed: int, preset: Preset) -> Path:
    """The run folder of one cell (task, model, length, lr, seed) under `root`, named by its preset knobs."""
    fb = ("_chrono" if preset.lstm_chrono else f"_fb{preset.lstm_forget_bias:g}") if model == "lstm" else ""
    fb += f"_ps{preset.plateau_start}" if preset.plateau_start else ""
    return root / task / model / (f"T{length}_lr{lr:g}_seed{seed}_cap{preset.max_steps}_b{preset.batch_of(task)}"
                                  f"_e{preset.eval_every}_p{preset.patience}_d{preset.difficulty_of(task)}"
                                  f"_n{preset.target_params}{fb}")


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
    task_obj = data.task(seed + TEST_SEED_OFFSET)
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
