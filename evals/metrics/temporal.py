"""Temporal F1: RadEval's ``F1Temporal`` (Libra's temporal entity matching) on our entity graphs.

A report's temporal entities are the keywords of ``evals/data/temporal.json`` (change words
such as new, worsened, improved, stable, resolved) found as whole words in its cleaned,
lower-cased text, united with the entity-graph entities whose lower-cased text is a keyword
(RadEval takes those from stanza's radiology NER; we take them from the entity graphs the
suite already has). Per report::

    no reference entities:  1 if the prediction has none either, else epsilon
    otherwise:              P = (tp + eps) / (|pred| + eps), R = (tp + eps) / (|ref| + eps),
                            F1 = 2PR / (P + R + eps)

and the corpus figure is the mean over reports (RadEval's ``f1``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from reportgen.errors import ReportgenError

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "temporal.json"


@lru_cache(maxsize=2)
def _settings(path: str | None = None) -> tuple[frozenset[str], re.Pattern, float]:
    p = Path(path) if path else DATA_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        words = frozenset(w.lower() for w in data["keywords"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReportgenError("E850", f"cannot read the temporal keywords {p}: {exc}",
                             fix="give a JSON object with a 'keywords' list (evals/data/temporal.json)") from None
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b")
    return words, pattern, float(data.get("epsilon", 1e-10))


_CLEAN = (
    (re.compile(r"\n+"), " "), (re.compile(r"[_-]+"), " "), (re.compile(r"\(___, __, __\)"), ""),
    (re.compile(r"---, ---, ---"), ""), (re.compile(r"\(__, __, ___\)"), ""), (re.compile(r"[_-]+"), " "),
    (re.compile(r"[^\w\s.,:;()-]"), ""), (re.compile(r"\s{2,}"), " "),
)


def clean_text(text: str) -> str:
    """RadEval's text cleaning before the keyword search (newlines, dashes, de-identification
    blanks, symbols)."""
    for pat, rep in _CLEAN:
        text = pat.sub(rep, text)
    return text.strip()


def temporal_entities(text: str, entity_texts: Iterable[str] = ()) -> frozenset[str]:
    """The temporal entities of one report: keywords in the cleaned text, and entity texts
    that are keywords."""
    words, pattern, _ = _settings()
    found = {m.group().lower() for m in pattern.finditer(clean_text(text).lower())}
    found |= {t.lower() for t in entity_texts if t.lower() in words}
    return frozenset(found)


def temporal_f1(pred: frozenset[str], ref: frozenset[str], epsilon: float | None = None) -> float:
    """RadEval's per-report temporal F1 of two entity sets."""
    eps = _settings()[2] if epsilon is None else epsilon
    if not ref:
        return 1.0 if not pred else eps
    tp = len(pred & ref)
    p = (tp + eps) / (len(pred) + eps)
    r = (tp + eps) / (len(ref) + eps)
    return (2 * p * r) / (p + r + eps)
