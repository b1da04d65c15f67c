"""The chest X-ray lexicon: phrases -> categories and normal forms, loaded from JSON.

The default lexicon is ``checkers/data/lexicon.json`` (format: docs/lexicon.md). A user
lexicon file is merged into it (``mode="merge"``: synonyms, cues and rules are added,
entries with the same key are extended) or replaces it (``mode="replace"``).

Matching works on word tokens of lower-cased text (``tokenize``): runs of letters, numbers
with an optional decimal part, and single other characters. Phrases in the lexicon are
tokenized the same way, so "left-sided" matches "Left-sided" and "left - sided".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from reportgen.errors import ReportgenError

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_LEXICON = DATA / "lexicon.json"

TOKEN_RE = re.compile(r"[a-z]+|\d+(?:\.\d+)?|[^\sa-z\d]")

# Categories a phrase can belong to (a phrase may have several).
OBS, ANAT, LAT, SEV, CHG, TMP, DESC, LOW, NORMAL = "obs", "anat", "lat", "sev", "chg", "tmp", "desc", "low", "normal"
NEG_PRE, NEG_POST, UNC_PRE, UNC_POST, PSEUDO = "neg_pre", "neg_post", "unc_pre", "unc_post", "pseudo"
SUGG, SUGG_DEF, TERM, COP, COORD, IGNORE = "sugg", "sugg_def", "term", "cop", "coord", "ignore"
MODIFIER_CATS = (SEV, CHG, TMP, DESC, LOW)
CUE_CATS = (NEG_PRE, NEG_POST, UNC_PRE, UNC_POST, SUGG)

_CUE_KEYS = {
    "negation_pre": NEG_PRE, "negation_post": NEG_POST, "uncertainty_pre": UNC_PRE,
    "uncertainty_post": UNC_POST, "pseudo": PSEUDO, "suggestive": SUGG, "suggestive_definite": SUGG_DEF,
    "terminators": TERM, "copulas": COP, "coordinators": COORD, "ignore": IGNORE,
}


def lower_text(text: str) -> str:
    """Lower-cased text of the SAME length (offsets stay valid for any input)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """(start, end, lower-cased token) for each word token of ``text``."""
    return [(m.start(), m.end(), m.group()) for m in TOKEN_RE.finditer(lower_text(text))]


def _rule_table(rules, what: str, shape: str) -> dict[tuple[str, str], str]:
    """Lexicon rules written as triples [a, b, result] as a (a, b) -> result table."""
    out = {}
    for rule in rules:
        if len(rule) != 3:
            raise ReportgenError("E211", f"{what} {rule!r} must be {shape}", fix="see docs/lexicon.md")
        out[(rule[0], rule[1])] = rule[2]
    return out


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(m.group() for m in TOKEN_RE.finditer(lower_text(phrase)))


@dataclass(frozen=True)
class Entry:
    """What a phrase means: category, normal form, and extras (laterality, anatomy split)."""

    cat: str
    norm: str
    laterality: str | None = None
    # For observation phrases that contain an anatomy phrase at their start ("pleural
    # effusion") or end ("enlarged heart"): (n anatomy tokens, anatomy norm, "pre"|"post").
    split: tuple[int, str, str] | None = None


