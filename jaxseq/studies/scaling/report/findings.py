"""The findings computed from the records: slopes, crossovers, anchors, min-RNN factors, targets, scaling, FLOPs."""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from typing import Any, Iterable

from jaxseq.bench.timing import format_table
from jaxseq.studies.scaling.report.records import (Study, study_backend, bench_memories, bench_tps, config_label,
                                                   memory_bytes, order_configs, paired_ratio, median_times, series)
from jaxseq.studies.scaling.report.tables import fmt_cell, to_mib
from jaxseq.studies.scaling.report.targets import GPU_MFU_GOAL, GPU_TARGETS, MIN_RNN_TARGET_LENGTHS, TARGETS


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


def slope_findings(ser) -> tuple[list[str], list[dict[str, Any]]]:
    """Lines and rows: fitted exponent of step time in T per model and config (>= 3 lengths)."""
    lines, rows = [], []
    for cfg in order_configs(ser):
        for model, recs in ser[cfg].items():
            t = median_times(recs)
            if len(t) < 3:
                continue
            Ts = sorted(t)
            k = loglog_slope(Ts, [t[x] for x in Ts])
            tail = loglog_slope(Ts[-3:], [t[x] for x in Ts[-3:]]) if len(Ts) > 3 else None
            mem = {r["point"]["seq_len"]: memory_bytes(r["result"]) for r in recs}
            km = loglog_slope([x for x in Ts if mem.get(x)], [mem[x] for x in Ts if mem.get(x)])
            rows.append({"model": model, "config": config_label(cfg), "T": f"{Ts[0]}-{Ts[-1]}",
                         "n": len(Ts), "slope": k, "tail": tail, "mem_slope": km})
    for row in rows:
        k = row["slope"]
        text = (f"{row['model']} ({row['config']}, T={row['T']}): step time ~ T^{k:.2f}, "
                f"{_slope_words(k)}")
        if row["tail"] is not None:
            text += f"; over the three largest lengths T^{row['tail']:.2f}"
        lines.append(text)
    return lines, rows


def crossing_length(ratios: list[tuple[int, float]]) -> float | None:
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
    for cfg in order_configs(ser):
        models = ser[cfg]
        for a, b in pairs:
            if a in models and b in models:
                ta, tb = median_times(models[a]), median_times(models[b])
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
        head = f"{att} vs {rnn} ({config_label(cfg)}): "
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
            t_star = crossing_length(ratios)
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
        text = f"{m} vs lstm ({config_label(cfg)}): lstm time / {m} time = {parts}"
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
        rows.append([m, a, config_label(cfg), per_t, f"{gm:.2f}x"])
    return rows


