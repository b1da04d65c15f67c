"""The metrics added by issue 14 against their reference implementations: ROUGE-1/2
against rouge-score, temporal F1 by RadEval's definition, BERTScore against bert-score
itself with a tiny BERT built from a config (offline), and the optional backends' messages."""

from __future__ import annotations

import random

import pytest

from reportgen.evals.metrics.temporal import clean_text, temporal_entities, temporal_f1
from reportgen.evals.metrics.text import rouge_all

WORDS = "no pleural effusion or pneumothorax mild cardiomegaly the lungs are clear right left base new stable".split()


def _pairs(n=150, seed=0):
    rng = random.Random(seed)
    hyps, refs = ["", "Lungs clear.", "x"], ["No acute disease.", "", "x"]
    for _ in range(n):
        ref = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 25)))
        toks = ref.split()
        for _ in range(rng.randrange(0, 5)):
            k = rng.randrange(0, len(toks) + 1)
            if rng.random() < 0.5 or not toks:
                toks.insert(k, rng.choice(WORDS))
            else:
                toks[min(k, len(toks) - 1)] = rng.choice(WORDS) + rng.choice(["", ",", "."])
        hyps.append(" ".join(toks))
        refs.append(ref)
    return hyps, refs


def test_rouge_1_2_l_equal_rouge_score():
    from rouge_score import rouge_scorer

    hyps, refs = _pairs()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    got = rouge_all(hyps, refs)
    for t in ("rouge1", "rouge2", "rougeL"):
        assert got[t].tolist() == [scorer.score(r, h)[t].fmeasure for h, r in zip(hyps, refs)]  # identical


def _radeval_tem(pred: str, ref: str, eps: float = 1e-10) -> float:
    """RadEval's calculate_tem_score with its keyword search (stanza's NER left out: its
    entities are only kept when they are keywords, which the word search finds too)."""
    import re

    from reportgen.evals.metrics.temporal import _settings

    words = _settings()[0]
    pattern = r"\b(" + "|".join(re.escape(w) for w in words) + r")\b"

    def ents(t):
        return {m.group().lower() for m in re.finditer(pattern, clean_text(t).lower())}

    p, r = ents(pred), ents(ref)
    if not r:
        return 1.0 if not p else eps
    tp = len(p & r)
    prec, rec = (tp + eps) / (len(p) + eps), (tp + eps) / (len(r) + eps)
    return 2 * prec * rec / (prec + rec + eps)


def test_temporal_f1_by_radeval_definition():
    cases = [
        ("New right pleural effusion.", "New right pleural effusion.", 1.0),
        ("Stable cardiomegaly.", "No change in cardiomegaly.", None),  # stable vs change: disjoint
        ("Heart normal.", "Heart normal.", 1.0),  # no temporal entity on either side
        ("Worsened edema.", "Heart normal.", 1e-10),  # reference without, prediction with
        ("Heart normal.", "Improved edema, resolved effusion.", None),
        ("Improved edema; new-onset opacity", "Improved edema. Persistent opacity, new", None),
    ]
    for pred, ref, want in cases:
        got = temporal_f1(temporal_entities(pred), temporal_entities(ref))
        assert got == pytest.approx(_radeval_tem(pred, ref), rel=1e-12, abs=1e-15)
        if want is not None:
            assert got == pytest.approx(want)
    assert temporal_entities("Interval improvement; new-onset effusion") == {"improvement", "new"}
    assert temporal_f1(frozenset({"new", "stable"}), frozenset({"new"})) == pytest.approx(2 / 3)
    # Our entity graphs add keyword entities the word search would miss after cleaning.
    assert "worse" in temporal_entities("worse/better", ["worse"])
    hyps, refs = _pairs(80, seed=3)
    for h, r in zip(hyps, refs):
        assert temporal_f1(temporal_entities(h), temporal_entities(r)) == pytest.approx(_radeval_tem(h, r), abs=1e-15)


def _tiny_bert(folder):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + sorted(set(WORDS + "heart size normal acute disease".split()))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"), model_max_length=128)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("bert_score")
    return _tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def test_bertscore_equals_bert_score_with_a_local_tiny_bert(tiny_bert):
    import bert_score

    from reportgen.evals.metrics.backends import load

    hyps = ["mild cardiomegaly. no pleural effusion.", "the lungs are clear", "", "right pleural effusion, new"]
    refs = ["mild cardiomegaly. no pleural effusion.", "no pneumothorax or effusion", "the lungs are clear", "left base stable"]
    m = load("bertscore", model=str(tiny_bert))
    assert m.settings == {"model": str(tiny_bert), "num_layers": 2, "rescaled": False, "baseline": None}
    got = m.score(hyps, refs)
    keep = [0, 1, 3]
    p, r, f = bert_score.score([hyps[i] for i in keep], [refs[i] for i in keep], model_type=str(tiny_bert), num_layers=2)
    assert [got["bertscore_f1"][i] for i in keep] == pytest.approx(f.tolist(), abs=1e-6)
    assert [got["bertscore_precision"][i] for i in keep] == pytest.approx(p.tolist(), abs=1e-6)
    assert got["bertscore_f1"][0] == pytest.approx(1.0, abs=1e-5) and got["bertscore_f1"][2] is None
    m1 = load("bertscore", model=str(tiny_bert), num_layers=1)
    assert m1.settings["num_layers"] == 1 and m1.score(hyps[:2], refs[:2])["bertscore_f1"][1] != pytest.approx(got["bertscore_f1"][1])


