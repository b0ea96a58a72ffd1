"""`jaxseq report`: REPORT.md and PNG plots from a study folder's JSONL files.

    jaxseq report --in profiles/cpu-2core/scaling [--out DIR]

Reads `IN/results.jsonl` (`jaxseq scale`, see `jaxseq.bench.sweep` for the record format) and, when
present, `IN/bench_ops.jsonl` (`jaxseq bench ops`) and `IN/bench_phases.jsonl` (`jaxseq bench phases`), and writes `OUT/REPORT.md` with PNG plots beside it:
step time and tokens/s against sequence length (log-log) per model, memory and compile time against
length, achieved TFLOP/s or MFU, and data-parallel speedup against device count with the ideal line.

Every statement in REPORT.md is computed from the records: fitted log-log slopes of step time against
length, where attention becomes slower than the LSTM, the minGRU/minLSTM factor over the LSTM, the
"Generation" section (per-token decode latency and memory per sequence against the context length, and
the context where the Transformer's decode becomes slower than the LSTM's and the minGRU's), each
model's ratio to its anchor (torch, flax, cuDNN), the project's targets (met / not met), device-count
scaling efficiency, the environment and machine load, and the points that failed. Sections whose
models are missing from the data are left out, so a partial or interrupted sweep still gets a report.
When a point was recorded more than once (a `--retry-errors` rerun), its last record counts.

One machine per report: when the folder holds records of several machines (see
`jaxseq.studies.base`), the findings use the newest machine's records (or `--machine ID`'s) and say
which were left out. A section puts that machine beside the other machines' scaling folders
(`profiles/*/scaling/`; `--references DIR...` for others): the headline points, one column per machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from jaxseq.bench.sweep import memory_label, read_jsonl
from jaxseq.bench.workloads import model_label

__all__ = ["TARGETS", "GPU_TARGETS", "Target", "loglog_slope", "load_study", "Study", "build_report", "write_report",
           "anchor_table", "target_lines", "headline_rows", "comparison_lines", "load_references",
           "generation_series", "generation_findings", "generation_lines", "phases_section", "add_parser", "main"]

RESULTS = "results.jsonl"
BENCH_OPS = "bench_ops.jsonl"
BENCH_PHASES = "bench_phases.jsonl"
REPORT = "REPORT.md"

# Models a jaxseq model is compared with: (model, anchor).
ANCHOR_PAIRS = (
    ("lstm", "torch-lstm"), ("lstm", "flax-lstm"), ("lstm", "cudnn-lstm"),
    ("lstm-layer", "torch-lstm"), ("lstm-layer", "flax-lstm"),
    ("flax-lstm", "torch-lstm"),
    *((f"attn-{b}", "torch-sdpa") for b in ("naive", "vmapped", "blockwise", "xla", "cudnn")),
)
# Recurrent model vs attention at equal settings: (recurrent, attention-like).
CROSSOVER_PAIRS = (
    *(("lstm", f"attn-{b}") for b in ("naive", "vmapped", "blockwise", "xla", "cudnn")),
    ("lstm-layer", "transformer-block"),
    ("torch-lstm", "torch-sdpa"),
)
PARALLEL_RNNS = ("mingru", "minlstm")


@dataclasses.dataclass(frozen=True)
class Target:
    """A throughput goal: `model` tokens/s >= `goal` x `anchor` tokens/s at one exact point."""

    name: str
    model: str
    anchor: str
    seq_len: int
    batch: int
    width: int
    goal: float
    heads: int | None = None
    dtype: str = "float32"
    mode: str = "train"

    def matches(self, point: dict[str, Any], model: str) -> bool:
        return (model_label(point) == model and point.get("seq_len") == self.seq_len
                and point.get("batch") == self.batch and point.get("width") == self.width
                and point.get("dtype", "float32") == self.dtype
                and point.get("mode", "train") == self.mode and "devices" not in point
                and (self.heads is None or _heads(point) == self.heads))


def _stack_variant(label: str) -> str:
    """How a stacked point runs, from its label: "layers schedule", "wavefront schedule", "pallas step"."""
    last = label.rpartition("+")[2]
    return "pallas step" if last == "pallas" else f"{last} schedule"


# The issues' goals (the same as jaxseq.bench.ops_bench.TARGETS, where they are op benchmarks). Issue 13:
# torch's CPU LSTM runs near this machine's large-matmul rate, so parity is the limit for one layer.
TARGETS = (
    Target("jaxseq LSTM training step vs torch.nn.LSTM (batch 32, hidden 256, T=1024)",
           "lstm", "torch-lstm", 1024, 32, 256, 1.0),
    Target("blockwise attention training step vs torch SDPA (batch 8, d_model 256, 4 heads, T=2048)",
           "attn-blockwise", "torch-sdpa", 2048, 8, 256, 1.0, heads=4),
    Target("jaxseq.nn.LSTM, 4 stacked layers, vs torch.nn.LSTM(num_layers=4) (batch 32, hidden 256, "
           "T=512)", "lstm-layer+L4", "torch-lstm+L4", 512, 32, 256, 1.0),
    Target("jaxseq.nn.LSTM, 2 bidirectional layers, vs its torch twin (batch 32, hidden 256, T=512)",
           "lstm-layer+L2+bi", "torch-lstm+L2+bi", 512, 32, 256, 1.0),
)
# The GPU goals (the `gpu` preset's first grids): the LSTM against torch's cuDNN LSTM at the
# published anchor's point (fp16), attention against cuDNN flash attention's TFLOP/s (equal FLOPs,
# so a tokens/s ratio), and the Transformer block's MFU (GPU_MFU_GOAL).
GPU_TARGETS = (
    *(Target(f"jaxseq {m} training step vs torch.nn.LSTM on cuDNN (batch 16, hidden 768, T=1024, "
             "float16)", m, "torch-lstm", 1024, 16, 768, 1.0, dtype="float16")
      for m in ("lstm", "lstm+unroll8", "lstm+unroll32", "lstm+pallas", "lstm+pallas-bh32", "lstm+pallas-step")),
    *(Target(f"{m} training step vs cuDNN flash attention (batch 16, d_model 1024, 16 heads, "
             f"T={T}, bfloat16)", m, "attn-cudnn", T, 16, 1024, 0.9, dtype="bfloat16")
      for T in (4096, 16384) for m in ("attn-blockwise", "attn-xla")),
    # Issue 13: the 8-layer GNMT-sized stack under each schedule (gpu-lstm-stack preset).
    *(Target(f"jaxseq.nn.LSTM 8-layer stack ({_stack_variant(m)}) vs cuDNN's 8-layer "
             "LSTM (batch 16, hidden 1024, T=1024, float16)", m, "torch-lstm+L8",
             1024, 16, 1024, 1.3, dtype="float16")
      for m in ("lstm-layer+L8+layers", "lstm-layer+L8+wavefront", "lstm-layer+L8+pallas")),
)
GPU_MFU_GOAL = 0.45
MIN_RNN_TARGET_LENGTHS = (4096, 16384)  # minGRU faster than the LSTM by a growing factor


def _heads(point: dict[str, Any]) -> int:
    return int(point.get("heads") or max(1, int(point.get("width", 64)) // 64))




def _backend(study: "Study") -> str:
    """The study's device platform ("cpu", "gpu", ...), from the records' device info."""
    for r in study.records + study.bench:
        b = (r.get("device") or {}).get("backend")
        if b:
            return b
    return "cpu"


# ----------------------------------------------------------------------------------------------
# numbers


def loglog_slope(xs: Iterable[float], ys: Iterable[float]) -> float | None:
    """Least-squares slope of log(y) against log(x) (the exponent k of y ~ x^k); None under 2 points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx


def _slope_words(k: float) -> str:
    if k < 0.8:
        return "sub-linear: fixed per-step costs still dominate"
    if k <= 1.25:
        return "about linear in T"
    if k < 1.75:
        return "between linear and quadratic"
    if k <= 2.3:
        return "about quadratic in T"
    return "worse than quadratic (memory pressure?)"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _mb(b: Any) -> float | None:
    return None if b is None else b / 2**20


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


# ----------------------------------------------------------------------------------------------
# loading


@dataclasses.dataclass
class Study:
    """The records of one study folder, last record per point."""

    records: list[dict[str, Any]]
    bench: list[dict[str, Any]]
    # Which machine the records are from, and the other machines' records left out (None: not known,
    # e.g. a Study built by hand).
    machine: Any = None  # jaxseq.studies.base.MachineRecords
    # `jaxseq bench phases` records of the same machine, last per (shape, large-buffer setting).
    phases: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "ok" and r.get("result")]

    @property
    def single(self) -> list[dict[str, Any]]:
        """Single-device sweep points (generation points are in :attr:`generation`)."""
        return [r for r in self.ok if "devices" not in r["point"]
                and r["point"].get("mode") != "generate"]

    @property
    def generation(self) -> list[dict[str, Any]]:
        """The ``mode="generate"`` points (per-token decode, ``jaxseq.bench.generation``)."""
        return [r for r in self.ok if r["point"].get("mode") == "generate"]

    @property
    def parallel(self) -> list[dict[str, Any]]:
        return [r for r in self.ok if "devices" in r["point"]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]


def _last_per_key(recs: list[dict[str, Any]], key) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for r in recs:
        last[key(r)] = r  # dicts keep first-insertion order; the value is the last record
    return list(last.values())