def target_lines(study: Study) -> list[str]:
    """Met / not met for each target, from the sweep and from bench ops where they hold the point."""
    lines = []
    gpu = study_backend(study) == "gpu"
    for t in GPU_TARGETS if gpu else TARGETS:
        found = []
        sources = [("scale sweep", study.single, None)] + [
            (f"bench ops ({mem})" if mem else "bench ops", None, mem) for mem in bench_memories(study)]
        for source, recs, mem in sources:
            if recs is not None:
                m = [r for r in recs if t.matches(r["point"], t.model)]
                a = [r for r in recs if t.matches(r["point"], t.anchor)]
                tm = m[-1]["result"]["tokens_per_s"] if m else None
                ta = a[-1]["result"]["tokens_per_s"] if a else None
                load = (m[-1]["result"].get("load_before") or [None])[0] if m else None
            else:
                tm, rec = bench_tps(study, t, t.model, mem)
                ta, _ = bench_tps(study, t, t.anchor, mem)
                load = ((rec or {}).get("result") or {}).get("load_before")
                load = load[0] if load else None
                paired = paired_ratio(rec)
                if tm and ta and paired:  # judged on the rounds that timed both seconds apart
                    verdict = "met" if paired["median"] >= t.goal else "NOT met"
                    found.append(f"{source}: {paired['median']:.2f}x paired, {paired['min']:.2f}-"
                                 f"{paired['max']:.2f} over {paired['rounds']} rounds ({verdict}; load "
                                 f"{fmt_cell(load)}; {tm / ta:.2f}x from the separate medians)")
                    continue
            if tm and ta:
                r = tm / ta
                verdict = "met" if r >= t.goal else "NOT met"
                found.append(f"{source}: {r:.2f}x ({verdict}; load {fmt_cell(load)})")
        head = f"**{t.name}**: goal >= {t.goal:.1f}x the anchor's tokens/s - "
        lines.append(head + ("; ".join(found) if found else "not measured in these files"))
    if gpu:
        return lines + [mfu_line(study)]
    # Blockwise attention memory linear in T (same settings as its target, every length measured).
    t = TARGETS[1]
    bw = sorted((r for r in study.single if r["point"]["model"] == t.model
                 and r["point"]["batch"] == t.batch and r["point"]["width"] == t.width
                 and r["point"].get("mode", "train") == t.mode
                 and r["point"].get("dtype", "float32") == t.dtype),
                key=lambda r: r["point"]["seq_len"])
    mem = [(r["point"]["seq_len"], memory_bytes(r["result"])) for r in bw]
    mem = [(T, b) for T, b in mem if b]
    head = "**blockwise attention memory linear in T**: "
    if len(mem) >= 2:
        k = loglog_slope([T for T, _ in mem], [b for _, b in mem])
        verdict = "met" if k <= 1.25 else "NOT met"
        lines.append(head + f"XLA temporaries ~ T^{k:.2f} over T={mem[0][0]}-{mem[-1][0]} "
                     f"({', '.join(f'{to_mib(b):.0f} MB' for _, b in mem)}) - {verdict}")
    else:
        lines.append(head + f"needs two or more lengths at B={t.batch} W={t.width}: not measured")
    # minGRU faster than the LSTM by a growing factor at the target lengths.
    head = ("**minGRU (associative scan) faster than the LSTM scan by a growing factor "
            f"(T={' and '.join(map(str, MIN_RNN_TARGET_LENGTHS))})**: ")
    done = False
    ser = series(study.single)
    for cfg in order_configs(ser):
        models = ser[cfg]
        if "lstm" not in models or "mingru" not in models:
            continue
        tl, tg = median_times(models["lstm"]), median_times(models["mingru"])
        if not all(T in tl and T in tg for T in MIN_RNN_TARGET_LENGTHS):
            continue
        facs = [tl[T] / tg[T] for T in MIN_RNN_TARGET_LENGTHS]
        ok = facs[0] > 1 and all(b > a for a, b in zip(facs, facs[1:]))
        lines.append(head + ", ".join(f"{f:.2f}x at T={T}" for T, f in
                                      zip(MIN_RNN_TARGET_LENGTHS, facs))
                     + f" ({config_label(cfg)}) - {'met' if ok else 'NOT met'}")
        done = True
    if not done:
        # Say what the data do hold: the failed or missing points at those lengths.
        missing = [f"{r['point']['model']} T={r['point']['seq_len']}: {r['status']}"
                   for r in study.failed if r["point"].get("model") in ("lstm", "mingru")
                   and r["point"].get("seq_len") in MIN_RNN_TARGET_LENGTHS]
        lines.append(head + "not measured" + (f" ({'; '.join(missing)})" if missing else ""))
    return lines


def mfu_line(study: Study) -> str:
    """The GPU target line: the best transformer-block training step MFU against the goal."""
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
    for cfg in order_configs(ser):
        for model, recs in sorted(ser[cfg].items()):
            r = recs[-1]["result"]
            fa, fx = r.get("flops_analytic"), r.get("flops_xla")
            if not fa:
                continue
            rows.append([model, config_label(cfg), recs[-1]["point"]["seq_len"], fa / 1e9,
                         fx / 1e9 if fx else None, (fx / fa) if fx else None,
                         r.get("tflops_per_s"), r.get("mfu")])
    return rows


def anchor_table(study: Study) -> str:
    """Short plain-text table of the single-device points: model, T, ms, tokens/s, ratio to anchor.

    The anchor is the first of the model's anchors (ANCHOR_PAIRS) measured at the same settings.
    """
    ser = series(study.single)
    anchors: dict[str, list[str]] = defaultdict(list)
    for m, a in ANCHOR_PAIRS:
        anchors[m].append(a)
    rows = []
    for cfg in order_configs(ser):
        models = ser[cfg]
        for model in sorted(models):
            for r in models[model]:
                T = r["point"]["seq_len"]
                anchor, ratio = None, None
                for a in anchors.get(model, []):
                    ta = median_times(models.get(a, [])).get(T)
                    if ta:
                        anchor, ratio = a, ta / r["result"]["median_s"]
                        break
                rows.append({"model": model, "settings": config_label(cfg), "T": T,
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
