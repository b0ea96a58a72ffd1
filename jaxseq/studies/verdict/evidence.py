"""The evidence rows of each claim, computed from one machine's study folders.

Every function takes a `MachineData` (the folders of `profiles/<machine>/`, read lazily) and returns
its rows; a study that did not run on the machine gives no row. Thresholds are stated in each row.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from jaxseq.bench.sweep import read_jsonl
from jaxseq.studies.base import select_machine
from jaxseq.studies.verdict.findings import Evidence

__all__ = ["MachineData", "parallel_rows", "parallel_context", "throughput_rows", "length_rows", "translation_rows",
           "forecast_rows", "language_rows", "anchor_rows", "SPEED_BAND", "BLEU_BAND", "LOSS_BAND"]

SPEED_BAND = 1.2      # a speed ratio counts for a side from 1.2x (host drift moves single ratios ~10-15%)
BLEU_BAND = 1.0       # rounding alone moved the LSTM's test BLEU by about one point (translation study)
LOSS_BAND = 0.02      # nats per character


def _speed_direction(ratio: float, *, favours_claim_above: bool = True, band: float = SPEED_BAND) -> int:
    """+1 when `ratio` >= band (or <= 1/band when the claim is favoured by small ratios), -1 the other
    way, 0 between."""
    up = 1 if ratio >= band else (-1 if ratio <= 1 / band else 0)
    return up if favours_claim_above else -up


def _x(r: float) -> str:
    return f"{r:.2f}x"


class MachineData:
    """The study folders of one machine folder, each loaded on first use (None when absent)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = self.folder.name

    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)

    @functools.cached_property
    def scaling(self) -> Any:
        from jaxseq.studies.scaling.report import load_study

        folder = self.path("scaling")
        try:
            return load_study(folder) if folder.is_dir() else None
        except ValueError:
            return None

    @functools.cached_property
    def translation(self) -> dict[str, Any] | None:
        path = self.path("translation", "results.jsonl")
        records = select_machine(read_jsonl(path)).records
        finals = {r["model"]: r for r in records if r.get("kind") == "final"}
        if not finals:
            return None
        curves = {m: sorted((r for r in records if r.get("kind") == "curve" and r.get("model") == m),
                            key=lambda r: r["step"]) for m in finals}
        return {"finals": finals, "curves": curves, "records": records}

    @functools.cached_property
    def translation_short(self) -> dict[str, Any] | None:
        """The newest short translation run (`translate study --max-steps`, e.g. `scripts/gpu_verdict.sh`):
        its finals, for speeds only (a model trained a few hundred steps has no BLEU worth judging)."""
        runs = []
        for results in sorted(self.path("translation").glob("*/results.jsonl")):
            finals = {r["model"]: r for r in select_machine(read_jsonl(results)).records
                      if r.get("kind") == "final" and r.get("steady_target_tokens_per_s")}
            if {"lstm", "transformer"} <= set(finals):
                runs.append((results.parent.name, finals))
        return {"name": runs[-1][0], "finals": runs[-1][1]} if runs else None

    @functools.cached_property
    def charlm(self) -> dict[str, dict[str, Any]] | None:
        records = select_machine(read_jsonl(self.path("charlm", "lm_compare.jsonl"))).records
        done = {r["model"]: r for r in records if r.get("type") == "done"}
        return done or None

    @functools.cached_property
    def longrange(self) -> tuple[Path, Any, dict, list[dict]] | None:
        """(folder, preset, {(task, model): Search}, records) of the widest long-range run: `full` if
        present."""
        from jaxseq.studies import longrange as L

        for folder in (self.path("longrange", "full"), self.path("longrange")):
            plan_path = folder / "plan.json"
            if not plan_path.is_file():
                continue
            plan = json.loads(plan_path.read_text())
            if plan.get("protocol") != L.PROTOCOL:
                continue
            preset = L.preset_from_plan(plan["preset"])
            records = [r for r in select_machine(read_jsonl(folder / "results.jsonl")).records
                       if r.get("protocol") == L.PROTOCOL]
            if not records:
                continue
            searches = {(t, m): L.frontier_of(preset, t, m, records)
                        for t in preset.tasks for m in preset.models_of(t)
                        if any(r.get("task") == t and r.get("model") == m for r in records)}
            return folder, preset, searches, records
        return None

    @functools.cached_property
    def forecast(self) -> Any:
        """The M4 Hourly significance findings (`jaxseq.studies.forecast_significance.Finding`)."""
        from jaxseq.studies.forecasting import significance_from_folder

        folder = self.path("forecast")
        if not any(folder.glob("Hourly-*.csv")):
            return None
        return significance_from_folder(folder)


