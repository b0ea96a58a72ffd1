"""A resumable benchmark sweep: one JSON line per point, finished points skipped on rerun.

Each point is a dict of parameters; its key is the canonical JSON of that dict. Results are appended to
a JSONL file (flushed and fsynced, so a killed sweep loses at most the point it was running) as

    {"key", "status": "ok"|"oom"|"timeout"|"error", "message", "point": {...}, "result": {...},
     "elapsed_s", "timestamp", "load", "versions": {...}, "device": {...}}

Isolation. Without a timeout and without a per-point environment, points run in this process. With
`per_point_timeout_s` (or `env_for`), points run in a worker process started with multiprocessing
"spawn": the worker imports jax once and runs points one after another (the first message it sends is a
handshake, so start-up time never counts against a point). A point that passes its limit gets its
worker killed and is recorded as "timeout"; a worker that dies by itself is recorded as "oom" when it was
SIGKILLed (the kernel's OOM killer) and "error" otherwise; the next point gets a fresh worker. Points
whose `env_for(point)` differs (e.g. XLA_FLAGS with a fake device count, which must be set before jax is
imported) get separate workers. `fresh_process=True` starts a worker per point (clean memory
high-water marks, e.g. GPU `peak_bytes_in_use`).

`run_point` must be importable by the worker (a module-level function) when a worker is used.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

__all__ = ["STATUSES", "Sweep", "point_key", "classify_exception", "environment_info",
           "load_records"]

STATUSES = ("ok", "oom", "timeout", "error")
_STARTUP_TIMEOUT_S = 300.0  # a worker importing jax on a loaded 2-core machine can take a while
_MESSAGE_LIMIT = 2000


def point_key(point: dict[str, Any]) -> str:
    """Canonical JSON of a point's parameters: equal dicts give equal keys whatever the order."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"), default=str)


def classify_exception(exc: BaseException) -> str:
    """'oom' for out-of-memory errors of Python, XLA (RESOURCE_EXHAUSTED) and torch; else 'error'."""
    if isinstance(exc, MemoryError):
        return "oom"
    name = type(exc).__name__
    text = str(exc)
    if name == "OutOfMemoryError":  # torch.OutOfMemoryError / torch.cuda.OutOfMemoryError
        return "oom"
    markers = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM when allocating")
    if any(m in text for m in markers):
        return "oom"
    return "error"


