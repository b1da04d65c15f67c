"""The ``rules`` graph extractor: lexicon matching + NegEx-style scopes -> RadGraph graphs.

Offline, no model weights, pure Python. For each sentence:

1. tokenize (letters / numbers / single marks) and match lexicon phrases, longest first;
2. give each match a role: observation, anatomy, laterality, modifier (severity, change,
   descriptor), normal predicate ("clear", "within normal limits"), cue (negation,
   uncertainty, suggestive connector), or structure (coordinator, terminator, copula);
3. cut the sentence into chunks at coordinators (",", "and", "or", "with", ...) and
   terminators ("but", "however", ";", ...);
4. scope the cues: a pre-cue ("no", "without", "possible") covers the observations after
   it up to a terminator or a new clause; a post-cue ("is not seen", "cannot be
   excluded") covers the observations before it back to the clause start;
5. relate: modifiers -modify-> their observation, laterality -modify-> its anatomy,
   observations -located_at-> the anatomy of their chunk (or of a coordinated anatomy list:
   "heart and mediastinum are normal"), "A suggestive of / likely B" -> A -suggestive_of-> B
   (a finding attributed to a benign mimic, "nodular opacity, most likely the nipple", is
   uncertain: lexicon ``contextual.mimics``);
   an elided zone word ("middle" of "right middle and lower lobe") is an anatomy entity of
   its own (norm "middle lobe") that shares the side and the observations of its zone phrase;
6. normal statements ("the lungs are clear") get, beside the RadGraph-style "clear"
   (OBS-DP, norm "normal") located_at "lungs", the findings they deny: OBS-DA entities on
   the same span with the umbrella norm "abnormality" and the lexicon's implied findings
   (opacity, consolidation, ...) located_at the same anatomy. A denied generic finding
   ("no acute cardiopulmonary abnormality") gets the same implied findings.

Sentences are analysed once and cached by text (reports repeat many sentences).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from reportgen.checkers.lexicon import (
    ANAT, CHG, COORD, COP, DESC, IGNORE, LAT, LOW, NEG_POST, NEG_PRE, NORMAL, OBS, PSEUDO, SEV, SUGG, SUGG_DEF,
    TERM, TMP, UNC_POST, UNC_PRE, Entry, Lexicon, load_lexicon, tokenize,
)
from reportgen.types import Entity, EntityGraph, Relation

# Role of a mention after disambiguation.
R_OBS, R_ANAT, R_LAT, R_MOD, R_NORMAL, R_CUE, R_STRUCT, R_NONE = "obs", "anat", "lat", "mod", "normal", "cue", "struct", "none"
OR_WORDS = frozenset({"or", "/", "and/or", "versus", "vs", "vs."})
SHARED_HEAD = "shared_head"  # the kind of an "and" between places of one head (_shared_heads)
CLAUSE_START_WORDS = frozenset({"the", "there", "this", "these", "it", "they", "he", "she", "patient", "that", "which"})
SENT_END = frozenset({".", "!", "?"})


class Mention:
    """One matched phrase of a sentence (token range [i, j), char span [start, end))."""

    __slots__ = ("i", "j", "start", "end", "entries", "role", "norm", "kind", "coord", "term", "cop", "laterality",
                 "split", "chunk", "label", "head", "cue_dist", "elided")

    def __init__(self, i: int, j: int, start: int, end: int, entries: list[Entry], role: str = R_NONE, norm: str = "",
                 kind: str = "", coord: str | None = None, term: bool = False, cop: bool = False,
                 laterality: str | None = None, split: tuple[int, str, str] | None = None):
        self.i, self.j, self.start, self.end, self.entries = i, j, start, end, entries
        self.role, self.norm, self.kind = role, norm, kind  # kind: modifier kind (sev/chg/...) or cue kinds
        self.coord, self.term, self.cop = coord, term, cop  # coordinator text / terminator / copula
        self.laterality, self.split = laterality, split
        self.chunk = -1
        self.label = "OBS-DP"
        self.head: Mention | None = None  # for modifiers / laterality: what they modify
        self.cue_dist = 10**6
        self.elided: Mention | None = None  # an elided zone word: the zone phrase it shares its head with

    def __repr__(self) -> str:
        return f"Mention({self.i}:{self.j} {self.role} {self.norm!r} {self.label})"

    def entry(self, cat: str) -> Entry | None:
        for e in self.entries:
            if e.cat == cat:
                return e
        return None


@dataclass
class Analysis:
    """What the rules read in one sentence: tokens, mentions, chunks, graph."""

    text: str
    tokens: list[tuple[int, int, str]]
    mentions: list[Mention]
    chunks: list[list[Mention]]
    graph: EntityGraph
    # entity id -> mention index (None for implied/split entities)
    heads: tuple[int, ...]  # indices of head mentions (observations, normal predicates, anatomy)


class RulesExtractor:
    """Lexicon + rules graph extractor (RadGraph schema). ``lexicon``: a user lexicon JSON
    path (or paths) merged into the default one, or replacing it with ``lexicon_mode="replace"``."""

    name = "rules"

    def __init__(self, lexicon: str | Path | Sequence[str | Path] | Lexicon | None = None, lexicon_mode: str = "merge",
                 cache_size: int = 65536):
        self.lexicon = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon, lexicon_mode)
        self._analyze = lru_cache(maxsize=cache_size)(self._analyze_uncached)
        self._profiles: dict[int, tuple] = {}  # id(lexicon entries) -> (reading, entries kept alive)

    def __repr__(self) -> str:
        return f"RulesExtractor(lexicon={self.lexicon.version!r})"

    # ---- protocol ---------------------------------------------------------------------
    def extract(self, text: str) -> EntityGraph:
        """Graph of ``text`` (any length); offsets into ``text``."""
        spans = list(sentence_spans(text))
        if len(spans) == 1 and spans[0] == (0, len(text)):
            return self._analyze(text).graph
        graphs = []
        for k, (s, e) in enumerate(spans):
            g = self._analyze(text[s:e]).graph
            if g.entities:
                graphs.append(g.shifted(s, f"s{k}."))
        return merge_graphs(graphs)

    def extract_many(self, texts: Sequence[str]) -> list[EntityGraph]:
        return [self.extract(t) for t in texts]

    def analyze(self, sentence: str, cached: bool = True) -> Analysis:
        """The analysis of one sentence (used by the claim splitter); cached by text unless
        ``cached=False`` (a caller that caches its own result keeps fewer objects alive)."""
        return self._analyze(sentence) if cached else self._analyze_uncached(sentence)

    # ---- analysis -----------------------------------------------------------------------
    def _rescope(self, text: str, mentions: list[Mention]) -> None:
        """A seam for another scope mode: relabel the observation mentions (OBS-DP/DA/U) of
        ``text`` after the rules' scope, and again after relating (which hedges the target of
        "suggestive of"). The rules keep their labels; the dependency-parse experiment
        (evals/bench/scope_parse.py) overrides this."""

    def _analyze_uncached(self, text: str) -> Analysis:
        lex = self.lexicon
        tokens = tokenize(text)
        words = [t[2] for t in tokens]
        mentions = _mentions(text, tokens, words, lex, self._profiles)
        chunks = _chunks(mentions)
        _resolve_ambiguous(mentions, chunks, lex, words)
        _absorb_generic(chunks, lex, words)
        _promote(chunks, lex, mentions)
        if lex.companion_rules:
            _companions(chunks, lex, words)
        _scope(mentions, chunks, words)
        _normal_subjects(chunks, lex, mentions, words)
        self._rescope(text, mentions)
        rels = _relate(mentions, chunks, lex, words)
        self._rescope(text, mentions)
        graph, heads = _build_graph(text, mentions, chunks, rels, lex, words, tokens)
        return Analysis(text, tokens, mentions, chunks, graph, heads)


# ---------------------------------------------------------------------------------------
def sentence_spans(text: str):
    """Sentence spans for scoping inside ``extract``: the claim splitter's sentences (the one
    sentence splitter, ``reportgen.checkers.claims.sentences``), each cut to at most
    ``MAX_SPAN_CHARS``; a text without a sentence is one span."""
    from reportgen.checkers.claims import sentences  # the claim splitter imports this module

    spans = sentences(text)
    if not spans:
        yield from _bounded(text, 0, len(text), True)
        return
    for start, end in spans:
        yield from _bounded(text, start, end)


# As in the claim splitter (checkers/claims.py MAX_SENTENCE_CHARS): the analysis of one
# sentence grows faster than its length, so a run-on span of hostile input is cut into
# pieces of at most this many characters (at the last comma, semicolon or space).
MAX_SPAN_CHARS = 1000


def _bounded(text: str, start: int, end: int, keep_empty: bool = False):
    while end - start > MAX_SPAN_CHARS:
        limit = start + MAX_SPAN_CHARS
        cut = max(text.rfind(",", start, limit), text.rfind(";", start, limit))
        if cut <= start:
            cut = text.rfind(" ", start, limit)
        cut = cut + 1 if cut > start else limit
        if text[start:cut].strip():
            yield (start, cut)
        start = cut
    if text[start:end].strip() or keep_empty:
        yield (start, end)


def merge_graphs(graphs: Sequence[EntityGraph]) -> EntityGraph:
    if len(graphs) == 1:
        return graphs[0]
    return EntityGraph(tuple(e for g in graphs for e in g.entities), tuple(r for g in graphs for r in g.relations))


def _profile(entries: list[Entry]) -> tuple:
    """The context-free reading of a phrase: (role, norm, kind, coord, term, cop,
    laterality, split). Computed once per lexicon phrase."""
    cats = {e.cat for e in entries}

    def entry(cat: str) -> Entry | None:
        return next((e for e in entries if e.cat == cat), None)

    coord = entry(COORD).norm if COORD in cats else None  # the lexicon spelling ("and/or")
    term, cop = TERM in cats, COP in cats
    if IGNORE in cats:  # views and comparisons ("left lateral decubitus", "compared to the left")
        return (R_NONE, "", "", coord, term, cop, None, None)
    if PSEUDO in cats:
        e = entry(CHG)
        return (R_MOD, e.norm, CHG, coord, term, cop, None, None) if e else (R_NONE, "", "", coord, term, cop, None, None)
    cue_kinds = [c for c in (NEG_PRE, NEG_POST, UNC_PRE, UNC_POST, SUGG) if c in cats]
    if cue_kinds:
        kind = "|".join(cue_kinds) + ("|def" if SUGG_DEF in cats else "")
        return (R_CUE, "", kind, coord, term, cop, None, None)
    if OBS in cats:
        e = entry(OBS)
        return (R_OBS, e.norm, "", coord, term, cop, e.laterality, e.split)
    if ANAT in cats:
        e = entry(ANAT)
        return (R_ANAT, e.norm, "", coord, term, cop, e.laterality, None)
    if NORMAL in cats:
        return (R_NORMAL, entry(NORMAL).norm, "", coord, term, cop, None, None)  # "normal", or a specific predicate
    if LAT in cats:
        e = entry(LAT)
        return (R_LAT, e.norm, "", coord, term, cop, e.norm, None)
    for cat in (SEV, CHG, TMP, DESC, LOW):
        e = entry(cat)
        if e:
            return (R_MOD, e.norm, cat, coord, term, cop, None, None)
    return (R_STRUCT if (coord or term or cop) else R_NONE, "", "", coord, term, cop, None, None)


def _mentions(text: str, tokens, words: list[str], lex: Lexicon, profiles: dict) -> list[Mention]:
    out = []
    for i, j, entries in lex.match(words):
        prof = profiles.get(id(entries))
        if prof is None:
            prof = profiles[id(entries)] = (_profile(entries), entries)
        role, norm, kind, coord, term, cop, lat, split = prof[0]
        out.append(Mention(i, j, tokens[i][0], tokens[j - 1][1], entries, role, norm, kind, coord, term, cop, lat, split))
    # A copula that is also a descriptor ("visible") right before an observation is used
    # attributively: "No consolidation, visible pneumothorax or effusion" has no new clause
    # there ("no pneumothorax visible" keeps its copula). So is a participle of the lexicon's
    # attributive_copulas that opens a list item ("..., or identified mass lesion").
    attributive = lex.attributive_copulas
    for k, (a, b) in enumerate(zip(out, out[1:])):
        if a.cop and b.i == a.j and b.role in (R_OBS, R_LAT, R_MOD, R_ANAT) and not b.cop and (
                a.entry(DESC) is not None
                or (k and out[k - 1].coord and out[k - 1].j == a.i and tuple(words[a.i:a.j]) in attributive)):
            a.cop = False
    elidable = lex.elidable_zone_words
    if elidable and out and not elidable.isdisjoint(words):
        out = _elided_zones(out, tokens, words, lex)
    _shared_heads(out, lex)
    return out


def _ambiguous_obs(m: Mention) -> bool:
    """An observation word that is also a modifier ("calcified", "prominent")."""
    return m.role == R_OBS and any(e.cat in (DESC, SEV, CHG, TMP) for e in m.entries)


def _shared_heads(mentions: list[Mention], lex: Lexicon) -> None:
    """Places coordinated before one head noun are one finding: "Calcified left lung and left
    hilar granulomas", "large calcified mediastinal and right hilar granulomas" (calcified
    granulomas at both places, not a calcified lung). An "and" stops being a coordinator when
    the conjunct before it is a bare place (modifiers, sides, anatomy, ending in anatomy, with
    a side or a word such as "calcified"; it opens the sentence or follows a coordinator, a
    terminator or a negation or hedge cue) and the one after it is places then an
    observation, each word right after the other."""
    for idx, c in enumerate(mentions):
        if c.coord != "and" or idx == 0:
            continue
        k = idx
        while k > 0 and not (mentions[k - 1].coord or mentions[k - 1].term) and mentions[k - 1].j == mentions[k].i \
                and (mentions[k - 1].role in (R_ANAT, R_LAT, R_MOD) or _ambiguous_obs(mentions[k - 1])):
            k -= 1
        left = mentions[k:idx]
        if not left or left[-1].role != R_ANAT or left[-1].j != c.i or any(m.cop for m in left):
            continue
        if not any(m.role == R_LAT or _ambiguous_obs(m) for m in left):
            continue  # "interstitial and alveolar opacities", "stable interstitial markings and ...": no side, no "calcified"
        before = mentions[k - 1] if k > 0 else None
        if before is not None and not (before.coord or before.term) and not (
                before.role == R_CUE and (cue_has(before, NEG_PRE) or cue_has(before, UNC_PRE))):
            continue  # a normal word or a predicate before the place ("Clear right lung and ...")
        prev, places = c, False
        for m in mentions[idx + 1:]:
            if m.i != prev.j or m.cop or m.coord or m.term:
                break
            if m.role == R_OBS and not _ambiguous_obs(m):
                # not when the first place makes the head another finding: "interstitial and
                # alveolar opacities" are an interstitial opacity and an airspace opacity
                if places and (m.norm, left[-1].norm) not in lex.contextual:
                    c.coord, c.role, c.kind = None, R_NONE, SHARED_HEAD
                break
            if m.role not in (R_ANAT, R_LAT, R_MOD) and not _ambiguous_obs(m):
                break
            places = places or m.role == R_ANAT
            prev = m


def _elided_zones(mentions: list[Mention], tokens, words: list[str], lex: Lexicon) -> list[Mention]:
    """Zone words that an elliptical coordination left without their head noun ("middle" in
    "right middle and lower lobe", "upper" in "upper and mid lung zones") become anatomy
    mentions of the completed zone ("middle lobe"), linked to the zone phrase they share the
    head with. A word is taken only when it is free (no lexicon phrase, or a one-word
    modifier such as "lower") and only coordinators stand between it and the zone phrase
    (or the next elided word: "upper, middle and lower lobes")."""
    elidable, coords = lex.elidable_zone_words, lex.zone_coordinator_tokens
    at = {m.i: m for m in mentions}
    covered = {k for m in mentions for k in range(m.i, m.j)}
    found: dict[int, Mention] = {}
    for m in mentions:
        if m.role != R_ANAT or m.j - m.i < 2 or words[m.i] not in elidable or m.norm not in lex.zone:
            continue
        head = words[m.i + 1 : m.j]
        p = m.i
        while True:
            q = p
            while q > 0 and p - q < 3 and words[q - 1] in coords:
                q -= 1
            k = q - 1
            if q == p or k < 0 or words[k] not in elidable or k in found:
                break
            occupant = at.get(k)
            if k in covered and not (occupant is not None and occupant.j == k + 1 and occupant.role in (R_MOD, R_NONE)):
                break
            entry = lex.completed_zone(words[k], head)
            if entry is None:
                break
            e = Mention(k, k + 1, tokens[k][0], tokens[k][1], [entry], R_ANAT, entry.norm, laterality=entry.laterality)
            e.elided = m
            found[k] = e
            p = k
    if not found:
        return mentions
    return sorted([m for m in mentions if m.i not in found] + list(found.values()), key=lambda m: m.i)


def _chunks(mentions: list[Mention]) -> list[list[Mention]]:
    """Cut at coordinators and terminators; the boundary mention opens the next chunk
    only when it is also a cue ("without", "nor")."""
    chunks: list[list[Mention]] = [[]]
    for m in mentions:
        if m.coord or m.term:
            if chunks[-1]:
                chunks.append([])
            if m.role == R_CUE:
                m.chunk = len(chunks) - 1
                chunks[-1].append(m)
            continue
        m.chunk = len(chunks) - 1
        chunks[-1].append(m)
    if not chunks[-1] and len(chunks) > 1:
        chunks.pop()
    for k, ch in enumerate(chunks):
        for m in ch:
            m.chunk = k
    return chunks


def _standalone(lex: Lexicon, words: list[str], s: int, e: int, tokens) -> bool:
    """Whether the entity [s, e) is the whole sentence (numbering and punctuation aside) and
    one of the lexicon's standalone umbrella words ("Disease.", "2. Abnormalities.")."""
    if not lex.standalone_umbrella:
        return False
    inside = tuple(t[2] for t in tokens if s <= t[0] and t[1] <= e)
    return inside in lex.standalone_umbrella and all(
        not w.isalpha() for t, w in zip(tokens, words) if not (s <= t[0] and t[1] <= e))


