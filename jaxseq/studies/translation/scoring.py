"""Scoring: BLEU and chrF (sacrebleu) of detokenised translations."""
from __future__ import annotations

from typing import Any, Sequence


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
