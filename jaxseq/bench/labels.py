"""The name a point's model goes by in tables and plots, as a typed value.

A sweep point (see `jaxseq.bench.workloads`) is a dict; its label ("lstm", "lstm+unroll8",
"torch-lstm+L4+bi", "lstm-layer+L8+wavefront", "lstm+pallas-step-bh32") names the model and the variant
fields that change how it runs. `PointLabel.from_point(point)` keeps those fields typed, so code that
needs one of them (the schedule of a stacked point, whether it runs the Pallas step) reads the field
instead of parsing the label string back; `PointLabel.label` renders the string reports use, and
`model_label(point)` is `PointLabel.from_point(point).label`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["PointLabel", "model_label"]


@dataclasses.dataclass(frozen=True)
class PointLabel:
    """The label fields of a point, with their defaults filled in (two points that render the same
    label compare equal).

    `layers` 1 and `schedule` None ("auto") are the defaults and leave the label as it is, as do
    `step_kernel` "xla" and `unroll` 1; `pallas_in_place` and `block_hidden` only count with
    `step_kernel` "pallas" (they are reset to True and None otherwise).
    """

    model: str
    layers: Any = 1  # stacked models: number of layers
    bidirectional: bool = False
    schedule: str | None = None  # "lstm-layer": how jaxseq.nn.LSTM runs its stack; None = "auto"
    step_kernel: str = "xla"  # "xla" | "pallas"
    pallas_in_place: bool = True  # False: the Pallas step kernel inside lax.scan ("-step")
    block_hidden: int | None = None  # the Pallas kernel's tiling when set ("-bh<n>")
    unroll: Any = 1  # lax.scan unroll factor

    def __post_init__(self) -> None:
        if self.step_kernel != "pallas":
            object.__setattr__(self, "pallas_in_place", True)
            object.__setattr__(self, "block_hidden", None)

    @classmethod
    def from_point(cls, point: dict[str, Any]) -> PointLabel:
        """The label fields of a sweep point dict (missing fields take their defaults)."""
        layers = point.get("layers", 1)
        schedule = point.get("schedule")
        unroll = point.get("unroll", 1)
        return cls(model=point["model"],
                   layers=1 if layers in (None, 1) else layers,
                   bidirectional=bool(point.get("bidirectional")),
                   schedule=None if schedule in (None, "auto") else schedule,
                   step_kernel="pallas" if point.get("step_kernel") == "pallas" else "xla",
                   pallas_in_place=point.get("pallas_in_place") is not False,
                   block_hidden=point.get("block_hidden") or None,
                   unroll=1 if unroll in (None, 1) else unroll)

    @property
    def pallas(self) -> bool:
        """The point runs the Pallas LSTM step kernel."""
        return self.step_kernel == "pallas"

    @property
    def stack_variant(self) -> str:
        """How a stacked point runs, in words: "pallas step", or "<schedule> schedule" ("auto schedule"
        for the default)."""
        return "pallas step" if self.pallas else f"{self.schedule or 'auto'} schedule"

    @property
    def label(self) -> str:
        """The label string: the model, then "+L<layers>", "+bi", "+<schedule>",
        "+pallas[-step][-bh<n>]" and "+unroll<n>" for the fields away from their defaults."""
        label = self.model
        if self.layers not in (None, 1):
            label += f"+L{self.layers}"
        if self.bidirectional:
            label += "+bi"
        if self.schedule not in (None, "auto"):
            label += f"+{self.schedule}"
        if self.pallas:
            label += "+pallas" + ("-step" if not self.pallas_in_place else "")
            label += f"-bh{self.block_hidden}" if self.block_hidden else ""
        return f"{label}+unroll{self.unroll}" if self.unroll not in (None, 1) else label

    def __str__(self) -> str:
        return self.label


def model_label(point: dict[str, Any]) -> str:
    """The name a point's model goes by in tables and plots: "lstm", or "lstm+unroll8", "torch-lstm+L4+bi",
    "lstm-layer+L4+wavefront" for variants (`PointLabel.from_point(point).label`)."""
    return PointLabel.from_point(point).label
