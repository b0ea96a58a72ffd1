"""`jaxseq report`: REPORT.md and PNG plots from a study folder's JSONL files.

    jaxseq report --in profiles/cpu-2core/scaling [--out DIR]

Reads `IN/results.jsonl` (`jaxseq scale`, see `jaxseq.bench.sweep` for the record format) and, when
present, `IN/bench_ops.jsonl` (`jaxseq bench ops`) and `IN/bench_phases.jsonl` (`jaxseq bench phases`), and writes `OUT/REPORT.md` with PNG plots beside it:
step time and tokens/s against sequence length (log-log) per model, memory and compile time against
length, achieved TFLOP/s or MFU, and data-parallel speedup against device count with the ideal line.

Every statement in REPORT.md is computed from the records: fitted log-log slopes of step time against
length, where attention becomes slower than the LSTM, the minGRU/minLSTM factor over the LSTM, the
"Generation" section (per-token decode latency and memory per sequence against the context length, and
the context where the Transformer's decode becomes slower than the LSTM's and the minGRU's), each
model's ratio to its anchor (torch, flax, cuDNN), the project's targets (met / not met), device-count
scaling efficiency, the environment and machine load, and the points that failed. Sections whose
models are missing from the data are left out, so a partial or interrupted sweep still gets a report.
When a point was recorded more than once (a `--retry-errors` rerun), its last record counts.

One machine per report: when the folder holds records of several machines (see
`jaxseq.studies.base`), the findings use the newest machine's records (or `--machine ID`'s) and say
which were left out. A section puts that machine beside the other machines' scaling folders
(`profiles/*/scaling/`; `--references DIR...` for others): the headline points, one column per machine.

The package, one job per module: `targets` (the goals), `records` (loading a folder: `Study`,
`load_study`, `series`), `tables` (number and table formatting), `findings` (slopes, crossovers,
anchors, targets, device scaling, FLOPs), `references` (the other machines), `generation`, `plots`,
`markdown` (`build_report`) and `cli` (`write_report`, `add_parser`, `main`; `python -m
jaxseq.studies.scaling.report`). The names below are re-exported here, where they were before.
"""
from __future__ import annotations

# Re-exported: the old module's names that the package, scripts/ and the tests import from here.
from jaxseq.studies.scaling.report.cli import add_parser, main, write_report  # noqa: F401
from jaxseq.studies.scaling.report.findings import (  # noqa: F401
    anchor_rows, anchor_table, crossover_findings, environment_lines, flops_rows, loglog_slope, mfu_line,
    min_rnn_findings, scaling_rows, slope_findings, target_lines)
from jaxseq.studies.scaling.report.generation import (  # noqa: F401
    generation_findings, generation_lines, generation_sentence, generation_series)
from jaxseq.studies.scaling.report.markdown import build_report, phases_section, trace_findings  # noqa: F401
from jaxseq.studies.scaling.report.records import (  # noqa: F401
    BENCH_OPS, BENCH_PHASES, REPORT, RESULTS, Study, load_study, median_times, newest_bench_rows, order_configs,
    paired_ratio, series, study_backend)
from jaxseq.studies.scaling.report.references import comparison_lines, headline_rows, load_references  # noqa: F401
from jaxseq.studies.scaling.report.targets import (  # noqa: F401
    GPU_MFU_GOAL, GPU_TARGETS, MIN_RNN_TARGET_LENGTHS, TARGETS, Target)

__all__ = ["TARGETS", "GPU_TARGETS", "Target", "loglog_slope", "load_study", "Study", "build_report", "write_report",
           "anchor_table", "target_lines", "headline_rows", "comparison_lines", "load_references",
           "generation_series", "generation_findings", "generation_lines", "phases_section", "add_parser", "main"]
