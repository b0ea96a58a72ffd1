"""Test-only XLA options that cut the compile time of small test programs several-fold (compiling is
nearly all of those tests' time): backend optimisation level 0, and XLA:CPU's loop emitters in place
of its fusion emitters. Neither changes what an op computes. ``FAST_COMPILE`` is {} where this jaxlib
lacks an option. Imported by the tests as ``from fast_compile import FAST_COMPILE`` (tests/ is on the
path through its rootdir conftest)."""

import jax


def _fast_compile_options() -> dict:
    opts = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
    try:
        jax.jit(lambda: 0, compiler_options=opts).lower().compile()
    except Exception:  # an option this XLA does not know
        return {}
    return opts


FAST_COMPILE = _fast_compile_options()
