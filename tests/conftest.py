"""Shared test fixtures. Tiny models are BUILT from configs (no hub, no downloads);
each area keeps its fixtures in its own plugin module listed below.

Real radiographs: ``test_data`` (tests/data, shipped in the repository; sources and
licences in tests/data/README.md) is always there. ``shared_data`` (../shared/data, or
$REPORTGEN_SHARED_DATA) holds more films (TBX11K, covid-chestxray) and RadFact's examples;
it is an extra: every test that uses it is marked ``shared`` (automatically) and is
deselected without it, and what it checks is also checked on tests/data where the data allow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
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
def test_data() -> Path:
    """tests/data: the small real radiographs (cxr/) and hand-written fixtures shipped with
    the repository."""
    return TEST_DATA


SHARED_LAYOUT = ("cxr", "radfact")  # what ../shared/data holds (its README)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip when it is absent or holds none of its folders (an empty
    $REPORTGEN_SHARED_DATA hides it); only tests marked ``shared`` get here."""
    if not _shared_present():  # only reached when a shared test is asked for by node id
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def _shared_present() -> bool:
    return any((SHARED_DATA / d).is_dir() for d in SHARED_LAYOUT)


def pytest_collection_modifyitems(config, items):
    """A test that needs ../shared/data is an extra: it is marked ``shared``, and where the
    shared folder is absent it is DESELECTED (not skipped), so a clone without ../shared
    skips nothing but what its machine cannot run; the run's header says how many. Tests
    marked ``radeval`` / ``radgraph_env`` are deselected likewise without their interpreter."""
    extra = []
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared") is None:
            item.add_marker(pytest.mark.shared)
        if item.get_closest_marker("shared") is not None:
            extra.append(item)
    if extra and not _shared_present():
        config.hook.pytest_deselected(items=extra)
        items[:] = [i for i in items if i.get_closest_marker("shared") is None]
        config._reportgen_shared_deselected = len(extra)
    # RadEval and the radgraph model run in environments of their own (make test-side builds
    # them and sets the variables): without one, its tests are deselected as the shared ones are.
    for marker, var in (("radeval", "REPORTGEN_RADEVAL_PYTHON"), ("radgraph_env", "REPORTGEN_RADGRAPH_PYTHON")):
        if not os.environ.get(var):
            side = [i for i in items if i.get_closest_marker(marker) is not None]
            if side:
                config.hook.pytest_deselected(items=side)
                items[:] = [i for i in items if i.get_closest_marker(marker) is None]


def pytest_report_header(config):
    where = SHARED_DATA if _shared_present() else f"{SHARED_DATA} (absent: tests marked 'shared' are deselected)"
    return f"reportgen: test data tests/data; shared extras {where}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = getattr(config, "_reportgen_shared_deselected", 0)
    if n:
        terminalreporter.write_line(f"reportgen: {n} tests need ../shared/data (extra coverage) and were deselected: it is absent")