# ---------------------------------------------------------------------------------------------- claim 1


def _train_series(data: MachineData, models: tuple[str, ...]) -> tuple[Any, dict[str, dict[int, float]]] | None:
    """The training-step config with the most points holding all `models`: (config, {model: {T: s}})."""
    from jaxseq.studies.scaling.report.records import median_times, order_configs, series

    if data.scaling is None:
        return None
    ser = series(data.scaling.single)
    for cfg in order_configs(ser):
        if cfg[3] == "train" and all(m in ser[cfg] for m in models):
            return cfg, {m: median_times(ser[cfg][m]) for m in models}
    return None


def parallel_rows(data: MachineData) -> list[Evidence]:
    """"LSTMs cannot be parallelised in training": the LSTM's step time against T, and what models
    parallel in time (minGRU's scan, the Transformer block) gain over it."""
    from jaxseq.studies.scaling.report import loglog_slope

    rows: list[Evidence] = []
    found = _train_series(data, ("lstm", "mingru"))
    if found:
        cfg, t = found
        lengths = sorted(t["lstm"])
        k = loglog_slope(lengths, [t["lstm"][T] for T in lengths])
        if k is not None:
            rows.append(Evidence(
                "LSTM step time against length (fitted exponent)",
                f"T^{k:.2f} over T={lengths[0]}–{lengths[-1]} (B={cfg[0]}, W={cfg[1]}, {cfg[2]})",
                "+ at >= 0.9 (serial in T), − below 0.7", 1 if k >= 0.9 else (-1 if k < 0.7 else 0)))
        common = sorted(set(t["lstm"]) & set(t["mingru"]))
        if common:
            r_hi = t["lstm"][common[-1]] / t["mingru"][common[-1]]
            rows.append(Evidence(
                "minGRU (associative scan) speed over the LSTM at the longest common length",
                f"{_x(r_hi)} at T={common[-1]}", "+ at >= 2x, − at <= 1x",
                1 if r_hi >= 2 else (-1 if r_hi <= 1 else 0)))
            if len(common) >= 2:
                r_lo = t["lstm"][common[0]] / t["mingru"][common[0]]
                growth = r_hi / r_lo
                rows.append(Evidence(
                    "minGRU's lead grows with length (it uses parallel hardware the LSTM cannot)",
                    f"{_x(r_lo)} at T={common[0]} -> {_x(r_hi)} at T={common[-1]} ({_x(growth)})",
                    "+ when the lead grows >= 1.5x, − when it shrinks", 1 if growth >= 1.5 else (-1 if growth < 1 else 0)))
    found = _train_series(data, ("lstm-layer", "transformer-block"))
    if found:
        cfg, t = found
        common = sorted(set(t["lstm-layer"]) & set(t["transformer-block"]))
        if common:
            T = common[-1]
            r = t["lstm-layer"][T] / t["transformer-block"][T]
            rows.append(Evidence(
                "Transformer block speed over an LSTM layer of equal width at the longest common length",
                f"{_x(r)} at T={T} ({t['transformer-block'][T] * 1e3:.3g} vs {t['lstm-layer'][T] * 1e3:.3g} ms; "
                f"B={cfg[0]}, W={cfg[1]}, {cfg[2]})",
                f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r)))
    return rows


def parallel_context(data: MachineData) -> list[str]:
    """Numbers beside claim 1 that are no evidence row: the LSTM's cost per time step, device scaling."""
    from jaxseq.studies.scaling.report import scaling_rows

    lines = []
    found = _train_series(data, ("lstm",))
    if found:
        cfg, t = found
        T = max(t["lstm"])
        lines.append(f"LSTM cost per time step: {t['lstm'][T] / T * 1e6:.1f} µs at T={T} "
                     f"(B={cfg[0]}, W={cfg[1]}, {cfg[2]}, training step)")
    rows = [r for r in scaling_rows(data.scaling) if r["backend"] != "cpu"] if data.scaling else []
    multi = [r for r in rows if r["devices"] > 1]
    if multi:
        for model in sorted({r["model"] for r in multi}):
            top = max((r for r in multi if r["model"] == model), key=lambda r: r["devices"])
            lines.append(f"device scaling, {model}: {top['speedup']:.2f}x on {top['devices']} devices "
                         f"({100 * top['efficiency']:.0f}% efficiency, {top['parallel']})")
    elif data.scaling is not None:
        gpu = any((r.get("device") or {}).get("backend") not in (None, "cpu") for r in data.scaling.ok)
        lines.append("device scaling: not measured here (" + ("one device only" if gpu else
                     "the CPU's device-count points run on fake devices that share the same cores") + ")")
    return lines


