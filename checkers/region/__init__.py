"""Image-region evidence: open_clip similarity maps, anatomical zones, grounded boxes.

Importing this package is light (numpy only): the model code (torch, open_clip) loads
when a ``RegionChecker`` first encodes something. Public names are resolved lazily:

- ``RegionChecker`` (reportgen.checkers.region.checker): checker "region", ``check_images(...)``;
- ``ClipBackend``, ``DEFAULT_MODEL`` (reportgen.checkers.region.model);
- ``Atlas``, ``ZoneSet``, ``LungMasks`` (reportgen.checkers.region.zones): the zone atlas;
- ``Calibration`` (reportgen.checkers.region.evidence): thresholds, reportgen_region.json;
- ``GroundedSentence``, ``Box``, ``load_grounded``, ``check_grounded`` (reportgen.checkers.region.grounded);
- ``render_panels`` (reportgen.checkers.region.visuals);
- ``train_clip``, ``calibrate`` (reportgen.checkers.region.train, reportgen.checkers.region.calibrate).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RegionChecker": "reportgen.checkers.region.checker",
    "finding_query": "reportgen.checkers.region.checker",
    "ClipBackend": "reportgen.checkers.region.model",
    "DEFAULT_MODEL": "reportgen.checkers.region.model",
    "Atlas": "reportgen.checkers.region.zones",
    "ZoneSet": "reportgen.checkers.region.zones",
    "LungMasks": "reportgen.checkers.region.zones",
    "ClaimZones": "reportgen.checkers.region.zones",
    "Calibration": "reportgen.checkers.region.evidence",
    "Box": "reportgen.checkers.region.grounded",
    "GroundedSentence": "reportgen.checkers.region.grounded",
    "load_grounded": "reportgen.checkers.region.grounded",
    "check_grounded": "reportgen.checkers.region.grounded",
    "check_box": "reportgen.checkers.region.grounded",
    "render_panels": "reportgen.checkers.region.visuals",
    "load_radiograph": "reportgen.checkers.region.images",
    "train_clip": "reportgen.checkers.region.train",
    "calibrate": "reportgen.checkers.region.calibrate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'reportgen.checkers.region' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
