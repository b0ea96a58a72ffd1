"""The report's PNG plots: a few series with each model's forecast, and the per-series sMAPE of every model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["smape_distribution_plot", "series_plots"]


def smape_distribution_plot(ds, results, out: Path) -> Path:
    """`plots/<Freq>-smape-distribution.png`: a box per model (the table's order) of its per-series
    sMAPE, log scale (values under 0.01 drawn at 0.01), the mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [m for m, _ in sorted(results.items(), key=lambda kv: kv[1][0].owa)]
    data = [np.maximum(results[m][0].smape_per_series, 1e-2) for m in order]
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.boxplot(data, showmeans=True, whis=(5, 95), flierprops={"markersize": 2},
               meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"})
    ax.set_xticks(range(1, len(order) + 1), order)
    ax.set_yscale("log")
    ax.set_ylabel("sMAPE per series (%)")
    ax.set_title(f"M4 {ds.frequency}: per-series sMAPE over {len(ds)} series "
                 "(box: quartiles; whiskers: 5th-95th percentile; triangle: mean)", fontsize=9)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    p = plot_dir / f"{ds.frequency}-smape-distribution.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def series_plots(ds, results, out: Path, count: int = 4) -> list[Path]:
    """`plots/<Freq>-<id>.png` for `count` series spread over `ds`: the end of the training series, the
    truth and the forecasts of the models shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    picks = sorted(set(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int).tolist()))
    show = [m for m in ("snaive", "ets", "arima", "lstm", "transformer", "mingru", "esrnn") if m in results]
    paths = []
    for i in picks:
        y, sid = np.asarray(ds.train[i]), ds.ids[i]
        back = min(len(y), 3 * ds.horizon)
        fig, ax = plt.subplots(figsize=(9, 3.2))
        t_tr = np.arange(-back, 0)
        t_te = np.arange(ds.horizon)
        ax.plot(t_tr, y[-back:], color="black", lw=1, label="train")
        ax.plot(t_te, ds.test[i], color="black", lw=1.5, ls="--", label="truth", zorder=5)
        for m in show:
            ax.plot(t_te, results[m][2][i], lw=1, label=f"{m} (sMAPE {results[m][0].smape_per_series[i]:.1f})")
        ax.set_title(f"M4 {ds.frequency} {sid}")
        ax.legend(fontsize=7, ncol=2, loc="upper left")
        fig.tight_layout()
        p = plot_dir / f"{ds.frequency}-{sid}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths
