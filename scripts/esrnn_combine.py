"""Re-average saved ES-RNN validation forecasts offline (from `esrnn_validate.py --save`).

    PYTHONPATH=. .venv/bin/python scripts/esrnn_combine.py /tmp/val/a.npz /tmp/val/b.npz \\
        [--last 4] [--members 3] [--median]

Each file holds every kept snapshot of one validation run ([snapshots, series, horizon], grouped by
member, epochs in order). Prints the validation OWA of, per file and for all files pooled: the mean
over members of each member's last-k-epoch average for every k (snapshot averaging), and the
pooled ensemble with --members from each file. Nothing is refitted, so comparing ways to combine
members costs seconds instead of a training run.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="FILE.npz")
    ap.add_argument("--last", type=int, default=4, help="snapshots (epochs) averaged per member")
    ap.add_argument("--members", type=int, default=None, help="members taken from each file (default all)")
    ap.add_argument("--median", action="store_true", help="combine members by the median, not the mean")
    a = ap.parse_args(argv)

    from jaxseq.data.m4 import evaluate, load_m4
    from jaxseq.models.esrnn import mean_by_member

    val = load_m4("Hourly").holdout_split()
    combine = np.median if a.median else np.mean

    def owa(fc: np.ndarray) -> float:
        return round(evaluate(val, fc.astype(np.float64)).owa, 4)

    try:
        pooled = _score_files(a, val, owa, combine, mean_by_member)
    except ValueError as e:
        print(f"esrnn_combine: error: {e}", file=sys.stderr)
        return 2
    if len(pooled) > 1:
        allm = np.concatenate(pooled)
        print(json.dumps({"pooled_files": len(pooled), "members": len(allm), "median": a.median,
                          f"owa_last_{a.last}": owa(combine(allm, axis=0))}))
    return 0


def _score_files(a, val, owa, combine, mean_by_member) -> list[np.ndarray]:
    """Print each file's scores; returns each file's member means. Bad input: ValueError."""
    pooled = []
    for path in a.files:
        try:
            z = np.load(path)
        except OSError as e:
            raise ValueError(f"{path}: {e}") from None
        if not np.allclose(z["truth"], val.test):
            raise ValueError(f"{path} was not saved on this validation split")
        members, fcs = z["members"], z["forecasts"]
        per = int(np.sum(members == members[0]))
        curve = [owa(combine(mean_by_member(members, fcs, last=k), axis=0)) for k in range(1, per + 1)]
        mm = mean_by_member(members, fcs, last=a.last)[: a.members]
        pooled.append(mm)
        print(json.dumps({"file": path, "overrides": json.loads(str(z["overrides"])), "seed": int(z["seed"]),
                          "owa_last_k_epochs": curve, f"owa_last_{a.last}": owa(combine(mm, axis=0)),
                          "owa_per_member": [owa(m) for m in mm]}))
    return pooled


if __name__ == "__main__":
    sys.exit(main())