def _resolve_ambiguous(mentions: list[Mention], chunks: list[list[Mention]], lex: Lexicon, words: list[str]) -> None:
    """Words that are both a modifier and an observation ("calcified", "prominent"): a
    modifier when an observation follows in the chunk, else the observation. A negating
    normal predicate right before an observation ("Negative acute cardiopulmonary
    abnormality") is a negation cue."""
    negating = lex.negating_normal
    for ch in chunks:
        for k, m in enumerate(ch):
            if m.role == R_NORMAL and negating and tuple(words[m.i : m.j]) in negating:
                nxt = next((x for x in ch[k + 1 :] if x.role not in (R_MOD, R_ANAT, R_LAT)), None)
                if nxt is not None and nxt.role == R_OBS and nxt.i - m.j <= 4:
                    m.role, m.norm, m.kind = R_CUE, "", NEG_PRE
                continue
            if m.role == R_OBS:
                other = next((e for e in m.entries if e.cat in (DESC, SEV, CHG, TMP)), None)
                if other is None:
                    continue
                nxt = next((x for x in ch[k + 1 :] if x.role in (R_OBS, R_NORMAL)), None)
                if nxt is not None and nxt.role == R_OBS and (nxt.i - m.j <= 3 or _np_gap(ch, m, nxt, words) <= 1):
                    if other.norm in lex.modifier_findings and (other.norm, nxt.norm) not in lex.modifier_rules:
                        continue  # "calcified tortuous aorta": a calcification beside the tortuous aorta
                    m.role, m.norm, m.kind = R_MOD, other.norm, other.cat


