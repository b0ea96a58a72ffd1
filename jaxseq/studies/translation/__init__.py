"""Translation study: the GNMT-style LSTM encoder-decoder against the Transformer on Multi30k En->De.

    jaxseq translate train --model lstm|transformer --workdir RUN [--preset smoke|default|gpu] [options]
    jaxseq translate run   --workdir RUN --input FILE [--beam 5]        # raw text in, German out (stdout)
    jaxseq translate eval  --workdir RUN --src FILE --ref FILE [--beam 5] # BLEU and chrF (sacrebleu)
    jaxseq translate study --preset smoke|default|gpu [--out DIR] [--budget-s S] [--max-steps N] [--decode-sentences N]

Both models train through the common engine (`jaxseq.train.loop.train`: resumable checkpoints, TensorBoard,
progress, `--parallel` modes) on length-bucketed batches of a joint SentencePiece vocabulary trained on the
training split only (`jaxseq.data.multi30k`), with label-smoothed cross-entropy and teacher forcing. A run's
workdir holds the engine's files plus `spm.model` (the tokenizer) and `translate.json` (what the model and the
decoder need). Decoding (`jaxseq.models.seq2seq.translate`) is greedy or beam search over each model's incremental
state, compiled once per (rows, source width) bucket.

The study trains both models for a fixed number of steps per preset (so its numbers reproduce on any machine of
the same kind); `--budget-s` is an opt-in wall-clock cap per model, reported when it cuts. During training it
decodes a validation subset at every evaluation and records validation BLEU against training wall-clock time
(evaluation and decoding time excluded); at the end it scores test_2016_flickr (greedy and beam 5), times decoding
and draws attention heat-maps. Records go to `OUT/results.jsonl` (one line per evaluation and one per finished
model, stamped with the machine), `REPORT.md` and the plots are made from it alone.

The package, one job per module, each importing only modules listed before it: ``presets`` (Preset, PRESETS,
the file names), ``data`` (TranslationData, prepare_run, settings_path), ``model`` (build_translation_model,
label_smoothed_loss, model_fn, count_params, train_config, load_run), ``decode`` (Translator,
long_lines_warning), ``scoring`` (score), ``report`` (write_report, write_folder_report, findings, plots),
``run`` (run_model, run_study, run_preset, shortened_preset, steady_tokens_per_s) and ``cli`` (add_parser,
main, the train/run/eval/study actions; ``__main__``: ``python -m jaxseq.studies.translation``). A test that
fakes a name patches the module that looks it up: ``translation.decode._jitted_translate``.
"""
from __future__ import annotations

# The names below are this package's API: the single module's public names, kept.
from jaxseq.studies.translation.presets import MODELS, PRESETS, RESULTS, SETTINGS, TOKENIZER, Preset
from jaxseq.studies.translation.data import TranslationData, prepare_run, settings_path
from jaxseq.studies.translation.model import (build_translation_model, count_params, label_smoothed_loss,
                                             load_run, model_fn, train_config)
from jaxseq.studies.translation.decode import Translator, long_lines_warning
from jaxseq.studies.translation.scoring import score
from jaxseq.studies.translation.report import DECODE_GOAL_S, STUDY_GOAL_S, write_folder_report, write_report
from jaxseq.studies.translation.run import (run_model, run_preset, run_study, shortened_preset,
                                           steady_tokens_per_s)
from jaxseq.studies.translation.cli import add_parser, main

__all__ = ["PRESETS", "Preset", "TranslationData", "label_smoothed_loss", "build_translation_model",
           "Translator", "run_study", "write_report", "add_parser", "main",
           # beside the historical list: the single module's other public names that other code uses
           "MODELS", "RESULTS", "SETTINGS", "TOKENIZER", "prepare_run", "settings_path", "count_params",
           "load_run", "model_fn", "train_config", "long_lines_warning", "score", "DECODE_GOAL_S",
           "STUDY_GOAL_S", "write_folder_report", "run_model", "run_preset", "shortened_preset",
           "steady_tokens_per_s"]
