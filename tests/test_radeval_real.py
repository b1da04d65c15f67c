"""The real RadEval (radeval 2.2.1) in its own environment: `make test-side` builds
.venv-radeval and sets REPORTGEN_RADEVAL_PYTHON. Offline, RadEval's model metrics cannot
load (their weights download on first use), so these tests run the ones that need none
(BLEU, ROUGE) and check the failure message of the rest."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from reportgen.errors import BackendUnavailable
from reportgen.evals.metrics import backends as be

pytestmark = pytest.mark.radeval


@pytest.fixture(scope="module")
def radeval_python() -> str:
    py = os.environ.get(be.RADEVAL_PYTHON_ENV)
    if not py:
        pytest.fail(f"set {be.RADEVAL_PYTHON_ENV} (make test-side builds .venv-radeval and sets it)")
    return py


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)][:300]
    bench = build_benchmark(reports, seed=0, rate=0.3)
    return [b.perturbed for b in bench], [b.reference for b in bench]


def test_radeval_rouge_per_study_equals_ours_with_stemming(radeval_python, pairs):
    from reportgen.evals.metrics.text import rouge_all

    hyps, refs = pairs
    assert sum(h != r for h, r in zip(hyps, refs)) > 200  # most pairs differ
    m = be.load("radeval", radeval_python=radeval_python, metrics=["bleu", "rouge"])
    try:
        got = m.score(hyps, refs)
    finally:
        m.evaluator.close()
    assert m.settings["radeval_version"] == "2.2.1" and m.settings["process"] == "own interpreter"
    assert set(got) == {"radeval_bleu", "radeval_rouge1", "radeval_rouge2", "radeval_rougeL"}
    ours = rouge_all(hyps, refs, use_stemmer=True)  # RadEval's ROUGE stems (rouge-score, use_stemmer=True)
    for k in ("rouge1", "rouge2", "rougeL"):
        np.testing.assert_allclose(np.array(got[f"radeval_{k}"], float), ours[k], rtol=0, atol=1e-12)
    bleu = np.array(got["radeval_bleu"], float)  # pycocoevalcap's BLEU-4: whitespace tokens, case kept
    assert np.all((bleu >= 0) & (bleu <= 1)) and bleu[[h == r for h, r in zip(hyps, refs)]].min() > 0.999


def test_eval_adds_radeval_figures_to_metrics_json(radeval_python, tmp_path):
    from reportgen.cli import main

    ref = tmp_path / "r.jsonl"
    pred = tmp_path / "p.jsonl"
    ref.write_text("".join(json.dumps({"id": i, "report": t}) + "\n" for i, t in
                           (("a", "No pleural effusion. Mild cardiomegaly."), ("b", "The lungs are clear."))))
    pred.write_text("".join(json.dumps({"id": i, "report": t}) + "\n" for i, t in
                            (("a", "No pleural effusion. Mild cardiomegaly."), ("b", "Small right pleural effusion."))))
    out = tmp_path / "m.json"
    assert main(["eval", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--bootstrap", "0", "-q",
                 "--with-radeval", "--radeval-metrics", "bleu,rouge", "--radeval-python", radeval_python]) == 0
    m = json.loads(out.read_text())
    rows = {r["id"]: r for r in m["per_study"]}
    assert rows["a"]["radeval_rougeL"] == pytest.approx(1.0) and rows["b"]["radeval_rougeL"] < 0.5
    assert m["settings"]["model_metrics"]["radeval"]["metrics"] == ["bleu", "rouge"]


def test_radeval_model_metrics_without_weights_say_what_to_do(radeval_python, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendUnavailable) as e:
        be.load("radeval", radeval_python=radeval_python, metrics=["bertscore"])
    assert e.value.code == "E854" and "--radeval-metrics bleu,rouge" in (e.value.fix or "")
