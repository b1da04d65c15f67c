"""Shared test fixtures. Tiny models are BUILT from configs (no hub, no downloads);
each area keeps its fixtures in its own plugin module listed below."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REPORTGEN_SHARED_DATA", REPO.parent / "shared" / "data"))

# Never reach a hub from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures_text",
    "tests.fixtures_vlm",
    "tests.fixtures_clip",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
