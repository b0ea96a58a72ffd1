#!/usr/bin/env bash
# The one prepared script for a GPU session (one H100 or H200): software check, the `gpu` scaling
# preset with profiler traces, the report, and a short table printed last.
#
#   bash scripts/gpu_study.sh                      # OUT=profiles/<machine>/scaling, PRESET=gpu
#   OUT=/tmp/s PRESET=smoke bash scripts/gpu_study.sh   # the same end to end on a CPU, ~1 min
#
# Through the device tool (the whole call must end inside its 600 s limit):
#   run(command="OUT=$OUT/gpu PACK=$OUT bash scripts/gpu_study.sh", timeout_s=580)
# With PACK set, the results come back as few files (the tool returns at most 8, two folders
# deep): PACK/results.jsonl, PACK/report.tar.gz (REPORT.md + plots) and PACK/traces.tar.gz; unpack
# them into profiles/<machine>/scaling/ (`jaxseq report --in profiles/<machine>/scaling` rewrites the report).
#
# Uses `python3` from PATH (the device image's own, with jax[cuda], flax, torch); needs neither
# tensorboardX nor statsforecast. A failing point is recorded and the sweep goes on; the sweep stops
# at SWEEP_LIMIT seconds (finished points stay in results.jsonl; rerunning continues), traces get
# TRACE_LIMIT seconds, and the report is written from whatever finished.
set -u
cd "$(dirname "$0")/.." || exit 1

# Default folder: this machine's scaling folder by the one layout (profiles/<machine_slug>/scaling, e.g.
# profiles/gpu-nvidia-h200x1/scaling on an H200, beside the committed GPU results). Every record carries the machine's fingerprint (jaxseq.bench.sweep.machine_fingerprint): a
# run on this machine resumes only its own points in that folder (the committed records, written
# before fingerprints, are measured again, not skipped), and the report covers the newest machine's
# records with the committed ones beside them as the reference.
. scripts/gpu_env.sh
OUT=${OUT:-$(machine_dir)/scaling}
PRESET=${PRESET:-gpu}
PY=${PYTHON:-python3}
SWEEP_LIMIT=${SWEEP_LIMIT:-400}   # sweep; + traces + report + start-up stays under ~9 minutes
TRACE_LIMIT=${TRACE_LIMIT:-50}
REPORT_LIMIT=${REPORT_LIMIT:-45}
PACK=${PACK:-}
mkdir -p "$OUT"

print_machine

echo "== software"
timeout 120 "$PY" - <<'EOF'
import importlib.metadata as md
import platform
import sys

print("python", platform.python_version(), sys.executable)
for pkg in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax", "torch",
            "numpy", "matplotlib", "tqdm", "tensorboard", "tensorboard-plugin-profile"):
    try:
        print(f"  {pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        pass
try:
    import jax
    print("jax.devices():", jax.devices())
    print("default backend:", jax.default_backend())
except Exception as e:
    print("jax failed:", type(e).__name__, e)
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:
    print("torch failed:", type(e).__name__, e)
EOF

# `jaxseq.cli` imports every subcommand's module; should one of them need a package this image
# lacks, call the two modules directly (same options).
if "$PY" -c "import jaxseq.cli as c; c.build_parser()" >/dev/null 2>&1; then
  SCALE=("$PY" -m jaxseq.cli scale)
  REPORT=("$PY" -m jaxseq.cli report)
else
  echo "jaxseq.cli does not import here; using python -m jaxseq.studies.scaling.sweep / .report:"
  "$PY" -c "import jaxseq.cli as c; c.build_parser()" 2>&1 | tail -n 2
  SCALE=("$PY" -m jaxseq.studies.scaling.sweep)
  REPORT=("$PY" -m jaxseq.studies.scaling.report)
fi

echo "== sweep: preset $PRESET -> $OUT/results.jsonl (limit ${SWEEP_LIMIT}s)"
timeout -k 15 "$SWEEP_LIMIT" "${SCALE[@]}" --preset "$PRESET" --out "$OUT" --trace --no-progress
rc=$?
case $rc in
  0) ;;
  124|137) echo "sweep stopped at its ${SWEEP_LIMIT}s limit; finished points are in $OUT/results.jsonl (rerun to continue)" ;;
  *) echo "sweep exited with code $rc (see above); going on with what finished" ;;
esac

if [ "$rc" != 0 ]; then
  echo "== traces (limit ${TRACE_LIMIT}s; existing ones are kept)"
  timeout -k 10 "$TRACE_LIMIT" "${SCALE[@]}" --preset "$PRESET" --out "$OUT" --trace-only --no-progress \
    || echo "traces: stopped or failed (code $?)"
fi
du -sh "$OUT/traces" 2>/dev/null
ls -la "$OUT"

echo "== report (done in $(( $(date +%s) - t_start )) s so far)"
timeout -k 10 "$REPORT_LIMIT" "${REPORT[@]}" --in "$OUT" --table || echo "report failed (code $?)"

if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  [ "$PACK" -ef "$OUT" ] || cp "$OUT/results.jsonl" "$PACK/" 2>/dev/null
  (cd "$OUT" && tar czf "$PACK/report.tar.gz" REPORT.md ./*.png 2>/dev/null)
  [ -d "$OUT/traces" ] && tar czf "$PACK/traces.tar.gz" -C "$OUT" traces
  echo "== packed into $PACK:"; ls -la "$PACK"
fi
echo "== done in $(( $(date +%s) - t_start )) s"
