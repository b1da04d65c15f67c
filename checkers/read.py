"""The one entry point from text to checked-claim material: sections, claims, graphs, findings.

    >>> from reportgen.checkers.read import read_report
    >>> rr = read_report("FINDINGS: No pleural effusion or pneumothorax. Mild cardiomegaly.")
    >>> [(c.claim.text, [(f.observation, f.presence) for f in c.findings]) for c in rr.claims]
    [('No pleural effusion.', [('pleural effusion', 'absent')]), ('No pneumothorax.', [('pneumothorax', 'absent')]), ('Mild cardiomegaly.', [('cardiomegaly', 'present')])]

Offsets (claims, entities, findings) are into the text given. Entity ids are unique in a
report: "s<sentence>.e<n>".

Speed: with the ``rules`` extractor each distinct sentence is read once (claims, graph,
findings in sentence offsets) and cached; a report is then its sentences' results moved to
report offsets. Other extractors (radgraph) get each report's sentences in one
``extract_many`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
import weakref
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any, Callable, Iterable

from reportgen.checkers.claims import (RulesClaimSplitter, claim_parts, context_sections, get_claim_splitter, is_analyzer,
                                       sentence_claims, sentences, split_sections)
from reportgen.checkers.findings import findings_from_graph
from reportgen.checkers.graphs import claim_graphs, claim_subgraph, resolve_extractor
from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim, ClaimSplitter, GraphExtractor
from reportgen.types import Claim, Entity, EntityGraph, Finding, Relation, Report


@dataclass(frozen=True)
class ReadReport:
    """A report read for checking: its sections and its claims with graphs and findings."""

    report: Report
    claims: tuple[CheckedClaim, ...]

    def to_dict(self) -> dict:
        return {
            "report": self.report.to_dict(),
            "claims": [
                {"claim": c.claim.to_dict(), "graph": c.graph.to_dict(), "findings": [f.to_dict() for f in c.findings]}
                for c in self.claims
            ],
        }


def _as_report(text: str | Report) -> Report:
    if isinstance(text, Report):
        return text if text.sections or not text.text.strip() else split_sections(text.text)
    if isinstance(text, str):
        return split_sections(text)
    raise ReportgenError("E230", f"read_report needs report text (str), got {type(text).__name__}", fix="pass the report as a string")


def read_report(text: str | Report, extractor: GraphExtractor | str = "rules", *, include_context: bool = False,
                splitter: ClaimSplitter | str | None = None) -> ReadReport:
    """Sections, atomic claims, per-claim graphs (report offsets) and findings of ``text``.

    ``extractor``: "rules" (default), "radgraph", or any GraphExtractor. ``splitter``: the
    ClaimSplitter that cuts the report into claims ("rules", the default, for every
    extractor; see ``reportgen.checkers.claims.RulesClaimSplitter``). Context sections
    (INDICATION, COMPARISON, HISTORY, TECHNIQUE, ...) give claims only with ``include_context``.
    """
    report = _as_report(text)
    ex = resolve_extractor(extractor)
    split = get_claim_splitter(splitter)
    if split.__class__ is RulesClaimSplitter and split.analyzer in (None, ex) and is_analyzer(ex):
        # the rules splitter with the extractor's own analysis: claims and graphs in one pass
        return ReadReport(report, _read_rules(report, ex, include_context))
    claims = split.split(report, include_context=include_context)
    if not claims:
        return ReadReport(report, ())
    graphs = claim_graphs(ex, report, claims)
    return ReadReport(report, tuple(CheckedClaim(c, g, findings_from_graph(g, text=report.text)) for c, g in zip(claims, graphs)))


def read_many(texts: Iterable[str | Report], extractor: GraphExtractor | str = "rules", *, include_context: bool = False,
              splitter: ClaimSplitter | str | None = None) -> list[ReadReport]:
    """``read_report`` for many texts with one extractor and one claim splitter."""
    ex = resolve_extractor(extractor)
    split = get_claim_splitter(splitter)
    return [read_report(t, ex, include_context=include_context, splitter=split) for t in texts]


# ---- the rules fast path ---------------------------------------------------------------------
def _read_rules(report: Report, ex, include_context: bool) -> tuple[CheckedClaim, ...]:
    text = report.text
    skip = frozenset() if include_context else context_sections()
    read_sentence = _sentence_reader(ex)
    out: list[CheckedClaim] = []
    n = 0
    for sec in report.sections:
        if sec.name in skip:
            continue
        for ss, se in sentences(text, sec.start, sec.end):
            for local in read_sentence(text[ss:se]):
                out.append(_place(local, sec.name, ss, se, f"s{n}."))
            n += 1
    return tuple(out)


# A sentence's claims as cached: (claim text, start, end, entities, relations, findings) in
# sentence offsets; entities as (id, text, start, end, label, norm), relations as (type,
# source, target) and findings as Finding field tuples (field order). The cache is keyed by
# the sentence text alone, one cache per extractor. Tuples of plain values and str keys
# are untracked by the garbage collector, so a growing cache does not make full
# collections come more often and take longer (entity objects and (extractor, sentence)
# keys were ~150,000 more tracked objects over the IU reports).
_Local = tuple[str, int, int, tuple[tuple, ...], tuple[tuple[str, str, str], ...], tuple[tuple, ...]]
_SENTENCE_CACHE_SIZE = 65536
_readers: "weakref.WeakKeyDictionary[Any, Callable[[str], tuple[_Local, ...]]]" = weakref.WeakKeyDictionary()


def _sentence_reader(ex) -> Callable[[str], tuple[_Local, ...]]:
    """The cached sentence reader of ``ex`` (it holds the extractor weakly, so the cache
    goes with the extractor)."""
    try:
        fn = _readers.get(ex)
    except TypeError:  # an extractor that cannot be weakly referenced: one shared cache
        return partial(_read_sentence_shared, ex)
    if fn is None:
        ref = weakref.ref(ex)

        def read_sentence(sentence: str) -> tuple[_Local, ...]:
            return _read_sentence(ref(), sentence)

        fn = _readers[ex] = lru_cache(maxsize=_SENTENCE_CACHE_SIZE)(read_sentence)
    return fn


@lru_cache(maxsize=_SENTENCE_CACHE_SIZE)
def _read_sentence_shared(ex, sentence: str) -> tuple[_Local, ...]:
    return _read_sentence(ex, sentence)


def _read_sentence(ex, sentence: str) -> tuple[_Local, ...]:
    """(claim text, start, end, entities, relations, findings) of each claim of one
    sentence, in sentence offsets (cached by ``_sentence_reader``)."""
    # the analysis is not kept: the result below is what is cached (fewer live objects)
    analysis = ex.analyze(sentence, cached=False)
    graph = analysis.graph
    parts = claim_parts(sentence, ex, cached=False, analysis=analysis)
    lex = ex.lexicon
    out = []
    for text, cs, ce in parts:
        g = graph if len(parts) == 1 else claim_subgraph(graph, cs, ce)
        # tuple([...]): the items are made before their tuple, so one collection untracks all
        out.append((
            text, cs, ce,
            tuple([(e.id, e.text, e.start, e.end, e.label, e.norm) for e in g.entities]),
            tuple([(r.type, r.source, r.target) for r in g.relations]),
            tuple([_finding_values(f) for f in findings_from_graph(g, lex, sentence)]),
        ))
    return tuple(out)


# A Finding's fields as a tuple, in field order (see _place).
_finding_values = attrgetter("observation", "presence", "laterality", "locations", "anatomy", "severity", "change", "text", "start", "end", "predominant", "zone_sides")


def _place(local: _Local, section: str, ss: int, se: int, prefix: str) -> CheckedClaim:
    """Move a sentence-level result to report offsets (sentence at [ss, se))."""
    text, cs, ce, ents_local, rels_local, fds = local
    claim = Claim(text, section, cs + ss, ce + ss, ss, se)
    findings = tuple([Finding(obs, presence, lat, locs, anatomy, severity, change, ftext, start + ss, end + ss, pred, zsides)
                      for obs, presence, lat, locs, anatomy, severity, change, ftext, start, end, pred, zsides in fds])
    ents = tuple([Entity(prefix + eid, etext, start + ss, end + ss, label, norm) for eid, etext, start, end, label, norm in ents_local])
    rels = tuple([Relation(rtype, prefix + source, prefix + target) for rtype, source, target in rels_local])
    return CheckedClaim(claim, EntityGraph(ents, rels), findings)


def clear_caches() -> None:
    """Forget every cached sentence (to time a cold run)."""
    from reportgen.checkers import claims

    for fn in list(_readers.values()):
        fn.cache_clear()
    _read_sentence_shared.cache_clear()
    claims._sentences_rel.cache_clear()
    claims._coordination_cached.cache_clear()
    from reportgen.checkers.graphs import default_extractors

    for ex in default_extractors():
        cache = getattr(ex, "_analyze", None)
        if cache is not None and hasattr(cache, "cache_clear"):
            cache.cache_clear()


def benchmark_stages(extractor: str = "rules"):
    """Stage functions for throughput benchmarks: name -> fn(texts) -> count, to be run in
    order on the same list. The first three split the cold path (every distinct sentence
    read once): "sections+sentences", "graphs+claims", "findings"; "read_report (cold)"
    clears the caches and runs the whole path; "read_report (warm)" repeats it with the
    sentence caches filled."""
    from reportgen.checkers.graphs import resolve_extractor

    ex = resolve_extractor(extractor)

    def sections_sentences(texts):
        clear_caches()
        prepared.clear()
        distinct: dict[str, None] = {}
        n = 0
        for t in texts:
            rep = split_sections(t)
            for sec in rep.sections:
                for a, b in sentences(t, sec.start, sec.end):
                    distinct[t[a:b]] = None
                    n += 1
        prepared[id(texts)] = list(distinct)
        return n

    prepared: dict[int, list[str]] = {}

    def _unique_sentences(texts):
        """The distinct sentences of ``texts`` (kept by the "sections+sentences" stage, so
        the later stages time only their own work when run in order)."""
        key = id(texts)
        if key not in prepared:
            out = {}
            for t in texts:
                rep = split_sections(t)
                for sec in rep.sections:
                    for a, b in sentences(t, sec.start, sec.end):
                        out[t[a:b]] = None
            prepared.clear()
            prepared[key] = list(out)
        return prepared[key]

    def graphs_claims(texts):
        sents = _unique_sentences(texts)
        clear_caches()
        for s in sents:
            ex.analyze(s)
            sentence_claims(s, 0, len(s), "", ex)
        return len(sents)

    def findings(texts):
        sents = _unique_sentences(texts)
        graphs = [ex.analyze(s).graph for s in sents]
        n = 0
        for g in graphs:
            n += len(findings_from_graph(g, ex.lexicon))
        return n

    def cold(texts):
        clear_caches()
        return sum(len(read_report(t, ex).claims) for t in texts)

    def warm(texts):
        return sum(len(read_report(t, ex).claims) for t in texts)

    stages = {"sections+sentences": sections_sentences, "graphs+claims (distinct sentences)": graphs_claims,
              "findings (distinct sentences)": findings, "read_report (cold)": cold, "read_report (warm)": warm}
    return stages


__all__ = ["ReadReport", "read_report", "read_many", "benchmark_stages", "clear_caches"]
