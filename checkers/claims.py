"""Reports -> sections -> sentences -> atomic claims, with exact character offsets.

``split_sections`` finds headings (FINDINGS:, IMPRESSION:, INDICATION:, ... in any case,
followed by a colon, or alone on a line); text before or without headings is the section
"text". ``split_claims`` cuts each section into sentences (spaCy's blank English tokenizer
with radiology abbreviations as special cases, so "approx.", "A.P.", "e.g.", "vs.",
"Dr.", "2.5 cm" never end a sentence; numbered list items "1. ... 2. ..." are separate
sentences without their marker) and each sentence into atomic claims: coordinated findings
are split ("No pleural effusion or pneumothorax." -> "No pleural effusion." and
"No pneumothorax.") with the shared negation, hedge or predicate repeated in each claim's
text, while each claim's span covers only its own part of the source.

Offsets are always into ``report.text``: ``report.text[c.start:c.end]`` is the claim's
source span, ``report.text[c.sentence_start:c.sentence_end]`` its sentence.
"""

from __future__ import annotations

import json
import re
import weakref
from functools import lru_cache
from typing import Any
from reportgen.checkers.graphs.rules import R_ANAT, R_CUE, R_MOD, R_NORMAL, R_OBS, cue_has
from reportgen.checkers.lexicon import DATA, NEG_POST, NEG_PRE, UNC_POST, UNC_PRE
from reportgen.errors import ReportgenError
from reportgen.protocols import ClaimSplitter, SentenceAnalyzer
from reportgen.types import Claim, Report, Section

ABBREVIATIONS = DATA / "abbreviations.json"
_RELATIVE = re.compile(r"\s*(?:(?:some|one|all|most|both|each|many|several|none) of\s+)?(?:which|that|whom|whose)\b", re.IGNORECASE)
_NO_SPLIT_TERMS = frozenset({"which", "that", "who", "which is", "which are"})  # relative clauses stay with their noun
_SPLIT_COORDS = frozenset({",", "and", "or", "nor", "and/or", ";", "as well as", "/", "along with", "plus", "without",
                           "but", "however", "although", "though", "whereas", "while", "with no"})


@lru_cache(maxsize=1)
def text_rules() -> dict:
    return json.loads(ABBREVIATIONS.read_text(encoding="utf-8"))


# A heading starts the text, a line, or follows a sentence end (this look-behind); it ends
# with ":" or (upper case only) with the end of its line.
_HEADING_PLACE = r"(?:(?<=^)|(?<=\n)|(?<=[.!?]\s)|(?<=[.!?]\s\s))"


@lru_cache(maxsize=1)
def _heading_tail() -> str:
    names = sorted(text_rules()["section_headings"], key=len, reverse=True)
    alt = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
    return rf"[ \t]*(?P<name>{alt})[ \t]*(?::|(?=[ \t]*\n))"


@lru_cache(maxsize=1)
def _heading_re() -> re.Pattern:
    """Headings, as one pattern (``_headings`` finds the same matches faster)."""
    return re.compile(_HEADING_PLACE + _heading_tail(), re.IGNORECASE)


@lru_cache(maxsize=1)
def _heading_tail_re() -> re.Pattern:
    """``_heading_re`` without its look-behind: tried only where a heading may start."""
    return re.compile(_heading_tail(), re.IGNORECASE)


# Where a heading may start besides the text's start (the look-behinds of _heading_re): after
# a line break, and after a sentence end followed by one or two white-space characters.
_HEADING_PLACES = re.compile(r"\n|[.!?](\s)(\s)?")
_WHITESPACE = re.compile(r"\s+")


