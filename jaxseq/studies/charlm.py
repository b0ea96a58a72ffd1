"""`jaxseq charlm`: LSTM vs GRU vs minGRU vs Transformer character LMs on Tiny Shakespeare, at about
the same parameter count, each trained for the same CPU-time budget through the common engine.

    jaxseq charlm [--out DIR] [--budget-s 180] [--models lstm gru mingru transformer]
                  [--target-params 1e6] [--batch-size 32 --seq-len 128 --lr 2e-3] [--quick]

Budget: the training process's CPU time (`time.process_time`, all its threads), because on a shared
machine wall-clock depends on the neighbours; wall-clock is recorded too. Evaluation is not charged to
the budget (its CPU time is measured and subtracted; the one training step in flight when an evaluation
starts is charged to the evaluation), nor is compilation (the clock starts once step 1 is dispatched). The number of steps (which sets the cosine schedule) is estimated
from a short calibration run per model (CPU seconds per step after compilation); the run also stops
when the budget is spent, whichever comes first.

Outputs in OUT (default: this machine's `profiles/<machine_slug>/charlm/`, `.../charlm/quick/` with
`--quick`): `lm_compare.jsonl` (one "eval" record per evaluation: model, step, cpu_s, wall_s,
val_loss in nats/char, val_bpc; one "done" record per model; every record with the machine's
fingerprint and id), `val_loss_vs_cpu.png`, `REPORT.md` (table + settings). Workdirs (checkpoint of the
final state, TensorBoard logs) go under OUT/runs/ (git-ignored). Rerunning skips the models this
machine finished; an unfinished model starts again from scratch. Another machine's records in OUT are
kept but neither resumed from nor reported: the report and plot show this machine's runs, beside the
other machines' `profiles/*/charlm/` (their final losses and steps per model).

`jaxseq lm-compare` is the command's former name, kept as a deprecated alias (same options; it says so
on stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from jaxseq.bench.sweep import read_jsonl, record_machine_id

DEFAULT_MODELS = ("lstm", "gru", "mingru", "transformer")
#: Layers per model kind; the width is then picked to match the target parameter count.
LAYERS = {"lstm": 2, "gru": 2, "mingru": 3, "minlstm": 3, "transformer": 4}
NUM_HEADS = 4
JSONL = "lm_compare.jsonl"
PLOT = "val_loss_vs_cpu.png"
REPORT = "REPORT.md"
NOTES_MARKER = "<!-- notes: kept when the report is rewritten -->"
COMMAND = "charlm"
#: The command's former name: still accepted, with a deprecation line on stderr.
DEPRECATED_ALIAS = "lm-compare"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(COMMAND, help="char-LM comparison at equal parameters and CPU budget",
                              description=__doc__.splitlines()[0])
    _add_options(p)
    p.set_defaults(func=run)
    # A second subparser rather than `aliases=`: an alias cannot say it is deprecated.
    old = subparsers.add_parser(DEPRECATED_ALIAS, help=f"deprecated alias of `{COMMAND}`",
                                description=f"Deprecated: use `jaxseq {COMMAND}` (same options).")
    _add_options(old)
    old.set_defaults(func=_run_deprecated)


def _run_deprecated(args: argparse.Namespace) -> int:
    import sys

    print(f"jaxseq {DEPRECATED_ALIAS}: deprecated, use `jaxseq {COMMAND}` instead", file=sys.stderr, flush=True)
    return run(args)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (JSONL, PNG, REPORT.md; runs/ inside); default: this "
                   "machine's profiles/<machine>/charlm/ (with --quick: profiles/<machine>/charlm/quick/)")
    p.add_argument("--budget-s", type=float, default=None, help="CPU seconds of training per model (default 180)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help=f"model kinds (default: {' '.join(DEFAULT_MODELS)}; also minlstm)")
    p.add_argument("--target-params", type=float, default=1.0e6, help="parameter count to match (default 1e6)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (all models)")
    p.add_argument("--evals", type=int, default=12, help="evaluations per run (about)")
    p.add_argument("--eval-batches", type=int, default=16, help="validation batches per evaluation")
    p.add_argument("--runs-dir", default=None, help="workdirs (default OUT/runs)")
    p.add_argument("--data-path", default=None,
                   help="text file (default: the shipped Tiny Shakespeare, checksum verified; your own file is taken as given)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: tiny models (width 32, 1 layer), batch 8 x 32, budget 2 s per model")


# --------------------------------------------------------------------------------------------------
def count_params(kind: str, d_model: int, layers: int, vocab_size: int) -> int:
    from flax import nnx

    from jaxseq.models.lm import LanguageModel
    from jaxseq.train.state import count_params as count

    model = nnx.eval_shape(lambda: LanguageModel(vocab_size, kind=kind, d_model=d_model, num_layers=layers,
                                                 num_heads=NUM_HEADS, rngs=nnx.Rngs(0)))
    return count(nnx.state(model, nnx.Param))


def pick_width(kind: str, layers: int, vocab_size: int, target: float) -> tuple[int, int]:
    """The width (a multiple of 8) whose parameter count is nearest `target`: (d_model, params)."""
    best = None
    for d in range(8, 2049, 8):
        n = count_params(kind, d, layers, vocab_size)
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (d, n)
        if n > target:
            break
    return best


class _Clock:
    """Training CPU/wall time since start, with evaluation time subtracted."""

    def __init__(self) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        self.eval_cpu = self.eval_wall = 0.0
        self.mark = (self.cpu0, self.wall0)

    def tick(self) -> None:
        self.mark = (time.process_time(), time.perf_counter())

    def charge_eval(self) -> None:
        """Everything since the last tick (the end of the step loop's last check) was evaluation."""
        self.eval_cpu += time.process_time() - self.mark[0]
        self.eval_wall += time.perf_counter() - self.mark[1]

    def train_cpu(self) -> float:
        return time.process_time() - self.cpu0 - self.eval_cpu

    def train_wall(self) -> float:
        return time.perf_counter() - self.wall0 - self.eval_wall


def _append(path: Path, record: dict[str, Any]) -> None:
    from jaxseq.studies.base import append_record

    append_record(path, record)


def _calibrate(base: dict[str, Any], workdir: Path, data: Any) -> float:
    """CPU seconds per training step after compilation (steps 4..8 of a short throw-away run)."""
    from jaxseq.train.config import TrainConfig
    from jaxseq.train.loop import train

    shutil.rmtree(workdir, ignore_errors=True)
    marks: dict[int, float] = {}

    def mark(k: int) -> bool:
        marks[k] = time.process_time()
        return False

    cfg = TrainConfig(**{**base, "workdir": str(workdir), "steps": 9, "eval_every": 0, "ckpt_every": 0,
                         "progress": False})
    train(cfg, data=data, should_stop=mark)
    shutil.rmtree(workdir, ignore_errors=True)
    return (marks[8] - marks[4]) / 4


def run_one(kind: str, *, args: argparse.Namespace, data: Any, out: Path, runs: Path, budget: float) -> dict:
    from jaxseq.train import metrics as metrics_lib
    from jaxseq.train.loop import train
    from jaxseq.train.config import TrainConfig

    if args.quick:
        layers, d_model = 1, 32
        params = count_params(kind, d_model, layers, data.vocab_size)
    else:
        layers = LAYERS[kind]
        d_model, params = pick_width(kind, layers, data.vocab_size, args.target_params)
    base = dict(task="charlm", model=kind, d_model=d_model, layers=layers, num_heads=NUM_HEADS,
                batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, seed=args.seed,
                eval_batches=args.eval_batches, log_every=10, keep_checkpoints=1, progress=False,
                extra={"study": "charlm", "budget_cpu_s": budget})
    workdir = runs / kind
    shutil.rmtree(workdir, ignore_errors=True)  # an unfinished earlier attempt starts again
    if args.quick:
        sec_per_step, steps = None, 200
        base["warmup_steps"] = 2
    else:
        sec_per_step = _calibrate(base, runs / f"{kind}-calibration", data)
        steps = max(10, int(budget / sec_per_step))
    eval_every = max(1, steps // max(1, args.evals))
    cfg = TrainConfig(**{**base, "workdir": str(workdir), "steps": steps, "eval_every": eval_every,
                         "ckpt_every": 10**9})  # one checkpoint, of the final state
    print(f"[charlm] {kind}: d_model {d_model} x {layers} layers, {params:,} params, "
          f"~{sec_per_step or float('nan'):.3f} CPU s/step -> {steps} steps planned, eval every {eval_every}",
          flush=True)

    clock = _Clock()

    def should_stop(k: int) -> bool:
        if k == 1:  # step 1 is compiled (jit compiles at dispatch) and in flight: the clock starts now
            clock.__init__()
            return False
        clock.tick()
        return clock.train_cpu() >= budget

    def on_eval(k: int, loss: float) -> None:
        clock.charge_eval()
        _append(out / JSONL, {"type": "eval", "model": kind, "step": k, "cpu_s": round(clock.train_cpu(), 3),
                              "wall_s": round(clock.train_wall(), 3), "val_loss": loss,
                              "val_bpc": metrics_lib.bits_per_char(loss)})
        clock.tick()

    result = train(cfg, data=data, should_stop=should_stop, on_eval=on_eval)
    final_step = max(result.evals)
    done = {"type": "done", "model": kind, "params": params, "d_model": d_model, "layers": layers,
            "steps_planned": steps, "steps": result.step, "stopped_at_budget": result.stopped_early,
            "cpu_s": round(clock.train_cpu(), 3), "wall_s": round(clock.train_wall(), 3),
            "eval_cpu_s": round(clock.eval_cpu, 3), "budget_cpu_s": budget,
            "calibration_cpu_s_per_step": sec_per_step, "final_val_loss": result.evals[final_step],
            "final_val_bpc": metrics_lib.bits_per_char(result.evals[final_step]),
            "final_train_loss": result.losses[max(result.losses)],
            "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
            "eval_batches": args.eval_batches, "seed": args.seed, "loadavg_end": os.getloadavg()[0]}
    _append(out / JSONL, done)
    return done


def write_plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    models = list(dict.fromkeys(r["model"] for r in records if r["type"] == "eval"))
    done = {r["model"]: r for r in records if r["type"] == "done"}
    for m in models:
        ev = sorted((r for r in records if r["type"] == "eval" and r["model"] == m), key=lambda r: r["step"])
        label = f"{m} ({done[m]['params'] / 1e6:.2f}M)" if m in done else m
        for ax, key in zip(axes, ("cpu_s", "wall_s")):
            ax.plot([r[key] for r in ev], [r["val_loss"] for r in ev], marker="o", ms=3, label=label)
    axes[0].set_xlabel("training CPU time of the process (s)")
    axes[1].set_xlabel("training wall-clock time (s, shared machine)")
    for ax in axes:
        ax.set_ylabel("validation loss (nats/char)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Tiny Shakespeare char-LM: validation loss vs training time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(records: list[dict], path: Path, *, budget: float, args: argparse.Namespace,
                 meta: dict[str, Any], machine_note: str = "",
                 references: list[tuple[str, list[dict]]] = ()) -> None:
    """REPORT.md from one machine's records; `references`: (name, records) of other machines."""
    done = [r for r in records if r["type"] == "done"]
    lines = [
        "# Character LMs on Tiny Shakespeare at equal parameters and equal CPU budget",
        "",
        f"Written by `jaxseq charlm` ({'--quick smoke run' if args.quick else 'full run'}); "
        f"raw records: `{JSONL}`; plot: `{PLOT}`.",
        "",
        f"- Data: Tiny Shakespeare (sha256 verified), first 90% train, last 10% validation; validation loss "
        f"over the first {args.eval_batches} batches of {args.batch_size} x {args.seq_len} characters "
        f"(non-overlapping windows).",
        f"- Budget: {budget:g} s of training CPU time per model (`time.process_time`, all threads; "
        "evaluation and compilation excluded). Steps planned from a calibration run; the cosine schedule ends at the "
        "planned step; a run also stops when the budget is spent.",
        f"- Recipe (all models): AdamW (b2 0.99, wd 0.1), peak lr {args.lr:g}, warm-up 5% of steps, cosine to "
        f"10%, global-norm clip 1.0, float32, batch {args.batch_size}, seq_len {args.seq_len}, seed {args.seed}.",
        f"- Machine: {meta['machine']}; load average at start {meta['loadavg_start']:.1f}.",
        "",
        "| model | layers x width | params | steps done (planned) | train CPU s | wall s | "
        "final val loss (nats/char) | bits/char |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        lines.append(
            f"| {r['model']} | {r['layers']} x {r['d_model']} | {r['params']:,} | {r['steps']} "
            f"({r['steps_planned']}) | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['final_val_loss']:.4f} | "
            f"{r['final_val_bpc']:.4f} |"
        )
    if machine_note:
        lines += ["", machine_note]
    for name, recs in references:
        ref_done = {r["model"]: r for r in recs if r.get("type") == "done"}
        mine = {r["model"]: r for r in done}
        # Only runs of the same recipe and budget compare (a --quick run does not).
        same = ("batch_size", "seq_len", "lr", "budget_cpu_s", "layers", "d_model")
        models = [m for m in mine if m in ref_done
                  and all(ref_done[m].get(k) == mine[m].get(k) for k in same)]
        if not models:
            continue
        ref_budget = ref_done[models[0]].get("budget_cpu_s")
        budget_text = f"budget {ref_budget:g} CPU s per model" if ref_budget else "budget not recorded"
        lines += ["", f"Beside the reference `{name}` (another machine's records, {budget_text}): "
                      "steps done and final validation loss.", "",
                  "| model | steps here | steps there | val loss here | val loss there |",
                  "|---|---|---|---|---|"]
        for m in models:
            a, b = mine[m], ref_done[m]
            lines.append(f"| {m} | {a['steps']} | {b['steps']} | {a['final_val_loss']:.4f} | "
                         f"{b['final_val_loss']:.4f} |")
    lines += ["", f"![validation loss vs CPU time]({PLOT})", ""]
    # Hand-written notes below the marker survive a regeneration of the report.
    old = path.read_text() if path.is_file() else ""
    notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else ""
    path.write_text("\n".join(lines) + ("\n" + notes if notes else ""))


def run(args: argparse.Namespace) -> int:
    from jaxseq.models.lm import KINDS

    bad = [m for m in args.models if m not in KINDS]
    if bad:
        raise ValueError(f"--models: unknown {bad}; expected some of {', '.join(KINDS)}")
    budget = args.budget_s if args.budget_s is not None else (2.0 if args.quick else 180.0)
    if budget <= 0:
        raise ValueError(f"--budget-s: expected > 0, got {budget}")
    if args.quick:
        args.batch_size, args.seq_len = min(args.batch_size, 8), min(args.seq_len, 32)
        args.eval_batches, args.evals = min(args.eval_batches, 2), 4
    from jaxseq.studies.base import select_machine, this_machine_id

    out = Path(args.out) if args.out else default_out("charlm", "quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs_dir) if args.runs_dir else out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    if runs.resolve().parent == out.resolve() and not (out / ".gitignore").exists():
        (out / ".gitignore").write_text(f"{runs.name}/\n")

    from jaxseq.data import charlm
    import jax

    data = charlm.load_charlm(args.data_path)
    meta = {"machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), jax {jax.__version__} on "
                       f"{jax.devices()[0].platform}, shared with other jobs at the time",
            "loadavg_start": os.getloadavg()[0]}

    path = out / JSONL
    me = this_machine_id()
    records = read_jsonl(path)
    mine = [r for r in records if record_machine_id(r) == me]
    finished = {r["model"] for r in mine if r["type"] == "done"}
    # Drop this machine's partial records of a model that did not finish: it runs again from scratch.
    # Other machines' records stay as they are.
    kept = [r for r in records
            if record_machine_id(r) != me or r["type"] == "meta" or r["model"] in finished]
    if len(kept) != len(records):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    if not any(r["type"] == "meta" for r in kept if record_machine_id(r) == me):
        _append(path, {"type": "meta", **meta, "budget_cpu_s": budget, "quick": bool(args.quick)})
    for kind in args.models:
        if kind in finished:
            print(f"[charlm] {kind}: done already, skipped", flush=True)
            continue
        r = run_one(kind, args=args, data=data, out=out, runs=runs, budget=budget)
        print(f"[charlm] {kind}: {r['steps']} steps, val {r['final_val_loss']:.4f} nats/char "
              f"({r['final_val_bpc']:.3f} bits/char), {r['cpu_s']:.0f} CPU s, {r['wall_s']:.0f} wall s", flush=True)
    write_folder_report(out, machine=me, args=args)
    records = select_machine(read_jsonl(path), me).records
    if not math.isfinite(sum(r["final_val_loss"] for r in records if r["type"] == "done")):
        print("[charlm] warning: a final validation loss is not finite", flush=True)
    return 0


def write_folder_report(out: str | Path, *, plots: bool = True, machine: str | None = None,
                        args: argparse.Namespace | None = None) -> Path:
    """REPORT.md (and the plot) of a results folder from its records alone: one machine's (`machine`,
    default the newest), the recipe read back from its records (or `args`, the command's own), the
    other machines' folders of this study beside it. Returns the report's path."""
    from jaxseq.studies.base import reference_folders, select_machine

    out = Path(out)
    chosen = select_machine(read_jsonl(out / JSONL), machine)
    records = chosen.records
    done = [r for r in records if r["type"] == "done"]
    meta = next((r for r in records if r["type"] == "meta"), None)
    if not done or meta is None:
        raise ValueError(f"--out {out}: {JSONL} holds no finished model of one machine")
    first = done[0]
    if args is None:
        args = argparse.Namespace(quick=bool(meta.get("quick")), eval_batches=first["eval_batches"],
                                  batch_size=first["batch_size"], seq_len=first["seq_len"], lr=first["lr"],
                                  seed=first.get("seed", 0))
    refs = []
    for ref_dir in reference_folders(out, "charlm"):
        ref = select_machine(read_jsonl(ref_dir / JSONL), exclude=[chosen.machine_id])
        if ref.records:
            refs.append((f"{ref_dir.parent.name}/ ({ref.slug})", ref.records))
    if plots:
        write_plot(records, out / PLOT)
    path = out / REPORT
    write_report(records, path, budget=meta["budget_cpu_s"], args=args, meta=meta,
                 machine_note=chosen.note(), references=refs)
    return path


# The study's presets: what `run_preset` runs (the command takes each setting as an option too).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"quick": False, "budget_s": 180.0},
    "smoke": {"quick": True, "budget_s": 2.0},  # tiny models, seconds
}


def run_preset(preset: str, out: str | Path | None = None) -> Path:
    """`jaxseq charlm` with the preset's settings into `out` (default this machine's charlm folder,
    `.../charlm/quick/` for the smoke preset), resuming the models this machine finished; returns
    REPORT.md's path (the study contract's entry point)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    p = PRESETS[preset]
    parser = argparse.ArgumentParser(prog="jaxseq")
    _add_options(parser)
    argv = ["--budget-s", str(p["budget_s"])] + (["--quick"] if p["quick"] else [])
    args = parser.parse_args(argv + (["--out", str(out)] if out else []))
    run(args)
    folder = Path(out) if out else default_out("charlm", "quick" if p["quick"] else "")
    return folder / "REPORT.md"


def default_out(*parts: str) -> Path:
    """This machine's folder: profiles/<machine>/<parts...>."""
    from jaxseq.studies.base import default_out as _default_out

    return _default_out(*parts)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m jaxseq.studies.charlm ...`: `jaxseq charlm` without importing jaxseq.cli."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.charlm")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq {COMMAND}: error: {e}", file=sys.stderr)
        return 2
