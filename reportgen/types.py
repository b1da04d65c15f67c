"""Core result types: frozen dataclasses with a JSON round trip.

Data flows one way: Study -> Report -> Claim -> EntityGraph / Finding -> Verdict.
Every type here is immutable (``@dataclass(frozen=True, slots=True)``) and serialises with
``to_dict`` / ``from_dict`` to plain JSON values, so results can be cached, diffed and
passed between processes. They are always built through their constructors, which check
their values (``__post_init__``); there is no second, unchecked way to make one.
Pydantic is kept for JSON/LLM boundaries; these are the in-process values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

from reportgen.errors import ReportgenError

# The RadGraph schema (Jain et al. 2021): an entity is anatomy or an observation, and an
# observation is definitely present, uncertain or definitely absent.
ENTITY_LABELS = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
RELATION_TYPES = ("located_at", "modify", "suggestive_of")
# The verdict vocabulary, defined here only. VERDICT_STATUSES: every status, in the order
# of the summary counts. STATUS_ORDER: the judging statuses, worst first ("worst status
# wins" everywhere: worst_status); "error" stands outside it. FLAGGED: the statuses that
# flag a claim as a hallucination.
VERDICT_STATUSES = ("supported", "contradicted", "unsupported", "uncertain", "error")
STATUS_ORDER = ("contradicted", "unsupported", "uncertain", "supported")
STATUS_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}
FLAGGED = ("contradicted", "unsupported")
_STATUS_SET = frozenset(VERDICT_STATUSES)


def is_flagged(status: str) -> bool:
    """Whether a claim with this status is flagged (contradicted or unsupported)."""
    return status in FLAGGED


def worst_status(statuses: Iterable[str]) -> str | None:
    """The worst of ``statuses`` by STATUS_ORDER (others, e.g. "error" or an abstention
    marker, are ignored); None when there is none."""
    rank = len(STATUS_ORDER)
    for s in statuses:
        r = STATUS_RANK.get(s, rank)
        if r < rank:
            rank = r
    return STATUS_ORDER[rank] if rank < len(STATUS_ORDER) else None


# "hypothetical": a request or recommendation ("evaluate for pneumonia", "rule out"), not a
# finding; RadGraph has no such label (its graph says OBS-U), so it lives in the Finding only.
PRESENCE = ("present", "absent", "uncertain", "hypothetical")
# Why a checker gave its status: one vocabulary for every checker, the JSONL records, the
# table and the HTML page (docs/checking.md "Basis"). ``uncertain`` alone means two things
# (a hedged claim; nothing to compare): the basis tells them apart.
VERDICT_BASES: Mapping[str, str] = {
    "matched": "the evidence states the same finding, or a broader or narrower one that agrees",
    "conflicting": "the evidence states the opposite presence, or another side, zone, severity or change",
    "hedged": "the claim itself is hedged ('may represent pneumonia'): never supported or contradicted outright",
    "weak_evidence": "the evidence mentions the finding only hedged or less specifically",
    "no_evidence": "no evidence mentions the finding",
    "convention": "no evidence mentions the finding; the chexpert convention reads an unmentioned finding as absent",
    "redacted": "a redacted word (XXXX) of the claim may narrow what it denies",
    "hypothetical": "a request, recommendation, condition or caveat ('evaluate for pneumonia', 'if there is concern for fracture'), not a finding: never supports or contradicts",
    "not_read": "no finding could be read off the claim",
    "no_source": "no evidence was given",
    "error": "the checker failed on this claim",
}


def default_basis(status: str, score: float | None) -> str:
    """The basis of a verdict whose checker did not name one (from its status)."""
    if status == "supported":
        return "matched"
    if status == "contradicted":
        return "conflicting"
    if status == "unsupported":
        return "no_evidence"
    if status == "error":
        return "error"
    return "no_evidence" if score is None else "weak_evidence"


LATERALITY = ("right", "left", "bilateral")
_ENTITY_LABEL_SET = frozenset(ENTITY_LABELS)
_RELATION_TYPE_SET = frozenset(RELATION_TYPES)
_PRESENCE_SET = frozenset(PRESENCE)
_LATERALITY_SET = frozenset((None, *LATERALITY))
_SIDE_SET = frozenset(("right", "left"))


def _check_choice(kind: str, value: str, options: Sequence[str]) -> None:
    if value not in options:
        raise ReportgenError("E001", f"invalid {kind} {value!r}", fix=f"use one of {', '.join(options)}")


def _check_span(kind: str, start: int, end: int) -> None:
    if not (isinstance(start, int) and isinstance(end, int)) or start < 0 or end < start:
        raise ReportgenError("E002", f"invalid {kind} span [{start}, {end})", fix="use 0 <= start <= end")


def _as_tuple(obj: Any, name: str) -> None:
    """A sequence field stored as a tuple (lists given by callers are copied)."""
    value = getattr(obj, name)
    if value.__class__ is not tuple:
        object.__setattr__(obj, name, tuple(value))


class _Json:
    """Mixin: a flat to_dict/from_dict for dataclasses whose fields are JSON values."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _to_json(value)
        return out


