# Sourced (from the repository root) by every scripts/gpu_*.sh: the environment a GPU run needs and
# the machine banner, kept in one place so that the scripts cannot drift apart.
# Sets: gpu_name (lower-case model, e.g. "h200"; empty without nvidia-smi), t_start (epoch seconds).
# Defines: print_machine (date, host, CPUs, load and nvidia-smi's view of the GPU); machine_dir (this
# machine's results folder by the one layout, profiles/<machine_slug>, e.g. profiles/gpu-nvidia-h100x1).
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | awk '{print tolower($2)}')
# The device image has no `pip install -e .`: the package is imported from the checkout.
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# One jax process must not take 75% of the GPU up front: sweeps run a main process and a worker.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# Later passes (traces, seeds, reruns) compile the programs earlier ones compiled: a persistent
# cache makes that a lookup.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jaxseq-jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
t_start=$(date +%s)

machine_dir() {
  "${PYTHON:-python3}" -c 'from jaxseq.bench.sweep import machine_folder; print(machine_folder())'
}

print_machine() {
  echo "== machine ($(date -u +%FT%TZ), host $(hostname), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv
  else
    echo "nvidia-smi: not found (no NVIDIA GPU here)"
  fi
}