def _newest_bench_rows(bench: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest bench ops row per point and large-buffer setting (`_bench_memory`).

    A point measured with and without huge pages is two results, since the setting moves the ratio.
    A row that does not record its setting (written before the field existed) is dropped once a
    later row of the same point records one.
    """
    point = lambda r: json.dumps(r["point"], sort_keys=True)  # noqa: E731
    last_recorded = {point(r): i for i, r in enumerate(bench) if _bench_memory(r)}
    kept = [r for i, r in enumerate(bench) if _bench_memory(r) or last_recorded.get(point(r), -1) < i]
    return _last_per_key(kept, lambda r: point(r) + _bench_memory(r))


def load_study(folder: str | Path, machine: str | None = None, exclude: Iterable[str] = ()
               ) -> Study:
    """Read results.jsonl and bench_ops.jsonl of `folder` (either may be missing, not both).

    Only one machine's records are kept: `machine` (an id, id prefix or slug), else the machine of
    the newest record not in `exclude` (`jaxseq.studies.base.select_machine`, over both files).
    """
    from jaxseq.bench.sweep import record_machine_id
    from jaxseq.studies.base import select_machine

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--in {folder}: no such folder")
    res_path, bench_path = folder / RESULTS, folder / BENCH_OPS
    if not res_path.exists() and not bench_path.exists():
        raise ValueError(f"--in {folder}: neither {RESULTS} nor {BENCH_OPS} is there "
                         f"(run `jaxseq scale --out {folder}` or `jaxseq study --out {folder}` first)")
    records = [r for r in read_jsonl(res_path) if "key" in r and isinstance(r.get("point"), dict)]
    bench = [r for r in read_jsonl(bench_path) if isinstance(r.get("point"), dict)]
    chosen = select_machine(records + bench, machine, exclude)
    records = [r for r in records if record_machine_id(r) == chosen.machine_id]
    bench = [r for r in bench if record_machine_id(r) == chosen.machine_id]
    records = _last_per_key(records, lambda r: r["key"])
    bench = _newest_bench_rows(bench)
    if not records and not bench:
        raise ValueError(f"--in {folder}: the JSONL files hold no complete records"
                         + (" of another machine" if chosen.others and exclude else ""))
    phases = [r for r in read_jsonl(folder / BENCH_PHASES)
              if r.get("bench") == "phases" and record_machine_id(r) == chosen.machine_id]
    phases = _last_per_key(phases, lambda r: json.dumps(
        [r.get("batch"), r.get("seq_len"), r.get("hidden"), r.get("layers", 1), bool(r.get("bidirectional")),
         _bench_memory(r)]))
    return Study(records, bench, chosen, phases)


# ----------------------------------------------------------------------------------------------
# series


Config = tuple  # (batch, width, dtype, mode, heads)


def _config(point: dict[str, Any]) -> Config:
    return (point.get("batch"), point.get("width"), point.get("dtype", "float32"),
            point.get("mode", "train"), point.get("heads"))


def _config_label(cfg: Config) -> str:
    b, w, dt, mode, heads = cfg
    return f"B={b} W={w} {dt} {mode}" + (f" heads={heads}" if heads else "")


def _memory_bytes(res: dict[str, Any]) -> float | None:
    """XLA temporaries for JAX; the allocator peak (GPU) or host RSS peak for torch."""
    if res.get("framework") == "jax":
        return (res.get("memory") or {}).get("temp_bytes")
    dev = (res.get("device_memory") or {}).get("peak_bytes_in_use")
    return dev if dev is not None else res.get("peak_rss_bytes")


def series(records: list[dict[str, Any]]) -> dict[Config, dict[str, list[dict[str, Any]]]]:
    """{config: {model: [records sorted by seq_len]}} for single-device ok records."""
    out: dict[Config, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        out[_config(r["point"])][model_label(r["point"])].append(r)
    for models in out.values():
        for m in models:
            models[m].sort(key=lambda r: r["point"]["seq_len"])
    return {c: dict(m) for c, m in out.items()}


def _times(recs: list[dict[str, Any]]) -> dict[int, float]:
    return {r["point"]["seq_len"]: r["result"]["median_s"] for r in recs}


def _order_configs(ser: dict[Config, dict[str, list]]) -> list[Config]:
    # Most points first (the study's main grid), then by batch/width.
    return sorted(ser, key=lambda c: (-sum(len(v) for v in ser[c].values()), str(c)))


# ----------------------------------------------------------------------------------------------
# findings


def slope_findings(ser) -> tuple[list[str], list[dict[str, Any]]]:
    """Lines and rows: fitted exponent of step time in T per model and config (>= 3 lengths)."""
    lines, rows = [], []
    for cfg in _order_configs(ser):
        for model, recs in ser[cfg].items():
            t = _times(recs)
            if len(t) < 3:
                continue
            Ts = sorted(t)
            k = loglog_slope(Ts, [t[x] for x in Ts])
            tail = loglog_slope(Ts[-3:], [t[x] for x in Ts[-3:]]) if len(Ts) > 3 else None
            mem = {r["point"]["seq_len"]: _memory_bytes(r["result"]) for r in recs}
            km = loglog_slope([x for x in Ts if mem.get(x)], [mem[x] for x in Ts if mem.get(x)])
            rows.append({"model": model, "config": _config_label(cfg), "T": f"{Ts[0]}-{Ts[-1]}",
                         "n": len(Ts), "slope": k, "tail": tail, "mem_slope": km})
    for row in rows:
        k = row["slope"]
        text = (f"{row['model']} ({row['config']}, T={row['T']}): step time ~ T^{k:.2f}, "
                f"{_slope_words(k)}")
        if row["tail"] is not None:
            text += f"; over the three largest lengths T^{row['tail']:.2f}"
        lines.append(text)
    return lines, rows


def _crossing(ratios: list[tuple[int, float]]) -> float | None:
    """Interpolated T (log-log) where ratio (attention time / recurrent time) first passes 1."""
    for (t0, r0), (t1, r1) in zip(ratios, ratios[1:]):
        if r0 <= 1.0 < r1:
            f = (0 - math.log(r0)) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(t0) + f * (math.log(t1) - math.log(t0)))
    return None


def _paired_times(ser, pairs):
    """(config, a, b, times of a, times of b, lengths both have) for each pair measured together.

    `ser` as from `series`; times are {seq_len: median seconds}; configs in report order.
    """
    for cfg in _order_configs(ser):
        models = ser[cfg]
        for a, b in pairs:
            if a in models and b in models:
                ta, tb = _times(models[a]), _times(models[b])
                common = sorted(set(ta) & set(tb))
                if common:
                    yield cfg, a, b, ta, tb, common


def crossover_findings(ser) -> list[str]:
    """Where each attention model becomes slower than the recurrent model of the same settings."""
    lines = []
    for cfg, rnn, att, tr, ta, common in _paired_times(ser, CROSSOVER_PAIRS):
        if len(common) < 2:
            continue
        ratios = [(T, ta[T] / tr[T]) for T in common]
        head = f"{att} vs {rnn} ({_config_label(cfg)}): "
        slower = [T for T, r in ratios if r > 1]
        if not slower:
            T, r = ratios[-1]
            text = (head + f"attention is faster at every measured length up to T={T} "
                    f"(time ratio {r:.2f}x there)")
            ks = (loglog_slope(common[-3:], [ta[x] for x in common[-3:]]),
                  loglog_slope(common[-3:], [tr[x] for x in common[-3:]]))
            if ks[0] is not None and ks[1] is not None and ks[0] > ks[1]:
                t_star = T * (1 / r) ** (1 / (ks[0] - ks[1]))
                text += (f"; extrapolating the last slopes (T^{ks[0]:.2f} vs T^{ks[1]:.2f}) "
                         f"puts the crossing near T={t_star:,.0f}")
            lines.append(text)
        elif all(r > 1 for _, r in ratios):
            T, r = ratios[0]
            lines.append(head + f"attention is slower at every measured length, already "
                         f"{r:.2f}x at T={T} and {ratios[-1][1]:.2f}x at T={ratios[-1][0]}")
        else:
            first = slower[0]
            stays = all(r > 1 for T, r in ratios if T >= first)
            t_star = _crossing(ratios)
            r_first = dict(ratios)[first]
            text = (head + f"attention becomes slower than {rnn} at T={first} "
                    f"({r_first:.2f}x its time)")
            if t_star:
                text += f", crossing near T={t_star:,.0f} (log-log interpolation)"
            if stays:
                text += f", and stays slower up to T={ratios[-1][0]} ({ratios[-1][1]:.2f}x)"
            else:
                text += ("; not steadily: " + ", ".join(f"{r:.2f}x at T={T}" for T, r in ratios)
                         + " (noise, or a changing bottleneck)")
            lines.append(text)
    return lines


def min_rnn_findings(ser) -> list[str]:
    """minGRU / minLSTM against the LSTM of the same settings at the largest common lengths."""
    lines = []
    for cfg, _, m, tl, tm, common in _paired_times(ser, [("lstm", p) for p in PARALLEL_RNNS]):
        facs = [(T, tl[T] / tm[T]) for T in common]
        show = facs[-3:]
        parts = ", ".join(f"{f:.2f}x at T={T}" for T, f in show)
        text = f"{m} vs lstm ({_config_label(cfg)}): lstm time / {m} time = {parts}"
        if len(facs) >= 2:
            last = [f for _, f in show]
            if all(b > a for a, b in zip(last, last[1:])):
                text += " - the factor grows with T"
            elif all(b < a for a, b in zip(last, last[1:])):
                text += " - the factor shrinks with T"
            else:
                text += " - no steady trend"
        if show[-1][1] < 1:
            text += f"; {m} is SLOWER than the LSTM at T={show[-1][0]}"
        lines.append(text)
    return lines


def anchor_rows(ser) -> list[list[Any]]:
    """[model, anchor, config, ratio per T..., geometric mean] (tokens/s ratio, >1 = faster)."""
    rows = []
    for cfg, m, a, tm, ta, common in _paired_times(ser, ANCHOR_PAIRS):
        ratios = [ta[T] / tm[T] for T in common]
        per_t = ", ".join(f"T={T}: {r:.2f}x" for T, r in zip(common, ratios))
        gm = math.exp(statistics.fmean(math.log(r) for r in ratios))
        rows.append([m, a, _config_label(cfg), per_t, f"{gm:.2f}x"])
    return rows


def _bench_memory(rec: dict[str, Any]) -> str:
    """The record's large-buffer setting (`jaxseq.bench.sweep.memory_info`), "" where not recorded."""
    label = memory_label(rec.get("memory"))
    return "" if label == "not recorded" else label


def _bench_memories(study: Study) -> list[str]:
    """The large-buffer settings of the bench ops rows, newest last ("" = not recorded)."""
    seen: dict[str, None] = {}
    for rec in study.bench:
        seen.pop(_bench_memory(rec), None)
        seen[_bench_memory(rec)] = None
    return list(seen) or [""]


def _paired(rec: dict | None) -> dict | None:
    """The paired rounds' ratio stored in a bench ops record (`jaxseq bench ops --pairs`), or None.

    The record holds its run's anchor times as well, so it needs no other record."""
    p = (rec or {}).get("paired")
    return p if isinstance(p, dict) and p.get("median") else None


def _bench_tps(study: Study, target: Target, model: str,
               memory: str | None = None) -> tuple[float | None, dict | None]:
    """The newest ok bench ops record of `model` at the target's settings (with `memory`: only
    records measured under that large-buffer setting, see `_bench_memory`)."""
    for rec in reversed(study.bench):
        if memory is not None and _bench_memory(rec) != memory:
            continue
        if rec.get("status") == "ok" and target.matches(rec["point"], model):
            return (rec.get("result") or {}).get("tokens_per_s"), rec
    return None, None


def target_lines(study: Study) -> list[str]:
    """Met / not met for each target, from the sweep and from bench ops where they hold the point."""
    lines = []
    gpu = _backend(study) == "gpu"
    for t in GPU_TARGETS if gpu else TARGETS:
        found = []
        sources = [("scale sweep", study.single, None)] + [
            (f"bench ops ({mem})" if mem else "bench ops", None, mem) for mem in _bench_memories(study)]
        for source, recs, mem in sources:
            if recs is not None:
                m = [r for r in recs if t.matches(r["point"], t.model)]
                a = [r for r in recs if t.matches(r["point"], t.anchor)]
                tm = m[-1]["result"]["tokens_per_s"] if m else None
                ta = a[-1]["result"]["tokens_per_s"] if a else None
                load = (m[-1]["result"].get("load_before") or [None])[0] if m else None
            else:
                tm, rec = _bench_tps(study, t, t.model, mem)
                ta, _ = _bench_tps(study, t, t.anchor, mem)
                load = ((rec or {}).get("result") or {}).get("load_before")
                load = load[0] if load else None
                paired = _paired(rec)
                if tm and ta and paired:  # judged on the rounds that timed both seconds apart
                    verdict = "met" if paired["median"] >= t.goal else "NOT met"
                    found.append(f"{source}: {paired['median']:.2f}x paired, {paired['min']:.2f}-"
                                 f"{paired['max']:.2f} over {paired['rounds']} rounds ({verdict}; load "
                                 f"{_fmt(load)}; {tm / ta:.2f}x from the separate medians)")
                    continue
            if tm and ta:
                r = tm / ta
                verdict = "met" if r >= t.goal else "NOT met"
                found.append(f"{source}: {r:.2f}x ({verdict}; load {_fmt(load)})")
        head = f"**{t.name}**: goal >= {t.goal:.1f}x the anchor's tokens/s - "
        lines.append(head + ("; ".join(found) if found else "not measured in these files"))
    if gpu:
        return lines + [_mfu_line(study)]
    # Blockwise attention memory linear in T (same settings as its target, every length measured).
    t = TARGETS[1]
    bw = sorted((r for r in study.single if r["point"]["model"] == t.model
                 and r["point"]["batch"] == t.batch and r["point"]["width"] == t.width
                 and r["point"].get("mode", "train") == t.mode
                 and r["point"].get("dtype", "float32") == t.dtype),
                key=lambda r: r["point"]["seq_len"])
    mem = [(r["point"]["seq_len"], _memory_bytes(r["result"])) for r in bw]
    mem = [(T, b) for T, b in mem if b]
    head = "**blockwise attention memory linear in T**: "
    if len(mem) >= 2:
        k = loglog_slope([T for T, _ in mem], [b for _, b in mem])
        verdict = "met" if k <= 1.25 else "NOT met"
        lines.append(head + f"XLA temporaries ~ T^{k:.2f} over T={mem[0][0]}-{mem[-1][0]} "
                     f"({', '.join(f'{_mb(b):.0f} MB' for _, b in mem)}) - {verdict}")
    else:
        lines.append(head + f"needs two or more lengths at B={t.batch} W={t.width}: not measured")
    # minGRU faster than the LSTM by a growing factor at the target lengths.
    head = ("**minGRU (associative scan) faster than the LSTM scan by a growing factor "
            f"(T={' and '.join(map(str, MIN_RNN_TARGET_LENGTHS))})**: ")
    done = False
    ser = series(study.single)
    for cfg in _order_configs(ser):
        models = ser[cfg]
        if "lstm" not in models or "mingru" not in models:
            continue
        tl, tg = _times(models["lstm"]), _times(models["mingru"])
        if not all(T in tl and T in tg for T in MIN_RNN_TARGET_LENGTHS):
            continue
        facs = [tl[T] / tg[T] for T in MIN_RNN_TARGET_LENGTHS]
        ok = facs[0] > 1 and all(b > a for a, b in zip(facs, facs[1:]))
        lines.append(head + ", ".join(f"{f:.2f}x at T={T}" for T, f in
                                      zip(MIN_RNN_TARGET_LENGTHS, facs))
                     + f" ({_config_label(cfg)}) - {'met' if ok else 'NOT met'}")
        done = True
    if not done:
        # Say what the data do hold: the failed or missing points at those lengths.
        missing = [f"{r['point']['model']} T={r['point']['seq_len']}: {r['status']}"
                   for r in study.failed if r["point"].get("model") in ("lstm", "mingru")
                   and r["point"].get("seq_len") in MIN_RNN_TARGET_LENGTHS]
        lines.append(head + "not measured" + (f" ({'; '.join(missing)})" if missing else ""))
    return lines


def _mfu_line(study: Study) -> str:
    head = f"**Transformer block training step MFU >= {GPU_MFU_GOAL:.0%}**: "
    blocks = [r for r in study.single if r["point"]["model"] == "transformer-block"
              and r["point"].get("mode", "train") == "train" and r["result"].get("mfu")]
    if not blocks:
        return head + "not measured in these files (no MFU: device peak unknown or no points)"
    best = max(blocks, key=lambda r: r["result"]["mfu"])
    p, res = best["point"], best["result"]
    verdict = "met" if res["mfu"] >= GPU_MFU_GOAL else "NOT met"
    return (head + f"best {res['mfu']:.1%} ({res['tflops_per_s']:.0f} TFLOP/s) at T={p['seq_len']} "
            f"B={p['batch']} W={p['width']} {p.get('dtype')} - {verdict}")


def scaling_rows(study: Study) -> list[dict[str, Any]]:
    """Weak scaling: throughput speedup over one device, and efficiency (speedup / devices).

    The one-device baseline is the data-parallel point at 1 device (same parallel mode, else the
    other), else the plain single-device point of the same model, length, batch and width; failing
    those, the smallest device count measured, assumed to scale ideally (`baseline` says which).
    """
    groups: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in study.parallel:
        p = r["point"]
        key = (p["model"], p.get("parallel", "jit"), p["seq_len"], p["batch"], p["width"],
               p.get("dtype", "float32"))
        groups[key][int(p["devices"])] = r
    singles = {(r["point"]["model"], r["point"]["seq_len"], r["point"]["batch"],
                r["point"]["width"], r["point"].get("dtype", "float32")): r
               for r in study.single if r["point"].get("mode", "train") == "train"}
    rows = []
    for key, by_n in groups.items():
        model, par, T, b, w, dt = key
        other = groups.get((model, "pmap" if par == "jit" else "jit", T, b, w, dt), {})
        if 1 in by_n:
            base, base_n, how = by_n[1], 1, f"{par} on 1 device"
        elif 1 in other:
            base, base_n, how = other[1], 1, f"{'pmap' if par == 'jit' else 'jit'} on 1 device"
        elif (model, T, b, w, dt) in singles:
            base, base_n, how = singles[(model, T, b, w, dt)], 1, "the plain single-device point"
        else:
            base_n = min(by_n)
            base, how = by_n[base_n], f"{base_n} devices, assumed ideal"
        base_tps = base["result"]["tokens_per_s"] / base_n
        for n in sorted(by_n):
            tps = by_n[n]["result"]["tokens_per_s"]
            speedup = tps / base_tps
            rows.append({"model": model, "parallel": par, "T": T, "batch/dev": b,
                         "width": w, "dtype": dt, "devices": n,
                         "ms": by_n[n]["result"]["median_s"] * 1e3, "tokens/s": tps,
                         "speedup": speedup, "efficiency": speedup / n, "baseline": how,
                         "backend": (by_n[n].get("device") or {}).get("backend"),
                         "cpu_count": (by_n[n].get("device") or {}).get("cpu_count")})
    return rows


def flops_rows(ser) -> list[list[Any]]:
    """[model, settings, T, analytic GFLOP, XLA GFLOP, ratio, TFLOP/s, MFU] at each longest length."""
    rows = []
    for cfg in _order_configs(ser):
        for model, recs in sorted(ser[cfg].items()):
            r = recs[-1]["result"]
            fa, fx = r.get("flops_analytic"), r.get("flops_xla")
            if not fa:
                continue
            rows.append([model, _config_label(cfg), recs[-1]["point"]["seq_len"], fa / 1e9,
                         fx / 1e9 if fx else None, (fx / fa) if fx else None,
                         r.get("tflops_per_s"), r.get("mfu")])
    return rows


def anchor_table(study: Study) -> str:
    """Short plain-text table of the single-device points: model, T, ms, tokens/s, ratio to anchor.

    The anchor is the first of the model's anchors (ANCHOR_PAIRS) measured at the same settings.
    """
    from jaxseq.bench.timing import format_table

    ser = series(study.single)
    anchors: dict[str, list[str]] = defaultdict(list)
    for m, a in ANCHOR_PAIRS:
        anchors[m].append(a)
    rows = []
    for cfg in _order_configs(ser):
        models = ser[cfg]
        for model in sorted(models):
            for r in models[model]:
                T = r["point"]["seq_len"]
                anchor, ratio = None, None
                for a in anchors.get(model, []):
                    ta = _times(models.get(a, [])).get(T)
                    if ta:
                        anchor, ratio = a, ta / r["result"]["median_s"]
                        break
                rows.append({"model": model, "settings": _config_label(cfg), "T": T,
                             "ms": r["result"]["median_s"] * 1e3,
                             "ktok_s": r["result"]["tokens_per_s"] / 1e3,
                             "anchor": anchor, "ratio": ratio})
    cols = [("model", "model"), ("settings", "settings"), ("T", "T"), ("ms", "ms"),
            ("ktok_s", "ktok/s"), ("anchor", "anchor"), ("ratio", "x anchor")]
    text = format_table(rows, cols) if rows else "(no finished single-device points)"
    bad = study.failed
    if bad:
        counts = defaultdict(int)
        for r in bad:
            counts[r.get("status")] += 1
        text += "\nnot ok: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return text


def environment_lines(study: Study) -> list[str]:
    recs = study.records + study.bench
    lines = []
    devs = sorted({(str((r.get("device") or {}).get("backend")),
                    str((r.get("device") or {}).get("device_kind")),
                    str((r.get("device") or {}).get("host")),
                    str((r.get("device") or {}).get("cpu_count")))
                   for r in recs if r.get("device") and "devices" not in r.get("point", {})})
    for backend, kind, host, cpus in devs:
        lines.append(f"device: {kind} (backend {backend}) on host {host}, {cpus} CPUs")
    vers = sorted({json.dumps(r.get("versions"), sort_keys=True) for r in recs if r.get("versions")})
    for v in vers:
        lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in json.loads(v).items()))
    stamps = sorted(r["timestamp"] for r in recs if r.get("timestamp"))
    if stamps:
        lines.append(f"records written {stamps[0]} .. {stamps[-1]} (UTC)")
    loads = [(r, ((r.get("result") or {}).get("load_before") or r.get("load") or [None])[0])
             for r in recs]
    loads = [(r, x) for r, x in loads if x is not None]
    if loads:
        xs = [x for _, x in loads]
        cpus = max(((r.get("device") or {}).get("cpu_count") or 0) for r, _ in loads) or None
        text = (f"machine load (1-minute average when each point started): "
                f"median {statistics.median(xs):.2f}, max {max(xs):.2f}")
        if cpus:
            busy = [r for r, x in loads if x > cpus]
            text += f"; {len(busy)} of {len(xs)} measurements started with load above the {cpus} CPUs"
            if busy:
                text += (" - their times can be inflated (another process competed for the cores); "
                         "compare ratios only between points measured close together")
        lines.append(text)
    return lines


