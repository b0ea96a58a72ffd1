#!/usr/bin/env bash
# The one prepared script for a lent GPU (issue 33): every GPU row of the project's verdict in ONE device
# call of at most 540 s, most valuable points first, each part under its own wall-clock cap:
#   1. lstm        the LSTM against torch's cuDNN LSTM, fp16 B=16 T=1024: one layer (H=768) and the 8-layer
#                  stack (H=1024, `layers` and `wavefront` schedules)   scale preset gpu-verdict-lstm
#   2. length      step time against length, bf16 training step B=16 W=512, T=256..16384: LSTM scan,
#                  LSTM layer, Transformer block, minGRU                  scale preset gpu-verdict-length
#   3. translation both translation models at the `gpu` preset's size, NOT trained to the end: at most
#                  TR_STEPS=300 steps and TR_BUDGET=35 s of training (compiling included) each, then greedy
#                  and beam-5 decoding of the first TR_SENTENCES=256 test sentences, timed twice (the second
#                  pass compiled); training tokens/s without compiling (`steady_target_tokens_per_s`).
#                  `translate study --max-steps --decode-sentences`, one process per model
#                  (translation-lstm, translation-transformer), each under TR_LIMIT
#   4. generate    per-token generation latency, lstm / mingru / transformer, contexts 256..65536
#                                                                        scale preset gpu-verdict-generate
# then a summary (the verdict lines computed from the records). Before them: the machine and software
# (env) and, where sentencepiece/sacrebleu are missing, their wheels from WHEELS (wheels).
#
# Through the device tool (the whole command ends inside TOTAL_LIMIT=540 s; start-up comes on top):
#   run(command="PACK=$OUT bash scripts/gpu_verdict.sh", carry=[".whl"], timeout_s=570)
# The device image has no sentencepiece or sacrebleu and no package registry: download their wheels here
# first (as scripts/gpu_translation.sh says), into .whl/ (git-ignored, so name it in carry):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl sentencepiece==0.2.3 sacrebleu==2.6.0 portalocker tabulate colorama lxml regex
# Without them the translation part is skipped (said in the log and in parts.jsonl); the others run.
#
# CPU dry run (every part at toy size, same pack layout; XLA's fast-compile options; ~1 min on 2 loaded cores):
#   PRESET=smoke PYTHON=.venv/bin/python PACK=/tmp/v bash scripts/gpu_verdict.sh     (or DRY_RUN=1)
#
# Caps (seconds; env vars, defaults for PRESET=gpu; they add up to CAPS_MAX=520 at most):
#   ENV_LIMIT 25, WHEELS_LIMIT 15, LSTM_LIMIT 95, LENGTH_LIMIT 85, TR_LIMIT 105 per translation model (2x),
#   GENERATE_LIMIT 65, SUMMARY_LIMIT 20 (sum 515); TOTAL_LIMIT 540 for the whole command: a part never gets more than
#   what is left of it (minus PACK_RESERVE 8 s), and is skipped when nothing is left. A part stopped at its
#   cap is reported as CUT in the log and with "cut": true in parts.jsonl (finished points stay in its
#   results: the sweeps record point by point). CAPS_ONLY=1 prints the caps and exits.
#
# Results: the parts write under WORK (default a fresh temp dir) with explicit --out folders:
#   WORK/scaling/results.jsonl   parts 1, 2 and 4 (one record per point; the `gpu` preset's points, and
#                                the 8-layer ones of `gpu-lstm-stack`: the machine's scaling study)
#   WORK/translation/<TR_PRESET>-steps<N>-decode<M>/{results.jsonl,plan.json,REPORT.md}, runs/ (checkpoints):
#                                a short run is a preset of its own, kept apart from the full preset's
#                                results (its BLEU is not a result: TR_PACK_DIR moves it in the pack)
# PACK (default $OUT when set, else WORK/pack) gets at most 8 files, laid out as their paths below the
# machine's results folder, so that `cp -r PACK/. profiles/<machine_slug>/` puts them in place:
#   machine.txt (the slug on its first line), parts.jsonl, gpu_verdict.log, scaling/results.jsonl,
#   translation/<name>/{results.jsonl,plan.json,REPORT.md}. No traces, no checkpoints. A packed JSONL
#   file whose path the checkout already holds under PROFILES/<slug>/ (e.g. a committed
#   scaling/results.jsonl of the same card) is packed as those lines followed by this run's, so the copy
#   appends instead of replacing (MERGE_COMMITTED=1, the default for PRESET=gpu).
# Then `jaxseq report --in profiles/<slug>/scaling` and `jaxseq verdict --machine <slug>`.
set -u
cd "$(dirname "$0")/.." || exit 1

