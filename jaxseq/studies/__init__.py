"""The studies: one module (or small package) per claim of the story, on one contract.

Each study registers in `STUDIES` and its module keeps the typed contract `jaxseq.studies.base.Study`
(the contract test checks every registered study, signatures included):

- `PRESETS`, with `smoke` for the tests, and `run_preset(preset, out=None) -> Path`: measure into an
  output folder holding resumable JSONL records (one line per finished point, finished points skipped on
  a rerun), then write the report;
- `write_folder_report(out, *, plots=True) -> Path`: `REPORT.md` and PNG plots from the records alone;
- `add_parser(subparsers)`: the `jaxseq` subcommand(s) it owns (`StudySpec.commands`).

Results belong to a machine (`jaxseq.studies.base`). One rule places every result, the committed ones
included: `profiles/<machine_slug>/<StudySpec.folder>/[<preset>/]`. Every record carries the machine's
fingerprint, a rerun resumes only this machine's records, and a report covers one machine, with the
same study's folders of the other machines under `profiles/` beside it as references.

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
    # The study's folder inside profiles/<machine_slug>/; presets other than the default go one level
    # deeper, profiles/<machine_slug>/<folder>/<preset>/.
    folder: str
    report: str = "REPORT.md"   # the report its write_report writes into the folder


STUDIES: tuple[StudySpec, ...] = (
    StudySpec("scaling", "jaxseq.studies.scaling", ("scale", "report", "study"), "results.jsonl",
              "LSTMs cannot be parallelised over time; attention scales better (speed, memory, devices)",
              folder="scaling"),
    StudySpec("longrange", "jaxseq.studies.longrange", ("longrange",), "results.jsonl",
              "LSTMs can only model limited lengths", folder="longrange"),
    StudySpec("forecasting", "jaxseq.studies.forecasting", ("forecast",), "<Freq>-<model>.json",
              "on time series neither beats ARIMA; the ES-RNN hybrid won M4",
              folder="forecast"),
    StudySpec("charlm", "jaxseq.studies.charlm", ("charlm", "lm-compare"), "lm_compare.jsonl",
              "LSTMs ruled language modelling: equal parameters, equal CPU time",
              folder="charlm"),  # lm-compare: deprecated alias of charlm
    StudySpec("translation", "jaxseq.studies.translation", ("translate",), "results.jsonl",
              "GNMT-style LSTM encoder-decoders ruled translation until the Transformer, which trains in parallel",
              folder="translation"),
)


def study(name: str) -> StudySpec:
    """The registered study called `name` (ValueError naming the known ones otherwise)."""
    for s in STUDIES:
        if s.name == name:
            return s
    raise ValueError(f"study must be one of {', '.join(s.name for s in STUDIES)}, got {name!r}")


# Study modules load on first attribute access (jaxseq.studies.charlm, ...), not at import.
__getattr__ = submodule_getattr(__name__, __path__)
