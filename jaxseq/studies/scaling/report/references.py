"""This machine beside the reference machines: `load_references`, `headline_rows`, `comparison_lines`."""
from __future__ import annotations

from pathlib import Path

from jaxseq.studies.base import MachineRecords, folder_name, reference_folders
from jaxseq.studies.scaling.report.records import (Config, Study, bench_memories, bench_tps, order_configs,
                                                   paired_ratio, median_times, load_study, series)
from jaxseq.studies.scaling.report.tables import markdown_table
from jaxseq.studies.scaling.report.targets import GPU_MFU_GOAL, GPU_TARGETS, MIN_RNN_TARGET_LENGTHS, TARGETS, Target


def load_references(folder: str | Path, study: Study, references: list[str | Path] | None = None
                    ) -> list[tuple[str, Study]]:
    """(name, Study) of the reference folders, each one machine other than `study`'s.

    `references` None: the scaling folders of the other machines under the same profiles/
    (`jaxseq.studies.base.reference_folders`). In each folder the newest machine other than the
    report's own is used; a folder holding no other machine is left out.
    """
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
    for mem in bench_memories(study):
        rec = bench_tps(study, t, t.model, mem)[1]
        text = _ratio_text(rec, bench_tps(study, t, t.anchor, mem)[1])
        if text and paired_ratio(rec):
            text += f", {paired_ratio(rec)['median']:.2f}x paired"
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
    for cfg in order_configs(ser):
        models = ser[cfg]
        if "lstm" in models and "mingru" in models:
            tl, tg = median_times(models["lstm"]), median_times(models["mingru"])
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
    md += markdown_table(header, rows)
    return md
