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
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["PRESETS", "Preset", "TranslationData", "label_smoothed_loss", "build_translation_model",
           "Translator", "run_study", "write_report", "add_parser", "main"]

RESULTS = "results.jsonl"
MODELS = ("lstm", "transformer")
SETTINGS = "translate.json"
TOKENIZER = "spm.model"


@dataclass(frozen=True)
class Preset:
    """One study setting. Steps are fixed per model; `budget_s` (None = off) caps each model's training time."""

    name: str
    vocab_size: int
    train_pairs: int | None          # None: all 29,000
    val_sentences: int               # decoded for the BLEU curve at every evaluation
    test_sentences: int | None       # None: all 1,000
    tokens_per_batch: int
    steps: dict[str, int]
    eval_every: int
    lstm: dict[str, Any]
    transformer: dict[str, Any]
    lr: dict[str, float]
    label_smoothing: float = 0.1
    budget_s: float | None = None
    decode_rows: int = 32
    boundaries: tuple[int, ...] | None = None  # length buckets (None: multi30k.DEFAULT_BOUNDARIES)


PRESETS: dict[str, Preset] = {
    # The tests: tiny one-layer models on 400 pairs, a few steps, one test sentence (one attention map per model;
    # each map is computed op by op, compiled for its sentence's lengths); the whole study in about a minute.
    "smoke": Preset("smoke", vocab_size=200, train_pairs=400, val_sentences=8, test_sentences=1,
                    tokens_per_batch=512, steps={"lstm": 4, "transformer": 4}, eval_every=4,
                    lstm=dict(d_model=16, layers=1, dropout=0.0), transformer=dict(d_model=16, layers=1, num_heads=2,
                                                                                   dropout=0.0),
                    lr={"lstm": 3e-3, "transformer": 1e-3}, decode_rows=8, boundaries=(128,)),
    # First run (2026-12-01, 2-core Intel Xeon): LSTM 2600 steps at lr 2e-3, Transformer 1800 at 1e-3; test BLEU
    # beam 5 33.64 / 34.79, but 75 min end to end. Two step-time fixes since (the batch count no longer evicts the
    # cached epoch; the loss never materialises the log-softmax: 1.18 -> 0.93 s LSTM, 1.62 -> 1.36 s Transformer on
    # fixed batches, 2-core AMD EPYC). A 1400-step LSTM lost too much BLEU (29.25 at lr 4e-3), so these steps and
    # doubled rates. Measured end to end on two hosts that both report a 2-core AMD EPYC (2026-12-03): a slow one
    # (2048^2 matmul 137 GFLOP/s) took 84 min, test BLEU beam 5 LSTM 35.39, Transformer 33.99; a fast one (370-425
    # GFLOP/s, with the faster decoding) 31.8 min, and 25.9 min with huge pages, BLEU 35.32 / 33.74 both times.
    # After the LSTM's saved-products backward (2026-12-04, same host class, profiles/cpu-amd-epyc-2core/translation): 23.9 min, BLEU
    # 34.13 / 33.74 (the LSTM's trajectory moved with the gradients' rounding; the Transformer's did not change).
    "default": Preset("default", vocab_size=8000, train_pairs=None, val_sentences=200, test_sentences=None,
                      tokens_per_batch=2048, steps={"lstm": 2000, "transformer": 1400}, eval_every=200,
                      lstm=dict(d_model=256, layers=2, dropout=0.2),
                      transformer=dict(d_model=256, layers=3, num_heads=4, dropout=0.1),
                      lr={"lstm": 4e-3, "transformer": 2e-3}),
    # A lent GPU: wider models, more steps (scripts/gpu_translation.sh).
    "gpu": Preset("gpu", vocab_size=8000, train_pairs=None, val_sentences=1014, test_sentences=None,
                  tokens_per_batch=8192, steps={"lstm": 4000, "transformer": 4000}, eval_every=500,
                  lstm=dict(d_model=512, layers=4, dropout=0.3),
                  transformer=dict(d_model=512, layers=6, num_heads=8, dropout=0.1),
                  lr={"lstm": 2e-3, "transformer": 7e-4}, decode_rows=128),
}


# ------------------------------------------------------------------------------------------- data


