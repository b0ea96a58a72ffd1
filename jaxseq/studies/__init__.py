"""The studies: one module (or small package) per claim of the story, on one contract.

Each study registers in `STUDIES` and its module provides:

- `add_parser(subparsers)`: the `jaxseq` subcommand(s) it owns (`StudySpec.commands`);
- a preset table (`PRESETS`, or the `--preset`/options its command takes) with `smoke` for the tests;
- an output folder (`--out`) holding a resumable JSONL file of results (one line per finished point,
  finished points skipped on a rerun);
- `write_report(...)`: `REPORT.md` and PNG plots computed from that JSONL alone.

Results belong to a machine (`jaxseq.studies.base`): by default a study writes into this machine's
folder `profiles/<machine_slug>/<StudySpec.folder>`, every record carries the machine's fingerprint,
a rerun resumes only this machine's records, and a report covers one machine, with the committed
reference folders (`StudySpec.references`, under `profiles/`) beside it.

The measuring harness (timing, sweeps, FLOPs, workloads, op benchmarks) is `jaxseq.bench`; studies import
it, never the other way round. Modules are imported lazily, so `import jaxseq.studies` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

from jaxseq import submodule_getattr

__all__ = ["StudySpec", "STUDIES", "study"]


@dataclass(frozen=True)
class StudySpec:
    """What the CLI and the tests need to know of a study without importing it."""

    name: str                   # short name, e.g. "scaling"
    module: str                 # module that implements it (add_parser, write_report, ...)
    commands: tuple[str, ...]   # the `jaxseq` subcommands its module registers
    results: str                # the resumable JSONL file inside its output folder
    claim: str                  # the claim of the story it measures
    # Default output folder inside profiles/<machine_slug>/ ("" = that folder itself); None for a
    # study whose results do not depend on the machine (it keeps one folder, `references[0]`).
    folder: str | None = ""
    references: tuple[str, ...] = ()  # committed folders under profiles/ its report compares with


STUDIES: tuple[StudySpec, ...] = (
    StudySpec("scaling", "jaxseq.studies.scaling", ("scale", "report", "study"), "results.jsonl",
              "LSTMs cannot be parallelised over time; attention scales better (speed, memory, devices)",
              folder="", references=("cpu-2core", "h200")),
    StudySpec("longrange", "jaxseq.studies.longrange", ("longrange",), "results.jsonl",
              "LSTMs can only model limited lengths", folder="longrange", references=("longrange",)),
    StudySpec("forecasting", "jaxseq.studies.forecasting", ("forecast",), "<Freq>-<model>.json",
              "on time series neither beats ARIMA; the ES-RNN hybrid won M4",
              folder=None, references=("forecast",)),
    StudySpec("charlm", "jaxseq.studies.charlm", ("lm-compare",), "lm_compare.jsonl",
              "LSTMs ruled language modelling: equal parameters, equal CPU time",
              folder="charlm", references=("charlm",)),
    StudySpec("translation", "jaxseq.studies.translation", ("translate",), "results.jsonl",
              "GNMT-style LSTM encoder-decoders ruled translation until the Transformer, which trains in parallel",
              folder="translation", references=()),
)


def study(name: str) -> StudySpec:
    """The registered study called `name` (ValueError naming the known ones otherwise)."""
    for s in STUDIES:
        if s.name == name:
            return s
    raise ValueError(f"study must be one of {', '.join(s.name for s in STUDIES)}, got {name!r}")


# Study modules load on first attribute access (jaxseq.studies.charlm, ...), not at import.
__getattr__ = submodule_getattr(__name__, __path__)
