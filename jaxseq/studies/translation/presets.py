"""The translation study's presets and file names: `Preset`, `PRESETS`, the records' and a run's files."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