class TranslationData:
    """The engine's data interface over bucketed Multi30k batches (see `jaxseq.train.loop`).

    `train_batch(seed, step, batch_size, seq_len)` is a pure function of (seed, step): step k of an epoch of
    n batches is batch k mod n of the shuffle of epoch k // n. `batch_size * seq_len` is the token budget of a
    batch (rows = budget // bucket width, a multiple of `row_multiple`).
    """

    def __init__(self, tokenizer: Any, train: tuple[list, list], valid: tuple[list, list], *,
                 boundaries: Sequence[int] | None = None, row_multiple: int = 1) -> None:
        from jaxseq.data import multi30k as M

        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.boundaries = tuple(boundaries or M.DEFAULT_BOUNDARIES)
        self.row_multiple = row_multiple
        self.valid_text = valid  # (source, target) sentences, for scoring decoded validation output
        self.train_src, self.train_tgt = tokenizer.encode(train[0]), tokenizer.encode(train[1])
        self.valid_src, self.valid_tgt = tokenizer.encode(valid[0]), tokenizer.encode(valid[1])
        self._epoch: tuple[tuple[int, int, int], list] | None = None
        self._counts: dict[int, int] = {}  # batches per epoch, by token budget

    def _batches(self, src, tgt, tokens: int, *, shuffle: bool, seed: int = 0, epoch: int = 0) -> list:
        from jaxseq.data import multi30k as M

        out = M.make_batches(src, tgt, tokens_per_batch=tokens, boundaries=self.boundaries, shuffle=shuffle,
                             seed=seed, epoch=epoch, row_multiple=self.row_multiple)
        for b in out:
            b["inputs"] = b["src"]  # the engine's name for the model input (shape checks, sharding)
        return out

    def epoch_batches(self, *, seed: int, epoch: int, tokens: int) -> list[dict[str, np.ndarray]]:
        key = (seed, epoch, tokens)
        if self._epoch is None or self._epoch[0] != key:
            self._epoch = (key, self._batches(self.train_src, self.train_tgt, tokens, shuffle=True, seed=seed,
                                              epoch=epoch))
        return self._epoch[1]

    def batches_per_epoch(self, tokens: int) -> int:
        # The count depends on the bucket sizes only, not on the shuffle; cached apart from the epoch's
        # batches, so that asking for it never evicts the epoch being trained on (rebuilding an epoch of
        # Multi30k takes ~0.2 s of host time, which every step after the first epoch used to pay twice).
        if tokens not in self._counts:
            self._counts[tokens] = len(self._batches(self.train_src, self.train_tgt, tokens, shuffle=False))
        return self._counts[tokens]

    def train_batch(self, *, seed: int, step: int, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        tokens = batch_size * seq_len
        n = self.batches_per_epoch(tokens)
        return self.epoch_batches(seed=seed, epoch=step // n, tokens=tokens)[step % n]

    def eval_batches(self, *, batch_size: int, seq_len: int, max_batches: int | None) -> Iterable[dict]:
        batches = self._batches(self.valid_src, self.valid_tgt, batch_size * seq_len, shuffle=False)
        return batches if max_batches is None else batches[:max_batches]


def label_smoothed_loss(smoothing: float):
    """The engine's `loss_fn`: (sum of label-smoothed token cross-entropies, number of target tokens)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing!r}")

    def loss_fn(module: Any, batch: dict, *, train: bool):
        import jax
        import jax.numpy as jnp

        logits = module(batch["src"], batch["src_lengths"], batch["tgt_in"])
        with jax.named_scope("loss"):
            # -log p_y = lse - z_y and -mean(log p) = lse - mean(z): the [batch, time, vocab] log-softmax is
            # never materialised. Writing it out (log_softmax, then gather and mean) cost 0.3-0.4 s more per
            # step for loss and gradient at 2048 tokens x 8k vocab on the 2-core CPU, about 20% of a step.
            z = logits.astype(jnp.float32)
            lse = jax.nn.logsumexp(z, axis=-1)
            z_y = jnp.take_along_axis(z, batch["tgt_out"][..., None], axis=-1)[..., 0]
            loss = lse - (1.0 - smoothing) * z_y - smoothing * z.mean(axis=-1)
            mask = (jnp.arange(logits.shape[1])[None, :] < batch["tgt_lengths"][:, None]).astype(jnp.float32)
            return jnp.sum(loss * mask), jnp.sum(mask)

    return loss_fn


def build_translation_model(kind: str, vocab_size: int, *, d_model: int, layers: int, num_heads: int = 4,
                            dropout: float = 0.1, max_len: int = 256, rngs: Any) -> Any:
    """The study's two systems on one joint vocabulary (shared/tied embeddings)."""
    from jaxseq.models.seq2seq import Seq2SeqAttention, TransformerSeq2Seq

    if kind == "lstm":
        return Seq2SeqAttention(vocab_size, vocab_size, d_model=d_model, encoder_layers=layers,
                                decoder_layers=layers, dropout=dropout, rngs=rngs)
    if kind == "transformer":
        return TransformerSeq2Seq(vocab_size, vocab_size, d_model=d_model, num_heads=num_heads,
                                  encoder_layers=layers, decoder_layers=layers, dropout=dropout, max_len=max_len,
                                  shared_embeddings=True, rngs=rngs)
    raise ValueError(f"--model: expected one of {', '.join(MODELS)}, got {kind!r}")


def _model_fn(config: Any, vocab_size: int, rngs: Any) -> Any:
    return build_translation_model(config.model, vocab_size, d_model=config.d_model, layers=config.layers,
                                   num_heads=config.num_heads, dropout=config.dropout, rngs=rngs)


def count_params(model: Any) -> int:
    from flax import nnx

    from jaxseq.train.state import count_params as count

    return count(nnx.state(model, nnx.Param))


# ------------------------------------------------------------------------------------- decoding


@functools.lru_cache(maxsize=None)
def _jitted_translate() -> Any:
    """The one jitted `translate` of the process: every `Translator` shares its compilations."""
    from flax import nnx

    from jaxseq.models.seq2seq import translate

    return nnx.jit(translate, static_argnames=("max_len", "beam_size"))


class Translator:
    """Decodes raw sentences with a trained model: bucketed batches, one compilation per bucket shape.

    ``model`` may be replaced between calls (``translator.model = ...``): a model of the same structure reuses
    the compiled searches, which is how the study decodes at every evaluation without recompiling. The
    compilations are shared by all translators of the process (the study's validation and test decoding).
    """

    def __init__(self, model: Any, tokenizer: Any, *, rows: int = 32, boundaries: Sequence[int] | None = None) -> None:
        from jaxseq.data import multi30k as M

        self.model, self.tokenizer, self.rows = model, tokenizer, rows
        self.boundaries = tuple(boundaries or M.DEFAULT_BOUNDARIES)
        self._translate = _jitted_translate()

    def _max_len(self, width: int) -> int:
        return int(math.ceil(1.5 * width)) + 10

    @property
    def trained_max_len(self) -> int:
        """The longest source (in tokens) the model can have been trained on: training drops the pairs longer
        than the largest length bucket (`multi30k.make_batches`). Longer sources are cut to it when decoded."""
        return int(self.boundaries[-1])

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Token ids per sentence; an empty or whitespace-only sentence is no ids (and is never decoded)."""
        sentences = list(sentences)
        keep = [i for i, s in enumerate(sentences) if s.strip()]
        ids = [np.zeros(0, np.int32) for _ in sentences]
        for i, y in zip(keep, self.tokenizer.encode([sentences[i] for i in keep]) if keep else []):
            ids[i] = y
        return ids

    def translate_ids(self, src_ids: list[np.ndarray], *, beam: int = 5) -> tuple[list[np.ndarray], int]:
        """(output ids per sentence, number of compiled shapes used). An empty source gets an empty output
        without going to the model (it would invent a sentence)."""
        from jaxseq.data import multi30k as M

        out: list[np.ndarray | None] = [np.zeros(0, np.int32) if len(s) == 0 else None for s in src_ids]
        order = sorted((i for i in range(len(src_ids)) if len(src_ids[i])), key=lambda i: len(src_ids[i]))
        shapes = set()
        for start in range(0, len(order), self.rows):
            idx = order[start:start + self.rows]
            longest = max(len(src_ids[i]) for i in idx)
            width = M.bucket_of(min(longest, self.boundaries[-1]), self.boundaries)
            src = np.zeros((self.rows, width), np.int32)
            lens = np.zeros(self.rows, np.int32)
            for r, i in enumerate(idx):
                s = src_ids[i][:width]
                src[r, :len(s)] = s
                lens[r] = len(s)
            shapes.add(width)
            ys = np.asarray(self._translate(self.model, src, lens, max_len=self._max_len(width), beam_size=beam))
            for r, i in enumerate(idx):
                y = ys[r]
                stop = np.flatnonzero(y == M.EOS)
                out[i] = y[:stop[0]] if stop.size else y
        return out, len(shapes)

    def translate(self, sentences: Sequence[str], *, beam: int = 5) -> list[str]:
        """One translation per sentence, in order; "" for an empty or whitespace-only sentence."""
        ids, _ = self.translate_ids(self.encode(sentences), beam=beam)
        return [self.tokenizer.decode(y) if len(y) else "" for y in ids]


def score(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """BLEU and chrF with sacrebleu on detokenised text, with the signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hyps) != len(refs):
        raise ValueError(f"hypotheses and references must have the same count, got {len(hyps)} and {len(refs)}")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2), "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