def test_eval_bertscore_and_failed_predictions(tiny_bert, tmp_path):
    import json

    from reportgen.cli import main

    pred = tmp_path / "p.jsonl"
    ref = tmp_path / "r.jsonl"
    pred.write_text(json.dumps({"id": "a", "report": "Mild cardiomegaly."}) + "\n" + json.dumps({"id": "b", "report": None}) + "\n")
    ref.write_text(json.dumps({"id": "a", "report": "Mild cardiomegaly."}) + "\n" + json.dumps({"id": "b", "report": "No effusion."}) + "\n")
    out = tmp_path / "m.json"
    assert main(["eval", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--bootstrap", "0", "-q", "--bertscore", str(tiny_bert)]) == 0
    m = json.loads(out.read_text())
    rows = {r["id"]: r for r in m["per_study"]}
    assert rows["a"]["bertscore_f1"] == pytest.approx(1.0, abs=1e-5) and rows["b"]["bertscore_f1"] == 0.0
    assert m["corpus"]["bertscore_f1"]["estimate"] == pytest.approx(0.5, abs=1e-5)
    assert m["settings"]["model_metrics"]["bertscore"]["num_layers"] == 2


def test_missing_backends_name_the_extra_and_the_weights(tmp_path, capsys, monkeypatch):
    import json

    from reportgen.cli import main
    from reportgen.errors import BackendUnavailable
    from reportgen.evals.metrics.backends import load

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing local
    monkeypatch.delenv("REPORTGEN_RADEVAL_PYTHON", raising=False)  # RadEval imported here, not in its own environment
    for name, extra in (("ratescore", "ratescore"), ("srr_bert", "radeval"), ("chexbert", "chexbert"), ("radeval", "radeval")):
        with pytest.raises(BackendUnavailable) as e:
            load(name)
        msg = str(e.value)
        assert e.value.code in ("E851", "E852") and (f"reportgen-cxr[{extra}]" in msg or "huggingface-cli download" in msg)
    if __import__("importlib").util.find_spec("bert_score"):
        with pytest.raises(BackendUnavailable, match="E852.*distilbert-base-uncased"):
            load("bertscore")
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "report": "No effusion."}) + "\n")
    out = tmp_path / "m.json"
    # auto: every unavailable backend skipped with its message, the run goes on.
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--bootstrap", "0", "-q", "--model-metrics", "auto"]) == 0
    m = json.loads(out.read_text())
    assert {s["metric"] for s in m["skipped_metrics"]} == {"bertscore", "ratescore", "srr_bert", "chexbert", "radeval"}
    assert all(s["fix"] for s in m["skipped_metrics"]) and "ratescore skipped" in capsys.readouterr().err
    # named explicitly: an error before any study is scored.
    out.unlink()
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--model-metrics", "ratescore"]) == 1
    assert "E851" in capsys.readouterr().err and not out.exists()
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--with-radeval"]) == 1
    assert "radeval" in capsys.readouterr().err
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--labeler", "chexbert"]) == 1
    assert "reportgen-cxr[chexbert]" in capsys.readouterr().err
    assert main(["eval", "--pred", str(p), "--ref", str(p), "--out", str(out), "--model-metrics", "nope"]) == 1
    assert "E857" in capsys.readouterr().err


def test_bit_parallel_lcs_equals_rouge_scores_table():
    from rouge_score.rouge_scorer import _lcs_table

    from reportgen.evals.metrics.text import lcs_length

    rng = random.Random(5)
    for _ in range(300):
        a = [rng.choice("abcdefg") for _ in range(rng.randrange(0, 140))]  # beyond 64 bits too
        b = [rng.choice("abcdefgh") for _ in range(rng.randrange(0, 140))]
        want = _lcs_table(a, b)[-1][-1] if a and b else 0
        assert lcs_length(a, b) == want


def test_rouge_without_rouge_score_equals_it_on_iu_reports_and_odd_text():
    """ROUGE-1/2/L are computed with our copy of rouge-score's tokenizer and formulas (no
    nltk import): identical floats on IU reports paired with perturbed copies and on text
    with accents, digits, punctuation runs and line breaks; with stemming, rouge-score's own
    tokenizer is used."""
    import subprocess
    import sys

    from rouge_score import rouge_scorer
    from rouge_score import tokenize as rs_tokenize

    from reportgen.evals.inject import build_benchmark
    from reportgen.evals.metrics.text import rouge_l, rouge_tokens
    from reportgen.iu import load_iu_reports

    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)[:120]]
    bench = build_benchmark(reports, seed=7, rate=0.5)
    odd = ["Épanchement pleural  droit; T12/L1 fracture -- 3.5cm\nnodule", "İstanbul: NO pneumothorax!!\n\n(2x) effusions",
           "", "   ", "x-ray 2019-01-01 ...", "ÄÖÜ äöü ß 12 ½"]
    hyps = [b.perturbed for b in bench] + odd + odd[::-1]
    refs = [b.reference for b in bench] + odd[::-1] + odd
    for t in odd:
        assert rouge_tokens(t) == rs_tokenize.tokenize(t, None)
    got = rouge_all(hyps, refs)
    for stem in (False, True):
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
        want = [scorer.score(r, h) for h, r in zip(hyps, refs)]
        res = got if not stem else rouge_all(hyps, refs, use_stemmer=True)
        for t in ("rouge1", "rouge2", "rougeL"):
            assert res[t].tolist() == [w[t].fmeasure for w in want], (t, stem)  # identical
        assert rouge_l(hyps, refs, use_stemmer=stem).tolist() == [w["rougeL"].fmeasure for w in want]
    # scoring without stemming does not import rouge-score (nor nltk through it)
    code = ("import sys; from reportgen.evals.metrics.text import rouge_all; rouge_all(['a b'], ['a c']); "
            "print('rouge_score' in sys.modules, 'nltk' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]