# ----------------------------------------------------------------------------------------------
# this machine beside the references


def load_references(folder: str | Path, study: Study, references: list[str | Path] | None = None
                    ) -> list[tuple[str, Study]]:
    """(name, Study) of the reference folders, each one machine other than `study`'s.

    `references` None: the scaling folders of the other machines under the same profiles/
    (`jaxseq.studies.base.reference_folders`). In each folder the newest machine other than the
    report's own is used; a folder holding no other machine is left out.
    """
    from jaxseq.studies.base import folder_name, reference_folders

    if references is None:
        paths = reference_folders(folder, "scaling")
    else:
        paths = [Path(r) for r in references]
    own = study.machine.machine_id if study.machine is not None else None
    refs = []
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"--references {path}: no such folder")
        try:
            ref = load_study(path, exclude=[own] if own else [])
        except ValueError:
            if references is not None and path.resolve() != Path(folder).resolve():
                raise  # a folder the user named holds no results: say so
            continue  # nothing but the report's own machine there
        if ref.machine is not None and ref.machine.machine_id != own:
            refs.append((folder_name(path, "scaling"), ref))
    return refs


def _short_config(cfg: Config) -> str:
    b, w, dt, mode, heads = cfg
    return f"B={b} W={w} {dt}" + ("" if mode == "train" else f" {mode}")


