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


def to_radgraph(graph: EntityGraph, text: str, *, label_style: str = "radgraph") -> dict[str, Any]:
    """Export ``graph`` (offsets into ``text``) as a radgraph annotation.

    ``label_style`` "radgraph" keeps "OBS-DP" etc.; "xl" writes radgraph-xl labels
    ("Observation::definitely present"). Entities are numbered "1", "2", ... in text order;
    an entity whose span covers no token (whitespace only) is left out with its relations.
    """
    if label_style not in ("radgraph", "xl"):
        raise ReportgenError("E401", f"unknown label_style {label_style!r}", fix="use 'radgraph' or 'xl'")
    toks = tokenize(text)
    starts = [t[1] for t in toks]
    ends = [t[2] for t in toks]
    ordered = sorted(graph.entities, key=lambda e: (e.start, e.end, e.id))
    spans: dict[str, tuple[int, int]] = {}
    for e in ordered:
        first = bisect_right(ends, e.start)  # first token ending after the entity starts
        last = bisect_left(starts, e.end) - 1  # last token starting before the entity ends
        if first <= last:
            spans[e.id] = (first, last)
    ids = {eid: str(k + 1) for k, eid in enumerate(e.id for e in ordered if e.id in spans)}
    out: dict[str, Any] = {}
    for e in ordered:
        if e.id not in spans:
            continue
        first, last = spans[e.id]
        rels = [[r.type, ids[r.target]] for r in graph.relations if r.source == e.id and r.target in ids]
        out[ids[e.id]] = {
            "tokens": " ".join(t[0] for t in toks[first : last + 1]),
            "label": _XL_LABELS[e.label] if label_style == "xl" else e.label,
            "start_ix": first,
            "end_ix": last,
            "relations": rels,
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
    if not hyp["entities"] or not ref["entities"]:
        return RadGraphScore(0.0, 0.0, 0.0)
    h, r = _keys(hyp), _keys(ref)
    return RadGraphScore(_f1(h[0], r[0]), _f1(h[1], r[1]), _f1(h[2], r[2]))


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
    key_of: dict[tuple[int, str], tuple[int, int, str]] = {}
    first: dict[tuple[int, int, str], Entity] = {}
    for gi, g in enumerate(graphs):
        for e in g.entities:
            k = (e.start, e.end, e.label)
            key_of[(gi, e.id)] = k
            first.setdefault(k, e)
    order = sorted(first)
    ids = {k: str(i + 1) for i, k in enumerate(order)}
    ents = tuple(Entity(ids[k], first[k].text, k[0], k[1], k[2], first[k].norm) for k in order)
    rels = dict.fromkeys(
        Relation(r.type, ids[key_of[(gi, r.source)]], ids[key_of[(gi, r.target)]])
        for gi, g in enumerate(graphs) for r in g.relations
    )
    return EntityGraph(ents, tuple(rels))
