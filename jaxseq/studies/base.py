"""The machine-aware part of the study contract, shared by every study.

A result belongs to the machine that measured it. Each study therefore

- writes by default into this machine's folder, `profiles/<machine_slug>/<study folder>/[<preset>/]`
  (`default_out`, `resolve_out`): the one rule for every result, the committed ones included;
- appends records that carry the machine's fingerprint and id (`append_record`, or
  `jaxseq.bench.sweep.environment_info` / `Sweep`, which add them too);
- resumes only its own machine's records (`own_records`, `is_this_machine`): a folder holding
  another machine's points makes this machine run them, never skip them;
- reports on one machine at a time (`select_machine`: the newest machine in the folder, or the one
  asked for), says which one and what it left out (`MachineRecords.note`), and puts the same study's
  folders of the other machines beside it (`reference_folders`, `reference_records`).

Records written before fingerprints existed (some committed folders: `cpu-2core`,
`gpu-nvidia-h200x1`) read fine: they get a fingerprint derived from their `device`/`versions` fields,
marked legacy, so they serve as references and no live machine ever resumes from them.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from jaxseq.bench.sweep import (PROFILES_ROOT, append_jsonl, machine_fields, machine_fingerprint,
                                machine_folder, machine_id, machine_label, machine_slug, read_jsonl,
                                record_fingerprint, record_machine_id, source_commit)

__all__ = ["Study", "PROFILES_ROOT", "REPO_PROFILES", "default_out", "resolve_out", "append_record",
           "is_this_machine", "own_records", "by_machine", "newest_machine", "MachineRecords",
           "select_machine", "study_root", "folder_name", "reference_folders", "reference_records",
           "this_machine_id"]


@runtime_checkable
class Study(Protocol):
    """The contract every registered study module keeps (`jaxseq.studies.STUDIES`; the contract test checks
    each one, signatures included).

    - `PRESETS`: preset name -> its settings; every study has `smoke`, a run of seconds for the tests.
    - `run_preset(preset, out=None) -> Path`: measure the preset into `out` (default this machine's
      `profiles/<machine>/<study>/[<preset>/]`), resuming what this machine finished, then write the
      report; returns the report's path.
    - `write_folder_report(out, *, plots=True) -> Path`: the report of a results folder from its records
      alone (what `jaxseq.studies.results.regenerate` calls).
    - `add_parser(subparsers)`: the study's `jaxseq` subcommands.
    """

    PRESETS: Mapping[str, Any]

    def run_preset(self, preset: str, out: str | os.PathLike | None = None) -> Path: ...

    def write_folder_report(self, out: str | os.PathLike, *, plots: bool = True) -> Path: ...

    def add_parser(self, subparsers: Any) -> None: ...


# The repository's committed profiles/ (present in a source checkout; absent in an installed wheel).
REPO_PROFILES = Path(__file__).resolve().parents[2] / PROFILES_ROOT


def this_machine_id(fp: dict[str, Any] | None = None) -> str:
    """The id of `fp` (default: this process's machine)."""
    return machine_id(machine_fingerprint() if fp is None else fp)


def default_out(*parts: str, fp: dict[str, Any] | None = None,
                root: str | os.PathLike = PROFILES_ROOT) -> Path:
    """`profiles/<machine_slug>/<parts...>`: this machine's default output folder for a study."""
    return machine_folder(*parts, fp=fp, root=root)


def resolve_out(out: str | os.PathLike | None, *parts: str, fp: dict[str, Any] | None = None) -> Path:
    """An explicit `--out` as given, else `default_out(*parts)`."""
    return Path(out) if out else default_out(*parts, fp=fp)


def append_record(path: str | os.PathLike, record: dict[str, Any], *,
                  fp: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append `record` with this machine's fingerprint and id (unless it has them) and the source
    commit; return it."""
    if not isinstance(record.get("fingerprint"), dict):
        record = {**record, **machine_fields(fp)}
    if "commit" not in record:
        record = {**record, "commit": source_commit()}
    append_jsonl(path, record)
    return record


def is_this_machine(rec: dict[str, Any], fp: dict[str, Any] | None = None) -> bool:
    """True when `rec` was written on this machine (`fp`, default this process's)."""
    return record_machine_id(rec) == this_machine_id(fp)


def own_records(records: Iterable[dict[str, Any]], fp: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
    """The records of this machine: what a resume may skip."""
    mid = this_machine_id(fp)
    return [r for r in records if record_machine_id(r) == mid]


def by_machine(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{machine id: its records}, machines in order of first appearance."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(record_machine_id(r), []).append(r)
    return out


def newest_machine(records: Sequence[dict[str, Any]], exclude: Iterable[str] = ()) -> str | None:
    """The machine with the latest record (by `timestamp`; without timestamps, the last in the file).

    Machines in `exclude` are passed over; None when no other machine is left.
    """
    skip = set(exclude)
    best: tuple[str, int] | None = None
    best_id = None
    for i, r in enumerate(records):
        mid = record_machine_id(r)
        if mid in skip:
            continue
        # ISO timestamps in UTC sort as text; a record without one counts as older than any with one.
        key = (str(r.get("timestamp") or ""), i)
        if best is None or key >= best:
            best, best_id = key, mid
    return best_id


@dataclasses.dataclass
class MachineRecords:
    """The records of one machine out of a folder's records, and what was left out."""

    machine_id: str | None
    fingerprint: dict[str, Any] | None
    records: list[dict[str, Any]]
    others: dict[str, tuple[dict[str, Any], int]]  # other machine id -> (fingerprint, record count)

    @property
    def slug(self) -> str | None:
        return machine_slug(self.fingerprint) if self.fingerprint else None

    @property
    def label(self) -> str:
        return machine_label(self.fingerprint) if self.fingerprint else "no records"

    @property
    def legacy(self) -> bool:
        return bool(self.fingerprint and self.fingerprint.get("legacy"))

    def note(self) -> str:
        """One sentence: which machine the numbers are from, and which records were left out."""
        text = (f"Machine: {self.label} (`{self.slug}`, id `{self.machine_id}`); "
                f"{len(self.records)} records.")
        if self.others:
            parts = [f"{n} of `{machine_slug(fp)}` (id `{mid}`{', legacy' if fp.get('legacy') else ''})"
                     for mid, (fp, n) in self.others.items()]
            text += (" Records of other machines in this folder are left out (one machine per "
                     "report; `--machine ID` picks another): " + ", ".join(parts) + ".")
        return text


def select_machine(records: Sequence[dict[str, Any]], machine: str | None = None,
                   exclude: Iterable[str] = ()) -> MachineRecords:
    """The records of one machine: `machine` (an id, an id prefix or a slug) or else the newest.

    ValueError naming the machines present when `machine` matches none of them, or several.
    """
    groups = by_machine(records)
    fps = {mid: record_fingerprint(recs[0]) for mid, recs in groups.items()}
    if machine:
        hits = [mid for mid in groups if mid.startswith(machine) or machine_slug(fps[mid]) == machine]
        if len(hits) != 1:
            known = ", ".join(f"{mid} ({machine_slug(fps[mid])})" for mid in groups) or "none"
            what = "matches none" if not hits else "matches several"
            raise ValueError(f"--machine {machine!r} {what} of the machines in these records: {known}")
        chosen: str | None = hits[0]
    else:
        chosen = newest_machine(records, exclude)
    if chosen is None:
        return MachineRecords(None, None, [], {m: (fps[m], len(g)) for m, g in groups.items()})
    return MachineRecords(chosen, fps[chosen], groups[chosen],
                          {m: (fps[m], len(g)) for m, g in groups.items() if m != chosen})


def study_root(folder: str | os.PathLike, study_folder: str) -> tuple[Path, Path, Path] | None:
    """`folder` split by the results rule: (profiles root, machine folder, path below the study's
    folder), e.g. `profiles/cpu-2core/longrange/full` -> (`profiles`, `profiles/cpu-2core`, `full`);
    None when `folder` does not follow `.../profiles/<machine>/<study_folder>[/...]`."""
    folder = Path(folder).resolve()
    for study_dir in (folder, *folder.parents):
        if study_dir.name == study_folder and study_dir.parent.parent.name == PROFILES_ROOT:
            machine = study_dir.parent
            return machine.parent, machine, folder.relative_to(study_dir)
    return None


def folder_name(folder: str | os.PathLike, study_folder: str) -> str:
    """How reports name a results folder: `<machine>/<study_folder>[/<preset>]` by the results rule (the
    same on every checkout), else the path as given."""
    split = study_root(folder, study_folder)
    if split is None:
        return str(folder)
    return "/".join((split[1].name, study_folder, *split[2].parts))


def reference_folders(folder: str | os.PathLike, study_folder: str) -> list[Path]:
    """The same study's folders of the other machines: `<root>/<other machine>/<study_folder>/<rest>`.

    `<root>` is the profiles folder that holds `folder` by the results rule (`study_root`), else the
    repository's own `profiles/`; `<rest>` is `folder`'s preset below the study folder, so a preset is
    compared with the same preset only. Sorted by machine folder; `folder` itself is left out.
    """
    here = Path(folder).resolve()
    split = study_root(here, study_folder)
    root, rest = (split[0], split[2]) if split else (REPO_PROFILES, Path())
    if not root.is_dir():
        return []
    found = [m / study_folder / rest for m in sorted(root.iterdir()) if m.is_dir()]
    return [f for f in found if f.is_dir() and f.resolve() != here]


def reference_records(path: str | os.PathLike, exclude: Iterable[str] = ()) -> MachineRecords:
    """One reference machine's records of a JSONL file: its newest machine not in `exclude`."""
    return select_machine(read_jsonl(path), exclude=exclude)
