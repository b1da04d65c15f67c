"""The graph checker: compares each claim's findings with evidence findings.

Every claim gets one :class:`~reportgen.types.Verdict` whose reasons name the evidence
they compared with (``EvidenceItem.describe()``). The rules that decide what matches are
data (``checkers/data/checking.json``): severity levels, lung zone bands, change groups,
an observation hierarchy for normal statements, and the no-evidence policy per source.

How one claim finding ``c`` is judged against the evidence of one source:

1. ``c`` hedged ("may represent pneumonia") -> **uncertain**, whatever the evidence says
   (the reason still names the evidence that confirms or denies it).
2. The same observation with the opposite presence where the scopes overlap
   ("right effusion" vs "no pleural effusion") -> **contradicted** (presence flipped).
3. The same observation, same presence, no conflicting detail -> **supported**.
4. The same observation, both present, but a different side, lung zone, severity or
   direction of change -> **contradicted** (laterality / location / severity / change
   mismatch).
5. The same observation, hedged in the evidence -> **uncertain**.
6. A broader absent finding denies a narrower present one and vice versa ("no acute
   cardiopulmonary abnormality" vs "right pleural effusion"; "normal chest" vs any
   finding) -> **contradicted**.
7. A broader or narrower finding that agrees ("no pneumothorax" vs "no acute
   abnormality") -> **supported** (lower score).
8. Nothing comparable -> the source's no-evidence policy: reference reports are complete,
   so an unmentioned positive finding is **unsupported** and an unmentioned negative one
   **supported** by default (the CheXpert convention: not mentioned = absent); self and
   image evidence **abstain** (status uncertain, score None: other checkers decide).

Earlier rules win (a specific match beats a normal statement elsewhere). A claim with
several findings takes the worst of them (contradicted > unsupported > uncertain >
supported). A claim with no findings ("Comparison made to prior study") abstains: the
graph checker has nothing to compare. Several sources (reference and self) are judged
separately and combined the same way, abstentions dropped: a claim matched by the
reference but contradicted by its own impression is contradicted.

``Verdict.score`` is how strongly the evidence supports the claim, in [0, 1] (1 = matched
in every detail, 0 = contradicted or unsupported); None marks an abstention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import Claim, EvidenceItem, Finding, Verdict

RULES_PATH = Path(__file__).parent / "data" / "checking.json"
ABSTAIN = "abstain"
# Worst first: how verdicts of several findings, sources or checkers combine.
STATUS_ORDER = ("contradicted", "unsupported", "uncertain", "supported")
_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}
_BOTH = frozenset({"right", "left"})


@dataclass(frozen=True)
class CheckingRules:
    """The comparison rules, read from a versioned JSON file."""

    version: str
    severity_levels: Mapping[str, int]
    severity_tolerance: int
    zone_bands: Mapping[str, frozenset[str]]
    change_groups: Mapping[str, str]
    ancestors: Mapping[str, frozenset[str]]
    regions: Mapping[str, frozenset[str]]
    scopes: Mapping[str, frozenset[str] | None]
    no_evidence: Mapping[str, Mapping[str, str]]
    scores: Mapping[str, float]
    acute: str | None = None
    not_acute_changes: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CheckingRules":
        return _load_rules(str(path or RULES_PATH))

    @property
    def all_bands(self) -> frozenset[str]:
        return frozenset().union(*self.zone_bands.values()) if self.zone_bands else frozenset()

    def policy(self, source: str, presence: str) -> str:
        table = self.no_evidence.get(source) or self.no_evidence.get("default") or {}
        return table.get("absent" if presence == "absent" else "present", ABSTAIN)

    def is_broader(self, broad: str, narrow: str) -> bool:
        return broad in self.ancestors.get(narrow, ())

    def in_scope(self, broad: Finding, narrow: Finding) -> bool:
        """Whether a broader finding (a normal statement, often with an anatomy) speaks
        for a narrower one: "the lungs are clear" says nothing about the heart, and "no
        acute abnormality" nothing about a "stable" or "chronic" finding."""
        if broad.observation == self.acute and narrow.change in self.not_acute_changes:
            return False
        if broad.anatomy is None:
            return True
        scope = self.scopes.get(broad.anatomy, frozenset({broad.anatomy}))
        if scope is None:
            return True
        regions = self.regions.get(narrow.observation, frozenset())
        return bool(scope & regions) or narrow.anatomy in scope


