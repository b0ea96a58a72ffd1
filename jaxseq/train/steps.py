"""Pure training and evaluation steps (no jit/pmap here: `jaxseq.train.parallel` applies them).

As in flax's lm1b/wmt examples, a step returns loss *sums* and the number of target tokens; the host
divides. With data parallelism the sums are `psum`-ed over `axis_name`, so the gradient is exactly
d(total loss)/d(params) / (total tokens) whatever the split of the batch.

Profiler names: the cross-entropy runs in `jax.named_scope("loss")`, the optimiser in
`"optimizer_update"` and the whole evaluation step in `"eval"` (the models name their own parts:
"embedding", "recurrence", "attention", "mlp"). XLA keeps these in each op's metadata, which is how
`jaxseq trace summary` and XProf's op views tell the parts of a step apart.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxseq.train.state import ModelDef, TrainState

Batch = dict[str, jax.Array]  # "inputs", "targets" int32 [batch, time]; optional "weights" [batch, time]
#: Optional replacement of the token cross-entropy: (module, batch, *, train) -> (loss_sum, weight_sum),
#: float32 scalars. The step divides the summed gradient by the (psum-ed) weight sum.
LossFn = Callable[..., tuple[jax.Array, jax.Array]]

REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,
    # Save nothing: the backward pass recomputes the forward (least memory, ~1/3 more FLOPs).
    "full": jax.checkpoint_policies.nothing_saveable,
    # Keep matmul outputs, recompute the cheap elementwise gate math (a good middle for RNN cells).
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def loss_sums(
    params: Any, batch: Batch, key: jax.Array | None, *, model: ModelDef, train: bool, compute_dtype: Any = None,
    loss_fn: LossFn | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(sum of token cross-entropies, number of weighted tokens) for one batch; float32 whatever the dtype.

    With `loss_fn`, returns `loss_fn(module, batch, train=train)` (cast to float32) instead."""
    if compute_dtype is not None:
        # Compute in low precision from float32 master weights: the cast is inside the differentiated
        # function, so gradients arrive in float32.
        params = _cast_floats(params, compute_dtype)
    module = model.merge(params, train=train, key=key)
    if loss_fn is not None:
        loss, weight = loss_fn(module, batch, train=train)
        return jnp.asarray(loss, jnp.float32), jnp.asarray(weight, jnp.float32)
    logits = module(batch["inputs"])
    with jax.named_scope("loss"):
        losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["targets"])
        weights = batch.get("weights")
        if weights is None:
            return losses.sum(), jnp.asarray(losses.size, jnp.float32)
        weights = weights.astype(jnp.float32)
        return (losses * weights).sum(), weights.sum()


def _grad_sums(
    params: Any, batch: Batch, key: jax.Array, *, model: ModelDef, compute_dtype: Any, remat: str, grad_accum: int,
    loss_fn: LossFn | None = None,
) -> tuple[jax.Array, jax.Array, Any]:
    """Loss sum, token count, and gradient of the loss *sum*, accumulated over `grad_accum` micro-batches."""

    def fwd(p, b, k):
        return loss_sums(p, b, k, model=model, train=True, compute_dtype=compute_dtype, loss_fn=loss_fn)

    policy = REMAT_POLICIES[remat]
    if remat != "none":
        fwd = jax.checkpoint(fwd, policy=policy)
    grad_fn = jax.value_and_grad(fwd, has_aux=True)

    if grad_accum == 1:
        (loss, count), grads = grad_fn(params, batch, key)
        return loss, count, grads

    # Scan over micro-batches: memory of one micro-batch, the same update as the full batch.
    # Micro-batch i takes rows i, i+k, i+2k, ...: with the batch sharded over devices in contiguous
    # blocks, every device then owns an equal part of every micro-batch (no data movement).
    def split(x):
        if x.shape[0] % grad_accum:
            raise ValueError(f"batch: leading size {x.shape[0]} is not divisible by grad_accum={grad_accum}")
        return x.reshape((x.shape[0] // grad_accum, grad_accum) + x.shape[1:]).swapaxes(0, 1)

    micro = jax.tree.map(split, batch)

    def body(carry, xs):
        loss_acc, count_acc, grad_acc = carry
        i, mb = xs
        (loss, count), grads = grad_fn(params, mb, jax.random.fold_in(key, i))
        return (loss_acc + loss, count_acc + count, jax.tree.map(jnp.add, grad_acc, grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zeros)
    (loss, count, grads), _ = lax.scan(body, init, (jnp.arange(grad_accum), micro))
    return loss, count, grads


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    model: ModelDef,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule | None = None,
    compute_dtype: Any = None,
    remat: str = "none",
    grad_accum: int = 1,
    axis_name: str | None = None,
    loss_fn: LossFn | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser update. Returns the new state and metrics:
    loss_sum, token_count (divide on the host), grad_norm (of the mean-loss gradient, before clipping),
    param_norm (after the update; non-finite means the update broke the model), learning_rate.
    """
    key = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
        # Different dropout masks on each data-parallel shard.
        key = jax.random.fold_in(key, lax.axis_index(axis_name))
    loss, count, grads = _grad_sums(
        state.params, batch, key, model=model, compute_dtype=compute_dtype, remat=remat, grad_accum=grad_accum,
        loss_fn=loss_fn,
    )
    if axis_name is not None:
        loss, count, grads = lax.psum((loss, count, grads), axis_name)
    with jax.named_scope("optimizer_update"):
        grads = jax.tree.map(lambda g: g / count, grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss_sum": loss,
        "token_count": count,
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
        "learning_rate": (schedule(state.step) if schedule is not None else jnp.nan) * jnp.ones((), jnp.float32),
    }
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1, rng=state.rng)
    return new_state, metrics


def eval_step(
    params: Any, batch: Batch, *, model: ModelDef, compute_dtype: Any = None, axis_name: str | None = None,
    loss_fn: LossFn | None = None,
) -> dict[str, jax.Array]:
    """Loss sum and token count on one batch with dropout off."""
    # The outermost scope names the op in a trace: every op of an evaluation is "eval", so evaluations
    # that fall inside a profiled window are not mistaken for training work.
    with jax.named_scope("eval"):
        loss, count = loss_sums(params, batch, None, model=model, train=False, compute_dtype=compute_dtype,
                                loss_fn=loss_fn)
        if axis_name is not None:
            loss, count = lax.psum((loss, count), axis_name)
    return {"loss_sum": loss, "token_count": count}
