"""`--profile-steps a:b`: a `jax.profiler` trace of steps a..b-1 into the run's logdir.

The trace starts at step a (pick a > the first step, so compilation is excluded) and stops after step
b-1. The device work is blocked on before starting and before stopping, otherwise queued steps from
outside the window leak in and the last steps of the window are cut off. Each step runs inside a
`StepTraceAnnotation`, which is what the profiler's step-time views group by.
View: `tensorboard --logdir LOGDIR --host 127.0.0.1` (tensorboard-plugin-profile), or xprof.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import jax


class StepProfiler:
    def __init__(self, logdir: str | Path, window: tuple[int, int] | None) -> None:
        self.logdir = Path(logdir)
        self.window = window
        self.active = False
        self.done = False

    def before_step(self, step: int, pending: Any = None) -> None:
        """Call before dispatching `step`; `pending` is any device output to block on first."""
        if self.window is None or self.active or self.done:
            return
        if self.window[0] <= step < self.window[1]:
            jax.block_until_ready(pending)
            self.logdir.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.logdir))
            self.active = True

    def after_step(self, step: int, outputs: Any) -> None:
        """Call after dispatching `step`: stops (after blocking on `outputs`) at the window's last step."""
        if self.active and step + 1 >= self.window[1]:
            self.stop(outputs)

    def stop(self, outputs: Any = None) -> None:
        if self.active:
            jax.block_until_ready(outputs)
            jax.profiler.stop_trace()
            self.active = False
            self.done = True

    @contextlib.contextmanager
    def annotate(self, step: int) -> Iterator[None]:
        if self.active:
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                yield
        else:
            yield


def trace_files(logdir: str | Path) -> list[Path]:
    """The `.xplane.pb` files written under `logdir` (logdir/plugins/profile/<time>/<host>.xplane.pb)."""
    return sorted(Path(logdir).glob("plugins/profile/*/*.xplane.pb"))
