"""The checking pipeline: report text -> claims -> graphs -> findings -> verdicts.

``Pipeline.check(id, report_text, reference_text=None, study=None)`` reads the report
(claims, graphs and findings via ``reportgen.checkers.read.read_report``), builds the evidence
(the reference report's claims, the report's own claims for internal consistency, and
image evidence when a region checker and a study with images are given), runs every
checker, and combines their verdicts into one status per claim.

Combining verdicts of several checkers (and of several sources inside one checker):

1. ``error`` verdicts are dropped when another checker gave a real verdict; a claim is
   ``error`` only when every checker failed on it.
2. Abstentions (``uncertain`` with score None: "nothing to compare") are dropped when
   another checker gave a real verdict.
3. The worst remaining status wins: contradicted > unsupported > uncertain > supported.
   One checker flagging a claim is enough to flag it; that is the conservative choice
   for hallucination detection.
4. The claim's score is the lowest score of the remaining verdicts; its reasons are the
   deciding verdicts' reasons first, then the others'. Every verdict is kept in the
   record under ``"verdicts"``.

``ReportResult.to_record()`` is the JSONL output contract of ``reportgen check``:
``{"id", "error", "claims": [{"text", "section", "start", "end", "status", "reasons",
"entities", ...}], "summary": {...}}`` with ``start``/``end`` offsets into the input text.
"""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from reportgen.checkers.evidence import IMAGE, reference_evidence, self_evidence
from reportgen.checkers.graph_checker import GraphChecker, is_abstention
from reportgen.errors import ReportgenError, with_error_code
from reportgen.jsonl import MAX_RECORD_CHARS
from reportgen.protocols import CheckedClaim, Checker
from reportgen.types import FLAGGED, VERDICT_STATUSES, Claim, EntityGraph, EvidenceItem, Finding, Report, Study, Verdict, worst_status

log = logging.getLogger(__name__)

# Evidence sources whose ``meta`` goes into the record (``verdicts[].evidence_meta``): the
# region checker's numbers (zone, cnr, best_zone, ...). Text evidence meta (sections,
# sentence spans) is already in the reasons.
META_SOURCES = frozenset({IMAGE, "box"})
CHECKERS: dict[str, Callable[..., Checker]] = {"graph": GraphChecker}
# Checkers that need an LLM endpoint (``Pipeline(llm=LLMChecker...)``, reportgen.checkers.llm_checker).
LLM_CHECKERS = ("llm", "cascade")


class RegionCheckerLike(Protocol):
    """What the pipeline needs of the region checker (issue 5)."""

    name: str

    def check_images(self, images: Sequence[str], views: Sequence[str | None], claims: Sequence[CheckedClaim]) -> list[Verdict]: ...


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """One claim with what was read off it and the combined verdict of all checkers."""

    claim: Claim
    graph: EntityGraph
    findings: tuple[Finding, ...]
    status: str
    verdicts: tuple[Verdict, ...] = ()
    reasons: tuple[str, ...] = ()
    score: float | None = None
    basis: str = "no_evidence"  # why: reportgen.types.VERDICT_BASES (the deciding verdict's)

    def to_dict(self, described: dict[int, str] | None = None) -> dict[str, Any]:
        # Written out by hand: the generic dataclass walk costs more than checking.
        # ``described``: evidence descriptions by id(item), shared by the claims of a record.
        c = self.claim
        return {
            "text": c.text, "section": c.section, "start": c.start, "end": c.end,
            "status": self.status, "basis": self.basis, "reasons": list(self.reasons),
            "entities": [
                {"id": e.id, "text": e.text, "start": e.start, "end": e.end, "label": e.label, "norm": e.norm}
                for e in self.graph.entities
            ],
            "relations": [{"type": r.type, "source": r.source, "target": r.target} for r in self.graph.relations],
            "findings": [
                {
                    "observation": f.observation, "presence": f.presence, "laterality": f.laterality,
                    "locations": list(f.locations), "anatomy": f.anatomy, "severity": f.severity, "change": f.change,
                    "text": f.text, "start": f.start, "end": f.end,
                    "predominant": f.predominant, "zone_sides": list(f.zone_sides),
                }
                for f in self.findings
            ],
            "score": self.score,
            "sentence_start": c.sentence_start, "sentence_end": c.sentence_end,
            # Each checker's verdict; its reasons are in "reasons" above (prefixed with the
            # checker's name when several checkers ran), so they are not repeated here.
            "verdicts": [_verdict_dict(v, {} if described is None else described) for v in self.verdicts],
        }


