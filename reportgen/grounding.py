"""Grounded-report types: sentences (phrases) with boxes, as in RadFact / MAIRA-2.

One definition shared by the RadFact metrics (``reportgen.evals.metrics.radfact``) and the region
checker's box rules (``reportgen.checkers.region.grounded``); both re-export these names. Pure
Python (no numpy, no torch).

RadFact's grounded JSON (``grounded_reporting_examples.json``) is a list of examples
``{"example_id": ..., "prediction": [phrase, ...], "target": [phrase, ...]}`` where a
phrase is ``{"text": str, "boxes": [{"x_min", "y_min", "x_max", "y_max"}, ...] | null}``
with box coordinates normalised to 0..1 of the displayed image (x to the image right,
y down; on a frontal film the image right is the patient's LEFT). ``boxes: null`` means
the phrase is not grounded; an empty list is kept as given.

Errors keep the codes of the metrics that first defined them: E420 a box without four
numbers, E421 a box not normalised, E422 a malformed example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from reportgen.errors import ReportgenError

__all__ = ["Box", "GroundedPhrase", "GroundedExample", "parse_grounded_examples", "parse_grounded_report"]


@dataclass(frozen=True)
class Box:
    """A box in normalised image coordinates (0..1), as RadFact's ``NormalizedBox``."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Box":
        try:
            b = cls(float(d["x_min"]), float(d["y_min"]), float(d["x_max"]), float(d["y_max"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportgenError("E420", f"a box needs numeric x_min, y_min, x_max, y_max ({exc})", fix="use RadFact's grounded JSON box format") from None
        if not (0 <= b.x_min <= b.x_max <= 1 and 0 <= b.y_min <= b.y_max <= 1):
            raise ReportgenError("E421", f"box {d} is not normalised (0 <= min <= max <= 1)", fix="divide pixel coordinates by the image size")
        return b

    def to_dict(self) -> dict[str, float]:
        return {"x_min": self.x_min, "y_min": self.y_min, "x_max": self.x_max, "y_max": self.y_max}

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True)
class GroundedPhrase:
    """One sentence of a grounded report, with its boxes (None: not grounded)."""

    text: str
    boxes: tuple[Box, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GroundedPhrase":
        boxes = d.get("boxes")
        return cls(str(d["text"]), None if boxes is None else tuple(Box.from_dict(b) for b in boxes))

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "boxes": None if self.boxes is None else [b.to_dict() for b in self.boxes]}


@dataclass(frozen=True)
class GroundedExample:
    """A candidate (``prediction``) and a reference (``target``) grounded report."""

    id: str
    prediction: tuple[GroundedPhrase, ...]
    target: tuple[GroundedPhrase, ...]


def parse_grounded_examples(data: Any) -> list[GroundedExample]:
    """RadFact's grounded JSON (a list of {"example_id", "prediction": [...], "target": [...]})."""
    if not isinstance(data, list):
        raise ReportgenError("E422", "grounded examples must be a JSON list", fix="use RadFact's grounded_reporting_examples.json format")
    out = []
    for i, ex in enumerate(data):
        try:
            out.append(GroundedExample(
                str(ex.get("example_id", i)),
                tuple(GroundedPhrase.from_dict(p) for p in ex["prediction"]),
                tuple(GroundedPhrase.from_dict(p) for p in ex["target"]),
            ))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReportgenError("E422", f"grounded example {i} is malformed ({exc!r})", fix="each example needs 'prediction' and 'target' lists of {text, boxes}") from None
    return out


def parse_grounded_report(data: Any) -> tuple[GroundedPhrase, ...]:
    """One grounded report given as a bare list of ``{"text", "boxes"}`` phrases."""
    if not isinstance(data, list):
        raise ReportgenError("E422", "a grounded report must be a JSON list of {text, boxes}", fix="use RadFact's phrase format")
    try:
        return tuple(GroundedPhrase.from_dict(p) for p in data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReportgenError("E422", f"malformed grounded sentence ({exc!r})", fix="each sentence needs 'text' and 'boxes' (list or null)") from None
