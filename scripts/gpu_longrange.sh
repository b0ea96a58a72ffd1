#!/usr/bin/env bash
# The prepared GPU script of the long-range study (issue 15): prints the machine and the software,
# runs `jaxseq longrange --preset gpu` (every model, lengths 64 .. 16384, until solved / plateaued /
# capped, bisection, 3 seeds at the frontier) under a wall-clock cap, writes the report, and prints
# the frontier table last.
#
#   bash scripts/gpu_longrange.sh                     # LR_OUT=profiles/<machine>/longrange/gpu
#   PRESET=smoke LR_OUT=/tmp/lr PYTHON=.venv/bin/python LIMIT=60 bash scripts/gpu_longrange.sh  # CPU dry run
#
# Through the device tool (the whole call must end inside its 600 s limit; start-up comes on top):
#   run(command="PACK=$OUT bash scripts/gpu_longrange.sh", timeout_s=590)
# With PACK set, results.jsonl, plan.json, REPORT.md and the plots are copied there (few files, one
# level deep); copy them into profiles/<machine>/longrange/gpu/ here (`jaxseq longrange --out DIR
# --report-only` rewrites the report).
#
# The cap: the study's own budget (LIMIT seconds, default 420) stops the running cell at its next
# step and starts no other; every cell it cut or left out is recorded with outcome "budget" (never a
# failure), the report and this script say how many, and rerunning continues them (a cut cell
# resumes from its engine checkpoint in WORKDIR, which must then survive: the default is under /tmp,
# lost with the machine, so a fresh machine retrains cut cells from their start). A hard `timeout`
# at LIMIT + 60 s guards against a step that never returns; the report is then written from what
# finished. Needs python3 with jax (CUDA), flax, optax, orbax, tensorboard and matplotlib; not
# tensorboardX or statsforecast (the study runs as `python3 -m jaxseq.studies.longrange`, which
# imports no other study).
set -u
cd "$(dirname "$0")/.." || exit 1

. scripts/gpu_env.sh
LR_OUT=${LR_OUT:-$(machine_dir)/longrange/gpu}
PRESET=${PRESET:-gpu}
PY=${PYTHON:-python3}
LIMIT=${LIMIT:-420}
HARD_LIMIT=$((LIMIT + 60))
WORKDIR=${WORKDIR:-/tmp/jaxseq-longrange-runs}
PACK=${PACK:-}
mkdir -p "$LR_OUT"

print_machine

echo "== software"
if ! timeout 120 "$PY" - <<'PYEOF'
import importlib.metadata as md
import platform
import sys

print("python", platform.python_version(), sys.executable)
for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "matplotlib", "tensorboard"):
    try:
        print(f"  {pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        print(f"  {pkg} not installed")
import jax
import orbax.checkpoint  # noqa: F401  (the engine's checkpoints)
from tensorboard.summary import Writer  # noqa: F401  (the engine's logs)
import jaxseq.studies.longrange  # noqa: F401

print("jax.devices():", jax.devices())
print("default backend:", jax.default_backend())
PYEOF
then
  echo "software check failed: the study cannot run here"
  exit 1
fi

echo "== study: preset $PRESET -> $LR_OUT (budget ${LIMIT}s, hard limit ${HARD_LIMIT}s, workdirs $WORKDIR)"
timeout -k 15 "$HARD_LIMIT" "$PY" -m jaxseq.studies.longrange --preset "$PRESET" --out "$LR_OUT" \
  --workdir "$WORKDIR" --budget-s "$LIMIT" --no-progress
rc=$?
case $rc in
  0) ;;
  124|137)
    echo "HARD LIMIT: the study was killed at ${HARD_LIMIT}s (a step or a compilation outlived the budget);"
    echo "finished cells are in $LR_OUT/results.jsonl; writing the report from them"
    timeout -k 10 60 "$PY" -m jaxseq.studies.longrange --out "$LR_OUT" --report-only || echo "report failed (code $?)" ;;
  *) echo "the study exited with code $rc (see above)" ;;
esac

# Say what the wall-clock cap cut (this machine's newest record per cell).
"$PY" - "$LR_OUT" <<'PYEOF'
import sys
from pathlib import Path

from jaxseq.bench.sweep import load_records
from jaxseq.studies.base import own_records

path = Path(sys.argv[1]) / "results.jsonl"
latest = {r["key"]: r for r in own_records(load_records(path))} if path.is_file() else {}
cut = [r for r in latest.values() if r.get("outcome") == "budget"]
counts = {}
for r in latest.values():
    counts[r.get("outcome", "?")] = counts.get(r.get("outcome", "?"), 0) + 1
print("== cells by outcome (this machine):", counts or "none")
if cut:
    print(f"WALL-CLOCK CAP: the budget cut {len(cut)} cells (recorded as 'budget', not failures; rerun to continue):")
    for r in cut[:20]:
        print(f"  {r['task']} {r['model']} T={r['length']} lr={r['lr']:g} seed={r.get('seed')}: {r.get('reason', '')}")
else:
    print("the wall-clock cap cut nothing")
PYEOF

if [ -f "$LR_OUT/REPORT.md" ]; then
  echo "== frontiers"
  sed -n '/^## Frontiers/,/^## Cells/p' "$LR_OUT/REPORT.md" | head -n 40
  sed -n '/^## Findings/,/^## Time/p' "$LR_OUT/REPORT.md" | head -n 40
fi

if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  if ! [ "$PACK" -ef "$LR_OUT" ]; then
    for f in results.jsonl plan.json REPORT.md "$LR_OUT"/*.png; do
      cp "$LR_OUT/$(basename "$f")" "$PACK/" 2>/dev/null
    done
  fi
  echo "== copied into $PACK:"; ls -la "$PACK"
fi
echo "== done in $(( $(date +%s) - t_start )) s"