def _target_cell(study: Study, t: Target) -> str:
    """tokens/s ratio of `t.model` over `t.anchor` with both step times, from the sweep or bench ops."""
    m = [r for r in study.single if t.matches(r["point"], t.model)]
    a = [r for r in study.single if t.matches(r["point"], t.anchor)]
    cell = _ratio_text(m[-1] if m else None, a[-1] if a else None)
    if cell:
        return cell
    # From bench ops: one ratio per large-buffer setting measured (huge pages or not), newest last.
    cells = []
    for mem in _bench_memories(study):
        rec = _bench_tps(study, t, t.model, mem)[1]
        text = _ratio_text(rec, _bench_tps(study, t, t.anchor, mem)[1])
        if text and _paired(rec):
            text += f", {_paired(rec)['median']:.2f}x paired"
        if text:
            cells.append(text + (f" (bench ops, {mem})" if mem else " (bench ops)"))
    return "; ".join(cells) or "-"


def _ratio_text(rm: dict | None, ra: dict | None) -> str | None:
    """"0.67x (532 vs 355 ms)": tokens/s of record `rm` over record `ra`, with both step times."""
    if not (rm and ra):
        return None
    res_m, res_a = rm["result"], ra["result"]
    if not (res_m.get("tokens_per_s") and res_a.get("tokens_per_s")):
        return None
    r = res_m["tokens_per_s"] / res_a["tokens_per_s"]
    return f"{r:.2f}x ({res_m['median_s'] * 1e3:.3g} vs {res_a['median_s'] * 1e3:.3g} ms)"


