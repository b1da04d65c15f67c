"""Fixtures for the text tests (claims, graphs, findings, extract CLI)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def iu_by_id():
    """The IU reports (shipped inside torchxrayvision) by id, e.g. ``iu_by_id["CXR558"]``;
    skips when torchxrayvision is not installed."""
    from reportgen.errors import ReportgenError
    from reportgen.iu import load_iu_reports

    try:
        return {r.id: r for r in load_iu_reports()}
    except ReportgenError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def rules_extractor():
    from reportgen.checkers.graphs import get_extractor

    return get_extractor("rules")
