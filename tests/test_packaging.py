"""The distribution ships every package and data file (an editable install hides omissions)."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed_in_pyproject():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {"reportgen.prompts"}
    for top in ("reportgen", "checkers", "evals"):
        for init in (REPO / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            found.add(".".join(init.parent.relative_to(REPO).parts))
    assert found == listed


def test_data_files_are_covered_by_package_data():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = cfg["package-data"]
    for pkg, folder in (("checkers", "checkers/data"), ("evals", "evals/data")):
        for f in (REPO / folder).iterdir():
            assert any(f.match(g.split("/")[-1]) for g in data[pkg]), f"{f} not shipped"
    for f in (REPO / "prompts").iterdir():
        if f.suffix != ".py" and f.name != "__pycache__":
            assert any(f.match(g) for g in data["reportgen.prompts"]), f"{f} not shipped"
