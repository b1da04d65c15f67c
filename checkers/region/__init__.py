"""Image-region evidence: open_clip similarity maps, anatomical zones, grounded boxes.

Importing this package is light (numpy only): the model code (torch, open_clip) loads
when a ``RegionChecker`` first encodes something. Public names are resolved lazily:

- ``RegionChecker`` (checkers.region.checker): checker "region", ``check_images(...)``;
- ``ClipBackend``, ``DEFAULT_MODEL`` (checkers.region.model);
- ``Atlas``, ``ZoneSet``, ``LungMasks`` (checkers.region.zones): the zone atlas;
- ``Calibration`` (checkers.region.evidence): thresholds, reportgen_region.json;
- ``GroundedSentence``, ``Box``, ``load_grounded``, ``check_grounded`` (checkers.region.grounded);
- ``render_panels`` (checkers.region.visuals);
- ``train_clip``, ``calibrate`` (checkers.region.train, checkers.region.calibrate).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RegionChecker": "checkers.region.checker",
    "finding_query": "checkers.region.checker",
    "ClipBackend": "checkers.region.model",
    "DEFAULT_MODEL": "checkers.region.model",
    "Atlas": "checkers.region.zones",
    "ZoneSet": "checkers.region.zones",
    "LungMasks": "checkers.region.zones",
    "ClaimZones": "checkers.region.zones",
    "Calibration": "checkers.region.evidence",
    "Box": "checkers.region.grounded",
    "GroundedSentence": "checkers.region.grounded",
    "load_grounded": "checkers.region.grounded",
    "check_grounded": "checkers.region.grounded",
    "check_box": "checkers.region.grounded",
    "render_panels": "checkers.region.visuals",
    "load_radiograph": "checkers.region.images",
    "train_clip": "checkers.region.train",
    "calibrate": "checkers.region.calibrate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'checkers.region' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