def _verdict_dict(v: Verdict, described: dict[int, str]) -> dict[str, Any]:
    evidence = []
    meta = False
    for e in v.evidence:  # the items of a report recur in many verdicts: described once
        text = described.get(id(e))
        if text is None:
            text = described[id(e)] = e.describe()
        evidence.append(text)
        meta = meta or e.source in META_SOURCES
    d: dict[str, Any] = {"checker": v.checker, "status": v.status, "basis": v.basis, "score": v.score, "evidence": evidence}
    if meta:
        # aligned with "evidence": the image evidence's numbers (zone, cnr, best_zone, ...)
        d["evidence_meta"] = [dict(e.meta) if e.source in META_SOURCES else {} for e in v.evidence]
    return d


@dataclass(frozen=True, slots=True)
class ReportResult:
    """The checked report: its claims with verdicts, or the error that stopped it."""

    id: str
    report: Report | None
    claims: tuple[ClaimResult, ...] = ()
    error: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The output record of `reportgen check` (extend, never rename); a failed report's
        record carries its code as ``error_code`` beside ``error``."""
        described: dict[int, str] = {}
        record = {
            "id": self.id,
            "error": self.error,
            "claims": [c.to_dict(described) for c in self.claims],
            "summary": dict(self.summary),
        }
        return with_error_code(record) if self.error else record


def empty_summary(**extra: Any) -> dict[str, Any]:
    """The summary of a report with no claims (also used for error records)."""
    out: dict[str, Any] = {"claims": 0, **{s: 0 for s in VERDICT_STATUSES}, "not_checked": 0, "flagged": 0}
    out.update(extra)
    return out


def combine_verdicts(verdicts: Sequence[Verdict]) -> tuple[str, float | None, tuple[str, ...], str]:
    """One status, score, reasons and basis for a claim from several checkers' verdicts
    (the basis of the first deciding verdict)."""
    if len(verdicts) == 1:
        v = verdicts[0]
        return v.status, v.score, v.reasons, v.basis
    if not verdicts:
        return "uncertain", None, ("not checked: no checker gave a verdict",), "no_source"
    several = len({v.checker for v in verdicts}) > 1

    def reasons_of(vs: Iterable[Verdict]) -> list[str]:
        return [f"{v.checker}: {r}" if several else r for v in vs for r in v.reasons]

    ok = [v for v in verdicts if v.status != "error"]
    if not ok:
        return "error", None, tuple(reasons_of(verdicts)), "error"
    real = [v for v in ok if not is_abstention(v)] or ok
    worst = worst_status(v.status for v in real)
    deciding = [v for v in real if v.status == worst]
    rest = [v for v in verdicts if all(v is not d for d in deciding)]
    scores = [v.score for v in real if v.score is not None]
    return (worst, (min(scores) if scores else None), tuple(dict.fromkeys(reasons_of(deciding) + reasons_of(rest))),
            deciding[0].basis)


def _validate_text(kind: str, text: Any) -> str | None:
    """A problem with a report text, or None."""
    if not isinstance(text, str):
        return f"E302 {kind} must be a string, got {type(text).__name__}"
    if not text.strip():
        return f"E301 {kind} is empty"
    if len(text) > MAX_RECORD_CHARS:
        return f"E303 {kind} has {len(text):,} characters, over the limit of {MAX_RECORD_CHARS:,}"
    return None


class Pipeline:
    """Claims -> graphs -> findings -> verdicts for one report at a time.

    ``extractor``: graph backend name for ``read_report`` ("rules" or "radgraph").
    ``checkers``: names (``"graph"``) or Checker objects. ``self_check``: add the report's
    own claims as evidence (internal consistency). ``region``: an optional region
    checker (``check_images(images, views, claims)``), called for studies with images.
    ``splitter``: the claim splitter's name (``reportgen.checkers.claims.CLAIM_SPLITTERS``:
    "rules", used with every extractor) or a ClaimSplitter object.
    ``reader``: replaces ``reportgen.checkers.read.read_report`` (text -> object with ``report``
    and ``claims``) altogether. ``llm``: an
    ``reportgen.checkers.llm_checker.LLMChecker`` for the checker names ``"llm"`` and
    ``"cascade"`` (rules first, the LLM for what they leave uncertain). ``convention``: how a finding that the
    reference never mentions is read, ``"chexpert"`` (default: an unmentioned negative claim
    is supported) or ``"radfact"`` (it is unsupported, basis ``no_evidence``); given to the
    checkers named here and stated in every summary (``summary.convention``).
    """

    def __init__(
        self,
        extractor: str = "rules",
        checkers: Sequence[str | Checker] = ("graph",),
        self_check: bool = True,
        region: RegionCheckerLike | None = None,
        *,
        reader: Callable[[str], Any] | None = None,
        splitter: str = "rules",
        convention: str | None = None,
        llm: Any = None,
    ):
        self.extractor = extractor
        self.splitter = splitter
        self.self_check = self_check
        self.region = region
        self.convention = resolve_convention(convention)
        self.llm = llm
        self.checkers: tuple[Checker, ...] = tuple(self._make_checker(c, self.convention, llm) for c in checkers)
        self._read = reader if reader is not None else default_reader(extractor, splitter)
        self._custom_reader = reader is not None
        self._named_checkers = tuple(c for c in checkers if isinstance(c, str))

    def spec(self) -> dict[str, Any]:
        """The arguments that rebuild this pipeline in another process (``Pipeline(**spec)``):
        only for a pipeline of named parts (the default reader, registered checkers, no
        region checker, no LLM checker)."""
        named = self._named_checkers
        if (self._custom_reader or self.region is not None or self.llm is not None or len(named) != len(self.checkers)
                or not isinstance(self.splitter, str)):
            raise ReportgenError("E342", "this pipeline has parts given as objects (a reader, checker, LLM or region checker): "
                                 "it cannot be rebuilt in another process", fix="check in one process (workers=1)")
        return {"extractor": self.extractor, "checkers": named, "self_check": self.self_check, "splitter": self.splitter,
                "convention": self.convention}

    @staticmethod
    def _make_checker(c: str | Checker, convention: str, llm: Any = None) -> Checker:
        if isinstance(c, str):
            if c in LLM_CHECKERS:
                if llm is None:
                    raise ReportgenError("E484", f"checker {c!r} needs an LLM endpoint",
                                         fix="pass llm=LLMChecker.from_endpoint(URL, MODEL) (CLI: --llm-url URL --llm-model NAME)")
                from reportgen.checkers.llm_checker import CascadeChecker

                return llm if c == "llm" else CascadeChecker(llm, convention=convention)
            if c not in CHECKERS:
                raise ReportgenError("E311", f"unknown checker {c!r}", fix=f"use one of {', '.join((*CHECKERS, *LLM_CHECKERS))}")
            return CHECKERS[c](convention=convention)
        return c

    @property
    def checker_names(self) -> list[str]:
        return [c.name for c in self.checkers] + ([self.region.name] if self.region is not None else [])

    def check(
        self, id: str, report_text: str, reference_text: str | None = None, study: Study | None = None,
        *, region_error: str | None = None,
    ) -> ReportResult:
        """Check one report; problems become ``ReportResult.error``, never exceptions.

        ``region_error``: a problem with the study's images the caller found before
        checking (e.g. a missing file): the region checker is not run; every claim gets an
        ``error`` verdict from it with this message (dropped in the combination, so the
        other checkers decide) and ``summary.region_error`` says it. The same happens when
        the region checker raises. With a region checker, ``summary.region`` says whether the
        study was checked (``checked``, ``no_images``, ``error``).
        """
        return self._check(id, report_text, reference_text, study, region_error, None)[0]

    def check_conventions(self, id: str, report_text: str, reference_text: str | None, conventions: Sequence[str]) -> list[ReportResult]:
        """``check`` of one report under each of ``conventions`` (one result each, equal to
        ``Pipeline(..., convention=c).check``), reading and comparing once: every checker
        must offer ``check_conventions`` (the graph checker does) and there is no region
        checker; E870 otherwise."""
        missing = [c.name for c in self.checkers if not hasattr(c, "check_conventions")]
        if missing or self.region is not None:
            what = f"the checker(s) {', '.join(missing)}" if missing else "the region checker"
            raise ReportgenError("E870", f"{what} cannot check several conventions in one pass",
                                 fix="check once per convention with Pipeline(..., convention=NAME).check")
        convs = tuple(resolve_convention(c) for c in conventions)
        return self._check(id, report_text, reference_text, None, None, convs)

    def _check(self, id: str, report_text: str, reference_text: str | None, study: Study | None, region_error: str | None,
               conventions: tuple[str, ...] | None) -> list[ReportResult]:
        """``check`` under this pipeline's convention (``conventions`` None) or under each
        of ``conventions`` (checkers with ``check_conventions``), one result each."""
        convs = (self.convention,) if conventions is None else conventions
        bases = [{"checkers": self.checker_names, "extractor": self.extractor, "convention": c} for c in convs]
        problem = _validate_text("report", report_text)
        if problem:
            return [ReportResult(id, None, (), problem, empty_summary(**base)) for base in bases]
        if reference_text is None and study is not None and study.reference is not None:
            reference_text = study.reference.text
        try:
            read = self._read(report_text)
        except ReportgenError as e:
            return [ReportResult(id, None, (), str(e), empty_summary(**base)) for base in bases]
        except Exception as e:  # a bug in a backend must not stop the batch
            log.warning("record %s: reading failed with %s", id, type(e).__name__)
            return [ReportResult(id, None, (), f"E399 reading the report failed: {type(e).__name__}: {e}", empty_summary(**base))
                    for base in bases]

        evidence: list[EvidenceItem] = []
        notes: dict[str, Any] = {}
        if reference_text is not None:
            ref_problem = _validate_text("reference", reference_text)
            if ref_problem:
                notes["reference_error"] = ref_problem
            else:
                try:
                    evidence.extend(reference_evidence(self._read(reference_text)))
                except ReportgenError as e:
                    notes["reference_error"] = str(e)
        if self.self_check:
            evidence.extend(self_evidence(read))

        claims: tuple[CheckedClaim, ...] = tuple(read.claims)
        # per convention, per claim, the checkers' verdicts
        per_conv: list[list[list[Verdict]]] = [[[] for _ in claims] for _ in convs]
        for checker in self.checkers:
            runs = [self._run_checker(checker, claims, evidence)] if conventions is None else \
                self._run_checker_conventions(checker, claims, evidence, convs)
            for per_claim, verdicts in zip(per_conv, runs):
                for i, v in enumerate(verdicts):
                    if v is not None:
                        per_claim[i].append(v)
        per_claim = per_conv[0]  # the region checker runs only with one convention (check)
        sources = {e.source for e in evidence}
        if self.region is not None and (region_error is not None or (study is not None and study.images)):
            if region_error is not None:
                region_verdicts = self._region_errors(claims, region_error)
            else:
                region_verdicts = self._run_region(study, claims)  # type: ignore[arg-type]
            for i, v in enumerate(region_verdicts):
                if v is not None:
                    per_claim[i].append(v)
                    if v.status != "error":
                        sources.add(IMAGE)
            failed = next((v for v in region_verdicts if v is not None and v.status == "error"), None)
            if failed is not None:
                notes["region_error"] = failed.reasons[0] if failed.reasons else "region checking failed"

        out = []
        for base, per_claim in zip(bases, per_conv):
            results = []
            for cc, vs in zip(claims, per_claim):
                status, score, reasons, basis = combine_verdicts(vs)
                results.append(ClaimResult(cc.claim, cc.graph, tuple(cc.findings), status, tuple(vs), tuple(reasons), score, basis))
            summary = summarise(results, evidence=sorted(sources), reference=_reference_state(reference_text, notes), **base)
            summary.update(notes)
            if self.region is not None:  # whether the study's images were checked
                summary["region"] = "error" if "region_error" in notes else ("checked" if study is not None and study.images else "no_images")
            out.append(ReportResult(id, read.report, tuple(results), None, summary))
        return out

    def check_many(self, items: Iterable[tuple[str, str, str | None]]) -> Iterator[ReportResult]:
        """Check ``(id, report_text, reference_text_or_None)`` items, one result each."""
        for id, text, ref in items:
            yield self.check(id, text, ref)

    def _run_checker(self, checker: Checker, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict | None]:
        try:
            return _align(claims, checker.check(claims, evidence))
        except Exception as e:
            msg = str(e) if isinstance(e, ReportgenError) else f"E313 checker {checker.name!r} failed: {type(e).__name__}: {e}"
            return [Verdict(cc.claim, "error", (msg,), (), checker.name, None) for cc in claims]

    def _run_checker_conventions(self, checker: Any, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem],
                                 convs: tuple[str, ...]) -> list[list[Verdict | None]]:
        try:
            return [_align(claims, vs) for vs in checker.check_conventions(claims, evidence, convs)]
        except Exception as e:
            msg = str(e) if isinstance(e, ReportgenError) else f"E313 checker {checker.name!r} failed: {type(e).__name__}: {e}"
            return [[Verdict(cc.claim, "error", (msg,), (), checker.name, None) for cc in claims] for _ in convs]

    def _run_region(self, study: Study, claims: Sequence[CheckedClaim]) -> list[Verdict | None]:
        try:
            flags = (study.meta or {}).get("mirrored")
            kw = {"mirrored": flags} if flags else {}
            return _align(claims, self.region.check_images(study.images, study.views, claims, **kw))  # type: ignore[union-attr]
        except Exception as e:
            msg = str(e) if isinstance(e, ReportgenError) else f"E320 region checker failed: {type(e).__name__}: {e}"
            return self._region_errors(claims, msg)

    def _region_errors(self, claims: Sequence[CheckedClaim], msg: str) -> list[Verdict | None]:
        name = getattr(self.region, "name", "region")
        return [Verdict(cc.claim, "error", (msg,), (), name, None) for cc in claims]


def resolve_convention(convention: str | None) -> str:
    """The convention name (None: the checking rules' default, chexpert); E350 if unknown."""
    from reportgen.checkers.graph_checker import CheckingRules

    return CheckingRules.load().check_convention(convention)


def _align(claims: Sequence[CheckedClaim], verdicts: Sequence[Verdict]) -> list[Verdict | None]:
    """Verdicts in claim order, None where a checker gave none (it judges only some claims,
    e.g. the region checker only localisable findings). One verdict per claim in order is
    taken as is; otherwise verdicts are matched to claims by ``Verdict.claim``."""
    verdicts = list(verdicts)
    if len(verdicts) == len(claims) and all(v.claim is cc.claim or v.claim == cc.claim for v, cc in zip(verdicts, claims)):
        return verdicts
    by_claim: dict[Claim, Verdict] = {}
    for v in verdicts:
        by_claim.setdefault(v.claim, v)
    return [by_claim.get(cc.claim) for cc in claims]


@contextmanager
def batch_gc(gen0_threshold: int = 10_000) -> Iterator[None]:
    """Garbage-collector settings for checking a batch in one process (``reportgen check``
    and ``evals.bench.check_throughput`` use it; importing the library changes nothing).

    Checking with the rules extractor makes no reference cycles (none over the IU
    reports), so there the collector only costs time: the objects alive when the batch
    starts (lexicon, rules, tokenizer, a loaded model, the reference reports) are moved out
    of its view (``gc.freeze()``) and young collections run every ``gen0_threshold``
    container allocations instead of every 700 (cycles, if a backend makes any, are still
    collected). The previous threshold is restored and the frozen objects are unfrozen on
    exit."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def default_reader(extractor: str, splitter: str | Any = "rules") -> Callable[[str], Any]:
    """``reportgen.checkers.read.read_report`` bound to one extractor backend and one claim
    splitter, resolved once (an unavailable backend fails here, before any record is read)."""
    from reportgen.checkers.claims import get_claim_splitter
    from reportgen.checkers.graphs import resolve_extractor
    from reportgen.checkers.read import read_report

    backend = resolve_extractor(extractor)
    split = get_claim_splitter(splitter)

    def read(text: str) -> Any:
        return read_report(text, extractor=backend, splitter=split)

    return read


def _reference_state(reference_text: str | None, notes: Mapping[str, Any]) -> str:
    if reference_text is None:
        return "none"
    return "invalid" if "reference_error" in notes else "given"


def summarise(results: Sequence[ClaimResult], **extra: Any) -> dict[str, Any]:
    """Counts per status, claims nobody could check, and flagged claims."""
    out = empty_summary()
    out["claims"] = len(results)
    for r in results:
        out[r.status] += 1
        if r.status == "uncertain" and all(is_abstention(v) or v.status == "error" for v in r.verdicts):
            out["not_checked"] += 1
    out["flagged"] = sum(out[s] for s in FLAGGED)
    out.update(extra)
    return out
