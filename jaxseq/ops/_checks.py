"""Argument conversion and forward-mode diagnostics shared by the ops (private).

* :func:`as_array` turns NumPy arrays, lists and Python scalars into ``jax.Array`` at an op's entry,
  so that nothing later indexes a NumPy array with a traced index (``np_array[tracer]`` raises
  ``TracerArrayConversionError`` inside ``lax.fori_loop``/``lax.scan`` bodies).
* :func:`as_params` accepts a parameter NamedTuple, a plain tuple/list in field order, or a dict
  keyed by the field names (what a pytree round trip or a checkpoint gives back).
* :func:`check_forward_mode` and :func:`explain_forward_mode` replace JAX's generic
  "can't apply forward-mode autodiff (jvp) to a custom_vjp function" by an error naming the option
  that avoids the ``custom_vjp`` (``backward="autodiff"``).
"""
from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp

try:  # the trace currently being built; private, so its absence only disables the early check
    from jax._src.core import trace_ctx as _trace_ctx
except ImportError:  # pragma: no cover - depends on the JAX version
    _trace_ctx = None
try:
    from jax.interpreters.ad import JVPTracer as _JVPTracer
except ImportError:  # pragma: no cover
    _JVPTracer = None

# The message of jax._src.interpreters.ad.raise_custom_vjp_error_on_jvp (JAX 0.4 - 0.10).
JVP_OF_CUSTOM_VJP = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


def as_array(where: str, name: str, x: Any) -> jax.Array:
    """``x`` as a ``jax.Array`` (tracers pass through); a TypeError naming ``name`` otherwise.

    Python floats/ints become weakly typed scalars, so they take the dtype of the arrays they meet.
    """
    if isinstance(x, jax.Array):
        return x
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: `{name}` must be an array (jax or NumPy) or a number, "
                        f"got {type(x).__name__}") from None


def int_at_least(where: str, name: str, v: Any, lo: int) -> int:
    """``v`` as a Python int >= ``lo`` (bools refused), else a ValueError naming ``where`` and ``name``."""
    msg = f"{where}: `{name}` must be an int >= {lo}, got {v!r}"
    if isinstance(v, bool):
        raise ValueError(msg)
    try:
        i = operator.index(v)
    except TypeError:
        raise ValueError(msg) from None
    if i < lo:
        raise ValueError(msg)
    return i


def as_params(where: str, params: Any, cls: type) -> Any:
    """``params`` as the NamedTuple ``cls``.

    Accepts an instance of ``cls``, another NamedTuple with the same field names, a plain tuple or
    list in ``cls._fields`` order, or a mapping with exactly those keys. Anything else is a
    TypeError that names the expected fields.
    """
    fields = cls._fields
    expected = (f"a {cls.__name__}({', '.join(fields)}), a tuple/list of {len(fields)} arrays in "
                f"that order, or a dict with those keys")
    if isinstance(params, cls):
        return params
    if isinstance(params, tuple) and hasattr(params, "_fields"):   # some other NamedTuple
        if tuple(params._fields) != fields:
            raise TypeError(f"{where}: `params` must be {expected}; got {type(params).__name__} "
                            f"with fields {tuple(params._fields)}")
        return cls(*params)
    if isinstance(params, (tuple, list)):
        if len(params) != len(fields):
            raise TypeError(f"{where}: `params` must be {expected}; got a {type(params).__name__} "
                            f"of length {len(params)}")
        return cls(*params)
    if isinstance(params, Mapping):
        keys = set(params.keys())
        if keys != set(fields):
            missing = sorted(set(fields) - keys)
            extra = sorted(map(str, keys - set(fields)))
            raise TypeError(f"{where}: `params` must be {expected}; the dict is missing {missing} "
                            f"and has unexpected keys {extra}")
        return cls(**{f: params[f] for f in fields})
    raise TypeError(f"{where}: `params` must be {expected}; got {type(params).__name__}")


def forward_mode_error(where: str, fix: str) -> TypeError:
    return TypeError(
        f"{where}: forward-mode differentiation (jax.jvp, jax.jacfwd) needs {fix}. "
        f"The default backward pass is a hand-written jax.custom_vjp, which JAX differentiates in "
        f"reverse mode only (jax.grad, jax.vjp, jax.jacrev, and forward-over-reverse such as "
        f"jax.hessian)."
    )


def check_forward_mode(where: str, fix: str, *trees: Any) -> None:
    """Raise :func:`forward_mode_error` when an input is being pushed forward by ``jax.jvp``.

    Only tracers of the trace being built right now count: an input that a *surrounding*
    ``jax.jvp`` differentiates while an inner ``jax.grad`` is tracing (forward-over-reverse) is
    fine, because the custom VJP's forward rule is then an ordinary function to JAX. Under
    ``jax.vmap``/``jax.jit`` of a jvp the inputs are not JVP tracers; :func:`explain_forward_mode`
    covers what it can of those.
    """
    if _trace_ctx is None or _JVPTracer is None:
        return
    current = _trace_ctx.trace
    for leaf in jax.tree.leaves(trees):
        if isinstance(leaf, _JVPTracer) and getattr(leaf, "_trace", None) is current:
            raise forward_mode_error(where, fix)


@contextlib.contextmanager
def explain_forward_mode(where: str, fix: str) -> Iterator[None]:
    """Re-raise JAX's generic jvp-of-custom_vjp TypeError, raised inside the block, as ours."""
    try:
        yield
    except TypeError as e:
        if JVP_OF_CUSTOM_VJP in str(e):
            raise forward_mode_error(where, fix) from e
        raise

