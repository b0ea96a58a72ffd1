"""Is a forecasting difference decisive? Paired bootstrap over series, with one stated rule.

The M4 scores are means over series, and a few series with huge errors can move a mean a lot, so a
lower mean sMAPE alone does not show that one model is better. Here two models are compared on the
*same* series: the per-series differences ``d_i = error_a[i] - error_b[i]`` are resampled (series
drawn with replacement, ``resamples`` times) and the percentile interval of their mean says how far
the mean difference could move with another draw of series of the same kind.

The rule (``RULE``, the sentence the forecast report prints): a model is *decisively* better (worse)
than another when the 95% interval of the mean per-series difference lies entirely below (above)
zero in both sMAPE and MASE; anything else, including the two metrics disagreeing, is not decisive.

* ``paired_bootstrap(a, b)`` -> ``PairedDifference`` (one metric, one pair).
* ``compare_models(errors, against=..., models=...)`` -> ``NamedDifference`` per pair present.
* ``decisive_findings(errors_smape, errors_mase)`` -> ``Finding`` per pair the "is the LSTM dead?"
  claim needs: the best neural model (lowest mean sMAPE of lstm/transformer/mingru) and the ES-RNN,
  each against arima, ets and theta.
* ``conclusion(findings)`` and ``report_section(findings)``: the sentence and the Markdown rows,
  computed from the findings only.

Per-series MASE is M4's (``jaxseq.data.m4.mase``: forecast MAE over the in-sample seasonal-naive MAE
of the same series); M4's MASE of a set is the mean of these, so the mean differences here are the
differences of the report's MASE column (and likewise for sMAPE). Pure NumPy.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RESAMPLES",
    "CONFIDENCE",
    "RULE",
    "NEURAL",
    "HYBRID",
    "BASELINES",
    "PairedDifference",
    "NamedDifference",
    "Finding",
    "rule_text",
    "paired_bootstrap",
    "compare_models",
    "best_neural",
    "decisive_findings",
    "conclusion",
    "report_section",
]

RESAMPLES = 10_000
CONFIDENCE = 0.95
NEURAL = ("lstm", "transformer", "mingru")  # the global neural forecasters; the best one is compared
HYBRID = "esrnn"
BASELINES = ("arima", "ets", "theta")

# Bootstrap means are computed this many (resample x series) entries at a time, to bound memory
# (M4 Monthly has 48,000 series: 10,000 x 48,000 indices at once would be 3.8 GB).
_CHUNK = 1 << 21


def rule_text(confidence: float = CONFIDENCE, resamples: int = RESAMPLES) -> str:
    """The decision rule in one sentence, for the given interval level and number of resamples."""
    pct = f"{100 * confidence:g}%"
    return (f"A model is decisively better (worse) than another when the {pct} percentile interval of the mean "
            f"per-series difference, from a paired bootstrap with {resamples:,} resamples of the series, lies "
            "entirely below (above) zero in both sMAPE and MASE; anything else, including the two metrics "
            "disagreeing, is not decisive.")


RULE = rule_text()


@dataclass(frozen=True)
class PairedDifference:
    """One metric, one pair of models on the same ``n`` series: ``a - b`` (negative: a has the lower error).

    ``mean``: mean over series of ``a[i] - b[i]`` (= mean(a) - mean(b)); ``low``, ``high``: the
    percentile bootstrap interval of that mean at ``confidence``; ``share_a_better``: fraction of
    series with ``a[i] < b[i]`` (ties count for neither); ``decisive``: the interval excludes 0.
    """

    mean: float
    low: float
    high: float
    share_a_better: float
    n: int
    confidence: float
    resamples: int
    decisive: bool

    @property
    def sign(self) -> int:
        """-1 if decisively below zero (a better), +1 if decisively above (a worse), 0 otherwise."""
        if not self.decisive:
            return 0
        return -1 if self.high < 0 else 1


@dataclass(frozen=True)
class NamedDifference:
    """``difference`` = ``model`` - ``baseline`` (per-series errors of one metric)."""

    model: str
    baseline: str
    difference: PairedDifference


@dataclass(frozen=True)
class Finding:
    """One pair of the claim, in both metrics: ``model`` - ``baseline``.

    ``role``: ``"best neural"`` or ``"hybrid"``; ``verdict``: ``"better"`` / ``"worse"`` when both
    metrics are decisive in the same direction (the rule), else ``"not decisive"``; ``detail``: for a
    non-decisive pair with one decisive metric, or two in opposite directions, which (e.g. ``"worse in
    MASE only"``, ``"better in sMAPE, worse in MASE"``); else ``""``.
    """

    role: str
    model: str
    baseline: str
    smape: PairedDifference
    mase: PairedDifference
    verdict: str
    detail: str

    @property
    def decisive(self) -> bool:
        return self.verdict != "not decisive"


# ----------------------------------------------------------------------------- bootstrap


def _errors(name: str, x: np.ndarray | Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of per-series errors, got {type(x).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D [series], got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite values (first at series {int(bad[0])}: {arr[bad[0]]})")
    return arr


def paired_bootstrap(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> PairedDifference:
    """Percentile bootstrap interval of ``mean(a - b)`` over series, resampling series in pairs.

    ``a``, ``b``: per-series errors ``[series]`` of two models on the same series, in the same order
    (finite, at least 2 series). Each of ``resamples`` draws takes ``n`` series with replacement
    (the same series for both models) and takes the mean difference; the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those ``[resamples]`` means.
    Deterministic for a ``seed``. Raises ``ValueError`` naming the bad argument.
    """
    a = _errors("a", a)
    b = _errors("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape [series], got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"a and b need at least 2 series for a bootstrap interval, got {n}")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not (isinstance(confidence, (float, int, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    d = a - b  # [series]
    rng = np.random.default_rng(seed)
    means = np.empty(int(resamples))  # [resamples]
    step = max(1, _CHUNK // n)
    for start in range(0, int(resamples), step):
        k = min(step, int(resamples) - start)
        idx = rng.integers(0, n, size=(k, n))  # [k, series]
        means[start:start + k] = d[idx].mean(axis=1)
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return PairedDifference(
        mean=float(d.mean()),
        low=float(low),
        high=float(high),
        share_a_better=float(np.mean(a < b)),
        n=int(n),
        confidence=float(confidence),
        resamples=int(resamples),
        decisive=bool(low > 0 or high < 0),
    )


def compare_models(
    errors: Mapping[str, np.ndarray],
    *,
    against: Sequence[str],
    models: Sequence[str],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> list[NamedDifference]:
    """``model - baseline`` for every ``model`` in ``models`` and ``baseline`` in ``against``, both in
    ``errors`` (``{name: [series]}`` per-series errors of one metric on the same series); pairs with
    an absent model, or a model against itself, are skipped. Order: ``models`` then ``against``."""
    out = []
    for model in models:
        for baseline in against:
            if model == baseline or model not in errors or baseline not in errors:
                continue
            try:
                diff = paired_bootstrap(errors[model], errors[baseline], resamples=resamples,
                                        confidence=confidence, seed=seed)
            except ValueError as e:
                raise ValueError(f"{model} vs {baseline}: {e}") from None
            out.append(NamedDifference(model, baseline, diff))
    return out


def best_neural(errors_smape: Mapping[str, np.ndarray], candidates: Sequence[str] = NEURAL) -> str | None:
    """The candidate with the lowest mean sMAPE (ties: the first in ``candidates``), or None if none is present."""
    present = [m for m in candidates if m in errors_smape]
    if not present:
        return None
    return min(present, key=lambda m: float(np.mean(np.asarray(errors_smape[m], dtype=np.float64))))


def _verdict(s: PairedDifference, m: PairedDifference) -> tuple[str, str]:
    word = {-1: "better", 1: "worse"}
    if s.sign and s.sign == m.sign:
        return word[s.sign], ""
    if s.sign and m.sign:
        return "not decisive", f"{word[s.sign]} in sMAPE, {word[m.sign]} in MASE"
    if s.sign:
        return "not decisive", f"{word[s.sign]} in sMAPE only"
    if m.sign:
        return "not decisive", f"{word[m.sign]} in MASE only"
    return "not decisive", ""


def decisive_findings(
    errors_smape: Mapping[str, np.ndarray],
    errors_mase: Mapping[str, np.ndarray],
    *,
    neural: Sequence[str] = NEURAL,
    hybrid: str = HYBRID,
    baselines: Sequence[str] = BASELINES,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> list[Finding]:
    """The claim's pairs, each in sMAPE and MASE, judged by the rule.

    ``errors_smape``, ``errors_mase``: ``{model: [series]}`` per-series errors on the same series.
    Pairs: the best neural model (``best_neural`` over ``neural``, by mean sMAPE) against each of
    ``baselines``, then ``hybrid`` against each of ``baselines``; a model must be in both dicts, and
    pairs with an absent model are skipped. Both metrics of a pair use the same ``seed``, hence the
    same resampled series.
    """
    both = [m for m in errors_smape if m in errors_mase]
    smape = {m: errors_smape[m] for m in both}
    mase = {m: errors_mase[m] for m in both}
    groups = []
    top = best_neural(smape, neural)
    if top is not None:
        groups.append(("best neural", top))
    if hybrid in smape:
        groups.append(("hybrid", hybrid))
    findings = []
    kw = dict(resamples=resamples, confidence=confidence, seed=seed)
    for role, model in groups:
        s_rows = compare_models(smape, against=baselines, models=[model], **kw)
        m_rows = compare_models(mase, against=baselines, models=[model], **kw)
        for s, m in zip(s_rows, m_rows):
            verdict, detail = _verdict(s.difference, m.difference)
            findings.append(Finding(role, model, s.baseline, s.difference, m.difference, verdict, detail))
    return findings


# ----------------------------------------------------------------------------- words


def _names(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _subject(role: str, model: str) -> str:
    if role == "best neural":
        return f"The best neural model ({model})"
    return "ES-RNN" if model == HYBRID else f"The hybrid ({model})"


def conclusion(findings: Sequence[Finding]) -> str:
    """One sentence from the findings, e.g. ``"The best neural model (lstm) is decisively better than
    theta and not decisively different from arima (worse in MASE only); ES-RNN is decisively better
    than arima, ets and theta."``"""
    if not findings:
        return "No pair of the claim is present, so nothing is compared."
    clauses = []
    for role, model in dict.fromkeys((f.role, f.model) for f in findings):
        rows = [f for f in findings if f.role == role and f.model == model]
        parts = []
        for verdict, words in (("better", "decisively better than"), ("worse", "decisively worse than"),
                               ("not decisive", "not decisively different from")):
            names = [f.baseline + (f" ({f.detail})" if f.detail else "") for f in rows if f.verdict == verdict]
            if names:
                parts.append(f"{words} {_names(names)}")
        clauses.append(f"{_subject(role, model)} is " + _names(parts))
    return "; ".join(clauses) + "."


def _fmt(d: PairedDifference, digits: int) -> str:
    return f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def _share(d: PairedDifference) -> str:
    return f"{round(d.share_a_better * d.n)}/{d.n} ({100 * d.share_a_better:.0f}%)"


def report_section(findings: Sequence[Finding], *, rule: str = RULE) -> list[str]:
    """Markdown lines (no heading) for the forecast report: the rule, one row per finding, the conclusion."""
    if not findings:
        return [rule, "", conclusion(findings)]
    pct = f"{100 * findings[0].smape.confidence:g}%"
    lines = [rule, "",
             f"Differences are model − baseline, mean over series with the {pct} interval (negative: the model "
             "has the lower error); \"series won\": series where the model's error is lower.", ""]
    lines += ["| model − baseline | sMAPE difference | series won (sMAPE) | MASE difference | series won (MASE) "
              "| decisive |", "|---|---|---|---|---|---|"]
    for f in findings:
        if f.decisive:
            verdict = f"yes, {f.verdict}"
        else:
            verdict = f"no ({f.detail})" if f.detail else "no"
        label = f"{f.model} − {f.baseline}" + (" (best neural)" if f.role == "best neural" else "")
        lines.append(f"| {label} | {_fmt(f.smape, 3)} | {_share(f.smape)} | {_fmt(f.mase, 4)} | {_share(f.mase)} "
                     f"| {verdict} |")
    return lines + ["", f"**Conclusion:** {conclusion(findings)}"]
