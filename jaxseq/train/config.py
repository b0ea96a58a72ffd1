"""Training configuration: one flat dataclass whose field names are the CLI flags (dashes -> underscores).

Precedence, lowest first: dataclass defaults < the run's saved `workdir/config.json` (so a rerun resumes
with the same settings) < `--config FILE.json` < flags given on the command line.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

MODEL_KINDS = ("lstm", "gru", "mingru", "minlstm", "transformer")
PARALLEL_MODES = ("jit", "pmap", "sharded", "multiprocess")
TASKS = ("charlm", "custom")  # custom: the caller of train() passes `data` (see jaxseq.train.loop)
DTYPES = ("float32", "bfloat16")
REMAT_POLICIES = ("none", "full", "dots")


@dataclass
class TrainConfig:
    task: str = "charlm"
    model: str = "lstm"
    workdir: str = ""
    # Model size.
    d_model: int = 256
    layers: int = 2
    num_heads: int = 4  # transformer only
    dropout: float = 0.0
    # Data and schedule.
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    grad_accum: int = 1  # micro-batches per step (scan inside the step)
    seed: int = 0
    data_path: str | None = None  # None: the shipped Tiny Shakespeare (checksummed); else the user's text as given
    # Optimiser: AdamW, linear warm-up then cosine decay to lr * end_lr_ratio, global-norm clipping.
    lr: float = 2e-3
    warmup_steps: int | None = None  # None: 5% of steps (at most 500)
    end_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.99
    clip_norm: float | None = 1.0
    # Numerics and memory.
    dtype: str = "float32"  # compute dtype; parameters stay float32
    remat: str = "none"
    # Parallelism.
    parallel: str = "jit"
    coordinator: str | None = None  # "127.0.0.1:PORT" for parallel=multiprocess
    num_processes: int = 1
    process_id: int = 0
    # Evaluation, logging, checkpoints, profiling.
    eval_every: int = 200
    eval_batches: int = 8
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 3
    profile_steps: str | None = None  # "a:b": trace steps a..b-1
    run_name: str | None = None  # TensorBoard run (logs/<run_name>/); None: the workdir's name, then saved
    peak_tflops: float | None = None
    progress: bool = True
    # Free-form notes kept with the run. One key is read by the engine, for tests only:
    # "inject_nan_at_step": k poisons the parameters after update k (exercises the non-finite stop).
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.task in TASKS, f"--task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        need(self.model in MODEL_KINDS, f"--model: expected one of {', '.join(MODEL_KINDS)}, got {self.model!r}")
        need(self.parallel in PARALLEL_MODES,
             f"--parallel: expected one of {', '.join(PARALLEL_MODES)}, got {self.parallel!r}")
        need(self.dtype in DTYPES, f"--dtype: expected one of {', '.join(DTYPES)}, got {self.dtype!r}")
        need(self.remat in REMAT_POLICIES,
             f"--remat: expected one of {', '.join(REMAT_POLICIES)}, got {self.remat!r}")
        need(bool(self.workdir), "--workdir: required")
        need(self.data_path is None or bool(str(self.data_path).strip()),
             "--data-path: expected a text file's path, got an empty string")
        for name in ("d_model", "layers", "steps", "batch_size", "seq_len", "grad_accum", "num_heads"):
            need(getattr(self, name) >= 1, f"--{name.replace('_', '-')}: expected >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "ckpt_every", "log_every", "eval_batches"):
            need(getattr(self, name) >= 0, f"--{name.replace('_', '-')}: expected >= 0, got {getattr(self, name)}")
        need(self.lr > 0, f"--lr: expected > 0, got {self.lr}")
        need(0.0 <= self.dropout < 1.0, f"--dropout: expected a value in [0, 1), got {self.dropout}")
        need(self.batch_size % self.grad_accum == 0,
             f"--batch-size: {self.batch_size} is not divisible by --grad-accum {self.grad_accum}")
        if self.model == "transformer":
            need(self.d_model % self.num_heads == 0,
                 f"--d-model: {self.d_model} is not divisible by --num-heads {self.num_heads}")
        if self.profile_steps is not None:
            parse_profile_steps(self.profile_steps)
        if self.run_name is not None:
            from jaxseq.train.metrics import check_run_name

            check_run_name(self.run_name)
        if self.parallel == "multiprocess":
            need(self.coordinator is not None and self.num_processes >= 1,
                 "--parallel multiprocess: needs --coordinator HOST:PORT and --num-processes")
            need(0 <= self.process_id < self.num_processes,
                 f"--process-id: expected 0..{self.num_processes - 1}, got {self.process_id}")
        if self.peak_tflops is not None:
            need(self.peak_tflops > 0, f"--peak-tflops: expected > 0, got {self.peak_tflops}")
        return self

    @property
    def warmup(self) -> int:
        if self.warmup_steps is not None:
            return max(0, min(self.warmup_steps, self.steps))
        return min(500, max(1, self.steps // 20))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


# Keys that describe one process, not the run: never taken from a saved workdir config.
_PER_PROCESS_KEYS = ("coordinator", "process_id", "num_processes", "progress")


def _check_keys(data: Mapping[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; known keys: {sorted(known)}")


def load_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object whose keys mirror the train flags")
    # Allow the flag spelling ("seq-len") as well as the field spelling ("seq_len").
    data = {k.replace("-", "_"): v for k, v in data.items()}
    _check_keys(data, str(path))
    return data


def resolve(
    *, overrides: Mapping[str, Any], config_file: str | Path | None = None, workdir: str | Path | None = None
) -> TrainConfig:
    """Merge defaults < workdir/config.json < config_file < overrides (None values are 'not given')."""
    merged: dict[str, Any] = {}
    wd = overrides.get("workdir") or workdir
    if wd is None and config_file is not None:
        wd = load_json(config_file).get("workdir")
    if wd and (Path(wd) / "config.json").is_file():
        saved = load_json(Path(wd) / "config.json")
        merged.update({k: v for k, v in saved.items() if k not in _PER_PROCESS_KEYS})
    if config_file is not None:
        merged.update(load_json(config_file))
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_keys(given, "flags")
    merged.update(given)
    return TrainConfig(**merged).validate()


def parse_profile_steps(spec: str) -> tuple[int, int]:
    """'a:b' -> (a, b), the half-open range of steps to trace."""
    try:
        a, b = (int(x) for x in spec.split(":"))
    except ValueError:
        raise ValueError(f"--profile-steps: expected 'a:b' with integers a < b, got {spec!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"--profile-steps: expected 0 <= a < b, got {spec!r}")
    return a, b
