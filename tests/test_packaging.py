"""The distribution: one import root, every package and data file shipped, benchmarks left out.

An editable install hides omissions (it reads the checkout), so the wheel itself is built and
imported from its unpacked files.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# repository folder -> the package it installs as (pyproject's package-dir)
FOLDERS = {"reportgen": "reportgen", "checkers": "reportgen.checkers", "evals": "reportgen.evals", "prompts": "reportgen.prompts"}


def _setuptools_cfg() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_directory_is_listed_under_the_one_root():
    cfg = _setuptools_cfg()
    assert {k: v for k, v in cfg["package-dir"].items()} == {v: k for k, v in FOLDERS.items()}
    found = set()
    for folder, pkg in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            if "__pycache__" in init.parts or rel[:1] == ("bench",) and folder == "evals":
                continue  # evals/bench: run from a checkout, not installed
            found.add(".".join((pkg, *rel)))
    for data in ("checkers/data", "evals/data"):
        found.add("reportgen." + data.replace("/", "."))
    assert found == set(cfg["packages"])
    assert all(p == "reportgen" or p.startswith("reportgen.") for p in cfg["packages"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (whl,) = out.glob("*.whl")
    return whl


def test_the_wheel_installs_one_top_level_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"reportgen"}
    assert wheel.name.startswith("reportgen_cxr-")
    for folder, prefix in (("checkers/data", "reportgen/checkers/data/"), ("evals/data", "reportgen/evals/data/")):
        for f in (REPO / folder).iterdir():
            assert prefix + f.name in names, f"{f} not shipped"
    for f in (REPO / "prompts").iterdir():
        if f.is_file():
            assert "reportgen/prompts/" + f.name in names, f"{f} not shipped"
    assert not [n for n in names if n.startswith("reportgen/evals/bench/")], "benchmarks are not library code"


def test_the_unpacked_wheel_imports_from_itself_without_torch(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
        "import reportgen, reportgen.checkers.pipeline, reportgen.evals.suite, reportgen.prompts; "
        "from reportgen import Pipeline, read_report; "
        "r = Pipeline('rules').check('s', 'Small right pleural effusion.', reference_text='Small left pleural effusion.'); "
        "print(reportgen.checkers.pipeline.__file__); print(r.claims[0].status); "
        "print(reportgen.prompts.load('draft.json')[:1]); "
        "print('torch' in sys.modules, 'checkers' in sys.modules, 'evals' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    where, status, prompt, flags = done.stdout.splitlines()
    assert where.startswith(str(tmp_path))
    assert status == "contradicted"
    assert prompt == "{"
    assert flags == "False False False"
