#!/usr/bin/env bash
# The prepared GPU script of the translation study (issue 14): `jaxseq translate study --preset gpu`
# (GNMT-style LSTM and Transformer on Multi30k En->De, validation BLEU against training time, test BLEU
# greedy and beam 5, decoding speed) under a wall-clock cap per model that the report states when it cuts.
#
#   bash scripts/gpu_translation.sh                       # TR_OUT=profiles/<machine>/translation/gpu
#   PRESET=smoke TR_OUT=/tmp/tr PYTHON=.venv/bin/python BUDGET=60 bash scripts/gpu_translation.sh   # CPU dry run
#
# The device image has no sentencepiece or sacrebleu: bring them as wheels (device README): here,
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl sentencepiece==0.2.3 sacrebleu==2.6.0 portalocker tabulate colorama lxml regex
# then run(command="python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
#   export PYTHONPATH=/tmp/site; PACK=$OUT bash scripts/gpu_translation.sh", carry=[".whl"], timeout_s=590).
# With PACK set, results.jsonl, plan.json, REPORT.md and the PNGs are copied there.
set -u
cd "$(dirname "$0")/.." || exit 1

. scripts/gpu_env.sh
TR_OUT=${TR_OUT:-$(machine_dir)/translation/gpu}
PRESET=${PRESET:-gpu}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-210}            # per model: two models + scoring stay inside one 600 s device call
PACK=${PACK:-}
mkdir -p "$TR_OUT"

print_machine
"$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
if ! "$PY" -c "import sentencepiece, sacrebleu" 2>/dev/null; then
  echo "ERROR: sentencepiece and sacrebleu are needed (see the wheel steps at the top of this script)" >&2
  exit 3
fi

echo "== translate study --preset $PRESET --budget-s $BUDGET -> $TR_OUT"
timeout $((2 * BUDGET + 150)) "$PY" -m jaxseq.studies.translation study --preset "$PRESET" --out "$TR_OUT" \
  --budget-s "$BUDGET" --no-progress
rc=$?
[ $rc -eq 124 ] && echo "HARD TIMEOUT: the study was killed; rerun continues from the checkpoints" >&2
if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  cp "$TR_OUT"/results.jsonl "$TR_OUT"/plan.json "$TR_OUT"/REPORT.md "$TR_OUT"/*.png "$PACK"/ 2>/dev/null
fi
exit $rc
