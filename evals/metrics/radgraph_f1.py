"""RadGraph F1 (Delbrouck et al. 2022) from any GraphExtractor's graphs.

The ``radgraph`` package scores a hypothesis report against a reference report by
comparing their RadGraph annotations at three reward levels:

- ``simple``: the sets of ``(entity tokens, label)``;
- ``partial``: the same, with entities that have relations marked ``(tokens, label, True)``;
- ``complete``: entities without relations as ``(tokens, label)``; every relation of an
  entity as ``(tokens.lower(), label, relation, target tokens.lower())``.

Each level is the F1 of set precision and recall; a report with no entities on either side
scores 0. The corpus figure is the mean of the per-report rewards (as ``F1RadGraph``). The
numbers here are identical to ``radgraph.rewards.compute_reward`` on the same annotations
(tests/test_metrics_radgraph.py checks that against the package's own file).

Annotation format (the one ``radgraph`` emits)::

    {"text": "tok tok ...", "entities": {"1": {"tokens": "pleural effusion", "label": "OBS-DP",
     "start_ix": 3, "end_ix": 4, "relations": [["located_at", "2"]]}, ...}}

Tokenisation: ``to_radgraph`` splits text with the regex ``\\w+|[^\\w\\s]+`` (what nltk's
``wordpunct_tokenize`` does; radgraph-xl's preprocessing uses it too), so "effusion." gives
the tokens "effusion" and "."; an entity's ``tokens`` are the tokens its character span
overlaps joined by single spaces, ``start_ix``/``end_ix`` inclusive token indices, and the
annotation's ``text`` is all tokens joined by single spaces. ``from_radgraph`` reads the
whitespace-split tokens of ``text`` (how radgraph writes it) back to character offsets.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.types import RELATION_TYPES, Entity, EntityGraph, Relation

LEVELS = ("simple", "partial", "complete")
_TOKEN = re.compile(r"\w+|[^\w\s]+")
_XL_LABELS = {
    "ANAT-DP": "Anatomy::definitely present",
    "OBS-DP": "Observation::definitely present",
    "OBS-U": "Observation::uncertain",
    "OBS-DA": "Observation::definitely absent",
}

Annotation = Mapping[str, Any]


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` for every ``\\w+|[^\\w\\s]+`` match of ``text``."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _dedupe(graphs: Sequence[EntityGraph]) -> tuple[dict[tuple[int, int, str], Entity], dict[tuple[int, int, str], dict]]:
    """Entities of several graphs keyed by (start, end, label), the first of each kept, and
    each key's outgoing relations as an ordered set of (type, target key)."""
    first: dict[tuple[int, int, str], Entity] = {}
    key_of: dict[tuple[int, str], tuple[int, int, str]] = {}
    for gi, g in enumerate(graphs):
        for e in g.entities:
            k = (e.start, e.end, e.label)
            key_of[(gi, e.id)] = k
            first.setdefault(k, e)
    rels: dict[tuple[int, int, str], dict] = {}
    for gi, g in enumerate(graphs):
        for r in g.relations:
            rels.setdefault(key_of[(gi, r.source)], {})[(r.type, key_of[(gi, r.target)])] = None
    return first, rels


def to_radgraph(graph: EntityGraph | Sequence[EntityGraph], text: str, *, label_style: str = "radgraph") -> dict[str, Any]:
    """Export ``graph`` (offsets into ``text``) as a radgraph annotation.

    ``graph`` may be several graphs of the same text (a report's claim graphs): entities
    with the same span and label are one entity. ``label_style`` "radgraph" keeps "OBS-DP"
    etc.; "xl" writes radgraph-xl labels ("Observation::definitely present"). Entities are
    numbered "1", "2", ... in text order; an entity whose span covers no token
    (whitespace only) is left out with its relations.
    """
    if label_style not in ("radgraph", "xl"):
        raise ReportgenError("E401", f"unknown label_style {label_style!r}", fix="use 'radgraph' or 'xl'")
    first, rels = _dedupe([graph] if isinstance(graph, EntityGraph) else list(graph))
    toks = tokenize(text)
    starts = [t[1] for t in toks]
    ends = [t[2] for t in toks]
    spans: dict[tuple[int, int, str], tuple[int, int]] = {}
    for k in sorted(first):
        a = bisect_right(ends, k[0])  # first token ending after the entity starts
        b = bisect_left(starts, k[1]) - 1  # last token starting before the entity ends
        if a <= b:
            spans[k] = (a, b)
    ids = {k: str(i + 1) for i, k in enumerate(spans)}
    out: dict[str, Any] = {}
    for k, (a, b) in spans.items():
        out[ids[k]] = {
            "tokens": " ".join(t[0] for t in toks[a: b + 1]),
            "label": _XL_LABELS[k[2]] if label_style == "xl" else k[2],
            "start_ix": a,
            "end_ix": b,
            "relations": [[rt, ids[tk]] for rt, tk in rels.get(k, {}) if tk in ids],
        }
    return {"text": " ".join(t[0] for t in toks), "entities": out}


def _our_label(label: str) -> str:
    if label in _XL_LABELS:
        return label
    low = label.lower()
    if low.startswith("anatomy"):
        return "ANAT-DP"
    if low.startswith("observation"):
        if "uncertain" in low:
            return "OBS-U"
        if "absent" in low:
            return "OBS-DA"
        if "present" in low:
            return "OBS-DP"
    raise ReportgenError(
        "E402", f"unknown RadGraph entity label {label!r}",
        fix="use OBS-DP, OBS-U, OBS-DA, ANAT-DP or their radgraph-xl spellings ('Observation::definitely present', ...)",
    )


