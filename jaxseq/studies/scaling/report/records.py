"""Reading a study folder: `Study`, `load_study` (one machine's records), `series` and the bench ops rows."""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from jaxseq.bench.sweep import memory_label, read_jsonl, record_machine_id
from jaxseq.bench.workloads import model_label
from jaxseq.studies.base import select_machine
from jaxseq.studies.scaling.report.targets import Target


RESULTS = "results.jsonl"
BENCH_OPS = "bench_ops.jsonl"
BENCH_PHASES = "bench_phases.jsonl"
REPORT = "REPORT.md"


def study_backend(study: "Study") -> str:
    """The study's device platform ("cpu", "gpu", ...), from the records' device info."""
    for r in study.records + study.bench:
        b = (r.get("device") or {}).get("backend")
        if b:
            return b
    return "cpu"


@dataclasses.dataclass
class Study:
    """The records of one study folder, last record per point."""

    records: list[dict[str, Any]]
    bench: list[dict[str, Any]]
    # Which machine the records are from, and the other machines' records left out (None: not known,
    # e.g. a Study built by hand).
    machine: Any = None  # jaxseq.studies.base.MachineRecords
    # `jaxseq bench phases` records of the same machine, last per (shape, large-buffer setting).
    phases: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "ok" and r.get("result")]

    @property
    def single(self) -> list[dict[str, Any]]:
        """Single-device sweep points (generation points are in :attr:`generation`)."""
        return [r for r in self.ok if "devices" not in r["point"]
                and r["point"].get("mode") != "generate"]

    @property
    def generation(self) -> list[dict[str, Any]]:
        """The ``mode="generate"`` points (per-token decode, ``jaxseq.bench.generation``)."""
        return [r for r in self.ok if r["point"].get("mode") == "generate"]

    @property
    def parallel(self) -> list[dict[str, Any]]:
        return [r for r in self.ok if "devices" in r["point"]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]


def _last_per_key(recs: list[dict[str, Any]], key) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for r in recs:
        last[key(r)] = r  # dicts keep first-insertion order; the value is the last record
    return list(last.values())


