"""The "Generation" section: per-token decode latency and memory per sequence against the context."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from jaxseq.studies.scaling.report.findings import crossing_length
from jaxseq.studies.scaling.report.plots import plot_setup
from jaxseq.studies.scaling.report.records import Study
from jaxseq.studies.scaling.report.tables import fmt_bytes, fmt_cell, pivot, markdown_table


# (recurrent model, attention model) pairs of the crossover sentences, in report order.
GENERATION_PAIRS = (("lstm", "transformer"), ("mingru", "transformer"))


def _gen_config(point: dict[str, Any]) -> tuple:
    return (point.get("batch"), point.get("width"), point.get("dtype", "float32"),
            point.get("layers", 2), point.get("new_tokens", 16))


def _gen_config_label(cfg: tuple) -> str:
    b, w, dt, layers, k = cfg
    return f"B={b} W={w} {dt}, {layers} layers, {k} tokens per call"


def _ms_per_token(r: dict[str, Any]) -> float | None:
    res = r["result"]
    if res.get("ms_per_token") is not None:
        return res["ms_per_token"]
    k = r["point"].get("new_tokens", 16)
    return res["median_s"] * 1e3 / k if res.get("median_s") is not None else None


def generation_series(records: list[dict[str, Any]]) -> dict[tuple, dict[str, list[dict[str, Any]]]]:
    """{(batch, width, dtype, layers, new_tokens): {model: [records by context]}} of ok generation
    records (single device), configs with the most points first."""
    out: dict[tuple, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("status") == "ok" and r.get("result") and r["point"].get("mode") == "generate":
            # The model's own name: layers are part of the config (model_label would add "+L4").
            out[_gen_config(r["point"])][r["point"]["model"]].append(r)
    for models in out.values():
        for m in models:
            models[m].sort(key=lambda r: r["point"]["seq_len"])
    order = sorted(out, key=lambda c: (-sum(len(v) for v in out[c].values()), str(c)))
    return {c: dict(out[c]) for c in order}


def _loglog_interp(xs_ys: list[tuple[float, float]], x: float) -> float | None:
    """y at x, interpolated log-log between the two measured xs around it (None outside them)."""
    pts = sorted((a, b) for a, b in xs_ys if a and b and a > 0 and b > 0)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            if x1 == x0:
                return y0
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    return None


def _memory_at(recs: list[dict[str, Any]], context: float) -> tuple[float | None, float | None]:
    """(analytic state bytes, compiled bytes excluding parameters) per sequence at `context`.

    The analytic state is exact at any context (constant for the recurrences, linear in the context
    for the key/value cache); the compiled bytes are interpolated log-log between measured contexts.
    """
    by_t = {r["point"]["seq_len"]: r["result"] for r in recs}
    state = None
    Ts = sorted(by_t)
    if Ts:
        s0 = [by_t[T].get("state_bytes_per_seq") for T in Ts]
        if all(v is not None for v in s0):
            if len(set(s0)) == 1:
                state = float(s0[0])
            else:  # linear in the context: the key/value cache
                state = s0[-1] / Ts[-1] * context
    comp = [(T, by_t[T].get("compiled_state_bytes_per_seq")) for T in Ts]
    exact = dict(comp).get(int(context)) if float(context).is_integer() else None
    compiled = exact if exact is not None else _loglog_interp(comp, context)
    return state, compiled


def generation_findings(study_or_records: Any) -> list[dict[str, Any]]:
    """Per config and pair (recurrence, Transformer): where the Transformer's per-token decode first
    becomes slower than the recurrence's, and the memory per sequence each needs there.

    Each finding: ``{"config", "rnn", "att", "contexts", "ratios", "kind", "context", "memory"}``
    with ``kind`` "crossover" (``context`` interpolated log-log between the two measured contexts
    around the first crossing), "always_slower" (slower already at the smallest measured context:
    ``context`` is that one) or "never" (not slower up to the largest: ``context`` is that one);
    ``memory`` is ``{model: (state bytes, compiled bytes w/o parameters)}`` at ``context``.
    """
    records = getattr(study_or_records, "generation", study_or_records)
    out = []
    for cfg, models in generation_series(records).items():
        for rnn, att in GENERATION_PAIRS:
            if rnn not in models or att not in models:
                continue
            tr = {r["point"]["seq_len"]: _ms_per_token(r) for r in models[rnn]}
            ta = {r["point"]["seq_len"]: _ms_per_token(r) for r in models[att]}
            common = sorted(T for T in set(tr) & set(ta) if tr[T] and ta[T])
            if not common:
                continue
            ratios = [(T, ta[T] / tr[T]) for T in common]
            if ratios[0][1] > 1.0:
                kind, ctx = "always_slower", float(common[0])
            else:
                ctx = crossing_length(ratios)
                kind = "crossover" if ctx is not None else "never"
                if ctx is None:
                    ctx = float(common[-1])
            memory = {m: _memory_at(models[m], ctx) for m in (rnn, att)}
            out.append({"config": cfg, "rnn": rnn, "att": att, "contexts": common,
                        "ratios": [r for _, r in ratios], "kind": kind, "context": ctx,
                        "memory": memory})
    return out


def _mem_words(memory: tuple[float | None, float | None]) -> str:
    state, compiled = memory
    text = f"{fmt_bytes(state)} of state"
    if compiled is not None:
        text += f" ({fmt_bytes(compiled)} in the compiled call without parameters)"
    return text


def generation_sentence(f: dict[str, Any]) -> str:
    """The finding as a sentence (see :func:`generation_findings`)."""
    rnn, att, ctx = f["rnn"], f["att"], f["context"]
    Ts = f["contexts"]
    ratio_text = ", ".join(f"{r:.2f}x at {T}" for T, r in zip(Ts, f["ratios"]))
    where = f"({_gen_config_label(f['config'])}; {att} / {rnn} time per token: {ratio_text})"
    mem = (f"{att} needs {_mem_words(f['memory'][att])} per sequence and the {rnn} "
           f"{_mem_words(f['memory'][rnn])}")
    if f["kind"] == "crossover":
        lo = max(T for T in Ts if T <= ctx)
        hi = min(T for T in Ts if T >= ctx)
        return (f"the {att}'s per-token decode first becomes slower than the {rnn}'s at a context of "
                f"about {ctx:,.0f} tokens (interpolated log-log between the measured contexts {lo:,} "
                f"and {hi:,}); there the {mem} {where}")
    if f["kind"] == "always_slower":
        return (f"the {att}'s per-token decode is slower than the {rnn}'s at every measured context, "
                f"already at the smallest ({Ts[0]:,}): the crossover lies below it, not within the "
                f"measured contexts; at {Ts[0]:,} the {mem} {where}")
    return (f"the {att}'s per-token decode is not slower than the {rnn}'s within the measured contexts "
            f"(up to {Ts[-1]:,}); at {Ts[-1]:,} the {mem} {where}")


def _plot_generation(ser: dict[tuple, dict[str, list]], out: Path,
                     name: str = "generation_vs_context.png", max_configs: int = 4) -> str | None:
    """Per config: ms per token (left) and state bytes per sequence (right) against context, log-log."""
    cfgs = [c for c in ser if any(len(v) >= 1 for v in ser[c].values())][:max_configs]
    if not cfgs:
        return None
    plt = plot_setup()
    fig, axes = plt.subplots(len(cfgs), 2, figsize=(12, 4.2 * len(cfgs)), squeeze=False)
    for (ax_t, ax_m), cfg in zip(axes, cfgs):
        for model, recs in sorted(ser[cfg].items()):
            Ts = [r["point"]["seq_len"] for r in recs]
            ms = [_ms_per_token(r) for r in recs]
            mem = [r["result"].get("state_bytes_per_seq") for r in recs]
            pts = [(T, v) for T, v in zip(Ts, ms) if v]
            if pts:
                ax_t.plot(*zip(*pts), marker="o", markersize=3, label=model)
            pts = [(T, v) for T, v in zip(Ts, mem) if v]
            if pts:
                ax_m.plot(*zip(*pts), marker="o", markersize=3, label=model)
        for ax, ylabel in ((ax_t, "ms per generated token (median)"),
                           (ax_m, "state bytes per sequence (analytic)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("context length (tokens)")
            ax.set_ylabel(ylabel)
            ax.set_title(_gen_config_label(cfg), fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("generation: per-token decode latency and memory per sequence vs context")
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def generation_lines(study: Study, out: Path) -> list[str]:
    """The "Generation" section (markdown lines, [] without generation points); writes its plot."""
    ser = generation_series(study.generation)
    if not ser:
        return []
    md = ["## Generation", ""]
    md.append("Per-token decode at a given context length (`mode=\"generate\"` points, "
              "`jaxseq.bench.generation`): each call generates k tokens with a `lax.scan` of the "
              "layers' incremental step (LSTM/minGRU `step`, Transformer `decode_step` over a "
              "key/value cache); ms per token is the median call over k. The state at the context "
              "(recurrent state, key/value cache) is random: prefill is not timed. Memory per "
              "sequence: the analytic state a sequence carries between tokens, and XLA's argument + "
              "temporary bytes of the compiled call over the batch without the parameters.")
    md.append("")
    finds = generation_findings(study.generation)
    if finds:
        md += [f"- {generation_sentence(f)}" for f in finds] + [""]
    for cfg, models in ser.items():
        md += [f"**{_gen_config_label(cfg)}**", ""]
        header, rows = pivot(models, _ms_per_token)
        header = [h.replace("T=", "context ") for h in header]
        md += ["ms per token:", ""] + markdown_table(header, rows) + [""]

        def mem_cell(r):
            res = r["result"]
            return (f"{fmt_bytes(res.get('state_bytes_per_seq'))} / "
                    f"{fmt_bytes(res.get('compiled_state_bytes_per_seq'))}")

        header, rows = pivot(models, mem_cell)
        header = [h.replace("T=", "context ") for h in header]
        md += ["memory per sequence (analytic state / compiled call without parameters):", ""]
        md += markdown_table(header, rows) + [""]
        params = {m: recs[-1]["result"].get("params") for m, recs in sorted(models.items())}
        if any(params.values()):
            md.append("Parameters: " + ", ".join(f"{m} {fmt_cell(n)}" for m, n in params.items()
                                                 if n) + " (equal width and depth, not equal "
                      "parameters).")
            md.append("")
    plot = _plot_generation(ser, out)
    if plot:
        md += [f"![Generation]({plot})", ""]
    return md