def _describe_exception(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    head = f"{type(exc).__name__}: {exc}"
    tail = "".join(tb[-3:])
    msg = head if len(head) > _MESSAGE_LIMIT // 2 else head + "\n" + tail
    return msg[:_MESSAGE_LIMIT]


_VERSIONS: dict[str, str | None] | None = None


def _versions() -> dict[str, str | None]:
    # importlib.metadata: no need to import torch (slow) just to learn its version.
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = {"python": platform.python_version()}
        for pkg in ("jax", "jaxlib", "flax", "torch"):
            try:
                _VERSIONS[pkg] = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                _VERSIONS[pkg] = None
    return dict(_VERSIONS)


def _device_info() -> dict[str, Any]:
    try:
        import jax

        devices = jax.devices()
        return {
            "backend": jax.default_backend(),
            "device_kind": devices[0].device_kind,
            "device_count": len(devices),
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
        }
    except Exception as e:  # jax missing or no backend: still record what we can
        return {"backend": None, "error": str(e)[:200], "host": platform.node(),
                "cpu_count": os.cpu_count()}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def environment_info() -> dict[str, Any]:
    """Versions, device, machine load and a UTC timestamp: what every record carries."""
    return {
        "versions": _versions(),
        "device": _device_info(),
        "load": _load(),
        # XLA_FLAGS change the compiled program (command buffers, autotuning): keep them with it.
        "xla_flags": os.environ.get("XLA_FLAGS") or None,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete JSON object of a JSONL file; [] when it is missing.

    A line cut short by a killed run, or one that is not an object, is skipped: appending one line
    per result is what makes the files resumable, so a torn last line must not stop a rerun.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete sweep records (those with a ``key``) of a JSONL file."""
    return [rec for rec in read_jsonl(path) if "key" in rec]


def _short(point: dict[str, Any], limit: int = 70) -> str:
    text = " ".join(f"{k}={v}" for k, v in point.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def _patched_environ(env: dict[str, str] | None) -> Iterator[None]:
    # A spawned child copies os.environ at start, so set the variables only around Process.start().
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_guarded(run_point: Callable, point: dict[str, Any]) -> tuple[str, Any, str | None]:
    try:
        result = run_point(point)
    except Exception as exc:  # MemoryError included; KeyboardInterrupt is left to stop the sweep
        return classify_exception(exc), None, _describe_exception(exc)
    if result is not None and not isinstance(result, dict):
        result = {"value": result}
    return "ok", result, None


def _worker_main(conn: Any, run_point: Callable) -> None:
    """Worker loop: handshake, then run each point received until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn.send(("hello", environment_info()))
    while True:
        try:
            point = conn.recv()
        except EOFError:
            return
        if point is None:
            return
        status, result, message = _run_guarded(run_point, point)
        info = environment_info()
        try:
            conn.send((status, result, message, info))
        except Exception as exc:  # a result that does not pickle
            conn.send(("error", None, f"result not transferable: {exc}", info))


class _Worker:
    """One spawned worker process and the pipe to it."""

    def __init__(self, run_point: Callable, env: dict[str, str] | None):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        with _patched_environ(env):
            self.proc = ctx.Process(target=_worker_main, args=(child, run_point), daemon=True)
            self.proc.start()
        child.close()
        self.info: dict[str, Any] = {}
        if not self.conn.poll(_STARTUP_TIMEOUT_S):
            self.close()
            raise RuntimeError("benchmark worker did not start")
        try:
            _, self.info = self.conn.recv()
        except EOFError:
            code = self._reap()
            raise RuntimeError(f"benchmark worker died at start (exit code {code})") from None

    def _reap(self, grace: float = 5.0) -> int | None:
        self.proc.join(grace)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        return self.proc.exitcode

    def run(self, point: dict[str, Any], timeout: float | None) -> tuple[str, Any, str | None, dict]:
        """Run one point; on timeout or death the worker is finished and must not be reused."""
        self.conn.send(point)
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass  # the worker died mid-point: fall through to its exit code
            code = self._reap()
            if code == -signal.SIGKILL:
                return "oom", None, "worker killed by SIGKILL (likely the kernel's OOM killer)", {}
            return "error", None, f"worker died with exit code {code}", {}
        self.proc.kill()
        self.proc.join()
        return "timeout", None, f"point exceeded {timeout} s and was killed", {}

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._reap(grace=2.0)
        self.conn.close()


class Sweep:
    """Run `run_point(point) -> dict` over `points`, appending one record per point to `path`.

    Points already in the file (any status) are skipped; pass `retry=("error",)` to run failed ones
    again (their new record is appended; readers keep the last record of a key).
    """

    def __init__(self, path: str | os.PathLike, points: Iterable[dict[str, Any]],
                 run_point: Callable[[dict[str, Any]], dict[str, Any] | None], *,
                 per_point_timeout_s: float | None = None,
                 env_for: Callable[[dict[str, Any]], dict[str, str] | None] | None = None,
                 fresh_process: bool = False, retry: Iterable[str] = (), progress: bool = True,
                 desc: str = "sweep"):
        self.path = Path(path)
        self.points = list(points)
        keys = [point_key(p) for p in self.points]
        if len(set(keys)) != len(keys):
            raise ValueError("points contains duplicates (equal parameter dicts)")
        self.run_point = run_point
        self.timeout = per_point_timeout_s
        self.env_for = env_for
        self.fresh_process = fresh_process
        self.retry = set(retry)
        bad = self.retry - set(STATUSES)
        if bad:
            raise ValueError(f"retry must hold statuses from {STATUSES}, got {sorted(bad)}")
        self.progress = progress
        self.desc = desc
        self._workers: dict[str, _Worker] = {}

    def done_keys(self) -> set[str]:
        """Keys whose last record makes them finished (not in `retry`)."""
        last: dict[str, str] = {}
        for rec in load_records(self.path):
            last[rec["key"]] = rec.get("status", "error")
        return {k for k, s in last.items() if s not in self.retry}

    def pending(self) -> list[dict[str, Any]]:
        """Points still to run, in the given order."""
        done = self.done_keys()
        return [p for p in self.points if point_key(p) not in done]

    def _use_worker(self, env: dict[str, str] | None) -> bool:
        return self.timeout is not None or env is not None or self.fresh_process

    def _execute(self, point: dict[str, Any]) -> tuple[str, Any, str | None, dict]:
        env = self.env_for(point) if self.env_for else None
        if not self._use_worker(env):
            status, result, message = _run_guarded(self.run_point, point)
            return status, result, message, environment_info()
        env_key = json.dumps(env or {}, sort_keys=True)
        worker = self._workers.get(env_key)
        if worker is None or not worker.alive:
            try:
                worker = self._workers[env_key] = _Worker(self.run_point, env)
            except RuntimeError as exc:
                return "error", None, str(exc), {}
        status, result, message, info = worker.run(point, self.timeout)
        if not info:  # the worker died or was killed: describe the machine it ran on
            info = {**environment_info(), "device": worker.info.get("device")}
        if status == "timeout" or not worker.alive or self.fresh_process:
            worker.close()
            self._workers.pop(env_key, None)
        return status, result, message, info

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=_json_default) + "\n"
        # A line cut short by a killed run has no newline: start on a fresh line, do not glue onto it.
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        with self.path.open("a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Stop all workers."""
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def run(self) -> list[dict[str, Any]]:
        """Run the pending points; return the records written by this call."""
        todo = self.pending()
        written: list[dict[str, Any]] = []
        bar = None
        if self.progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=self.desc, unit="pt", file=sys.stderr,
                       dynamic_ncols=True)
        current = None
        try:
            for point in todo:
                current = point
                if bar is not None:
                    bar.set_postfix_str(_short(point), refresh=True)
                t0 = time.perf_counter()
                status, result, message, info = self._execute(point)
                record = {
                    "key": point_key(point),
                    "status": status,
                    "message": message,
                    "point": point,
                    "result": result,
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                    **info,
                }
                self._append(record)
                written.append(record)
                if bar is not None:
                    if status != "ok":
                        first = (message or "").splitlines()[0][:120] if message else ""
                        bar.write(f"[{status}] {_short(point)} {first}")
                    bar.update(1)
                current = None
        except BaseException:
            # Ctrl-C or SIGTERM (an overall time limit): the running point is not recorded, so a
            # rerun runs it again; say which it was. `finally` stops the workers (frees the device).
            if current is not None:
                print(f"sweep stopped while running: {point_key(current)}", file=sys.stderr)
            raise
        finally:
            if bar is not None:
                bar.close()
            self.close()
        return written


def _json_default(obj: Any) -> Any:
    # numpy scalars / arrays and other odd values that slip into results.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
