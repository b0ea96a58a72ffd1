"""A resumable benchmark sweep: one JSON line per point, finished points skipped on rerun.

Each point is a dict of parameters; its key is the canonical JSON of that dict. Results are appended to
a JSONL file (flushed and fsynced, so a killed sweep loses at most the point it was running) as

    {"key", "status": "ok"|"oom"|"timeout"|"error", "message", "point": {...}, "result": {...},
     "elapsed_s", "timestamp", "load", "versions": {...}, "device": {...},
     "fingerprint": {...}, "machine_id"}

Results belong to a machine. `machine_fingerprint()` describes the kind of machine a process measures
on (backend, device kind and count, CPU model and cores, jax/jaxlib and the backend's platform
version; never the hostname: two CI runners of one kind are one machine), `machine_id` hashes it and
`machine_slug` names a folder after it (`profiles/<slug>/`). Every record carries both, and the
resume compares (machine id, key): a file holding another machine's points does not make this
machine skip them. Records written before fingerprints existed get one derived from their `device`
and `versions` fields (`record_fingerprint`, marked `legacy`): they read fine, and no live machine
ever resumes from them.

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
import functools
import hashlib
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

__all__ = ["STATUSES", "Sweep", "point_key", "classify_exception", "environment_info",
           "load_records", "read_jsonl", "append_jsonl", "FINGERPRINT_FIELDS", "machine_fingerprint",
           "machine_id", "machine_slug", "machine_label", "machine_fields", "record_fingerprint",
           "record_machine_id", "machine_folder", "PROFILES_ROOT", "memory_info", "memory_label",
           "huge_pages_on"]

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


# ----------------------------------------------------------------------------------------------
# machines

# The fields that identify a machine (machine_id hashes exactly these). Not the hostname, the Python
# or torch version, nor XLA_FLAGS: those are recorded beside every result, but a CI runner with
# another hostname is the same machine, and XLA_FLAGS are a per-run choice.
FINGERPRINT_FIELDS = ("backend", "device_kind", "device_count", "cpu_model", "cpu_count", "jax",
                      "jaxlib", "platform_version")
PROFILES_ROOT = "profiles"  # default results root: PROFILES_ROOT/<machine_slug>/...
_FINGERPRINT: dict[str, Any] | None = None


def _cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, else `platform.processor()`), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        info = ""
    # x86: "model name"; ARM boards: "Hardware" or "Model" (per-core "CPU part" numbers say little).
    for field in ("model name", "Hardware", "Model"):
        m = re.search(rf"^{field}\s*:\s*(.+)$", info, re.MULTILINE)
        if m and m.group(1).strip():
            return " ".join(m.group(1).split())
    return platform.processor() or platform.machine() or None


def _cpu_count() -> int | None:
    # The cores this process may run on (a container's cpuset), which is what the timings get.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine_fingerprint(*, refresh: bool = False) -> dict[str, Any]:
    """What identifies the kind of machine this process measures on (cached per process).

    Keys are `FINGERPRINT_FIELDS`. On the CPU backend `device_count` is 1: jax's CPU device count is a
    process setting (`--xla_force_host_platform_device_count`), not a property of the machine.
    """
    global _FINGERPRINT
    if _FINGERPRINT is None or refresh:
        versions = _versions()
        fp: dict[str, Any] = {"backend": None, "device_kind": None, "device_count": None,
                              "cpu_model": _cpu_model(), "cpu_count": _cpu_count(),
                              "jax": versions.get("jax"), "jaxlib": versions.get("jaxlib"),
                              "platform_version": None}
        try:
            import jax

            devices = jax.devices()
            backend = jax.default_backend()
            fp.update(backend=backend, device_kind=devices[0].device_kind,
                      device_count=1 if backend == "cpu" else len(devices))
            pv = getattr(devices[0].client, "platform_version", None)
            fp["platform_version"] = " ".join(str(pv).split())[:160] if pv else None
        except Exception:  # jax missing or no backend: the machine is still described by its CPU
            pass
        _FINGERPRINT = fp
    return dict(_FINGERPRINT)


def machine_id(fp: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint's identifying fields (12 hex digits).

    A derived (legacy) fingerprint hashes differently from any live one, even with equal fields.
    """
    ident: dict[str, Any] = {k: fp.get(k) for k in FINGERPRINT_FIELDS}
    if fp.get("legacy"):
        ident["legacy"] = True
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _slug(text: str, limit: int = 40) -> str:
    text = re.sub(r"\((r|tm|c)\)", " ", text.lower())
    text = re.sub(r"@.*$", " ", text)  # "@ 2.90GHz": the nominal clock says little and varies
    text = re.sub(r"\b(cpu|processor)\b", " ", text)
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    while len(text) > limit and "-" in text:
        text = text.rsplit("-", 1)[0]
    return text[:limit]


