"""tests/data: every shipped file is named in its README with a source and licence, its
checksum there is its own, and the folder stays small."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
README = (DATA / "README.md").read_text(encoding="utf-8")


def shipped() -> list[str]:
    return sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file() and p.name != "README.md")


def test_every_file_is_documented_with_its_checksum():
    files = shipped()
    assert files, "tests/data is empty"
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", README, re.M))
    for rel in files:
        assert f"`{Path(rel).name}`" in README or rel in README, f"{rel} is not described in tests/data/README.md"
        if rel.startswith("cxr/"):
            assert listed.get(rel) == hashlib.sha256((DATA / rel).read_bytes()).hexdigest(), f"{rel}: checksum in README"
    assert set(listed) <= set(files), f"README lists files that are not here: {set(listed) - set(files)}"


def test_folder_stays_small():
    total = sum((DATA / rel).stat().st_size for rel in shipped())
    assert total < 2 * 1024 * 1024, f"tests/data holds {total:,} bytes"