# ------------------------------------------------------------------------------------ one run


def _settings_path(workdir: Path) -> Path:
    return Path(workdir) / SETTINGS


def prepare_run(workdir: str | Path, *, vocab_size: int, train_pairs: int | None = None,
                data_dir: str | None = None, boundaries: Sequence[int] | None = None) -> tuple[Any, TranslationData]:
    """Tokenizer (cached in the workdir, trained on the training split only) and the engine data."""
    from jaxseq.data import multi30k as M

    workdir = Path(workdir)
    train = M.load_split("train", data_dir=data_dir)
    if train_pairs is not None:
        train = (train[0][:train_pairs], train[1][:train_pairs])
    valid = M.load_split("val", data_dir=data_dir)
    settings = {"vocab_size": vocab_size, "train_pairs": train_pairs, "data_dir": data_dir,
                "boundaries": list(boundaries) if boundaries else None}
    path = _settings_path(workdir)
    if path.is_file():
        saved = json.loads(path.read_text())
        diff = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        if diff:
            raise ValueError(f"--workdir {workdir}: the run was made with other data settings "
                             f"({', '.join(f'{k}: run {a!r}, now {b!r}' for k, (a, b) in diff.items())}); "
                             "use a new workdir")
    tok = M.cached_tokenizer(workdir / TOKENIZER, train[0] + train[1], vocab_size=vocab_size)
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")
    return tok, TranslationData(tok, train, valid, boundaries=boundaries)