def machine_slug(fp: dict[str, Any]) -> str:
    """A readable folder name for a machine: `cpu-<model>-<N>core` or `<backend>-<device>x<N>`.

    E.g. `cpu-intel-xeon-2core`, `cpu-amd-epyc-7763-64-core-16core`, `gpu-nvidia-h200x1`. Versions are
    not in it (they are in `machine_id`): a jax upgrade measures again into the same folder.
    """
    backend = fp.get("backend") or "unknown"
    if backend == "cpu" or fp.get("device_kind") in (None, "cpu"):
        model = _slug(fp.get("cpu_model") or "")
        cores = fp.get("cpu_count")
        return "-".join(x for x in ("cpu", model, f"{cores}core" if cores else "") if x)
    kind = _slug(str(fp.get("device_kind")))
    return f"{backend}-{kind or 'device'}x{fp.get('device_count') or 1}"


def machine_label(fp: dict[str, Any]) -> str:
    """One line for reports: device, CPU, versions, and whether the fingerprint was derived."""
    if (fp.get("backend") or "cpu") == "cpu":
        dev = f"CPU {fp.get('cpu_model') or '(model not recorded)'}"
    else:
        dev = f"{fp.get('device_count') or '?'} x {fp.get('device_kind')} ({fp.get('backend')})"
        if fp.get("cpu_model"):
            dev += f", host CPU {fp['cpu_model']}"
    text = f"{dev}, {fp.get('cpu_count') or '?'} cores, jax {fp.get('jax') or '?'}"
    if fp.get("legacy"):
        text += " (legacy records: fingerprint derived from them)"
    return text


def machine_fields(fp: dict[str, Any] | None = None) -> dict[str, Any]:
    """`{"fingerprint": fp, "machine_id": id}` to merge into a record (fp: this machine's)."""
    fp = machine_fingerprint() if fp is None else dict(fp)
    return {"fingerprint": fp, "machine_id": machine_id(fp)}