. scripts/gpu_env.sh
PY=${PYTHON:-python3}
[ "${DRY_RUN:-0}" = 1 ] && PRESET=smoke
PRESET=${PRESET:-gpu}
case $PRESET in
  gpu)
    d_env=25 d_wheels=15 d_lstm=95 d_length=85 d_tr=105 d_generate=65 d_summary=20 d_total=540
    d_tr_preset=gpu d_tr_steps=300 d_tr_sentences=256 d_tr_budget=35 d_merge=1 ;;
  smoke)  # toy sizes on the CPU; the caps only guard against a hang (a loaded 2-core machine is slow)
    d_env=40 d_wheels=15 d_lstm=75 d_length=75 d_tr=100 d_generate=60 d_summary=30 d_total=520
    d_tr_preset=smoke d_tr_steps=3 d_tr_sentences=1 d_tr_budget= d_merge=0 ;;
  *) echo "PRESET must be gpu or smoke, got '$PRESET'" >&2; exit 2 ;;
esac
ENV_LIMIT=${ENV_LIMIT:-$d_env}
WHEELS_LIMIT=${WHEELS_LIMIT:-$d_wheels}
LSTM_LIMIT=${LSTM_LIMIT:-$d_lstm}
LENGTH_LIMIT=${LENGTH_LIMIT:-$d_length}
TR_LIMIT=${TR_LIMIT:-$d_tr}
GENERATE_LIMIT=${GENERATE_LIMIT:-$d_generate}
SUMMARY_LIMIT=${SUMMARY_LIMIT:-$d_summary}
TOTAL_LIMIT=${TOTAL_LIMIT:-$d_total}
PACK_RESERVE=${PACK_RESERVE:-8}
CAPS_MAX=520
TR_PRESET=${TR_PRESET:-$d_tr_preset}
TR_STEPS=${TR_STEPS:-$d_tr_steps}
TR_SENTENCES=${TR_SENTENCES:-$d_tr_sentences}
TR_BUDGET=${TR_BUDGET-$d_tr_budget}   # training seconds per model (empty: steps only)
WHEELS=${WHEELS:-.whl}
PROFILES=${PROFILES:-profiles}          # the checkout's results, for MERGE_COMMITTED
MERGE_COMMITTED=${MERGE_COMMITTED:-$d_merge}

caps_sum=$((ENV_LIMIT + WHEELS_LIMIT + LSTM_LIMIT + LENGTH_LIMIT + 2 * TR_LIMIT + GENERATE_LIMIT + SUMMARY_LIMIT))
caps_line="caps (s): env $ENV_LIMIT, wheels $WHEELS_LIMIT, lstm $LSTM_LIMIT, length $LENGTH_LIMIT, translation 2 x $TR_LIMIT, generate $GENERATE_LIMIT, summary $SUMMARY_LIMIT = $caps_sum (max $CAPS_MAX); whole command $TOTAL_LIMIT"
if [ "${CAPS_ONLY:-0}" = 1 ]; then
  echo "$caps_line"
  echo "caps_sum=$caps_sum"
  exit 0
fi

# The dry run checks the machinery, not speed: XLA's fast-compile options (as the tests use them), where
# this XLA knows them, cut its compile time several-fold.
if [ "$PRESET" = smoke ] && [[ "${XLA_FLAGS:-}" != *xla_backend_optimization_level* ]]; then
  fast="--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
  if XLA_FLAGS="${XLA_FLAGS:-} $fast" JAX_PLATFORMS=cpu timeout 60 "$PY" -c \
      "import jax; jax.jit(lambda x: x + 1)(1).block_until_ready()" >/dev/null 2>&1; then
    export XLA_FLAGS="${XLA_FLAGS:-} $fast"
  fi
fi

WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-verdict.XXXXXX")}
PACK=${PACK:-${OUT:-$WORK/pack}}
mkdir -p "$WORK" "$PACK" || exit 1
WORK=$(cd "$WORK" && pwd)
SC_OUT=$WORK/scaling
TR_NAME=$TR_PRESET-steps$TR_STEPS-decode$TR_SENTENCES   # the study's name for this short run
TR_OUT=$WORK/translation/$TR_NAME
TR_PACK_DIR=${TR_PACK_DIR:-translation/$TR_NAME}        # where the pack puts it, below the machine's folder
PARTS=$WORK/parts.jsonl
LOG=$WORK/gpu_verdict.log
: > "$PARTS"
deadline=$((t_start + TOTAL_LIMIT - PACK_RESERVE))

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# record NAME LIMIT ELAPSED_MS EXIT_CODE(or null) CUT STATUS NOTE  -> one JSON line in parts.jsonl
record() {
  local secs
  secs=$(printf '%d.%03d' $(($3 / 1000)) $(($3 % 1000)))
  printf '{"name": "%s", "limit_s": %s, "elapsed_s": %s, "exit_code": %s, "cut": %s, "status": "%s", "note": "%s"}\n' \
    "$1" "$2" "$secs" "$4" "$5" "$6" "$7" >> "$PARTS"
}

# run_part NAME CAP KILL_GRACE CMD...: CMD under `timeout`, at most CAP s and never past the deadline
# (a command that ignores the TERM at its cap is killed KILL_GRACE s later: counted against the deadline).
run_part() {
  local name=$1 cap=$2 grace=$3 left limit note="" t0 rc ms
  shift 3
  left=$((deadline - $(date +%s) - grace))
  limit=$cap
  if [ "$left" -lt "$limit" ]; then
    limit=$left
    note="cap lowered from ${cap}s to the ${left}s left of TOTAL_LIMIT"
  fi
  if [ "$limit" -le 0 ]; then
    echo "== $name: SKIPPED, no time left of TOTAL_LIMIT=${TOTAL_LIMIT}s"
    record "$name" "$cap" 0 null true skipped "no time left of TOTAL_LIMIT"
    return
  fi
  echo "== $name (cap ${limit}s; $(( $(date +%s) - t_start )) s into the run)"
  t0=$(now_ms)
  timeout -k "$grace" "$limit" "$@"
  rc=$?
  ms=$(( $(now_ms) - t0 ))
  case $rc in
    0) record "$name" "$limit" "$ms" 0 false ok "$note" ;;
    124|137)
      echo "CUT: part $name stopped at its ${limit}s cap (exit $rc); what it finished is kept"
      record "$name" "$limit" "$ms" "$rc" true cut "$note" ;;
    *)
      echo "FAILED: part $name exited with code $rc (see above)"
      record "$name" "$limit" "$ms" "$rc" false failed "$note" ;;
  esac
}

