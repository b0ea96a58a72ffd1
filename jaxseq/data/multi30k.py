"""Multi30k task 1 (English -> German): sentence pairs, subword tokens, length-bucketed batches.

* The shipped files (``data/multi30k/``: train 29,000 pairs, val 1,014, test_2016_flickr 1,000) are verified by
  sha256 before use; a ``data_dir`` a user passes is taken as given (``<split>.<lang>`` files, aligned by line).
* Tokens: one joint SentencePiece unigram model over both languages, trained on the training split only. Joint,
  because English and German share names, numbers and many subwords, and one table lets the Transformer share its
  embeddings and tie the target softmax; ``train_tokenizer`` is deterministic (one thread, no sampling of the
  input, identity normalisation so that ``decode(encode(s)) == s``), and ``cached_tokenizer`` stores the model
  beside the run.
* Batches: pairs are grouped by length into buckets of fixed shape ``[rows, boundary]`` (rows = tokens per batch //
  boundary), so a jitted step compiles once per bucket; ``padding_share`` reports how much of a batch is padding.

Token ids: ``PAD=0, UNK=1, BOS=2, EOS=3``. A batch is a dict of int32 NumPy arrays::

    src         [rows, S]   source ids, PAD after src_lengths
    src_lengths [rows]      0 for the filler rows that complete a bucket's last batch
    tgt_in      [rows, S]   BOS y_1 ... y_n  (teacher forcing input)
    tgt_out     [rows, S]   y_1 ... y_n EOS  (labels; PAD where tgt_in is PAD)
    tgt_lengths [rows]      n + 1
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from jaxseq.data.m4 import verify_sha256

__all__ = [
    "SPLITS", "LANGS", "SHIPPED_DIR", "SHIPPED_SHA256", "PAD", "UNK", "BOS", "EOS", "DEFAULT_BOUNDARIES",
    "read_lines", "load_split", "Tokenizer", "train_tokenizer", "cached_tokenizer", "bucket_of",
    "make_batches", "padding_share",
]

SPLITS = ("train", "val", "test_2016_flickr")
LANGS = ("en", "de")
SHIPPED_DIR = Path(os.environ.get("JAXSEQ_MULTI30K_DIR",
                                  Path(__file__).resolve().parents[2] / "data" / "multi30k"))
# sha256 of the shipped files; their provenance and checks are recorded in data/multi30k/README.md.
SHIPPED_SHA256: dict[str, str] = {
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "test_2016_flickr.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test_2016_flickr.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
}
PAD, UNK, BOS, EOS = 0, 1, 2, 3
# Multi30k sentences are 14 subword tokens at the median and 55 at most (8k joint vocabulary): most buckets are short.
DEFAULT_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)


def read_lines(path: str | os.PathLike, *, name: str = "file") -> list[str]:
    """The lines of a UTF-8 text file without their line ends (FileNotFoundError / ValueError if missing or empty)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"{name}: {path} is empty; expected one sentence per line")
    return [ln.rstrip("\r") for ln in lines]


