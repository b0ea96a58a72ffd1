"""Token embeddings (Flax NNX) and a loader for word2vec / GloVe text vectors."""
from __future__ import annotations

import gzip
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.signature import init_signature

Array = jax.Array
UNKNOWN_INITS = ("normal", "uniform", "zeros")


@init_signature
class FrozenParam(nnx.Variable):
    """A parameter that training leaves alone: it is not an ``nnx.Param``, so ``nnx.split(m,
    nnx.Param, ...)``, ``nnx.grad`` and ``nnx.Optimizer(m, tx, wrt=nnx.Param)`` skip it."""


@init_signature
class Embedding(nnx.Module):
    """Token embedding table built on ``nnx.Embed``.

    ``Embedding(num_embeddings, features, *, dtype=None, param_dtype=float32, rngs)``;
    ``__call__(ids [...] int) -> [..., features]``; ``attend(x [..., features]) -> [...,
    num_embeddings]`` (tied output layer). The table is ``self.embed.embedding``.
    """

    def __init__(self, num_embeddings: int, features: int, *, dtype: Any = None,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        if not isinstance(num_embeddings, int) or num_embeddings < 1:
            raise ValueError(f"Embedding: num_embeddings must be a positive int, got {num_embeddings!r}")
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"Embedding: features must be a positive int, got {features!r}")
        self.num_embeddings = num_embeddings
        self.features = features
        self.embed = nnx.Embed(num_embeddings, features, dtype=dtype, param_dtype=param_dtype,
                               rngs=rngs)

    def __call__(self, ids: Array) -> Array:
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"Embedding: ids must be integers in [0, {self.num_embeddings}), got"
                            f" dtype {ids.dtype}")
        return self.embed(ids)

    def attend(self, x: Array) -> Array:
        """Logits against the table: ``x [..., features] -> [..., num_embeddings]``."""
        return self.embed.attend(x)

    @classmethod
    def from_pretrained(
        cls,
        matrix: Any,
        *,
        freeze: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ) -> "Embedding":
        """An embedding initialised with ``matrix [num_embeddings, features]``.

        ``freeze=True`` stores the table as :class:`FrozenParam` (not an ``nnx.Param``) so
        optimizers and ``jaxseq.nn.pure`` leave it unchanged. Use :func:`load_word_vectors` to
        build ``matrix`` from a word2vec/GloVe file.
        """
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: matrix must be [num_embeddings, features],"
                             f" got shape {matrix.shape}")
        module = cls(int(matrix.shape[0]), int(matrix.shape[1]), dtype=dtype,
                     param_dtype=param_dtype, rngs=rngs if rngs is not None else nnx.Rngs(0))
        value = jnp.asarray(matrix, dtype=param_dtype)
        if freeze:
            module.embed.embedding = FrozenParam(value)
        else:
            module.embed.embedding[...] = value
        return module


