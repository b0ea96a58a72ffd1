"""The one place where the pure steps get compiled and placed on devices, selected by name.

* ``"jit"``          – one device.
* ``"pmap"``         – data parallel over the local devices; the step `psum`s over ``axis_name="batch"``;
                       state carries a leading device axis.
* ``"sharded"``      – `jit` over a 1-D `Mesh` ("data"): batch `NamedSharding(mesh, P("data"))`, state
                       replicated `P()`; XLA inserts the gradient all-reduce. The mesh uses `AxisType.Auto`
                       (jax's default Explicit axes reject gradients of params not placed on the mesh).
* ``"multiprocess"`` – the sharded path over the *global* devices of several processes joined by
                       `jax.distributed.initialize` (gloo collectives on CPU). Every process builds the same
                       global numpy batch (batches are a function of (seed, step)) and hands over only the
                       rows its devices hold.
All four run the same arithmetic on the same global batch, so their loss curves agree (to float rounding).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxseq.train.state import TrainState

PMAP_AXIS = "batch"
MESH_AXIS = "data"


def init_distributed(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process run; must run before anything touches a jax backend."""
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(coordinator, num_processes, process_id)


@dataclass
class Parallel:
    """Compiled steps plus the placement rules of one parallel mode.

    `train_step(state, batch) -> (state, metrics)` and `eval_step(params, batch) -> metrics` take the state
    as returned by `place_state` and a global numpy batch as returned by `place_batch`.
    `trace_counts` counts traces of each step: more than one means a recompilation.
    """

    name: str
    devices: list
    train_fn: Callable  # pure (state, batch, axis_name=...) -> (state, metrics)
    eval_fn: Callable  # pure (params, batch, axis_name=...) -> metrics
    trace_counts: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})

    def __post_init__(self) -> None:
        self.train_step, self.eval_step = self._compile()

    # Hooks overridden per mode -------------------------------------------------------------
    def _compile(self) -> tuple[Callable, Callable]:
        train = jax.jit(self._counted("train", self.train_fn), donate_argnums=0)
        return train, jax.jit(self._counted("eval", self.eval_fn))

    def place_state(self, state: TrainState) -> TrainState:
        return jax.device_put(state, self.devices[0])

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        return jax.device_put(batch, self.devices[0])

    def host_state(self, state: TrainState) -> TrainState:
        """The state as one logical copy (what gets checkpointed)."""
        return state

    def restore_sharding(self) -> Any:
        """Sharding of each state leaf when restoring a checkpoint (before `place_state`)."""
        return jax.sharding.SingleDeviceSharding(self.devices[0])

    def params_of(self, state: TrainState) -> Any:
        return state.params

    def fetch(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        """Metrics to Python floats (this blocks until the step is done)."""
        return {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}

    # ---------------------------------------------------------------------------------------
    def _counted(self, which: str, fn: Callable) -> Callable:
        # Runs only while tracing: counts (re)compilations of the step.
        @functools.wraps(fn)
        def wrapped(*args):
            self.trace_counts[which] += 1
            return fn(*args)

        return wrapped

    @property
    def num_shards(self) -> int:
        return len(self.devices)


class PmapParallel(Parallel):
    def _compile(self) -> tuple[Callable, Callable]:
        train = functools.partial(self.train_fn, axis_name=PMAP_AXIS)
        evals = functools.partial(self.eval_fn, axis_name=PMAP_AXIS)
        return (
            jax.pmap(self._counted("train", train), axis_name=PMAP_AXIS, devices=self.devices, donate_argnums=0),
            jax.pmap(self._counted("eval", evals), axis_name=PMAP_AXIS, devices=self.devices),
        )

    def place_state(self, state: TrainState) -> TrainState:
        n = len(self.devices)
        stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), state)
        # Through a pmapped identity with the same axis name, so the state has exactly the sharding of the
        # step's outputs (a mesh named after the axis); otherwise the second step sees another input
        # sharding and pmap compiles again.
        return jax.pmap(lambda s: s, axis_name=PMAP_AXIS, devices=self.devices)(stacked)

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        n = len(self.devices)

        def shard(x):
            if x.shape[0] % n:
                raise ValueError(f"batch: size {x.shape[0]} is not divisible by the {n} devices of pmap")
            return x.reshape((n, x.shape[0] // n) + x.shape[1:])

        return jax.tree.map(shard, batch)

    def host_state(self, state: TrainState) -> TrainState:
        return jax.tree.map(lambda x: x[0], state)

    def params_of(self, state: TrainState) -> Any:
        return state.params  # still with the device axis: eval_step is pmapped too

    def fetch(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        # psum-ed inside the step: every device holds the same value.
        return {k: float(np.asarray(v[0])) for k, v in metrics.items()}


class ShardedParallel(Parallel):
    def __post_init__(self) -> None:
        self.mesh = Mesh(np.asarray(self.devices), (MESH_AXIS,), axis_types=(AxisType.Auto,))
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P(MESH_AXIS))
        super().__post_init__()

    def _compile(self) -> tuple[Callable, Callable]:
        train = jax.jit(
            self._counted("train", self.train_fn),
            in_shardings=(self.replicated, self.batch_sharding),
            out_shardings=(self.replicated, self.replicated),
            donate_argnums=0,
        )
        evals = jax.jit(
            self._counted("eval", self.eval_fn),
            in_shardings=(self.replicated, self.batch_sharding),
            out_shardings=self.replicated,
        )
        return train, evals

    def _global(self, x: Any, sharding: NamedSharding) -> jax.Array:
        # Works in one process and in several: each process materialises only the shards it holds.
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    def place_state(self, state: TrainState) -> TrainState:
        if all(
            isinstance(x, jax.Array) and x.sharding == self.replicated for x in jax.tree.leaves(state)
        ):
            return state
        return jax.tree.map(lambda x: self._global(x, self.replicated), state)

    def place_batch(self, batch: dict[str, np.ndarray]) -> Any:
        n = len(self.devices)
        for x in jax.tree.leaves(batch):
            if x.shape[0] % n:
                raise ValueError(f"batch: size {x.shape[0]} is not divisible by the {n} devices of the mesh")
        return jax.tree.map(lambda x: self._global(x, self.batch_sharding), batch)

    def restore_sharding(self) -> Any:
        return self.replicated

    def fetch(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        # Replicated outputs: the local copy is the value (works when the array spans processes).
        return {k: float(np.asarray(v.addressable_data(0))) for k, v in metrics.items()}


MODES: dict[str, type[Parallel]] = {
    "jit": Parallel,
    "pmap": PmapParallel,
    "sharded": ShardedParallel,
    "multiprocess": ShardedParallel,
}


def make_parallel(name: str, train_fn: Callable, eval_fn: Callable, *, devices: list | None = None) -> Parallel:
    """Compile `train_fn`/`eval_fn` for mode `name` over `devices` (default: see the module docstring)."""
    if name not in MODES:
        raise ValueError(f"parallel: expected one of {', '.join(MODES)}, got {name!r}")
    if devices is None:
        if name == "jit":
            devices = jax.local_devices()[:1]
        elif name == "multiprocess":
            devices = jax.devices()  # global: every process's devices
        else:
            devices = jax.local_devices()
    return MODES[name](name=name, devices=list(devices), train_fn=train_fn, eval_fn=eval_fn)
