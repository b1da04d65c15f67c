"""Error-injection benchmark from the public IU reports (open, ReXErr-like).

``build_benchmark`` takes reference reports and, for a seed and a rate, injects errors of
six categories into copies of them, recording every injected span:

- ``negation_flip``: a negative sentence made positive ("There is no pleural effusion." ->
  "There is pleural effusion.") or a positive one negative ("Mild cardiomegaly." ->
  "No mild cardiomegaly.");
- ``laterality_swap``: right <-> left in a positive finding sentence;
- ``fabricated_finding``: a finding sentence the report does not mention is inserted;
- ``omitted_finding``: a positive finding sentence is removed (the removed reference
  sentence is recorded with its reference offsets);
- ``severity_change``: mild -> severe, small -> large, ... in a positive finding sentence;
- ``location_change``: upper <-> lower, apex <-> base, ... in a positive finding sentence.

Every eligible sentence is perturbed independently with probability ``rate`` (a
fabricated sentence is inserted after a sentence with that probability), so a report may
carry several errors or none (the untouched reports and sentences measure false flags).
Randomness is ``random.Random(f"{seed}:{category}:{report id}")``: a report's errors do
not depend on which other reports are in the run. The vocabulary (finding terms,
negation cues, rewrite rules, fabricated sentences) is the data file
``evals/data/injection.json``; sentences are the checker's own (``split_sentences``: the
claim splitter's sections and sentences, so a list number "1." is not part of its
sentence; from benchmark 1.3).

Scoring (``score_run``): a checker's claim flags (status contradicted or unsupported) are
compared with the labels at sentence level. A claim belongs to the sentence holding its
start offset. An injected sentence is detected when at least one of its claims is
flagged; for omissions the checker is run the other way round (reference claims against
the perturbed report) and an omission is detected when a claim of the removed reference
sentence is flagged. Per category:

- recall = detected errors / injected errors;
- precision = flagged claims in injected sentences / all flagged claims, where the flags
  on untouched sentences come from the same run (by default each category is a run of its
  own, ``mode="separate"``, so precision is well defined per category; ``mode="mixed"``
  injects all categories into one corpus and gives precision only overall);
- F1 of the two, and the false-flag rate: flagged claims / claims on untouched sentences.
"""

from __future__ import annotations

import json
import random
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from reportgen.checkers.claims import report_sentences, split_sections
from reportgen.errors import ReportgenError
from reportgen.types import FLAGGED

DATA_PATH = Path(__file__).resolve().parent / "data" / "injection.json"
CATEGORIES = ("negation_flip", "laterality_swap", "fabricated_finding", "omitted_finding", "severity_change", "location_change")
REVERSE = ("omitted_finding",)
FLAGS = FLAGGED


# --- vocabulary ------------------------------------------------------------------------------

def _word_re(words: Iterable[str]) -> re.Pattern[str]:
    alts = sorted(words, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in alts) + r")\b", re.I)


@dataclass(frozen=True)
class Vocabulary:
    version: str
    finding: re.Pattern[str]
    negation: re.Pattern[str]
    to_positive: tuple[tuple[re.Pattern[str], str], ...]
    there_is: re.Pattern[str]
    there_is_replace: str
    negative_prefix: str
    laterality: Mapping[str, str]
    severity: Mapping[str, str]
    location: Mapping[str, str]
    fabricated: tuple[tuple[str, tuple[str, ...]], ...]
    list_number: re.Pattern[str] | None = None  # a list number the prefix goes after ("2. No ...")
    prefix_skip: re.Pattern[str] | None = None  # sentences the prefix would not make a negative sentence of
    fabricated_after: re.Pattern[str] | None = None  # a sentence end after which a sentence may be inserted
    fabricated_not_after: re.Pattern[str] | None = None
    # laterality swaps that are not errors (vocabulary 1.2): a side word before a finding
    # term elsewhere in the reference states it there too; pairs that only change order
    side_stated: re.Pattern[str] | None = None  # a side or bilateral word, then words, then a finding term
    side_pair: re.Pattern[str] | None = None  # "right and left": swapping keeps the meaning
    laterality_re: re.Pattern[str] = field(repr=False, default=None)  # type: ignore[assignment]
    severity_re: re.Pattern[str] = field(repr=False, default=None)  # type: ignore[assignment]
    location_re: re.Pattern[str] = field(repr=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "laterality_re", _word_re(self.laterality))
        object.__setattr__(self, "severity_re", _word_re(self.severity))
        object.__setattr__(self, "location_re", _word_re(self.location))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Vocabulary":
        return _load_vocab(str(path or DATA_PATH))


