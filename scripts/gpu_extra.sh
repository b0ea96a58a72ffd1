#!/usr/bin/env bash
# Second GPU script, for what is left of a lease after scripts/gpu_study.sh (about 5 minutes; two of the variants spell the same list two ways in case one
# syntax is not accepted):
#   1. the `gpu-long` preset (T = 32k and 64k, bf16) into WORK/long;
#   2. the `gpu-lstm` preset (the LSTM GPU target's point: plain, unroll 8, unroll 32, with torch's
#      cuDNN LSTM as the in-run anchor) once per XLA_FLAGS variant, into WORK/flags_<name>.
# Each results.jsonl records its XLA_FLAGS. With PACK set, the JSONL files are copied there as
# long.jsonl and lstm_flags_<name>.jsonl (few files, one folder: what the device tool returns).
#
#   run(command="WORK=/tmp/x PACK=\$OUT bash scripts/gpu_extra.sh", timeout_s=330)
set -u
cd "$(dirname "$0")/.." || exit 1
WORK=${WORK:-/tmp/jaxseq-gpu-extra}
PACK=${PACK:-}
PY=${PYTHON:-python3}
LONG_LIMIT=${LONG_LIMIT:-150}
FLAGS_LIMIT=${FLAGS_LIMIT:-45}
. scripts/gpu_env.sh
mkdir -p "$WORK"

echo "== gpu-long (limit ${LONG_LIMIT}s)"
timeout -k 15 "$LONG_LIMIT" "$PY" -m jaxseq.studies.scaling.sweep --preset gpu-long --out "$WORK/long" \
  --no-progress || echo "gpu-long stopped or failed (code $?)"

# name=flags; an empty flag list is the default program. "+WHILE" adds while loops (lax.scan) to
# the command types XLA captures into CUDA graphs.
variants=(
  "default="
  "cmdbuf_while=--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
  "cmdbuf_list=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,CONDITIONAL,WHILE"
  "cmdbuf_off=--xla_gpu_enable_command_buffer="
)
for v in "${variants[@]}"; do
  name=${v%%=*}; flags=${v#*=}
  echo "== gpu-lstm with XLA_FLAGS='$flags' (limit ${FLAGS_LIMIT}s)"
  XLA_FLAGS="$flags" timeout -k 10 "$FLAGS_LIMIT" "$PY" -m jaxseq.studies.scaling.sweep --preset gpu-lstm \
    --out "$WORK/flags_$name" --no-progress || echo "variant $name stopped or failed (code $?)"
done

if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  cp "$WORK/long/results.jsonl" "$PACK/long.jsonl" 2>/dev/null
  for d in "$WORK"/flags_*; do
    [ -f "$d/results.jsonl" ] && cp "$d/results.jsonl" "$PACK/lstm_$(basename "$d").jsonl"
  done
  ls -la "$PACK"
fi
echo "== done in $(( $(date +%s) - t_start )) s"
