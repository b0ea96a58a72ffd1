"""Fit the default ES-RNN ensemble on M4 Hourly once and score ways of combining its members.

    PYTHONPATH=. .venv/bin/python scripts/esrnn_member_selection.py [--out FILE (default profiles/<machine>/forecast/esrnn_member_selection.json)]

Rules scored (OWA on the 414 test series): the mean of every snapshot (the old default), the
per-series best k of the members ranked by `member_holdout_smape` (k = 1 .. members - 1), and the
per-series median of the members. The test set decides nothing here by itself: the rule used by
`jaxseq forecast` is fixed in `ESRNNConfig.best_members`, and this file records what each rule
scored so the choice can be checked.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxseq.bench.sweep import machine_folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="default: this machine's profiles/<machine>/forecast/esrnn_member_selection.json")
    ap.add_argument("--budget-s", type=float, default=600.0, help="ES-RNN training budget (s)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    from jaxseq.bench.sweep import environment_info
    from jaxseq.data.m4 import evaluate, load_m4
    from jaxseq.models.esrnn import (ESRNNConfig, best_members_mean, fit_esrnn, member_forecasts,
                                     member_holdout_smape)

    ds = load_m4("Hourly")
    cfg = ESRNNConfig(best_members=None)
    t0 = time.perf_counter()
    fitted = fit_esrnn(ds.train, horizon=ds.horizon, seasonality=ds.seasonality, config=cfg, seed=a.seed,
                       time_budget_s=a.budget_s, progress=True)
    train_s = time.perf_counter() - t0
    fcs = member_forecasts(fitted, ds.train)
    err = member_holdout_smape(fitted, ds.train)
    # Every member has the same number of snapshots here, so the mean of the members is the mean of
    # all snapshots (the rule without selection).
    rules = {"mean of all snapshots": fcs.mean(axis=0)}
    for k in range(1, fcs.shape[0]):
        rules[f"best {k} of {fcs.shape[0]} per series"] = best_members_mean(fcs, err, k)
    rules["median of members per series"] = np.median(fcs, axis=0)
    for m in range(fcs.shape[0]):
        rules[f"member {m} alone"] = fcs[m]
    scores = {}
    for name, fc in rules.items():
        s = evaluate(ds, fc)
        scores[name] = {"smape": round(s.smape, 4), "mase": round(s.mase, 4), "owa": round(s.owa, 4)}
        print(f"{name:32s} sMAPE {s.smape:.3f} MASE {s.mase:.3f} OWA {s.owa:.4f}", flush=True)
    out = {
        "what": "ES-RNN member combination rules on M4 Hourly (414 series), one fitted ensemble",
        "config": dataclasses.asdict(cfg),
        "seed": a.seed, "train_time_s": round(train_s, 1),
        "members": int(fcs.shape[0]), "snapshots": len(fitted.snapshots),
        "holdout_smape_mean_per_member": [round(float(x), 3) for x in err.mean(axis=1)],
        "scores": scores,
        **environment_info(),
    }
    path = Path(a.out) if a.out else machine_folder("forecast") / "esrnn_member_selection.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
