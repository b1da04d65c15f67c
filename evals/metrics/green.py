"""GREEN-style error counts from finding differences, and the hallucination rate.

GREEN (Ostmeier et al. 2024) asks an LLM to count clinically significant errors of a
candidate report against its reference in six categories, and scores
``matched / (matched + errors)`` (0 when nothing matched). Here the counts are derived
deterministically from the two reports' findings (lexicon normal forms):

- false finding: a positive (present or hedged) candidate finding whose observation the
  reference does not state as positive;
- missed finding: a positive reference finding whose observation the candidate does not
  state as positive;
- wrong location: both positive, but no reference mention agrees on side and zone
  (a side or zone on one side only is no error);
- wrong severity: side and zone agree, severities differ (both given);
- false comparison: a candidate finding with a comparison with a prior study ("new",
  "improved", "unchanged": the groups of ``evals/data/green.json``) where the matched
  reference finding states none or another one;
- missed comparison: a matched reference finding with a comparison the candidate does
  not state. Temporal words that are no comparison ("acute", "chronic") never count.

Matched findings are candidate findings (positive or negative) agreeing with a reference
finding on observation and presence with no location or severity error, so two normal
reports match on their negatives ("no pneumothorax" = "no pneumothorax"). Findings are
de-duplicated first (the same finding in findings and impression counts once).

Hallucination rate: (unsupported + contradicted claims) / all claims with a verdict
(claims the checker failed on, status "error", are left out), per report, pooled over the
corpus (``hallucination_rate`` on all statuses) and as the mean of per-report rates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from reportgen.errors import ReportgenError
from reportgen.types import FLAGGED, Finding

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "green.json"

GREEN_CATEGORIES = ("false_finding", "missed_finding", "wrong_location", "wrong_severity", "false_comparison", "missed_comparison")


@dataclass(frozen=True)
class GreenCounts:
    false_finding: int = 0
    missed_finding: int = 0
    wrong_location: int = 0
    wrong_severity: int = 0
    false_comparison: int = 0
    missed_comparison: int = 0
    matched: int = 0

    @property
    def errors(self) -> int:
        return sum(getattr(self, c) for c in GREEN_CATEGORIES)

    @property
    def score(self) -> float:
        """GREEN: matched / (matched + errors); 0 when nothing matched."""
        return self.matched / (self.matched + self.errors) if self.matched else 0.0

    def to_dict(self) -> dict[str, float | int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["errors"] = self.errors
        out["green"] = self.score
        return out

    def __add__(self, other: "GreenCounts") -> "GreenCounts":
        return GreenCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _positive(f: Finding) -> bool:
    return f.presence != "absent"


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[tuple, Finding] = {}
    for f in findings:
        if f.presence == "hypothetical":  # a request ("evaluate for pneumonia") is no finding
            continue
        key = (f.observation, _positive(f), f.presence, f.laterality, tuple(sorted(f.locations)), f.severity, f.change)
        seen.setdefault(key, f)
    return list(seen.values())


def _same_place(a: Finding, b: Finding) -> bool:
    if a.laterality and b.laterality and a.laterality != b.laterality and "bilateral" not in (a.laterality, b.laterality):
        return False
    if a.locations and b.locations and not set(a.locations) & set(b.locations):
        return False
    return True


def green_counts(candidate: Sequence[Finding], reference: Sequence[Finding]) -> GreenCounts:
    """GREEN-style error counts of a candidate report's findings against the reference's.

    One candidate finding can carry several errors: a wrong location, a wrong severity and a
    wrong comparison are counted independently (a severity error no longer hides a
    comparison error). A positive finding is matched when it has neither a location nor a
    severity error; comparison errors are counted for every candidate finding whose
    observation the reference states with the same presence."""
    cand, ref = _dedupe(candidate), _dedupe(reference)
    n = dict.fromkeys(GREEN_CATEGORIES, 0)
    matched = 0
    for c in cand:
        same = [r for r in ref if r.observation == c.observation and _positive(r) == _positive(c)]
        if not _positive(c):
            if same:
                matched += 1
                _comparison(c, same, n)
            continue
        if not same:
            n["false_finding"] += 1
            continue
        placed = [r for r in same if _same_place(c, r)]
        located = bool(placed)
        if not located:
            n["wrong_location"] += 1
        # Severity against the mentions at the same place, else against every mention.
        pool = placed or same
        sized = [r for r in pool if not (c.severity and r.severity and c.severity != r.severity)]
        if not sized:
            n["wrong_severity"] += 1
        if located and sized:
            matched += 1
        _comparison(c, sized or pool, n)
    cand_positive = {c.observation for c in cand if _positive(c)}
    n["missed_finding"] = sum(1 for r in ref if _positive(r) and r.observation not in cand_positive)
    return GreenCounts(**n, matched=matched)


@lru_cache(maxsize=4)
def change_groups(path: str | None = None) -> Mapping[str, str]:
    """Change word -> its group, from ``evals/data/green.json``."""
    p = Path(path) if path else DATA_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportgenError("E430", f"cannot read {p}: {exc}", fix="check the file is valid JSON") from None
    return {w.lower(): g for g, words in data.get("change_groups", {}).items() for w in words}


@lru_cache(maxsize=4)
def _trailing_settings(path: str | None = None) -> tuple[re.Pattern, re.Pattern]:
    """(comparison word pattern, clause start pattern) for ``with_trailing_comparisons``."""
    p = Path(path) if path else DATA_PATH
    data = json.loads(p.read_text(encoding="utf-8"))
    words = sorted(change_groups(path), key=len, reverse=True)
    trailing = data.get("trailing_comparison", {})
    words += [w.lower() for w in trailing.get("extra_words", {})]
    word_re = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + r")\b", re.I)
    lead = re.compile(trailing.get("clause_start", r"^\s*,\s*"))
    return word_re, lead


def with_trailing_comparisons(text: str, findings: Sequence[Finding], end: int | None = None) -> list[Finding]:
    """Findings of one claim, each given the comparison stated right after it behind a comma
    ("Moderate pulmonary edema, worsened since prior": change "worsened") when the finding
    itself states none. Finding offsets index ``text`` (the report); the text searched runs
    from the finding's end to the next finding of the claim, or to ``end`` (the claim's
    end), and must start with a comma (``green.json`` ``trailing_comparison``)."""
    stop = len(text) if end is None else end
    first_end = min((f.end for f in findings if f.end is not None), default=None)
    if first_end is None or "," not in text[first_end:stop]:  # no comma after a finding: nothing to attach
        return list(findings)
    word_re, lead = _trailing_settings()
    starts = sorted({f.start for f in findings if f.start is not None})
    out = []
    for f in findings:
        if _comparison_group(f.change) or f.end is None:
            out.append(f)
            continue
        nxt = next((s for s in starts if s >= f.end), stop)
        seg = text[f.end:min(nxt, stop)]
        m = word_re.search(seg) if lead.match(seg) else None
        out.append(replace(f, change=m.group(1).lower()) if m else f)
    return out


def _comparison_group(change: str | None) -> str | None:
    """The comparison a change word states, or None (no change, or "acute"/"chronic")."""
    if not change:
        return None
    return change_groups().get(change.lower()) or _extra_words().get(change.lower())


@lru_cache(maxsize=1)
def _extra_words() -> Mapping[str, str]:
    data = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    return {w.lower(): g for w, g in data.get("trailing_comparison", {}).get("extra_words", {}).items()}


def _comparison(c: Finding, refs: Sequence[Finding], n: dict[str, int]) -> None:
    """Comparison errors of a matched candidate finding against its reference mentions."""
    mine = _comparison_group(c.change)
    theirs = {g for r in refs if (g := _comparison_group(r.change))}
    if mine and mine not in theirs:
        n["false_comparison"] += 1
    elif not mine and theirs:
        n["missed_comparison"] += 1


@dataclass(frozen=True)
class HallucinationRate:
    flagged: int
    total: int

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else float("nan")

    def to_dict(self) -> dict[str, float | int | None]:
        return {"flagged": self.flagged, "total": self.total, "rate": None if not self.total else self.rate}


def hallucination_rate(statuses: Iterable[str]) -> HallucinationRate:
    """(unsupported + contradicted) / claims with a verdict, over the given claim statuses."""
    flagged = total = 0
    for s in statuses:
        if s == "error":
            continue
        total += 1
        flagged += s in FLAGGED
    return HallucinationRate(flagged, total)