@lru_cache(maxsize=4)
def _load_rules(path: str) -> CheckingRules:
    def bad(problem: str) -> ReportgenError:
        return ReportgenError("E330", f"checking rules {path}: {problem}", fix="fix the file or use the packaged checkers/data/checking.json")

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise bad(f"cannot be read ({e})") from e
    if not isinstance(raw, dict) or "version" not in raw:
        raise bad("needs a JSON object with a 'version' key")
    try:
        parents = {k: tuple(v) for k, v in raw["hierarchy"]["parents"].items()}
        ancestors: dict[str, frozenset[str]] = {}

        def up(obs: str, seen: tuple[str, ...] = ()) -> frozenset[str]:
            if obs in ancestors:
                return ancestors[obs]
            if obs in seen:
                raise bad(f"the hierarchy has a cycle through {obs!r}")
            out: set[str] = set()
            for p in parents.get(obs, ()):
                out.add(p)
                out |= up(p, seen + (obs,))
            ancestors[obs] = frozenset(out)
            return ancestors[obs]

        for obs in parents:
            up(obs)
        groups = {w: g for g, words in raw["change"]["groups"].items() for w in words}
        scopes = {
            k: (None if v is None else frozenset(v))
            for k, v in raw["regions"]["scopes"].items() if k != "comment"
        }
        no_ev = {k: dict(v) for k, v in raw["no_evidence"].items() if k != "comment"}
        for table in no_ev.values():
            for presence, choice in table.items():
                if choice not in (*STATUS_ORDER, ABSTAIN):
                    raise bad(f"no_evidence {presence!r} must be a status or 'abstain', not {choice!r}")
        return CheckingRules(
            version=str(raw["version"]),
            severity_levels=dict(raw["severity"]["levels"]),
            severity_tolerance=int(raw["severity"].get("tolerance", 0)),
            zone_bands={k: frozenset(v) for k, v in raw["zones"]["bands"].items()},
            change_groups=groups,
            ancestors=ancestors,
            regions={k: frozenset(v) for k, v in raw["regions"]["observations"].items()},
            scopes=scopes,
            no_evidence=no_ev,
            scores={k: float(v) for k, v in raw["scores"].items() if k != "comment"},
            acute=raw["hierarchy"].get("acute"),
            not_acute_changes=frozenset(raw["hierarchy"].get("not_acute_changes", {}).get("words", ())),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise bad(f"missing or malformed entry ({e!r})") from e


# --- describing findings -----------------------------------------------------------


def describe_finding(f: Finding) -> str:
    """A short human description: "small right lower lobe pleural effusion (present)"."""
    parts = [p for p in (f.severity, f.change, f.laterality, *f.locations, f.observation) if p]
    return f"{' '.join(parts)} ({f.presence})"


# --- scopes ----------------------------------------------------------------------


def _sides(f: Finding) -> frozenset[str] | None:
    if f.laterality is None:
        return None
    return _BOTH if f.laterality == "bilateral" else frozenset({f.laterality})


def _bands(rules: CheckingRules, f: Finding) -> frozenset[str] | None:
    """Lung bands a finding's locations lie in; None when it names no location,
    empty when it names only locations the rules do not place."""
    if not f.locations:
        return None
    out: set[str] = set()
    for loc in f.locations:
        out |= rules.zone_bands.get(loc, frozenset())
    return frozenset(out)


def _denies(rules: CheckingRules, absent: Finding, present: Finding) -> bool:
    """Whether an absent finding denies everything a present finding asserts."""
    denied_sides = _sides(absent) or _BOTH
    asserted = _sides(present)
    if asserted is None:
        side_ok = denied_sides == _BOTH
    elif present.laterality == "bilateral":
        side_ok = bool(denied_sides & _BOTH)
    else:
        side_ok = asserted <= denied_sides
    if not side_ok:
        return False
    d_bands = _bands(rules, absent)
    p_bands = _bands(rules, present)
    all_bands = rules.all_bands
    denied = all_bands if d_bands is None else d_bands
    if not p_bands:  # no placed location: asserts "somewhere"
        band_ok = denied == all_bands
    else:
        band_ok = p_bands <= denied
    if not band_ok:
        return False
    # "No large effusion" does not deny a small one.
    if absent.severity is not None:
        d_level = rules.severity_levels.get(absent.severity)
        p_level = rules.severity_levels.get(present.severity or "")
        if d_level is not None and (p_level is None or p_level < d_level):
            return False
    return True


def _overlaps(rules: CheckingRules, a: Finding, b: Finding) -> bool:
    """Whether two findings could speak about the same place (loose)."""
    sa, sb = _sides(a), _sides(b)
    if sa is not None and sb is not None and not sa & sb:
        return False
    ba, bb = _bands(rules, a), _bands(rules, b)
    return not (ba and bb and not ba & bb)


def _same_anatomy(a: Finding, b: Finding) -> bool:
    return a.anatomy is None or b.anatomy is None or a.anatomy == b.anatomy


# --- outcomes ----------------------------------------------------------------------

# Outcome ranks: lower wins (see the module docstring, rules 2-7).
_FLIP, _SUPPORT, _MISMATCH, _HEDGED, _BROAD_FLIP, _BROAD_SUPPORT, _BROAD_MISMATCH, _BROAD_HEDGED = range(8)


@dataclass(frozen=True)
class _Outcome:
    rank: int
    status: str
    score: float
    reason: str
    item: EvidenceItem


def _mismatches(rules: CheckingRules, c: Finding, e: Finding) -> tuple[list[str], list[str]]:
    """Both present: (conflicts, details the evidence does not confirm)."""
    conflicts: list[str] = []
    unconfirmed: list[str] = []
    if c.laterality and e.laterality:
        if c.laterality != e.laterality and e.laterality != "bilateral":
            conflicts.append(f"laterality mismatch (claim {c.laterality}, evidence {e.laterality})")
    elif c.laterality:
        unconfirmed.append("side")
    cb, eb = _bands(rules, c), _bands(rules, e)
    if cb and eb:
        if not cb & eb:
            conflicts.append(
                f"location mismatch (claim {', '.join(c.locations)}, evidence {', '.join(e.locations)})"
            )
    elif c.locations and not e.locations:
        unconfirmed.append("location")
    if c.severity and e.severity:
        lc, le = rules.severity_levels.get(c.severity), rules.severity_levels.get(e.severity)
        if lc is not None and le is not None and abs(lc - le) > rules.severity_tolerance:
            conflicts.append(f"severity mismatch (claim {c.severity}, evidence {e.severity})")
    elif c.severity:
        unconfirmed.append("severity")
    if c.change and e.change:
        gc, ge = rules.change_groups.get(c.change), rules.change_groups.get(e.change)
        if gc and ge and gc != ge:
            conflicts.append(f"change mismatch (claim {c.change}, evidence {e.change})")
    return conflicts, unconfirmed


def _said(what: str, e: Finding, item: EvidenceItem) -> str:
    return f"{what}: {item.describe()} says {describe_finding(e)}"


def _compare(rules: CheckingRules, c: Finding, e: Finding, item: EvidenceItem) -> _Outcome | None:
    """Compare a definite or hedged claim finding with one evidence finding."""
    sc = rules.scores
    if c.observation == e.observation:
        if not _same_anatomy(c, e):
            return None
        if e.presence == "uncertain":
            if not _overlaps(rules, c, e):
                return None
            return _Outcome(_HEDGED, "uncertain", sc["uncertain"], _said("hedged evidence", e, item), item)
        if c.presence != e.presence:
            absent, present = (c, e) if c.presence == "absent" else (e, c)
            if _denies(rules, absent, present):
                return _Outcome(_FLIP, "contradicted", sc["contradicted"], _said("presence flipped", e, item), item)
            return None
        if c.presence == "absent":
            if not _overlaps(rules, c, e):
                return None
            return _Outcome(_SUPPORT, "supported", sc["supported"], _said("matches", e, item), item)
        conflicts, unconfirmed = _mismatches(rules, c, e)
        if conflicts:
            return _Outcome(_MISMATCH, "contradicted", sc["contradicted"], _said('; '.join(conflicts), e, item), item)
        if unconfirmed:
            return _Outcome(
                _SUPPORT, "supported", sc["supported_broader"],
                _said("matches", e, item) + f"; the evidence does not give the {', '.join(unconfirmed)}", item,
            )
        return _Outcome(_SUPPORT, "supported", sc["supported"], _said("matches", e, item), item)
    # Related through the hierarchy: which one is broader?
    if rules.is_broader(e.observation, c.observation):
        broad, narrow, claim_broader = e, c, False
    elif rules.is_broader(c.observation, e.observation):
        broad, narrow, claim_broader = c, e, True
    else:
        return None
    if not rules.in_scope(broad, narrow):
        return None
    if e.presence == "uncertain":
        if not _overlaps(rules, c, e):
            return None
        return _Outcome(_BROAD_HEDGED, "uncertain", sc["uncertain"], _said("hedged evidence", e, item), item)
    if broad.presence == "absent":
        if narrow.presence == "present":
            if _denies(rules, broad, narrow):
                return _Outcome(_BROAD_FLIP, "contradicted", sc["contradicted"], _said("presence flipped", e, item), item)
            return None
        # Both absent: a broader negative implies the narrower one; a narrower negative
        # agrees with a broader one without proving it.
        if not _overlaps(rules, c, e):
            return None
        score = sc["supported_broader"] if claim_broader else sc["supported"]
        return _Outcome(_BROAD_SUPPORT, "supported", score, _said("agrees with", e, item), item)
    if narrow.presence != "present":  # "opacity" vs "no pneumonia": says nothing
        return None
    if claim_broader:  # claim "opacity", evidence "consolidation"
        conflicts, _ = _mismatches(rules, c, e)
        if conflicts:
            return _Outcome(_BROAD_MISMATCH, "contradicted", sc["contradicted"], _said('; '.join(conflicts), e, item), item)
        return _Outcome(_BROAD_SUPPORT, "supported", sc["supported_broader"], _said("agrees with the more specific", e, item), item)
    if _overlaps(rules, c, e):  # claim "pneumonia", evidence "opacity": not proven
        return _Outcome(_BROAD_HEDGED, "uncertain", sc["uncertain"], _said("less specific evidence", e, item), item)
    return None


# --- evidence index ------------------------------------------------------------------


class _Index:
    """Evidence findings of one source, by observation, for fast lookup."""

    def __init__(self, rules: CheckingRules, items: Sequence[EvidenceItem]):
        self.rules = rules
        self.items = tuple(items)
        self.by_obs: dict[str, list[tuple[EvidenceItem, Finding]]] = {}
        for item in items:
            for f in item.findings:
                self.by_obs.setdefault(f.observation, []).append((item, f))

    def candidates(self, f: Finding) -> Iterable[tuple[EvidenceItem, Finding]]:
        rules = self.rules
        yield from self.by_obs.get(f.observation, ())
        for broad in rules.ancestors.get(f.observation, ()):
            yield from self.by_obs.get(broad, ())
        for obs, pairs in self.by_obs.items():
            if obs != f.observation and f.observation in rules.ancestors.get(obs, ()):
                yield from pairs


def _own_sentence(claim: Claim, item: EvidenceItem) -> bool:
    """Whether a self-evidence item comes from the claim's own sentence."""
    cs = claim.sentence_start if claim.sentence_start is not None else claim.start
    ce = claim.sentence_end if claim.sentence_end is not None else claim.end
    meta = item.meta or {}
    s = meta.get("sentence_start", item.start)
    e = meta.get("sentence_end", item.end)
    return s < ce and cs < e or (s == cs and e == ce)


# --- judgements ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Judgement:
    status: str  # a verdict status or ABSTAIN
    score: float | None
    reasons: tuple[str, ...]
    items: tuple[EvidenceItem, ...]


def _judge_finding(rules: CheckingRules, source: str, c: Finding, pairs: Iterable[tuple[EvidenceItem, Finding]]) -> _Judgement:
    sc = rules.scores
    cd = describe_finding(c)
    hedged = c.presence == "uncertain"
    # A hedged claim is compared as if it were definite, to say what the evidence says
    # about it; its status stays uncertain.
    probe = replace(c, presence="present") if hedged else c
    outcomes = [o for item, e in pairs if (o := _compare(rules, probe, e, item)) is not None]
    if outcomes:
        best = min(o.rank for o in outcomes)
        chosen = sorted((o for o in outcomes if o.rank == best), key=lambda o: -o.score)[:3]
        top = chosen[0]
        items = _unique(o.item for o in chosen)
        if hedged:
            score = sc["uncertain_denied"] if top.status == "contradicted" else sc["uncertain"]
            return _Judgement("uncertain", score, tuple(f"uncertain: hedged claim {cd}; {o.reason}" for o in chosen), items)
        return _Judgement(top.status, top.score, tuple(dict.fromkeys(f"{top.status}: {cd}; {o.reason}" for o in chosen)), items)
    if hedged:
        return _Judgement("uncertain", sc["uncertain"], (f"uncertain: hedged claim {cd}; no {source} evidence mentions {c.observation}",), ())
    choice = rules.policy(source, c.presence)
    if choice == ABSTAIN:
        return _Judgement(ABSTAIN, None, (f"not checked: no {source} evidence mentions {c.observation}",), ())
    if choice == "supported":
        return _Judgement(
            "supported", sc["supported_by_default"],
            (f"supported by default: no {source} evidence mentions {c.observation}; an unmentioned finding is read as absent",), (),
        )
    return _Judgement(choice, sc.get(choice, sc["uncertain"]), (f"{choice}: no {source} evidence mentions {cd}",), ())


def _unique(items: Iterable[EvidenceItem]) -> tuple[EvidenceItem, ...]:
    """Evidence items in order, each once (items hold dicts, so by identity)."""
    seen: dict[int, EvidenceItem] = {}
    for i in items:
        seen.setdefault(id(i), i)
    return tuple(seen.values())


def combine(judgements: Sequence[_Judgement]) -> _Judgement:
    """Worst status wins (contradicted > unsupported > uncertain > supported); abstentions
    only count when every judgement abstains."""
    real = [j for j in judgements if j.status != ABSTAIN]
    if not real:
        reasons = tuple(dict.fromkeys(r for j in judgements for r in j.reasons))
        return _Judgement(ABSTAIN, None, reasons, ())
    worst = min(_RANK[j.status] for j in real)
    deciding = [j for j in real if _RANK[j.status] == worst]
    others = [j for j in real if _RANK[j.status] != worst]
    reasons = tuple(dict.fromkeys(r for j in deciding + others for r in j.reasons))
    items = _unique(i for j in deciding for i in j.items)
    scores = [j.score for j in real if j.score is not None]
    return _Judgement(STATUS_ORDER[worst], min(scores) if scores else None, reasons, items)


class GraphChecker:
    """Checks claims against evidence findings (reference, self, image, ...)."""

    name = "graph"

    def __init__(self, rules: CheckingRules | str | Path | None = None):
        self.rules = rules if isinstance(rules, CheckingRules) else CheckingRules.load(rules)

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]:
        by_source: dict[str, list[EvidenceItem]] = {}
        for item in evidence:
            by_source.setdefault(item.source, []).append(item)
        indexes = {src: _Index(self.rules, items) for src, items in by_source.items()}
        return [self._check_one(cc, indexes) for cc in claims]

    def _check_one(self, cc: CheckedClaim, indexes: Mapping[str, _Index]) -> Verdict:
        claim = cc.claim
        try:
            if not cc.findings:
                return Verdict(
                    claim, "uncertain",
                    ("not checked: no finding could be read off this claim (nothing for the graph checker to compare)",),
                    (), self.name, None,
                )
            if not indexes:
                return Verdict(claim, "uncertain", ("not checked: no evidence was given",), (), self.name, None)
            per_source: list[_Judgement] = []
            for source, index in indexes.items():
                if source == "self":
                    pairs_for = lambda f, idx=index: [
                        (i, e) for i, e in idx.candidates(f) if not _own_sentence(claim, i)
                    ]
                else:
                    pairs_for = lambda f, idx=index: idx.candidates(f)
                per_finding = [_judge_finding(self.rules, source, f, pairs_for(f)) for f in cc.findings]
                per_source.append(combine(per_finding))
            j = combine(per_source)
            status = "uncertain" if j.status == ABSTAIN else j.status
            return Verdict(claim, status, j.reasons, j.items, self.name, j.score)
        except Exception as e:  # one bad claim must not stop the report
            return Verdict(claim, "error", (f"E310 graph checker failed on this claim: {type(e).__name__}: {e}",), (), self.name, None)


def is_abstention(v: Verdict) -> bool:
    """An uncertain verdict without a score: the checker had nothing to compare."""
    return v.status == "uncertain" and v.score is None