# ---------------------------------------------------------------------------------------------- claim 2


def _time_to(curve: list[dict[str, Any]], level: float) -> float | None:
    for r in curve:
        if r["val_bleu"] >= level:
            return float(r["train_time_s"])
    return None


TIME_TO_BLEU = 30.0


def throughput_rows(data: MachineData) -> list[Evidence]:
    """"Transformers process all positions in parallel, so they train much faster": tokens/s at equal
    width and time to a quality level."""
    rows: list[Evidence] = []
    found = _train_series(data, ("lstm-layer", "transformer-block"))
    if found:
        cfg, t = found
        common = sorted(set(t["lstm-layer"]) & set(t["transformer-block"]))
        T = min(common, key=lambda n: abs(math.log(n / 512)))
        r = t["lstm-layer"][T] / t["transformer-block"][T]
        rows.append(Evidence("training tokens/s, Transformer block ÷ LSTM layer of equal width (scaling)",
                             f"{_x(r)} at T={T} (B={cfg[0]}, W={cfg[1]}, {cfg[2]})",
                             f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r)))
    tr = data.translation
    if tr and {"lstm", "transformer"} <= set(tr["finals"]):
        f = tr["finals"]
        r = f["transformer"]["train_target_tokens_per_s"] / f["lstm"]["train_target_tokens_per_s"]
        rows.append(Evidence("translation training target tokens/s, Transformer ÷ LSTM (equal parameters)",
                             f"{_x(r)} ({f['transformer']['train_target_tokens_per_s']:.0f} vs "
                             f"{f['lstm']['train_target_tokens_per_s']:.0f})",
                             f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r)))
        ta, tl = (_time_to(tr["curves"][m], TIME_TO_BLEU) for m in ("transformer", "lstm"))
        if ta is not None or tl is not None:
            if ta is None or tl is None:
                d = 1 if tl is None else -1
            else:
                d = _speed_direction(tl / ta)
            fmt = lambda v: "not reached" if v is None else f"{v:.0f} s"  # noqa: E731
            rows.append(Evidence(f"translation training time to validation BLEU {TIME_TO_BLEU:g}",
                                 f"Transformer {fmt(ta)}, LSTM {fmt(tl)}",
                                 f"+ when the Transformer is first by >= {SPEED_BAND}x, − when the LSTM is", d))
    elif data.translation_short:
        short = data.translation_short
        f = short["finals"]
        r = f["transformer"]["steady_target_tokens_per_s"] / f["lstm"]["steady_target_tokens_per_s"]
        rows.append(Evidence(f"translation training target tokens/s, Transformer ÷ LSTM (short run "
                             f"`{short['name']}`, compiling excluded)",
                             f"{_x(r)} ({f['transformer']['steady_target_tokens_per_s']:.0f} vs "
                             f"{f['lstm']['steady_target_tokens_per_s']:.0f})",
                             f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r)))
    rows += _charlm_rows(data, "char-LM validation loss at equal parameters and CPU budget")
    return rows


def _charlm_rows(data: MachineData, name: str) -> list[Evidence]:
    done = data.charlm
    if not done or "transformer" not in done:
        return []
    rec = {m: r for m, r in done.items() if m in ("lstm", "gru")}
    if not rec:
        return []
    best = min(rec, key=lambda m: rec[m]["final_val_loss"])
    a, b = done["transformer"]["final_val_loss"], rec[best]["final_val_loss"]
    d = 1 if a <= b - LOSS_BAND else (-1 if a >= b + LOSS_BAND else 0)
    budget = done["transformer"].get("budget_cpu_s")
    return [Evidence(name, f"Transformer {a:.3f} vs {best.upper()} {b:.3f} nats/char"
                     + (f" after {budget:g} CPU s each" if budget else ""),
                     f"+ when the Transformer is lower by >= {LOSS_BAND}, − when higher by >= {LOSS_BAND}", d)]


# ---------------------------------------------------------------------------------------------- claim 3


