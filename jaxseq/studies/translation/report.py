"""The report: REPORT.md, its findings and the PNG plots, from a study folder's records alone."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxseq.studies.translation.presets import MODELS, RESULTS


def write_folder_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and plots) of a results folder from its records alone (the study contract's name)."""
    return write_report(out, plots=plots)


def write_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and PNG plots) from `out/results.jsonl` alone (one machine's records)."""
    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.studies import base

    out = Path(out)
    chosen = base.select_machine(read_jsonl(out / RESULTS))
    records, note = chosen.records, chosen.note()
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
    finals = {r["model"]: r for r in records if r.get("kind") == "final"}
    curves = {m: sorted((r for r in records if r.get("kind") == "curve" and r.get("model") == m),
                        key=lambda r: r["step"]) for m in MODELS}
    lines = ["# Translation study: GNMT-style LSTM vs Transformer, Multi30k En→De", ""]
    if records:
        lines += [note, ""]
    if plan:
        pr = plan["preset"]
        lines += [f"Preset `{pr['name']}`: joint SentencePiece vocabulary of {plan['vocab_size']} (trained on the "
                  f"training split only), {pr['train_pairs'] or 29000} training pairs, {pr['tokens_per_batch']} "
                  f"token slots per batch in length buckets ({plan['batches_per_epoch']} batches per epoch; "
                  f"{100 * plan['padding_share']['all']:.1f}% of positions are padding), label smoothing "
                  f"{pr['label_smoothing']}; steps {pr['steps']}"
                  + (f"; wall-clock cap {plan['budget_s']} s per model" if plan.get("budget_s") else "") + ".", ""]
    if finals:
        lines += ["| model | parameters | steps | training time | target tokens/s | test BLEU greedy | test BLEU "
                  "beam 5 | chrF beam 5 | decode sent/s (beam 1 / 5) | ms per output token (beam 1 / 5) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for m, r in finals.items():
            b1, b5 = r["beam1"], r["beam5"]
            cut = " (cut by the cap)" if r.get("cut_by_budget") else ""
            lines.append(f"| {m} | {r['parameters']:,} | {r['steps']}{cut} | {r['train_time_s']:.0f} s | "
                         f"{r['train_target_tokens_per_s']:.0f} | {b1['bleu']:.2f} | {b5['bleu']:.2f} | "
                         f"{b5['chrf']:.2f} | {b1['sentences_per_s']:.1f} / {b5['sentences_per_s']:.1f} | "
                         f"{b1['ms_per_output_token']:.2f} / {b5['ms_per_output_token']:.2f} |")
        sig = next(iter(finals.values()))["beam5"]["bleu_signature"]
        lines += ["", f"BLEU on test_2016_flickr ({next(iter(finals.values()))['test_sentences']} sentences), "
                      f"sacrebleu signature `{sig}`. Decoding times include compiling bucket shapes not seen in the "
                      "warm-up batch.", ""]
        lines += ["## Findings", ""] + _findings(finals, curves) + [""]
        for m, r in finals.items():
            lines += [f"### {m}: examples (beam 5)", ""]
            for ex in r.get("examples", []):
                lines += [f"- src: {ex['src']}", f"  - hyp: {ex['hyp']}", f"  - ref: {ex['ref']}"]
            lines.append("")
    else:
        lines += ["No model has finished yet.", ""]
    if plots:
        for name in _plots(out, finals, curves):
            lines += [f"![{name}]({name})", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def _first_time_to(curve: list[dict], bleu: float, field: str = "train_time_s") -> float | None:
    """`field` (training time or step) of the first evaluation at or above `bleu`, None if none."""
    for r in curve:
        if r["val_bleu"] >= bleu:
            return r[field]
    return None


#: Beam-5 translation of the test set on the CPU must take under this (issue 14).
DECODE_GOAL_S = 60.0
#: The default preset (both models: training, evaluations, scoring) must finish within this (issue 14).
STUDY_GOAL_S = 3600.0


def _findings(finals: dict, curves: dict) -> list[str]:
    out = []
    tps = {m: finals[m]["train_target_tokens_per_s"] for m in finals}
    if len(finals) == 2:
        best = max(finals, key=lambda m: finals[m]["beam5"]["bleu"])
        other = next(m for m in finals if m != best)
        out.append(f"- The {best} reaches the higher test BLEU (beam 5): {finals[best]['beam5']['bleu']:.2f} against "
                   f"{finals[other]['beam5']['bleu']:.2f} for the {other}.")
        ratio = finals["transformer"]["parameters"] / finals["lstm"]["parameters"]
        out.append(f"- Parameters: Transformer {finals['transformer']['parameters']:,}, LSTM "
                   f"{finals['lstm']['parameters']:,} ({ratio:.2f}×).")
        faster = max(tps, key=tps.get)
        out.append(f"- Training throughput: the {faster} processes {tps[faster] / min(tps.values()):.2f}× the target "
                   f"tokens per second of the other on this machine.")
    for target in (30.0, 34.0):
        times = {m: _first_time_to(c, target) for m, c in curves.items() if c}
        if any(t is not None for t in times.values()):
            first = min((m for m in times if times[m] is not None), key=lambda m: times[m])
            rest = ", ".join(f"{m} {'never' if t is None else f'{t:.0f} s'}" for m, t in times.items())
            out.append(f"- First to {target:.0f} validation BLEU (greedy) in training wall-clock time: {first} ({rest}).")
            steps = {m: _first_time_to(c, target, "step") for m, c in curves.items() if c}
            if target == 30.0 and len(finals) == 2 and all(v is not None for v in steps.values()):
                other = next(m for m in finals if m != first)
                head = (f"- The {first} gets to 30 first although it trains fewer target tokens per second"
                        if tps[first] < tps[other] else
                        f"- The {first} gets to 30 first and also trains more target tokens per second")
                tail = ("; on this machine its lead comes from learning more per step, not from faster (parallel) "
                        "training" if tps[first] < tps[other] else "")
                out.append(f"{head} ({tps[first]:.0f} vs {tps[other]:.0f}): it needs {steps[first]} steps against "
                           f"{steps[other]} for the {other}{tail}.")
        elif times:
            out.append(f"- No model reached {target:.0f} validation BLEU (greedy) in this run.")
    for m, f in finals.items():
        b5 = f.get("beam5") or {}
        if "decode_s" in b5:
            # The goal is for the whole test set on the CPU; other runs get their time without a verdict.
            on_goal = f.get("platform", "cpu") == "cpu" and f["test_sentences"] == 1000
            verdict = (("under" if b5["decode_s"] < DECODE_GOAL_S else "NOT under") + f" the {DECODE_GOAL_S:.0f} s "
                       "goal; " if on_goal else "")
            out.append(f"- Decoding: the {m} translates the {f['test_sentences']} test sentences with beam 5 in "
                       f"{b5['decode_s']:.1f} s ({verdict}greedy "
                       f"{(f.get('beam1') or {}).get('decode_s', float('nan')):.1f} s)"
                       + (f"; compiled, a second pass: beam 5 {b5['warm']['decode_s']:.2f} s, "
                          f"{b5['warm']['ms_per_output_token']:.3f} ms per output token" if b5.get("warm") else "")
                       + ".")
    steady = {m: f["steady_target_tokens_per_s"] for m, f in finals.items() if f.get("steady_target_tokens_per_s")}
    if steady:
        out.append("- Training throughput without compiling (second half of the steps, pauses over 5x the median "
                   "step left out): " + ", ".join(f"{m} {v:,.0f}" for m, v in steady.items()) + " target tokens/s.")
    walls = {m: f["wall_s"] for m, f in finals.items() if "wall_s" in f}
    if walls:
        resumed = [m for m in walls if finals[m].get("resumed")]
        total = sum(walls.values())
        parts = ", ".join(f"{m} {w / 60:.1f} min" for m, w in walls.items())
        # The goal is the default preset's; other presets get their time without a verdict.
        verdict = (", " + ("within" if total <= STUDY_GOAL_S else "NOT within")
                   + f" the {STUDY_GOAL_S / 60:.0f}-minute goal"
                   if all(finals[m].get("preset") == "default" for m in walls) else "")
        speed = {m: finals[m]["host_matmul_gflops"] for m in walls if "host_matmul_gflops" in finals[m]}
        out.append(f"- Study wall-clock on this machine (training, evaluations and scoring): {parts}; "
                   f"{total / 60:.1f} min in all{verdict}"
                   + (f" (resumed, so only the last part counted: {', '.join(resumed)})" if resumed else "") + "."
                   + (" Host speed anchor measured before each model (float32 2048×2048 matmul): "
                      + ", ".join(f"{m} {g:.0f} GFLOP/s" for m, g in speed.items()) + "." if speed else ""))
    return out or ["- Not enough finished models for a comparison."]


def _plots(out: Path, finals: dict, curves: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if any(curves.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, c in curves.items():
            if c:
                ax.plot([r["train_time_s"] for r in c], [r["val_bleu"] for r in c], marker="o", label=m)
        ax.set_xlabel("training wall-clock time (s)")
        ax.set_ylabel("validation BLEU (greedy)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "bleu_vs_time.png", dpi=110)
        plt.close(fig)
        names.append("bleu_vs_time.png")
    for m, r in finals.items():
        maps = r.get("attention") or []
        if not maps:
            continue
        fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 4.5))
        for ax, hm in zip(np.atleast_1d(axes), maps):
            ax.imshow(np.asarray(hm["weights"]), aspect="auto", cmap="Greys")
            ax.set_xticks(range(len(hm["src"])), hm["src"], rotation=90, fontsize=6)
            ax.set_yticks(range(len(hm["tgt"])), hm["tgt"], fontsize=6)
        fig.suptitle(f"{m}: " + ("attention weights" if m == "lstm" else "last decoder layer, cross-attention head 0"))
        fig.tight_layout()
        fig.savefig(out / f"attention_{m}.png", dpi=110)
        plt.close(fig)
        names.append(f"attention_{m}.png")
    return names
