"""Optional model-based metrics: BERTScore, RaTEScore, SRR-BERT, CheXbert labels, RadEval.

Each backend wraps the maintained package (imported lazily, never at ``import
reportgen.evals``) and runs only with weights already on this machine: a local folder, or a
Hugging Face cache entry (resolved with ``local_files_only``; nothing is downloaded). When
the package or the weights are missing, ``load`` raises ``BackendUnavailable`` naming the
extra to install and the weights to fetch; ``reportgen eval --model-metrics auto`` then
skips the metric with that message.

A backend has ``name``, ``names`` (the per-study figures it adds) and
``score(hyps, refs) -> {name: [value or None per pair]}``; an empty hypothesis (a failed
prediction) gets None here and 0 in the suite.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from reportgen.errors import BackendUnavailable, ReportgenError

# RadEval's BERTScore: distilbert-base-uncased, layer 5, rescaled with bert-score's baseline.
RADEVAL_BERTSCORE = ("distilbert-base-uncased", 5)
AUTO = ("bertscore", "ratescore", "srr_bert", "chexbert", "radeval")
RADEVAL_BACKED = ("srr_bert", "radeval")  # run by RadEval (here or in its own interpreter)
KNOWN = AUTO


def load(name: str, **kwargs: Any) -> Any:
    """The backend ``name`` ready to score, or BackendUnavailable (E851-E856) saying why."""
    factories = {"bertscore": BertScoreMetric, "ratescore": RaTEScoreMetric, "srr_bert": SRRBertMetric,
                 "chexbert": CheXbertMetric, "radeval": RadEvalMetric}
    if name not in factories:
        raise ReportgenError("E857", f"unknown model metric {name!r}", fix=f"use one of: {', '.join(KNOWN)}, auto")
    return factories[name](**{k: v for k, v in kwargs.items() if v is not None})


def local_weights(name_or_path: str, extra: str, metric: str) -> str:
    """A local folder for a model: the folder itself, or the Hugging Face cache snapshot of
    a hub name (never downloaded)."""
    if Path(name_or_path).is_dir():
        return str(Path(name_or_path))
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name_or_path, local_files_only=True)
    except Exception:
        raise BackendUnavailable(
            "E852", f"{metric}: the weights {name_or_path!r} are not on this machine (no local folder, not in the Hugging Face cache)",
            fix=f"fetch them once where there is a network (huggingface-cli download {name_or_path}) or give a local folder; "
                f"install the extra with pip install 'reportgen-cxr[{extra}]'") from None


def _need(module: str, extra: str, metric: str, dependency_fix: str = "") -> Any:
    """Import ``module``; E851 when it is not installed, or when it is but one of ITS
    imports is missing (a dependency the package uses without declaring it)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing and missing.split(".")[0] != module.split(".")[0]:
            raise BackendUnavailable(
                "E851", f"{metric}: the package {module!r} (extra reportgen-cxr[{extra}]) is installed but cannot be imported: "
                f"it needs {missing!r} ({exc})",
                fix=dependency_fix or f"pip install {missing} (a dependency of {module} it does not declare)") from None
        raise BackendUnavailable("E851", f"{metric} needs the package {module!r}, which is not installed ({exc})",
                                 fix=f"pip install 'reportgen-cxr[{extra}]' and put its weights on this machine") from None