def _bound(s: Any) -> str:
    lo = f"{s.lo} <= F" if s.lo else "F"
    return f"{lo} < {s.hi}" if s.hi else f"F >= {s.lo}" if s.lo else "none solved"


def length_rows(data: MachineData) -> list[Evidence]:
    """"The length an LSTM can model is limited": per task, the LSTM's frontier against the best
    Transformer's, and the LSTM's state bits against the task's bits."""
    lr = data.longrange
    if lr is None:
        return []
    folder, preset, searches, records = lr
    rows = []
    for task in preset.tasks:
        lstm = searches.get((task, "lstm"))
        att = [searches[(task, m)] for m in ("transformer-sin", "transformer-rope") if (task, m) in searches]
        if lstm is None or not att:
            continue
        best = max(att, key=lambda s: s.lo or 0)
        if lstm.hi is not None and best.lo is not None and lstm.hi <= best.lo:
            d = 1   # the LSTM failed at a length the Transformer solved
        elif lstm.lo is not None and (best.hi is not None and lstm.lo >= best.hi
                                      or best.lo is not None and lstm.lo >= best.lo and lstm.hi is None):
            d = -1  # the LSTM solved as long as (or longer than) the Transformer did
        else:
            d = 0
        cells = [r for r in records if r.get("task") == task and r.get("model") == "lstm"
                 and r.get("state_floats") and r.get("task_bits")]
        bits = (f"; LSTM state {min(32 * r['state_floats'] / r['task_bits'] for r in cells):.0f}x the task's "
                "bits or more" if cells else "")
        rows.append(Evidence(f"{task}: length frontier F, LSTM vs {best.model}",
                             f"LSTM {_bound(lstm)}; {best.model} {_bound(best)}{bits}",
                             "+ when the LSTM fails below a length the Transformer solves, − when it solves "
                             "at least as long", d))
    return rows


# ---------------------------------------------------------------------------------------------- claim 4


def translation_rows(data: MachineData) -> list[Evidence]:
    """"GNMT-style LSTM encoder-decoders were replaced by Transformers": BLEU at equal parameters and
    training time, and decoding speed."""
    tr = data.translation
    if not tr or not {"lstm", "transformer"} <= set(tr["finals"]):
        return _short_decoding_rows(data)
    f = tr["finals"]
    a, b = f["transformer"]["beam5"]["bleu"], f["lstm"]["beam5"]["bleu"]
    d = 1 if a - b >= BLEU_BAND else (-1 if b - a >= BLEU_BAND else 0)
    pa, pb = f["transformer"]["parameters"], f["lstm"]["parameters"]
    rows = [Evidence("test BLEU (beam 5), Transformer − LSTM",
                     f"{a:.2f} − {b:.2f} = {a - b:+.2f} ({pa / 1e6:.2f}M vs {pb / 1e6:.2f}M parameters; "
                     f"{f['transformer']['train_time_s']:.0f} vs {f['lstm']['train_time_s']:.0f} s training)",
                     f"+ at >= +{BLEU_BAND:g}, − at <= −{BLEU_BAND:g} (rounding alone moved BLEU ~1)", d)]
    ca, cb = tr["curves"].get("transformer") or [], tr["curves"].get("lstm") or []
    if ca and cb:
        t = min(ca[-1]["train_time_s"], cb[-1]["train_time_s"])
        va = max((r["val_bleu"] for r in ca if r["train_time_s"] <= t), default=None)
        vb = max((r["val_bleu"] for r in cb if r["train_time_s"] <= t), default=None)
        if va is not None and vb is not None:
            d = 1 if va - vb >= BLEU_BAND else (-1 if vb - va >= BLEU_BAND else 0)
            rows.append(Evidence("best validation BLEU within equal training time",
                                 f"Transformer {va:.2f} vs LSTM {vb:.2f} within {t:.0f} s",
                                 f"+ at >= +{BLEU_BAND:g}, − at <= −{BLEU_BAND:g}", d))
    ma, mb = f["transformer"]["beam5"]["ms_per_output_token"], f["lstm"]["beam5"]["ms_per_output_token"]
    r = mb / ma
    rows.append(Evidence("beam-5 decoding speed, Transformer ÷ LSTM (ms per output token)",
                         f"{_x(r)} ({ma:.2f} vs {mb:.2f} ms)",
                         f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r)))
    return rows


