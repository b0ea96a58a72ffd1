"""REPORT.md's text: `build_report`, the bench phases section and what the profiler traces show."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from jaxseq.bench.traces import NAMED_PARTS, find_traces, summarize_trace
from jaxseq.bench.workloads import model_label
from jaxseq.studies.base import folder_name, study_root
from jaxseq.studies.scaling.report.findings import (anchor_rows, crossover_findings, environment_lines, flops_rows,
                                                    min_rnn_findings, scaling_rows, slope_findings, target_lines)
from jaxseq.studies.scaling.report.generation import generation_lines
from jaxseq.studies.scaling.report.plots import plot_scaling, plot_vs_length
from jaxseq.studies.scaling.report.records import (Study, bench_memory, config_label, memory_bytes,
                                                   order_configs, series)
from jaxseq.studies.scaling.report.references import comparison_lines
from jaxseq.studies.scaling.report.tables import first_line, to_mib, pivot, markdown_table


def build_report(study: Study, out: Path, source: str = "", traces_dir: Path | None = None,
                 references: list[tuple[str, Study]] | None = None) -> str:
    """Write the plots into `out` and return REPORT.md's text (traces listed from `traces_dir`).

    `references`: (name, Study) of other machines, put beside this one in a comparison section.
    """
    out.mkdir(parents=True, exist_ok=True)
    ser = series(study.single)
    md: list[str] = [f"# Scaling study report{f' - {source}' if source else ''}", ""]
    md.append("Written by `jaxseq report` from the JSONL records in this folder; every number and "
              "statement below is computed from them (rerun the command after more points finish). "
              "Times are the median of the timed steps after warm-up, every step blocked on; "
              "'ratio' is tokens/s over the anchor's tokens/s (above 1 = faster than the anchor).")
    md.append("")
    n_ok, n_bad = len(study.ok), len(study.failed)
    md.append(f"Sweep points: {len(study.records)} ({n_ok} ok, {n_bad} oom/timeout/error); "
              f"bench ops rows: {len(study.bench)}.")
    md.append("")
    if study.machine is not None:
        md += [study.machine.note(), ""]
    if references is not None:
        md += comparison_lines(study, references) + [""]

    # ---- findings
    md += ["## Findings", ""]
    md += ["### Targets", ""] + [f"- {x}" for x in target_lines(study)] + [""]
    slope_lines, slope_rows = slope_findings(ser)
    if slope_lines:
        md += ["### Step time against sequence length (fitted log-log slope)", ""]
        md.append("A slope of 1 means time grows linearly with T (a recurrence), 2 quadratically "
                  "(attention's T x T scores once they dominate).")
        md.append("")
        md += [f"- {x}" for x in slope_lines] + [""]
    cross = crossover_findings(ser)
    if cross:
        md += ["### Where attention becomes slower than the recurrence", ""]
        md += [f"- {x}" for x in cross] + [""]
    mins = min_rnn_findings(ser)
    if mins:
        md += ["### minGRU / minLSTM against the LSTM", ""] + [f"- {x}" for x in mins] + [""]
    anchors = anchor_rows(ser)
    if anchors:
        md += ["### Ratio to the anchors (tokens/s, above 1 = faster than the anchor)", ""]
        md += markdown_table(["model", "anchor", "settings", "ratio per length", "geometric mean"], anchors)
        md.append("")
    scal = scaling_rows(study)
    if scal:
        md += ["### Device-count scaling (data parallel, weak scaling)", ""]
        eff = defaultdict(list)
        for r in scal:
            eff[(r["model"], r["parallel"], r["T"], r["batch/dev"])].append(r)
        for (m, par, T, b), rs in sorted(eff.items()):
            rs = sorted(rs, key=lambda r: r["devices"])
            parts = ", ".join(f"{r['devices']} dev: {r['speedup']:.2f}x ({r['efficiency']:.0%})"
                              for r in rs)
            md.append(f"- {m} with {par}, T={T}, batch {b} per device: speedup (efficiency) {parts}"
                      f" - baseline: {rs[0]['baseline']}")
        if any(r["backend"] == "cpu" for r in scal):
            c = max((r["cpu_count"] or 0) for r in scal) or "few"
            md.append(f"- these ran on fake CPU devices that share {c} cores: they check that "
                      "pmap and sharded jit work and what they cost, not real multi-device speed")
        md.append("")
    env = environment_lines(study)
    if env:
        md += ["### Environment", ""] + [f"- {x}" for x in env] + [""]
    md += generation_lines(study, out)

    # ---- plots
    plots = []
    ms = lambda r: r["result"]["median_s"] * 1e3  # noqa: E731
    plots.append(("Step time", plot_vs_length(ser, out, "step_time_vs_length.png", ms,
                                               "median step time (ms)", "step time vs length")))
    plots.append(("Throughput", plot_vs_length(
        ser, out, "tokens_per_s_vs_length.png", lambda r: r["result"].get("tokens_per_s"),
        "tokens / s", "throughput vs length")))
    plots.append(("Memory", plot_vs_length(
        ser, out, "memory_vs_length.png", lambda r: to_mib(memory_bytes(r["result"])),
        "MB (XLA temporaries; torch: allocator/RSS peak)", "memory vs length")))
    plots.append(("Compile time", plot_vs_length(
        ser, out, "compile_time_vs_length.png", lambda r: r["result"].get("compile_s"),
        "compile seconds", "compile time vs length (JAX)")))
    has_mfu = any(r["result"].get("mfu") for r in study.single)
    if has_mfu:
        plots.append(("MFU", plot_vs_length(ser, out, "mfu_vs_length.png",
                                             lambda r: r["result"].get("mfu"), "MFU",
                                             "model FLOPs utilisation vs length")))
    else:
        plots.append(("Achieved TFLOP/s", plot_vs_length(
            ser, out, "tflops_vs_length.png", lambda r: r["result"].get("tflops_per_s"),
            "TFLOP/s (analytic FLOPs)", "achieved TFLOP/s vs length")))
    plots.append(("Device scaling", plot_scaling(scal, out)))
    plots = [(t, p) for t, p in plots if p]
    if plots:
        md += ["## Plots", ""]
        if not has_mfu and study.single:
            md.append("MFU needs the device's peak FLOP/s: none is known for this device (CPUs; pass "
                      "`jaxseq scale --peak-tflops X`), so achieved TFLOP/s is plotted instead.")
            md.append("")
        for title, p in plots:
            md += [f"### {title}", "", f"![{title}]({p})", ""]

    # ---- tables
    if ser:
        md += ["## Step time per configuration (median ms)", ""]
        for cfg in order_configs(ser):
            header, rows = pivot(ser[cfg], ms)
            md += [f"**{config_label(cfg)}**", ""] + markdown_table(header, rows) + [""]
        if slope_rows:
            md += ["### Fitted slopes", ""]
            md += markdown_table(["model", "settings", "lengths", "points", "time slope", "last-3 slope",
                          "memory slope"],
                         [[r["model"], r["config"], r["T"], r["n"], r["slope"], r["tail"],
                           r["mem_slope"]] for r in slope_rows])
            md.append("")
    flop_rows = flops_rows(ser)
    if flop_rows:
        md += ["## FLOPs: analytic (MaxText convention) against XLA's cost model", ""]
        md.append("At each model's longest length. XLA counts a `lax.scan` body once, so for the "
                  "scanned recurrences its count is about T times too small; MFU and TFLOP/s use the "
                  "analytic count.")
        md.append("")
        md += markdown_table(["model", "settings", "T", "analytic GFLOP", "XLA GFLOP", "XLA / analytic",
                      "TFLOP/s", "MFU"], flop_rows)
        md.append("")
    if scal:
        md += ["## Data-parallel points", ""]
        md += markdown_table(["model", "parallel", "T", "batch/dev", "devices", "ms", "tokens/s", "speedup",
                      "efficiency"],
                     [[r["model"], r["parallel"], r["T"], r["batch/dev"], r["devices"], r["ms"],
                       r["tokens/s"], r["speedup"], r["efficiency"]] for r in scal])
        md.append("")
    if study.bench:
        md += ["## bench ops (each case's torch anchor timed first, same process)", ""]
        if any(bench_memory(r) for r in study.bench):
            md += ["'large buffers': the kernel's transparent-huge-page mode and glibc's malloc huge-page "
                   "tunable in the measuring process. Without huge pages every step page-faults the "
                   "large buffers it allocates afresh, which slows torch's LSTM more than jax's, so a "
                   "ratio holds only for its setting.", ""]
        rows = []
        for r in study.bench:
            res, p = r.get("result") or {}, r["point"]
            rows.append([r.get("case"), p.get("seq_len"), p.get("batch"), p.get("model"),
                         r.get("status"),
                         res.get("median_s") and res["median_s"] * 1e3,
                         res.get("tokens_per_s"), r.get("ratio_vs_anchor"),
                         to_mib((res.get("memory") or {}).get("temp_bytes")),
                         (res.get("load_before") or [None])[0], bench_memory(r) or "-",
                         (r.get("paired") or {}).get("median")])
        md += markdown_table(["case", "T", "B", "impl", "status", "median ms", "tokens/s", "x anchor",
                      "XLA temp MB", "load 1m", "large buffers", "x anchor paired"], rows)
        md.append("")
    md += phases_section(study.phases)
    if study.failed:
        md += ["## Points that did not finish", ""]
        md += markdown_table(["status", "model", "T", "B", "W", "dtype", "mode", "devices", "message"],
                     [[r.get("status"), model_label(r["point"]), r["point"].get("seq_len"),
                       r["point"].get("batch"), r["point"].get("width"), r["point"].get("dtype"),
                       r["point"].get("mode"), r["point"].get("devices", ""),
                       first_line(r.get("message"))] for r in study.failed])
        md.append("")
    traces_dir = Path(traces_dir) if traces_dir else out / "traces"
    traces = sorted(traces_dir.glob("*")) if traces_dir.is_dir() else []
    if traces:
        # Named from the repository root by the results rule, so the report is the same on every checkout.
        shown = (f"profiles/{folder_name(traces_dir.parent, 'scaling')}/traces"
                 if study_root(traces_dir.parent, "scaling") else str(traces_dir))
        md += ["## Profiler traces", ""]
        md.append(f"One `jax.profiler` trace of one warmed-up step each, in `{shown}`. Open "
                  f"with `tensorboard --logdir {shown} --host 127.0.0.1` (Profile tab), read with "
                  f"`jaxseq trace summary {shown}`, or load a `*.trace.json.gz` in Perfetto.")
        md.append("")
        for t in traces:
            size = sum(f.stat().st_size for f in t.rglob("*") if f.is_file())
            md.append(f"- `{t.name}`: {size / 2**20:.1f} MB")
        md.append("")
    md += trace_findings(traces_dir)
    return "\n".join(md)


def phases_section(phases: list[dict[str, Any]]) -> list[str]:
    """"bench phases": an LSTM step's forward and backward timed apart against torch's, one row per record
    (`jaxseq bench phases`); [] when there is none."""
    if not phases:
        return []
    rows = []
    for r in phases:
        t, j, x = r.get("torch") or {}, r.get("jaxseq") or {}, r.get("speed_vs_torch") or {}
        ms = lambda side, k: side.get(k) and side[k] * 1e3  # noqa: E731
        layers = f"{r.get('layers', 1)}" + (" bidirectional" if r.get("bidirectional") else "")
        rows.append([layers, r.get("seq_len"), r.get("batch"), r.get("hidden"), r.get("rounds"),
                     ms(t, "forward_median_s"), ms(t, "backward_median_s"), ms(t, "step_median_s"),
                     ms(j, "forward_median_s"), ms(j, "backward_median_s"), ms(j, "step_median_s"),
                     x.get("forward"), x.get("backward"), x.get("step"), bench_memory(r) or "-"])
    md = ["## bench phases (an LSTM step's forward and backward apart, against torch)", "",
          "Medians over rounds; each round times torch's step and then jaxseq's, each after an untimed step "
          "of its own. jaxseq's forward is `jax.vjp` under `jit` (it keeps the residuals), its backward the "
          "whole `jax.grad` step minus that forward. 'x torch': the median per-round ratio torch time / "
          "jaxseq time (above 1: jaxseq faster).", ""]
    md += markdown_table(["layers", "T", "B", "H", "rounds", "torch fwd ms", "torch bwd ms", "torch step ms", "jaxseq fwd ms",
                  "jaxseq bwd ms", "jaxseq step ms", "x torch fwd", "x torch bwd", "x torch step",
                  "large buffers"], rows)
    md.append("")
    return md


def trace_findings(traces_dir: Path) -> list[str]:
    """"What the traces show": per trace under `traces_dir`, the device-op time per named part and the
    three longest device ops (`jaxseq.bench.traces`); [] when there is no trace."""
    found = find_traces(traces_dir) if Path(traces_dir).is_dir() else []
    if not found:
        return []
    folders = [name.split("/")[0] for name, _ in found]
    rows, named = [], False
    for (name, path), folder in zip(found, folders):
        label = folder if folders.count(folder) == 1 else name
        try:
            s = summarize_trace(path, name=name)
        except Exception as e:  # a report must not fail on one unreadable trace
            rows.append([f"`{label}`", None, f"unreadable ({type(e).__name__})", ""])
            continue
        named = named or s.has_named_parts
        parts = ", ".join(f"{p} {s.share(p):.0%}" for p in s.parts) if s.has_named_parts else "none"
        top = "; ".join(f"`{o.name[:40]}` {o.total_s * 1e3:.2f} ms ×{o.count}" for o in s.ops[:3])
        rows.append([f"`{label}`", s.op_time_s * 1e3, parts, top])
    md = ["## What the traces show", "",
          "Device-op time of each trace (self time, summed over threads/streams) by named part, i.e. the "
          f"`jax.named_scope` the op was built in ({', '.join(NAMED_PARTS)}; the rest is \"other\"), and "
          "its three longest device ops (total time × occurrences). From `jaxseq trace summary`.", ""]
    if not named:
        md += ["No trace here carries a named part: they were recorded before jaxseq named its scopes "
               "(all op time is \"other\"); the top ops still show where the time goes.", ""]
    md += markdown_table(["trace", "op ms", "named parts (share of op time)", "top 3 device ops"], rows)
    md.append("")
    return md
