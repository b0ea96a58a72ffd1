"""Test set-up: several fake CPU devices so pmap and sharding run on this machine, and fast compiles.

The flags must be set before jax initialises its backends, so they are set at import time here.

Compiling is most of this suite's time (thousands of small programs, each run a few times), so the
tests compile with XLA's backend optimisation level 0 and XLA:CPU's loop emitters in place of its
fusion emitters: neither changes what a program computes, only how long XLA spends making it fast.
Each flag is probed in a subprocess first (an XLA that does not know a flag aborts at start-up), and
``JAXSEQ_TEST_OPTIMIZED=1`` runs the suite with XLA's defaults. The study subprocesses the tests
start inherit the flags through the environment.
"""
import os
import subprocess
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")


def _known(flags: str) -> bool:
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    probe = "import jax, jax.numpy as jnp; jax.jit(lambda x: x + 1)(jnp.zeros(2)).block_until_ready()"
    try:
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _flags = (_flags + " --xla_force_host_platform_device_count=4").strip()
if os.environ.get("JAXSEQ_TEST_OPTIMIZED") != "1" and "xla_backend_optimization_level" not in _flags:
    # Once per test session: pytest-xdist workers inherit the result through XLA_FLAGS.
    _fast = " ".join(_FAST_COMPILE)
    if _known(_fast):
        _flags = f"{_flags} {_fast}"
os.environ["XLA_FLAGS"] = _flags

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