def _min_rnn_cell(study: Study, T: int) -> str:
    """LSTM time / minGRU time at length T, at the settings with the most points holding both."""
    ser = series(study.single)
    for cfg in _order_configs(ser):
        models = ser[cfg]
        if "lstm" in models and "mingru" in models:
            tl, tg = _times(models["lstm"]), _times(models["mingru"])
            if T in tl and T in tg:
                return f"{tl[T] / tg[T]:.2f}x ({_short_config(cfg)})"
    return "-"


def _mfu_cell(study: Study) -> str:
    blocks = [r for r in study.single if r["point"]["model"] == "transformer-block"
              and r["point"].get("mode", "train") == "train" and r["result"].get("mfu")]
    if not blocks:
        return "-"
    best = max(blocks, key=lambda r: r["result"]["mfu"])
    p = best["point"]
    return f"{best['result']['mfu']:.1%} (T={p['seq_len']} W={p['width']} {p.get('dtype')})"


def headline_rows(studies: list[Study]) -> list[list[str]]:
    """[what, cell per study]: the headline points of the scaling study, one column per machine."""
    rows: list[list[str]] = []
    for t in (*TARGETS, GPU_TARGETS[0]):
        label = t.name.replace(" training step", "")
        rows.append([f"{label}: tokens/s ratio (step times)"]
                    + [_target_cell(s, t) for s in studies])
    for T in MIN_RNN_TARGET_LENGTHS:
        rows.append([f"minGRU over the LSTM at T={T}: LSTM time / minGRU time"]
                    + [_min_rnn_cell(s, T) for s in studies])
    rows.append([f"best Transformer block training MFU (goal {GPU_MFU_GOAL:.0%} on GPU)"]
                + [_mfu_cell(s) for s in studies])
    return rows


def comparison_lines(study: Study, references: list[tuple[str, Study]]) -> list[str]:
    """The section that puts this folder's machine beside the reference machines."""
    from jaxseq.studies.base import MachineRecords

    mine = study.machine if study.machine is not None else MachineRecords(None, None, [], {})
    if mine.fingerprint is None or mine.legacy:
        head = f"this folder: `{mine.slug}`" if mine.slug else "this folder"
    else:
        head = f"your machine: `{mine.slug}`"
    md = ["## Your machine beside the references", ""]
    if not references:
        md.append("No reference folders found (the other machines' `profiles/<machine>/scaling/`, or "
                  "`--references DIR...`): this machine's numbers stand alone.")
        md.append("")
    else:
        md.append("The same headline points on each machine. The references are other machines' "
                  "records, read from their own folders (" + ", ".join(
                      f"`{name}/`" for name, _ in references) + "); nothing of theirs enters the "
                  "findings below. A cell is '-' where that machine did not measure the point.")
        md.append("")
    studies = [study] + [ref for _, ref in references]
    header = ["", head] + [f"`{name}` (reference)" for name, _ in references]
    rows = [["machine"] + [s.machine.label if s.machine is not None else "?" for s in studies]]
    rows += headline_rows(studies)
    md += _table(header, rows)
    return md