def load_split(split: str, *, src: str = "en", tgt: str = "de",
               data_dir: str | os.PathLike | None = None) -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of one split, aligned by index.

    ``data_dir=None`` reads the shipped ``data/multi30k/`` files after checking their sha256; a user's folder
    with ``<split>.<lang>`` files is taken as given (only the line counts must agree).
    """
    if split not in SPLITS and data_dir is None:
        raise ValueError(f"split must be one of {', '.join(SPLITS)} for the shipped data, got {split!r}")
    for name, lang in (("src", src), ("tgt", tgt)):
        if lang not in LANGS and data_dir is None:
            raise ValueError(f"{name} must be one of {', '.join(LANGS)}, got {lang!r}")
    if src == tgt:
        raise ValueError(f"src and tgt must differ, got {src!r} for both")
    folder = SHIPPED_DIR if data_dir is None else Path(data_dir)
    pair = []
    for lang in (src, tgt):
        path = folder / f"{split}.{lang}"
        if data_dir is None:
            verify_sha256(path, SHIPPED_SHA256[path.name])
        pair.append(read_lines(path, name=f"{split}.{lang}"))
    if len(pair[0]) != len(pair[1]):
        raise ValueError(f"{split}: {src} has {len(pair[0])} lines but {tgt} has {len(pair[1])}; "
                         "expected aligned files with one sentence per line")
    return pair[0], pair[1]


class Tokenizer:
    """A SentencePiece model (PAD 0, UNK 1, BOS 2, EOS 3) held as its serialised bytes."""

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm  # lazily: only translation needs it

        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        if (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id()) != (PAD, UNK, BOS, EOS):
            raise ValueError("model_proto: expected a SentencePiece model with pad 0, unk 1, bos 2, eos 3 "
                             f"(train_tokenizer makes one), got {self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id()}")

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_proto).hexdigest()

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each sentence (no BOS/EOS), int32."""
        if isinstance(sentences, str):
            raise TypeError("sentences must be a list of strings, got one str")
        return [np.asarray(ids, np.int32) for ids in self._sp.encode(list(sentences))]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of one id sequence; stops at the first EOS and drops PAD/BOS."""
        out = []
        for i in np.asarray(list(ids)).tolist():
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(int(i))
        return self._sp.decode(out)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The subword strings of ``ids`` (for plots and debugging)."""
        return [self._sp.id_to_piece(int(i)) for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        _atomic_write(Path(path), self.model_proto)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        return cls(Path(path).read_bytes())


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def train_tokenizer(texts: Sequence[str], *, vocab_size: int = 8000, model_type: str = "unigram") -> Tokenizer:
    """Train a SentencePiece model on ``texts`` (deterministic: the same texts give the same bytes)."""
    import sentencepiece as spm

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
        raise ValueError(f"vocab_size must be an int >= 8, got {vocab_size!r}")
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("texts: expected at least one non-empty sentence")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        # Determinism: one thread, every sentence used in order; identity normalisation keeps decode exact.
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
        normalization_rule_name="identity", hard_vocab_limit=False, minloglevel=2)
    return Tokenizer(buf.getvalue())


def cached_tokenizer(path: str | os.PathLike, texts: Sequence[str], *, vocab_size: int = 8000,
                     model_type: str = "unigram") -> Tokenizer:
    """Load the model at ``path`` if it was trained on the same texts and settings, else train and store it.

    A sidecar ``<path>.json`` records the settings and the sha256 of the training text, so a cache made from
    other data or settings is never reused silently (it is retrained and replaced).
    """
    path = Path(path)
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    meta = {"vocab_size": vocab_size, "model_type": model_type, "texts_sha256": digest, "sentences": len(texts)}
    meta_path = path.with_name(path.name + ".json")
    if path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return Tokenizer.load(path)
        except (ValueError, OSError):
            pass  # a torn or foreign cache: train again
    tok = train_tokenizer(texts, vocab_size=vocab_size, model_type=model_type)
    tok.save(path)
    _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return tok


def bucket_of(length: int, boundaries: Sequence[int] = DEFAULT_BOUNDARIES) -> int:
    """The smallest boundary >= ``length`` (ValueError past the largest)."""
    for b in boundaries:
        if length <= b:
            return int(b)
    raise ValueError(f"length {length} exceeds the largest bucket boundary {boundaries[-1]}")


def _check_boundaries(boundaries: Sequence[int]) -> tuple[int, ...]:
    b = tuple(int(x) for x in boundaries)
    if not b or any(x < 2 for x in b) or list(b) != sorted(set(b)):
        raise ValueError(f"boundaries must be increasing ints >= 2, got {boundaries!r}")
    return b