def train_config(kind: str, preset: Preset, workdir: str | Path, **overrides: Any) -> Any:
    from jaxseq.train.config import TrainConfig

    size = preset.lstm if kind == "lstm" else preset.transformer
    cfg = TrainConfig(task="custom", model=kind, workdir=str(workdir), d_model=size["d_model"],
                      layers=size["layers"], num_heads=size.get("num_heads", 4), dropout=size["dropout"],
                      steps=preset.steps[kind], batch_size=preset.tokens_per_batch // 32, seq_len=32,
                      lr=preset.lr[kind], weight_decay=0.0, b2=0.98, eval_every=preset.eval_every,
                      eval_batches=4, log_every=max(1, min(50, preset.eval_every)), ckpt_every=preset.eval_every,
                      extra={"label_smoothing": preset.label_smoothing, "preset": preset.name})
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def load_run(workdir: str | Path) -> tuple[Any, Any, Any]:
    """(model, tokenizer, length buckets) of a trained run; one-line errors for a workdir without one."""
    from jaxseq.data import multi30k as M
    from jaxseq.train.loop import load_model

    workdir = Path(workdir)
    if not (workdir / TOKENIZER).is_file() or not _settings_path(workdir).is_file():
        raise FileNotFoundError(f"--workdir {workdir}: no trained translation run here (run `jaxseq translate "
                                "train --workdir ...` first)")
    model, config, _, _ = load_model(workdir, model_fn=_model_fn)
    model.eval()
    settings = json.loads(_settings_path(workdir).read_text())
    return model, M.Tokenizer.load(workdir / TOKENIZER), settings.get("boundaries")


# -------------------------------------------------------------------------------------- study


def _heatmaps(model: Any, kind: str, tok: Any, src: list[str], hyps: list[str]) -> list[dict]:
    import jax.numpy as jnp

    from jaxseq.data import multi30k as M

    maps = []
    for s, h in zip(src, hyps):
        s_ids, h_ids = tok.encode([s])[0], tok.encode([h])[0]
        x = jnp.asarray(s_ids[None]), jnp.asarray([len(s_ids)])
        tgt_in = jnp.asarray(np.r_[M.BOS, h_ids][None].astype(np.int32))
        if kind == "lstm":
            _, w = model(*x, tgt_in, return_attention=True)
        else:
            w = model.cross_attention_weights(*x, tgt_in, layer=-1, head=0)
        maps.append({"src": tok.pieces(s_ids), "tgt": tok.pieces(h_ids) + ["</s>"],
                     "weights": np.round(np.asarray(w[0, :len(h_ids) + 1, :len(s_ids)]), 4).tolist()})
    return maps


