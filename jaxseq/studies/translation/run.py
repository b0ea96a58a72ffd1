"""The study runner: each model trained (resumable), its validation BLEU curve recorded, then scored and timed
(`run_model`), both models into one folder (`run_study`, `run_preset`), short runs (`shortened_preset`) and the
training throughput without compiling (`steady_tokens_per_s`)."""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxseq.studies.translation.data import TranslationData, prepare_run, settings_path
from jaxseq.studies.translation.decode import Translator
from jaxseq.studies.translation.model import count_params, label_smoothed_loss, model_fn, train_config
from jaxseq.studies.translation.presets import MODELS, PRESETS, RESULTS, SETTINGS, TOKENIZER, Preset
from jaxseq.studies.translation.report import write_report
from jaxseq.studies.translation.scoring import score


def _heatmaps(model: Any, kind: str, tok: Any, src: list[str], hyps: list[str]) -> list[dict]:
    import jax.numpy as jnp

    from jaxseq.data import multi30k as M

    maps = []
    for s, h in zip(src, hyps):
        s_ids, h_ids = tok.encode([s])[0], tok.encode([h])[0]
        x = jnp.asarray(s_ids[None]), jnp.asarray([len(s_ids)])
        tgt_in = jnp.asarray(np.r_[M.BOS, h_ids][None].astype(np.int32))
        if kind == "lstm":
            _, w = model(*x, tgt_in, return_attention=True)
        else:
            w = model.cross_attention_weights(*x, tgt_in, layer=-1, head=0)
        maps.append({"src": tok.pieces(s_ids), "tgt": tok.pieces(h_ids) + ["</s>"],
                     "weights": np.round(np.asarray(w[0, :len(h_ids) + 1, :len(s_ids)]), 4).tolist()})
    return maps


