"""The protocol's rules and the length search: cell keys, outcomes, the solved and plateau rules, the
learning-rate choice and `search` (rise, bisection to a factor 2, seeds at the frontier), a pure function
of the finished cells.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Callable

from jaxseq.studies.longrange.presets import PROTOCOL, SOLVED, Preset


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


def latest_by_key(records: list[dict]) -> dict[str, dict]:
    """{run key: the last record with that key} (later records replace earlier ones)."""
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
    by_key = latest_by_key(records)
    return search(preset, task, model, by_key.get)
