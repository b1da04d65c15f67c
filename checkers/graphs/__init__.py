"""Entity graphs in the RadGraph schema: a lazy registry of extractors, and per-claim graphs.

``get_extractor("rules")`` (default, offline) or ``get_extractor("radgraph")`` (the
``radgraph`` package's model, loaded at first use). ``claim_graphs`` gives each claim of a
report its graph in REPORT offsets.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from reportgen.errors import ReportgenError
from reportgen.protocols import GraphExtractor
from reportgen.types import Claim, EntityGraph, Report

# name -> (module, class). Modules are imported only when chosen.
EXTRACTORS: dict[str, tuple[str, str]] = {
    "rules": ("reportgen.checkers.graphs.rules", "RulesExtractor"),
    "radgraph": ("reportgen.checkers.graphs.radgraph_backend", "RadGraphExtractor"),
}


def get_extractor(name: str = "rules", **opts: Any) -> GraphExtractor:
    """A graph extractor by name; ``opts`` go to its constructor (e.g. ``lexicon=``)."""
    if not isinstance(name, str) or name not in EXTRACTORS:
        raise ReportgenError(
            "E220", f"unknown graph extractor {name!r}", fix=f"use one of: {', '.join(EXTRACTORS)}",
        )
    module, cls = EXTRACTORS[name]
    return getattr(importlib.import_module(module), cls)(**opts)


def resolve_extractor(extractor: GraphExtractor | str | None) -> GraphExtractor:
    """An extractor instance from an instance, a registry name, or None (rules)."""
    if extractor is None:
        return _default("rules")
    if isinstance(extractor, str):
        return _default(extractor)
    if not hasattr(extractor, "extract"):
        raise ReportgenError("E221", f"{extractor!r} is not a graph extractor", fix="pass a name (rules, radgraph) or an object with extract(text)")
    return extractor


_DEFAULTS: dict[str, GraphExtractor] = {}


def _default(name: str) -> GraphExtractor:
    ex = _DEFAULTS.get(name)
    if ex is None:
        ex = _DEFAULTS[name] = get_extractor(name)
    return ex


def default_extractors() -> tuple[GraphExtractor, ...]:
    """The extractors made by name so far (shared by every caller that names them)."""
    return tuple(_DEFAULTS.values())


def claim_graphs(extractor: GraphExtractor | str | None, report: Report, claims: Sequence[Claim]) -> list[EntityGraph]:
    """The graph of each claim, in report offsets, with ids unique across the report.

    Each sentence is extracted once. A claim split from a coordination gets the entities
    inside its span plus those of the sentence that are related to them (the shared
    predicate "are normal", the "normal" predicate's denied findings); its negation or hedge
    lives in the entity labels, so it stays with each part.
    """
    ex = resolve_extractor(extractor)
    text = report.text
    by_sentence: dict[tuple[int, int], list[int]] = {}
    for k, c in enumerate(claims):
        ss = c.sentence_start if c.sentence_start is not None else c.start
        se = c.sentence_end if c.sentence_end is not None else c.end
        by_sentence.setdefault((ss, se), []).append(k)
    keys = list(by_sentence)
    texts = [text[s:e] for s, e in keys]
    graphs = ex.extract_many(texts) if len(texts) > 1 else [ex.extract(t) for t in texts]
    out: list[EntityGraph | None] = [None] * len(claims)
    for n, ((ss, se), g) in enumerate(zip(keys, graphs)):
        g = g.shifted(ss, f"s{n}.")
        ks = by_sentence[(ss, se)]
        if len(ks) == 1:
            out[ks[0]] = g
            continue
        for k in ks:
            out[k] = claim_subgraph(g, claims[k].start, claims[k].end)
    return [g if g is not None else EntityGraph() for g in out]


def claim_subgraph(g: EntityGraph, start: int, end: int) -> EntityGraph:
    """The part of a sentence graph that belongs to the claim spanning [start, end).

    Entities inside the span, minus observations located only at anatomy outside it (a
    shared predicate's findings about another coordinated anatomy), plus the entities
    related to them from elsewhere in the sentence (the shared "are normal" predicate, the
    findings it denies about this claim's anatomy)."""
    inside = {e.id for e in g.entities if e.start >= start and e.end <= end}
    if not inside:
        return EntityGraph()
    located: dict[str, list[str]] = {}
    for r in g.relations:
        if r.type == "located_at":
            located.setdefault(r.source, []).append(r.target)
    own = {x for x in inside if not (located.get(x) and all(t not in inside for t in located[x]))}
    keep = set(own)
    obs = {e.id for e in g.entities if e.is_observation}
    for r in g.relations:  # observations elsewhere related to ours; never another part's anatomy
        if r.source in own and r.target in obs:
            keep.add(r.target)
        elif r.target in own and r.source in obs:
            keep.add(r.source)
    for r in g.relations:  # modifiers of what was pulled in ("mildly" of a shared predicate)
        if r.type == "modify" and r.target in keep and r.source in obs:
            keep.add(r.source)
    ents = tuple(e for e in g.entities if e.id in keep)
    rels = tuple(r for r in g.relations if r.source in keep and r.target in keep)
    return EntityGraph(ents, rels)


__all__ = ["EXTRACTORS", "get_extractor", "resolve_extractor", "default_extractors", "claim_graphs", "claim_subgraph"]