_MEASURE = re.compile(r"^(?:\d+(?:\.\d+)?(?:mm|cm)?|mm|cm|x|by)$")


def _gap(ch: list[Mention], a: Mention, b: Mention, words: list[str], covers, skip) -> int:
    """Words between mentions a and b (of chunk ``ch``) that no mention ``covers`` accepts
    holds and that ``skip`` does not accept."""
    covered = {t for x in ch if covers(x) for t in range(max(x.i, a.j), min(x.j, b.i))}
    return sum(1 for t in range(a.j, b.i) if t not in covered and not skip(words[t]))


def _np_gap(ch: list[Mention], a: Mention, b: Mention, words: list[str]) -> int:
    """Words between a and b that are neither a place, a side, a modifier nor a measurement
    ("calcified 5 mm right midlung granuloma": 0): a modifier reaches its head over those."""
    return _gap(ch, a, b, words, lambda x: x.role in (R_ANAT, R_LAT, R_MOD), _MEASURE.match)


_GENERIC_LINKS = frozenset({"of", "for", "to", "suggest", "suggesting", "a", "an", "the", "typical", "any"})


def _absorb_generic(chunks: list[list[Mention]], lex: Lexicon, words: list[str]) -> None:
    """A generic word ("changes", "findings", "disease") is no finding of its own when it
    is part of a specific one: right after it ("emphysematous lung changes"), before it
    ("findings of pulmonary edema", "disease to suggest pneumonia"), or when the
    de-identification blanked what it was about ("XXXX change.")."""
    redacted = lex.redaction_tokens
    links = _GENERIC_LINKS | redacted
    for ch in chunks:
        obs = [m for m in ch if m.role == R_OBS]
        for k, m in enumerate(obs):
            if m.norm != lex.umbrella:
                continue
            prev = obs[k - 1] if k else None
            nxt = obs[k + 1] if k + 1 < len(obs) else None
            if prev is not None and m.i - prev.j <= (1 if prev.norm == lex.umbrella else 3):
                m.role = R_NONE  # "emphysematous lung changes", "disease process"
            elif nxt is not None and nxt.norm != lex.umbrella and nxt.i - m.j <= 2 and all(
                    x.role in (R_ANAT, R_MOD, R_LAT) for x in ch if m.j <= x.i < nxt.i):
                m.role = R_NONE  # "abnormal opacity", "abnormal mediastinal widening": an adjective
            elif nxt is not None and nxt.norm != lex.umbrella and nxt.i - m.j <= 4 and all(
                    w in links for w in words[m.j : nxt.i]) and any(w in ("of", "for", "suggest", "to") for w in words[m.j : nxt.i]):
                m.role = R_NONE
            elif m.i > 0 and words[m.i - 1] in redacted and words[m.i] in ("change", "changes"):
                m.role = R_NONE