@dataclass
class Lexicon:
    """A loaded lexicon with a phrase trie. Build with :func:`load_lexicon`."""

    data: dict[str, Any]
    version: str
    sources: tuple[str, ...]
    phrases: dict[tuple[str, ...], list[Entry]] = field(default_factory=dict)
    by_first: dict[str, list[tuple[tuple[str, ...], list[Entry]]]] = field(default_factory=dict)
    contextual: dict[tuple[str, str], str] = field(default_factory=dict)
    organ: dict[str, str] = field(default_factory=dict)
    zone: dict[str, str] = field(default_factory=dict)
    implies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    umbrella: str = "abnormality"
    acute_umbrella: str = "acute abnormality"
    default_anatomy: str = "chest"
    change_norms: frozenset[str] = frozenset()
    severity_norms: frozenset[str] = frozenset()
    specific_normal: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # normal predicates that negate an observation they directly precede ("Negative acute
    # cardiopulmonary abnormality"), as token tuples
    negating_normal: frozenset[tuple[str, ...]] = frozenset()
    # umbrella words that assert an abnormality when they are the whole sentence
    # ("Disease.", "Abnormality."; not "Findings."), as token tuples
    standalone_umbrella: frozenset[tuple[str, ...]] = frozenset()
    modifier_rules: dict[tuple[str, str], str] = field(default_factory=dict)
    modifier_findings: frozenset[str] = frozenset()  # descriptors that are findings too ("calcified")
    # (observation, neighbouring observation) -> what the first one is beside it: a fracture
    # of a sternotomy wire is a device fracture, not a bone fracture (contextual.companions)
    companion_rules: dict[tuple[str, str], str] = field(default_factory=dict)
    # benign mimics ("nipple shadow", "artifact") and the findings that, attributed to one of
    # them ("nodular opacity, most likely the nipple"), are not definite (contextual.mimics)
    mimics: frozenset[str] = frozenset()
    mimic_findings: frozenset[str] = frozenset()
    # zone words that a coordination may leave without their head noun ("middle" in
    # "right middle and lower lobe") and the coordinator tokens between them
    elidable_zone_words: frozenset[str] = frozenset()
    zone_coordinator_tokens: frozenset[str] = frozenset()
    obs_organ: dict[str, str] = field(default_factory=dict)
    # de-identification tokens ("XXXX") as lower-case tokens: the list of checking.json
    # (exception_cues.redaction_tokens), the one place they are named
    redaction_tokens: frozenset[str] = frozenset()
    _entries_cache: dict[str, tuple[Entry, ...]] = field(default_factory=dict, repr=False)
    # first token -> the lengths of the phrases it starts, longest first (for ``match``)
    _lengths: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    # ---- building -------------------------------------------------------------------
    def _add(self, phrase: str, entry: Entry) -> None:
        toks = phrase_tokens(phrase)
        if not toks:
            return
        entries = self.phrases.setdefault(toks, [])
        if entry not in entries:
            entries.append(entry)

    def _build(self) -> None:
        d = self.data
        for norm, spec in d.get("anatomy", {}).items():
            spec = _spec(spec, "anatomy", norm)
            lat = spec.get("laterality", {})
            self.organ[norm] = spec.get("organ", norm)
            if spec.get("zone"):
                self.zone[norm] = spec["zone"]
            for syn in [norm, *spec.get("synonyms", ())]:
                self._add(syn, Entry(ANAT, norm, lat.get(syn)))
        for norm, spec in d.get("observations", {}).items():
            spec = _spec(spec, "observations", norm)
            lat = spec.get("laterality", {})
            for syn in [norm, *spec.get("synonyms", ())]:
                self._add(syn, Entry(OBS, norm, lat.get(syn)))
        for side, syns in d.get("laterality", {}).items():
            for syn in [side, *syns]:
                self._add(syn, Entry(LAT, side))
        for key, cat in (("severity", SEV), ("change", CHG), ("temporal", TMP), ("descriptors", DESC)):
            for norm, syns in d.get(key, {}).items():
                if norm == "comment":
                    continue
                for syn in [norm, *syns]:
                    self._add(syn, Entry(cat, norm))
        for norm, syns in d.get("contextual", {}).get("promotable", {}).items():
            if norm != "comment":
                for syn in [norm, *syns]:
                    self._add(syn, Entry(LOW, norm))
        normal = d.get("normal", {})
        for syn in normal.get("predicates", ()):
            self._add(syn, Entry(NORMAL, "normal"))
        for syn, denied in normal.get("specific", {}).items():
            if syn != "comment":
                self.specific_normal[syn] = tuple(denied)
                self._add(syn, Entry(NORMAL, syn))
        self.negating_normal = frozenset(phrase_tokens(p) for p in normal.get("negating", {}).get("words", ()))
        self.standalone_umbrella = frozenset(phrase_tokens(p) for p in normal.get("standalone_umbrella", {}).get("words", ()))
        self.redaction_tokens = frozenset(w for t in redaction_tokens() for w in phrase_tokens(t))
        self.explicit_bilateral = frozenset(phrase_tokens(p) for p in d.get("explicit_bilateral", {}).get("words", ()))
        self.attributive_copulas = frozenset(phrase_tokens(p) for p in d.get("attributive_copulas", {}).get("words", ()))
        zc = d.get("zone_coordination", {})
        self.elidable_zone_words = frozenset(w for p in zc.get("words", ()) for w in phrase_tokens(p))
        self.zone_coordinator_tokens = frozenset(w for p in zc.get("coordinators", ()) for w in phrase_tokens(p))
        for norm, spec in d.get("observations", {}).items():
            if isinstance(spec, Mapping) and spec.get("organ"):
                self.obs_organ[norm] = spec["organ"]
        for key, cat in _CUE_KEYS.items():
            for syn in d.get("cues", {}).get(key, ()):
                self._add(syn, Entry(cat, syn))
        # "no change", "without significant interval change": an unchanged-change phrase that
        # opens with a negation word states stability, it negates nothing (a pseudo-negation),
        # so the change list is the one place such phrases are written.
        negation_words = {phrase_tokens(c)[0] for c in d.get("cues", {}).get("negation_pre", ()) if len(phrase_tokens(c)) == 1}
        for syn in d.get("change", {}).get("unchanged", ()):
            if phrase_tokens(syn)[0] in negation_words:
                self._add(syn, Entry(PSEUDO, syn))
        ctx = d.get("contextual", {})
        self.modifier_rules.update(_rule_table(ctx.get("modifiers", {}).get("rules", ()), "modifier rule", "[modifier, observation, result]"))
        self.modifier_findings = frozenset(ctx.get("modifiers", {}).get("also_findings", ()))
        self.companion_rules.update(_rule_table(ctx.get("companions", {}).get("rules", ()), "companion rule",
                                                "[observation, neighbouring observation, result]"))
        mimics = ctx.get("mimics", {})
        self.mimics = frozenset(mimics.get("mimics", ()))
        self.mimic_findings = frozenset(mimics.get("findings", ()))
        self.contextual.update(_rule_table(ctx.get("rules", ()), "contextual rule", "[observation, anatomy, result]"))
        self.implies = {k: tuple(v) for k, v in normal.get("implies", {}).items() if k != "comment"}
        self.scopes = {k: tuple(v) for k, v in normal.get("scopes", {}).items() if k != "comment"}
        self.umbrella = normal.get("umbrella", self.umbrella)
        self.acute_umbrella = normal.get("acute_umbrella", self.acute_umbrella)
        self.default_anatomy = normal.get("default_anatomy", self.default_anatomy)
        self.change_norms = frozenset(k for k in d.get("change", {}) if k != "comment")
        self.severity_norms = frozenset(k for k in d.get("severity", {}) if k != "comment")
        # Observation phrases that begin or end with an anatomy phrase are split in two.
        anat = {toks: [e for e in es if e.cat == ANAT] for toks, es in self.phrases.items()}
        for toks, entries in self.phrases.items():
            for k, e in enumerate(entries):
                if e.cat != OBS or len(toks) < 2:
                    continue
                split = None
                for n in range(len(toks) - 1, 0, -1):
                    if anat.get(toks[:n]):
                        split = (n, anat[toks[:n]][0].norm, "pre")
                        break
                    if anat.get(toks[-n:]):
                        split = (n, anat[toks[-n:]][0].norm, "post")
                        break
                if split:
                    entries[k] = Entry(e.cat, e.norm, e.laterality, split)
        by_first: dict[str, list[tuple[tuple[str, ...], list[Entry]]]] = {}
        for toks, entries in self.phrases.items():
            by_first.setdefault(toks[0], []).append((toks, entries))
        for lst in by_first.values():
            lst.sort(key=lambda x: -len(x[0]))
        self.by_first = by_first
        self._lengths = {w: tuple(sorted({len(t) for t, _ in lst}, reverse=True)) for w, lst in by_first.items()}

    # ---- lookups ----------------------------------------------------------------------
    def match(self, words: Sequence[str]) -> list[tuple[int, int, list[Entry]]]:
        """Greedy longest-match of lexicon phrases over ``words``: (i, j, entries)."""
        out = []
        i, n = 0, len(words)
        lengths = self._lengths
        phrases = self.phrases
        while i < n:
            ks = lengths.get(words[i])
            if ks is not None:
                for k in ks:  # the phrases starting with this word, by length, longest first
                    if i + k <= n:
                        entries = phrases.get(tuple(words[i : i + k]))
                        if entries is not None:
                            out.append((i, i + k, entries))
                            i += k
                            break
                else:
                    i += 1
            else:
                i += 1
        return out

    def entries(self, text: str) -> tuple[Entry, ...]:
        """All entries of a whole phrase (cached by text)."""
        got = self._entries_cache.get(text)
        if got is None:
            if len(self._entries_cache) > 100_000:
                self._entries_cache.clear()
            got = self._entries_cache[text] = tuple(self.phrases.get(phrase_tokens(text), ()))
        return got

    def lookup(self, text: str, cat: str | None = None) -> Entry | None:
        """The entry of a whole phrase (e.g. an entity text from another extractor)."""
        for e in self.entries(text):
            if cat is None or e.cat == cat:
                return e
        return None

    def normalize(self, text: str, cat: str | None = None) -> str | None:
        """Normal form of a phrase; tries the last word too ("large effusion" -> pleural effusion)."""
        e = self.lookup(text, cat)
        if e is None:
            toks = phrase_tokens(text)
            if len(toks) > 1:
                for m in reversed(self.match(toks)):
                    for cand in m[2]:
                        if cat is None or cand.cat == cat:
                            return cand.norm
        return e.norm if e else None

    def completed_zone(self, word: str, head: Sequence[str]) -> Entry | None:
        """The zone anatomy an elided zone word stands for: ``word`` completed with the head
        tokens of the zone phrase it is coordinated with ("middle" + ("lobe",) -> the
        "middle lobe" entry), or None when that phrase is no zone anatomy of the lexicon."""
        for e in self.phrases.get((word, *head), ()):
            if e.cat == ANAT and e.norm in self.zone:
                return e
        return None

    def specific(self, observation: str, anatomy: str | None) -> str:
        """The contextual observation ('enlargement' at 'heart' -> 'cardiomegaly')."""
        if anatomy is None:
            return observation
        return self.contextual.get((observation, anatomy), observation)

    def implied(self, anatomy: str) -> tuple[str, ...]:
        """Specific findings a normal statement about ``anatomy`` denies."""
        return self.implies.get(anatomy, ())

    def denied_by(self, predicate: str, anatomy: str | None) -> tuple[str, ...]:
        """Findings a specific normal predicate ("well expanded", "intact") denies about
        ``anatomy``: its list, narrowed to the anatomy's implied findings when they share any."""
        listed = self.specific_normal.get(predicate, ())
        if anatomy is None:
            return listed
        narrowed = tuple(f for f in listed if f in self.implies.get(anatomy, ()))
        return narrowed or listed

    def scope(self, anatomy: str | None) -> tuple[str | None, ...]:
        """Anatomy scopes of the umbrella finding of a normal statement about ``anatomy``."""
        if anatomy is None:
            return (None,)
        if anatomy in self.scopes:
            return self.scopes[anatomy]
        return (anatomy,)


