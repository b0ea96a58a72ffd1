#!/usr/bin/env bash
# The prepared GPU script of issue 13 (the LSTM at the hardware's limit): the LSTM targets against
# torch's cuDNN LSTM in one process per point group, every stack schedule, kernels per time step, and
# the XLA command-buffer flags for while loops measured rather than assumed.
#
#   bash scripts/gpu_lstm.sh                       # OUT=profiles/<machine>/scaling/gpu-lstm-stack
#   OUT=/tmp/l PRESET=smoke PYTHON=.venv/bin/python bash scripts/gpu_lstm.sh   # CPU dry run, ~1 min
#
# Through the device tool (the whole call must end inside its 600 s limit; start-up comes on top):
#   run(command="PACK=$OUT bash scripts/gpu_lstm.sh", timeout_s=560)   # its step limits add up to ~510 s
# Steps (each under its own `timeout`; a step that fails or is cut leaves the others running):
#   0. the Pallas (Triton) LSTM step against the XLA step, outputs and gradients, float32 and float16
#      (scripts/check_pallas_lstm.py -> pallas_check.jsonl): the first run of that kernel on a GPU;
#   1. `jaxseq scale --preset gpu-lstm-stack` (PRESET): one layer fp16 B=16 H=768 T=1024 and an
#      8-layer stack H=1024 and a 2-layer bidirectional stack, jaxseq.nn.LSTM under each schedule
#      (layers, fused, wavefront) beside torch's cuDNN LSTM (`torch-lstm`) at the same shapes, and the
#      one-kernel Pallas (Triton) step (`step_kernel: pallas`, jaxseq.ops.pallas_lstm) for one layer
#      (two tilings, training and forward) and the 8-layer stack;
#   2. kernels per time step from the compiled HLO (scripts/count_kernels.py) for the one-layer op
#      (XLA step and Pallas step),
#      the wavefront stack and the fused bidirectional layer, forward and training step;
#   3. the one-layer and 8-layer points again under each XLA_FLAGS variant (command buffers).
# With PACK set, the JSONL/text results are copied there flat (what the device tool brings back);
# copy them into profiles/<machine>/scaling/gpu-lstm-stack/ and run `jaxseq report --in` on it.
set -u
cd "$(dirname "$0")/.." || exit 1

. scripts/gpu_env.sh
OUT=${OUT:-$(machine_dir)/scaling/gpu-lstm-stack}
PRESET=${PRESET:-gpu-lstm-stack}
PY=${PYTHON:-python3}
SWEEP_LIMIT=${SWEEP_LIMIT:-180}
KERNEL_LIMIT=${KERNEL_LIMIT:-60}
CHECK_LIMIT=${CHECK_LIMIT:-75}
FLAGS_LIMIT=${FLAGS_LIMIT:-45}
PACK=${PACK:-}
mkdir -p "$OUT"
print_machine
"$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"

if [ "$PRESET" = smoke ]; then  # CPU dry run: tiny shapes
  KARGS_1=(--batch 2 --hidden 16 --seq-len 8); KARGS_S=(--batch 2 --hidden 16 --seq-len 8 --layers 3)
  CARGS=(--batch 5 --hidden 32 --seq-len 6)
  DT=float32; FLAG_PRESET=smoke
else
  KARGS_1=(--batch 16 --hidden 768 --seq-len 64); KARGS_S=(--batch 16 --hidden 1024 --seq-len 64 --layers 8)
  CARGS=()
  DT=float16; FLAG_PRESET=gpu-lstm-flags
fi

echo "== 0. Pallas LSTM step against the XLA step (limit ${CHECK_LIMIT}s)"
timeout -k 10 "$CHECK_LIMIT" "$PY" scripts/check_pallas_lstm.py "${CARGS[@]}" > "$OUT/pallas_check.jsonl"
echo "check exit code $? (0 = every case within tolerance)"; cat "$OUT/pallas_check.jsonl"

echo "== 1. sweep: preset $PRESET -> $OUT/results.jsonl (limit ${SWEEP_LIMIT}s)"
timeout -k 15 "$SWEEP_LIMIT" "$PY" -m jaxseq.studies.scaling.sweep --preset "$PRESET" --out "$OUT" --no-progress \
  || echo "sweep stopped or failed (code $?); finished points are in $OUT/results.jsonl"

echo "== 2. kernels per time step (limit ${KERNEL_LIMIT}s)"
{
  for mode in train forward; do
    "$PY" scripts/count_kernels.py --model lstm "${KARGS_1[@]}" --dtype "$DT" --mode "$mode"
    "$PY" scripts/count_kernels.py --model lstm "${KARGS_1[@]}" --dtype "$DT" --mode "$mode" --step-kernel pallas
    "$PY" scripts/count_kernels.py --model lstm "${KARGS_1[@]}" --dtype "$DT" --mode "$mode" --step-kernel pallas-step
    "$PY" scripts/count_kernels.py --model lstm-stack "${KARGS_S[@]}" --dtype "$DT" --mode "$mode"
    "$PY" scripts/count_kernels.py --model lstm-bidir "${KARGS_1[@]}" --dtype "$DT" --mode "$mode"
  done
} > "$OUT/kernels.txt" 2>&1 &
kpid=$!
( sleep "$KERNEL_LIMIT"; kill "$kpid" 2>/dev/null ) & wait "$kpid"; cat "$OUT/kernels.txt"

echo "== 3. XLA_FLAGS variants (limit ${FLAGS_LIMIT}s each)"
variants=(
  "default="
  "cmdbuf_while=--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
  "cmdbuf_off=--xla_gpu_enable_command_buffer="
)
for v in "${variants[@]}"; do
  name=${v%%=*}; flags=${v#*=}
  [ "$PRESET" = smoke ] && [ -n "$flags" ] && continue  # GPU-only flags
  echo "-- XLA_FLAGS='$flags'"
  XLA_FLAGS="$flags" timeout -k 10 "$FLAGS_LIMIT" "$PY" -m jaxseq.studies.scaling.sweep --preset "$FLAG_PRESET" \
    --out "$OUT/flags_$name" --no-progress || echo "variant $name stopped or failed (code $?)"
done

echo "== report"
timeout -k 10 60 "$PY" -m jaxseq.studies.scaling.report --in "$OUT" --table || echo "report failed (code $?)"
if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  cp "$OUT/results.jsonl" "$OUT/kernels.txt" "$OUT/pallas_check.jsonl" "$PACK/" 2>/dev/null
  for d in "$OUT"/flags_*; do
    [ -f "$d/results.jsonl" ] && cp "$d/results.jsonl" "$PACK/lstm_$(basename "$d").jsonl"
  done
  ls -la "$PACK"
fi
echo "== done in $(( $(date +%s) - t_start )) s"
