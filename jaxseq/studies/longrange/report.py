"""REPORT.md and the PNG plots of a long-range folder, computed from its results.jsonl and plan.json
alone: the protocol, the frontiers, the cells, the inconclusive cells, the findings and the references.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from jaxseq.studies.longrange.presets import TRANSFORMERS, PROTOCOL, SOLVED, Preset, preset_from_plan
from jaxseq.studies.longrange.frontier import Search, latest_by_key, outcome_of, run_key, search
from jaxseq.studies.longrange.tasks import state_floats, task_bits


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


def frontier_text(s: Search) -> str:
    """A search's frontier F as text: bracketed, one-sided or not found."""
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
    why = "; ".join(x for x in (f"{r.model}: {frontier_text(r)}", f"{a_name}: {frontier_text(a)}"))
    return "undetermined", f"undetermined ({why})"


def _write_report_v2(out: Path, chosen: Any, records: list[dict], plan: dict, n_old: int,
                     references: list[str | Path] | None) -> Path:
    p = plan["preset"]
    preset = preset_from_plan(p)
    by_key = latest_by_key(records)
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
            sbits = ("grows with T" if m in TRANSFORMERS else _bits(32 * sf if sf else None))
            tb = _bits(task_bits(t, preset.difficulty_of(t), preset.options_of(t)))
            seeds = "<br>".join(_seed_text(preset, s, T, by_key) for T in s.frontier_lengths()) or "—"
            L.append(f"| {t} | {m} | {size} | {sbits} | {tb} | {s.lr if s.lr is not None else '—'} | "
                     f"{frontier_text(s)} | {seeds} |")
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
        rnns = [m for m in models if m not in TRANSFORMERS]
        trans = [m for m in models if m in TRANSFORMERS]
        any_pair = any_pair or bool(trans and rnns)
        F.append(f"- **{t}**: " + "; ".join(f"{m} {frontier_text(searches[(t, m)])}" for m in models) + ".")
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
        F.append(f"- LSTM on adding: {frontier_text(s)}; Hochreiter & Schmidhuber (1997) solved T = 100, 500, "
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
            ts = [r["train_wall_s"] for r in latest_by_key(records).values()
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
