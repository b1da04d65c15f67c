"""pyproject's minimum versions are the ones the code needs (issue 12, bug 6), and the
installed packages meet them. .ci/floor_check.sh installs the torch-free floors
(pydicom, pillow) in a throwaway venv and runs the image loader with them."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What the code uses -> the first version that has it.
NEEDS = {
    "transformers": ("4.56", "from_pretrained(dtype=...) (reportgen/models.py)"),
    "pydicom": ("3", "pydicom.pixels.apply_modality_lut / apply_voi_lut (reportgen/images.py)"),
    "torch": ("2.3", "torch.amp.GradScaler(device) for float16 training (reportgen/train.py)"),
}


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def floors() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = (REPO / "pyproject.toml").read_text()
    for extra in ("draft", "clip"):  # the extras whose code (models, images, train) needs these floors
        line = re.search(rf"^{extra} = \[(.*)\]$", text, re.M).group(1)
        for name, ver in re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9.]+)', line):
            out.setdefault(name.lower(), []).append(ver)
    return out


@pytest.mark.parametrize("pkg", sorted(NEEDS))
def test_floor_is_what_the_code_needs_and_is_installed(pkg):
    need, why = NEEDS[pkg]
    stated = floors()[pkg]
    assert all(_v(v) >= _v(need) for v in stated), f"{pkg}>={stated} but the code needs {need}: {why}"
    assert _v(metadata.version(pkg)) >= max(_v(v) for v in stated)


def test_the_code_uses_what_the_floors_are_for():
    assert "dtype=torch_dtype" in (REPO / "reportgen" / "models.py").read_text()
    assert "from pydicom.pixels import" in (REPO / "reportgen" / "images.py").read_text()
    assert "torch.amp.GradScaler(" in (REPO / "reportgen" / "train.py").read_text()
    assert "bash .ci/floor_check.sh" in (REPO / ".ci" / "run").read_text()
