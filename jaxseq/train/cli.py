"""`jaxseq train` and `jaxseq sample`.

    jaxseq train --task charlm --model lstm --workdir runs/lstm [--steps N --batch-size B --seq-len T
                 --d-model D --layers L --lr LR --eval-every N --ckpt-every N --parallel jit|pmap|sharded
                 --profile-steps a:b --config FILE.json --seed S --dtype float32|bfloat16 ...]
    jaxseq sample --workdir runs/lstm --prompt "ROMEO:" --length 200 --temperature 0.8

Rerunning `train` with the same workdir resumes from its latest checkpoint with its saved config;
flags given again override it. `--data-path my.txt` trains on your own text: its character vocabulary is
stored with the run (WORKDIR/vocab.json), used by `sample`, and a resume on a text whose vocabulary
differs is refused. A JSON config file has the flags as keys ("seq_len" or "seq-len").
Bad options are one-line errors with exit code 2; a non-finite loss stops the run with exit code 1.
"""
from __future__ import annotations

import argparse
import sys

from jaxseq.train.config import DTYPES, MODEL_KINDS, PARALLEL_MODES, REMAT_POLICIES, TASKS

# (flag, type, help). Every default is None = "not given", so config files and saved configs show through;
# the real defaults live in TrainConfig. Choices are checked by TrainConfig.validate (one-line errors
# that also cover values coming from a config file).
_TRAIN_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--task", str, f"task ({', '.join(TASKS)})"),
    ("--model", str, f"model kind ({', '.join(MODEL_KINDS)})"),
    ("--workdir", str, "run directory: config.json, checkpoints/, logs/ (required)"),
    ("--steps", int, "total optimiser steps"),
    ("--batch-size", int, "global batch size (sequences per step)"),
    ("--seq-len", int, "tokens per sequence"),
    ("--d-model", int, "model width"),
    ("--layers", int, "number of layers"),
    ("--num-heads", int, "attention heads (transformer)"),
    ("--dropout", float, "dropout rate"),
    ("--lr", float, "peak learning rate (AdamW, warm-up + cosine decay)"),
    ("--warmup-steps", int, "linear warm-up steps (default 5%% of --steps)"),
    ("--weight-decay", float, "AdamW weight decay (matrices only)"),
    ("--clip-norm", float, "global gradient-norm clip (0 disables)"),
    ("--grad-accum", int, "micro-batches per step (gradient accumulation)"),
    ("--eval-every", int, "evaluate every N steps (0: never)"),
    ("--eval-batches", int, "validation batches per evaluation"),
    ("--ckpt-every", int, "checkpoint every N steps (0: never)"),
    ("--keep-checkpoints", int, "checkpoints kept on disk"),
    ("--log-every", int, "write scalars every N steps"),
    ("--parallel", str, f"parallel mode ({', '.join(PARALLEL_MODES)})"),
    ("--coordinator", str, "HOST:PORT of process 0 (--parallel multiprocess)"),
    ("--num-processes", int, "processes in the run (--parallel multiprocess)"),
    ("--process-id", int, "this process's index (--parallel multiprocess)"),
    ("--profile-steps", str, "trace steps a..b-1 with jax.profiler into WORKDIR/logs/RUN-NAME (e.g. 10:15)"),
    ("--run-name", str, "TensorBoard run name: logs/RUN-NAME/ (default: the workdir's name; kept on resume)"),
    ("--seed", int, "seed of initialisation, data order and dropout"),
    ("--dtype", str, f"compute dtype ({', '.join(DTYPES)}); parameters stay float32"),
    ("--remat", str, f"rematerialisation policy ({', '.join(REMAT_POLICIES)})"),
    ("--peak-tflops", float, "peak TFLOP/s of one device, for MFU (default: known-device table)"),
    ("--data-path", str, "UTF-8 text file for --task charlm (default: the shipped Tiny Shakespeare, checksum"
                         " verified); your own file is used as given, its vocabulary stored in WORKDIR/vocab.json"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a character language model (resumable)",
                                  description=__doc__.splitlines()[0])
    for flag, typ, help_ in _TRAIN_FLAGS:
        train.add_argument(flag, type=typ, default=None, help=help_)
    train.add_argument("--config", default=None, help="JSON file whose keys mirror these flags")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="tqdm progress bar (default on)")
    train.set_defaults(func=run_train)

    sample = subparsers.add_parser("sample", help="generate text from a run's latest checkpoint")
    sample.add_argument("--workdir", required=True)
    sample.add_argument("--prompt", default="\n", help="text to continue (characters of the vocabulary)")
    sample.add_argument("--length", type=int, default=200, help="characters to generate")
    sample.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (0: greedy)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    sample.set_defaults(func=run_sample)


def _overrides(args: argparse.Namespace) -> dict:
    keys = [flag[2:].replace("-", "_") for flag, _, _ in _TRAIN_FLAGS] + ["progress"]
    return {k: getattr(args, k) for k in keys}


def run_train(args: argparse.Namespace) -> int:
    from jaxseq.train.config import resolve

    config = resolve(overrides=_overrides(args), config_file=args.config)
    from jaxseq.train.loop import NonFiniteLossError, train  # heavy imports after the options are checked

    try:
        result = train(config)
    except NonFiniteLossError as e:
        print(f"jaxseq train: error: {e}", file=sys.stderr)
        return 1
    import jax

    if jax.process_index() == 0:
        last = max(result.losses) if result.losses else None
        msg = f"jaxseq train: {config.workdir}: step {result.step}/{config.steps}"
        if last is not None:
            msg += f", train loss {result.losses[last]:.4f}"
        if result.evals:
            k = max(result.evals)
            msg += f", eval loss {result.evals[k]:.4f} ({result.evals[k] / 0.6931471805599453:.3f} bits/char)"
        print(msg)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    if args.length < 0:
        raise ValueError(f"--length: expected >= 0, got {args.length}")
    from jaxseq.data.charlm import CharVocab
    from jaxseq.models.lm import generate
    from jaxseq.train.loop import load_model

    model, config, chars, step = load_model(args.workdir, step=args.step)
    vocab = CharVocab(chars)
    try:
        prompt = vocab.encode(args.prompt)
    except ValueError:
        bad = sorted(set(args.prompt) - set(chars))
        raise ValueError(f"--prompt: characters {bad!r} are not in the run's vocabulary") from None
    if prompt.size == 0:
        raise ValueError("--prompt: must not be empty")
    ids = generate(model, prompt, args.length, temperature=args.temperature, seed=args.seed,
                   context=config.seq_len)
    sys.stdout.write(args.prompt + vocab.decode(ids) + "\n")
    return 0