def record_fingerprint(rec: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint a record carries, or one derived from its `device`/`versions` fields.

    A derived fingerprint has `legacy: True`, no CPU model and no platform version; fake CPU device
    counts (device-count sweep points) count as one device, as in `machine_fingerprint`.
    """
    fp = rec.get("fingerprint")
    if isinstance(fp, dict):
        return fp
    dev = rec.get("device") if isinstance(rec.get("device"), dict) else {}
    ver = rec.get("versions") if isinstance(rec.get("versions"), dict) else {}
    backend = dev.get("backend")
    return {"backend": backend, "device_kind": dev.get("device_kind"),
            "device_count": 1 if backend == "cpu" else dev.get("device_count"),
            "cpu_model": None, "cpu_count": dev.get("cpu_count"), "jax": ver.get("jax"),
            "jaxlib": ver.get("jaxlib"), "platform_version": None, "legacy": True}


def record_machine_id(rec: dict[str, Any]) -> str:
    """The machine id of a record (its own, or that of its derived fingerprint)."""
    mid = rec.get("machine_id")
    if isinstance(mid, str) and isinstance(rec.get("fingerprint"), dict):
        return mid
    return machine_id(record_fingerprint(rec))


def machine_folder(*parts: str, fp: dict[str, Any] | None = None,
                   root: str | os.PathLike = PROFILES_ROOT) -> Path:
    """`root/<machine_slug>/<parts...>`: where this machine's results go by default."""
    fp = machine_fingerprint() if fp is None else fp
    return Path(root, machine_slug(fp), *[p for p in parts if p])


_THP_PATH = "/sys/kernel/mm/transparent_hugepage/enabled"


def memory_info(thp_path: str | os.PathLike = _THP_PATH) -> dict[str, Any]:
    """How this process gets its large buffers: the kernel's transparent-huge-page mode and glibc's
    malloc huge-page tunable.

    Why it is recorded: on the CPU every jitted step allocates its large temporaries afresh, and
    with 4 KiB pages the first write to each page faults. On the 2-core EPYC (THP ``madvise``) a
    fresh 128 MB array took 31-34 ms to fill and 3-5 ms with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``
    (2026-12-04), and the setting moved the one-layer LSTM's ratio to torch from 1.1-1.2x to 0.8x,
    since torch's step gains more. The `jaxseq` command sets it (``jaxseq.cli.hugepage_env``) unless
    ``JAXSEQ_HUGEPAGES=0``; a script started with plain ``python`` does not get it.

    Returns ``{"transparent_hugepage": "always" | "madvise" | "never" | None, "malloc_hugetlb":
    str | None}``: the selected THP mode (None where the file is missing) and the value of
    ``glibc.malloc.hugetlb`` in ``GLIBC_TUNABLES`` (None where unset; "1" = madvise THP for malloc).
    """
    try:
        text = Path(thp_path).read_text()
        m = re.search(r"\[(\w+)\]", text)
        thp = m.group(1) if m else (text.strip() or None)
    except OSError:
        thp = None
    m = re.search(r"glibc\.malloc\.hugetlb=([^:]*)", os.environ.get("GLIBC_TUNABLES") or "")
    return {"transparent_hugepage": thp, "malloc_hugetlb": m.group(1) if m else None}


def _malloc_hugetlb_on(mem: dict[str, Any]) -> bool:
    return mem.get("malloc_hugetlb") not in (None, "", "0")


def huge_pages_on(mem: dict[str, Any]) -> bool:
    """Whether malloc'd buffers get huge pages under a `memory_info` setting: THP "always", or glibc's
    hugetlb tunable on."""
    return mem.get("transparent_hugepage") == "always" or _malloc_hugetlb_on(mem)


def memory_label(mem: dict[str, Any] | None) -> str:
    """Short text for reports: "THP always", "THP madvise + malloc hugetlb=1", or "not recorded"."""
    if not isinstance(mem, dict) or not (mem.get("transparent_hugepage") or mem.get("malloc_hugetlb")):
        return "not recorded"
    text = f"THP {mem.get('transparent_hugepage') or '?'}"
    if _malloc_hugetlb_on(mem):
        text += f" + malloc hugetlb={mem['malloc_hugetlb']}"
    return text


_REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit of the jaxseq checkout this process runs (short hash, `+dirty` when its code under
    jaxseq/ has uncommitted changes), or None outside a git checkout: which code measured a record."""
    try:
        head = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "--short=7", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no", "--", "jaxseq"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment_info() -> dict[str, Any]:
    """Versions, device, machine fingerprint, commit, load and a UTC timestamp: what every record carries."""
    return {
        "commit": source_commit(),
        "versions": _versions(),
        "device": _device_info(),
        **machine_fields(),
        "load": _load(),
        # XLA_FLAGS change the compiled program (command buffers, autotuning): keep them with it.
        "xla_flags": os.environ.get("XLA_FLAGS") or None,
        "memory": memory_info(),
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


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsynced (a killed run loses at most the line it wrote).

    A last line cut short by a killed run has no newline: the record starts on a fresh line instead
    of being glued onto it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=_json_default) + "\n"
    if path.exists() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
    with path.open("a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


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

    Points this machine already recorded in the file (any status) are skipped; pass
    `retry=("error",)` to run failed ones again (their new record is appended; readers keep the last
    record of a key). Records of other machines (another `machine_id`, legacy ones included) are
    ignored by the resume: this machine runs those points itself. `machine` overrides the fingerprint
    (default: `machine_fingerprint()` of this process, also for points run in workers, whose fake
    CPU device counts must not split one machine in several).
    """

    def __init__(self, path: str | os.PathLike, points: Iterable[dict[str, Any]],
                 run_point: Callable[[dict[str, Any]], dict[str, Any] | None], *,
                 per_point_timeout_s: float | None = None,
                 env_for: Callable[[dict[str, Any]], dict[str, str] | None] | None = None,
                 fresh_process: bool = False, retry: Iterable[str] = (), progress: bool = True,
                 desc: str = "sweep", machine: dict[str, Any] | None = None):
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
        self.machine = machine_fields(machine)
        self._workers: dict[str, _Worker] = {}

    @property
    def machine_id(self) -> str:
        return self.machine["machine_id"]

    def done_keys(self) -> set[str]:
        """Keys whose last record of this machine makes them finished (not in `retry`)."""
        last: dict[str, str] = {}
        for rec in load_records(self.path):
            if record_machine_id(rec) == self.machine_id:
                last[rec["key"]] = rec.get("status", "error")
        return {k for k, s in last.items() if s not in self.retry}

    def foreign_records(self) -> dict[str, int]:
        """{machine id: record count} of the other machines' records in the file (resume ignores them)."""
        counts: dict[str, int] = {}
        for rec in load_records(self.path):
            mid = record_machine_id(rec)
            if mid != self.machine_id:
                counts[mid] = counts.get(mid, 0) + 1
        return counts

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
        append_jsonl(self.path, record)

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
                    # The sweep's machine, not the worker's view of it (fake device counts).
                    **self.machine,
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
