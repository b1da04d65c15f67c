"""The graph checker: compares each claim's findings with evidence findings.

Every claim gets one :class:`~reportgen.types.Verdict` whose reasons name the evidence
they compared with (``EvidenceItem.describe()``). The rules that decide what matches are
data (``checkers/data/checking.json``): severity levels, lung zone bands, change groups,
an observation hierarchy for normal statements, body regions and scopes, and the
no-evidence policy per source.

How one claim finding ``c`` is judged against the evidence of one source (the first rule
that applies decides):

1. ``c`` hedged ("may represent pneumonia") -> **uncertain**, whatever the evidence says
   (the reason still names the evidence that confirms or denies it), except that a hedged
   claim the reference denies outright, with no reference statement that agrees with it
   ("Pneumothorax or effusion." vs "No pneumothorax."), is **unsupported** (basis
   ``conflicting``): it raises what the reference rules out.
   The evidence states the very same finding (same normal forms) -> **supported**, before
   any rule below: the claim is faithful to that evidence even if the evidence contradicts
   itself elsewhere (a report checked against itself is fully supported).
2. The same observation with the opposite presence where the scopes overlap
   ("right effusion" vs "no pleural effusion") -> **contradicted** (presence flipped).
3. The same observation, same presence, no conflicting detail -> **supported**; but with
   reference evidence, when every such statement leaves a detail of the claim unconfirmed
   (side, zone, severity: "Cardiomegaly." for "Severe cardiomegaly.") and another statement
   as specific states that detail otherwise ("Mild cardiomegaly."), rule 4 decides.
4. The same observation, both present, but a different side, lung zone, severity or
   direction of change -> **contradicted** (laterality / location / severity / change
   mismatch).
5. The same observation, hedged in the evidence -> **uncertain**.
6. A broader absent finding denies a narrower present one and vice versa ("no acute
   cardiopulmonary abnormality" vs "right pleural effusion"; "normal chest" vs any
   finding) -> **contradicted**; within the statement's anatomy only, never for
   incidental findings (granulomas, degenerative change, ...) unless the broader finding
   is incidental too ("no granuloma" vs "calcified granuloma"), and never from a statement
   that makes exceptions ("the lungs are otherwise clear").
7. A broader or narrower finding that agrees ("no pneumothorax" vs "no acute
   abnormality") -> **supported** (lower score). Broader present evidence is weak support
   (uncertain) for a narrower claim, unless every statement of it names what it is as
   another finding ("opacities which may represent atelectasis or scarring" says nothing
   for "pulmonary edema").
8. Nothing comparable -> the source's no-evidence policy under the checker's named
   convention (``convention``, checking.json "conventions"): an unmentioned positive
   finding in a reference is **unsupported**; an unmentioned negative one is **supported**
   under ``chexpert`` (the default: not mentioned = absent, basis ``convention``) and
   **unsupported** under ``radfact`` (basis ``no_evidence``); self and image evidence
   **abstain** (status uncertain, score None: other checkers decide).

A claim with several findings takes the worst of them (contradicted > unsupported >
uncertain > supported). A claim with no findings ("Comparison made to prior study")
abstains: the graph checker has nothing to compare. Several sources (reference and self)
are judged separately and combined the same way, abstentions dropped, except that a claim
the reference supports keeps ``supported`` when its own report contradicts it: the
self-conflict becomes a secondary reason naming the partner sentence, which the reference
flags (``attribute``). Without a reference, a self-contradiction flags the claim.

Every verdict names its ``basis`` (``reportgen.types.VERDICT_BASES``): matched,
conflicting, hedged, weak_evidence, no_evidence, convention, redacted, not_read, ...

``Verdict.score`` is how strongly the evidence supports the claim, in [0, 1] (1 = matched
in every detail, 0 = contradicted or unsupported); None marks an abstention.

Speed: comparisons depend only on the findings' normal forms, so their outcomes are cached
(per checker) across claims and reports; evidence is grouped by observation and by
identical finding, and reason strings are built only for the outcomes that decide.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from operator import attrgetter
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import STATUS_ORDER, STATUS_RANK, EvidenceItem, Finding, Verdict, worst_status

RULES_PATH = Path(__file__).parent / "data" / "checking.json"
ABSTAIN = "abstain"
# The named conventions for a finding that no evidence mentions (checking.json "conventions").
CONVENTIONS = ("chexpert", "radfact")
# Worst first (reportgen.types): how verdicts of several findings, sources or checkers combine.
_RANK = STATUS_RANK
_BOTH = frozenset({"right", "left"})
_MISSING = object()
# What a statement's exception cues do (CheckingRules.makes_exceptions)
REDACTED, EXCEPTS = 1, 2
_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class CheckingRules:
    """The comparison rules, read from a versioned JSON file (``CheckingRules.load``)."""

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
    incidental: frozenset[str] = frozenset()
    exception_cues: tuple[str, ...] = ()
    max_reasons: int = 4
    self_mismatch_across_sections_only: bool = False
    # convention name -> source -> presence -> status (overrides no_evidence)
    conventions: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    default_convention: str = "chexpert"
    # Derived at load time.
    umbrellas: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    all_bands: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    exception_re: Any = field(default=None, compare=False, repr=False)
    redaction_re: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CheckingRules":
        return _load_rules(str(path or RULES_PATH))

    def policy(self, source: str, presence: str, convention: str | None = None) -> str:
        """What a finding that no evidence of ``source`` mentions gets, under ``convention``
        (``conventions`` in the rules file; None: the no_evidence table alone)."""
        key = "absent" if presence == "absent" else "present"
        if convention is not None:
            choice = self.conventions.get(convention, {}).get(source, {}).get(key)
            if choice is not None:
                return choice
        table = self.no_evidence.get(source) or self.no_evidence.get("default") or {}
        return table.get(key, ABSTAIN)

    def check_convention(self, convention: str | None) -> str:
        """``convention`` (None: the rules' default) if the rules define it, else E350."""
        name = self.default_convention if convention is None else convention
        if name not in self.conventions:
            raise ReportgenError("E350", f"unknown convention {name!r} for unmentioned findings",
                                 fix=f"use one of {', '.join(self.conventions) or 'the conventions of checking.json'}")
        return name

    def is_broader(self, broad: str, narrow: str) -> bool:
        return broad in self.ancestors.get(narrow, ())

    def scope(self, anatomy: str) -> frozenset[str] | None:
        """Regions a statement about ``anatomy`` speaks for (None: everything)."""
        s = self.scopes.get(anatomy, _MISSING)
        return frozenset({anatomy}) if s is _MISSING else s  # type: ignore[return-value]

    def makes_exceptions(self, text: str) -> int:
        """``EXCEPTS`` when the statement makes exceptions ("otherwise clear": its negatives
        deny nothing), ``REDACTED`` when it only holds a de-identification token ("No XXXX
        nodule": a redacted qualifier may narrow what it denies), else 0."""
        if self.exception_re is not None and self.exception_re.search(text):
            return EXCEPTS
        if self.redaction_re is not None and self.redaction_re.search(text):
            return REDACTED
        return 0


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
        hierarchy = raw["hierarchy"]
        parents = {k: tuple(v) for k, v in hierarchy["parents"].items()}
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
        descendants: dict[str, set[str]] = {}
        for obs, ups in ancestors.items():
            for a in ups:
                descendants.setdefault(a, set()).add(obs)
        groups = {w: g for g, words in raw["change"]["groups"].items() if g != "comment" for w in words}
        scopes = {k: (None if v is None else frozenset(v)) for k, v in raw["regions"]["scopes"].items() if k != "comment"}
        regions = {k: frozenset(v) for k, v in raw["regions"]["observations"].items()}
        no_ev = {k: dict(v) for k, v in raw["no_evidence"].items() if k != "comment"}
        for table in no_ev.values():
            for presence, choice in table.items():
                if choice not in (*STATUS_ORDER, ABSTAIN):
                    raise bad(f"no_evidence {presence!r} must be a status or 'abstain', not {choice!r}")
        conv_raw = raw.get("conventions") or {"default": "chexpert", "chexpert": {}}
        conventions = {k: {src: dict(t) for src, t in v.items()} for k, v in conv_raw.items() if k not in ("comment", "default")}
        for name, tables in conventions.items():
            for table in tables.values():
                for presence, choice in table.items():
                    if choice not in (*STATUS_ORDER, ABSTAIN):
                        raise bad(f"convention {name!r}: {presence!r} must be a status or 'abstain', not {choice!r}")
        default_convention = str(conv_raw.get("default", next(iter(conventions), "chexpert")))
        if default_convention not in conventions:
            raise bad(f"the default convention {default_convention!r} is not defined")
        bands = {k: frozenset(v) for k, v in raw["zones"]["bands"].items()}
        cues = tuple(raw.get("exception_cues", {}).get("words", ()))
        tokens = tuple(raw.get("exception_cues", {}).get("redaction_tokens", ()))
        cue_re = re.compile(r"\b(?:" + "|".join(re.escape(c) for c in cues) + r")\b", re.I) if cues else None
        redaction_re = re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None  # case-sensitive: "XXXX"
        return CheckingRules(
            version=str(raw["version"]),
            severity_levels=dict(raw["severity"]["levels"]),
            severity_tolerance=int(raw["severity"].get("tolerance", 0)),
            zone_bands=bands,
            change_groups=groups,
            ancestors=ancestors,
            regions=regions,
            scopes=scopes,
            no_evidence=no_ev,
            scores={k: float(v) for k, v in raw["scores"].items() if k != "comment"},
            acute=hierarchy.get("acute"),
            not_acute_changes=frozenset(hierarchy.get("not_acute_changes", {}).get("words", ())),
            incidental=frozenset(hierarchy.get("incidental", {}).get("observations", ())),
            exception_cues=cues + tokens,
            self_mismatch_across_sections_only=bool(raw.get("self_mismatch", {}).get("across_sections_only", False)),
            conventions=conventions,
            default_convention=default_convention,
            max_reasons=int(raw.get("max_reasons", 4)),
            umbrellas=frozenset(o for o in descendants if o not in regions),
            all_bands=frozenset().union(*bands.values()) if bands else frozenset(),
            exception_re=cue_re,
            redaction_re=redaction_re,
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise bad(f"missing or malformed entry ({e!r})") from e


# --- describing findings -----------------------------------------------------------


def describe_finding(f: Finding) -> str:
    """A short human description: "small right base pleural effusion (present)"."""
    change = f.change if f.change and f.change not in f.observation else None  # not "acute acute abnormality"
    where = " and ".join(f.locations)  # "right middle lobe and lower lobe opacity"
    parts = [p for p in (f.severity, change, f.laterality, where, f.observation) if p]
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


_OTHER_SIDE = {"left": "right", "right": "left"}


def _zone_pairs(zone_sides: tuple[str, ...]) -> list[tuple[str, str]]:
    """A finding's sided zones ("left lower lobe") as (side, zone) pairs."""
    return [(z.split(" ", 1)[0], z.split(" ", 1)[1]) for z in zone_sides]


def _side_bands_disjoint(rules: CheckingRules, claim: list[tuple[str, str]], evidence: list[tuple[str, str]]) -> bool:
    """Whether, on a side both name zones on, the claim's zones lie in other lung bands than
    the evidence's."""
    def bands(pairs: list[tuple[str, str]]) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for side, zone in pairs:
            out[side] = out.get(side, frozenset()) | rules.zone_bands.get(zone, frozenset())
        return out

    cb, eb = bands(claim), bands(evidence)
    return any(cb[side] and eb[side] and not cb[side] & eb[side] for side in cb.keys() & eb.keys())


def _outside(rules: CheckingRules, locations: tuple[str, ...], bands: frozenset[str]) -> list[str]:
    """The placed locations whose bands miss ``bands`` entirely."""
    out = []
    for loc in locations:
        b = rules.zone_bands.get(loc)
        if b and not b & bands:
            out.append(loc)
    return out


def _where(rules: CheckingRules, f: Finding) -> frozenset[str] | None:
    """Body regions a finding lies in: from its anatomy, else its observation; None when
    unknown or everywhere."""
    if f.anatomy is not None:
        return rules.scope(f.anatomy)
    return rules.regions.get(f.observation)


def _covers(rules: CheckingRules, absent: Finding, present: Finding) -> bool:
    """Whether an absent finding's anatomy scope includes where the present one lies
    ("the heart is normal" says nothing about the lungs). Conservative: a finding whose
    place is unknown, or a vague "abnormality" ("chronic changes"), is denied only by a
    statement about the whole chest."""
    if absent.anatomy is None:
        return True
    denied = rules.scope(absent.anatomy)
    if denied is None:
        return True
    if absent.observation == present.observation and denied == rules.regions.get(absent.observation):
        # the negative names no place but the finding's own ("No pneumothorax.": pleura by
        # default) and so denies it wherever the other statement puts it ("Left apical
        # pneumothorax.", whose zone word gives it the lung as anatomy)
        return True
    if present.observation in rules.umbrellas:
        # "Acute cardiopulmonary process" vs "no acute cardiopulmonary process": an acute
        # umbrella at a known place is denied where the statement speaks for all of it
        if present.observation != rules.acute or present.anatomy is None:
            return False
        where = rules.scope(present.anatomy)
        return where is not None and where <= denied
    if present.anatomy is not None:
        where = rules.scope(present.anatomy)
        return where is not None and bool(where & denied)
    regions = rules.regions.get(present.observation)
    return regions is not None and bool(regions & denied)


def _other_anatomy(rules: CheckingRules, a: Finding, b: Finding) -> bool:
    """Whether two findings of one observation name different anatomy, neither of which
    speaks for the whole chest ("spine" vs "bone" of a shoulder; not "lung" vs "chest")."""
    if a.anatomy is None or b.anatomy is None or a.anatomy == b.anatomy:
        return False
    return rules.scope(a.anatomy) is not None and rules.scope(b.anatomy) is not None


def _region_overlap(rules: CheckingRules, a: Finding, b: Finding) -> bool:
    wa, wb = _where(rules, a), _where(rules, b)
    return wa is None or wb is None or bool(wa & wb)


def _denies(rules: CheckingRules, absent: Finding, present: Finding) -> bool:
    """Whether an absent finding denies everything a present finding asserts (sides,
    lung bands and severity; the anatomy scope is ``_covers``)."""
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
    denied = rules.all_bands if d_bands is None else d_bands
    if d_bands is not None and not d_bands:
        # placed only where no band is ("No right perihilar nodule", "periphery"): denies
        # the finding at those very places, nothing elsewhere or unplaced
        band_ok = set(absent.locations) <= set(present.locations)
    elif not p_bands:  # no placed location: asserts "somewhere"
        band_ok = denied == rules.all_bands
    else:
        band_ok = p_bands <= denied
    if not band_ok:
        return False
    # "No acute consolidation" does not deny a chronic or incidental finding.
    if absent.change == "acute" and (present.change in rules.not_acute_changes or present.observation in rules.incidental):
        return False
    # "No new opacity" does not deny a stable one.
    if absent.change is not None and rules.change_groups.get(absent.change) == "worse":
        if rules.change_groups.get(present.change or "") != "worse":
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


# --- outcomes of one comparison ----------------------------------------------------------

# Outcome ranks, lower wins (module docstring, rules 2-7). Evidence as specific as the
# claim or more (the same observation, or a narrower one: "small effusion" for the claim
# "normal chest") outranks evidence broader than the claim ("no acute abnormality" for the
# claim "right effusion").
_FLIP, _SUPPORT, _MISMATCH, _HEDGED, _BROAD_FLIP, _BROAD_SUPPORT, _BROAD_MISMATCH, _BROAD_HEDGED = range(8)
_SPECIFIC = 4  # ranks below this come from evidence at least as specific as the claim
# The evidence states the very same finding (same normal forms): supported before anything
# else. A report checked against itself is then fully supported, even where it is
# internally inconsistent (that is for the self-consistency check to say).
_IDENTICAL = -1
_MISMATCH_RANKS = (_MISMATCH, _BROAD_MISMATCH)
# A negative claim with a redacted qualifier that would deny the evidence ("No XXXX nodule"
# vs "XXXX nodule"): uncertain, and it outranks every support but the identical statement,
# so a broader "the lungs are clear" elsewhere never makes the claim supported.
_REDACTED_FLIP_RANK = 0.5
# The same observation at another anatomy ("degenerative changes of the thoracic spine" vs
# "... of the right shoulder"): the evidence does not speak about the claim; at most
# uncertain, basis no_evidence (issue 11 section 3).
_OTHER_ANATOMY_RANK = 3.5


class _Outcome(NamedTuple):
    """What comparing two findings gave, independent of where the evidence came from (the
    comparison cache keeps these, read by field name)."""

    rank: float
    status: str
    score: float
    what: str  # "presence flipped", "matches", "laterality mismatch (...)", ...
    note: str = ""  # appended after the evidence ("; the evidence does not give the side")


# A mismatch with hedged evidence ("Questionable large right nodule"): judged against a
# reference only; within one report, hedged findings that differ are usually two instances
# ("Probably scarring in the left apex" ... "right upper lobe, likely scarring").
_HEDGED_MISMATCH = " (hedged evidence)"
_REDACTED_FLIP = "presence flipped unless the redacted word of the claim narrows its denial"


def _mismatches(rules: CheckingRules, c: Finding, e: Finding) -> tuple[list[str], list[str]]:
    """Both present: (conflicts, details the evidence does not confirm)."""
    conflicts: list[str] = []
    unconfirmed: list[str] = []
    if c.laterality and e.laterality:
        if c.laterality != e.laterality and e.laterality != "bilateral":
            conflicts.append(f"laterality mismatch (claim {c.laterality}, evidence {e.laterality})")
    elif c.laterality:
        unconfirmed.append("side")
    if c.predominant and e.predominant and c.predominant != e.predominant and not conflicts:
        # "bibasilar opacities, left greater than right" vs "... right greater than left"
        conflicts.append(f"laterality mismatch (claim {c.predominant} greater, evidence {e.predominant} greater)")
    elif c.predominant and not e.predominant and "side" not in unconfirmed:
        unconfirmed.append("side")  # "bibasilar opacities" does not say which side is worse
    if c.zone_sides and not conflicts:
        if e.zone_sides:
            claim_pairs, evidence_pairs = _zone_pairs(c.zone_sides), _zone_pairs(e.zone_sides)
            evidence_sides: dict[str, set[str]] = {}  # zone -> the sides the evidence puts it on
            for side, zone in evidence_pairs:
                evidence_sides.setdefault(zone, set()).add(side)
            misplaced = any(side not in evidence_sides.get(zone, {side}) for side, zone in claim_pairs)
            swapped = misplaced and all(_OTHER_SIDE[side] in evidence_sides.get(zone, ()) for side, zone in claim_pairs)
            if not swapped and _side_bands_disjoint(rules, claim_pairs, evidence_pairs):
                # "left lower lobe and right upper lobe" vs "left upper lobe and right upper lobe":
                # on the left the places differ, though both name an upper lobe somewhere
                conflicts.append(f"location mismatch (claim {', '.join(c.zone_sides)}, evidence {', '.join(e.zone_sides)})")
            elif misplaced:
                # "left upper lobe and right lower lobe" vs "right upper lobe and left lower lobe"
                conflicts.append(f"laterality mismatch (claim {', '.join(c.zone_sides)}, evidence {', '.join(e.zone_sides)})")
        elif e.laterality in (None, "bilateral") and "side" not in unconfirmed:
            unconfirmed.append("side")  # "bilateral opacities" does not say which zone is on which side
    cb, eb = _bands(rules, c), _bands(rules, e)
    if cb and eb:
        if not cb & eb:
            conflicts.append(f"location mismatch (claim {', '.join(c.locations)}, evidence {', '.join(e.locations)})")
        elif len(c.locations) > 1 or len(e.locations) > 1:
            # several zones ("right middle and upper lobes" vs "right middle and lower lobes"):
            # overlapping on one zone is not agreement when each side names a zone the other
            # does not place it in; a claim that only ADDS a zone is not confirmed
            c_out = _outside(rules, c.locations, eb)
            if c_out and _outside(rules, e.locations, cb):
                conflicts.append(f"location mismatch (claim {', '.join(c.locations)}, evidence {', '.join(e.locations)})")
            elif c_out:
                unconfirmed.append(f"location ({', '.join(c_out)})")
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


def _both_present(rules: CheckingRules, c: Finding, e: Finding, rank_support: int, rank_mismatch: int, support_score: float) -> _Outcome:
    sc = rules.scores
    conflicts, unconfirmed = _mismatches(rules, c, e)
    if conflicts:
        return _Outcome(rank_mismatch, "contradicted", sc["contradicted"], "; ".join(conflicts))
    if unconfirmed:
        return _Outcome(rank_support, "supported", min(support_score, sc["supported_broader"]), "matches",
                        f"; the evidence does not give the {', '.join(unconfirmed)}")
    return _Outcome(rank_support, "supported", support_score, "matches")


def compare(rules: CheckingRules, c: Finding, e: Finding, c_exceptions: int = 0, e_exceptions: int = 0) -> _Outcome | None:
    """Compare a (definite) claim finding with one evidence finding. ``*_exceptions``
    (``CheckingRules.makes_exceptions``): ``EXCEPTS``, the statement makes exceptions
    ("otherwise clear"), so its negatives deny nothing; ``REDACTED``, it holds a redacted
    word ("No XXXX nodule": perhaps "no new nodule"), so a negative claim that would deny the
    evidence is uncertain, and a redacted negative in the evidence denies nothing (the claim
    is then judged as unmentioned: a positive claim is not supported by it)."""
    sc = rules.scores
    if c.observation == e.observation:
        if e.presence == "uncertain":
            if c.presence == "present" and _region_overlap(rules, c, e):
                # hedged or not, two statements of one finding that disagree on side, zone,
                # size or change are a mismatch ("Questionable small right midlung nodule"
                # vs "Questionable large right midlung nodule")
                conflicts = _mismatches(rules, c, e)[0]
                if conflicts:
                    return _Outcome(_MISMATCH, "contradicted", sc["contradicted"], "; ".join(conflicts) + _HEDGED_MISMATCH)
            return _Outcome(_HEDGED, "uncertain", sc["uncertain"], "hedged evidence") if _overlaps(rules, c, e) else None
        if c.presence != e.presence:
            absent, present, excepting = (c, e, c_exceptions) if c.presence == "absent" else (e, c, e_exceptions)
            if excepting != EXCEPTS and _covers(rules, absent, present) and _denies(rules, absent, present):
                if not excepting:
                    return _Outcome(_FLIP, "contradicted", sc["contradicted"], "presence flipped")
                if absent is c:  # "No XXXX nodule" vs "XXXX nodule": never supported
                    return _Outcome(_REDACTED_FLIP_RANK, "uncertain", sc["uncertain"], _REDACTED_FLIP)
            return None
        if not _region_overlap(rules, c, e):  # "aortic calcification" vs "calcified lymph nodes"
            return None
        if _other_anatomy(rules, c, e):
            return _Outcome(_OTHER_ANATOMY_RANK, "uncertain", sc["uncertain"], f"other anatomy (claim {c.anatomy}, evidence {e.anatomy})")
        if c.presence == "absent":
            return _Outcome(_SUPPORT, "supported", sc["supported"], "matches") if _overlaps(rules, c, e) else None
        return _both_present(rules, c, e, _SUPPORT, _MISMATCH, sc["supported"])
    # Related through the hierarchy. Evidence narrower than the claim is as strong as the
    # same observation (ranks 0-3); evidence broader than the claim is weaker (ranks 4-7).
    if rules.is_broader(e.observation, c.observation):
        broad, narrow, claim_broader, broad_exceptions = e, c, False, e_exceptions
    elif rules.is_broader(c.observation, e.observation):
        broad, narrow, claim_broader, broad_exceptions = c, e, True, c_exceptions
    else:
        return None
    shift = 0 if claim_broader else _SPECIFIC
    if e.presence == "uncertain":
        if _overlaps(rules, c, e) and _region_overlap(rules, broad, narrow):
            return _Outcome(_HEDGED + shift, "uncertain", sc["uncertain"], "hedged evidence")
        return None
    if broad.presence == "absent":
        if narrow.presence == "present":
            if broad_exceptions or (narrow.observation in rules.incidental and broad.observation not in rules.incidental):
                return None  # ("the lungs are clear" does not deny granulomas; "no granuloma" does)
            if broad.observation == rules.acute and narrow.change in rules.not_acute_changes:
                return None
            if _covers(rules, broad, narrow) and _denies(rules, broad, narrow):
                return _Outcome(_FLIP + shift, "contradicted", sc["contradicted"], "presence flipped")
            return None
        # Both absent: a broader negative implies the narrower one; a narrower negative
        # does not prove a broader one ("No cavitary lesions" says nothing about "The right
        # lung is clear": that claim is judged as unmentioned).
        if not claim_broader and _overlaps(rules, c, e) and _region_overlap(rules, broad, narrow):
            return _Outcome(_SUPPORT + shift, "supported", sc["supported"], "agrees with")
        return None
    if narrow.presence != "present" or not _region_overlap(rules, broad, narrow):
        return None
    if claim_broader:  # claim "opacity", evidence "consolidation"
        out = _both_present(rules, c, e, _SUPPORT, _MISMATCH, sc["supported_broader"])
        return out._replace(what="agrees with the more specific") if out.status == "supported" else out
    if _overlaps(rules, c, e):  # claim "pneumonia", evidence "opacity": not proven
        return _Outcome(_BROAD_HEDGED, "uncertain", sc["uncertain"], "less specific evidence")
    return None


# --- evidence index ------------------------------------------------------------------


# What a comparison depends on (not the text or offsets): a finding's normal forms.
_key: Callable[[Finding], tuple] = attrgetter("observation", "presence", "laterality", "locations", "anatomy", "severity", "change", "predominant", "zone_sides")


class _Group:
    """Identical evidence findings (same normal forms) of one source. The first member
    (item, sentence start and end) is kept apart: it is the one a reason names unless it
    lies in the claim's own sentence."""

    __slots__ = ("finding", "exceptions", "kid", "members", "item0", "start0", "end0")

    def __init__(self, finding: Finding, exceptions: int, kid: int, item: EvidenceItem, start: int, end: int, section: str | None):
        self.finding = finding
        self.exceptions = exceptions
        self.kid = kid  # interned key, for the comparison cache
        # item, sentence start and end, section
        self.members: list[tuple[EvidenceItem, int, int, str | None]] = [(item, start, end, section)]
        self.item0, self.start0, self.end0 = item, start, end


class _Index:
    """Evidence findings of one source, by observation, identical findings grouped.

    ``kids``: id(finding) -> (exceptions, interned key) of every evidence finding, so a
    claim that is itself evidence (self-consistency) needs no new key. ``positional``: a
    redacted word counts only before a finding (``GraphChecker.redacted_before``); without it
    (self-consistency, which only looks for contradictions and keeps its reading
    conservative) a redacted word anywhere in a statement counts."""

    def __init__(self, checker: "GraphChecker", items: Sequence[EvidenceItem], kids: dict[int, tuple[int, int]],
                 positional: bool = True):
        self.by_obs: dict[str, list[_Group]] = {}
        self._candidates: dict[str, tuple[list[_Group], list[_Group]]] = {}
        self.broader = checker.broader
        self.narrower = checker.narrower
        intern = checker.intern
        by_obs = self.by_obs
        groups: dict[int, _Group] = {}
        for item in items:
            findings = item.findings
            if not findings:
                continue
            meta = item.meta
            start = meta.get("sentence_start", item.start) if meta else item.start
            end = meta.get("sentence_end", item.end) if meta else item.end
            section = meta.get("section") if meta else None
            exc0 = checker.makes_exceptions(item.text)
            for f in findings:
                if f.presence == "hypothetical":  # a request never supports or contradicts
                    continue
                exc = exc0 if exc0 != REDACTED or not positional else checker.redacted_before(item.text, item.start, f)
                kid = intern(_key(f), exc)
                kids[id(f)] = (exc, kid)
                g = groups.get(kid)
                if g is None:
                    g = groups[kid] = _Group(f, exc, kid, item, start, end, section)
                    obs_groups = by_obs.get(f.observation)
                    if obs_groups is None:
                        by_obs[f.observation] = [g]
                    else:
                        obs_groups.append(g)
                elif g.members[-1][0] is not item:
                    g.members.append((item, start, end, section))

    def candidates(self, obs: str) -> tuple[list[_Group], list[_Group]]:
        """Evidence groups about ``obs`` or a narrower observation, and about a broader one."""
        out = self._candidates.get(obs)
        if out is None:
            by_obs = self.by_obs
            narrower = self.narrower.get(obs)
            if narrower is None:  # no narrower observation: only obs itself
                specific = by_obs.get(obs) or []
            else:
                specific = [g for o, gs in by_obs.items() if o == obs or o in narrower for g in gs]
            anc = self.broader.get(obs)  # sorted (GraphChecker.broader)
            broader = [g for o in anc for g in by_obs.get(o, ())] if anc else []
            out = self._candidates[obs] = (specific, broader)
        return out


# --- judgements ----------------------------------------------------------------------

# A reason is built only when it is shown: either a finished string or the parts of one.
_Reason = Any


def _render(r: _Reason, by_kid: dict[int, str], described: dict[int, str]) -> str:
    """The reason string. ``by_kid``: finding descriptions by interned key (they depend on
    the normal forms only); ``described``: evidence item descriptions by object id while
    one batch of claims is checked (the items are alive for that long)."""
    if r.__class__ is str:
        return r
    label, ckid, c, out, g, item = r
    dc = by_kid.get(ckid)
    if dc is None:
        dc = by_kid[ckid] = describe_finding(c)
    dg = by_kid.get(g.kid)
    if dg is None:
        dg = by_kid[g.kid] = describe_finding(g.finding)
    di = described.get(id(item))
    if di is None:
        di = described[id(item)] = item.describe()
    return f"{label}: {dc}; {out.what}: {di} says {dg}{out.note}"


class _Judgement(NamedTuple):  # a NamedTuple: made ~20 times a report, cheap to create
    status: str  # a verdict status or ABSTAIN
    score: float | None
    reasons: tuple[_Reason, ...]
    items: tuple[EvidenceItem, ...]
    basis: str = "no_evidence"  # reportgen.types.VERDICT_BASES


# What a mismatch is about -> the word a partial support's note uses for that detail
# ("; the evidence does not give the side, severity").
_DETAILS = (("laterality mismatch", "side"), ("location mismatch", "location"), ("severity mismatch", "severity"))


def _detail_conflicts(found: list, best: float, rules: CheckingRules | None = None, c: Finding | None = None) -> tuple[list, float]:
    """Reference evidence only, a definite claim whose best outcome is support: when every
    support leaves a detail of the claim unconfirmed ("Cardiomegaly." for "Severe
    cardiomegaly.": the evidence does not give the severity) and a statement as specific
    as the claim states that detail otherwise ("Mild cardiomegaly."), the detail decides:
    the mismatch wins. So does a statement that gives every detail the supports leave
    unconfirmed as the claim has it and conflicts on another ("Opacity in the right apex"
    vs "bilateral calcified granulomas", which do not give the apex, and "Opacity in the
    left apex": the statement about the apex decides). A support that confirms the detail
    keeps the claim supported."""
    supports = [x[0] for x in found if x[0].rank == _SUPPORT or x[0].rank == _IDENTICAL]
    if not supports or any(not o.note for o in supports):
        return found, best
    mismatches = [x for x in found if x[0].rank == _MISMATCH and not x[0].what.endswith(_HEDGED_MISMATCH)]
    if not mismatches:
        return found, best
    deciding = [x for x in mismatches
                if any(kind in x[0].what and all(word in o.note for o in supports) for kind, word in _DETAILS)]
    if not deciding and rules is not None and c is not None:
        open_details = {word for _, word in _DETAILS if all(word in o.note for o in supports)}
        if open_details:
            for x in mismatches:
                conflicts, unconfirmed = _mismatches(rules, c, x[1].finding)
                said = " ".join(conflicts + unconfirmed)
                if not any(w in said for w in open_details) and all(
                        (w != "location" or (c.locations and x[1].finding.locations)) and
                        (w != "side" or (c.laterality and x[1].finding.laterality)) and
                        (w != "severity" or (c.severity and x[1].finding.severity)) for w in open_details):
                    deciding.append(x)
    return (deciding, _MISMATCH) if deciding else (found, best)


def _open_agreements(found: list, c: Finding) -> list:
    """Reference evidence only, a hedged claim: evidence that agrees with it but leaves its
    side or location open ("possible subluxation" for "probable dislocation of the right
    humerus") does not outweigh a statement that gives that detail and conflicts ("probable
    dislocation of the left humerus"; "Left lung clear." for "Questioned vague left lower
    lobe opacity"): such agreements are dropped, as ``_detail_conflicts`` does for a
    definite claim. An agreement that gives the detail keeps the claim uncertain."""
    conflicts = [x for x in found if x[0].rank in _MISMATCH_RANKS or x[0].rank in (_FLIP, _BROAD_FLIP)]
    if not conflicts:
        return found
    given = set()
    for o, g, _ in conflicts:
        e = g.finding
        if c.laterality and ("laterality mismatch" in o.what if o.rank in _MISMATCH_RANKS else e.laterality is not None):
            given.add("side")
        if c.locations and ("location mismatch" in o.what if o.rank in _MISMATCH_RANKS else bool(e.locations)):
            given.add("location")
    if not given:
        return found

    def open_detail(e: Finding) -> bool:
        return ("side" in given and e.laterality is None) or ("location" in given and not e.locations)

    return [x for x in found if x in conflicts or not open_detail(x[1].finding)]


def _basis_of(rank: float) -> str:
    """The basis of an outcome, from its rank."""
    if rank == _REDACTED_FLIP_RANK:
        return "redacted"
    if rank == _OTHER_ANATOMY_RANK:
        return "no_evidence"
    if rank in (_IDENTICAL, _SUPPORT, _BROAD_SUPPORT):
        return "matched"
    if rank in (_FLIP, _MISMATCH, _BROAD_FLIP, _BROAD_MISMATCH):
        return "conflicting"
    return "weak_evidence"


def _unique(items: Iterable[EvidenceItem]) -> tuple[EvidenceItem, ...]:
    """Evidence items in order, each once (items hold dicts, so by identity)."""
    seen: dict[int, EvidenceItem] = {}
    for i in items:
        seen.setdefault(id(i), i)
    return tuple(seen.values())


def combine(judgements: Sequence[_Judgement], max_reasons: int = 4) -> _Judgement:
    """Worst status wins (contradicted > unsupported > uncertain > supported); abstentions
    only count when every judgement abstains. Reasons: the deciding ones first."""
    if len(judgements) == 1:
        return judgements[0]
    status = worst_status(j.status for j in judgements)  # abstentions are not in the order
    if status is None:  # every judgement abstains
        return _Judgement(ABSTAIN, None, tuple(r for j in judgements for r in j.reasons)[:max_reasons], (), judgements[0].basis)
    worst = _RANK[status]
    deciding: list[_Reason] = []
    others: list[_Reason] = []
    items: dict[int, EvidenceItem] = {}  # in order, each once (by identity)
    score = None
    basis = None
    for j in judgements:
        if j.status == ABSTAIN:
            continue
        if _RANK[j.status] == worst:
            if basis is None:
                basis = j.basis
            deciding.extend(j.reasons)
            for i in j.items:
                items.setdefault(id(i), i)
        else:
            others.extend(j.reasons)
        if j.score is not None and (score is None or j.score < score):
            score = j.score
    deciding.extend(others)
    return _Judgement(STATUS_ORDER[worst], score, tuple(deciding[: 2 * max_reasons]), tuple(items.values()), basis or "no_evidence")


SELF_CONFLICT = "self-conflict (secondary: the reference supports this claim; the partner sentence carries the flag)"


def attribute(sources: Sequence[str], judgements: Sequence[_Judgement], max_reasons: int = 4) -> _Judgement:
    """Judgements of several sources -> one (issue 11 section 2). With a reference: a claim
    the other sources (the reference) support keeps ``supported`` even when its own report
    contradicts it; the self-conflict stays as a secondary reason naming the partner
    sentence, which the reference flags (or, if the reference supports both, neither is
    flagged). Otherwise the worst status wins (``combine``)."""
    if "self" in sources and len(sources) > 1:
        own = judgements[sources.index("self")]
        if own.status == "contradicted":
            rest = [j for s, j in zip(sources, judgements) if s != "self"]
            others = rest[0] if len(rest) == 1 else combine(rest, max_reasons)
            if others.status == "supported":
                secondary = tuple(
                    r if r.__class__ is str else (SELF_CONFLICT, *r[1:])
                    for r in own.reasons if r.__class__ is str or r[0] == "contradicted"
                )
                reasons = others.reasons[: max(1, max_reasons - 1)] + secondary
                return _Judgement("supported", others.score, reasons, others.items, others.basis)
    return combine(judgements, max_reasons)


class GraphChecker:
    """Checks claims against evidence findings (reference, self, image, ...)."""

    name = "graph"

    def __init__(self, rules: CheckingRules | str | Path | None = None, convention: str | None = None):
        self.rules = rules if isinstance(rules, CheckingRules) else CheckingRules.load(rules)
        # how an unmentioned finding is read ("chexpert" or "radfact": CONVENTIONS)
        self.convention = self.rules.check_convention(convention)
        # comparison outcomes: claim key id -> evidence key id -> outcome
        self._cache: dict[int, dict[int, _Outcome | None]] = {}
        self._descriptions: dict[int, str] = {}  # key id -> describe_finding()
        self._abstentions: dict[tuple[str, str], _Judgement] = {}  # (source, observation) -> abstention
        self._ids: dict[tuple, int] = {}
        self._exc: dict[str, int] = {}
        narrower: dict[str, set[str]] = {}
        for obs, ups in self.rules.ancestors.items():
            for a in ups:
                narrower.setdefault(a, set()).add(obs)
        # observation -> the narrower observations under it (absent: none)
        self.narrower: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in narrower.items()}
        # observation -> the broader ones above it, sorted (absent: none): a frozenset's order
        # follows PYTHONHASHSEED, and the order of the evidence decides which item a verdict
        # cites (outputs must not vary by run); sorted once here, not per report
        self.broader: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in self.rules.ancestors.items() if v}

    def intern(self, key: tuple, exceptions: int) -> int:
        """A small int for a finding key (comparisons are cached on pairs of these)."""
        k = (key, exceptions)
        i = self._ids.get(k)
        if i is None:
            i = self._ids[k] = len(self._ids)
        return i

    def makes_exceptions(self, text: str) -> int:
        out = self._exc.get(text)
        if out is None:
            out = self._exc[text] = self.rules.makes_exceptions(text)
        return out

    def redacted_before(self, text: str, start: int, f: Finding) -> int:
        """For a statement with a redacted word (``REDACTED``): whether one stands before
        the end of finding ``f`` (a qualifier or subject: "No XXXX nodule", "Pulmonary XXXX
        are normal") -> ``REDACTED``; one after it ("No blunting of the costophrenic XXXX",
        "no nodule, XXXX granuloma") narrows nothing -> 0. ``start``: where ``text`` begins
        in the finding's document; a finding outside the text keeps ``REDACTED``."""
        cut = f.end - start
        if cut <= 0 or cut > len(text) or f.start < start or _is_normal_predicate(f.text):
            return REDACTED  # a normal statement's subject may stand anywhere ("Normal ..., pulmonary XXXX.")
        return REDACTED if self.rules.redaction_re.search(text, 0, cut) else 0

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]:
        return self.check_conventions(claims, evidence, (self.convention,))[0]

    def check_conventions(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem],
                          conventions: Sequence[str]) -> list[list[Verdict]]:
        """The verdicts of ``claims`` under each of ``conventions`` (one list per convention,
        each equal to ``GraphChecker(rules, convention).check(claims, evidence)``) from ONE
        pass over the evidence: a convention only decides a finding that no evidence
        mentions (rule 8), so the comparisons are made once and only that last step is
        taken per convention (``reportgen eval`` needs chexpert for the hallucination rate
        and radfact for RadFact's logical precision of the same pair)."""
        convs = tuple(self.rules.check_convention(c) for c in conventions)
        if not convs:
            return []
        # The caches are bounded between calls (never during one: its key ids stay valid).
        if len(self._ids) > _CACHE_LIMIT:
            self._ids.clear()
            self._cache.clear()
            self._descriptions.clear()
        if len(self._exc) > _CACHE_LIMIT:
            self._exc.clear()
        if len(self._abstentions) > _CACHE_LIMIT:
            self._abstentions.clear()
        by_source: dict[str, list[EvidenceItem]] = {}
        for item in evidence:
            by_source.setdefault(item.source, []).append(item)
        kids: dict[int, tuple[int, int]] = {}
        indexes = {src: _Index(self, items, kids, src != "self") for src, items in by_source.items()}
        described: dict[int, str] = {}
        rows = [self._check_one(cc, indexes, kids, described, convs) for cc in claims]
        return [[row[k] for row in rows] for k in range(len(convs))]

    def _check_one(self, cc: CheckedClaim, indexes: Mapping[str, _Index], kids: Mapping[int, tuple[int, int]],
                   described: dict[int, str], convs: tuple[str, ...]) -> tuple[Verdict, ...]:
        """The claim's verdict under each convention of ``convs``."""
        claim = cc.claim
        name = self.name
        try:
            if not cc.findings:
                return (_verdict(claim, "uncertain", ("not checked: no finding could be read off this claim (nothing for the graph checker to compare)",), (), name, None, "not_read"),) * len(convs)
            if not indexes:
                return (_verdict(claim, "uncertain", ("not checked: no evidence was given",), (), name, None, "no_source"),) * len(convs)
            rules = self.rules
            exc0 = self.makes_exceptions(claim.text)
            span = (
                claim.sentence_start if claim.sentence_start is not None else claim.start,
                claim.sentence_end if claim.sentence_end is not None else claim.end,
            )
            # identical findings are judged once (the key id is one-to-one with the key here)
            whole = self._probes(cc.findings, exc0, None, kids)  # for self evidence
            positional = whole if exc0 != REDACTED else None  # for other sources
            max_reasons = rules.max_reasons
            by_kid = self._descriptions
            # per convention, the judgement of each source
            per_source: list[list[_Judgement]] = [[] for _ in convs]
            for source, index in indexes.items():
                if source != "self" and positional is None:
                    positional = self._probes(cc.findings, exc0, claim, kids)
                probes = whole if source == "self" else positional
                own = span if source == "self" else None
                section = claim.section if source == "self" and rules.self_mismatch_across_sections_only else None
                # None: nothing comparable, the convention decides (rule 8)
                found = [(self._judge_found(source, f, cid, exc, index, own, section), f, cid) for cid, (f, exc) in probes.items()]
                for k, conv in enumerate(convs):
                    per_finding = [j if j is not None else self._unmentioned(source, f, cid, conv) for j, f, cid in found]
                    per_source[k].append(per_finding[0] if len(per_finding) == 1 else combine(per_finding, max_reasons))
            out = []
            for ps in per_source:
                j = ps[0] if len(ps) == 1 else attribute(tuple(indexes), ps, max_reasons)
                status = "uncertain" if j.status == ABSTAIN else j.status
                # the first max_reasons distinct reasons, rendered only as far as needed
                shown: dict[str, None] = {}
                for r in j.reasons:
                    shown[_render(r, by_kid, described)] = None
                    if len(shown) == max_reasons:
                        break
                out.append(_verdict(claim, status, tuple(shown)[:max_reasons], j.items, name, j.score, j.basis))
            return tuple(out)
        except Exception as e:  # one bad claim must not stop the report
            return (Verdict(claim, "error", (f"E310 graph checker failed on this claim: {type(e).__name__}: {e}",), (), self.name, None, "error"),) * len(convs)

    def _probes(self, findings: Sequence[Finding], exc0: int, claim: Any, kids: Mapping[int, tuple[int, int]]) -> dict[int, tuple[Finding, int]]:
        """The claim's distinct findings by key id, each with its exception state: with
        ``claim``, a redacted word counts only before the finding (``redacted_before``)."""
        probes: dict[int, tuple[Finding, int]] = {}
        for f in findings:
            exc = exc0 if claim is None or exc0 != REDACTED else self.redacted_before(claim.text, claim.start, f)
            known = kids.get(id(f))
            cid = known[1] if known is not None and known[0] == exc else self.intern(_key(f), exc)
            if cid not in probes:
                probes[cid] = (f, exc)
        return probes

    def _explained(self, g: _Group, observation: str) -> bool:
        """Whether every statement of a broader evidence finding names what it is, as another
        finding under it that is not the claim's nor above it ("Streaky opacities which may
        represent atelectasis or scarring", "calcific density ... represents old granulomatous
        disease"): such an opacity is no less specific evidence for another finding ("Mild
        interstitial pulmonary edema."), which is then judged as unmentioned."""
        under = self.narrower.get(g.finding.observation)
        if not under:
            return False
        above = self.rules.ancestors.get(observation, frozenset())
        for item, *_ in g.members:
            if not any(f.observation in under and f.observation != observation and f.observation not in above
                       and f.presence in ("present", "uncertain") for f in item.findings):
                return False
        return True

    def _not_mentioned(self, source: str, observation: str) -> _Judgement:
        """The abstention when no evidence mentions the observation (cached: made for a third
        of the findings in self-consistency)."""
        key = (source, observation)
        out = self._abstentions.get(key)
        if out is None:
            out = self._abstentions[key] = _Judgement(ABSTAIN, None, (f"not checked: no {source} evidence mentions {observation}",), ())
        return out

    def _describe(self, kid: int, f: Finding) -> str:
        """describe_finding(f), cached by the finding's key id."""
        out = self._descriptions.get(kid)
        if out is None:
            out = self._descriptions[kid] = describe_finding(f)
        return out

    def _judge_found(self, source: str, c: Finding, cid: int, exc: int, index: _Index, own: tuple[int, int] | None,
                     section: str | None = None) -> _Judgement | None:
        """Rules 1-7 (and a hypothetical or hedged finding); None when nothing comparable
        was found and the source's policy under a convention decides (``_unmentioned``)."""
        rules = self.rules
        sc = rules.scores
        ckid = cid  # the claim finding's own key (reasons describe it)
        if c.presence == "hypothetical":
            return _Judgement(ABSTAIN, None, (f"not checked: a request or recommendation about {c.observation} (hypothetical), not a finding",), (), "hypothetical")
        hedged = c.presence == "uncertain"
        # A hedged claim is compared as if it were definite, to say what the evidence says
        # about it; its status stays uncertain.
        probe: Finding | None = c
        if hedged:
            probe = None  # replace(c, presence="present"), made on the first cache miss
            cid = self.intern((c.observation, "present", *_key(c)[2:]), exc)
        row = self._cache.get(cid)
        if row is None:
            row = self._cache[cid] = {}
        found: list[tuple[_Outcome, _Group, EvidenceItem]] = []
        best = 99  # the lowest rank found
        own0, own1 = own if own is not None else (0, 0)
        # Same and narrower observations first; broader ones only when nothing as specific
        # as the claim was found (their outcomes could not win).
        phases = index._candidates.get(c.observation) or index.candidates(c.observation)
        for phase in phases:
            for g in phase:
                kid = g.kid
                out = row.get(kid, _MISSING)
                if out is _MISSING:
                    if probe is None:
                        probe = replace(c, presence="present")
                    out = compare(rules, probe, g.finding, exc, g.exceptions)
                    if out is not None and kid == cid and out.status == "supported":
                        out = out._replace(rank=_IDENTICAL, what="states the same")
                    row[kid] = out
                if out is None:
                    continue
                if own is None and out.rank == _BROAD_HEDGED and self._explained(g, c.observation):
                    continue
                item = g.item0
                if own is not None and out.rank in _MISMATCH_RANKS and (hedged or out.what.endswith(_HEDGED_MISMATCH)):
                    continue  # self-consistency: a hedged mismatch is no contradiction (see _HEDGED_MISMATCH)
                if own is not None:
                    if section is not None and out.rank in _MISMATCH_RANKS:
                        # two positive findings of one section that differ in side or place
                        # are two instances, not a contradiction
                        item = next((x[0] for x in g.members if x[3] != section and not (x[1] < own1 and own0 < x[2])), None)
                    elif g.start0 < own1 and own0 < g.end0:
                        # self evidence from the claim's own sentence does not count
                        item = None
                        for x in g.members:
                            if not (x[1] < own1 and own0 < x[2]):
                                item = x[0]
                                break
                    if item is None:
                        continue
                rank = out.rank
                found.append((out, g, item))
                if rank < best:
                    best = rank
            if best < _SPECIFIC:
                break
        if found:
            if own is None and not hedged and best == _SUPPORT and len(found) > 1:
                found, best = _detail_conflicts(found, best, rules, c)
            if own is None and hedged and len(found) > 1:
                found = _open_agreements(found, c)
                best = min(x[0].rank for x in found)
            if own is None and hedged and best in (_FLIP, _BROAD_FLIP) and not any(
                    x[0].status == "supported" or x[0].rank in (_HEDGED, _BROAD_HEDGED) for x in found):
                # A hedged claim that the reference denies outright ("Pneumothorax or
                # effusion." vs "No pneumothorax.") raises what the reference rules out:
                # unsupported (not contradicted: the claim only suggests it).
                chosen = [x for x in found if x[0].rank == best][:3]
                return _Judgement("unsupported", sc["unsupported"], tuple(("unsupported: hedged claim", ckid, c, o, g, i) for o, g, i in chosen),
                                  _unique(i for _, _, i in chosen), "conflicting")
            if hedged and best in _MISMATCH_RANKS:
                # a hedged claim: a mismatch decides only when no evidence agrees with it
                # (another statement of the same hedged finding is a second instance)
                agree = [x for x in found if x[0].rank not in _MISMATCH_RANKS]
                if agree:
                    found = agree
                    best = min(x[0].rank for x in agree)
            if len(found) == 1:
                top, g, item = found[0]
                if hedged and top.rank not in _MISMATCH_RANKS:
                    score = sc["uncertain_denied"] if top.status == "contradicted" else sc["uncertain"]
                    return _Judgement("uncertain", score, (("uncertain: hedged claim", ckid, c, top, g, item),), (item,), "hedged")
                status = top.status
                return _Judgement(status, top.score, ((status, ckid, c, top, g, item),), (item,), _basis_of(top.rank))
            chosen = [x for x in found if x[0].rank == best]
            if len(chosen) > 1:
                chosen.sort(key=_by_score)  # stable: the highest scores first, in evidence order
                chosen = chosen[:3]
                items = _unique(item for _, _, item in chosen)
            else:
                items = (chosen[0][2],)
            top = chosen[0][0]
            if hedged and top.rank not in _MISMATCH_RANKS:
                score = sc["uncertain_denied"] if top.status == "contradicted" else sc["uncertain"]
                return _Judgement("uncertain", score, tuple(("uncertain: hedged claim", ckid, c, o, g, i) for o, g, i in chosen), items, "hedged")
            status = top.status
            return _Judgement(status, top.score, tuple((status, ckid, c, o, g, i) for o, g, i in chosen), items, _basis_of(top.rank))
        if hedged:
            return _Judgement("uncertain", sc["uncertain"], (f"uncertain: hedged claim {self._describe(ckid, c)}; no {source} evidence mentions {c.observation}",), (), "hedged")
        return None

    def _unmentioned(self, source: str, c: Finding, ckid: int, convention: str) -> _Judgement:
        """Rule 8: no evidence of ``source`` mentions the finding; the source's policy under
        ``convention`` decides."""
        sc = self.rules.scores
        choice = self.rules.policy(source, c.presence, convention)
        if choice == ABSTAIN:
            return self._not_mentioned(source, c.observation)
        if choice == "supported":
            return _Judgement("supported", sc["supported_by_default"], (
                f"supported by default ({convention} convention): no {source} evidence mentions {c.observation}; an unmentioned finding is read as absent",), (), "convention")
        why = f" (the {convention} convention: an unmentioned finding is not entailed)" if c.presence == "absent" else ""
        return _Judgement(choice, sc.get(choice, sc["uncertain"]), (f"{choice}: no {source} evidence mentions {self._describe(ckid, c)}{why}",), (), "no_evidence")


@lru_cache(maxsize=4096)
def _is_normal_predicate(text: str) -> bool:
    """Whether a finding's text is a normal predicate of the default lexicon ("clear",
    "Normal"): the finding was implied by a normal statement, not named."""
    from reportgen.checkers.lexicon import NORMAL, load_lexicon, phrase_tokens

    return any(e.cat == NORMAL for e in load_lexicon().phrases.get(phrase_tokens(text), ()))


def _by_score(x: tuple) -> float:
    return -x[0].score


def _verdict(claim: Any, status: str, reasons: tuple[str, ...], evidence: tuple[EvidenceItem, ...], checker: str,
             score: float | None, basis: str) -> Verdict:
    return Verdict(claim, status, reasons, evidence, checker, score, basis)


def is_abstention(v: Verdict) -> bool:
    """An uncertain verdict without a score: the checker had nothing to compare."""
    return v.status == "uncertain" and v.score is None
