"""Translation study: the GNMT-style LSTM encoder-decoder against the Transformer on Multi30k En->De.

The command line (`jaxseq translate {train,run,eval,study}`, `python -m jaxseq.studies.translation`): its
first paragraph is the command's description."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from jaxseq.studies.translation.data import prepare_run
from jaxseq.studies.translation.decode import Translator, long_lines_warning
from jaxseq.studies.translation.model import label_smoothed_loss, load_run, model_fn, train_config
from jaxseq.studies.translation.presets import MODELS, PRESETS
from jaxseq.studies.translation.run import run_study
from jaxseq.studies.translation.scoring import score


def _lines(path: str, name: str) -> list[str]:
    """The lines of a UTF-8 text file; one-line errors naming the argument for a missing, empty or binary file."""
    from jaxseq.data import multi30k as M

    if Path(path).is_dir():
        raise ValueError(f"{name}: {path} is a directory; expected a text file with one sentence per line")
    try:
        lines = M.read_lines(path, name=name)  # FileNotFoundError "{name}: no such file: {path}"
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                         "expected one sentence per line") from None
    except PermissionError as e:
        raise ValueError(f"{name}: cannot read {path}: {e.strerror}") from None
    for i, line in enumerate(lines, 1):
        if "\x00" in line:  # valid UTF-8, but binary data, not sentences
            raise ValueError(f"{name}: {path} is not UTF-8 text (a NUL byte on line {i}); "
                             "expected one sentence per line")
    return lines


def _cmd_train(a: argparse.Namespace) -> int:
    from jaxseq.train.loop import train

    p = PRESETS[a.preset]
    tok, data = prepare_run(a.workdir, vocab_size=a.vocab_size or p.vocab_size,
                            train_pairs=p.train_pairs if a.train_pairs is None else a.train_pairs,
                            data_dir=a.data_dir, boundaries=p.boundaries)
    config = train_config(a.model, p, a.workdir, steps=a.steps, lr=a.lr, parallel=a.parallel,
                          progress=not a.no_progress, d_model=a.d_model, layers=a.layers)
    result = train(config, model_fn=model_fn, data=data, loss_fn=label_smoothed_loss(p.label_smoothing))
    print(f"trained {a.model} to step {result.step} in {a.workdir}")
    return 0


def _cmd_run(a: argparse.Namespace) -> int:
    """Output line i is the translation of input line i; an empty (or whitespace-only) line stays empty."""
    lines = _lines(a.input, "--input")
    model, tok, bounds = load_run(a.workdir)
    tr = Translator(model, tok, boundaries=bounds)
    src_ids = tr.encode(lines)
    warning = long_lines_warning(src_ids, tr.trained_max_len)
    if warning:
        print(f"jaxseq translate: {warning}", file=sys.stderr, flush=True)
    ids, _ = tr.translate_ids(src_ids, beam=a.beam)
    for y in ids:
        print(tok.decode(y) if len(y) else "")
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    src, ref = _lines(a.src, "--src"), _lines(a.ref, "--ref")
    if len(src) != len(ref):
        raise ValueError(f"--src has {len(src)} lines but --ref has {len(ref)}; expected one reference per line")
    model, tok, bounds = load_run(a.workdir)
    sc = score(Translator(model, tok, boundaries=bounds).translate(src, beam=a.beam), ref)
    print(f"BLEU {sc['bleu']:.2f}  chrF {sc['chrf']:.2f}  (beam {a.beam}, {len(src)} sentences)")
    print(f"BLEU signature: {sc['bleu_signature']}")
    print(f"chrF signature: {sc['chrf_signature']}")
    return 0


def _cmd_study(a: argparse.Namespace) -> int:
    path = run_study(a.preset, a.out, models=a.models, budget_s=a.budget_s, force=a.force,
                     progress=not a.no_progress, max_steps=a.max_steps, decode_sentences=a.decode_sentences)
    print(path.read_text())
    print(f"report: {path}")
    return 0


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return n


def _check_beam(v: str) -> int:
    b = int(v)
    if b < 1:
        raise argparse.ArgumentTypeError(f"expected a beam size >= 1, got {v}")
    return b


def add_parser(subparsers: Any) -> None:
    """Register `jaxseq translate {train,run,eval,study}`."""
    p = subparsers.add_parser("translate", help="Multi30k En->De: GNMT-style LSTM vs Transformer",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])  # each action below sets its own func
    t = sub.add_parser("train", help="train one model (resumable)")
    t.add_argument("--model", choices=MODELS, required=True)
    t.add_argument("--workdir", required=True)
    t.add_argument("--preset", choices=tuple(PRESETS), default="default")
    t.add_argument("--steps", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--d-model", type=int)
    t.add_argument("--layers", type=int)
    t.add_argument("--vocab-size", type=int)
    t.add_argument("--train-pairs", type=int, help="use the first N training pairs (default: the preset's)")
    t.add_argument("--data-dir", help="folder with train/val/test_2016_flickr .en/.de (default: the shipped data)")
    t.add_argument("--parallel", choices=("jit", "pmap", "sharded"))
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)
    r = sub.add_parser("run", help="translate a file of English sentences (one per line) to stdout")
    r.add_argument("--workdir", required=True)
    r.add_argument("--input", required=True)
    r.add_argument("--beam", type=_check_beam, default=5)
    r.set_defaults(func=_cmd_run)
    e = sub.add_parser("eval", help="BLEU and chrF (sacrebleu) of a run on a source/reference pair of files")
    e.add_argument("--workdir", required=True)
    e.add_argument("--src", required=True)
    e.add_argument("--ref", required=True)
    e.add_argument("--beam", type=_check_beam, default=5)
    e.set_defaults(func=_cmd_eval)
    s = sub.add_parser("study", help="train and score both models, REPORT.md and plots")
    s.add_argument("--preset", choices=tuple(PRESETS), default="smoke")
    s.add_argument("--out", help="output folder (default profiles/<machine>/translation[/<preset>])")
    s.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    s.add_argument("--budget-s", type=float, help="opt-in wall-clock cap per model's training (reported when it cuts)")
    s.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="a short run: train each model at most N steps (records name the preset <preset>-stepsN)")
    s.add_argument("--decode-sentences", type=_positive_int, metavar="N",
                   help="a short run: decode the first N test sentences (and at most N validation sentences), "
                        "timed twice, the second time compiled (records name the preset <preset>[-stepsM]-decodeN)")
    s.add_argument("--force", action="store_true", help="rerun the scoring of finished models")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_study)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxseq.studies.translation")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["translate", *(argv if argv is not None else sys.argv[1:])])
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"jaxseq translate: error: {e}", file=sys.stderr)
        return 2