def _companions(chunks: list[list[Mention]], lex: Lexicon, words: list[str]) -> None:
    """An observation right beside another one that a lexicon companion rule names becomes
    the rule's result: "Fractured sternotomy wires", "catheter fracture", "the lateral most
    screw is fractured" are device fractures, not bone fractures. Beside: nothing between the
    two but modifiers, sides, a copula or a de-identification blank."""
    rules = lex.companion_rules
    for ch in chunks:
        obs = [m for m in ch if m.role == R_OBS]
        for m in obs:
            for other in obs:
                spec = rules.get((m.norm, other.norm))
                if spec is None or other is m:
                    continue
                a, b = (m, other) if m.j <= other.i else (other, m)
                if _gap(ch, a, b, words, lambda x: x.role in (R_MOD, R_LAT) or x.cop, lex.redaction_tokens.__contains__) <= 1:
                    m.norm = spec
                    break


def _promote(chunks: list[list[Mention]], lex: Lexicon, mentions: list[Mention]) -> None:
    """A modifier becomes the observation of a chunk that has none, when a contextual rule
    says what it means there ("lung volumes are low", "the heart is large", "chest XXXX tip
    in the SVC": a catheter), unless "with", a comma or a terminator joins it to a chunk that names
    that observation ("Right IJ catheter with tip in the SVC", "catheter, distal tip in the
    subclavian vein": the same catheter; "and" keeps two)."""
    for k, ch in enumerate(chunks):
        if any(m.role in (R_OBS, R_NORMAL) for m in ch):
            continue
        joined = _boundary(mentions, chunks, k)
        before = {m.norm for m in chunks[k - 1] if m.role == R_OBS} if joined and set(joined) <= {"with", ",", "term"} else set()
        anats = [m for m in ch if m.role == R_ANAT]
        if not anats:
            continue
        for m in ch:
            if m.role != R_MOD:
                continue
            for a in anats:
                spec = lex.contextual.get((m.norm, a.norm))
                if spec and spec not in before:
                    if m.norm == "borderline":
                        m.label = "OBS-U"  # "heart size is borderline / upper limits of normal"
                    m.role, m.norm, m.kind = R_OBS, spec, ""
                    break
            if m.role == R_OBS:
                break


def cue_has(m: Mention, kind: str) -> bool:
    """Whether a cue mention is of ``kind`` (NEG_PRE, UNC_POST, ...): part of the
    SentenceAnalyzer seam the claim splitter reads (reportgen.protocols)."""
    return kind in m.kind.split("|")


def _has_copula_before_head(ch: list[Mention]) -> bool:
    for m in ch:
        if m.role == R_OBS:
            return False
        if m.cop:
            return True
    return False


def _attributive(ch: list[Mention], k: int) -> bool:
    """Whether the normal word ch[k] modifies the anatomy right after it ("within the
    aerated right lung"), with only sides and modifiers between, instead of being a
    predicate ("the lungs are well aerated bilaterally")."""
    prev = ch[k]
    for m in ch[k + 1:]:
        if m.i != prev.j:
            return False
        if m.role == R_ANAT:
            return True
        if m.role not in (R_LAT, R_MOD):
            return False
        prev = m
    return False


def _existential(mentions: list[Mention], ch: list[Mention], words: list[str]) -> bool:
    """Whether chunk ch opens with an existential terminator ("There is hyperinflation of
    the lungs appear to be clear": the finding is already asserted, not a subject)."""
    before = [m for m in mentions if m.term and m.j <= ch[0].i]
    return bool(before) and before[-1].j == ch[0].i and words[before[-1].i] == "there"


def _suggestion_before_head(ch: list[Mention]) -> bool:
    """A suggestive verb before the chunk's first observation is a predicate of its own
    ("This does not look like an acute infiltrate, and more likely represents a granuloma"):
    a negation before the chunk does not reach into it (_relate decides what the verb links)."""
    for m in ch:
        if m.role == R_OBS:
            return False
        if m.role == R_CUE and cue_has(m, SUGG):
            return True
    return False


def _normal_subjects(chunks: list[list[Mention]], lex: Lexicon, mentions: list[Mention], words: list[str]) -> None:
    """A normal predicate after a copula scopes over the observations of its subject
    ("Heart size and pulmonary vascular engorgement appear within limits of normal": no
    vascular congestion). Only the predicate's own chunk: an earlier coordinated chunk may
    have a subject of its own ("Mild cardiomegaly and lungs are clear"). Devices and other
    observations of lexicon ``normal.subject_scope.not_denied`` keep their presence ("The
    leads appear intact"). A normal word used attributively ("seen within the aerated
    right lung") is no predicate, and a chunk opened by "there is" has no subject."""
    keep = lex.data.get("normal", {}).get("subject_scope", {}).get("not_denied", ())
    for ch in chunks:
        pred = next((k for k, m in enumerate(ch) if m.role == R_NORMAL and not _attributive(ch, k)
                     and any(x.cop for x in ch[:k])), None)
        if pred is None:
            continue
        # the subject lies before the predicate's copula, and after a participle before it
        # ("Previously noted infiltrative processes in both lung bases are clear": "noted"
        # only describes the processes, "are" is the predicate's)
        cops = [k for k in range(pred) if ch[k].cop]
        cop, start = cops[-1], 0
        if len(cops) > 1:
            before = ch[cops[-2]]
            if tuple(words[before.i:before.j]) not in lex.attributive_copulas:
                continue  # a clause with a predicate of its own ("Heart size is enlarged in the lungs are clear")
            start = cops[-2] + 1
        elif _existential(mentions, ch, words):
            continue
        for m in ch[start:cop]:
            if m.role == R_NORMAL:
                break
            if m.role == R_OBS and m.label == "OBS-DP" and m.norm not in keep:
                m.label = "OBS-DA"


def _scope(mentions: list[Mention], chunks: list[list[Mention]], words: list[str]) -> None:
    """Negation / uncertainty labels of observations, NegEx style (nearest cue wins)."""
    obs = [m for m in mentions if m.role == R_OBS]
    if not obs:
        return
    nchunks = len(chunks)

    def clause_break_before(k: int) -> bool:
        """Does chunk k start a new clause (so a pre-cue before it stops)?"""
        ch = chunks[k]
        if not ch:
            return False
        first_tok = ch[0].i
        # the word right after the boundary
        prev_end = max((m.j for m in chunks[k - 1]), default=0) if k > 0 else 0
        nxt = words[prev_end:first_tok + 1]
        if any(w in CLAUSE_START_WORDS for w in nxt[:3]):
            return True
        if any(m.term for m in mentions if prev_end <= m.i < first_tok):
            return True
        return _has_copula_before_head(ch) or _suggestion_before_head(ch) or any(
            m.role == R_CUE and (cue_has(m, NEG_PRE) or cue_has(m, UNC_PRE)) for m in ch)

    def closed_before(k: int) -> bool:
        """Does chunk k-1 end in a predicate after its last observation ("No pleural effusion
        SEEN, right basilar atelectasis"), so its cue does not reach chunk k? Not across "or"
        ("no pneumothorax is seen, or effusion")."""
        prev = chunks[k - 1]
        last = next((m for m in reversed(prev) if m.role == R_OBS), None)
        if last is None or not any(m.cop for m in prev if m.i >= last.j):
            return False
        return not any(b in OR_WORDS or b == "nor" for b in _boundary(mentions, chunks, k))

    def run_on(ch: list[Mention], c: Mention) -> int:
        """Where a new clause starts without punctuation inside chunk ``ch`` after cue ``c``:
        an observation followed directly by a clause-start word and later a copula ("There
        is no pneumothorax the lungs are hyperinflated"); len(words) when none does."""
        for m in ch:
            if m.role == R_OBS and m.i >= c.j and m.j < len(words) and words[m.j] in CLAUSE_START_WORDS \
                    and any(x.cop and x.i > m.j for x in ch):
                return m.j
        return len(words)

    def apply(m: Mention, label: str, dist: int) -> None:
        if dist < m.cue_dist:
            m.cue_dist, m.label = dist, label

    for c in mentions:
        if c.role != R_CUE:
            continue
        kinds = c.kind.split("|")
        pre_label = "OBS-DA" if NEG_PRE in kinds else ("OBS-U" if UNC_PRE in kinds else None)
        post_label = "OBS-DA" if NEG_POST in kinds else ("OBS-U" if UNC_POST in kinds else None)
        later_obs = [m for m in chunks[c.chunk] if m.role == R_OBS and m.i >= c.j]
        earlier_obs = [m for m in chunks[c.chunk] if m.role == R_OBS and m.j <= c.i]
        # A suggestive connector between two observations ("A, likely B") is handled by
        # _relate; here it only hedges what follows.
        if pre_label and (later_obs or not post_label):
            # forward over this chunk and following coordinated chunks
            stop = run_on(chunks[c.chunk], c)
            for m in later_obs:
                if m.i >= stop:
                    break
                apply(m, pre_label, m.i - c.j)
            k = c.chunk + 1
            while stop == len(words) and k < nchunks and not clause_break_before(k) and not closed_before(k):
                for m in chunks[k]:
                    if m.role == R_OBS:
                        apply(m, pre_label, m.i - c.j)
                k += 1
        elif post_label:
            for m in earlier_obs:
                apply(m, post_label, c.i - m.j)
            k = c.chunk - 1
            # earlier chunks joined by coordinators without their own predicate
            own = chunks[c.chunk]
            while k >= 0:
                ch = chunks[k]
                if any(x.cop or x.role == R_NORMAL or x.role == R_CUE for x in ch) or not ch:
                    break
                if clause_break_before(k + 1) and any(w in CLAUSE_START_WORDS for w in words[max(ch[-1].j, 0):own[0].i if own else 0]):
                    break
                for m in ch:
                    if m.role == R_OBS:
                        apply(m, post_label, c.i - m.j)
                k -= 1
        elif SUGG in kinds:
            for m in later_obs:
                if "def" not in kinds:
                    apply(m, "OBS-U", m.i - c.j)
    # "A or B" between positive observations: both uncertain (RadGraph convention).
    for k in range(1, nchunks):
        boundary = [m for m in mentions if m.coord in OR_WORDS and chunks[k - 1] and chunks[k]
                    and chunks[k - 1][-1].j <= m.i < chunks[k][0].i]
        if not boundary:
            continue
        a = [m for m in chunks[k - 1] if m.role == R_OBS]
        b = [m for m in chunks[k] if m.role == R_OBS]
        if a and b and a[-1].label != "OBS-DA" and b[0].label != "OBS-DA" and a[-1].norm != b[0].norm:
            # (two names of one finding, "ectasia/tortuosity", are no alternative)
            a[-1].label = "OBS-U"
            b[0].label = "OBS-U"