# ----------------------------------------------------------------------------------------------
# generation (mode="generate" points, jaxseq.bench.generation)

# (recurrent model, attention model) pairs of the crossover sentences, in report order.
GENERATION_PAIRS = (("lstm", "transformer"), ("mingru", "transformer"))


def _bytes(b: Any) -> str:
    if b is None:
        return "-"
    b = float(b)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


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
                ctx = _crossing(ratios)
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
    text = f"{_bytes(state)} of state"
    if compiled is not None:
        text += f" ({_bytes(compiled)} in the compiled call without parameters)"
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
    plt = _plot_setup()
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
        header, rows = _pivot(models, _ms_per_token)
        header = [h.replace("T=", "context ") for h in header]
        md += ["ms per token:", ""] + _table(header, rows) + [""]

        def mem_cell(r):
            res = r["result"]
            return (f"{_bytes(res.get('state_bytes_per_seq'))} / "
                    f"{_bytes(res.get('compiled_state_bytes_per_seq'))}")

        header, rows = _pivot(models, mem_cell)
        header = [h.replace("T=", "context ") for h in header]
        md += ["memory per sequence (analytic state / compiled call without parameters):", ""]
        md += _table(header, rows) + [""]
        params = {m: recs[-1]["result"].get("params") for m, recs in sorted(models.items())}
        if any(params.values()):
            md.append("Parameters: " + ", ".join(f"{m} {_fmt(n)}" for m, n in params.items()
                                                 if n) + " (equal width and depth, not equal "
                      "parameters).")
            md.append("")
    plot = _plot_generation(ser, out)
    if plot:
        md += [f"![Generation]({plot})", ""]
    return md


# ----------------------------------------------------------------------------------------------
# plots


def _plot_setup():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_STYLE = {"torch": ":", "flax": "-.", "cudnn": "--"}


def _line_style(model: str) -> str:
    for prefix, ls in _STYLE.items():
        if model.startswith(prefix):
            return ls
    return "-"


def _plot_vs_length(ser, out: Path, name: str, value, ylabel: str, title: str,
                    max_configs: int = 6, logy: bool = True) -> str | None:
    """One subplot per config (most points first), one line per model; None if nothing to plot."""
    cfgs = []
    for cfg in _order_configs(ser):
        if any(sum(value(r) is not None for r in recs) >= 1 for recs in ser[cfg].values()):
            if any(len(recs) >= 2 for recs in ser[cfg].values()):
                cfgs.append(cfg)
    cfgs = cfgs[:max_configs]
    if not cfgs:
        return None
    plt = _plot_setup()
    cols = min(2, len(cfgs))
    rows = math.ceil(len(cfgs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for ax, cfg in zip(axes.flat, cfgs):
        for model, recs in sorted(ser[cfg].items()):
            pts = [(r["point"]["seq_len"], value(r)) for r in recs]
            pts = [(x, y) for x, y in pts if y is not None and (y > 0 or not logy)]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], _line_style(model), marker="o",
                    markersize=3, label=model)
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(ylabel)
        ax.set_title(_config_label(cfg), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[len(cfgs):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return name


def _plot_scaling(rows: list[dict[str, Any]], out: Path, name: str = "scaling_devices.png"):
    if not rows:
        return None
    plt = _plot_setup()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        groups[f"{r['model']} ({r['parallel']}, T={r['T']}, B/dev={r['batch/dev']})"].append(r)
    n_max = max(r["devices"] for r in rows)
    ns = sorted({1} | {r["devices"] for r in rows})
    ax.plot(ns, ns, "k--", label="ideal (linear)")
    cpus = {r["cpu_count"] for r in rows if r["backend"] == "cpu" and r["cpu_count"]}
    if cpus:
        c = min(cpus)
        ax.plot(ns, [min(n, c) for n in ns], "k:", label=f"{c} CPU cores (fake devices share them)")
    for label, rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["devices"])
        ax.plot([r["devices"] for r in rs], [r["speedup"] for r in rs], marker="o", label=label)
    ax.set_xlabel("devices")
    ax.set_ylabel("throughput speedup (weak scaling)")
    ax.set_xticks(ns)
    ax.set_xlim(0.8, n_max * 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("data parallel: tokens/s over one device's")
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


# ----------------------------------------------------------------------------------------------
# the report


def _pivot(models: dict[str, list[dict[str, Any]]], value) -> tuple[list[str], list[list[Any]]]:
    Ts = sorted({r["point"]["seq_len"] for recs in models.values() for r in recs})
    rows = []
    for m in sorted(models):
        by_t = {r["point"]["seq_len"]: value(r) for r in models[m]}
        rows.append([m] + [by_t.get(T) for T in Ts])
    return ["model"] + [f"T={T}" for T in Ts], rows


def _first_line(msg: Any, limit: int = 140) -> str:
    text = (str(msg or "").strip().splitlines() or [""])[0]
    return (text[: limit - 1] + "…" if len(text) > limit else text).replace("|", "/")


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
        md += _table(["model", "anchor", "settings", "ratio per length", "geometric mean"], anchors)
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
    plots.append(("Step time", _plot_vs_length(ser, out, "step_time_vs_length.png", ms,
                                               "median step time (ms)", "step time vs length")))
    plots.append(("Throughput", _plot_vs_length(
        ser, out, "tokens_per_s_vs_length.png", lambda r: r["result"].get("tokens_per_s"),
        "tokens / s", "throughput vs length")))
    plots.append(("Memory", _plot_vs_length(
        ser, out, "memory_vs_length.png", lambda r: _mb(_memory_bytes(r["result"])),
        "MB (XLA temporaries; torch: allocator/RSS peak)", "memory vs length")))
    plots.append(("Compile time", _plot_vs_length(
        ser, out, "compile_time_vs_length.png", lambda r: r["result"].get("compile_s"),
        "compile seconds", "compile time vs length (JAX)")))
    has_mfu = any(r["result"].get("mfu") for r in study.single)
    if has_mfu:
        plots.append(("MFU", _plot_vs_length(ser, out, "mfu_vs_length.png",
                                             lambda r: r["result"].get("mfu"), "MFU",
                                             "model FLOPs utilisation vs length")))
    else:
        plots.append(("Achieved TFLOP/s", _plot_vs_length(
            ser, out, "tflops_vs_length.png", lambda r: r["result"].get("tflops_per_s"),
            "TFLOP/s (analytic FLOPs)", "achieved TFLOP/s vs length")))
    plots.append(("Device scaling", _plot_scaling(scal, out)))
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
        for cfg in _order_configs(ser):
            header, rows = _pivot(ser[cfg], ms)
            md += [f"**{_config_label(cfg)}**", ""] + _table(header, rows) + [""]
        if slope_rows:
            md += ["### Fitted slopes", ""]
            md += _table(["model", "settings", "lengths", "points", "time slope", "last-3 slope",
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
        md += _table(["model", "settings", "T", "analytic GFLOP", "XLA GFLOP", "XLA / analytic",
                      "TFLOP/s", "MFU"], flop_rows)
        md.append("")
    if scal:
        md += ["## Data-parallel points", ""]
        md += _table(["model", "parallel", "T", "batch/dev", "devices", "ms", "tokens/s", "speedup",
                      "efficiency"],
                     [[r["model"], r["parallel"], r["T"], r["batch/dev"], r["devices"], r["ms"],
                       r["tokens/s"], r["speedup"], r["efficiency"]] for r in scal])
        md.append("")
    if study.bench:
        md += ["## bench ops (each case's torch anchor timed first, same process)", ""]
        if any(_bench_memory(r) for r in study.bench):
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
                         _mb((res.get("memory") or {}).get("temp_bytes")),
                         (res.get("load_before") or [None])[0], _bench_memory(r) or "-",
                         (r.get("paired") or {}).get("median")])
        md += _table(["case", "T", "B", "impl", "status", "median ms", "tokens/s", "x anchor",
                      "XLA temp MB", "load 1m", "large buffers", "x anchor paired"], rows)
        md.append("")
    md += phases_section(study.phases)
    if study.failed:
        md += ["## Points that did not finish", ""]
        md += _table(["status", "model", "T", "B", "W", "dtype", "mode", "devices", "message"],
                     [[r.get("status"), model_label(r["point"]), r["point"].get("seq_len"),
                       r["point"].get("batch"), r["point"].get("width"), r["point"].get("dtype"),
                       r["point"].get("mode"), r["point"].get("devices", ""),
                       _first_line(r.get("message"))] for r in study.failed])
        md.append("")
    traces_dir = Path(traces_dir) if traces_dir else out / "traces"
    traces = sorted(traces_dir.glob("*")) if traces_dir.is_dir() else []
    if traces:
        from jaxseq.studies.base import folder_name, study_root

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
                     x.get("forward"), x.get("backward"), x.get("step"), _bench_memory(r) or "-"])
    md = ["## bench phases (an LSTM step's forward and backward apart, against torch)", "",
          "Medians over rounds; each round times torch's step and then jaxseq's, each after an untimed step "
          "of its own. jaxseq's forward is `jax.vjp` under `jit` (it keeps the residuals), its backward the "
          "whole `jax.grad` step minus that forward. 'x torch': the median per-round ratio torch time / "
          "jaxseq time (above 1: jaxseq faster).", ""]
    md += _table(["layers", "T", "B", "H", "rounds", "torch fwd ms", "torch bwd ms", "torch step ms", "jaxseq fwd ms",
                  "jaxseq bwd ms", "jaxseq step ms", "x torch fwd", "x torch bwd", "x torch step",
                  "large buffers"], rows)
    md.append("")
    return md


