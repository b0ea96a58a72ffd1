"""Training engine: pure steps over an explicit state, parallel wrappers, checkpoints, metrics, CLI.

    from jaxseq.train import TrainConfig, train
    result = train(TrainConfig(workdir="runs/lstm", model="lstm", steps=2000))

Modules: `state` (TrainState, ModelDef, split/merge), `steps` (train_step/eval_step, no jit),
`parallel` (jit/pmap/sharded/multiprocess, applied in one place), `optim`, `checkpoint` (orbax),
`metrics` (TensorBoard, MFU), `profiling`, `loop` (the resumable loop), `config`, `cli`.
Attributes are imported lazily so that `jaxseq --help` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from jaxseq import submodule_getattr

_EXPORTS = {
    "TrainConfig": "jaxseq.train.config",
    "TrainState": "jaxseq.train.state",
    "ModelDef": "jaxseq.train.state",
    "split_model": "jaxseq.train.state",
    "create_train_state": "jaxseq.train.state",
    "train_step": "jaxseq.train.steps",
    "eval_step": "jaxseq.train.steps",
    "make_parallel": "jaxseq.train.parallel",
    "make_optimizer": "jaxseq.train.optim",
    "Checkpointer": "jaxseq.train.checkpoint",
    "train": "jaxseq.train.loop",
    "load_model": "jaxseq.train.loop",
    "NonFiniteLossError": "jaxseq.train.loop",
    "RunResult": "jaxseq.train.loop",
}
__all__ = sorted(_EXPORTS)


def _export(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jaxseq.train' has no attribute {name!r}")


# Submodules (jaxseq.train.loop, ...) load on first access too; other names are the exports above.
__getattr__ = submodule_getattr(__name__, __path__, fallback=_export)
