"""RadEval in an interpreter of its own (REPORTGEN_RADEVAL_PYTHON / --radeval-python): the
runner protocol, the per-study figures, and every way the other process can fail. A stand-in
``RadEval`` module (on PYTHONPATH of the child only) plays the package; the real package is
exercised by tests/test_radeval_real.py when its environment exists."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from reportgen.errors import BackendUnavailable, ReportgenError
from reportgen.evals.metrics import backends as be

FAKE = '''
import os
class RadEval:  # RadEval 2.x's interface (radeval.RadEval)
    def __init__(self, metrics=None, per_sample=False, detailed=False, show_progress=True, cache_dir=None):
        if os.environ.get("FAKE_RADEVAL_FAIL") == "init":
            raise OSError("no weights for radgraph")
        assert per_sample and not show_progress
        print("loading", metrics)  # a package printing on stdout must not break the protocol
        self.metrics = metrics
    def __call__(self, refs, hyps):
        if os.environ.get("FAKE_RADEVAL_FAIL") == "call":
            raise ValueError("bad batch")
        if os.environ.get("FAKE_RADEVAL_FAIL") == "exit":
            os._exit(3)
        same = [float(r == h) for r, h in zip(refs, hyps)]
        return {"bleu": same, "rouge1": [len(h) / 100 for h in hyps], "nan": [float("nan")] * len(hyps),
                "summary": 0.5, "metrics": list(self.metrics)}
'''


@pytest.fixture()
def fake_radeval(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "radeval"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE), encoding="utf-8")
    dist = tmp_path / "site" / "radeval-9.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: radeval\nVersion: 9.9\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # the child's only: RadEval is not importable here
    monkeypatch.delenv("FAKE_RADEVAL_FAIL", raising=False)
    monkeypatch.setenv(be.RADEVAL_PYTHON_ENV, sys.executable)
    return tmp_path


def test_radeval_runs_in_its_own_interpreter_and_gives_per_study_figures(fake_radeval):
    m = be.load("radeval")
    try:
        assert m.settings["process"] == "own interpreter" and m.settings["radeval_version"] == "9.9"
        out = m.score(["No effusion.", "", "Small effusion."], ["No effusion.", "Normal.", "Large effusion."])
        # list-valued answers only (a corpus summary is not per study); an empty prediction gets None
        assert set(out) == {"radeval_bleu", "radeval_rouge1", "radeval_nan"} and m.names == tuple(out)
        assert out["radeval_bleu"] == [1.0, None, 0.0]
        assert out["radeval_rouge1"] == [pytest.approx(0.12), None, pytest.approx(0.15)]
        assert out["radeval_nan"] == [None, None, None]  # NaN is no figure
        again = m.score(["A."], ["A."])  # the same process answers again
        assert again["radeval_bleu"] == [1.0]
    finally:
        m.evaluator.close()


def test_the_cli_option_names_the_interpreter(fake_radeval, tmp_path, monkeypatch):
    from reportgen.cli import main

    monkeypatch.delenv(be.RADEVAL_PYTHON_ENV)
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"id": i, "report": t}) + "\n" for i, t in (("a", "No effusion."), ("b", "Effusion."))))
    out = tmp_path / "m.json"
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--bootstrap", "0", "-q",
                 "--with-radeval", "--radeval-python", sys.executable, "--max-failed-share", "1"]) == 0
    m = json.loads(out.read_text())  # (the stand-in's all-NaN figure counts as failed, so the share is raised)
    assert {r["id"]: r["radeval_bleu"] for r in m["per_study"]} == {"a": 1.0, "b": 1.0}
    assert m["settings"]["model_metrics"]["radeval"]["process"] == "own interpreter"


@pytest.mark.parametrize("fail, code, words", [
    ("init", "E854", "no weights for radgraph"),
    ("call", "E855", "bad batch"),
    ("exit", "E855", "stopped (exit 3)"),
])
def test_a_failing_radeval_process_is_a_coded_error(fake_radeval, monkeypatch, fail, code, words):
    monkeypatch.setenv("FAKE_RADEVAL_FAIL", fail)
    with pytest.raises(ReportgenError) as e:
        m = be.load("radeval")
        m.score(["No effusion."], ["No effusion."])
    assert e.value.code == code and words in str(e.value) and "No effusion" not in str(e.value)


def test_a_missing_interpreter_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv(be.RADEVAL_PYTHON_ENV, str(tmp_path / "nope" / "python"))
    with pytest.raises(BackendUnavailable, match="E855.*REPORTGEN_RADEVAL_PYTHON"):
        be.load("srr_bert")
