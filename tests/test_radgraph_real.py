"""The real radgraph package (0.1.18) with transformers 4, in the environment of its own
that `make test-side` builds (.venv-radgraph; REPORTGEN_RADGRAPH_PYTHON): a tiny model built
from configs there (tests/side/build_tiny_radgraph.py, random weights, nothing downloaded)
is loaded by the package's own RadGraph class and run through `--extractor radgraph`. The
entities are random (untrained): the assertion is the plumbing and the contract."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from reportgen.checkers.graphs import radgraph_backend as rb
from reportgen.types import ENTITY_LABELS

pytestmark = pytest.mark.radgraph_env
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[str, Path]:
    py = os.environ.get(rb.RADGRAPH_PYTHON_ENV)
    if not py:
        pytest.fail(f"set {rb.RADGRAPH_PYTHON_ENV} (make test-side builds .venv-radgraph and sets it)")
    out = tmp_path_factory.mktemp("tiny_radgraph")
    subprocess.run([py, str(HERE / "side" / "build_tiny_radgraph.py"), str(out)], check=True, timeout=600,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return py, out


def test_the_real_package_runs_the_tiny_model_and_graphs_map_to_the_text(tiny_model):
    py, folder = tiny_model
    texts = ["No pleural effusion.", "Small right pleural effusion. The lungs are clear."]
    ex = rb.RadGraphExtractor(model_type="radgraph", model_cache_dir=str(folder), cuda=-1, radgraph_python=py)
    graphs = ex.extract_many(texts)
    assert len(graphs) == 2
    for g, t in zip(graphs, texts):
        for e in g.entities:  # whatever the untrained model says, it is mapped onto the text
            assert e.label in ENTITY_LABELS and t[e.start:e.end] == e.text and e.text.strip()
    # the same annotations as the package gives when called directly in its environment
    direct = subprocess.run([py, "-c", (
        "import json, sys, radgraph; m = radgraph.RadGraph(model_type='radgraph', model_cache_dir=sys.argv[1], cuda=-1); "
        "sys.stderr.write(json.dumps(m(json.loads(sys.argv[2])), default=str))"), str(folder), json.dumps(texts)],
        capture_output=True, text=True, check=True, timeout=600)
    want = [rb.graph_from_annotation(json.loads(direct.stderr.strip().splitlines()[-1]).get(str(k)), t) for k, t in enumerate(texts)]
    assert graphs == want
    assert ex.model().process.ready["transformers"].startswith("4.")


def test_a_pipeline_checks_with_the_real_radgraph_model(tiny_model):
    from reportgen.checkers.pipeline import Pipeline

    py, folder = tiny_model
    ex = rb.RadGraphExtractor(model_type="radgraph", model_cache_dir=str(folder), cuda=-1, radgraph_python=py)
    res = Pipeline(extractor=ex).check("a", "Small right pleural effusion. No pneumothorax.", "Small right pleural effusion.")
    rec = res.to_record()
    assert rec["error"] is None and len(rec["claims"]) == 2
    assert all(c["status"] in ("supported", "contradicted", "unsupported", "uncertain") for c in rec["claims"])