def newest_bench_rows(bench: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest bench ops row per point and large-buffer setting (`bench_memory`).

    A point measured with and without huge pages is two results, since the setting moves the ratio.
    A row that does not record its setting (written before the field existed) is dropped once a
    later row of the same point records one.
    """
    point = lambda r: json.dumps(r["point"], sort_keys=True)  # noqa: E731
    last_recorded = {point(r): i for i, r in enumerate(bench) if bench_memory(r)}
    kept = [r for i, r in enumerate(bench) if bench_memory(r) or last_recorded.get(point(r), -1) < i]
    return _last_per_key(kept, lambda r: point(r) + bench_memory(r))


def load_study(folder: str | Path, machine: str | None = None, exclude: Iterable[str] = ()
               ) -> Study:
    """Read results.jsonl and bench_ops.jsonl of `folder` (either may be missing, not both).

    Only one machine's records are kept: `machine` (an id, id prefix or slug), else the machine of
    the newest record not in `exclude` (`jaxseq.studies.base.select_machine`, over both files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--in {folder}: no such folder")
    res_path, bench_path = folder / RESULTS, folder / BENCH_OPS
    if not res_path.exists() and not bench_path.exists():
        raise ValueError(f"--in {folder}: neither {RESULTS} nor {BENCH_OPS} is there "
                         f"(run `jaxseq scale --out {folder}` or `jaxseq study --out {folder}` first)")
    records = [r for r in read_jsonl(res_path) if "key" in r and isinstance(r.get("point"), dict)]
    bench = [r for r in read_jsonl(bench_path) if isinstance(r.get("point"), dict)]
    chosen = select_machine(records + bench, machine, exclude)
    records = [r for r in records if record_machine_id(r) == chosen.machine_id]
    bench = [r for r in bench if record_machine_id(r) == chosen.machine_id]
    records = _last_per_key(records, lambda r: r["key"])
    bench = newest_bench_rows(bench)
    if not records and not bench:
        raise ValueError(f"--in {folder}: the JSONL files hold no complete records"
                         + (" of another machine" if chosen.others and exclude else ""))
    phases = [r for r in read_jsonl(folder / BENCH_PHASES)
              if r.get("bench") == "phases" and record_machine_id(r) == chosen.machine_id]
    phases = _last_per_key(phases, lambda r: json.dumps(
        [r.get("batch"), r.get("seq_len"), r.get("hidden"), r.get("layers", 1), bool(r.get("bidirectional")),
         bench_memory(r)]))
    return Study(records, bench, chosen, phases)


Config = tuple  # (batch, width, dtype, mode, heads)


def _config(point: dict[str, Any]) -> Config:
    return (point.get("batch"), point.get("width"), point.get("dtype", "float32"),
            point.get("mode", "train"), point.get("heads"))


def config_label(cfg: Config) -> str:
    """A config key as the report prints it: "B=.. W=.. dtype mode" (and heads= when set)."""
    b, w, dt, mode, heads = cfg
    return f"B={b} W={w} {dt} {mode}" + (f" heads={heads}" if heads else "")


def memory_bytes(res: dict[str, Any]) -> float | None:
    """XLA temporaries for JAX; the allocator peak (GPU) or host RSS peak for torch."""
    if res.get("framework") == "jax":
        return (res.get("memory") or {}).get("temp_bytes")
    dev = (res.get("device_memory") or {}).get("peak_bytes_in_use")
    return dev if dev is not None else res.get("peak_rss_bytes")


def series(records: list[dict[str, Any]]) -> dict[Config, dict[str, list[dict[str, Any]]]]:
    """{config: {model: [records sorted by seq_len]}} for single-device ok records."""
    out: dict[Config, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        out[_config(r["point"])][model_label(r["point"])].append(r)
    for models in out.values():
        for m in models:
            models[m].sort(key=lambda r: r["point"]["seq_len"])
    return {c: dict(m) for c, m in out.items()}


def median_times(recs: list[dict[str, Any]]) -> dict[int, float]:
    """{seq_len: median seconds} of one model's records (a `series` entry)."""
    return {r["point"]["seq_len"]: r["result"]["median_s"] for r in recs}


def order_configs(ser: dict[Config, dict[str, list]]) -> list[Config]:
    """The series' configs in report order: most points first (the study's main grid), then by key."""
    return sorted(ser, key=lambda c: (-sum(len(v) for v in ser[c].values()), str(c)))


def bench_memory(rec: dict[str, Any]) -> str:
    """The record's large-buffer setting (`jaxseq.bench.sweep.memory_info`), "" where not recorded."""
    label = memory_label(rec.get("memory"))
    return "" if label == "not recorded" else label


def bench_memories(study: Study) -> list[str]:
    """The large-buffer settings of the bench ops rows, newest last ("" = not recorded)."""
    seen: dict[str, None] = {}
    for rec in study.bench:
        seen.pop(bench_memory(rec), None)
        seen[bench_memory(rec)] = None
    return list(seen) or [""]


def paired_ratio(rec: dict | None) -> dict | None:
    """The paired rounds' ratio stored in a bench ops record (`jaxseq bench ops --pairs`), or None.

    The record holds its run's anchor times as well, so it needs no other record."""
    p = (rec or {}).get("paired")
    return p if isinstance(p, dict) and p.get("median") else None


def bench_tps(study: Study, target: Target, model: str,
               memory: str | None = None) -> tuple[float | None, dict | None]:
    """The newest ok bench ops record of `model` at the target's settings (with `memory`: only
    records measured under that large-buffer setting, see `bench_memory`)."""
    for rec in reversed(study.bench):
        if memory is not None and bench_memory(rec) != memory:
            continue
        if rec.get("status") == "ok" and target.matches(rec["point"], model):
            return (rec.get("result") or {}).get("tokens_per_s"), rec
    return None, None