def _headings(text: str) -> list[re.Match]:
    """The matches of ``_heading_re().finditer(text)``, found faster: its part after the
    look-behind is tried only at the places the look-behind allows (in order, not
    overlapping a previous match, as finditer does)."""
    tail = _heading_tail_re()
    places = [0]
    for m in _HEADING_PLACES.finditer(text):
        if m.start(1) < 0:
            places.append(m.end())  # a line break
        else:
            places.append(m.end(1))
            if m.start(2) >= 0:
                places.append(m.end(2))
    out = []
    done = 0
    for pos in places:
        if pos >= done:
            m = tail.match(text, pos)
            if m is not None:
                out.append(m)
                done = m.end()
    return out


def split_sections(text: str) -> Report:
    """The Report with its sections found by headings (see module doc)."""
    rules = text_rules()["section_headings"]
    sections: list[Section] = []
    heads = []
    for m in _headings(text):
        name = m.group("name")
        if not m.group(0).rstrip().endswith(":") and name != name.upper():
            continue  # a bare heading must be in capitals ("FINDINGS\n")
        heads.append((m.start(), m.end(), rules[_WHITESPACE.sub(" ", name.lower())]))
    if not heads:
        s, e = _strip(text, 0, len(text))
        return Report(text, (Section("text", s, e),) if e > s else ())
    s, e = _strip(text, 0, heads[0][0])
    if e > s:
        sections.append(Section("text", s, e))
    for k, (hs, he, name) in enumerate(heads):
        end = heads[k + 1][0] if k + 1 < len(heads) else len(text)
        s, e = _strip(text, he, end)
        if e > s:
            sections.append(Section(name, s, e))
    return Report(text, tuple(sections))


