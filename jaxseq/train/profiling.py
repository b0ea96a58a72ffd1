"""`--profile-steps a:b`: a `jax.profiler` trace of steps a..b-1 into the run's TensorBoard folder.

The trace starts at step a (pick a > the first step, so compilation is excluded) and stops after step
b-1. The device work is blocked on before starting and before stopping, otherwise queued steps from
outside the window leak in and the last steps of the window are cut off.

Each traced step runs inside a `StepTraceAnnotation` ("train", step_num=k), which is what XProf's
Overview and input-pipeline pages group by. The annotation must cover the *finished* step: the step
is dispatched asynchronously, and an annotation around the dispatch alone measures ~0.5 ms for a
600 ms step (and calls the program input-bound). So while tracing, the loop fetches the batch, runs
the step and blocks on its outputs (`wait`) inside the annotation; outside the window nothing blocks.
The loop wraps evaluations in a plain `TraceAnnotation("eval")`: not a train step for XProf.

Layout: the trace goes to `<logdir>/plugins/profile/<timestamp>/<host>.xplane.pb` (+ `.trace.json.gz`),
where the loop's logdir is `WORKDIR/logs/<run-name>/`, beside the run's TensorBoard scalars, so
TensorBoard lists scalars and profile under the same run name.
View: `tensorboard --logdir WORKDIR/logs --host 127.0.0.1` (Profile tab), or `jaxseq trace summary`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import jax


class StepProfiler:
    """Traces the steps of `window` = (a, b) (half-open) into `logdir`; does nothing when window is None."""

    def __init__(self, logdir: str | Path, window: tuple[int, int] | None) -> None:
        self.logdir = Path(logdir)
        self.window = window
        self.active = False
        self.done = False

    def starts_at(self, step: int) -> bool:
        """True when `step` is the first step to trace (the caller then drains its pipeline first)."""
        return (self.window is not None and not self.active and not self.done
                and self.window[0] <= step < self.window[1])

    def before_step(self, step: int, pending: Any = None) -> None:
        """Call before running `step`; `pending` is any device output to block on first."""
        if self.starts_at(step):
            jax.block_until_ready(pending)
            self.logdir.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.logdir))
            self.active = True

    def is_last(self, step: int) -> bool:
        """True when tracing and `step` is the last step of the window."""
        return self.active and step + 1 >= self.window[1]

    def stop(self, outputs: Any = None) -> None:
        """Block on `outputs` and write the trace (a no-op when not tracing)."""
        if self.active:
            jax.block_until_ready(outputs)
            jax.profiler.stop_trace()
            self.active = False
            self.done = True

    def wait(self, outputs: Any) -> None:
        """Inside `annotate`: block on the step's outputs while tracing, so the annotation spans the work."""
        if self.active:
            jax.block_until_ready(outputs)

    @contextlib.contextmanager
    def annotate(self, step: int) -> Iterator[None]:
        """The `StepTraceAnnotation` of train step `step` while tracing; call `wait(outputs)` inside."""
        if self.active:
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                yield
        else:
            yield

    @contextlib.contextmanager
    def annotate_eval(self) -> Iterator[None]:
        """Names an evaluation inside the window "eval" (host side; its device ops carry the same
        name from `eval_step`'s named scope). Not a step annotation: XProf's step time ignores it."""
        if self.active:
            with jax.profiler.TraceAnnotation("eval"):
                yield
        else:
            yield


def trace_files(logdir: str | Path) -> list[Path]:
    """The `.xplane.pb` files anywhere under `logdir` (…/plugins/profile/<time>/<host>.xplane.pb)."""
    return sorted(Path(logdir).glob("**/plugins/profile/*/*.xplane.pb"))