class BertScoreMetric:
    """BERTScore F1 (and precision, recall) with the ``bert-score`` package.

    ``model``: a Hugging Face name (in the local cache) or a local folder; default RadEval's
    (distilbert-base-uncased, layer 5, rescaled with bert-score's baseline for it). A local
    folder uses its last layer unless ``num_layers`` says otherwise and is rescaled only
    with a ``baseline_path``."""

    name = "bertscore"
    names = ("bertscore_f1", "bertscore_precision", "bertscore_recall")

    def __init__(self, model: str | None = None, num_layers: int | None = None, baseline_path: str | None = None,
                 rescale: bool | None = None, batch_size: int = 32, device: str = "cpu"):
        bert_score = _need("bert_score", "bertscore", "BERTScore")
        name = model or RADEVAL_BERTSCORE[0]
        folder = local_weights(name, "bertscore", "BERTScore")
        from bert_score.utils import model2layers

        if num_layers is None:
            num_layers = RADEVAL_BERTSCORE[1] if model is None else model2layers.get(name) or _n_layers(folder)
        if baseline_path is None and not Path(name).is_dir():
            packaged = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{name}.tsv"
            baseline_path = str(packaged) if packaged.exists() else None
        self.rescale = bool(baseline_path) if rescale is None else rescale
        if self.rescale and not baseline_path:
            raise ReportgenError("E853", f"BERTScore: no rescaling baseline for {name!r}", fix="give --bertscore-baseline TSV or leave rescaling off")
        self.settings = {"model": name, "num_layers": num_layers, "rescaled": self.rescale,
                         "baseline": Path(baseline_path).name if baseline_path else None}
        self.scorer = bert_score.BERTScorer(model_type=folder, num_layers=num_layers, batch_size=batch_size, device=device,
                                            lang="en", rescale_with_baseline=self.rescale, baseline_path=baseline_path)

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, list[float | None]]:
        keep = [i for i, h in enumerate(hyps) if h.strip() and refs[i].strip()]
        out: dict[str, list[float | None]] = {n: [None] * len(hyps) for n in self.names}
        if not keep:
            return out
        p, r, f = self.scorer.score([hyps[i] for i in keep], [refs[i] for i in keep], verbose=False)
        for vals, name in ((f, "bertscore_f1"), (p, "bertscore_precision"), (r, "bertscore_recall")):
            for i, v in zip(keep, vals.tolist()):
                out[name][i] = float(v)
        return out


def _n_layers(folder: str) -> int:
    import json

    cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    n = cfg.get("num_hidden_layers") or cfg.get("n_layers")
    if not n:
        raise ReportgenError("E853", f"BERTScore: cannot tell the number of layers of {folder}", fix="give --bertscore-layers N")
    return int(n)


class RaTEScoreMetric:
    """RaTEScore through the ``ratescore`` package (``RaTEScore.RaTEScore``, verified against
    ratescore 0.6.0): its NER model (``ner_model``, default Angelakeke/RaTE-NER-Deberta) and
    its synonym-embedding model (``embed_model``, default FremyCompany/BioLORD-2023-C), each a
    local folder or a Hugging Face cache entry, given to it as local folders; on CPU unless
    ``device`` says otherwise (the package's own default is CUDA). RaTEScore imports medspacy
    (its sentence splitter) without declaring it: without medspacy, E851 says so."""

    name = "ratescore"
    names = ("ratescore",)
    WEIGHTS = ("Angelakeke/RaTE-NER-Deberta", "FremyCompany/BioLORD-2023-C")
    MEDSPACY_FIX = ("pip install medspacy (RaTEScore's sentence splitter; medspacy 1.3 pins spaCy < 3.8 and numpy < 2, "
                    "so install it in an environment of its own)")

    def __init__(self, ner_model: str | None = None, embed_model: str | None = None, device: str = "cpu",
                 batch_size: int = 8, affinity_matrix: str = "long", **_: Any):
        mod = _need("RaTEScore", "ratescore", "RaTEScore", self.MEDSPACY_FIX)
        ner = local_weights(ner_model or self.WEIGHTS[0], "ratescore", "RaTEScore")
        emb = local_weights(embed_model or self.WEIGHTS[1], "ratescore", "RaTEScore")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.settings = {"package": "ratescore", "ner_model": ner_model or self.WEIGHTS[0],
                         "embed_model": embed_model or self.WEIGHTS[1], "affinity_matrix": affinity_matrix}
        self.scorer = mod.RaTEScore(bert_model=ner, eval_model=emb, batch_size=batch_size, use_gpu=device != "cpu",
                                    affinity_matrix=affinity_matrix)

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, list[float | None]]:
        keep = [i for i, h in enumerate(hyps) if h.strip() and refs[i].strip()]
        vals = self.scorer.compute_score([hyps[i] for i in keep], [refs[i] for i in keep]) if keep else []
        out: list[float | None] = [None] * len(hyps)
        for i, v in zip(keep, vals):
            out[i] = float(v)
        return {"ratescore": out}


# RadEval pins numpy 1.26 and spaCy 3.7, so it usually lives in an environment of its own:
# with this variable set to that environment's Python, RadEval runs there (radeval_runner.py,
# JSON lines over pipes) instead of being imported here.
RADEVAL_PYTHON_ENV = "REPORTGEN_RADEVAL_PYTHON"
_RADEVAL_LOAD_FIX = ("fetch RadEval's weights once where there is a network (they go to the Hugging Face cache), "
                     "or ask for the metrics that need none (--radeval-metrics bleu,rouge)")