def run_model(kind: str, preset: Preset, out: Path, tok: Any, data: TranslationData, *, budget_s: float | None,
              test: tuple[list, list], progress: bool = True, warm_decode: bool = False) -> dict:
    """Train one model (resumable), recording the validation BLEU curve, then score and time it.

    `warm_decode` decodes the test sentences a second time, every shape compiled, and records that time too
    (`beam1/beam5["warm"]`): a short run's decoding speed without its compile time.
    """
    import jax

    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.bench.timing import matmul_gflops
    from jaxseq.studies import base
    from jaxseq.train.loop import train

    results = out / RESULTS
    workdir = out / "runs" / kind
    # The data settings and the tokenizer are the study's, shared by both runs.
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / TOKENIZER).write_bytes(tok.model_proto)
    _settings_path(workdir).write_text((out / SETTINGS).read_text())
    mine = [r for r in base.own_records(read_jsonl(results)) if r.get("model") == kind
            and r.get("preset") == preset.name]
    curve = [r for r in mine if r.get("kind") == "curve"]
    # The host's speed beside its wall-clock numbers: "the same" 2-core machines differ by up to 3x on it.
    host_gflops = matmul_gflops()
    clock = {"train_s": max((r["train_time_s"] for r in curve), default=0.0), "t0": time.perf_counter()}
    wall_t0 = time.perf_counter()
    val_src = data.valid_src[:preset.val_sentences]
    val_ref = data.valid_text[1][:preset.val_sentences]
    # One translator for every evaluation: its jitted search is compiled once per bucket, not per evaluation.
    val_tr = Translator(None, tok, rows=preset.decode_rows, boundaries=preset.boundaries)

    def on_eval_model(step: int, loss: float, model: Any) -> None:
        clock["train_s"] += time.perf_counter() - clock["t0"]
        val_tr.model = model
        hyps_ids, _ = val_tr.translate_ids(val_src, beam=1)
        sc = score([tok.decode(y) for y in hyps_ids], val_ref)
        base.append_record(results, {"kind": "curve", "model": kind, "preset": preset.name, "step": step,
                          "train_time_s": round(clock["train_s"], 2), "val_loss": round(float(loss), 4),
                          "val_bleu": sc["bleu"]})
        if progress:
            print(f"[{kind}] step {step}: val loss {loss:.3f}, val BLEU (greedy, {len(val_ref)} sentences) "
                  f"{sc['bleu']:.2f} after {clock['train_s']:.0f} s of training", file=sys.stderr, flush=True)
        clock["t0"] = time.perf_counter()

    marks: list[tuple[int, float]] = []  # (step, training seconds so far) after each dispatched step

    def should_stop(step: int) -> bool:
        marks.append((step, clock["train_s"] + time.perf_counter() - clock["t0"]))
        return budget_s is not None and marks[-1][1] >= budget_s

    config = train_config(kind, preset, workdir, progress=progress)
    result = train(config, model_fn=_model_fn, data=data, loss_fn=label_smoothed_loss(preset.label_smoothing),
                   should_stop=should_stop, on_eval_model=on_eval_model)
    model = result.model
    model.eval()
    # Test set: greedy and beam 5, with decoding speed (a first pass compiles every bucket shape).
    tr = Translator(model, tok, rows=preset.decode_rows, boundaries=preset.boundaries)
    src_ids = tok.encode(test[0])
    rec: dict[str, Any] = {"kind": "final", "model": kind, "preset": preset.name, "steps": int(result.step),
                           "steps_planned": preset.steps[kind], "budget_s": budget_s,
                           "cut_by_budget": bool(result.stopped_early), "train_time_s": round(clock["train_s"], 2),
                           "parameters": count_params(model), "test_sentences": len(test[0]),
                           "size": preset.lstm if kind == "lstm" else preset.transformer}
    tokens = sum(int(b["tgt_lengths"].sum()) for b in data.epoch_batches(seed=config.seed, epoch=0,
                                                                          tokens=config.batch_size * config.seq_len))
    per_step = tokens / max(1, data.batches_per_epoch(config.batch_size * config.seq_len))
    rec["train_target_tokens_per_s"] = round(per_step * result.step / max(clock["train_s"], 1e-9), 1)
    steady = steady_tokens_per_s(marks, per_step)
    rec["steady_target_tokens_per_s"] = None if steady is None else round(steady, 1)
    for beam in (1, 5):
        tr.translate_ids(src_ids[:preset.decode_rows], beam=beam)  # compile the shortest bucket first
        t0 = time.perf_counter()
        ids, shapes = tr.translate_ids(src_ids, beam=beam)
        dt = time.perf_counter() - t0  # includes compiling the buckets not yet seen (counted below)
        hyps = [tok.decode(y) for y in ids]
        out_tokens = sum(len(y) + 1 for y in ids)
        sc = score(hyps, test[1])
        rec[f"beam{beam}"] = {**sc, "decode_s": round(dt, 2), "sentences_per_s": round(len(ids) / dt, 2),
                              "ms_per_output_token": round(1000 * dt / out_tokens, 3), "compiled_shapes": shapes}
        if warm_decode:  # the same sentences again, every shape compiled: decoding alone
            t0 = time.perf_counter()
            warm_ids, _ = tr.translate_ids(src_ids, beam=beam)
            wdt = time.perf_counter() - t0
            rec[f"beam{beam}"]["warm"] = {
                "decode_s": round(wdt, 3), "sentences_per_s": round(len(warm_ids) / wdt, 2),
                "ms_per_output_token": round(1000 * wdt / sum(len(y) + 1 for y in warm_ids), 4)}
        if beam == 5:
            rec["examples"] = [{"src": s, "hyp": h, "ref": r} for s, h, r in zip(test[0][:3], hyps[:3], test[1][:3])]
            rec["attention"] = _heatmaps(model, kind, tok, test[0][:3], hyps[:3])
    # Training, evaluations and scoring in this invocation (a resumed run counts only its last part).
    rec["wall_s"] = round(time.perf_counter() - wall_t0, 1)
    rec["resumed"] = bool(curve)
    rec["platform"] = jax.default_backend()
    rec["host_matmul_gflops"] = round(host_gflops, 1)
    base.append_record(results, rec)
    return rec


