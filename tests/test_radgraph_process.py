"""The radgraph model in an interpreter of its own (REPORTGEN_RADGRAPH_PYTHON): radgraph's
bundled allennlp cannot load a model beside transformers 5, so users run it in an
environment with transformers 4. A stand-in ``radgraph`` module (on the child's PYTHONPATH
only) plays the package here; tests/test_radgraph_real.py runs the real one when that
environment exists."""

from __future__ import annotations

import sys
import textwrap

import pytest

from reportgen.checkers.graphs import radgraph_backend as rb
from reportgen.errors import BackendUnavailable

FAKE = '''
import os
class RadGraph:
    def __init__(self, model_type="radgraph-xl", batch_size=1, model_cache_dir=None, cuda=None):
        fail = os.environ.get("FAKE_RADGRAPH_FAIL")
        if fail == "weights":
            raise FileNotFoundError("weights.th not found")
        if fail == "transformers5":
            raise AttributeError("BertTokenizerFast has no attribute encode_plus")
        self.model_type = model_type
        print("Using device: cpu")  # as the real package does, on stdout
    def __call__(self, texts):
        print("inference")
        if os.environ.get("FAKE_RADGRAPH_FAIL") == "call":
            raise ValueError("bad text")
        out = {}
        for k, t in enumerate(texts):
            words = t.replace(".", " .").split()
            ents = {}
            if "effusion" in words:
                i = words.index("effusion")
                neg = "No" in words
                ents["1"] = {"tokens": "effusion", "label": "Observation::definitely absent" if neg else "Observation::definitely present",
                             "start_ix": i, "end_ix": i, "relations": [["located_at", "2"]] if "pleural" in words else []}
            if "pleural" in words:
                i = words.index("pleural")
                ents["2"] = {"tokens": "pleural", "label": "Anatomy::definitely present", "start_ix": i, "end_ix": i, "relations": []}
            out[str(k)] = {"text": " ".join(words), "entities": ents, "data_source": None, "data_split": "inference"}
        return out
'''


@pytest.fixture()
def fake_radgraph(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "radgraph"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # the child's only
    monkeypatch.delenv("FAKE_RADGRAPH_FAIL", raising=False)
    monkeypatch.setenv(rb.RADGRAPH_PYTHON_ENV, sys.executable)


def test_the_model_runs_in_its_own_interpreter_and_graphs_map_back_to_the_text(fake_radgraph):
    ex = rb.RadGraphExtractor(model_type="radgraph", cuda=-1)
    texts = ["No pleural effusion.", "Small pleural effusion.", "Heart size normal."]
    graphs = ex.extract_many(texts)
    g0, g1, g2 = graphs
    assert [(e.text, e.label) for e in g0.entities] == [("pleural", "ANAT-DP"), ("effusion", "OBS-DA")]
    assert texts[0][g0.entities[1].start:g0.entities[1].end] == "effusion"
    assert [r.type for r in g0.relations] == ["located_at"]
    assert [e.label for e in g1.entities] == ["ANAT-DP", "OBS-DP"] and g2.entities == ()
    assert ex.extract("Pleural effusion.").entities  # the same process answers again


def test_check_uses_the_process_model_through_the_cli(fake_radgraph, tmp_path):
    import json

    from reportgen.cli import main

    reports = tmp_path / "r.jsonl"
    reports.write_text(json.dumps({"id": "a", "report": "Small pleural effusion."}) + "\n")
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(reports), "--extractor", "radgraph",
                 "--out", str(out), "-q"]) == 0
    rec = json.loads(out.read_text())
    assert rec["error"] is None and rec["claims"] and rec["claims"][0]["status"] == "supported"


@pytest.mark.parametrize("fail, code, words", [
    ("weights", "E241", "weights.th not found"),
    ("transformers5", "E871", "encode_plus"),
])
def test_a_model_that_cannot_load_there_is_a_coded_error(fake_radgraph, monkeypatch, fail, code, words):
    monkeypatch.setenv("FAKE_RADGRAPH_FAIL", fail)
    with pytest.raises(BackendUnavailable) as e:
        rb.RadGraphExtractor(model_type="radgraph").extract("No pleural effusion.")
    assert e.value.code == code and words in str(e.value)
    if code == "E871":
        assert "transformers<5" in e.value.fix and rb.RADGRAPH_PYTHON_ENV in e.value.fix


def test_a_failing_batch_and_a_missing_interpreter(fake_radgraph, monkeypatch, tmp_path):
    from reportgen.errors import ReportgenError

    monkeypatch.setenv("FAKE_RADGRAPH_FAIL", "call")
    with pytest.raises(ReportgenError) as e:
        rb.RadGraphExtractor(model_type="radgraph").extract("No pleural effusion.")
    assert e.value.code == "E242" and "bad text" in str(e.value) and "No pleural" not in str(e.value)
    monkeypatch.setenv(rb.RADGRAPH_PYTHON_ENV, str(tmp_path / "nope"))
    with pytest.raises(BackendUnavailable, match="E244"):
        rb.RadGraphExtractor(model_type="radgraph").extract("x")
