"""Score ES-RNN settings on a validation split of an M4 frequency (default Hourly): the last horizon of each
training series. `--frequency F --data-dir D` starts from F's configuration (`FREQUENCY_CONFIGS`).

    PYTHONPATH=. .venv/bin/python scripts/esrnn_validate.py --set level_penalty=30 --set tau=0.45 \\
        [--ensemble 3] [--curve] [--save FILE.npz] [--out FILE (default profiles/<machine>/forecast/esrnn_validation.jsonl)]

Trains on every training series without its last 48 points and scores sMAPE/MASE/OWA (Naive2 of the
same split) on those 48 points, so settings are chosen without looking at the test set. Appends one
JSON line per run to --out; with --curve it also holds the OWA of the mean of the first k members for
every k (how much each added member buys). --save keeps every snapshot's validation forecast (and
the truth) in an .npz, so ensembles can be re-averaged offline (`scripts/esrnn_combine.py`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jaxseq.bench.sweep import machine_folder


def cfg_freq(name: str) -> str:
    return name[:1].upper() + name[1:].lower()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="an ESRNNConfig field to override (repeatable)")
    ap.add_argument("--frequency", default="Hourly", help="M4 frequency (default Hourly, the shipped data)")
    ap.add_argument("--data-dir", help="folder with <Freq>-train.csv / -test.csv (default: the shipped data/m4)")
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", action="store_true", help="also score the mean of the first k members, every k")
    ap.add_argument("--save", metavar="FILE.npz", help="also save every snapshot's validation forecast here")
    ap.add_argument("--out", help="default: this machine's profiles/<machine>/forecast/esrnn_validation.jsonl")
    a = ap.parse_args(argv)

    import numpy as np

    from jaxseq.bench.sweep import environment_info
    from jaxseq.data.m4 import evaluate, load_m4
    from jaxseq.models.esrnn import fit_esrnn, forecast_esrnn, mean_by_member, snapshot_forecasts

    from jaxseq.models.esrnn import esrnn_config, parse_overrides

    over = {"ensemble_size": a.ensemble}
    try:
        over.update(parse_overrides(a.set))
        cfg = esrnn_config(a.frequency, over)  # the frequency's configuration (FREQUENCY_CONFIGS) + overrides
    except ValueError as e:
        print(f"esrnn_validate: error: {e}", file=sys.stderr)
        return 2
    val = load_m4(cfg_freq(a.frequency), a.data_dir).holdout_split()
    t0 = time.perf_counter()
    fitted = fit_esrnn(val.train, horizon=val.horizon, seasonality=val.seasonality, config=cfg, seed=a.seed, progress=False)
    score = evaluate(val, forecast_esrnn(fitted, val.train))
    rec = {"overrides": {k: v for k, v in over.items()}, "seed": a.seed,
           "val_smape": round(score.smape, 4), "val_mase": round(score.mase, 4), "val_owa": round(score.owa, 4),
           "train_s": round(time.perf_counter() - t0, 1), **environment_info()}
    if fitted.parts:  # one fit per input window: its own training time
        rec["part_train_s"] = [round(p.train_time_s, 1) for p in fitted.parts]
    if a.curve or a.save:  # one forecast per snapshot serves both
        snap_members, snaps = snapshot_forecasts(fitted, val.train)
    if a.curve:
        members = mean_by_member(snap_members, snaps)
        rec["owa_of_first_k_members"] = [round(evaluate(val, members[:k].mean(axis=0)).owa, 4)
                                         for k in range(1, len(members) + 1)]
    if a.save:
        np.savez_compressed(a.save, members=snap_members, forecasts=snaps.astype(np.float32),
                            truth=val.test, overrides=json.dumps(over), seed=a.seed)
        rec["saved"] = a.save
    out = Path(a.out) if a.out else machine_folder("forecast") / "esrnn_validation.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
    print(json.dumps({k: rec[k] for k in ("overrides", "val_smape", "val_mase", "val_owa", "train_s",
                                          "owa_of_first_k_members") if k in rec}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