def _to_json(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Section(_Json):
    """A named section of a report; ``text == report.text[start:end]``."""

    name: str
    start: int
    end: int

    def __post_init__(self) -> None:
        _check_span("section", self.start, self.end)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Section":
        return cls(name=d["name"], start=d["start"], end=d["end"])


@dataclass(frozen=True, slots=True)
class Report(_Json):
    """A radiology report: its full text and the sections found in it.

    Section names are lower case ("findings", "impression", "indication", ...);
    text outside any heading is the section "text".
    """

    text: str
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        _as_tuple(self, "sections")
        for s in self.sections:
            if s.end > len(self.text):
                raise ReportgenError("E002", f"section {s.name!r} ends at {s.end}, past the text ({len(self.text)} chars)")

    def section_text(self, name: str) -> str | None:
        """Text of the first section called ``name``, or None."""
        for s in self.sections:
            if s.name == name:
                return self.text[s.start : s.end]
        return None

    @property
    def findings(self) -> str | None:
        return self.section_text("findings")

    @property
    def impression(self) -> str | None:
        return self.section_text("impression")

    @classmethod
    def from_sections(cls, sections: Mapping[str, str | None]) -> "Report":
        """Build "FINDINGS: ...\\n\\nIMPRESSION: ..." text with exact section offsets."""
        parts: list[str] = []
        spans: list[Section] = []
        pos = 0
        for name, body in sections.items():
            if not body:
                continue
            if parts:
                parts.append("\n\n")
                pos += 2
            head = f"{name.upper()}: "
            parts.append(head + body)
            spans.append(Section(name.lower(), pos + len(head), pos + len(head) + len(body)))
            pos += len(head) + len(body)
        return cls("".join(parts), tuple(spans))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Report":
        return cls(text=d["text"], sections=tuple(Section.from_dict(s) for s in d.get("sections", ())))


@dataclass(frozen=True, slots=True)
class Study(_Json):
    """One imaging study: images (paths), their views, clinical context, optional reference."""

    id: str
    images: tuple[str, ...] = ()
    views: tuple[str | None, ...] = ()
    indication: str | None = None
    comparison: str | None = None
    reference: Report | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ReportgenError("E003", "a study needs a non-empty string id")
        _as_tuple(self, "images")
        _as_tuple(self, "views")
        bad = next((v for v in self.views if v is not None and not isinstance(v, str)), None)
        if bad is not None:  # 'view': 7 raised AttributeError in the prompt, after the model was loaded
            raise ReportgenError("E741", f"study {self.id!r}: a view must be a name such as 'PA' or 'LATERAL', got {bad!r}",
                                 fix="write 'views': [\"PA\", \"LATERAL\"] (one per image) or 'view': \"PA\"")
        if self.views and len(self.views) != len(self.images):
            raise ReportgenError(
                "E004", f"study {self.id!r}: {len(self.views)} views for {len(self.images)} images",
                fix="give one view per image, or none",
            )

    @property
    def view(self) -> str | None:
        """View of the first image (e.g. "PA", "AP", "LATERAL"), if known."""
        return self.views[0] if self.views else None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Study":
        images = d.get("images", ())
        if isinstance(images, str):
            images = (images,)
        views = d.get("views", ())
        if isinstance(views, str):  # one view, as one image path may be a string ('views': "PA" was 2 views, P and A)
            views = (views,)
        if not views and d.get("view"):
            views = (d["view"],) * len(images)
        ref = d.get("reference")
        if isinstance(ref, str):
            ref = Report(ref)
        elif isinstance(ref, Mapping):
            ref = Report.from_dict(ref)
        known = {"id", "images", "views", "view", "indication", "comparison", "reference", "meta"}
        meta = dict(d.get("meta", {}))
        meta.update({k: v for k, v in d.items() if k not in known})
        return cls(
            id=d["id"], images=tuple(images), views=tuple(views), indication=d.get("indication"),
            comparison=d.get("comparison"), reference=ref, meta=meta,
        )


@dataclass(frozen=True, slots=True)
class Claim(_Json):
    """An atomic statement of a report.

    ``report[start:end]`` is the claim's source span. ``text`` is the claim as a standalone
    statement: equal to the span, except for claims split from a coordination, where it is
    rewritten ("No pleural effusion or pneumothorax." -> "No pneumothorax." with the span
    on "pneumothorax"). ``sentence_start``/``sentence_end`` give the whole source sentence.
    """

    text: str
    section: str
    start: int
    end: int
    sentence_start: int | None = None
    sentence_end: int | None = None

    def __post_init__(self) -> None:  # the checks inline: claims are made by the thousand
        start, end = self.start, self.end
        if start.__class__ is not int or end.__class__ is not int or start < 0 or end < start:
            _check_span("claim", start, end)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Claim":
        return cls(
            text=d["text"], section=d["section"], start=d["start"], end=d["end"],
            sentence_start=d.get("sentence_start"), sentence_end=d.get("sentence_end"),
        )


@dataclass(frozen=True, slots=True)
class Entity(_Json):
    """A RadGraph entity. ``start``/``end`` are character offsets into the text that was
    given to the extractor (the pipeline gives the whole report, so report offsets).
    ``norm`` is the lexicon's normal form ("pleural fluid" -> "pleural effusion") or None.
    """

    id: str
    text: str
    start: int
    end: int
    label: str
    norm: str | None = None

    def __post_init__(self) -> None:  # the checks inline: entities are made by the thousand
        if self.label not in _ENTITY_LABEL_SET:
            _check_choice("entity label", self.label, ENTITY_LABELS)
        start, end = self.start, self.end
        if start.__class__ is not int or end.__class__ is not int or start < 0 or end < start:
            _check_span("entity", start, end)

    @property
    def is_observation(self) -> bool:
        return self.label.startswith("OBS")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Entity":
        return cls(id=str(d["id"]), text=d["text"], start=d["start"], end=d["end"], label=d["label"], norm=d.get("norm"))


@dataclass(frozen=True, slots=True)
class Relation(_Json):
    """A directed RadGraph relation ``source -[type]-> target`` between entity ids."""

    type: str
    source: str
    target: str

    def __post_init__(self) -> None:
        if self.type not in _RELATION_TYPE_SET:
            _check_choice("relation type", self.type, RELATION_TYPES)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Relation":
        return cls(type=d["type"], source=str(d["source"]), target=str(d["target"]))


@dataclass(frozen=True, slots=True)
class EntityGraph(_Json):
    """Entities and relations of one text in the RadGraph schema."""

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()

    def __post_init__(self) -> None:
        if self.entities.__class__ is not tuple:
            object.__setattr__(self, "entities", tuple(self.entities))
        if self.relations.__class__ is not tuple:
            object.__setattr__(self, "relations", tuple(self.relations))
        if not self.entities and not self.relations:
            return
        ids = {e.id for e in self.entities}
        if len(ids) != len(self.entities):
            raise ReportgenError("E005", "entity ids in a graph must be unique")
        for r in self.relations:
            if r.source not in ids or r.target not in ids:
                raise ReportgenError("E005", f"relation {r.type} {r.source}->{r.target} names an unknown entity")

    def entity(self, entity_id: str) -> Entity:
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)

    def related(self, entity_id: str, rel_type: str | None = None) -> tuple[Entity, ...]:
        """Targets of relations going out of ``entity_id`` (optionally of one type)."""
        return tuple(
            self.entity(r.target) for r in self.relations
            if r.source == entity_id and (rel_type is None or r.type == rel_type)
        )

    def within(self, start: int, end: int) -> "EntityGraph":
        """The subgraph of entities whose spans lie inside [start, end)."""
        keep = tuple(e for e in self.entities if e.start >= start and e.end <= end)
        ids = {e.id for e in keep}
        rels = tuple(r for r in self.relations if r.source in ids and r.target in ids)
        return EntityGraph(keep, rels)

    def shifted(self, offset: int, prefix: str = "") -> "EntityGraph":
        """The same graph with every span moved by ``offset`` characters (and ``prefix``
        put before every entity id, e.g. "s3." to keep ids unique across sentences)."""
        if not self.entities or (not offset and not prefix):
            return self
        ents = tuple([Entity(prefix + e.id, e.text, e.start + offset, e.end + offset, e.label, e.norm) for e in self.entities])
        if not prefix:
            return EntityGraph(ents, self.relations)
        return EntityGraph(ents, tuple([Relation(r.type, prefix + r.source, prefix + r.target) for r in self.relations]))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EntityGraph":
        return cls(
            entities=tuple(Entity.from_dict(e) for e in d.get("entities", ())),
            relations=tuple(Relation.from_dict(r) for r in d.get("relations", ())),
        )


