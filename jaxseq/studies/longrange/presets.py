"""The long-range study's presets (`Preset`, `PRESETS`) and the protocol's constants.

`PROTOCOL` versions the records: a cell's key and record carry it, and the report reads only the current
protocol's. `preset_from_plan` reads a `Preset` back from a folder's plan.json.
"""
from __future__ import annotations

import dataclasses
from typing import Any

SOLVED = 0.99
PROTOCOL = 2  # records of the first protocol (fixed step budget) carry no "protocol" field
#: Where the runs' folders go unless --workdir says otherwise.
DEFAULT_WORKDIR = "runs/longrange"
EVAL_SEED_OFFSET = 1_000_003  # validation set (the engine's eval batches: stop decisions)
TEST_SEED_OFFSET = 2_000_003  # test set (accuracy reported beside)
#: Outcomes that end a cell for good; "budget" and "error" are retried by a rerun.
FINAL = ("solved", "plateau", "cap", "diverged")


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


#: The models and tasks the study knows, and its attention models.
ALL_MODELS = ("lstm", "gru", "mingru", "minlstm", "transformer-sin", "transformer-rope")
ALL_TASKS = ("copy", "selective_copy", "mqar", "adding")
TRANSFORMERS = ("transformer-sin", "transformer-rope")

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
        tasks=ALL_TASKS, models=ALL_MODELS, lengths=(64, 256), lrs=(3e-3, 1e-2),
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
        tasks=("copy", "adding"), models=ALL_MODELS, lengths=(64,), lrs=(3e-3, 1e-2),
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
        tasks=ALL_TASKS, models=ALL_MODELS, lengths=(64, 256, 1024, 4096, 16384), lrs=(3e-3, 1e-2),
        max_steps=20_000, batch_size=32, target_params=50_000, eval_every=200, patience=2000,
        eval_examples=256, ckpt_every=1000, task_batch=(("mqar", 128),), budget_s=7 * 60, lstm_chrono=True,
    ),
}


def preset_from_plan(p: dict[str, Any]) -> Preset:
    """The Preset saved in plan.json (JSON lists back to tuples; unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(Preset)}

    def tup(x: Any) -> Any:
        return tuple(tup(v) for v in x) if isinstance(x, list) else x

    return Preset(**{k: tup(v) for k, v in p.items() if k in names})
