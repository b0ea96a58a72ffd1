"""Test set-up: several fake CPU devices so pmap and sharding run on this machine.

The flag must be set before jax initialises its backends, so it is set at import time here.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
