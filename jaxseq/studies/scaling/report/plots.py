"""The PNG plots against sequence length and device count (matplotlib, Agg, imported when drawing)."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from jaxseq.studies.scaling.report.records import config_label, order_configs


def plot_setup():
    """matplotlib's pyplot on the non-interactive Agg backend (imported on first use)."""
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


def plot_vs_length(ser, out: Path, name: str, value, ylabel: str, title: str,
                    max_configs: int = 6, logy: bool = True) -> str | None:
    """One subplot per config (most points first), one line per model; None if nothing to plot."""
    cfgs = []
    for cfg in order_configs(ser):
        if any(sum(value(r) is not None for r in recs) >= 1 for recs in ser[cfg].values()):
            if any(len(recs) >= 2 for recs in ser[cfg].values()):
                cfgs.append(cfg)
    cfgs = cfgs[:max_configs]
    if not cfgs:
        return None
    plt = plot_setup()
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
        ax.set_title(config_label(cfg), fontsize=9)
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


def plot_scaling(rows: list[dict[str, Any]], out: Path, name: str = "scaling_devices.png"):
    """Plot the weak-scaling rows (speedup, efficiency against devices) to `out/name`; None without rows."""
    if not rows:
        return None
    plt = plot_setup()
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