class _RadEvalBackend:
    """RadEval itself (the radeval extra), asked for per-sample scores of ``metrics``
    (RadEval 2.x names; ``radeval_runner.make_evaluator``): every list-valued entry of its
    answer becomes a per-study figure named ``prefix + key``. ``names`` is known after the
    first ``score``. Imported here, or run in the interpreter ``REPORTGEN_RADEVAL_PYTHON``
    names (or ``radeval_python=``), where RadEval's pins do not clash with ours."""

    name = ""
    prefix = ""
    metrics: tuple[str, ...] = ()

    def __init__(self, radeval_python: str | None = None, metrics: Sequence[str] | None = None, **_: Any):
        from reportgen.evals.metrics import radeval_runner as rr

        self.names: tuple[str, ...] = ()
        self.metrics = tuple(metrics or self.metrics)
        self.python = radeval_python or os.environ.get(RADEVAL_PYTHON_ENV) or None
        self.settings = {"package": "RadEval", "metrics": list(self.metrics), "per_sample": True}
        if self.python:
            self.evaluator = _RadEvalProcess(self.python, self.metrics, self.name)
            self.settings.update({"process": "own interpreter", "radeval_version": self.evaluator.version})
            return
        if importlib.util.find_spec("radeval") is None and importlib.util.find_spec("RadEval") is None:
            raise BackendUnavailable("E851", f"{self.name} needs the package 'radeval', which is not installed",
                                     fix=f"pip install 'reportgen-cxr[radeval]' and put its weights on this machine, or install "
                                         f"RadEval in an environment of its own and set {RADEVAL_PYTHON_ENV} to its python")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.evaluator = rr.make_evaluator(self.metrics)
        except Exception as exc:
            raise BackendUnavailable("E854", f"{self.name}: RadEval could not load its models offline ({type(exc).__name__}: {exc})",
                                     fix=_RADEVAL_LOAD_FIX) from None
        self.settings["radeval_version"] = rr.radeval_version()

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, list[float | None]]:
        from reportgen.evals.metrics.radeval_runner import per_sample

        keep = [i for i, h in enumerate(hyps) if h.strip()]
        res = self.evaluator(refs=[refs[i] for i in keep], hyps=[hyps[i] for i in keep]) if keep else {}
        out: dict[str, list[float | None]] = {}
        for key, per in per_sample(res, len(keep)).items():
            col: list[float | None] = [None] * len(hyps)
            for i, v in zip(keep, per):
                col[i] = v
            out[self.prefix + key] = col
        self.names = tuple(out)
        return out


class _RadEvalProcess:
    """RadEval running in another interpreter (``radeval_runner.py`` through
    ``reportgen.pyproc.JsonLinesProcess``), called like a ``RadEval`` object. Started once;
    the models load there once."""

    def __init__(self, python: str, metrics: Sequence[str], metric: str):
        from reportgen.pyproc import JsonLinesProcess

        self.metric = metric
        self.proc = JsonLinesProcess(
            python, Path(__file__).with_name("radeval_runner.py"), {"metrics": list(metrics)}, what=f"{metric}: RadEval",
            code="E855", env_var=RADEVAL_PYTHON_ENV, load_code="E854",
            load_fix=_RADEVAL_LOAD_FIX)
        self.version = self.proc.ready.get("radeval")

    def __call__(self, refs: Sequence[str], hyps: Sequence[str]) -> dict[str, list[float | None]]:
        ans = self.proc.ask({"refs": list(refs), "hyps": list(hyps)})
        if "error" in ans:
            raise ReportgenError("E855", f"{self.metric}: RadEval failed on this batch ({ans['error']})",
                                 fix="run the same references and predictions through RadEval directly to see why")
        return ans["scores"]

    def close(self) -> None:
        self.proc.close()


class SRRBertMetric(_RadEvalBackend):
    """SRR-BERT through RadEval (figures ``srr_bert_<RadEval's key>``)."""

    name = "srr_bert"
    prefix = "srr_bert_"
    metrics = ("srrbert",)