@lru_cache(maxsize=4)
def _load_vocab(path: str) -> Vocabulary:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        neg = d["negation_flip"]
        to_neg = neg["to_negative"]
        after = d.get("fabricated_after") or {}

        def opt(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern, re.I) if pattern else None

        return Vocabulary(
            version=str(d["version"]),
            finding=_word_re(d["finding_terms"]),
            negation=re.compile("|".join(d["negation_cues"]), re.I),
            to_positive=tuple((re.compile(r["pattern"], re.I), r["replace"]) for r in neg["to_positive"]),
            there_is=re.compile(neg["to_negative"]["there_is"], re.I),
            there_is_replace=neg["to_negative"]["there_is_replace"],
            negative_prefix=neg["to_negative"]["prefix"],
            laterality={k.lower(): v for k, v in d["laterality_swap"].items()},
            severity={k.lower(): v for k, v in d["severity_change"].items()},
            location={k.lower(): v for k, v in d["location_change"].items()},
            fabricated=tuple((f["text"], tuple(a.lower() for a in f.get("avoid", ()))) for f in d["fabricated"]),
            list_number=opt(to_neg.get("list_number")), prefix_skip=opt(to_neg.get("prefix_skip")),
            fabricated_after=opt(after.get("ends")), fabricated_not_after=opt(after.get("not_ends")),
            side_stated=_side_stated_re(d), side_pair=opt((d.get("laterality_swap_skip") or {}).get("pair")),
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, re.error) as exc:
        raise ReportgenError("E450", f"cannot read the injection vocabulary {path}: {exc!r}", fix="check evals/data/injection.json") from None


def _side_stated_re(d: Mapping) -> re.Pattern[str] | None:
    skip = d.get("laterality_swap_skip") or {}
    sides = list(d["laterality_swap"]) + list(skip.get("bilateral_words", ()))
    if not skip or not sides:
        return None
    gap = int(skip.get("max_words_between", 4))
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in sides) + r")\b((?:[ \t,/-]+[\w-]+){0," + str(gap) + r"}?)[ \t,/-]+("
                      + "|".join(re.escape(w) for w in sorted(d["finding_terms"], key=len, reverse=True)) + r")(?:s|es)?\b", re.I)


def _stem(term: str) -> str:
    return re.sub(r"(ies|y|es|s)$", "", term.lower())


def _side_phrases(v: Vocabulary, text: str) -> list[tuple[str, tuple[str, ...], str, frozenset[str]]]:
    """(side or bilateral word, the words between it and a finding term, the term's stem,
    the severity words among the three words before the side) of each phrase of ``text``."""
    out = []
    for m in v.side_stated.finditer(text):  # type: ignore[union-attr]
        between = tuple(w for w in re.split(r"[ \t,/-]+", m.group(2).lower()) if w and w != "xxxx")
        if re.search(r"[.;:]", m.group(2)):
            continue
        before = re.split(r"\s+", text[max(0, m.start() - 40): m.start()].lower())[-4:]
        out.append((m.group(1).lower(), between, _stem(m.group(3)), frozenset(w for w in before if w in v.severity)))
    return out


def _swap_not_an_error(v: Vocabulary, text: str, s: "Sentence", stext: str) -> bool:
    """Vocabulary 1.2: a laterality swap that is no error. (1) Every side word of the
    sentence stands in a pair ("the right and left XXXX"): swapping only changes the order.
    (2) The sentence names one side, and elsewhere the reference states each of the
    sentence's side phrases (side, the same words, the same finding term, the same severity
    words before it) on the side the swap moves it to, or on both sides ("moderate right
    pleural effusion" swapped to left in a report that also says "moderate layering left
    pleural effusion"; "left pleural effusion" in one that says "bilateral pleural
    effusions"): the swapped sentence is true of the report. Sentences that name both
    sides are always swapped ("left upper lobe and right lower lobe" -> "right upper lobe
    and left lower lobe" is an error)."""
    sides = [m.group(0).lower() for m in v.laterality_re.finditer(stext)]
    if v.side_pair is not None and sides:
        rest = v.side_pair.sub(" ", stext)
        if not v.laterality_re.search(rest):
            return True
    if v.side_stated is None or len(set(sides)) != 1:
        return False
    target = v.laterality[sides[0]]
    mine = [p for p in _side_phrases(v, stext) if p[0] == sides[0]]
    if not mine or len(mine) != len(sides):
        return False  # a side word that no finding term follows: no phrase to look for
    elsewhere = {(side == target or side not in v.laterality, between, term, sev)
                 for side, between, term, sev in _side_phrases(v, text[: s.start] + " . " + text[s.end:])}
    return all((True, between, term, sev) in elsewhere for _, between, term, sev in mine)


# --- sentences -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    section: int  # index of its section in the report's sections


def split_sentences(text: str) -> list[Sentence]:
    """Sentence spans of ``text`` as the checker reads them (benchmark 1.3): the claim
    splitter's sections and sentences (``reportgen.checkers.claims.report_sentences``:
    headings such as "FINDINGS:" excluded, context sections such as INDICATION left out, a
    list number "1." not part of its sentence)."""
    return [Sentence(a, b, k) for k, a, b in report_sentences(split_sections(text))]


# --- edits -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Injection:
    """One injected error. ``start``/``end``: the sentence in the perturbed text (for an
    omission: the empty span where the sentence was); ``edit_start``/``edit_end``: the
    changed characters in the perturbed text; ``ref_start``/``ref_end``: the reference
    sentence it came from (for a fabricated sentence: the empty span where it was put)."""

    category: str
    start: int
    end: int
    edit_start: int
    edit_end: int
    ref_start: int
    ref_end: int
    original: str
    text: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class InjectedReport:
    id: str
    reference: str
    perturbed: str
    injections: tuple[Injection, ...]
    sentences: tuple[tuple[int, int, str | None], ...]  # perturbed text: (start, end, category | None)
    ref_sentences: tuple[tuple[int, int, str | None], ...]  # reference text, same labels

    def to_dict(self) -> dict:
        return {
            "id": self.id, "reference": self.reference, "report": self.perturbed,
            "injections": [i.to_dict() for i in self.injections],
            "sentences": [list(s) for s in self.sentences], "ref_sentences": [list(s) for s in self.ref_sentences],
        }


@dataclass(frozen=True)
class _Edit:
    ref_a: int
    ref_b: int
    new: str
    category: str
    rel_edit: tuple[int, int]  # the changed part, relative to ``new``
    sentence: tuple[int, int]  # the sentence, relative to ``new``


def _match_case(src: str, new: str) -> str:
    if src[:1].isupper() and new[:1].islower():
        return new[:1].upper() + new[1:]
    return new


def _sub_first(pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], s: str) -> tuple[str, int, int] | None:
    m = pattern.search(s)
    if not m:
        return None
    new_part = m.expand(repl) if isinstance(repl, str) else repl(m)
    new_part = _match_case(m.group(0), new_part)
    out = s[: m.start()] + new_part + s[m.end():]
    if m.start() == 0:
        out = _match_case(s, out)
    return out, m.start(), m.start() + len(new_part)


def _positive_finding(v: Vocabulary, s: str) -> bool:
    return bool(v.finding.search(s)) and not v.negation.search(s)


def _negation_flip(v: Vocabulary, s: str) -> tuple[str, int, int] | None:
    if v.negation.search(s):
        for pat, repl in v.to_positive:
            r = _sub_first(pat, repl, s)
            if r and r[0] != s:
                return r
        return None
    if not v.finding.search(s):
        return None
    r = _sub_first(v.there_is, v.there_is_replace, s)
    if r:
        return r
    if v.prefix_skip is not None and v.prefix_skip.search(s):
        return None
    m = v.list_number.match(s) if v.list_number is not None else None
    at = m.end() if m else 0
    rest = s[at:]
    first = rest[:1].lower() + rest[1:] if not rest[:2].isupper() else rest
    return s[:at] + v.negative_prefix + first, at, at + len(v.negative_prefix)