def _open_text(path: str | os.PathLike):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_word_vectors(
    path: str | os.PathLike,
    vocab: Sequence[str] | Mapping[str, int],
    *,
    dim: int | None = None,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    unknown_init: str = "normal",
    lowercase_fallback: bool = False,
) -> tuple[np.ndarray, float, list[str]]:
    """Read word vectors in word2vec/GloVe *text* format into a matrix for ``vocab``.

    The file has one ``word v1 ... vD`` per line, optionally preceded by word2vec's
    ``count dim`` header. Only the words of ``vocab`` are kept (files can be large); the first
    occurrence of a word wins. ``.gz`` files are read transparently.

    Args:
      path: the text file.
      vocab: a list of words (row i = ``vocab[i]``) or a ``{word: row}`` mapping.
      dim: expected dimension; None takes it from the header or the first vector line.
      seed, rng: the random source for unknown words (``rng`` wins if given).
      unknown_init: ``"normal"`` (N(0, s²) with s the std of the found vectors, 1 if none found),
        ``"uniform"`` (U(-s√3, s√3), same variance) or ``"zeros"``.
      lowercase_fallback: look a word up lowercased when its exact form is missing.

    Returns:
      ``(matrix float32 [len(vocab), dim], coverage = found / len(vocab), missing words)``.

    Raises:
      ValueError naming the line number on a malformed line or a dimension mismatch.
    """
    if unknown_init not in UNKNOWN_INITS:
        raise ValueError(f"load_word_vectors: unknown_init must be one of {UNKNOWN_INITS}, got"
                         f" {unknown_init!r}")
    if isinstance(vocab, Mapping):
        rows = dict(vocab)
        size = max(rows.values()) + 1 if rows else 0
        if sorted(rows.values()) != list(range(size)):
            raise ValueError("load_word_vectors: vocab mapping values must be the rows 0..n-1")
    else:
        rows = {}
        for i, word in enumerate(vocab):
            if word in rows:
                raise ValueError(f"load_word_vectors: vocab has {word!r} twice (rows {rows[word]}"
                                 f" and {i})")
            rows[word] = i
        size = len(vocab)
    if size == 0:
        raise ValueError("load_word_vectors: vocab is empty")
    wanted = dict(rows)
    if lowercase_fallback:
        for word, i in rows.items():
            wanted.setdefault(word.lower(), i)  # an exact entry, if present, wins below

    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    lineno = 0
    with _open_text(path) as f:
        try:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\r\n").rstrip(" ").split(" ")
                if parts == [""]:
                    continue  # blank lines are harmless
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    header_dim = int(parts[1])  # word2vec "count dim" header
                    if dim is not None and dim != header_dim:
                        raise ValueError(f"load_word_vectors: {path}:1: header says dim"
                                         f" {header_dim}, expected dim={dim}")
                    dim = header_dim
                    continue
                if len(parts) < 2:
                    raise ValueError(f"load_word_vectors: {path}:{lineno}: malformed line (expected"
                                     f" 'word v1 ... vD'): {line[:60]!r}")
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim:
                    # GloVe 840B has a few words containing spaces: the last `dim` fields are
                    # the vector, so a longer line is still readable; a shorter one is not.
                    if len(parts) - 1 < dim:
                        raise ValueError(
                            f"load_word_vectors: {path}:{lineno}: expected {dim} values, got"
                            f" {len(parts) - 1}"
                        )
                word = " ".join(parts[:-dim])
                row = wanted.get(word)
                if row is None or row in exact:
                    continue
                is_exact = rows.get(word) == row
                if row in found and not is_exact:
                    continue
                try:
                    vec = np.asarray(parts[-dim:], dtype=np.float32)
                except ValueError as e:
                    raise ValueError(f"load_word_vectors: {path}:{lineno}: non-numeric value for"
                                     f" {word!r}: {e}") from None
                found[row] = vec
                if is_exact:
                    exact.add(row)
        except UnicodeDecodeError as e:
            raise ValueError(f"load_word_vectors: {path}: not UTF-8 text after line {lineno}"
                             f" (binary word2vec files are not supported): {e}") from None
    if dim is None:
        raise ValueError(f"load_word_vectors: {path}: no vectors found (empty file?)")

    generator = rng if rng is not None else np.random.default_rng(seed)
    if found:
        scale = float(np.stack(list(found.values())).std()) or 1.0
    else:
        scale = 1.0
    if unknown_init == "normal":
        matrix = generator.normal(0.0, scale, size=(size, dim)).astype(np.float32)
    elif unknown_init == "uniform":
        bound = scale * np.sqrt(3.0)
        matrix = generator.uniform(-bound, bound, size=(size, dim)).astype(np.float32)
    else:
        matrix = np.zeros((size, dim), np.float32)
    for row, vec in found.items():
        matrix[row] = vec
    by_row = {i: w for w, i in rows.items()}
    missing = [by_row[i] for i in range(size) if i not in found]
    coverage = len(found) / size
    return matrix, coverage, missing