def _relate(mentions: list[Mention], chunks: list[list[Mention]], lex: Lexicon, words: list[str]) -> list[tuple[str, Mention, Mention]]:
    rels: list[tuple[str, Mention, Mention]] = []
    nchunks = len(chunks)
    # anatomy groups: consecutive anatomy mentions -> earlier modify the last (head)
    anat_heads: list[list[Mention]] = []
    for ch in chunks:
        heads: list[Mention] = []
        run: list[Mention] = []
        for m in ch:
            if m.role == R_ANAT:
                if m.elided is not None or (run and run[-1].elided is not None):
                    # "middle" of "right middle & lower lobe" is a zone of its own, no modifier
                    if run:
                        heads.append(_close_run(run, rels))
                    run = [m]
                elif run and m.i - run[-1].j <= 2 and not _between_has(ch, run[-1], m):
                    run.append(m)
                else:
                    if run:
                        heads.append(_close_run(run, rels))
                    run = [m]
            elif m.role == R_LAT:
                continue
            elif run and (m.role in (R_OBS, R_NORMAL, R_CUE) or m.kind == SHARED_HEAD):
                # (each place of "left lung and left hilar granulomas" is a head of its own)
                heads.append(_close_run(run, rels))
                run = []
        if run:
            heads.append(_close_run(run, rels))
        anat_heads.append(heads)
    # laterality: modifies the next anatomy in its chunk, else becomes an anatomy head
    for k, ch in enumerate(chunks):
        for idx, m in enumerate(ch):
            if m.role != R_LAT:
                continue
            nxt = next((x for x in ch[idx + 1 :] if x.role in (R_ANAT, R_OBS, R_NORMAL)), None)
            if nxt is not None and nxt.role == R_ANAT:
                target = _head_of(nxt, anat_heads[k])
                m.head = target
                rels.append(("modify", m, target))
            elif nxt is not None and nxt.role == R_OBS and nxt.split and nxt.split[2] == "pre":
                m.head = nxt  # "left pleural effusion": resolved to the split anatomy later
                rels.append(("modify_split", m, nxt))
            else:
                m.role = R_ANAT
                anat_heads[k].append(m)
    # observations / normal predicates located_at anatomy heads of their chunk
    preds: dict[int, list[Mention]] = {}
    for k, ch in enumerate(chunks):
        ps = [m for m in ch if m.role in (R_OBS, R_NORMAL)]
        preds[k] = ps
        for p in ps:
            for a in anat_heads[k]:
                rels.append(("located_at", p, a))
    # anatomy-only chunks share the predicate of a coordinated chunk
    for k, ch in enumerate(chunks):
        if preds[k] or not anat_heads[k]:
            continue
        if k == 0 and nchunks > 1 and preds[1] and _fronted_place(mentions, chunks, words, lex):
            # "In the left lung base there is a small opacity": the place opens the sentence
            for p in preds[1]:
                for a in anat_heads[0]:
                    rels.append(("located_at", p, a))
            continue
        if k == 0 and nchunks > 1 and _place_comma_finding(chunks, preds, anat_heads, mentions, words):
            # "Anterior segment of upper lobe, rounded focal density.": a place, a comma and
            # a finding without a place of its own (as "Left base: patchy opacity.")
            for p in preds[1]:
                for a in anat_heads[0]:
                    rels.append(("located_at", p, a))
            continue
        target = None
        for j in range(k + 1, nchunks):
            # (a finding whose own words name its place first, "rib fractures", has a place too:
            # "Right fifth, sixth and seventh rib fractures")
            placed_first = bool(preds[j]) and preds[j][0].split is not None and preds[j][0].split[2] == "pre"
            if preds[j] and ((anat_heads[j] and preds[j][0].i > anat_heads[j][0].i) or placed_first):
                p0 = preds[j][0]
                a0_i = anat_heads[j][0].i if anat_heads[j] and anat_heads[j][0].i < p0.i else p0.i
                predicative = p0.role == R_NORMAL or any(x.cop or x.role == R_CUE for x in chunks[j] if a0_i < x.i < p0.j)
                listed = all(b in LIST_JOINS for jj in range(k + 1, j + 1) for b in _boundary(mentions, chunks, jj))
                if predicative or listed:
                    # "heart and mediastinum ARE normal", "left midlung, and left basilar opacity";
                    # not "... on the left with some associated left basilar atelectasis"
                    target = p0
                break
            if preds[j] or not anat_heads[j]:
                break
        if target is None:
            for j in range(k - 1, -1, -1):
                if preds[j]:
                    last = preds[j][-1]
                    if not anat_heads[j] or last.i < anat_heads[j][0].i:
                        target = last
                    elif (j == k - 1 and last.i < anat_heads[j][-1].i and anat_heads[j][-1].norm in lex.zone
                          and all(a.norm in lex.zone for a in anat_heads[k])
                          and all(b in LIST_JOINS for b in _boundary(mentions, chunks, k))):
                        # "pulmonary nodules in the right midlung and left upper lung": a list
                        # of zones after the finding, though anatomy also precedes it
                        target = last
                    break
                if not anat_heads[j]:
                    break
        if target is not None:
            for a in anat_heads[k]:
                rels.append(("located_at", target, a))
    # modifiers -> nearest observation in the chunk (following first), else the next
    # chunk's first observation when the modifier's chunk has no head at all
    for k, ch in enumerate(chunks):
        for idx, m in enumerate(ch):
            if m.role != R_MOD:
                continue
            after = next((x for x in ch[idx + 1 :] if x.role == R_OBS), None)
            before = next((x for x in reversed(ch[:idx]) if x.role == R_OBS), None)
            target = after or before
            if target is None and idx == len(ch) - 1 and not any(x.role in (R_ANAT, R_NORMAL) for x in ch) and k + 1 < nchunks:
                nxt = next((x for x in chunks[k + 1] if x.role == R_OBS), None)
                if nxt is not None and nxt.i - m.j <= 3:
                    target = nxt
            if target is not None:
                m.head = target
                rels.append(("modify", m, target))
    # suggestive_of: "A suggestive of B", "A, likely B", "A may represent B"
    for c in mentions:
        if c.role != R_CUE or not cue_has(c, SUGG):
            continue
        later = [m for m in chunks[c.chunk] if m.role == R_OBS and m.i >= c.j]
        if not later:
            continue
        earlier = [m for m in chunks[c.chunk] if m.role == R_OBS and m.j <= c.i]
        new_clause = False
        if not earlier and c.chunk > 0 and all(x.role in (R_CUE, R_MOD) for x in chunks[c.chunk] if x.i < c.i):
            # ", likely B", ", perhaps due to B": the connector opens its chunk
            earlier = [m for m in chunks[c.chunk - 1] if m.role == R_OBS]
            # "..., and more likely represents B": a coordinated clause of its own, which a
            # denial of A does not reach
            new_clause = "and" in _boundary(mentions, chunks, c.chunk)
        if earlier:
            src = earlier[-1]
            for dst in later[:1]:
                rels.append(("suggestive_of", src, dst))
                if src.label == "OBS-DA" and not new_clause:
                    dst.label = "OBS-DA"  # "no opacity to suggest pneumonia"
                elif "def" not in c.kind and dst.label == "OBS-DP":
                    dst.label = "OBS-U"
                _mimicked(src, dst, lex)
    # ", XXXX scarring": the IU de-identification often blanks the hedge ("likely",
    # "possibly") between an observation and the one it suggests
    for k in range(1, nchunks):
        first = chunks[k][0] if chunks[k] else None
        target = next((x for x in chunks[k] if x.role == R_OBS), None)
        prev = [x for x in chunks[k - 1] if x.role == R_OBS]
        if first is None or target is None or not prev or first.i < 2:
            continue
        if words[first.i - 1] in lex.redaction_tokens and words[first.i - 2] == "," and (first is target or first.role == R_MOD):
            rels.append(("suggestive_of", prev[-1], target))
            if target.label == "OBS-DP":
                target.label = "OBS-U"
            _mimicked(prev[-1], target, lex)
    # "A or B": B without its own anatomy shares A's
    for k in range(1, nchunks):
        if anat_heads[k] or not preds[k] or not preds[k - 1]:
            continue
        prev_end = chunks[k - 1][-1].j
        if any(m.coord in OR_WORDS for m in mentions if prev_end <= m.i < chunks[k][0].i):
            a = preds[k - 1][-1]
            if a.label == "OBS-DA" and preds[k][0].label == "OBS-DA":
                continue  # "no pulmonary nodules or masses": two denials, each its own claim
            for r in list(rels):
                if r[0] == "located_at" and r[1] is a:
                    rels.append(("located_at", preds[k][0], r[2]))
                elif r[0] == "suggestive_of" and r[2] is a:  # "A may reflect B or C": A suggests C too
                    rels.append(("suggestive_of", r[1], preds[k][0]))
    if lex.contextual and nchunks > 1:
        _share_contextual_anatomy(chunks, preds, anat_heads, mentions, lex, rels, words)
    if any(m.elided is not None for m in mentions):
        _share_elided(mentions, rels)
    return rels


def _mimicked(src: Mention, dst: Mention, lex: Lexicon) -> None:
    """A finding attributed to a benign mimic ("nodular opacity, most likely the nipple",
    "nodular density that represents an artifact"; lexicon ``contextual.mimics``) is not a
    definite finding: present becomes uncertain."""
    if src.label == "OBS-DP" and dst.norm in lex.mimics and src.norm in lex.mimic_findings:
        src.label = "OBS-U"


