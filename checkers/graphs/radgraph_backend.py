"""The ``radgraph`` graph extractor: the `radgraph` package's model (Jain et al. 2021;
RadGraph-XL, Delbrouck et al. 2024) behind the GraphExtractor protocol.

Install with ``pip install 'reportgen-cxr[radgraph]'``. The package downloads its weights from
the Hugging Face hub on first use (``RadGraph(model_type=...)``) into its cache folder, or
reads them from ``model_cache_dir``. Nothing is imported or downloaded when this extractor
is constructed; the model loads at the first ``extract``. Without the package, or without
weights (offline, no cache), a clear error (E240/E241) names the offline ``rules`` backend.

The model tokenizes the text itself (wordpunct) and answers with token indices; entities are
mapped back to character offsets of the given text. Both label styles are understood:
RadGraph 1 ("OBS-DP", "ANAT-DP", ...) and RadGraph-XL ("Observation::definitely present",
"Anatomy::definitely present", ...); relation names are normalised (located_at, modify,
suggestive_of).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from reportgen.errors import BackendUnavailable, ReportgenError
from reportgen.types import Entity, EntityGraph, Relation

log = logging.getLogger(__name__)

MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl")
RELATIONS = {"located_at": "located_at", "located at": "located_at", "locatedat": "located_at",
             "modify": "modify", "modifies": "modify", "suggestive_of": "suggestive_of",
             "suggestive of": "suggestive_of", "suggestiveof": "suggestive_of"}
_SHORT = {"OBS-DP": "OBS-DP", "OBS-U": "OBS-U", "OBS-DA": "OBS-DA", "ANAT-DP": "ANAT-DP", "ANAT-U": "ANAT-DP", "ANAT-DA": "ANAT-DP"}
_FIX = "install it with pip install 'reportgen-cxr[radgraph]' (its weights download on first use), or use the offline 'rules' extractor (--extractor rules)"


def map_label(label: str) -> str | None:
    """A RadGraph label in either style -> ENTITY_LABELS, or None when not understood."""
    if not isinstance(label, str):
        return None
    up = label.strip().upper()
    if up in _SHORT:
        return _SHORT[up]
    parts = [p.strip().lower() for p in label.split("::") if p.strip()]
    if len(parts) < 2:
        return None
    kind, certainty = parts[0], parts[-1]
    if kind.startswith("anat"):
        return "ANAT-DP"
    if not kind.startswith("obs"):
        return None
    if "absent" in certainty:
        return "OBS-DA"
    if "uncertain" in certainty:
        return "OBS-U"
    if "present" in certainty:
        return "OBS-DP"
    return None


def map_relation(name: str) -> str | None:
    if not isinstance(name, str):
        return None
    return RELATIONS.get(name.strip().lower().replace("-", "_"))


def _align(tokens: Sequence[str], text: str) -> list[tuple[int, int] | None]:
    """Character span of each model token in ``text`` (None where it cannot be found, e.g.
    quotes the model's preprocessing rewrote)."""
    out: list[tuple[int, int] | None] = []
    pos = 0
    for tok in tokens:
        k = text.find(tok, pos)
        if k < 0 or (k - pos) > 40 + len(tok):
            out.append(None)
            continue
        out.append((k, k + len(tok)))
        pos = k + len(tok)
    return out


def graph_from_annotation(ann: Mapping[str, Any] | None, text: str) -> EntityGraph:
    """One RadGraph annotation ({"text": tokens joined by spaces, "entities": {...}}) ->
    EntityGraph with character offsets into ``text``."""
    if not ann:
        return EntityGraph()
    tokens = str(ann.get("text", "")).split()
    spans = _align(tokens, text)
    ents: list[Entity] = []
    ids: set[str] = set()
    rels: list[tuple[str, str, str]] = []
    for key, e in (ann.get("entities") or {}).items():
        label = map_label(e.get("label", ""))
        if label is None:
            log.debug("radgraph: skipped entity with label %r", e.get("label"))
            continue
        try:
            i, j = int(e["start_ix"]), int(e["end_ix"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (0 <= i <= j < len(spans)) or spans[i] is None or spans[j] is None:
            continue
        s, t = spans[i][0], spans[j][1]
        eid = f"e{key}"
        ents.append(Entity(eid, text[s:t], s, t, label, None))
        ids.add(eid)
        for rel in e.get("relations") or ():
            if isinstance(rel, (list, tuple)) and len(rel) >= 2:
                typ = map_relation(rel[0])
                if typ:
                    rels.append((typ, eid, f"e{rel[1]}"))
    relations = tuple(Relation(t, s, d) for t, s, d in rels if s in ids and d in ids)
    ents.sort(key=lambda x: (x.start, x.end))
    return EntityGraph(tuple(ents), relations)


def _installed() -> bool:
    """Whether ``import radgraph`` can work, without importing it (it imports torch)."""
    try:
        return importlib.util.find_spec("radgraph") is not None  # None also when an import failed before
    except ValueError:  # imported already, without a spec (a module made in code)
        return True
    except ImportError:
        return False


# radgraph's bundled allennlp needs transformers 4: with this variable set to the python of
# such an environment, the model runs there (radgraph_runner.py, JSON lines over pipes).
RADGRAPH_PYTHON_ENV = "REPORTGEN_RADGRAPH_PYTHON"
_TRANSFORMERS4_FIX = ("run the radgraph model in an environment with transformers<5 (bash scripts/setup_side_env.sh radgraph builds "
                      f".venv-radgraph) and set {RADGRAPH_PYTHON_ENV} to its python, or use the offline 'rules' extractor "
                      "(--extractor rules)")


class RadGraphExtractor:
    """The radgraph model as a GraphExtractor. ``model_type``: radgraph, radgraph-xl
    (default) or modern-radgraph-xl; ``model_cache_dir``: where the weights are (or go);
    ``cuda``: GPU index, -1 for CPU, None = the package's choice; ``radgraph_python`` (or
    ``$REPORTGEN_RADGRAPH_PYTHON``): run the model in that interpreter, an environment of its
    own with transformers 4 (the package cannot load a model beside transformers 5)."""

    name = "radgraph"

    def __init__(self, model_type: str = "radgraph-xl", model_cache_dir: str | None = None, batch_size: int = 1,
                 cuda: int | None = None, radgraph_python: str | None = None, **kwargs: Any):
        if model_type not in MODEL_TYPES:
            raise ReportgenError("E243", f"unknown radgraph model_type {model_type!r}", fix=f"use one of {', '.join(MODEL_TYPES)}")
        self.python = radgraph_python or os.environ.get(RADGRAPH_PYTHON_ENV) or None
        if self.python is None and not _installed():
            raise BackendUnavailable("E240", "the radgraph extractor needs the 'radgraph' package, which is not installed", fix=_FIX)
        self.model_type = model_type
        self.model_cache_dir = model_cache_dir
        self.batch_size = batch_size
        self.cuda = cuda
        self.kwargs = kwargs
        self._model = None

    def __repr__(self) -> str:
        return f"RadGraphExtractor(model_type={self.model_type!r}, loaded={self._model is not None})"

    def _options(self) -> dict[str, Any]:
        opts = dict(self.kwargs, model_type=self.model_type, batch_size=self.batch_size)
        if self.model_cache_dir:
            opts["model_cache_dir"] = self.model_cache_dir
        if self.cuda is not None:
            opts["cuda"] = self.cuda
        return opts

    def _model_in_process(self) -> "_RadGraphProcess":
        """The model in ``self.python`` (radgraph_runner.py), called like the package's."""
        from reportgen.pyproc import JsonLinesProcess

        try:
            proc = JsonLinesProcess(self.python, Path(__file__).with_name("radgraph_runner.py"), {"options": self._options()},
                                    what=f"the radgraph model {self.model_type!r}", code="E244", env_var=RADGRAPH_PYTHON_ENV,
                                    load_code="E241", load_fix="connect to the network once (or pass model_cache_dir with the "
                                    "weights), or use the offline 'rules' extractor (--extractor rules)")
        except BackendUnavailable as e:
            if "encode_plus" in e.message:  # that environment has transformers 5 too
                raise BackendUnavailable("E871", f"{e.message}: its transformers is 5 or later", fix=_TRANSFORMERS4_FIX) from None
            raise
        return _RadGraphProcess(proc)

    def model(self):
        """The radgraph model, loaded at first use (here, or in ``self.python``)."""
        if self._model is None and self.python is not None:
            self._model = self._model_in_process()
        if self._model is None:
            try:
                radgraph = importlib.import_module("radgraph")
            except Exception as e:  # broken install (missing torch, ...)
                raise BackendUnavailable("E240", f"the radgraph package cannot be imported ({type(e).__name__}: {e})", fix=_FIX) from e
            try:
                self._model = radgraph.RadGraph(**self._options())
            except AttributeError as e:
                if "encode_plus" not in str(e):
                    raise BackendUnavailable("E241", f"the radgraph model {self.model_type!r} could not be loaded "
                                             f"({type(e).__name__}: {e})", fix=_FIX) from e
                # radgraph's bundled allennlp calls tokenizer.encode_plus, gone in transformers 5:
                # no model loads, whatever the weights (verified with radgraph 0.1.18)
                import transformers

                raise BackendUnavailable(
                    "E871",
                    f"the radgraph package ({getattr(radgraph, '__version__', 'installed')}) cannot load a model with "
                    f"transformers {transformers.__version__}: its allennlp code calls tokenizer.encode_plus, which "
                    "transformers 5 removed",
                    fix=_TRANSFORMERS4_FIX,
                ) from e
            except Exception as e:
                raise BackendUnavailable(
                    "E241",
                    f"the radgraph model {self.model_type!r} could not be loaded ({type(e).__name__}: {e}); its weights "
                    "are downloaded from the Hugging Face hub on first use",
                    fix="connect to the network once (or pass model_cache_dir with the weights), or use the offline "
                        "'rules' extractor (--extractor rules)",
                ) from e
        return self._model

    def extract(self, text: str) -> EntityGraph:
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str]) -> list[EntityGraph]:
        texts = list(texts)
        if not texts:
            return []
        model = self.model()
        try:
            out = model(texts)
        except Exception as e:
            raise ReportgenError("E242", f"the radgraph model failed on a batch of {len(texts)} texts ({type(e).__name__}: {e})",
                                 fix="check the texts, or use the 'rules' extractor") from e
        if not isinstance(out, Mapping):
            raise ReportgenError("E242", f"the radgraph model answered {type(out).__name__}, not a mapping of annotations",
                                 fix="use a radgraph version >= 0.1.13, or the 'rules' extractor")
        return [graph_from_annotation(out.get(str(k)), t) for k, t in enumerate(texts)]


class _RadGraphProcess:
    """The radgraph model in its own interpreter (``process``), called like ``radgraph.RadGraph``:
    texts -> the package's annotations; a failed batch raises (E242 in ``extract_many``)."""

    def __init__(self, process: Any):
        self.process = process

    def __call__(self, texts: list[str]) -> Any:
        ans = self.process.ask({"texts": texts})
        if "error" in ans:
            raise RuntimeError(ans["error"])
        return ans["annotations"]


__all__ = ["RADGRAPH_PYTHON_ENV", "RadGraphExtractor", "map_label", "map_relation", "graph_from_annotation", "MODEL_TYPES"]