def _swap_all(mapping: Mapping[str, str], pattern: re.Pattern[str], s: str) -> tuple[str, int, int] | None:
    ms = list(pattern.finditer(s))
    if not ms:
        return None
    parts, pos, first, last = [], 0, None, 0
    for m in ms:
        new = _match_case(m.group(0), mapping[m.group(0).lower()])
        parts.append(s[pos: m.start()])
        start = sum(len(p) for p in parts)
        first = start if first is None else first
        parts.append(new)
        last = start + len(new)
        pos = m.end()
    parts.append(s[pos:])
    return "".join(parts), first or 0, last


def _rewrite(v: Vocabulary, category: str, s: str) -> tuple[str, int, int] | None:
    if category == "negation_flip":
        return _negation_flip(v, s)
    if not _positive_finding(v, s):
        return None
    if category == "laterality_swap":
        return _swap_all(v.laterality, v.laterality_re, s)
    if category == "severity_change":
        return _sub_first(v.severity_re, lambda m: v.severity[m.group(0).lower()], s)
    if category == "location_change":
        return _sub_first(v.location_re, lambda m: v.location[m.group(0).lower()], s)
    raise AssertionError(category)  # pragma: no cover - callers pass rewrite categories only


def inject_report(report_id: str, text: str, *, seed: int, rate: float, categories: Sequence[str] = CATEGORIES,
                  vocab: Vocabulary | None = None) -> InjectedReport:
    """Inject errors of ``categories`` into one reference report (see the module docstring).
    With several categories, a sentence drawn for an error gets one of those that apply to it."""
    v = vocab or Vocabulary.load()
    bad = [c for c in categories if c not in CATEGORIES]
    if bad or not categories:
        raise ReportgenError("E451", f"unknown injection categories {bad or categories}", fix=f"use some of {', '.join(CATEGORIES)}")
    if not 0.0 <= rate <= 1.0:
        raise ReportgenError("E452", f"rate {rate} is not a probability", fix="use a rate between 0 and 1")
    rng = random.Random(f"{seed}:{'+'.join(categories)}:{report_id}")
    sents = split_sentences(text)
    per_section: dict[int, int] = {}
    for s in sents:
        per_section[s.section] = per_section.get(s.section, 0) + 1
    lower = text.lower()
    used_fab: set[str] = set()
    edits: list[_Edit] = []
    omitted = 0
    for k, s in enumerate(sents):
        if rng.random() >= rate:
            continue
        stext = text[s.start: s.end]
        options = []
        for c in categories:
            if c == "fabricated_finding":
                if (v.fabricated_after is not None and not v.fabricated_after.search(stext)) or (
                        v.fabricated_not_after is not None and v.fabricated_not_after.search(stext)):
                    continue
                fabs = [f for f, avoid in v.fabricated if f not in used_fab and not any(a in lower for a in avoid)]
                if fabs:
                    options.append((c, fabs))
            elif c == "omitted_finding":
                if _positive_finding(v, stext) and per_section[s.section] > 1 and len(sents) - omitted > 1:
                    options.append((c, None))
            else:
                r = _rewrite(v, c, stext)
                if r and not (c == "laterality_swap" and _swap_not_an_error(v, text, s, stext)):
                    options.append((c, r))
        if not options:
            continue
        c, payload = options[rng.randrange(len(options))]
        if c == "fabricated_finding":
            fab = payload[rng.randrange(len(payload))]
            used_fab.add(fab)
            edits.append(_Edit(s.end, s.end, " " + fab, c, (1, 1 + len(fab)), (1, 1 + len(fab))))
        elif c == "omitted_finding":
            omitted += 1
            per_section[s.section] -= 1
            nxt = sents[k + 1] if k + 1 < len(sents) and sents[k + 1].section == s.section else None
            prev = sents[k - 1] if k > 0 and sents[k - 1].section == s.section else None
            a, b = (s.start, nxt.start) if nxt else (prev.end if prev else s.start, s.end)
            edits.append(_Edit(a, b, "", c, (0, 0), (0, 0)))
        else:
            new, ea, eb = payload
            edits.append(_Edit(s.start, s.end, new, c, (ea, eb), (0, len(new))))
    return _apply(report_id, text, sents, edits)


