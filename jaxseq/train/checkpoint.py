"""Checkpoints with orbax `CheckpointManager`: the full `TrainState` plus a small JSON record.

Orbax writes each step into `N.orbax-checkpoint-tmp-*` and renames it when complete, so a save is atomic:
a process killed mid-save leaves a tmp folder that restore ignores. Those leftovers are removed on start.
The data position is the state's `step` (batches are a function of (seed, step)); the JSON record repeats
it with the config, for humans and for `jaxseq sample`.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxseq.train.state import TrainState

TMP_MARKER = ".orbax-checkpoint-tmp"


def clean_tmp_dirs(directory: str | Path) -> list[Path]:
    """Delete leftovers of interrupted saves (`*.orbax-checkpoint-tmp*`); returns what was removed."""
    directory = Path(directory)
    removed = []
    if directory.is_dir() and jax.process_index() == 0:
        for p in sorted(directory.glob(f"*{TMP_MARKER}*")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class Checkpointer:
    """Periodic atomic saves of `TrainState` under `directory` (absolute path made here)."""

    def __init__(
        self, directory: str | Path, *, max_to_keep: int = 3, async_save: bool = True, read_only: bool = False
    ) -> None:
        """`read_only=True` (e.g. sampling beside a live run) neither creates nor cleans anything: a tmp
        folder may then be a save in progress."""
        self.directory = Path(directory).resolve()
        self.removed_tmp = [] if read_only else clean_tmp_dirs(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=async_save,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )

    def restore(self, step: int, target: TrainState, sharding: Any) -> tuple[TrainState, dict[str, Any]]:
        """Restore into the structure of `target` (its arrays only give shapes/dtypes) with `sharding`."""
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), target)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return out.state, dict(out.meta)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