def trace_findings(traces_dir: Path) -> list[str]:
    """"What the traces show": per trace under `traces_dir`, the device-op time per named part and the
    three longest device ops (`jaxseq.bench.traces`); [] when there is no trace."""
    from jaxseq.bench.traces import NAMED_PARTS, find_traces, summarize_trace

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
    md += _table(["trace", "op ms", "named parts (share of op time)", "top 3 device ops"], rows)
    md.append("")
    return md


def write_report(folder: str | Path, out: str | Path | None = None, *, machine: str | None = None,
                 references: list[str | Path] | None = None) -> Path:
    """Read `folder`, write REPORT.md and the PNGs into `out` (default `folder`); return REPORT.md.

    `machine`: whose records (default the newest machine's); `references`: folders of other machines
    to put beside it (default the other machines' `profiles/*/scaling/`; [] for none).
    """
    from jaxseq.studies.base import folder_name

    folder = Path(folder)
    out = Path(out) if out else folder
    study = load_study(folder, machine)
    refs = load_references(folder, study, references)
    text = build_report(study, out, source=folder_name(folder, "scaling"), traces_dir=folder / "traces",
                        references=refs)
    path = out / REPORT
    path.write_text(text + "\n")
    return path


def _cmd(args: argparse.Namespace) -> int:
    refs = [] if args.no_references else args.references
    path = write_report(args.input, args.out, machine=args.machine, references=refs)
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"wrote {path} and {len(pngs)} plots ({', '.join(pngs)})")
    if args.table:
        study = load_study(args.input, args.machine)
        print(anchor_table(study))
        for line in target_lines(study):
            print(line.replace("**", ""))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq report`."""
    p = subparsers.add_parser("report", help="REPORT.md + plots from a study folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--in", dest="input", required=True,
                   help="study folder holding results.jsonl and/or bench_ops.jsonl")
    p.add_argument("--out", help="where REPORT.md and the PNGs go (default: the --in folder)")
    p.add_argument("--machine", help="report this machine's records (an id, id prefix or slug; "
                   "default: the machine of the newest record in the folder)")
    p.add_argument("--references", nargs="+", metavar="DIR",
                   help="study folders of other machines to put beside this one (default: the "
                        "other machines' profiles/*/scaling/)")
    p.add_argument("--no-references", action="store_true", help="no comparison with other machines")
    p.add_argument("--table", action="store_true",
                   help="also print a short table (model, T, ms, tokens/s, ratio to anchor) and "
                        "the target lines")
    p.set_defaults(func=_cmd)


def main(argv: list[str] | None = None) -> int:
    """`python -m jaxseq.studies.scaling.report --in DIR`: `jaxseq report` without importing jaxseq.cli."""
    parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.scaling.report")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq report: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