def run_model(kind: str, preset: Preset, out: Path, tok: Any, data: TranslationData, *, budget_s: float | None,
              test: tuple[list, list], progress: bool = True, warm_decode: bool = False) -> dict:
    """Train one model (resumable), recording the validation BLEU curve, then score and time it.

    `warm_decode` decodes the test sentences a second time, every shape compiled, and records that time too
    (`beam1/beam5["warm"]`): a short run's decoding speed without its compile time.
    """
    import jax

    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.bench.timing import matmul_gflops
    from jaxseq.studies import base
    from jaxseq.train.loop import train

    results = out / RESULTS
    workdir = out / "runs" / kind
    # The data settings and the tokenizer are the study's, shared by both runs.
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / TOKENIZER).write_bytes(tok.model_proto)
    settings_path(workdir).write_text((out / SETTINGS).read_text())
    mine = [r for r in base.own_records(read_jsonl(results)) if r.get("model") == kind
            and r.get("preset") == preset.name]
    curve = [r for r in mine if r.get("kind") == "curve"]
    # The host's speed beside its wall-clock numbers: "the same" 2-core machines differ by up to 3x on it.
    host_gflops = matmul_gflops()
    clock = {"train_s": max((r["train_time_s"] for r in curve), default=0.0), "t0": time.perf_counter()}
    wall_t0 = time.perf_counter()
    val_src = data.valid_src[:preset.val_sentences]
    val_ref = data.valid_text[1][:preset.val_sentences]
    # One translator for every evaluation: its jitted search is compiled once per bucket, not per evaluation.
    val_tr = Translator(None, tok, rows=preset.decode_rows, boundaries=preset.boundaries)

    def on_eval_model(step: int, loss: float, model: Any) -> None:
        clock["train_s"] += time.perf_counter() - clock["t0"]
        val_tr.model = model
        hyps_ids, _ = val_tr.translate_ids(val_src, beam=1)
        sc = score([tok.decode(y) for y in hyps_ids], val_ref)
        base.append_record(results, {"kind": "curve", "model": kind, "preset": preset.name, "step": step,
                          "train_time_s": round(clock["train_s"], 2), "val_loss": round(float(loss), 4),
                          "val_bleu": sc["bleu"]})
        if progress:
            print(f"[{kind}] step {step}: val loss {loss:.3f}, val BLEU (greedy, {len(val_ref)} sentences) "
                  f"{sc['bleu']:.2f} after {clock['train_s']:.0f} s of training", file=sys.stderr, flush=True)
        clock["t0"] = time.perf_counter()

    marks: list[tuple[int, float]] = []  # (step, training seconds so far) after each dispatched step

    def should_stop(step: int) -> bool:
        marks.append((step, clock["train_s"] + time.perf_counter() - clock["t0"]))
        return budget_s is not None and marks[-1][1] >= budget_s

    config = train_config(kind, preset, workdir, progress=progress)
    result = train(config, model_fn=model_fn, data=data, loss_fn=label_smoothed_loss(preset.label_smoothing),
                   should_stop=should_stop, on_eval_model=on_eval_model)
    model = result.model
    model.eval()
    # Test set: greedy and beam 5, with decoding speed (a first pass compiles every bucket shape).
    tr = Translator(model, tok, rows=preset.decode_rows, boundaries=preset.boundaries)
    src_ids = tok.encode(test[0])
    rec: dict[str, Any] = {"kind": "final", "model": kind, "preset": preset.name, "steps": int(result.step),
                           "steps_planned": preset.steps[kind], "budget_s": budget_s,
                           "cut_by_budget": bool(result.stopped_early), "train_time_s": round(clock["train_s"], 2),
                           "parameters": count_params(model), "test_sentences": len(test[0]),
                           "size": preset.lstm if kind == "lstm" else preset.transformer}
    tokens = sum(int(b["tgt_lengths"].sum()) for b in data.epoch_batches(seed=config.seed, epoch=0,
                                                                          tokens=config.batch_size * config.seq_len))
    per_step = tokens / max(1, data.batches_per_epoch(config.batch_size * config.seq_len))
    rec["train_target_tokens_per_s"] = round(per_step * result.step / max(clock["train_s"], 1e-9), 1)
    steady = steady_tokens_per_s(marks, per_step)
    rec["steady_target_tokens_per_s"] = None if steady is None else round(steady, 1)
    for beam in (1, 5):
        tr.translate_ids(src_ids[:preset.decode_rows], beam=beam)  # compile the shortest bucket first
        t0 = time.perf_counter()
        ids, shapes = tr.translate_ids(src_ids, beam=beam)
        dt = time.perf_counter() - t0  # includes compiling the buckets not yet seen (counted below)
        hyps = [tok.decode(y) for y in ids]
        out_tokens = sum(len(y) + 1 for y in ids)
        sc = score(hyps, test[1])
        rec[f"beam{beam}"] = {**sc, "decode_s": round(dt, 2), "sentences_per_s": round(len(ids) / dt, 2),
                              "ms_per_output_token": round(1000 * dt / out_tokens, 3), "compiled_shapes": shapes}
        if warm_decode:  # the same sentences again, every shape compiled: decoding alone
            t0 = time.perf_counter()
            warm_ids, _ = tr.translate_ids(src_ids, beam=beam)
            wdt = time.perf_counter() - t0
            rec[f"beam{beam}"]["warm"] = {
                "decode_s": round(wdt, 3), "sentences_per_s": round(len(warm_ids) / wdt, 2),
                "ms_per_output_token": round(1000 * wdt / sum(len(y) + 1 for y in warm_ids), 4)}
        if beam == 5:
            rec["examples"] = [{"src": s, "hyp": h, "ref": r} for s, h, r in zip(test[0][:3], hyps[:3], test[1][:3])]
            rec["attention"] = _heatmaps(model, kind, tok, test[0][:3], hyps[:3])
    # Training, evaluations and scoring in this invocation (a resumed run counts only its last part).
    rec["wall_s"] = round(time.perf_counter() - wall_t0, 1)
    rec["resumed"] = bool(curve)
    rec["platform"] = jax.default_backend()
    rec["host_matmul_gflops"] = round(host_gflops, 1)
    base.append_record(results, rec)
    return rec


