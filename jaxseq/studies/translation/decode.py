"""Decoding: the `Translator` (bucketed batches, one compiled search per bucket shape) and the warning for
sources longer than the model was trained on."""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np


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
