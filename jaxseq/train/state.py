"""The explicit training state and the pure (graphdef, params) form of an NNX model.

A model is split once, outside any transform, into
  * `params`  – the `nnx.Param` leaves: the only thing differentiated, optimised and checkpointed;
  * `ModelDef` – the static graph (one for training, one with dropout off) plus every other variable
    (RNG streams, ...), frozen to numpy so that it is a plain constant in any jit/pmap/process.
Inside a step the module is rebuilt with `ModelDef.merge`, which re-creates the non-param variables at
the current trace level (NNX refuses to mutate a variable created at another trace level, and dropout
mutates its RNG counter) and reseeds every RNG stream from the step's key. The RNG state is therefore
never differentiated nor carried: dropout masks are a function of (state.rng, state.step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class TrainState(NamedTuple):
    """Everything a training step reads and writes; a plain pytree (checkpointable as is)."""

    params: Any  # nnx.State of nnx.Param values, float32
    opt_state: Any  # optax state
    step: jax.Array  # int32 scalar: number of updates applied so far (= data position)
    rng: jax.Array  # uint32[2] raw PRNG key; dropout key of a step = fold_in(rng, step)


@dataclass(frozen=True, eq=False)
class ModelDef:
    """Static half of a split NNX model; see the module docstring."""

    graphdef: Any  # train mode
    eval_graphdef: Any  # every `deterministic` attribute set (dropout off)
    rest_treedef: Any
    rest_leaves: tuple[np.ndarray, ...]
    rest_key_impls: tuple[Any, ...]  # PRNG impl for typed-key leaves, None for plain arrays

    def merge(self, params: Any, *, train: bool, key: jax.Array | None = None) -> nnx.Module:
        """Rebuild the module (inside a trace) from `params`; reseed its RNG streams from `key`."""
        leaves = [
            jnp.asarray(x) if impl is None else jax.random.wrap_key_data(jnp.asarray(x), impl=impl)
            for x, impl in zip(self.rest_leaves, self.rest_key_impls)
        ]
        if key is not None:
            # Every typed key leaf is an RNG stream's key: give each its own key derived from `key`;
            # the stream counters restart from the frozen (initial) values.
            raw = jnp.asarray(key)
            leaves = [
                x if impl is None else jax.random.wrap_key_data(jax.random.fold_in(raw, i), impl=impl)
                for i, (x, impl) in enumerate(zip(leaves, self.rest_key_impls))
            ]
        rest = jax.tree.unflatten(self.rest_treedef, leaves)
        return nnx.merge(self.graphdef if train else self.eval_graphdef, params, rest)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def split_model(model: nnx.Module) -> tuple[ModelDef, Any]:
    """Split `model` into (ModelDef, params)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    eval_graphdef = graphdef
    if any(hasattr(m, "deterministic") for _, m in nnx.iter_modules(model)):
        eval_graphdef, _, _ = nnx.split(nnx.view(model, deterministic=True), nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(rest)
    impls = tuple(jax.random.key_impl(x) if _is_key(x) else None for x in leaves)
    frozen = tuple(
        np.asarray(jax.random.key_data(x)) if _is_key(x) else np.asarray(x) for x in leaves
    )
    return ModelDef(graphdef, eval_graphdef, treedef, frozen, impls), params


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> tuple[ModelDef, TrainState]:
    """Split `model` and initialise the optimiser; the state's RNG is derived from `seed`."""
    model_def, params = split_model(model)
    # float32 master parameters whatever the model was built with: bfloat16 is a compute dtype only.
    params = jax.tree.map(lambda p: p.astype(jnp.float32) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
    state = TrainState(
        params=params,
        opt_state=tx.init(params),
        step=jnp.asarray(0, jnp.int32),
        rng=jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED),  # distinct from the init key
    )
    return model_def, state


def count_params(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