@dataclass(frozen=True, slots=True)
class Finding(_Json):
    """A normalised finding read off an EntityGraph: what is (not) seen, where, how much.

    This is what checkers compare. ``observation`` and ``anatomy`` are lexicon normal
    forms; ``locations`` are normalised zone words ("upper lobe", "base", "apex", ...).
    ``start``/``end`` locate the observation entity in the same coordinates as the graph.
    ``predominant``: the side that predominates in a finding on both sides ("bibasilar
    opacities, right greater than left": "right"), None when none is stated. ``zone_sides``:
    the side of each zone when the zones of one finding lie on different sides ("opacities
    in the left upper lobe and right lower lobe": ("left upper lobe", "right lower lobe")).
    """

    observation: str
    presence: str
    laterality: str | None = None
    locations: tuple[str, ...] = ()
    anatomy: str | None = None
    severity: str | None = None
    change: str | None = None
    text: str = ""
    start: int = 0
    end: int = 0
    predominant: str | None = None
    zone_sides: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # the checks inline: findings are made by the thousand
        if self.presence not in _PRESENCE_SET:
            _check_choice("presence", self.presence, PRESENCE)
        if self.laterality not in _LATERALITY_SET:
            _check_choice("laterality", self.laterality, LATERALITY)
        if self.predominant is not None and self.predominant not in _SIDE_SET:
            _check_choice("predominant", self.predominant, ("right", "left"))
        if self.locations.__class__ is not tuple:
            object.__setattr__(self, "locations", tuple(self.locations))
        if self.zone_sides.__class__ is not tuple:
            object.__setattr__(self, "zone_sides", tuple(self.zone_sides))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(**{f.name: (tuple(d[f.name]) if f.name in ("locations", "zone_sides") else d[f.name]) for f in fields(cls) if f.name in d})


