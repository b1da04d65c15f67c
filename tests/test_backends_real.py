"""The model-metric adapters against the REAL packages (issue 14): ratescore 0.6.0 and
f1chexbert 0.0.2 run end to end with tiny weights built from configs (nothing downloaded);
radgraph 0.1.18 is imported and its missing weights give the clear error. Each test skips,
saying why, where its package is not installed (they are not in the dev extra: see
docs/metrics.md)."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from reportgen.errors import BackendUnavailable

WORDS = ("mild cardiomegaly no pleural effusion the lungs are clear right left base stable new pneumothorax "
         "small heart size normal acute disease edema opacity").split()
RATE_LABELS = ("O", "B-ABNORMALITY", "I-ABNORMALITY", "B-NON-ABNORMALITY", "I-NON-ABNORMALITY", "B-DISEASE", "I-DISEASE",
               "B-NON-DISEASE", "I-NON-DISEASE", "B-ANATOMY", "I-ANATOMY")


def _needs(module: str, extra: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the real package {module!r} is not installed (pip install 'reportgen-cxr[{extra}]'); "
                    "the dev extra installs it (docs/metrics.md, model metrics)")


def _vocab(folder):
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + sorted(set(WORDS))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"), model_max_length=128)
    tok.save_pretrained(folder)
    return len(vocab)


def _ratescore_modules() -> list[str]:
    return [m for m in sys.modules if m == "RaTEScore" or m.startswith("RaTEScore.")]


@pytest.fixture(autouse=True)
def _forget_ratescore():
    """RaTEScore imported in a test (with a stand-in medspacy) is forgotten after it, so that
    later imports see this machine's real state."""
    before = set(_ratescore_modules())
    yield
    for name in set(_ratescore_modules()) - before:
        del sys.modules[name]


def _fresh_ratescore(monkeypatch, medspacy):
    """RaTEScore imported anew with ``medspacy`` (a module, or None: not importable)."""
    for name in _ratescore_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "medspacy", medspacy)


def test_ratescore_without_medspacy_names_the_missing_dependency(monkeypatch):
    _needs("RaTEScore", "ratescore")
    from reportgen.evals.metrics.backends import load

    _fresh_ratescore(monkeypatch, None)  # ratescore imports medspacy without declaring it
    with pytest.raises(BackendUnavailable) as e:
        load("ratescore")
    assert e.value.code == "E851" and "'medspacy'" in str(e.value) and "installed but cannot be imported" in str(e.value)
    assert "reportgen-cxr[ratescore]" in str(e.value) and "medspacy" in e.value.fix


def test_ratescore_adapter_runs_the_real_package_with_tiny_local_models(tmp_path, monkeypatch):
    _needs("RaTEScore", "ratescore")
    import spacy
    import torch
    from transformers import BertConfig, BertModel, DebertaV2Config, DebertaV2ForTokenClassification

    from reportgen.evals.metrics.backends import RaTEScoreMetric, load

    # medspacy (RaTEScore's sentence splitter) pins spaCy < 3.8 and numpy < 2: a spaCy
    # sentencizer stands in for it, in this test only; everything else is the package's code
    stub = types.ModuleType("medspacy")

    def _load(**_):
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp

    stub.load = _load
    _fresh_ratescore(monkeypatch, stub)
    ner, emb = tmp_path / "ner", tmp_path / "emb"
    n = _vocab(ner)
    _vocab(emb)
    torch.manual_seed(0)
    DebertaV2ForTokenClassification(DebertaV2Config(
        vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
        id2label=dict(enumerate(RATE_LABELS)), label2id={v: k for k, v in enumerate(RATE_LABELS)})).save_pretrained(ner)
    BertModel(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(emb)
    m = load("ratescore", ner_model=str(ner), embed_model=str(emb))
    assert isinstance(m, RaTEScoreMetric) and m.settings["ner_model"] == str(ner)
    hyps = ["Mild cardiomegaly. No pleural effusion.", "", "The lungs are clear.", "Right pleural effusion, new."]
    refs = ["Mild cardiomegaly. No pleural effusion.", "No pneumothorax.", "Small left effusion.", "Left base stable."]
    got = m.score(hyps, refs)["ratescore"]
    assert got[1] is None  # a failed prediction: None here, 0 in the suite
    from RaTEScore import RaTEScore

    direct = RaTEScore(bert_model=str(ner), eval_model=str(emb), use_gpu=False, batch_size=8).compute_score(
        [hyps[i] for i in (0, 2, 3)], [refs[i] for i in (0, 2, 3)])
    assert [got[i] for i in (0, 2, 3)] == pytest.approx([float(v) for v in direct])
    assert all(0.0 <= got[i] <= 1.0 for i in (0, 2, 3))
    with pytest.raises(BackendUnavailable) as e:  # a weights folder that is not there: E852, nothing downloaded
        load("ratescore", ner_model=str(tmp_path / "absent"), embed_model=str(emb))
    assert e.value.code == "E852" and "absent" in str(e.value)


def _tiny_chexbert(tmp_path, monkeypatch):
    """A Hugging Face cache holding a tiny 'bert-base-uncased' (tokenizer and config) and
    f1chexbert's cache folder holding a chexbert.pth of matching (random) weights."""
    import torch
    from transformers import BertConfig

    snap = tmp_path / "hf" / "hub" / "models--bert-base-uncased" / "snapshots" / ("0" * 40)
    n = _vocab(snap)
    BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               max_position_embeddings=128).save_pretrained(snap)
    (tmp_path / "hf" / "hub" / "models--bert-base-uncased" / "refs").mkdir()
    (tmp_path / "hf" / "hub" / "models--bert-base-uncased" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    import f1chexbert.f1chexbert as impl

    cache = tmp_path / "chexbert"
    cache.mkdir()
    monkeypatch.setattr(impl, "CACHE_DIR", str(cache))
    return impl, cache, snap


def test_chexbert_weights_absent_names_the_file_and_folder(tmp_path, monkeypatch):
    _needs("f1chexbert", "chexbert")
    from reportgen.evals.metrics.backends import load

    impl, cache, _ = _tiny_chexbert(tmp_path, monkeypatch)
    with pytest.raises(BackendUnavailable) as e:
        load("chexbert")
    assert e.value.code == "E852" and "chexbert.pth" in str(e.value) and str(cache) in str(e.value)
    assert "reportgen-cxr[chexbert]" in e.value.fix and not list(cache.iterdir())  # nothing downloaded


def test_chexbert_adapter_runs_the_real_package_with_tiny_weights(tmp_path, monkeypatch):
    _needs("f1chexbert", "chexbert")
    import torch

    from reportgen.evals.metrics.backends import _CHEXBERT_ORDER, load
    from reportgen.evals.metrics.chexpert import CHEXPERT_LABELS

    impl, cache, _ = _tiny_chexbert(tmp_path, monkeypatch)
    torch.manual_seed(0)
    labeler = impl.bert_labeler(inference=True)  # the package's own model class, with the tiny config
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in labeler.state_dict().items()}}, cache / "chexbert.pth")
    m = load("chexbert")
    texts = ["Mild cardiomegaly. No pleural effusion.", "", "The lungs are clear."]
    got = m.labels(texts)
    assert [set(x) for x in got] == [set(CHEXPERT_LABELS)] * 3
    assert all(v is None for v in got[1].values())  # an empty text: all blank
    tok = m.model.tokenizer
    if not hasattr(tok, "encode_plus"):
        # transformers 5 dropped encode_plus, which f1chexbert 0.0.2's get_label calls; give
        # this tokenizer transformers 4's (wordpieces -> [CLS] ids [SEP]) to run the package's
        # own get_label as the reference for the adapter's replacement
        monkeypatch.setattr(type(tok), "encode_plus", lambda self, toks: {
            "input_ids": [self.cls_token_id, *self.convert_tokens_to_ids(toks), self.sep_token_id]}, raising=False)
    for t, labels in zip(texts, got):
        if t:
            raw = m.model.get_label(t, mode="classification")  # the package's own answer, in its label order
            assert [labels[n] for n in _CHEXBERT_ORDER] == [None if v == "" else v for v in raw]
    assert {v for x in got for v in x.values()} - {None, 0, 1, -1} == set()
    assert not any(p.suffix == ".pth" and p.name != "chexbert.pth" for p in cache.iterdir())


