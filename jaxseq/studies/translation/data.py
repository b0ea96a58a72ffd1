"""The input pipeline: bucketed Multi30k batches for the training engine (`TranslationData`), and a
workdir's tokenizer and data settings (`prepare_run`, `settings_path`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from jaxseq.studies.translation.presets import SETTINGS, TOKENIZER


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


def settings_path(workdir: Path) -> Path:
    """The data settings file of a run's workdir (`translate.json`: vocabulary, training pairs, buckets)."""
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
    path = settings_path(workdir)
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