def _strip(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


# ---- sentences ----------------------------------------------------------------------------
# spaCy (its blank English tokenizer and sentencizer) decides only the segments the regex
# fast path below cannot (about 6% of the IU sections' segments). It is imported on first
# use, as it is: spaCy imports thinc, which imports torch when torch is installed, so the
# first segment that needs spaCy costs that import once per process (``warm_up`` does it
# up front). Text that never needs it never imports spaCy.
SPACY_EXCEPTIONS = DATA / "spacy_exceptions.json"


@lru_cache(maxsize=1)
def nlp():
    """spaCy blank English tokenizer with the abbreviations of abbreviations.json (made on
    first use)."""
    import spacy
    from spacy.symbols import ORTH
    from spacy.util import compile_infix_regex

    model = spacy.blank("en")
    # "lung XXXX.In the left ...": a period between words with no space still ends a sentence
    infixes = list(model.Defaults.infixes) + [r"(?<=[A-Za-z]{2})\.(?=[A-Z][a-z])"]
    model.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    for abbr in text_rules()["abbreviations"]:
        if " " in abbr:
            continue
        for form in {abbr, abbr.upper(), abbr[:1].upper() + abbr[1:]}:
            model.tokenizer.add_special_case(form, [{ORTH: form}])
    return model


def warm_up() -> None:
    """Load the sentence splitter's spaCy fallback now (a benchmark or a long batch that
    wants the one-off import outside its timing)."""
    nlp()
    _sentencizer()


def spacy_dotted_words() -> list[str]:
    """The installed spaCy's English tokenizer exceptions with a period, lower-cased (what
    ``spacy_exceptions.json`` holds; a test compares the two)."""
    return sorted({k.lower() for k in nlp().Defaults.tokenizer_exceptions if "." in k})


_DIGIT = re.compile(r"\d")
_LIST_MARKER = re.compile(r"(?:(?<=^)|(?<=\s)|(?<=[.:;]))(\d{1,2})[.)](?=\s+\S|[A-Z])")


def _list_items(text: str, s: int, e: int) -> list[tuple[int, int]]:
    """Cut [s, e) at numbered list markers "1." "2)" (in sequence); drop the markers."""
    if _DIGIT.search(text, s, e) is None:  # no marker possible (most sections)
        x = _strip(text, s, e)
        return [x] if x[1] > x[0] else []
    out: list[tuple[int, int]] = []
    pos, last = s, 0
    for m in _LIST_MARKER.finditer(text, s, e):
        n = int(m.group(1))
        before = text[s : m.start()].rstrip()
        at_start = not before or before[-1] in ".:;!?" or "\n" in text[max(s, m.start() - 3) : m.start()]
        if not ((n == 1 and at_start) or (n == last + 1 and last > 0)):
            continue
        if m.start() > pos:
            out.append((pos, m.start()))
        pos, last = m.end(), n
    out.append((pos, e))
    return [x for x in (_strip(text, a, b) for a, b in out) if x[1] > x[0]]


_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


@lru_cache(maxsize=1)
def _sentencizer():
    from spacy.pipeline import Sentencizer

    return Sentencizer(punct_chars=[".", "!", "?", "..", "...", "?.", "!."])


def sentences(text: str, s: int = 0, e: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of text[s:e] (offsets into ``text``): numbered list items and blank
    lines always break; inside them spaCy's tokenizer (with the abbreviations) and
    sentencizer decide. Spans without a letter or digit (". .") are dropped."""
    e = len(text) if e is None else e
    return [(s + x, s + y) for x, y in _sentences_rel(text[s:e])]


# Fast path: most segments have only plain sentence ends ("word. Next"); for those a regex
# gives exactly what spaCy's tokenizer + sentencizer give (tests/test_claims.py checks
# this on every IU section). Anything that spaCy's tokenizer could treat specially -- a
# known abbreviation or spaCy exception ("approx.", "A.P.", "p.m.", "a."), a period inside
# a word ("XXXX.In", "e.g"), a number with a trailing period chunk -- goes to spaCy.
_CANDIDATE_END = re.compile(r"[.!?]+[^\w\s]*(?=\s|$)")
_INNER_MARK = re.compile(r"[.!?](?=[^\s.!?])")
_DECIMAL = re.compile(r"\d\.\d")
_NEXT_CHAR = re.compile(r"\s*(\S)?")  # \s is str.isspace here (as in str.lstrip)


@lru_cache(maxsize=1)
def _dotted_words() -> frozenset[str]:
    """Words with a period that spaCy's tokenizer keeps whole (its exceptions, from
    spacy_exceptions.json, and our abbreviations): a candidate end on one goes to spaCy."""
    words = set(json.loads(SPACY_EXCEPTIONS.read_text(encoding="utf-8"))["dotted"])
    words.update(a.lower() for a in text_rules()["abbreviations"])
    return frozenset(words)


def _fast_ends(seg: str) -> list[int] | None:
    """Sentence ends of a segment by regex, or None when spaCy must decide."""
    for m in _INNER_MARK.finditer(seg):
        k = m.start()
        if not (seg[k] == "." and _DECIMAL.match(seg, k - 1) if k else False):
            return None
    dotted = _dotted_words()
    ends = []
    for m in _CANDIDATE_END.finditer(seg):
        ms, me = m.span()
        start = max(seg.rfind(" ", 0, ms), seg.rfind("\n", 0, ms), seg.rfind("\t", 0, ms)) + 1
        chunk = seg[start:me]
        core = chunk.lstrip("([{\"'")
        word = core[: len(core) - len(core.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))]
        if core.lower() in dotted or word.lower() + "." in dotted or len(word) == 1 or not core[:1].isalnum():
            return None
        if any(map(str.isdigit, core)):
            return None
        nxt = _NEXT_CHAR.match(seg, me).group(1)  # the first non-space character after the end
        if nxt is not None and not nxt.isalnum():
            return None  # spaCy's sentencizer takes a following mark ("[", "(") with the sentence
        ends.append(me)
    return ends


# spaCy's tokenizer takes time quadratic in the length of a run without whitespace (it
# peels one prefix/suffix off at a time): 10,000 punctuation marks in a row took minutes.
# Runs longer than this are cut by a space every MAX_TOKEN_CHARS characters in the copy
# that spaCy sees (same length, so its offsets hold for the text); no report word is as long.
MAX_TOKEN_CHARS = 64
_LONG_RUN = re.compile(r"\S{%d,}" % (MAX_TOKEN_CHARS + 1))


def _break_run(m: re.Match) -> str:
    run = list(m.group())
    run[MAX_TOKEN_CHARS - 1 :: MAX_TOKEN_CHARS] = " " * len(run[MAX_TOKEN_CHARS - 1 :: MAX_TOKEN_CHARS])
    return "".join(run)


def _spacy_ends(seg: str) -> list[int]:
    if len(seg) > MAX_TOKEN_CHARS:
        seg = _LONG_RUN.sub(_break_run, seg)
    doc = _sentencizer()(nlp().tokenizer(seg))
    return [sent.end_char for sent in doc.sents]


@lru_cache(maxsize=32768)
def _sentences_rel(text: str) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in _list_items(text, 0, len(text)):
        pos = a
        segs = []
        for m in _BLANK_LINE.finditer(text, a, b):
            segs.append((pos, m.start()))
            pos = m.end()
        segs.append((pos, b))
        for sa, sb in segs:
            seg = text[sa:sb]
            ends = _fast_ends(seg)
            if ends is None:
                ends = _spacy_ends(seg)
            pos = 0
            for end in ends + [len(seg)]:
                x, y = _strip(text, sa + pos, sa + end)
                if y > x and any(map(str.isalnum, text[x:y])):
                    if out and out[-1][1] <= x and text[x].islower() and _LEVEL_OR_UNIT_END.search(text, out[-1][0], out[-1][1]):
                        out[-1] = (out[-1][0], y)  # "compression of T12. vertebral body", "2 cm. in size"
                    else:
                        out.append((x, y))
                pos = end
    if any(y - x > MAX_SENTENCE_CHARS for x, y in out):
        out = [piece for x, y in out for piece in _cut_long(text, x, y)]
    return tuple(out)


# A radiology sentence is a few hundred characters at most (the longest of the 3,955 IU
# reports: 274). Claim and graph analysis of one sentence grows faster than its length
# (coordinations, claim subgraphs), so a run-on "sentence" of hostile or broken input (a
# 1 MB line without a full stop) is cut into pieces of at most this many characters, at
# the last comma, semicolon or space before the limit: time stays linear in the input.
MAX_SENTENCE_CHARS = 1000


def _cut_long(text: str, x: int, y: int) -> list[tuple[int, int]]:
    out = []
    while y - x > MAX_SENTENCE_CHARS:
        limit = x + MAX_SENTENCE_CHARS
        cut = max(text.rfind(",", x, limit), text.rfind(";", x, limit))
        if cut <= x:
            cut = max(text.rfind(" ", x, limit), text.rfind("\n", x, limit))
        cut = cut + 1 if cut > x else limit
        a, b = _strip(text, x, cut)
        if b > a and any(map(str.isalnum, text[a:b])):
            out.append((a, b))
        x = cut
    a, b = _strip(text, x, y)
    if b > a and any(map(str.isalnum, text[a:b])):
        out.append((a, b))
    return out


_LEVEL_OR_UNIT_END = re.compile(r"(?:\b[CTL]\d{1,2}|\d\s?(?:cm|mm))\.$")


# ---- claims -------------------------------------------------------------------------------
def context_sections() -> frozenset[str]:
    return frozenset(text_rules().get("context_sections", ()))


def report_sentences(report: Report, *, include_context: bool = False) -> list[tuple[int, int, int]]:
    """(section index in ``report.sections``, start, end) of every sentence the checker reads
    in ``report`` (``split_claims`` and ``read_report`` cut the same ones): sections without
    their headings, context sections only with ``include_context``, list markers dropped."""
    skip = frozenset() if include_context else context_sections()
    sections = report.sections or ((Section("text", *_strip(report.text, 0, len(report.text))),) if report.text.strip() else ())
    return [(k, a, b) for k, sec in enumerate(sections) if sec.name not in skip for a, b in sentences(report.text, sec.start, sec.end)]


class RulesClaimSplitter:
    """The claim splitter (``ClaimSplitter``, name "rules"): sections, sentences, then
    coordinated findings split with a ``SentenceAnalyzer`` (the rules extractor with the
    default lexicon unless ``analyzer`` is given). It is the splitter of every graph
    extractor: with ``--extractor radgraph`` the claims are still cut by these rules and
    only their graphs come from the radgraph model."""

    name = "rules"

    def __init__(self, analyzer: SentenceAnalyzer | None = None):
        self.analyzer = analyzer

    def __repr__(self) -> str:
        return f"RulesClaimSplitter(analyzer={self.analyzer!r})"

    def split(self, report: Report, *, include_context: bool = False) -> tuple[Claim, ...]:
        return split_claims(report, include_context=include_context, extractor=self.analyzer)


# name -> claim splitter class; Pipeline / read_report / `reportgen check --claim-splitter` choose by name
CLAIM_SPLITTERS = {"rules": RulesClaimSplitter}


def get_claim_splitter(splitter: "ClaimSplitter | str | None" = None) -> "ClaimSplitter":
    """A claim splitter from a name ("rules"), an object, or None (rules)."""
    if splitter is None:
        return RulesClaimSplitter()
    if splitter.__class__ is RulesClaimSplitter:  # (a Protocol isinstance check costs ~50 us)
        return splitter
    if isinstance(splitter, str):
        if splitter not in CLAIM_SPLITTERS:
            raise ReportgenError("E006", f"unknown claim splitter {splitter!r}", fix=f"use one of: {', '.join(CLAIM_SPLITTERS)}")
        return CLAIM_SPLITTERS[splitter]()
    if not isinstance(splitter, ClaimSplitter):
        raise ReportgenError("E006", f"{splitter!r} is not a claim splitter", fix="pass a name (rules) or an object with split(report)")
    return splitter


def split_claims(report: Report, *, include_context: bool = False, extractor: SentenceAnalyzer | None = None) -> tuple[Claim, ...]:
    """Atomic claims of every section (context sections such as INDICATION and COMPARISON
    only with ``include_context``). ``extractor``: the SentenceAnalyzer (RulesExtractor)
    whose lexicon finds coordinated findings (the default rules extractor if None or not
    an analyzer)."""
    rules = extractor if extractor is not None and is_analyzer(extractor) else _default_rules()
    skip = frozenset() if include_context else context_sections()
    sections = report.sections or ((Section("text", *_strip(report.text, 0, len(report.text))),) if report.text.strip() else ())
    out: list[Claim] = []
    for sec in sections:
        if sec.name in skip:
            continue
        for ss, se in sentences(report.text, sec.start, sec.end):
            out.extend(sentence_claims(report.text, ss, se, sec.name, rules))
    return tuple(out)


_ANALYZERS: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def is_analyzer(extractor: Any) -> bool:
    """Whether a graph extractor is a ``SentenceAnalyzer`` (the Protocol check, remembered
    per extractor object: it costs ~50 us, and reading a report asks it)."""
    try:
        known = _ANALYZERS.get(extractor)
    except TypeError:  # not weakly referenceable
        return isinstance(extractor, SentenceAnalyzer)
    if known is None:
        known = _ANALYZERS[extractor] = isinstance(extractor, SentenceAnalyzer)
    return known


@lru_cache(maxsize=1)
def _default_rules():
    from reportgen.checkers.graphs.rules import RulesExtractor

    return RulesExtractor()


def sentence_claims(text: str, ss: int, se: int, section: str, rules) -> list[Claim]:
    """The claims of the sentence text[ss:se]."""
    return [Claim(t, section, ss + a, ss + b, ss, se) for t, a, b in claim_parts(text[ss:se], rules)]


def claim_parts(sent: str, rules, cached: bool = True, analysis=None) -> tuple[tuple[str, int, int], ...]:
    """(claim text, start, end) of each claim of one sentence, offsets into ``sent``
    (``analysis``: the sentence's analysis when the caller has it)."""
    parts = _coordination(sent, rules) if cached and analysis is None else _coordination_uncached(sent, rules, analysis)
    if len(parts) <= 1:
        return ((sent, 0, len(sent)),)
    return tuple(parts)


@lru_cache(maxsize=65536)
def _coordination_cached(sent: str, rules) -> tuple[tuple[str, int, int], ...]:
    return tuple(_coordination_uncached(sent, rules))


def _coordination(sent: str, rules) -> tuple[tuple[str, int, int], ...]:
    return _coordination_cached(sent, rules)


_WORD = re.compile(r"[A-Za-z]+")


def _join_coordinated_modifiers(sent: str, items: list[list], rules) -> list[list]:
    """Coordinated modifiers of one head are one claim: "Blunting of the lateral and posterior
    right costophrenic sulcus" is not "Blunting of the lateral." + "Posterior right ...".
    An item that ends with a modifier word of the lexicon's ``coordinated_modifiers`` that no
    mention covers (its head noun is in the next item) is joined with the next item when that
    one starts with anatomy."""
    words = frozenset(getattr(getattr(rules, "lexicon", None), "data", {}).get("coordinated_modifiers", {}).get("words", ()))
    if not words or len(items) <= 1:
        return items
    out = [items[0]]
    for it in items[1:]:
        prev = out[-1]
        last = None
        for last in _WORD.finditer(sent, prev[0], prev[1]):
            pass
        dangling = (last is not None and last.group().lower() in words
                    and not any(m.start <= last.start() < m.end for m in prev[2]))
        first = next((m for m in it[2] if m.role in (R_OBS, R_ANAT, R_NORMAL)), None)
        if dangling and first is not None and first.role == R_ANAT:
            out[-1] = [prev[0], it[1], prev[2] + it[2]]
        else:
            out.append(it)
    return out


def _coordination_uncached(sent: str, rules, analysis=None) -> list[tuple[str, int, int]]:
    """(text, start, end) of each atomic claim of one sentence (offsets into ``sent``);
    one entry or none means: do not split."""
    a = analysis if analysis is not None else rules.analyze(sent)
    heads_roles = (R_OBS, R_ANAT, R_NORMAL)

    def pre_cue(m) -> bool:
        return m.role == R_CUE and (cue_has(m, NEG_PRE) or cue_has(m, UNC_PRE))

    def predicate(m) -> bool:
        return m.cop or m.role == R_NORMAL or (m.role == R_CUE and (cue_has(m, NEG_POST) or cue_has(m, UNC_POST)))

    # items: character spans between split coordinators (a cue coordinator such as
    # "without" opens the next item), with their mentions
    items: list[list] = []  # [start, end, mentions]
    start = 0
    for m in a.mentions:
        if (m.coord in _SPLIT_COORDS or (m.term and m.coord is None and m.role != R_CUE and sent[m.start : m.end].lower() not in _NO_SPLIT_TERMS)) \
                and not _RELATIVE.match(sent, m.end):
            items.append([start, m.start, []])
            start = m.start if m.role == R_CUE else m.end
    items.append([start, len(sent), []])
    if len(items) == 1:
        return []  # no split coordinator: one part (what follows would keep at most one)
    for m in a.mentions:
        for it in items:
            if it[0] <= m.start < it[1] or (it[0] == m.start == it[1]):
                it[2].append(m)
                break
    items = [it for it in items if sent[it[0]:it[1]].strip(" ,;:.")]
    merged: list[list] = []
    pending = None
    for it in items:
        if not any(m.role in heads_roles for m in it[2]):
            if merged:
                merged[-1][1] = it[1]
                merged[-1][2].extend(it[2])
            elif pending is None:
                pending = it
            else:
                pending[1] = it[1]
                pending[2].extend(it[2])
            continue
        if pending is not None:
            it = [pending[0], it[1], pending[2] + it[2]]
            pending = None
        merged.append(it)
    items = _join_coordinated_modifiers(sent, merged, rules)
    if len(items) <= 1:
        return []

    def lead_cue_end(it) -> int | None:
        """End of the pre-cues ("no", "without evidence of") before the item's first head."""
        head = next((m for m in it[2] if m.role in (R_OBS, R_ANAT)), None)
        end = None
        for m in it[2]:
            if head is not None and m.i >= head.i:
                break
            if pre_cue(m) or m.role == R_NORMAL:
                end = m.end
        return end

    prefix_end = lead_cue_end(items[0]) or 0
    # shared suffix: from the copula / post-cue / predicate after the last item's first head
    suffix_start = None
    lh = next((m for m in items[-1][2] if m.role in (R_OBS, R_ANAT)), None)
    if lh is not None:
        suffix_start = next((m.start for m in items[-1][2] if m.i > lh.i and predicate(m)), None)

    # a shared predicate ("are normal") goes to anatomy-only parts; a post-cue ("are not
    # seen") to parts whose observations it reached
    suffix_label = None
    for m in (items[-1][2] if suffix_start is not None else ()):
        if m.start >= suffix_start and m.role == R_CUE:
            suffix_label = "OBS-DA" if cue_has(m, NEG_POST) else ("OBS-U" if cue_has(m, UNC_POST) else suffix_label)
    normal_prefix = bool(prefix_end) and _cue_label(items[0][2], prefix_end) is None

    def contentful(k: int) -> bool:
        """A part stands alone when it says something: an observation or normal predicate
        of its own, or anatomy that a shared predicate speaks about."""
        ms = items[k][2]
        if any(m.role == R_OBS for m in ms if m.start >= prefix_end):
            return True
        if any(m.role == R_NORMAL for m in ms if m.start >= prefix_end):
            # a bare predicate after a part with its subject belongs to it ("lungs are clear and expanded")
            return k == 0 or any(m.role == R_ANAT for m in ms)
        if not any(m.role == R_ANAT for m in ms):
            return False
        return (k < len(items) - 1 and suffix_start is not None and suffix_label is None) or (k > 0 and normal_prefix)

    keep = [contentful(k) for k in range(len(items))]
    if not all(keep):
        merged = []
        for k, it in enumerate(items):
            if keep[k] or not merged:
                if merged and not keep[k - 1] and len(merged) == 1 and not keep[0]:
                    merged[0] = [merged[0][0], it[1], merged[0][2] + it[2]]  # a leading empty part joins the next
                    continue
                merged.append(list(it))
            else:
                merged[-1] = [merged[-1][0], it[1], merged[-1][2] + it[2]]
        items = merged
        if len(items) <= 1:
            return []

    def item_of(pos: int) -> int:
        for k, it in enumerate(items):
            if it[0] <= pos < it[1]:
                return k
        return -1

    def shared(pos: int) -> bool:
        return pos < prefix_end or (suffix_start is not None and pos >= suffix_start)

    # items joined by a relation (outside the shared prefix / suffix) stay together
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ents = {e.id: e for e in a.graph.entities}
    for r in a.graph.relations:
        s, d = ents[r.source], ents[r.target]
        if shared(s.start) or shared(d.start):
            continue
        ks, kd = item_of(s.start), item_of(d.start)
        if ks >= 0 and kd >= 0 and ks != kd:
            lo, hi = sorted((ks, kd))
            for k in range(lo, hi):  # keep groups contiguous
                parent[find(k + 1)] = find(lo)
    groups: list[list[int]] = []
    for k in range(len(items)):
        if groups and find(k) == find(groups[-1][0]):
            groups[-1].append(k)
        else:
            groups.append([k])
    if len(groups) <= 1:
        return []
    suffix = sent[suffix_start:].strip().rstrip(".!? ") if suffix_start is not None else ""
    # a suffix of verbs and change words only ("appears stable", "are again noted") fits every part
    suffix_plain = suffix_start is not None and all(
        m.role in (R_MOD, "struct", "none") for m in items[-1][2] if m.start >= suffix_start)
    carry = sent[:prefix_end].strip()
    carry_label = _cue_label(items[0][2], prefix_end)
    out = []
    for g, ks in enumerate(groups):
        ms = [m for k in ks for m in items[k][2]]
        start = 0 if g == 0 else items[ks[0]][0]
        end = len(sent.rstrip()) if g == len(groups) - 1 else items[ks[-1]][1]
        if suffix_start is not None and g < len(groups) - 1:
            end = min(end, suffix_start)
        body = sent[start:end].strip().strip(",;:").strip()
        parts = []
        own = lead_cue_end([start, end, ms]) if g > 0 else None
        if g > 0 and own is not None and any(pre_cue(m) for m in ms if m.end <= own):
            carry, carry_label = sent[start:own].strip(), _cue_label(ms, own)  # a new shared cue ("without ...")
        elif g > 0 and carry and _carry_applies(ms, carry_label):
            parts.append(_standalone_cue(carry))
        parts.append(body)
        if g < len(groups) - 1 and suffix and not any(predicate(m) for m in ms) and (
                _carry_applies(ms, suffix_label) or suffix_plain):
            parts.append(suffix)
        claim_text = " ".join(p for p in parts if p)
        if parts and parts[0] == body and body[:7].lower() in ("without", "with no"):
            claim_text = _standalone_cue(claim_text)
        claim_text = claim_text[:1].upper() + claim_text[1:]
        if claim_text and claim_text[-1] not in ".!?":
            claim_text += "."
        s2, e2 = _strip(sent, start, end)
        while e2 > s2 and sent[e2 - 1] in ".!?;,:":  # the span ends at its own words
            e2 -= 1
        s2, e2 = _strip(sent, s2, e2)
        out.append((claim_text, s2, e2))
        # a cue inside this part that governs its last observation reaches the next parts
        # too ("... with resolution of small apical pneumothorax and basilar opacities")
        heads = [m for m in ms if m.role in (R_OBS, R_ANAT)]
        if heads:
            inner = [m for m in ms if pre_cue(m) and m.start >= heads[0].start]
            if inner:  # the next part takes it only if its observations carry the cue's label
                carry, carry_label = sent[inner[-1].start : inner[-1].end], _cue_label([inner[-1]], inner[-1].end)
    return out


def _cue_label(mentions, end: int) -> str | None:
    """The label the leading cues up to ``end`` give (OBS-DA for negation, OBS-U for a
    hedge), or None for a normal predicate prefix ("Normal heart size and ...")."""
    label = None
    for m in mentions:
        if m.end > end:
            break
        if m.role == R_CUE:
            label = "OBS-DA" if cue_has(m, NEG_PRE) else ("OBS-U" if cue_has(m, UNC_PRE) else label)
    return label


def _carry_applies(mentions, label: str | None) -> bool:
    """A shared cue applies to a later item when the item's observations carry its label
    (the scope reached them), or, for a normal predicate prefix, when it names anatomy only."""
    obs = [m for m in mentions if m.role == R_OBS]
    if label is None:
        return not obs and any(m.role == R_ANAT for m in mentions)
    return bool(obs) and all(m.label == label for m in obs)


def _standalone_cue(text: str) -> str:
    """ "without evidence of" -> "no evidence of" for a claim standing alone."""
    low = text.lower()
    for old in ("without", "with no"):
        if low.startswith(old):
            return "no" + text[len(old):]
    return text


__all__ = ["RulesClaimSplitter", "CLAIM_SPLITTERS", "get_claim_splitter", "split_sections", "split_claims", "sentences", "sentence_claims", "claim_parts", "nlp", "warm_up", "context_sections"]