def test_radgraph_extractor_imports_the_real_package_and_names_the_missing_weights(tmp_path, monkeypatch):
    _needs("radgraph", "radgraph")
    from reportgen.checkers.graphs.radgraph_backend import RADGRAPH_PYTHON_ENV, RadGraphExtractor

    monkeypatch.delenv(RADGRAPH_PYTHON_ENV, raising=False)  # the package imported here, not its own environment
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ex = RadGraphExtractor(model_type="radgraph", model_cache_dir=str(tmp_path / "rg"), cuda=-1)
    with pytest.raises(BackendUnavailable) as e:
        ex.extract("No pleural effusion.")
    assert e.value.code == "E241" and "'radgraph'" in str(e.value) and "weights" in str(e.value)
    assert "model_cache_dir" in e.value.fix and "rules" in e.value.fix
    assert "radgraph" in sys.modules and hasattr(sys.modules["radgraph"], "RadGraph")  # the real package was imported


def test_radgraph_with_a_local_model_folder_reaches_the_real_loader(tmp_path, monkeypatch):
    """A local model folder (config.json naming a tiny local BERT, a vocabulary) takes the
    real RadGraph loader past the download step into its tokenizer set-up: with
    transformers 5 that fails in radgraph's own allennlp (encode_plus), reported as E871;
    with transformers 4 it goes on to the missing weights.th (E241)."""
    _needs("radgraph", "radgraph")
    import json

    import transformers
    from transformers import BertConfig, BertModel

    from reportgen.checkers.graphs.radgraph_backend import RADGRAPH_PYTHON_ENV, RadGraphExtractor

    monkeypatch.delenv(RADGRAPH_PYTHON_ENV, raising=False)
    bert = tmp_path / "bert"
    n = _vocab(bert)
    BertModel(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(bert)
    model_dir = tmp_path / "rg" / "radgraph"
    (model_dir / "vocabulary").mkdir(parents=True)
    (model_dir / "vocabulary" / "non_padded_namespaces.txt").write_text("*labels\n*tags\n")
    (model_dir / "config.json").write_text(json.dumps({
        "dataset_reader": {"max_span_width": 8, "token_indexers": {"bert": {"model_name": str(bert), "max_length": 512}}},
        "model": {"embedder": {"token_embedders": {"bert": {"model_name": str(bert), "max_length": 512}}}}}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ex = RadGraphExtractor(model_type="radgraph", model_cache_dir=str(tmp_path / "rg"), cuda=-1)
    with pytest.raises(BackendUnavailable) as e:
        ex.extract("No pleural effusion.")
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert e.value.code == "E871" and "encode_plus" in str(e.value) and transformers.__version__ in str(e.value)
        assert "transformers<5" in e.value.fix and "--extractor rules" in e.value.fix
    else:
        assert e.value.code == "E241"
