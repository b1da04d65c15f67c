"""Every notebook in notebooks/ executes top to bottom (CI runs them here)."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_notebooks_are_generated_from_make_notebooks():
    """The committed notebooks match their source in make_notebooks.py."""
    import importlib.util

    nbformat = pytest.importorskip("nbformat")
    src = Path(__file__).resolve().parents[1] / "notebooks" / "make_notebooks.py"
    spec = importlib.util.spec_from_file_location("make_notebooks", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, cells in (("explore_checking.ipynb", mod.EXPLORE), ("explore.ipynb", mod.EXPLORE_RUN)):
        committed = nbformat.read(src.parent / name, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in cells]
        assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")  # stored without outputs
