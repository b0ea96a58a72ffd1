"""Character-level language modelling data: Tiny Shakespeare or a user's own text, a char vocabulary,
deterministic batches.

Batches are a pure function of (seed, step): a run restarted from a checkpoint at step `s` sees exactly
the batches an uninterrupted run would, so the data position to checkpoint is just the step.

Checksums guard the data the project ships (`data/tinyshakespeare/input.txt`): `load_charlm` verifies
that file's sha256. Any other file is the user's own and is taken as given; its vocabulary is built
from it and stored with the run (`check_run_vocab`, `WORKDIR/vocab.json`), so sampling and resuming use
the run's vocabulary and a resume on a text with another vocabulary is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

#: sha256 of karpathy/char-rnn data/tinyshakespeare/input.txt (see data/tinyshakespeare/README.md).
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
#: The file inside the repository: jaxseq/data/charlm.py -> <repo>/data/tinyshakespeare/input.txt.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "tinyshakespeare" / "input.txt"
TRAIN_FRACTION = 0.9
#: The run's vocabulary, next to config.json in a `jaxseq train` workdir.
VOCAB_FILE = "vocab.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CharVocab:
    """Sorted distinct characters of a text; id = position in `chars`."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(f"text: characters {unknown!r} are not in the vocabulary")
        return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