def steady_tokens_per_s(marks: Sequence[tuple[int, float]], tokens_per_step: float, *,
                        outlier: float = 5.0) -> float | None:
    """Training throughput without compiling: target tokens/s from (step, training seconds) marks taken after
    each dispatched step, over the second half of the marks (all of them below 6), leaving out the intervals
    over `outlier` times the median (a new bucket shape compiling, an evaluation). None below two marks."""
    marks = list(marks[len(marks) // 2:] if len(marks) >= 6 else marks)
    per_step = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(marks, marks[1:]) if b[0] > a[0]]
    if not per_step:
        return None
    median = sorted(per_step)[len(per_step) // 2]
    kept = [d for d in per_step if d <= outlier * median]
    return tokens_per_step * len(kept) / max(sum(kept), 1e-12)


def shortened_preset(p: Preset, *, max_steps: int | None = None, decode_sentences: int | None = None) -> Preset:
    """`p` for a short run (`translate study --max-steps/--decode-sentences`, scripts/gpu_verdict.sh): at most
    `max_steps` training steps per model, the first `decode_sentences` test sentences and at most that many
    validation sentences; named `<name>-steps<N>-decode<M>` (the parts given), so its records, its default
    folder and its "finished" models stay apart from the full preset's."""
    name, changes = p.name, {}
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {max_steps!r}")
        name += f"-steps{max_steps}"
        changes["steps"] = {k: min(v, max_steps) for k, v in p.steps.items()}
    if decode_sentences is not None:
        if decode_sentences < 1:
            raise ValueError(f"--decode-sentences must be >= 1, got {decode_sentences!r}")
        name += f"-decode{decode_sentences}"
        changes["test_sentences"] = min(p.test_sentences or decode_sentences, decode_sentences)
        changes["val_sentences"] = min(p.val_sentences, decode_sentences)
    return dataclasses.replace(p, name=name, **changes)


def run_study(preset: str | Preset, out: str | Path | None = None, *, models: Sequence[str] = MODELS,
              budget_s: float | None = None, force: bool = False, progress: bool = True,
              max_steps: int | None = None, decode_sentences: int | None = None) -> Path:
    """Train and score both models into `out` (resumable); returns the report's path.

    `max_steps` / `decode_sentences` make a short run of the preset (`shortened_preset`: its own name, so
    its records never pass for the full preset's), which also times a second, compiled decoding pass.
    """
    from jaxseq.data import multi30k as M
    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.studies import base

    p = PRESETS[preset] if isinstance(preset, str) else preset
    if isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"--models: expected a subset of {', '.join(MODELS)}, got {m!r}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"--budget-s must be > 0 seconds, got {budget_s!r}")
    short = max_steps is not None or decode_sentences is not None
    if short:
        p = shortened_preset(p, max_steps=max_steps, decode_sentences=decode_sentences)
    out = base.resolve_out(out, "translation", *(() if p.name == "default" else (p.name,)))
    out.mkdir(parents=True, exist_ok=True)
    tok, data = prepare_run(out, vocab_size=p.vocab_size, train_pairs=p.train_pairs, boundaries=p.boundaries)
    test = M.load_split("test_2016_flickr")
    if p.test_sentences is not None:
        test = (test[0][:p.test_sentences], test[1][:p.test_sentences])
    padding = M.padding_share(data.epoch_batches(seed=0, epoch=0, tokens=p.tokens_per_batch))
    plan = {"preset": dataclasses.asdict(p), "budget_s": budget_s, "tokenizer_sha256": tok.sha256,
            "vocab_size": tok.vocab_size, "padding_share": padding,
            "batches_per_epoch": data.batches_per_epoch(p.tokens_per_batch)}
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    done = {r["model"] for r in base.own_records(read_jsonl(out / RESULTS))
            if r.get("kind") == "final" and r.get("preset") == p.name}
    for kind in models:
        if kind in done and not force:
            print(f"{kind}: already finished in {out / RESULTS}; skipped (--force reruns the scoring)",
                  file=sys.stderr)
            continue
        run_model(kind, p, out, tok, data, budget_s=budget_s, test=test, progress=progress, warm_decode=short)
    return write_report(out)


def run_preset(preset: str, out: str | Path | None = None) -> Path:
    """`jaxseq translate study --preset PRESET`: both systems trained and scored into `out` (resumable);
    returns REPORT.md's path (the study contract's entry point)."""
    return run_study(preset, out, progress=False)