def _apply(report_id: str, text: str, sents: Sequence[Sentence], edits: Sequence[_Edit]) -> InjectedReport:
    edits = sorted(edits, key=lambda e: (e.ref_a, e.ref_b))
    out, pos, delta = [], 0, 0
    shifts: list[tuple[int, int]] = []  # (reference offset, delta applying from there)
    injections: list[Injection] = []
    for e in edits:
        out.append(text[pos: e.ref_a])
        base = e.ref_a + delta
        out.append(e.new)
        if e.category == "fabricated_finding":
            ref_a = ref_b = e.ref_a
        elif e.category == "omitted_finding":
            sent = next(s for s in sents if e.ref_a <= s.start < e.ref_b or e.ref_a < s.end <= e.ref_b)
            ref_a, ref_b = sent.start, sent.end
        else:
            ref_a, ref_b = e.ref_a, e.ref_b
        injections.append(Injection(
            e.category, base + e.sentence[0], base + e.sentence[1], base + e.rel_edit[0], base + e.rel_edit[1],
            ref_a, ref_b, text[ref_a:ref_b], e.new.strip(),
        ))
        pos = e.ref_b
        delta += len(e.new) - (e.ref_b - e.ref_a)
        shifts.append((e.ref_b, delta))
    out.append(text[pos:])
    perturbed = "".join(out)

    def moved(x: int) -> int:
        d = 0
        for at, dd in shifts:
            if x >= at:
                d = dd
        return x + d

    by_ref = {(i.ref_start, i.ref_end): i for i in injections if i.category != "fabricated_finding"}
    sentences: list[tuple[int, int, str | None]] = []
    ref_sentences: list[tuple[int, int, str | None]] = []
    for s in sents:
        inj = by_ref.get((s.start, s.end))
        ref_sentences.append((s.start, s.end, inj.category if inj else None))
        if inj is None:
            sentences.append((moved(s.start), moved(s.end), None))
        elif inj.category != "omitted_finding":
            sentences.append((inj.start, inj.end, inj.category))
    sentences += [(i.start, i.end, i.category) for i in injections if i.category == "fabricated_finding"]
    sentences.sort()
    return InjectedReport(report_id, text, perturbed, tuple(injections), tuple(sentences), tuple(ref_sentences))


def build_benchmark(reports: Iterable[tuple[str, str]], *, seed: int = 0, rate: float = 0.3,
                    categories: Sequence[str] = CATEGORIES, vocab: Vocabulary | None = None) -> list[InjectedReport]:
    """One perturbed copy of every ``(id, text)`` reference report."""
    v = vocab or Vocabulary.load()
    return [inject_report(rid, text, seed=seed, rate=rate, categories=categories, vocab=v) for rid, text in reports]


# --- scoring ---------------------------------------------------------------------------------

ClaimFlags = Sequence[tuple[int, int, str]]  # (start, end, status) of each claim of a checked text


@dataclass
class _Tally:
    errors: int = 0
    detected: int = 0
    tp_flags: int = 0


@dataclass(frozen=True)
class CategoryScore:
    category: str
    errors: int
    detected: int
    tp_flags: int
    fp_flags: int
    untouched_claims: int
    precision: float | None
    recall: float | None
    f1: float | None
    false_flag_rate: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunScore:
    """One run: per-category tallies, flags and claims on untouched sentences per direction."""

    tallies: Mapping[str, tuple[int, int, int]]  # category -> (errors, detected, flagged claims)
    fp_forward: int
    untouched_forward: int
    fp_reverse: int
    untouched_reverse: int


def _assign(sentences: Sequence[tuple[int, int, str | None]], claims: ClaimFlags) -> list[list[str]]:
    starts = [s[0] for s in sentences]
    out: list[list[str]] = [[] for _ in sentences]
    for a, b, status in claims:
        k = bisect_right(starts, a) - 1
        if k >= 0 and a < max(sentences[k][1], sentences[k][0] + 1):
            out[k].append(status)
    return out