def _share_contextual_anatomy(chunks, preds, anat_heads, mentions, lex: Lexicon, rels: list, words: list[str]) -> None:
    """Coordinated findings without a place of their own share the anatomy of a listed chunk
    that has one, when a lexicon contextual rule joins the two ("The aorta is calcified and
    tortuous", "Tortuous and calcified aorta", "aortic calcifications and tortuosity":
    tortuosity at the aorta is a tortuous aorta). The subject of a copula before wins ("the
    aorta IS calcified and tortuous"), else the head after ("heart size, moderately enlarged
    and tortuous calcified aorta"), else the anatomy before. Only such pairs: "Cardiomegaly
    and calcified aorta" keeps its cardiomegaly off the aorta."""
    n = len(chunks)

    def listed(k: int, step: int) -> int | None:
        """The nearest chunk with anatomy from k in direction step, over list joins and
        chunks of findings without a place."""
        j = k
        while 0 <= j + step < n:
            joined = _boundary(mentions, chunks, max(j, j + step))
            if not joined or not all(b in LIST_JOINS for b in joined):
                return None
            j += step
            if anat_heads[j]:
                return j
            if not preds[j]:
                return None
        return None

    def placed_by_rule(p: Mention) -> bool:
        """Is p already at an anatomy that a contextual rule joins it to?"""
        return any(r[0] == "located_at" and r[1] is p and (p.norm, r[2].norm) in lex.contextual for r in rels)

    for k in range(n):
        if not preds[k]:
            continue
        last = preds[k][-1]
        if anat_heads[k] and (last.role != R_OBS or last.split or last.label == "OBS-DA" or placed_by_rule(last)
                              or last.norm in (lex.umbrella, lex.acute_umbrella)
                              or not all(":" in words[a.j:last.i] for a in anat_heads[k])):
            # a chunk whose anatomy is a label before a colon shares its last finding, a
            # positive specific one that no rule joins to the label ("Mediastinal contours:
            # Tortuous and calcified aorta": the aorta, not the mediastinum, makes the
            # tortuosity a tortuous aorta); "pulmonary scarring or thickening of the fissure"
            # keeps its lung, "..., without acute osseous abnormality" its bones
            continue
        before, after = listed(k, -1), listed(k, 1)
        if before is not None and (after is None or any(m.cop for m in chunks[before])):
            heads = anat_heads[before]
        elif after is not None:
            heads = anat_heads[after]
        else:
            continue
        if anat_heads[k]:
            shared = [last]  # checked above
        else:  # findings of their own place keep it ("airspace opacities")
            placed = {id(r[1]) for r in rels if r[0] == "located_at"}
            shared = [p for p in preds[k] if p.role == R_OBS and not p.split and id(p) not in placed]
        for p in shared:
            for a in heads:
                if (p.norm, a.norm) in lex.contextual:
                    rels.append(("located_at", p, a))


def _share_elided(mentions: list[Mention], rels: list) -> None:
    """Coordinated zones share their side and their observations: in "right middle and lower
    lobe opacities" both "middle" (middle lobe) and "lower lobe" are modified by "right" and
    the opacities are located at both (in text order)."""
    groups: dict[Mention, list[Mention]] = {}
    for m in mentions:
        if m.elided is not None and m.role == R_ANAT:
            groups.setdefault(m.elided, []).append(m)
    for zone, elided in groups.items():
        members = [*elided, zone]  # mentions are in text order; the zone phrase comes last
        ids = {id(x) for x in members}
        sides = [a for t, a, b in rels if t == "modify" and a.role == R_LAT and id(b) in ids]
        preds = [a for t, a, b in rels if t == "located_at" and id(b) in ids]
        for lat in dict.fromkeys(sides):
            for x in members:
                rels.append(("modify", lat, x))
        for p in dict.fromkeys(preds):
            for x in members:
                rels.append(("located_at", p, x))


LIST_JOINS = frozenset({",", "and", "or", "and/or", "/"})


def _place_comma_finding(chunks: list[list[Mention]], preds: dict, anat_heads: list, mentions: list[Mention], words: list[str]) -> bool:
    """Whether the sentence opens with a bare place (at most one word before it; only sides,
    anatomy and modifiers before the anatomy), then a comma, then a chunk whose findings have
    no place of their own and no cue before them ("Right upper lobe, rounded density."), and
    which no anatomy joins in a list after it."""
    first, second = chunks[0], chunks[1]
    if not preds[1] or anat_heads[1] or _boundary(mentions, chunks, 1) != [","]:
        return False
    if sum(w.isalpha() for w in words[: first[0].i]) > 1:
        return False
    anat = next((m for m in first if m.role == R_ANAT), None)
    if anat is None or any(m.role not in (R_ANAT, R_LAT) and not (m.role == R_MOD and m.i < anat.i) for m in first):
        return False
    if len(chunks) > 2 and anat_heads[2] and all(b in LIST_JOINS for b in _boundary(mentions, chunks, 2)):
        return False  # "Stable heart size, moderately enlarged and tortuous aorta": the aorta's
    p0 = preds[1][0]
    return not any(m.role == R_CUE and m.i < p0.i for m in second)


def _fronted_place(mentions: list[Mention], chunks: list[list[Mention]], words: list[str], lex: Lexicon) -> bool:
    """Whether the first chunk is a place the sentence opens with ("In the right midlung zone",
    "Within the left lower lobes") and the next chunk is the clause it places ("there is ...").
    The words are the lexicon's ``fronted_location`` (prepositions; openers of the clause)."""
    spec = lex.data.get("fronted_location") or {}
    preps, openers = set(spec.get("prepositions", ())), set(spec.get("openers", ()))
    if not preps or not openers:
        return False
    lead = [w for w in words[: chunks[0][0].i] if w.isalpha()]
    if not lead or lead[0] not in preps:
        return False
    lo, hi = chunks[0][-1].j, chunks[1][0].i
    return any(m.term and lo <= m.i < hi and words[m.i] in openers for m in mentions)


def _boundary(mentions: list[Mention], chunks: list[list[Mention]], k: int) -> list[str]:
    """The coordinators / terminators between chunk k-1 and chunk k."""
    if k <= 0 or not chunks[k - 1] or not chunks[k]:
        return []
    lo, hi = chunks[k - 1][-1].j, chunks[k][0].i
    return [m.coord or "term" for m in mentions if lo <= m.i < hi and (m.coord or m.term)] or [
        m.coord or "term" for m in chunks[k][:1] if m.coord or m.term]


def _between_has(ch: list[Mention], a: Mention, b: Mention) -> bool:
    return any(x is not a and x is not b and a.j <= x.i < b.i and x.role in (R_OBS, R_NORMAL, R_CUE) for x in ch)


def _close_run(run: list[Mention], rels: list) -> Mention:
    head = run[-1]
    for m in run[:-1]:
        m.head = head
        rels.append(("modify", m, head))
    return head


def _head_of(m: Mention, heads: list[Mention]) -> Mention:
    return m if m.head is None or m in heads else m.head