main() {
  echo "== gpu_verdict.sh: preset $PRESET, work folder $WORK, pack $PACK"
  echo "$caps_line"
  [ "$caps_sum" -gt "$CAPS_MAX" ] && echo "WARNING: the caps add up to ${caps_sum}s, over ${CAPS_MAX}s"
  print_machine

  run_part env "$ENV_LIMIT" 5 "$PY" - "$WORK/machine.txt" <<'PYEOF'
import importlib.metadata as md
import platform
import sys

print("python", platform.python_version(), sys.executable)
for pkg in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax", "orbax-checkpoint",
            "torch", "numpy", "sentencepiece", "sacrebleu"):
    try:
        print(f"  {pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        print(f"  {pkg} not installed")
import jax

print("jax.devices():", jax.devices())
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:  # the LSTM part's anchor needs it; say so, go on
    print("torch failed:", type(e).__name__, e)
from jaxseq.bench.sweep import machine_fingerprint, machine_id, machine_label, machine_slug

fp = machine_fingerprint()
slug = machine_slug(fp)
with open(sys.argv[1], "w") as f:
    f.write(f"{slug}\n# copy the pack into place: cp -r PACK/. profiles/{slug}/\n"
            f"# {machine_label(fp)} (id {machine_id(fp)})\n")
print(f"machine: {machine_label(fp)} -> profiles/{slug}/ (id {machine_id(fp)})")
PYEOF

  # Translation needs sentencepiece and sacrebleu: from the carried wheels where the image lacks them.
  TR_PYTHONPATH=$PYTHONPATH
  tr_ok=1
  if "$PY" -c "import sentencepiece, sacrebleu" 2>/dev/null; then
    record wheels 0 0 null false skipped "not needed: sentencepiece and sacrebleu import"
  elif ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    run_part wheels "$WHEELS_LIMIT" 5 "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site" "$WHEELS"/*.whl
    TR_PYTHONPATH=$WORK/site:$PYTHONPATH
    PYTHONPATH=$TR_PYTHONPATH "$PY" -c "import sentencepiece, sacrebleu" || tr_ok=0
  else
    record wheels 0 0 null false skipped "no wheels in $WHEELS"
    tr_ok=0
  fi

  run_part lstm "$LSTM_LIMIT" 15 "$PY" -m jaxseq.studies.scaling.sweep --preset "$PRESET-verdict-lstm" \
    --out "$SC_OUT" --no-progress
  run_part length "$LENGTH_LIMIT" 15 "$PY" -m jaxseq.studies.scaling.sweep --preset "$PRESET-verdict-length" \
    --out "$SC_OUT" --no-progress

  local tr_args=(-m jaxseq.studies.translation study --preset "$TR_PRESET" --out "$TR_OUT" --max-steps "$TR_STEPS"
                 --decode-sentences "$TR_SENTENCES" --no-progress)
  [ -n "$TR_BUDGET" ] && tr_args+=(--budget-s "$TR_BUDGET")
  for m in lstm transformer; do
    if [ "$tr_ok" = 1 ]; then
      run_part "translation-$m" "$TR_LIMIT" 5 env PYTHONPATH="$TR_PYTHONPATH" "$PY" "${tr_args[@]}" --models "$m"
    else
      echo "== translation-$m: SKIPPED: sentencepiece/sacrebleu do not import and no wheels in '$WHEELS' installed them (see this script's header)"
      record "translation-$m" "$TR_LIMIT" 0 null false skipped "sentencepiece or sacrebleu missing: carry their wheels in $WHEELS"
    fi
  done

  run_part generate "$GENERATE_LIMIT" 15 "$PY" -m jaxseq.studies.scaling.sweep --preset "$PRESET-verdict-generate" \
    --out "$SC_OUT" --no-progress

  run_part summary "$SUMMARY_LIMIT" 5 "$PY" - "$SC_OUT" "$TR_OUT" "$WORK/machine.txt" "$PARTS" <<'PYEOF'
import json
import sys
from pathlib import Path

from jaxseq.bench.sweep import machine_label, machine_slug, read_jsonl, record_fingerprint
from jaxseq.bench.timing import format_table
from jaxseq.bench.workloads import model_label

sc, tr, machine, parts = (Path(a) for a in sys.argv[1:5])
records = [r for r in read_jsonl(sc / "results.jsonl") if isinstance(r.get("point"), dict)]
finals = [r for r in read_jsonl(tr / "results.jsonl") if r.get("kind") == "final"]
any_rec = (records or finals or [None])[0]
if any_rec is not None and not machine.is_file():  # the env part did not get that far
    fp = record_fingerprint(any_rec)
    machine.write_text(f"{machine_slug(fp)}\n# copy the pack into place: cp -r PACK/. profiles/{machine_slug(fp)}/\n"
                       f"# {machine_label(fp)}\n")
print("machine folder:", machine.read_text().splitlines()[0] if machine.is_file() else "unknown")

rows = []
for r in records:
    p, res = r["point"], r.get("result") or {}
    rows.append({"model": model_label(p), "T": p["seq_len"], "B": p["batch"], "W": p["width"],
                 "dtype": p.get("dtype"), "mode": p.get("mode"), "status": r.get("status"),
                 "ms": res.get("median_s") and res["median_s"] * 1e3,
                 "ktok_s": None if p.get("mode") == "generate" else res.get("tokens_per_s") and res["tokens_per_s"] / 1e3,
                 "ms_tok": res.get("ms_per_token"), "mfu": res.get("mfu")})
if rows:
    print(format_table(rows, [("model", "model"), ("T", "T"), ("B", "B"), ("W", "W"), ("dtype", "dtype"),
                              ("mode", "mode"), ("status", "status"), ("ms", "ms"), ("ktok_s", "ktok/s"),
                              ("ms_tok", "ms/token"), ("mfu", "MFU")]))
else:
    print("no scaling records")

if records:
    try:
        from jaxseq.studies.scaling import report as R
        study = R.load_study(sc)
        print("== verdict lines (scaling)")
        lines = R.target_lines(study)
        for line in lines:
            if "not measured" not in line:
                print(" ", line)
        print(f"  ({sum('not measured' in line for line in lines)} targets of the report not measured in these parts)")
        if R.study_backend(study) == "gpu":
            print(" ", R.mfu_line(study))
        ser = R.series(study.single)
        for line in R.min_rnn_findings(ser) + R.slope_findings(ser)[0]:
            print(" ", line)
        for f in R.generation_findings(study):
            print(" ", R.generation_sentence(f))
    except Exception as e:  # the table above is the fallback
        print(f"verdict lines failed: {type(e).__name__}: {e}")

print("== translation (short run: not trained to the end; speeds, not BLEU)")
for f in finals:
    b1, b5 = f.get("beam1") or {}, f.get("beam5") or {}
    w1, w5 = b1.get("warm") or {}, b5.get("warm") or {}
    print(f"  {f['model']}: {f['steps']} steps{' (cut by the budget)' if f.get('cut_by_budget') else ''}, "
          f"{f.get('parameters', 0):,} parameters; training target tokens/s {f.get('steady_target_tokens_per_s')} "
          f"steady ({f.get('train_target_tokens_per_s')} with compiling); {f.get('test_sentences')} test sentences: "
          f"beam 5 {w5.get('decode_s')} s compiled / {b5.get('decode_s')} s first pass, "
          f"{w5.get('ms_per_output_token')} ms per output token ({w5.get('sentences_per_s')} sent/s); "
          f"greedy {w1.get('decode_s')} s, {w1.get('ms_per_output_token')} ms per output token")
if not finals:
    print("  no finished translation model")

cut = [p for p in read_jsonl(parts) if p.get("cut")]
print("== parts cut by their caps so far:", ", ".join(p["name"] for p in cut) or "none")
PYEOF
  echo "== parts"
  cat "$PARTS"
  echo "== done in $(( $(date +%s) - t_start )) s (before packing)"
}

main 2>&1 | tee "$LOG"

# Pack at most 8 small files, as paths below profiles/<machine_slug>/ (no traces, no checkpoints).
packed=0
pack_one() {  # pack_one SRC REL
  if [ -f "$1" ] && [ "$1" -ef "$PACK/$2" ]; then
    packed=$((packed + 1))
  elif [ -f "$1" ]; then
    mkdir -p "$(dirname "$PACK/$2")" && cp "$1" "$PACK/$2" && packed=$((packed + 1))
  else
    echo "pack: $2 missing (its part did not write it)"
  fi
}
[ -f "$WORK/machine.txt" ] || echo "unknown" > "$WORK/machine.txt"
slug=$(head -n 1 "$WORK/machine.txt")
# pack_jsonl SRC REL: records are append-only; where the checkout holds PROFILES/<slug>/REL, pack those
# lines followed by this run's, so that copying the pack over the machine's folder loses nothing.
pack_jsonl() {
  local old="$PROFILES/$slug/$2"
  if [ "$MERGE_COMMITTED" = 1 ] && [ "$slug" != unknown ] && [ -f "$1" ] && [ -f "$old" ]; then
    mkdir -p "$(dirname "$PACK/$2")" || return
    { cat "$old"; [ -n "$(tail -c 1 "$old")" ] && echo; cat "$1"; } > "$PACK/$2.tmp" && mv "$PACK/$2.tmp" "$PACK/$2" \
      && packed=$((packed + 1))
    echo "pack: $2 = the $(wc -l < "$old") lines of $old, then this run's $(wc -l < "$1")"
  else
    pack_one "$1" "$2"
  fi
}
pack_one "$WORK/machine.txt" machine.txt
pack_one "$PARTS" parts.jsonl
pack_jsonl "$SC_OUT/results.jsonl" scaling/results.jsonl
pack_jsonl "$TR_OUT/results.jsonl" "$TR_PACK_DIR/results.jsonl"
pack_one "$TR_OUT/plan.json" "$TR_PACK_DIR/plan.json"
pack_one "$TR_OUT/REPORT.md" "$TR_PACK_DIR/REPORT.md"
pack_one "$LOG" gpu_verdict.log
echo "== packed $packed files into $PACK (copy them with: cp -r $PACK/. profiles/$slug/)"
(cd "$PACK" && find . -type f | sort)
echo "== done in $(( $(date +%s) - t_start )) s"
# Exit 1 only when a part failed (an error, not a cap): the pack is there either way.
if grep -q '"status": "failed"' "$PARTS"; then
  echo "some part failed: see parts.jsonl and the log"
  exit 1
fi
exit 0