def _spec(spec: Any, section: str, key: str) -> Mapping[str, Any]:
    if isinstance(spec, list):
        return {"synonyms": spec}
    if not isinstance(spec, Mapping):
        raise ReportgenError("E211", f"lexicon {section}[{key!r}] must be an object or a list of synonyms", fix="see docs/lexicon.md")
    return spec


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(extra, list):
        if base and isinstance(base[0], list):  # contextual rules: later ones win
            return base + [x for x in extra if x not in base]
        return base + [x for x in extra if x not in base]
    return extra


_JSON_NAMES = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "true/false"}


@lru_cache(maxsize=1)
def _default_sections() -> dict[str, type]:
    """Top-level section -> JSON type, as the packaged lexicon has them."""
    data = json.loads(DEFAULT_LEXICON.read_text(encoding="utf-8"))
    return {k: type(v) for k, v in data.items()}


def read_lexicon_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        what = "is a folder, not a file" if p.is_dir() else "not found"
        raise ReportgenError("E210", f"lexicon file {p} {what}", fix="give the path of a JSON lexicon (docs/lexicon.md)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportgenError("E211", f"lexicon file {p} is not valid JSON: {e}", fix="fix the file (docs/lexicon.md)") from None
    if not isinstance(data, dict) or "version" not in data:
        raise ReportgenError("E211", f"lexicon file {p} must be a JSON object with a \"version\" key", fix="see docs/lexicon.md")
    sections = _default_sections()
    for key, value in data.items():  # a misspelt section was merged and never read; a wrong type raised AttributeError
        if key in ("comment", "version"):
            continue
        if key not in sections:
            raise ReportgenError("E211", f"lexicon file {p}: unknown section {key!r}",
                                 fix=f"use the sections of docs/lexicon.md: {', '.join(sorted(sections))}")
        if not isinstance(value, sections[key]):
            raise ReportgenError("E211", f"lexicon file {p}: section {key!r} must be a JSON {_JSON_NAMES[sections[key]]}, "
                                 f"got {type(value).__name__}", fix="see docs/lexicon.md")
    for section in ("observations", "anatomy"):  # {norm: [synonyms]} is short for {norm: {"synonyms": [...]}}
        entries = data.get(section)
        if isinstance(entries, dict):
            data[section] = {k: ({"synonyms": v} if isinstance(v, list) else v) for k, v in entries.items()}
    return data


@lru_cache(maxsize=16)
def _load(paths: tuple[str, ...], mode: str) -> Lexicon:
    if mode not in ("merge", "replace"):
        raise ReportgenError("E212", f"unknown lexicon mode {mode!r}", fix="use 'merge' or 'replace'")
    files = list(paths)
    if mode == "merge" or not files:
        files = [str(DEFAULT_LEXICON), *files]
    data: dict[str, Any] = {}
    for f in files:
        data = _merge(data, read_lexicon_file(f)) if data else read_lexicon_file(f)
    versions = [str(read_lexicon_file(f)["version"]) for f in files] if len(files) > 1 else [str(data["version"])]
    lex = Lexicon(data=data, version="+".join(versions), sources=tuple(files))
    lex._build()
    return lex


@lru_cache(maxsize=1)
def redaction_tokens() -> tuple[str, ...]:
    """The de-identification tokens of checking.json ("XXXX"), as written there."""
    data = json.loads((DATA / "checking.json").read_text(encoding="utf-8"))
    return tuple(data.get("exception_cues", {}).get("redaction_tokens", ()))


def load_lexicon(path: str | Path | Iterable[str | Path] | None = None, mode: str = "merge") -> Lexicon:
    """The default lexicon, with user lexicon file(s) merged in or replacing it. Cached."""
    if path is None:
        paths: tuple[str, ...] = ()
    elif isinstance(path, (str, Path)):
        paths = (str(Path(path).resolve()),)
    else:
        paths = tuple(str(Path(p).resolve()) for p in path)
    return _load(paths, mode)