@dataclass(frozen=True, slots=True)
class EvidenceItem(_Json):
    """One piece of evidence a claim can be compared with.

    ``source`` says where it comes from: "reference" (a reference report), "self" (another
    section of the same report), "image" (an image-derived region map or box), or any
    other name a checker uses. ``text``/``start``/``end`` locate it in its own document
    (for image evidence: a description, and 0/0). ``meta`` carries source-specific data
    (zone, boxes, similarity statistics, ...), JSON values only.
    """

    source: str
    text: str
    start: int = 0
    end: int = 0
    findings: tuple[Finding, ...] = ()
    score: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.findings.__class__ is not tuple:
            object.__setattr__(self, "findings", tuple(self.findings))

    def describe(self) -> str:
        """How a reason names this evidence: source, span and text."""
        where = f"[{self.start}:{self.end}]" if self.end > self.start else ""
        return f"{self.source}{where} {self.text!r}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvidenceItem":
        return cls(
            source=d["source"], text=d["text"], start=d.get("start", 0), end=d.get("end", 0),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", ())),
            score=d.get("score"), meta=dict(d.get("meta", {})),
        )


@dataclass(frozen=True, slots=True)
class Verdict(_Json):
    """A checker's judgement of one claim, with the reasons and the evidence it used.

    ``basis`` says why (``VERDICT_BASES``: ``hedged`` and ``no_evidence`` are both
    ``uncertain``, for different reasons); left out, it follows from the status
    (``default_basis``)."""

    claim: Claim
    status: str
    reasons: tuple[str, ...] = ()
    evidence: tuple[EvidenceItem, ...] = ()
    checker: str = ""
    score: float | None = None
    basis: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUS_SET:
            _check_choice("verdict status", self.status, VERDICT_STATUSES)
        if self.reasons.__class__ is not tuple:
            object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.evidence.__class__ is not tuple:
            object.__setattr__(self, "evidence", tuple(self.evidence))
        if self.basis is None:
            object.__setattr__(self, "basis", default_basis(self.status, self.score))
        elif self.basis not in VERDICT_BASES:
            _check_choice("verdict basis", self.basis, tuple(VERDICT_BASES))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Verdict":
        return cls(
            claim=Claim.from_dict(d["claim"]), status=d["status"], reasons=tuple(d.get("reasons", ())),
            evidence=tuple(EvidenceItem.from_dict(e) for e in d.get("evidence", ())),
            checker=d.get("checker", ""), score=d.get("score"), basis=d.get("basis"),
        )