def steady_tokens_per_s(marks: Sequence[tuple[int, float]], tokens_per_step: float, *,
                        outlier: float = 5.0) -> float | None:
    """Training throughput without compiling: target tokens/s from (step, training seconds) marks taken after
    each dispatched step, over the second half of the marks (all of them below 6), leaving out the intervals
    over `outlier` times the median (a new bucket shape compiling, an evaluation). None below two marks."""
    marks = list(marks[len(marks) // 2:] if len(marks) >= 6 else marks)
    per_step = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(marks, marks[1:]) if b[0] > a[0]]
    if not per_step:
        return None
    median = sorted(per_step)[len(per_step) // 2]
    kept = [d for d in per_step if d <= outlier * median]
    return tokens_per_step * len(kept) / max(sum(kept), 1e-12)


def shortened_preset(p: Preset, *, max_steps: int | None = None, decode_sentences: int | None = None) -> Preset:
    """`p` for a short run (`translate study --max-steps/--decode-sentences`, scripts/gpu_verdict.sh): at most
    `max_steps` training steps per model, the first `decode_sentences` test sentences and at most that many
    validation sentences; named `<name>-steps<N>-decode<M>` (the parts given), so its records, its default
    folder and its "finished" models stay apart from the full preset's."""
    name, changes = p.name, {}
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {max_steps!r}")
        name += f"-steps{max_steps}"
        changes["steps"] = {k: min(v, max_steps) for k, v in p.steps.items()}
    if decode_sentences is not None:
        if decode_sentences < 1:
            raise ValueError(f"--decode-sentences must be >= 1, got {decode_sentences!r}")
        name += f"-decode{decode_sentences}"
        changes["test_sentences"] = min(p.test_sentences or decode_sentences, decode_sentences)
        changes["val_sentences"] = min(p.val_sentences, decode_sentences)
    return dataclasses.replace(p, name=name, **changes)


def run_study(preset: str | Preset, out: str | Path | None = None, *, models: Sequence[str] = MODELS,
              budget_s: float | None = None, force: bool = False, progress: bool = True,
              max_steps: int | None = None, decode_sentences: int | None = None) -> Path:
    """Train and score both models into `out` (resumable); returns the report's path.

    `max_steps` / `decode_sentences` make a short run of the preset (`shortened_preset`: its own name, so
    its records never pass for the full preset's), which also times a second, compiled decoding pass.
    """
    from jaxseq.data import multi30k as M
    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.studies import base

    p = PRESETS[preset] if isinstance(preset, str) else preset
    if isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"--models: expected a subset of {', '.join(MODELS)}, got {m!r}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"--budget-s must be > 0 seconds, got {budget_s!r}")
    short = max_steps is not None or decode_sentences is not None
    if short:
        p = shortened_preset(p, max_steps=max_steps, decode_sentences=decode_sentences)
    out = base.resolve_out(out, "translation", *(() if p.name == "default" else (p.name,)))
    out.mkdir(parents=True, exist_ok=True)
    tok, data = prepare_run(out, vocab_size=p.vocab_size, train_pairs=p.train_pairs, boundaries=p.boundaries)
    test = M.load_split("test_2016_flickr")
    if p.test_sentences is not None:
        test = (test[0][:p.test_sentences], test[1][:p.test_sentences])
    padding = M.padding_share(data.epoch_batches(seed=0, epoch=0, tokens=p.tokens_per_batch))
    plan = {"preset": dataclasses.asdict(p), "budget_s": budget_s, "tokenizer_sha256": tok.sha256,
            "vocab_size": tok.vocab_size, "padding_share": padding,
            "batches_per_epoch": data.batches_per_epoch(p.tokens_per_batch)}
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    done = {r["model"] for r in base.own_records(read_jsonl(out / RESULTS))
            if r.get("kind") == "final" and r.get("preset") == p.name}
    for kind in models:
        if kind in done and not force:
            print(f"{kind}: already finished in {out / RESULTS}; skipped (--force reruns the scoring)",
                  file=sys.stderr)
            continue
        run_model(kind, p, out, tok, data, budget_s=budget_s, test=test, progress=progress, warm_decode=short)
    return write_report(out)


def run_preset(preset: str, out: str | Path | None = None) -> Path:
    """`jaxseq translate study --preset PRESET`: both systems trained and scored into `out` (resumable);
    returns REPORT.md's path (the study contract's entry point)."""
    return run_study(preset, out, progress=False)


# ------------------------------------------------------------------------------------- report


def write_folder_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and plots) of a results folder from its records alone (the study contract's name)."""
    return write_report(out, plots=plots)


def write_report(out: str | Path, *, plots: bool = True) -> Path:
    """REPORT.md (and PNG plots) from `out/results.jsonl` alone (one machine's records)."""
    from jaxseq.bench.sweep import read_jsonl
    from jaxseq.studies import base

    out = Path(out)
    chosen = base.select_machine(read_jsonl(out / RESULTS))
    records, note = chosen.records, chosen.note()
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").is_file() else {}
    finals = {r["model"]: r for r in records if r.get("kind") == "final"}
    curves = {m: sorted((r for r in records if r.get("kind") == "curve" and r.get("model") == m),
                        key=lambda r: r["step"]) for m in MODELS}
    lines = ["# Translation study: GNMT-style LSTM vs Transformer, Multi30k En→De", ""]
    if records:
        lines += [note, ""]
    if plan:
        pr = plan["preset"]
        lines += [f"Preset `{pr['name']}`: joint SentencePiece vocabulary of {plan['vocab_size']} (trained on the "
                  f"training split only), {pr['train_pairs'] or 29000} training pairs, {pr['tokens_per_batch']} "
                  f"token slots per batch in length buckets ({plan['batches_per_epoch']} batches per epoch; "
                  f"{100 * plan['padding_share']['all']:.1f}% of positions are padding), label smoothing "
                  f"{pr['label_smoothing']}; steps {pr['steps']}"
                  + (f"; wall-clock cap {plan['budget_s']} s per model" if plan.get("budget_s") else "") + ".", ""]
    if finals:
        lines += ["| model | parameters | steps | training time | target tokens/s | test BLEU greedy | test BLEU "
                  "beam 5 | chrF beam 5 | decode sent/s (beam 1 / 5) | ms per output token (beam 1 / 5) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for m, r in finals.items():
            b1, b5 = r["beam1"], r["beam5"]
            cut = " (cut by the cap)" if r.get("cut_by_budget") else ""
            lines.append(f"| {m} | {r['parameters']:,} | {r['steps']}{cut} | {r['train_time_s']:.0f} s | "
                         f"{r['train_target_tokens_per_s']:.0f} | {b1['bleu']:.2f} | {b5['bleu']:.2f} | "
                         f"{b5['chrf']:.2f} | {b1['sentences_per_s']:.1f} / {b5['sentences_per_s']:.1f} | "
                         f"{b1['ms_per_output_token']:.2f} / {b5['ms_per_output_token']:.2f} |")
        sig = next(iter(finals.values()))["beam5"]["bleu_signature"]
        lines += ["", f"BLEU on test_2016_flickr ({next(iter(finals.values()))['test_sentences']} sentences), "
                      f"sacrebleu signature `{sig}`. Decoding times include compiling bucket shapes not seen in the "
                      "warm-up batch.", ""]
        lines += ["## Findings", ""] + _findings(finals, curves) + [""]
        for m, r in finals.items():
            lines += [f"### {m}: examples (beam 5)", ""]
            for ex in r.get("examples", []):
                lines += [f"- src: {ex['src']}", f"  - hyp: {ex['hyp']}", f"  - ref: {ex['ref']}"]
            lines.append("")
    else:
        lines += ["No model has finished yet.", ""]
    if plots:
        for name in _plots(out, finals, curves):
            lines += [f"![{name}]({name})", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def _first_time_to(curve: list[dict], bleu: float, field: str = "train_time_s") -> float | None:
    """`field` (training time or step) of the first evaluation at or above `bleu`, None if none."""
    for r in curve:
        if r["val_bleu"] >= bleu:
            return r[field]
    return None


#: Beam-5 translation of the test set on the CPU must take under this (issue 14).
DECODE_GOAL_S = 60.0
#: The default preset (both models: training, evaluations, scoring) must finish within this (issue 14).
STUDY_GOAL_S = 3600.0


def _findings(finals: dict, curves: dict) -> list[str]:
    out = []
    tps = {m: finals[m]["train_target_tokens_per_s"] for m in finals}
    if len(finals) == 2:
        best = max(finals, key=lambda m: finals[m]["beam5"]["bleu"])
        other = next(m for m in finals if m != best)
        out.append(f"- The {best} reaches the higher test BLEU (beam 5): {finals[best]['beam5']['bleu']:.2f} against "
                   f"{finals[other]['beam5']['bleu']:.2f} for the {other}.")
        ratio = finals["transformer"]["parameters"] / finals["lstm"]["parameters"]
        out.append(f"- Parameters: Transformer {finals['transformer']['parameters']:,}, LSTM "
                   f"{finals['lstm']['parameters']:,} ({ratio:.2f}×).")
        faster = max(tps, key=tps.get)
        out.append(f"- Training throughput: the {faster} processes {tps[faster] / min(tps.values()):.2f}× the target "
                   f"tokens per second of the other on this machine.")
    for target in (30.0, 34.0):
        times = {m: _first_time_to(c, target) for m, c in curves.items() if c}
        if any(t is not None for t in times.values()):
            first = min((m for m in times if times[m] is not None), key=lambda m: times[m])
            rest = ", ".join(f"{m} {'never' if t is None else f'{t:.0f} s'}" for m, t in times.items())
            out.append(f"- First to {target:.0f} validation BLEU (greedy) in training wall-clock time: {first} ({rest}).")
            steps = {m: _first_time_to(c, target, "step") for m, c in curves.items() if c}
            if target == 30.0 and len(finals) == 2 and all(v is not None for v in steps.values()):
                other = next(m for m in finals if m != first)
                head = (f"- The {first} gets to 30 first although it trains fewer target tokens per second"
                        if tps[first] < tps[other] else
                        f"- The {first} gets to 30 first and also trains more target tokens per second")
                tail = ("; on this machine its lead comes from learning more per step, not from faster (parallel) "
                        "training" if tps[first] < tps[other] else "")
                out.append(f"{head} ({tps[first]:.0f} vs {tps[other]:.0f}): it needs {steps[first]} steps against "
                           f"{steps[other]} for the {other}{tail}.")
        elif times:
            out.append(f"- No model reached {target:.0f} validation BLEU (greedy) in this run.")
    for m, f in finals.items():
        b5 = f.get("beam5") or {}
        if "decode_s" in b5:
            # The goal is for the whole test set on the CPU; other runs get their time without a verdict.
            on_goal = f.get("platform", "cpu") == "cpu" and f["test_sentences"] == 1000
            verdict = (("under" if b5["decode_s"] < DECODE_GOAL_S else "NOT under") + f" the {DECODE_GOAL_S:.0f} s "
                       "goal; " if on_goal else "")
            out.append(f"- Decoding: the {m} translates the {f['test_sentences']} test sentences with beam 5 in "
                       f"{b5['decode_s']:.1f} s ({verdict}greedy "
                       f"{(f.get('beam1') or {}).get('decode_s', float('nan')):.1f} s)"
                       + (f"; compiled, a second pass: beam 5 {b5['warm']['decode_s']:.2f} s, "
                          f"{b5['warm']['ms_per_output_token']:.3f} ms per output token" if b5.get("warm") else "")
                       + ".")
    steady = {m: f["steady_target_tokens_per_s"] for m, f in finals.items() if f.get("steady_target_tokens_per_s")}
    if steady:
        out.append("- Training throughput without compiling (second half of the steps, pauses over 5x the median "
                   "step left out): " + ", ".join(f"{m} {v:,.0f}" for m, v in steady.items()) + " target tokens/s.")
    walls = {m: f["wall_s"] for m, f in finals.items() if "wall_s" in f}
    if walls:
        resumed = [m for m in walls if finals[m].get("resumed")]
        total = sum(walls.values())
        parts = ", ".join(f"{m} {w / 60:.1f} min" for m, w in walls.items())
        # The goal is the default preset's; other presets get their time without a verdict.
        verdict = (", " + ("within" if total <= STUDY_GOAL_S else "NOT within")
                   + f" the {STUDY_GOAL_S / 60:.0f}-minute goal"
                   if all(finals[m].get("preset") == "default" for m in walls) else "")
        speed = {m: finals[m]["host_matmul_gflops"] for m in walls if "host_matmul_gflops" in finals[m]}
        out.append(f"- Study wall-clock on this machine (training, evaluations and scoring): {parts}; "
                   f"{total / 60:.1f} min in all{verdict}"
                   + (f" (resumed, so only the last part counted: {', '.join(resumed)})" if resumed else "") + "."
                   + (" Host speed anchor measured before each model (float32 2048×2048 matmul): "
                      + ", ".join(f"{m} {g:.0f} GFLOP/s" for m, g in speed.items()) + "." if speed else ""))
    return out or ["- Not enough finished models for a comparison."]


def _plots(out: Path, finals: dict, curves: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if any(curves.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, c in curves.items():
            if c:
                ax.plot([r["train_time_s"] for r in c], [r["val_bleu"] for r in c], marker="o", label=m)
        ax.set_xlabel("training wall-clock time (s)")
        ax.set_ylabel("validation BLEU (greedy)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "bleu_vs_time.png", dpi=110)
        plt.close(fig)
        names.append("bleu_vs_time.png")
    for m, r in finals.items():
        maps = r.get("attention") or []
        if not maps:
            continue
        fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 4.5))
        for ax, hm in zip(np.atleast_1d(axes), maps):
            ax.imshow(np.asarray(hm["weights"]), aspect="auto", cmap="Greys")
            ax.set_xticks(range(len(hm["src"])), hm["src"], rotation=90, fontsize=6)
            ax.set_yticks(range(len(hm["tgt"])), hm["tgt"], fontsize=6)
        fig.suptitle(f"{m}: " + ("attention weights" if m == "lstm" else "last decoder layer, cross-attention head 0"))
        fig.tight_layout()
        fig.savefig(out / f"attention_{m}.png", dpi=110)
        plt.close(fig)
        names.append(f"attention_{m}.png")
    return names


# ---------------------------------------------------------------------------------------- CLI


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


def long_lines_warning(src_ids: Sequence[np.ndarray], trained_max_len: int, *, name: str = "--input") -> str | None:
    """One line naming the (1-based) lines whose sources are longer than the longest the model was trained
    on, or None. Such lines are still translated, from their first `trained_max_len` tokens (see
    `Translator`): the warning says so, since the rest of the line is not translated."""
    long = [(i, len(y)) for i, y in enumerate(src_ids, 1) if len(y) > trained_max_len]
    if not long:
        return None
    shown = ", ".join(f"{i} ({n} tokens)" for i, n in long[:10])
    if len(long) > 10:
        shown += f" and {len(long) - 10} more"
    return (f"warning: {name} line{'s' if len(long) > 1 else ''} {shown} "
            f"{'are' if len(long) > 1 else 'is'} longer than the longest the model was trained on "
            f"({trained_max_len} tokens, the run's largest length bucket); translating only the first "
            f"{trained_max_len} tokens of each, expect a poor translation")


def _cmd_train(a: argparse.Namespace) -> int:
    from jaxseq.train.loop import train

    p = PRESETS[a.preset]
    tok, data = prepare_run(a.workdir, vocab_size=a.vocab_size or p.vocab_size,
                            train_pairs=p.train_pairs if a.train_pairs is None else a.train_pairs,
                            data_dir=a.data_dir, boundaries=p.boundaries)
    config = train_config(a.model, p, a.workdir, steps=a.steps, lr=a.lr, parallel=a.parallel,
                          progress=not a.no_progress, d_model=a.d_model, layers=a.layers)
    result = train(config, model_fn=_model_fn, data=data, loss_fn=label_smoothed_loss(p.label_smoothing))
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


if __name__ == "__main__":
    sys.exit(main())