class RadEvalMetric(_RadEvalBackend):
    """RadEval's offline metric set; every per-sample figure it returns is added with the
    prefix ``radeval_`` (``--with-radeval``)."""

    name = "radeval"
    prefix = "radeval_"
    metrics = ("bleu", "rouge", "bertscore", "radgraph", "f1chexbert", "ratescore", "temporal", "srrbert")


class CheXbertMetric:
    """CheXbert (f1chexbert) as the labeler of the CheXpert label F1 (``--labeler chexbert``):
    labels from the model instead of from our findings. Verified against f1chexbert 0.0.2:
    ``F1CheXbert(device=...)`` loads ``chexbert.pth`` from ITS OWN cache folder
    (``f1chexbert.f1chexbert.CACHE_DIR``, appdirs' user cache "chexbert"; it downloads there
    when the file is absent) and the bert-base-uncased tokenizer and config from the Hugging
    Face cache; both must be on this machine (E852 otherwise, before anything is loaded)."""

    name = "chexbert"
    names: tuple[str, ...] = ()
    WEIGHTS = ("StanfordAIMI/RRG_scorers", "chexbert.pth")
    BERT = "bert-base-uncased"

    def __init__(self, device: str = "cpu", **_: Any):
        mod = _need("f1chexbert", "chexbert", "CheXbert")
        impl = importlib.import_module("f1chexbert.f1chexbert")
        checkpoint = Path(impl.CACHE_DIR) / self.WEIGHTS[1]
        if not checkpoint.is_file():
            raise BackendUnavailable(
                "E852", f"CheXbert: {self.WEIGHTS[1]} (of {self.WEIGHTS[0]}) is not in f1chexbert's cache folder {impl.CACHE_DIR}",
                fix=f"huggingface-cli download {self.WEIGHTS[0]} {self.WEIGHTS[1]} --local-dir {impl.CACHE_DIR} where there is a network "
                    f"(install the extra with pip install 'reportgen-cxr[chexbert]')")
        local_weights(self.BERT, "chexbert", "CheXbert (its tokenizer and config)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.settings = {"package": "f1chexbert", "checkpoint": str(checkpoint)}
        self.model = mod.F1CheXbert(device=device)

    def labels(self, texts: Sequence[str]) -> list[dict[str, int | None]]:
        """The 14 CheXpert labels per text, in reportgen's form (1 / 0 / -1 / None)."""
        from reportgen.evals.metrics.chexpert import CHEXPERT_LABELS

        out = []
        get = self.model.get_label if hasattr(self.model.tokenizer, "encode_plus") else self._get_label
        for t in texts:
            # f1chexbert's "classification" mode: '' blank, 1 positive, 0 negative, -1 uncertain
            raw = get(t, mode="classification") if t.strip() else [""] * 14
            labels = {n: (None if v == "" else int(v)) for n, v in zip(_CHEXBERT_ORDER, raw)}
            out.append({n: labels.get(n) for n in CHEXPERT_LABELS})
        return out

    def _get_label(self, report: str, mode: str = "classification") -> list:
        """``F1CheXbert.get_label(report, "classification")`` for transformers 5, whose
        tokenizers no longer have the ``encode_plus`` that f1chexbert 0.0.2 calls: the same
        steps (whitespace cleaned, wordpieces, [CLS] ... [SEP] cut at 512, the 14 heads'
        argmax); tested equal to the package's
        ``get_label`` on a tokenizer given the old ``encode_plus``."""
        import re

        import torch

        m = self.model
        text = re.sub(r"\s+", " ", report.strip().replace("\n", " ")).strip()
        tokens = m.tokenizer.tokenize(text)
        tok = m.tokenizer
        ids = [tok.cls_token_id, *tok.convert_tokens_to_ids(tokens), tok.sep_token_id]  # BERT's single-text template
        if len(ids) > 512:
            ids = ids[:511] + [tok.sep_token_id]
        batch = torch.LongTensor([ids]).to(m.device)
        with torch.no_grad():
            heads = m.model(batch, torch.ones(batch.shape, dtype=torch.float, device=m.device))
        classes = [h.argmax(dim=1).item() for h in heads]
        return [{0: "", 1: 1, 2: 0, 3: -1}[c] for c in classes]

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> dict[str, list[float | None]]:
        return {}


# f1chexbert's label order (CheXbert's), which differs from CHEXPERT_LABELS.
_CHEXBERT_ORDER = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
                   "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
                   "Support Devices", "No Finding")