def from_radgraph(annotation: Annotation, text: str | None = None) -> EntityGraph:
    """Import a radgraph annotation as an EntityGraph with offsets into ``text``.

    ``text`` defaults to the annotation's ``text``; its whitespace-separated tokens are the
    token indices ``start_ix``/``end_ix`` refer to. Labels of both styles are accepted.
    """
    text = annotation.get("text") if text is None else text
    if not isinstance(text, str):
        raise ReportgenError("E403", "a radgraph annotation without 'text' cannot be placed", fix="pass text=... (the tokenised report)")
    toks = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    entities: list[Entity] = []
    relations: list[Relation] = []
    for eid, ent in annotation.get("entities", {}).items():
        try:
            a, b = int(ent["start_ix"]), int(ent["end_ix"])
            start, end = toks[a][0], toks[b][1]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ReportgenError(
                "E404", f"radgraph entity {eid!r} has no valid token span ({exc})",
                fix="start_ix/end_ix must be inclusive indices of whitespace tokens of 'text'",
            ) from None
        entities.append(Entity(str(eid), text[start:end], start, end, _our_label(str(ent["label"]))))
        for rel in ent.get("relations", ()):
            rtype = str(rel[0]).lower()
            if rtype not in RELATION_TYPES:
                raise ReportgenError("E405", f"radgraph entity {eid!r} has unknown relation {rel[0]!r}", fix=f"use one of {', '.join(RELATION_TYPES)}")
            relations.append(Relation(rtype, str(eid), str(rel[1])))
    return EntityGraph(tuple(entities), tuple(relations))


@dataclass(frozen=True)
class RadGraphScore:
    """Per-report (or mean) RadGraph F1 at the three reward levels."""

    simple: float
    partial: float
    complete: float

    def level(self, name: str) -> float | tuple[float, float, float]:
        """The value ``radgraph``'s ``compute_reward(..., reward_level=name)`` returns."""
        if name == "all":
            return (self.simple, self.partial, self.complete)
        if name not in LEVELS:
            raise ReportgenError("E406", f"unknown reward level {name!r}", fix="use simple, partial, complete or all")
        return getattr(self, name)

    def to_dict(self) -> dict[str, float]:
        return {"simple": self.simple, "partial": self.partial, "complete": self.complete}


def _f1(hyp: set, ref: set) -> float:
    # Same arithmetic, in the same order, as radgraph's rewards, for bit-identical values.
    common = len(hyp & ref)
    precision = common / len(hyp) if hyp else 0.0
    recall = common / len(ref) if ref else 0.0
    return (2 * precision * recall / (precision + recall)) if (precision + recall) > 0 else 0.0


def _keys(ann: Annotation) -> tuple[set, set, set]:
    ents = ann["entities"]
    simple: set = set()
    partial: set = set()
    complete: set = set()
    for ent in ents.values():
        tokens, label, rels = ent["tokens"], ent["label"], ent["relations"]
        simple.add((tokens, label))
        if rels:
            partial.add((tokens, label, True))
            low = tokens.lower()
            complete.update((low, label, r[0], ents[r[1]]["tokens"].lower()) for r in rels)
        else:
            partial.add((tokens, label))
            complete.add((tokens, label))
    return simple, partial, complete


def reward(hyp: Annotation, ref: Annotation) -> RadGraphScore:
    """RadGraph F1 of one hypothesis annotation against its reference (all levels)."""
    return reward_of_keys(annotation_keys(hyp), annotation_keys(ref))


def annotation_keys(ann: Annotation) -> tuple[set, set, set]:
    """What ``reward`` compares of one annotation: its simple, partial and complete key sets
    (all empty without entities), computed once per report when it is scored against
    several others (``reportgen compare``: a reference against every system)."""
    return _keys(ann)


def reward_of_keys(hyp: tuple[set, set, set], ref: tuple[set, set, set]) -> RadGraphScore:
    """``reward`` from both annotations' ``annotation_keys`` (no entity on one side: 0)."""
    if not hyp[0] or not ref[0]:  # one simple key per entity
        return RadGraphScore(0.0, 0.0, 0.0)
    return RadGraphScore(_f1(hyp[0], ref[0]), _f1(hyp[1], ref[1]), _f1(hyp[2], ref[2]))


@dataclass(frozen=True)
class RadGraphF1:
    """Corpus RadGraph F1: the mean of per-report rewards, and the per-report values."""

    mean: RadGraphScore
    per_report: tuple[RadGraphScore, ...]


def radgraph_f1(hyps: Sequence[Annotation], refs: Sequence[Annotation]) -> RadGraphF1:
    """Mean RadGraph F1 over aligned hypothesis/reference annotations (F1RadGraph's mean)."""
    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    per = tuple(reward(h, r) for h, r in zip(hyps, refs))
    if not per:
        return RadGraphF1(RadGraphScore(0.0, 0.0, 0.0), ())
    # np.mean (pairwise summation), as F1RadGraph computes it, for identical corpus values.
    mean = RadGraphScore(*(float(np.mean([getattr(s, lv) for s in per])) for lv in LEVELS))
    return RadGraphF1(mean, per)


def merge_graphs(graphs: Sequence[EntityGraph]) -> EntityGraph:
    """One graph from several graphs in the same coordinates (e.g. the claims of a report).

    Entities with the same span and label are one entity (claims split from a coordination
    share words); relations are kept once each. Ids become "1", "2", ... in text order.
    """
    first, rels = _dedupe(graphs)
    order = sorted(first)
    ids = {k: str(i + 1) for i, k in enumerate(order)}
    ents = tuple(Entity(ids[k], first[k].text, k[0], k[1], k[2], first[k].norm) for k in order)
    return EntityGraph(ents, tuple(Relation(t, ids[k], ids[tk]) for k in order for t, tk in rels.get(k, {})))
