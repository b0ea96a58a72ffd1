"""The pure-function form of an NNX module, for plain JAX code (``jax.jit``, ``jax.grad``, optax)."""
from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

Array = jax.Array


def pure(module: nnx.Module) -> tuple[Callable[..., Any], nnx.State]:
    """Split ``module`` into ``apply_fn(params, *args, rng=None, **kwargs)`` and ``params``.

    ``params`` is the ``nnx.State`` of the module's ``nnx.Param`` variables (a pytree: differentiate
    it, update it with optax). Everything else (RNG streams, frozen tables) is captured by
    ``apply_fn`` as it was when ``pure`` was called.

    ``apply_fn`` rebuilds a *copy* of the module from ``params`` on every call and returns
    ``copy(*args, **kwargs)``:

    * ``rng=None``: deterministic (dropout off, as after ``module.eval()``).
    * ``rng=<jax key>``: training mode, every RNG stream (dropout) reseeded from ``rng``; pass a new
      key per step.

    Building a copy matters: merging the original RNG variables inside ``jax.grad`` and drawing
    from them raises ``TraceContextError``; the copy's variables belong to the
    current trace. State changed during the call (RNG counters) is discarded.

    Example::

        apply_fn, params = jaxseq.nn.pure(model)
        loss = lambda p, x: apply_fn(p, x)[0].sum()
        grads = jax.jit(jax.grad(loss))(params, x)
    """
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply_fn(params: nnx.State, *args: Any, rng: Array | None = None, **kwargs: Any) -> Any:
        model = nnx.merge(graphdef, params, rest, copy=True)
        if rng is None:
            model.eval()
        else:
            model.train()
            tags = {v.tag for v in jax.tree.leaves(nnx.state(model, nnx.RngKey),
                                                   is_leaf=lambda v: isinstance(v, nnx.Variable))}
            if tags:
                nnx.reseed(model, **{tag: rng for tag in tags})
        return model(*args, **kwargs)

    return apply_fn, params