def _build_graph(text: str, mentions: list[Mention], chunks: list[list[Mention]], rels: list, lex: Lexicon, words: list[str], tokens):
    """Entities (ids e1, e2, ... by position), relations, implied normal-statement findings."""
    ents: list[tuple[int, int, str, str, str | None, object]] = []  # (start, end, text, label, norm, key)
    key_of: dict[Mention, int] = {}  # mention (by identity) -> index in ents
    anat_of_split: dict[Mention, int] = {}
    relations: list[tuple[str, int, int]] = []

    def add(start: int, end: int, label: str, norm: str | None) -> int:
        ents.append((start, end, text[start:end], label, norm))
        return len(ents) - 1

    modifiers: set[Mention] = set()
    attached_lat: set[Mention] = set()
    for typ, a, _ in rels:
        if typ == "modify" or typ == "modify_split":
            if a.role == R_MOD:
                modifiers.add(a)
            elif a.role == R_LAT:
                attached_lat.add(a)
    for m in mentions:
        if m.role == R_OBS:
            if m.split:
                n, anat_norm, side = m.split
                sub = _tokens_span(tokens, words, m, n, side)
                if sub is not None:
                    (a_s, a_e), (o_s, o_e) = sub
                    o = add(o_s, o_e, m.label, m.norm)
                    a = add(a_s, a_e, "ANAT-DP", anat_norm)
                    key_of[m] = o
                    anat_of_split[m] = a
                    relations.append(("located_at", o, a))
                    continue
            key_of[m] = add(m.start, m.end, m.label, m.norm)
        elif m.role == R_ANAT:
            key_of[m] = add(m.start, m.end, "ANAT-DP", m.norm)
        elif m.role == R_LAT and m in attached_lat:
            key_of[m] = add(m.start, m.end, "ANAT-DP", m.norm)
        elif m.role == R_NORMAL:
            key_of[m] = add(m.start, m.end, "OBS-DP", m.norm)
        elif m.role == R_MOD and m in modifiers:
            key_of[m] = add(m.start, m.end, (m.head.label if m.head else "OBS-DP"), m.norm)
    seen = set()
    for typ, a, b in rels:
        if typ == "modify_split":
            if a in key_of and b in anat_of_split:
                typ, src, dst = "modify", key_of[a], anat_of_split[b]
            else:
                continue
        else:
            if a not in key_of or b not in key_of:
                continue
            src, dst = key_of[a], key_of[b]
        if src == dst or (typ, src, dst) in seen:
            continue
        seen.add((typ, src, dst))
        relations.append((typ, src, dst))
    # contextual norms ("enlarged" at the heart -> cardiomegaly) and acute umbrella
    located: dict[int, list[int]] = {}
    for typ, s, d in relations:
        if typ == "located_at":
            located.setdefault(s, []).append(d)
    modifiers_of: dict[int, list[int]] = {}
    for typ, s, d in relations:
        if typ == "modify":
            modifiers_of.setdefault(d, []).append(s)
    for idx, (s, e, t, label, norm) in enumerate(ents):
        if label.startswith("OBS") and norm:
            for mm in modifiers_of.get(idx, ()):  # "calcified" + "granuloma" -> "calcified granuloma"
                spec = lex.modifier_rules.get((ents[mm][4], norm))
                if spec:
                    ents[idx] = (s, e, t, label, spec)
                    norm = spec
                    break
            # the place's own anatomy first, then anatomy joined to it by words between ("prominence
            # of the interstitial markings in both lung fields": the markings, in the lungs; not
            # a compound such as "pleural-parenchymal" or "paratracheal soft tissues")
            places = [x for a in located.get(idx, ()) for x in (a, *(
                m for m in modifiers_of.get(a, ()) if ents[m][3].startswith("ANAT") and ents[a][0] - ents[m][1] > 1))]
            for a in places:
                spec = lex.contextual.get((norm, ents[a][4]))
                if spec:
                    ents[idx] = (s, e, t, label, spec)
                    break
    # a normal statement denies the umbrella finding where it speaks ("clear" -> abnormality
    # absent, located_at "lungs"); findings_from_graph adds the specific denied findings. A
    # specific predicate ("well expanded", "intact") denies only its own findings.
    umbrella = lex.umbrella
    drop: set[int] = set()
    for idx in range(len(ents)):
        s, e, t, label, norm = ents[idx]
        mods = modifiers_of.get(idx)
        acute = mods is not None and any(ents[mm][4] == "acute" for mm in mods)
        if norm == umbrella and label == "OBS-DA":
            if acute:
                ents[idx] = (s, e, t, label, lex.acute_umbrella)
            continue
        if norm == umbrella and not acute and not located.get(idx) and not _standalone(lex, words, s, e, tokens):
            # "Findings discussed with Dr. XXXX", "Chronic changes.": no finding of their own;
            # "Active disease.", "Positive for acute abnormality.", "Disease." assert one
            drop.add(idx)
            continue
        specific = norm in lex.specific_normal
        if label != "OBS-DP" or not (norm == "normal" or specific):
            continue
        ents[idx] = (s, e, t, label, "normal")
        anats = located.get(idx, [])
        if not anats and (any(m.role == R_OBS for m in mentions) or len(words) > 5 or not lex.redaction_tokens.isdisjoint(words)):
            # "tube in appropriate position", "The XXXX appears intact", "Is grossly normal for
            # AP technique": only a bare "Normal." / "Negative study." speaks for the chest
            continue
        if not specific:
            k = add(s, e, "OBS-DA", lex.acute_umbrella if acute else umbrella)
            for a in anats:
                relations.append(("located_at", k, a))
            continue
        for a in anats or [None]:
            for f in lex.denied_by(norm, ents[a][4] if a is not None else None):
                k = add(s, e, "OBS-DA", f)
                if a is not None:
                    relations.append(("located_at", k, a))
    if drop:  # with the modifiers that only modified them
        drop |= {mm for k in drop for mm in modifiers_of.get(k, ()) if all(d in drop for t2, s2, d in relations if s2 == mm)}
        relations = [r for r in relations if r[1] not in drop and r[2] not in drop]
    # entities by position (start, end, then creation order), ids e1, e2, ...
    order = sorted([(x[0], x[1], k) for k, x in enumerate(ents) if k not in drop])
    new_id: list[str | None] = [None] * len(ents)
    entities = []
    for n, (s, e, k) in enumerate(order):
        eid = new_id[k] = _ENTITY_IDS[n] if n < len(_ENTITY_IDS) else f"e{n + 1}"
        x = ents[k]
        entities.append(Entity(eid, x[2], s, e, x[3], x[4]))
    rel_objs = tuple([Relation(t, new_id[s], new_id[d]) for t, s, d in relations])
    heads = tuple([i for i, m in enumerate(mentions) if m.role in _HEAD_ROLES])
    return EntityGraph(tuple(entities), rel_objs), heads


_HEAD_ROLES = (R_OBS, R_NORMAL, R_ANAT)
_ENTITY_IDS = tuple(f"e{n + 1}" for n in range(64))  # "e1", "e2", ...


def _tokens_span(tokens, words: list[str], m: Mention, n: int, side: str):
    """Char spans (anatomy, observation) of a split observation phrase, trimming small words
    between them ("widening of the mediastinum")."""
    if m.j - m.i <= n:
        return None
    if side == "pre":
        anat, obs = (m.i, m.i + n), [m.i + n, m.j]
    else:
        anat, obs = (m.j - n, m.j), [m.i, m.j - n]
    while obs[0] < obs[1] and words[obs[0]] in _SMALL:
        obs[0] += 1
    while obs[0] < obs[1] and words[obs[1] - 1] in _SMALL:
        obs[1] -= 1
    if obs[0] >= obs[1]:
        return None
    return (tokens[anat[0]][0], tokens[anat[1] - 1][1]), (tokens[obs[0]][0], tokens[obs[1] - 1][1])


_SMALL = frozenset({"of", "the", "in", "a", "an", "at", "on", "to", "-"})
