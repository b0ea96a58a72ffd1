"""The studies: one module (or small package) per claim of the story, on one contract.

Each study registers in `STUDIES` and its module provides:

- `add_parser(subparsers)`: the `jaxseq` subcommand(s) it owns (`StudySpec.commands`);
- a preset table (`PRESETS`, or the `--preset`/options its command takes) with `smoke` for the tests;
- an output folder (`--out`) holding a resumable JSONL file of results (one line per finished point,
  finished points skipped on a rerun);
- `write_report(...)`: `REPORT.md` and PNG plots computed from that JSONL alone.

The measuring harness (timing, sweeps, FLOPs, workloads, op benchmarks) is `jaxseq.bench`; studies import
it, never the other way round. Modules are imported lazily, so `import jaxseq.studies` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StudySpec", "STUDIES", "study"]


@dataclass(frozen=True)
class StudySpec:
    """What the CLI and the tests need to know of a study without importing it."""

    name: str                   # short name, e.g. "scaling"
    module: str                 # module that implements it (add_parser, write_report, ...)
    commands: tuple[str, ...]   # the `jaxseq` subcommands its module registers
    results: str                # the resumable JSONL file inside its output folder
    claim: str                  # the claim of the story it measures


STUDIES: tuple[StudySpec, ...] = (
    StudySpec("scaling", "jaxseq.studies.scaling.sweep", ("scale",), "results.jsonl",
              "LSTMs cannot be parallelised over time; attention scales better (speed, memory, devices)"),
    StudySpec("scaling-report", "jaxseq.studies.scaling.report", ("report",), "results.jsonl",
              "the scaling study's REPORT.md and plots from its JSONL"),
    StudySpec("scaling-study", "jaxseq.studies.scaling.study", ("study",), "results.jsonl",
              "bench ops + scaling sweep + report in one go (what `make study` runs)"),
    StudySpec("longrange", "jaxseq.studies.longrange", ("longrange",), "results.jsonl",
              "LSTMs can only model limited lengths"),
    StudySpec("forecasting", "jaxseq.studies.forecasting", ("forecast",), "<Freq>-<model>.json",
              "on time series neither beats ARIMA; the ES-RNN hybrid won M4"),
    StudySpec("charlm", "jaxseq.studies.charlm", ("lm-compare",), "lm_compare.jsonl",
              "LSTMs ruled language modelling: equal parameters, equal CPU time"),
)


def study(name: str) -> StudySpec:
    """The registered study called `name` (ValueError naming the known ones otherwise)."""
    for s in STUDIES:
        if s.name == name:
            return s
    raise ValueError(f"study must be one of {', '.join(s.name for s in STUDIES)}, got {name!r}")
