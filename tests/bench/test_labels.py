"""`jaxseq.bench.labels`: the typed point label renders exactly the label strings reports use."""
from __future__ import annotations

import itertools

import pytest

from jaxseq.bench.labels import PointLabel, model_label


def _string_label(point):
    """The label as it was built before `PointLabel` (string concatenation), kept as the reference."""
    label = point["model"]
    if point.get("layers", 1) not in (None, 1):
        label += f"+L{point['layers']}"
    if point.get("bidirectional"):
        label += "+bi"
    if point.get("schedule") not in (None, "auto"):
        label += f"+{point['schedule']}"
    if point.get("step_kernel") == "pallas":
        label += "+pallas" + ("-step" if point.get("pallas_in_place") is False else "")
        label += f"-bh{point['block_hidden']}" if point.get("block_hidden") else ""
    unroll = point.get("unroll", 1)
    return f"{label}+unroll{unroll}" if unroll not in (None, 1) else label


_MISSING = object()
_FIELDS = {
    "layers": (_MISSING, None, 1, 4),
    "bidirectional": (_MISSING, False, True),
    "schedule": (_MISSING, None, "auto", "wavefront"),
    "step_kernel": (_MISSING, "xla", "pallas"),
    "pallas_in_place": (_MISSING, True, False),
    "block_hidden": (_MISSING, None, 32),
    "unroll": (_MISSING, None, 1, 8),
}


def _points():
    for values in itertools.product(*_FIELDS.values()):
        p = {"model": "lstm-layer", "seq_len": 64}
        p.update({k: v for k, v in zip(_FIELDS, values) if v is not _MISSING})
        yield p


def test_label_matches_the_string_built_label_for_every_field_combination():
    for p in _points():
        assert model_label(p) == _string_label(p), p
        assert str(PointLabel.from_point(p)) == _string_label(p)


@pytest.mark.parametrize("point, label", [
    ({"model": "lstm"}, "lstm"),
    ({"model": "lstm", "unroll": 8}, "lstm+unroll8"),
    ({"model": "torch-lstm", "layers": 4, "bidirectional": True}, "torch-lstm+L4+bi"),
    ({"model": "lstm-layer", "layers": 4, "schedule": "wavefront"}, "lstm-layer+L4+wavefront"),
    ({"model": "lstm", "step_kernel": "pallas", "pallas_in_place": False, "block_hidden": 32},
     "lstm+pallas-step-bh32"),
])
def test_known_labels(point, label):
    assert model_label(point) == label


def test_fields_are_typed_and_defaults_compare_equal():
    a = PointLabel.from_point({"model": "lstm-layer", "layers": 8, "schedule": "layers"})
    assert (a.model, a.layers, a.schedule, a.pallas, a.stack_variant) == ("lstm-layer", 8, "layers", False,
                                                                          "layers schedule")
    b = PointLabel.from_point({"model": "lstm-layer", "layers": 8, "step_kernel": "pallas"})
    assert b.pallas and b.stack_variant == "pallas step" and b.label == "lstm-layer+L8+pallas"
    # Defaults spelled out or left out are the same label; Pallas-only fields are dropped without it.
    assert PointLabel.from_point({"model": "lstm", "layers": 1, "schedule": "auto", "unroll": None,
                                  "step_kernel": "xla", "block_hidden": 32}) == PointLabel("lstm")
    assert PointLabel(model="lstm-layer", layers=8, schedule="wavefront").label == "lstm-layer+L8+wavefront"


def test_workloads_reexports_the_label():
    from jaxseq.bench import workloads

    assert workloads.model_label is model_label and workloads.PointLabel is PointLabel