def score_run(bench: Sequence[InjectedReport], forward: Sequence[ClaimFlags], reverse: Sequence[ClaimFlags] | None = None) -> RunScore:
    """Tally a checker's flags on one benchmark run. ``forward[i]``: claims of the perturbed
    report i checked against its reference; ``reverse[i]``: claims of the reference checked
    against the perturbed report (needed for omissions)."""
    if len(forward) != len(bench) or (reverse is not None and len(reverse) != len(bench)):
        raise ReportgenError("E453", "one list of claim flags per benchmark report is needed", fix="check every report of the benchmark")
    t: dict[str, _Tally] = {}
    fp_f = un_f = fp_r = un_r = 0
    for k, rep in enumerate(bench):
        for (a, b, cat), statuses in zip(rep.sentences, _assign(rep.sentences, forward[k])):
            flags = sum(s in FLAGS for s in statuses)
            if cat is None:
                un_f += len(statuses)
                fp_f += flags
            else:
                tally = t.setdefault(cat, _Tally())
                tally.errors += 1
                tally.detected += flags > 0
                tally.tp_flags += flags
        if reverse is None:
            continue
        for (a, b, cat), statuses in zip(rep.ref_sentences, _assign(rep.ref_sentences, reverse[k])):
            flags = sum(s in FLAGS for s in statuses)
            if cat is None:
                un_r += len(statuses)
                fp_r += flags
            elif cat in REVERSE:
                tally = t.setdefault(cat, _Tally())
                tally.errors += 1
                tally.detected += flags > 0
                tally.tp_flags += flags
    return RunScore({c: (x.errors, x.detected, x.tp_flags) for c, x in t.items()}, fp_f, un_f, fp_r, un_r)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def category_score(category: str, run: RunScore, *, with_precision: bool = True) -> CategoryScore:
    errors, detected, tp = run.tallies.get(category, (0, 0, 0))
    fp, untouched = (run.fp_reverse, run.untouched_reverse) if category in REVERSE else (run.fp_forward, run.untouched_forward)
    p = _ratio(tp, tp + fp) if with_precision else None
    r = _ratio(detected, errors)
    f1 = (2 * p * r / (p + r) if (p + r) > 0 else 0.0) if p is not None and r is not None else None
    return CategoryScore(category, errors, detected, tp, fp, untouched, p, r, f1, _ratio(fp, untouched))


def run_benchmark(reports: Sequence[tuple[str, str]], check: Callable[[Sequence[tuple[str, str]]], list[ClaimFlags]], *,
                  seed: int = 0, rate: float = 0.3, categories: Sequence[str] = CATEGORIES, mode: str = "separate",
                  vocab: Vocabulary | None = None) -> tuple[list[CategoryScore], dict[str, list[InjectedReport]]]:
    """Build the benchmark and score ``check`` on it.

    ``check(pairs)`` gets ``(candidate text, reference text)`` pairs and returns the claim
    flags ``(start, end, status)`` of each candidate. Returns one CategoryScore per
    category (and one "all" row) and the benchmark runs (run name -> reports).
    """
    if mode not in ("separate", "mixed"):
        raise ReportgenError("E454", f"unknown mode {mode!r}", fix="use separate or mixed")
    runs = {c: [c] for c in categories} if mode == "separate" else {"mixed": list(categories)}
    rows: list[CategoryScore] = []
    benches: dict[str, list[InjectedReport]] = {}
    total = RunScore({}, 0, 0, 0, 0)
    for name, cats in runs.items():
        bench = build_benchmark(reports, seed=seed, rate=rate, categories=cats, vocab=vocab)
        benches[name] = bench
        fwd = check([(r.perturbed, r.reference) for r in bench])
        rev = check([(r.reference, r.perturbed) for r in bench]) if any(c in REVERSE for c in cats) else None
        run = score_run(bench, fwd, rev)
        rows += [category_score(c, run, with_precision=(mode == "separate")) for c in cats]
        total = _merge(total, run)
    all_errors = sum(r.errors for r in rows)
    tp = sum(r.tp_flags for r in rows)
    fp = total.fp_forward + total.fp_reverse
    p, r = _ratio(tp, tp + fp), _ratio(sum(x.detected for x in rows), all_errors)
    f1 = (2 * p * r / (p + r) if (p + r) > 0 else 0.0) if p is not None and r is not None else None
    untouched = total.untouched_forward + total.untouched_reverse
    rows.append(CategoryScore("all", all_errors, sum(x.detected for x in rows), tp, fp, untouched, p, r, f1, _ratio(fp, untouched)))
    return rows, benches


def _merge(a: RunScore, b: RunScore) -> RunScore:
    tallies = dict(a.tallies)
    for c, (e, d, t) in b.tallies.items():
        e0, d0, t0 = tallies.get(c, (0, 0, 0))
        tallies[c] = (e0 + e, d0 + d, t0 + t)
    return RunScore(tallies, a.fp_forward + b.fp_forward, a.untouched_forward + b.untouched_forward,
                    a.fp_reverse + b.fp_reverse, a.untouched_reverse + b.untouched_reverse)