def _short_decoding_rows(data: MachineData) -> list[Evidence]:
    """Decoding speed from a short run: its second, compiled pass over the same sentences."""
    short = data.translation_short
    if not short:
        return []
    f = short["finals"]
    warm = {m: (f[m].get("beam5") or {}).get("warm") for m in ("lstm", "transformer")}
    if not all(warm.values()):
        return []
    ma, mb = warm["transformer"]["ms_per_output_token"], warm["lstm"]["ms_per_output_token"]
    r = mb / ma
    return [Evidence(f"beam-5 decoding speed, Transformer ÷ LSTM (short run `{short['name']}`, compiled pass)",
                     f"{_x(r)} ({ma:.2f} vs {mb:.2f} ms per output token)",
                     f"+ at >= {SPEED_BAND}x, − at <= 1/{SPEED_BAND}x", _speed_direction(r))]


# ---------------------------------------------------------------------------------------------- claim 5


def forecast_rows(data: MachineData) -> list[Evidence]:
    """"On time series neither beats ARIMA decisively; the ES-RNN hybrid won M4"."""
    found = data.forecast
    if not found:
        return []
    rows = []
    for f in found:
        if f.role == "best neural" and f.baseline != "arima":
            continue  # the story's claim names ARIMA; the report has every pair
        value = (f"sMAPE {f.smape.mean:+.2f} [{f.smape.low:+.2f}, {f.smape.high:+.2f}], MASE {f.mase.mean:+.3f} "
                 f"[{f.mase.low:+.3f}, {f.mase.high:+.3f}] over {f.smape.n} series: {f.verdict}"
                 + (f" ({f.detail})" if f.detail else ""))
        if f.role == "best neural":
            rows.append(Evidence(f"best neural model ({f.model}) − arima, per-series error (95% paired bootstrap)",
                                 value, "+ unless decisively better in both metrics, − when it is",
                                 -1 if f.verdict == "better" else 1))
        else:
            rows.append(Evidence(f"ES-RNN − {f.baseline}, per-series error (95% paired bootstrap)", value,
                                 "+ when decisively better in both metrics, − when decisively worse",
                                 {"better": 1, "worse": -1}.get(f.verdict, 0)))
    return rows


# ---------------------------------------------------------------------------------------------- claim 6


def language_rows(data: MachineData) -> list[Evidence]:
    """Language modelling: the Transformer against the best recurrent char-LM at equal parameters."""
    return _charlm_rows(data, "char-LM validation loss, Transformer vs best of LSTM/GRU (equal parameters, "
                              "equal CPU budget)")


def anchor_rows(data: MachineData) -> list[Evidence]:
    """The fairness check: jaxseq's LSTM against the vendor's fused kernel (oneDNN through torch on a
    CPU, cuDNN on a GPU), so the LSTM in the other claims is not a handicapped one."""
    from jaxseq.studies.scaling.report import GPU_TARGETS, TARGETS
    from jaxseq.studies.scaling.report.records import paired_ratio

    study = data.scaling
    if study is None:
        return []
    rows = []
    for t in (TARGETS[0], GPU_TARGETS[0]):
        m = [r for r in study.single if t.matches(r["point"], t.model)]
        a = [r for r in study.single if t.matches(r["point"], t.anchor)]
        ratio, how = None, "sweep"
        paired = [r for r in study.bench if r.get("status") == "ok" and t.matches(r["point"], t.model)
                  and paired_ratio(r)]
        if paired:
            ratio, how = paired_ratio(paired[-1])["median"], "median of paired rounds, bench ops"
        elif m and a and m[-1]["result"].get("tokens_per_s") and a[-1]["result"].get("tokens_per_s"):
            ratio = m[-1]["result"]["tokens_per_s"] / a[-1]["result"]["tokens_per_s"]
        if ratio is None:
            continue
        on_gpu = (m or a or [{}])[-1].get("device", {}).get("backend", "cpu") != "cpu"
        anchor = "torch.nn.LSTM (cuDNN)" if on_gpu else "torch.nn.LSTM (oneDNN)"
        rows.append(Evidence(f"jaxseq LSTM training tokens/s ÷ {anchor} "
                             f"(B={t.batch}, H={t.width}, T={t.seq_len}, {t.dtype})", f"{_x(ratio)} ({how})",
                             "+ at >= 0.9x, − below 0.5x", 1 if ratio >= 0.9 else (-1 if ratio < 0.5 else 0)))
    return rows