def make_batches(src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray], *, tokens_per_batch: int = 2048,
                 boundaries: Sequence[int] = DEFAULT_BOUNDARIES, shuffle: bool = True, seed: int = 0,
                 epoch: int = 0, drop_longer: bool = True, row_multiple: int = 1) -> list[dict[str, np.ndarray]]:
    """Length-bucketed batches of one pass over the pairs (see the module docstring for the layout).

    A pair goes to the bucket of ``max(len(src), len(tgt) + 1)`` (the target gains BOS/EOS); each bucket's
    batches have ``tokens_per_batch // boundary`` rows (at least 1), its last batch filled with empty rows
    (length 0). With ``shuffle``, pairs are shuffled within buckets and batches across buckets by
    ``(seed, epoch)``; without it, the order is by bucket then by index. Pairs longer than the largest
    boundary are skipped when ``drop_longer`` (else ValueError). ``row_multiple`` rounds each bucket's rows
    down to a multiple of it (at least one multiple), so a batch splits evenly over that many devices.
    """
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"src_ids and tgt_ids must have the same length, got {len(src_ids)} and {len(tgt_ids)}")
    if isinstance(tokens_per_batch, bool) or not isinstance(tokens_per_batch, int) or tokens_per_batch < 1:
        raise ValueError(f"tokens_per_batch must be a positive int, got {tokens_per_batch!r}")
    if isinstance(row_multiple, bool) or not isinstance(row_multiple, int) or row_multiple < 1:
        raise ValueError(f"row_multiple must be a positive int, got {row_multiple!r}")
    bounds = _check_boundaries(boundaries)
    groups: dict[int, list[int]] = {b: [] for b in bounds}
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        need = max(len(s), len(t) + 1)
        if need > bounds[-1]:
            if drop_longer:
                continue
            raise ValueError(f"pair {i} needs {need} positions, more than the largest boundary {bounds[-1]}")
        groups[bucket_of(need, bounds)].append(i)
    rng = np.random.default_rng([seed, epoch])
    out: list[dict[str, np.ndarray]] = []
    for b, idx in groups.items():
        if not idx:
            continue
        idx = np.asarray(idx)
        if shuffle:
            idx = idx[rng.permutation(len(idx))]
        rows = max(row_multiple, tokens_per_batch // b // row_multiple * row_multiple)
        for start in range(0, len(idx), rows):
            out.append(_pack([src_ids[i] for i in idx[start:start + rows]],
                             [tgt_ids[i] for i in idx[start:start + rows]], rows, b))
    if shuffle:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def _pack(srcs: list[np.ndarray], tgts: list[np.ndarray], rows: int, width: int) -> dict[str, np.ndarray]:
    batch = {k: np.full((rows, width), PAD, np.int32) for k in ("src", "tgt_in", "tgt_out")}
    batch["src_lengths"] = np.zeros(rows, np.int32)
    batch["tgt_lengths"] = np.zeros(rows, np.int32)
    for r, (s, t) in enumerate(zip(srcs, tgts)):
        batch["src"][r, :len(s)] = s
        batch["src_lengths"][r] = len(s)
        batch["tgt_in"][r, 0] = BOS
        batch["tgt_in"][r, 1:len(t) + 1] = t
        batch["tgt_out"][r, :len(t)] = t
        batch["tgt_out"][r, len(t)] = EOS
        batch["tgt_lengths"][r] = len(t) + 1
    return batch


def padding_share(batches: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """Share of padded positions in the source and target tensors of ``batches`` (0 = no padding)."""
    slots = {"src": 0, "tgt": 0}
    real = {"src": 0, "tgt": 0}
    for b in batches:
        slots["src"] += b["src"].size
        slots["tgt"] += b["tgt_in"].size
        real["src"] += int(b["src_lengths"].sum())
        real["tgt"] += int(b["tgt_lengths"].sum())
    if not slots["src"]:
        raise ValueError("batches: expected at least one batch")
    share = {k: 1.0 - real[k] / slots[k] for k in slots}
    share["all"] = 1.0 - (real["src"] + real["tgt"]) / (slots["src"] + slots["tgt"])
    return share
