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

The package, one job per module, each importing only modules listed before it: ``presets`` (Preset,
PRESETS, the protocol's constants), ``tasks`` (TaskData, losses, widths, state and task bits, preset
validation), ``frontier`` (cell keys, outcomes, the solved / plateau rules, Search, search, frontier_of),
``cell`` (train_one, workdirs), ``report`` (write_report, findings, plots), ``run`` (run_longrange,
plan) and ``cli`` (add_parser, main, preset_from_args; ``__main__``: ``python -m jaxseq.studies.longrange``).
A test that fakes a name patches the module that looks it up: ``longrange.run.train_one``,
``longrange.report._plots``.
"""
from __future__ import annotations

# The names below are this package's API, the single module's names kept (ALL_MODELS, cell_workdir, ...:
# public since issue 34, once private names that other code read through this package).
from jaxseq.studies.longrange.presets import (ALL_MODELS, ALL_TASKS, DEFAULT_WORKDIR, FINAL,  # noqa: F401
                                              PRESETS, PROTOCOL, SOLVED, TRANSFORMERS, Preset,
                                              preset_from_plan)
from jaxseq.studies.longrange.tasks import (TaskData, make_loss_fn, model_kwargs, regression_loss,
                                            state_floats, task_bits, width_for)
from jaxseq.studies.longrange.frontier import (Search, cell_outcome, frontier_of, outcome_of, plateaued,
                                              run_key, search, solved_at)
from jaxseq.studies.longrange.cell import cell_workdir, train_one  # noqa: F401
from jaxseq.studies.longrange.report import frontier_text, write_folder_report, write_report  # noqa: F401
from jaxseq.studies.longrange.run import default_out, plan_of, run_longrange, run_preset
from jaxseq.studies.longrange.cli import add_parser, main, preset_from_args

__all__ = ["PRESETS", "Preset", "TaskData", "Search", "run_longrange", "write_report", "default_out", "cell_outcome",
           "add_parser", "search", "plateaued", "solved_at", "frontier_of", "state_floats", "task_bits",
           # beside the historical list: the single module's other public names that other code uses
           "FINAL", "PROTOCOL", "SOLVED", "make_loss_fn", "model_kwargs", "regression_loss", "width_for",
           "outcome_of", "run_key", "train_one", "write_folder_report", "plan_of", "main", "preset_from_args",
           "run_preset"]