@dataclass(frozen=True)
class CharLMData:
    """Encoded train/validation token streams (int32) and their vocabulary."""

    train: np.ndarray
    valid: np.ndarray
    vocab: CharVocab
    source: str | None = None  # the text file it was read from, if any
    sha256: str | None = None  # of that file

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    # The data protocol of `jaxseq.train.loop.train` (any object with these three members will do).
    def train_batch(self, *, seed: int, step: int, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        return batch_at(self.train, seed=seed, step=step, batch_size=batch_size, seq_len=seq_len)

    def eval_batches(
        self, *, batch_size: int, seq_len: int, max_batches: int | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        return eval_batches(self.valid, batch_size=batch_size, seq_len=seq_len, max_batches=max_batches)


def from_text(text: str, *, train_fraction: float = TRAIN_FRACTION) -> CharLMData:
    """Split `text` (first `train_fraction` of characters train, the rest validate) and encode it."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: expected a value in (0, 1), got {train_fraction}")
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    n = int(len(ids) * train_fraction)
    return CharLMData(train=ids[:n], valid=ids[n:], vocab=vocab)


def load_tinyshakespeare(path: str | Path | None = None, *, verify: bool = True) -> CharLMData:
    """Load Tiny Shakespeare, check its sha256, and split it 90/10."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: Tiny Shakespeare not found (expected the file with sha256 {TINYSHAKESPEARE_SHA256}; "
            "see data/tinyshakespeare/README.md)"
        )
    if verify:
        digest = sha256_file(path)
        if digest != TINYSHAKESPEARE_SHA256:
            raise ValueError(
                f"{path}: sha256 {digest} does not match the expected Tiny Shakespeare checksum "
                f"{TINYSHAKESPEARE_SHA256}"
            )
    data = from_text(path.read_text(encoding="utf-8"))
    return CharLMData(data.train, data.valid, data.vocab, source=str(path),
                      sha256=digest if verify else None)


def is_shipped(path: str | Path) -> bool:
    """True for the Tiny Shakespeare file inside the repository (the one with a known checksum)."""
    try:
        return Path(path).resolve() == DEFAULT_PATH.resolve()
    except OSError:
        return False


def load_text_file(path: str | Path, *, train_fraction: float = TRAIN_FRACTION) -> CharLMData:
    """A user's own UTF-8 text file, taken as given (no checksum); the vocabulary is built from it.

    Raises FileNotFoundError for a missing file and ValueError for an empty or non-UTF-8 one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such text file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text:
        raise ValueError(f"{path}: the file is empty")
    data = from_text(text, train_fraction=train_fraction)
    return CharLMData(data.train, data.valid, data.vocab, source=str(path),
                      sha256=hashlib.sha256(raw).hexdigest())


def load_charlm(path: str | Path | None = None) -> CharLMData:
    """Tiny Shakespeare (None or the shipped file: sha256 verified), else the user's file as given."""
    if path is None or is_shipped(path):
        return load_tinyshakespeare(path)
    return load_text_file(path)


def check_run_vocab(workdir: str | Path, data: CharLMData, *, write: bool = True) -> str | None:
    """Store `data`'s vocabulary with the run, or check it against the one already stored.

    The first run of a workdir writes `WORKDIR/vocab.json` (when `write`); a later run (a resume)
    must bring the same vocabulary, else ValueError (one line) saying what differs. Returns a note
    for the log when the text differs from the run's original but its vocabulary does not, else None.
    """
    file = Path(workdir) / VOCAB_FILE
    source = data.source or "the data"
    if not file.is_file():
        if write:
            file.write_text(json.dumps({"chars": data.vocab.chars, "size": data.vocab.size,
                                        "source": data.source, "sha256": data.sha256}, indent=2) + "\n")
        return None
    stored = load_vocab(file)
    saved = json.loads(file.read_text(encoding="utf-8"))
    if stored.chars != data.vocab.chars:
        new = sorted(set(data.vocab.chars) - set(stored.chars))
        gone = sorted(set(stored.chars) - set(data.vocab.chars))
        raise ValueError(
            f"--data-path: the vocabulary of {source} ({data.vocab.size} characters) differs from the one"
            f" stored with this run in {file} ({stored.size} characters, from {saved.get('source')}):"
            f" {_few(new)} new, {_few(gone)} missing; resume with the run's text or use a new --workdir"
        )
    if data.sha256 and saved.get("sha256") and data.sha256 != saved.get("sha256"):
        return (f"{source} differs from the run's original text ({saved.get('source')}) but has the same"
                " vocabulary; continuing on it")
    return None


def _few(chars: list[str], limit: int = 10) -> str:
    shown = "".join(chars[:limit])
    return f"{len(chars)} ({shown!r}{'...' if len(chars) > limit else ''})" if chars else "0"


def load_vocab(path: str | Path) -> CharVocab:
    """The vocabulary stored in a run's `vocab.json` (the file, or the workdir holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / VOCAB_FILE
    try:
        chars = json.loads(path.read_text(encoding="utf-8"))["chars"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a vocabulary file ({e})") from None
    if not isinstance(chars, str) or len(set(chars)) != len(chars):
        raise ValueError(f"{path}: 'chars' must be a string of distinct characters")
    return CharVocab(chars)


def batch_at(tokens: np.ndarray, *, seed: int, step: int, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
    """The training batch of `step`: `batch_size` random windows of `seq_len + 1` tokens.

    Random offsets come from numpy's generator seeded with (seed, step), so the batch depends on nothing
    else (no iterator state to checkpoint). Returns {"inputs", "targets"} int32 [batch, seq_len].
    """
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"batch_size/seq_len: expected positive values, got {batch_size}/{seq_len}")
    if len(tokens) < seq_len + 2:
        raise ValueError(f"seq_len: {seq_len} is too long for a token stream of length {len(tokens)}")
    rng = np.random.default_rng([int(seed), int(step)])
    offsets = rng.integers(0, len(tokens) - seq_len - 1, size=batch_size)
    windows = tokens[offsets[:, None] + np.arange(seq_len + 1)[None, :]]
    return {"inputs": windows[:, :-1].astype(np.int32), "targets": windows[:, 1:].astype(np.int32)}


def eval_batches(
    tokens: np.ndarray, *, batch_size: int, seq_len: int, max_batches: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Non-overlapping windows over `tokens` in order (the same every time), `batch_size` per batch.

    Only whole batches are produced, so every eval batch has the same shape (one compilation).
    """
    n_windows = (len(tokens) - 1) // seq_len
    n_batches = n_windows // batch_size
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    if n_batches == 0:
        raise ValueError(
            f"eval: the validation stream ({len(tokens)} tokens) is shorter than one batch "
            f"of {batch_size} x {seq_len}"
        )
    idx = np.arange(seq_len + 1)
    for b in range(n_batches):
        starts = (b * batch_size + np.arange(batch_size)) * seq_len
        windows = tokens[starts[:, None] + idx[None, :]]
        yield {"inputs": windows[:, :-1].astype(np.int32), "targets": windows[:, 1:].astype(np.int32)}
