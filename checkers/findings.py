"""EntityGraph -> normalised findings (what is or is not seen, where, how much).

Works on graphs from any extractor: entities without ``norm`` (the radgraph backend) are
normalised through the lexicon. One Finding per head observation (an OBS entity that does
not modify another one):

- ``observation``: the lexicon normal form, made specific by its anatomy ("enlarged" at
  the heart -> "cardiomegaly"). Normal statements ("the lungs are clear") give the umbrella
  "abnormality" absent (``anatomy`` = its scope: "lung", "heart", "mediastinum", "pleura",
  "bone", "chest", ... or None when no anatomy is named) and one absent Finding per implied
  specific finding (opacity, consolidation, ... in lung); the RadGraph-style "normal"
  entity itself gives no Finding. "acute"/"active" makes the umbrella "acute abnormality".
- ``presence``: OBS-DP present, OBS-U uncertain, OBS-DA absent.
- ``anatomy``: the organ ("lung", "heart", "pleura", "mediastinum", "bone", "spine", ...) of
  the anatomy the observation is located at (of several, the observation's own organ when it
  is among them: "degenerative changes of the thoracic spine and right shoulder" is at the
  spine); ``locations``: zone normal forms in text order ("upper
  lobe", "middle lobe", "lower lobe", "base", "apex", "lingula", "costophrenic angle",
  "perihilar", "retrocardiac", "midlung", "hilum", "periphery"); ``laterality``: right /
  left / bilateral (right + left = bilateral; "bibasilar", "levoscoliosis" carry a side).
- ``severity``: trace, minimal, mild, small, moderate, large, severe, borderline.
- ``change``: new, increased, decreased, improved, unchanged, stable, chronic; else the
  temporal descriptor "acute" when present.
- A target of ``suggestive_of`` ("opacity suggestive of pneumonia") without a location of
  its own takes its source's.
- ``presence`` "hypothetical" (given ``text``): a finding that a request or condition cue
  precedes in its clause ("Evaluate for pneumonia.", "Recommend CT to exclude mass.", "If
  there is concern for fracture, ..."; lexicon ``cues.hypothetical``), or that a caveat cue
  follows there ("fractures may not be demonstrated"; ``cues.hypothetical_post``), is a
  request or a caveat, not a finding. RadGraph has
  no such label, so the graph keeps OBS-U (or whatever the cue gave) and only the Finding
  says it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from reportgen.checkers.lexicon import ANAT, CHG, DESC, LAT, NORMAL, OBS, SEV, TMP, Lexicon, load_lexicon, phrase_tokens
from reportgen.types import Entity, EntityGraph, Finding

PRESENCE = {"OBS-DP": "present", "OBS-U": "uncertain", "OBS-DA": "absent"}
SIDES = ("right", "left", "bilateral")
NORMAL_NORM = "normal"


@lru_cache(maxsize=1)
def _lex() -> Lexicon:
    return load_lexicon()


def findings_from_graph(graph: EntityGraph, lexicon: Lexicon | None = None, text: str | None = None) -> tuple[Finding, ...]:
    """Findings of one graph (see module doc), in entity order. ``text``: the text the graph's
    offsets point into; with it, requests ("evaluate for pneumonia") make findings hypothetical."""
    if not graph.entities:
        return ()
    lex = lexicon or _lex()
    out = _Reader(graph, lex).findings()
    if text is not None:
        cue = _hypothetical_re(lex)
        if cue is not None:
            out = tuple(_hypothetical(f, text, cue) for f in out)
        pred = _predominant_re(lex)
        if pred is not None and any(n in text for n in pred[0]):
            out = _predominant(out, text, pred[1])
    return out


_pred_res: dict[int, tuple[Lexicon, Any]] = {}


def _predominant_re(lex: Lexicon) -> tuple[str, Any] | None:
    """(substrings one of which every phrase holds, the phrases of ``predominant_side`` as one
    regex whose groups ``p`` and ``o`` are the predominant and the other side), or None."""
    hit = _pred_res.get(id(lex))
    if hit is None or hit[0] is not lex:
        spec = lex.data.get("predominant_side") or {}
        pats = [p for p in spec.get("patterns", ()) if p]
        rx = (tuple(spec.get("needles", ())) or ("",), re.compile("|".join(f"(?:{p})" for p in pats), re.I)) if pats else None
        hit = _pred_res[id(lex)] = (lex, rx)
    return hit[1]


def _predominant(out: tuple[Finding, ...], text: str, rx: Any) -> tuple[Finding, ...]:
    """Findings on both sides (or without a side) get the predominant side a phrase of their
    clause states ("bibasilar opacities, right greater than left"); the phrase must name two
    different sides."""
    phrases = []
    for m in rx.finditer(text):
        sides = [v.lower() for k, v in m.groupdict().items() if v]
        p = next((v.lower() for k, v in m.groupdict().items() if v and k.startswith("p")), None)
        o = next((v.lower() for k, v in m.groupdict().items() if v and k.startswith("o")), None)
        if p and (o is None or o != p) and sides:
            phrases.append((m.start(), m.end(), p))
    if not phrases:
        return out
    res = []
    for f in out:
        if f.laterality in (None, "bilateral") and f.presence in ("present", "uncertain"):
            a, b = _clause(text, f.start)
            side = next((p for s, e, p in phrases if a <= s and e <= b), None)
            if side:
                f = replace(f, predominant=side)
        res.append(f)
    return tuple(res)


def _clause(text: str, at: int) -> tuple[int, int]:
    """The clause of ``text`` around offset ``at`` (between sentence or clause ends)."""
    ends = [m.end() for m in _CLAUSE_END.finditer(text, 0, at)]
    m = _CLAUSE_END.search(text, at)
    return (ends[-1] if ends else 0), (m.start() if m else len(text))


HYPOTHETICAL_WINDOW = 60  # characters before a finding in which a request cue counts
_CLAUSE_END = re.compile(r"[.;:!?]")
# "cannot rule out", "not excluded", "difficult to exclude": a hedge, not a request
_HEDGE_BEFORE = re.compile(r"(?:\bcannot|\bcan not|\bnot|\bdifficult(?: to)?|\bunable(?: to)?|\bhard(?: to)?)\s+$", re.I)
_cue_res: dict[int, tuple[Lexicon, Any]] = {}


def _cue_regex(words) -> Any:
    words = [w for w in words if w]
    return re.compile(r"(?<![\w/])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?![\w/])", re.I) if words else None


def _hypothetical_re(lex: Lexicon) -> Any:
    """The request cues of ``lex`` (``cues.hypothetical``, before the finding) and the caveat
    cues (``cues.hypothetical_post``, after it) as a pair of regexes (None where empty), or
    None when both are empty."""
    hit = _cue_res.get(id(lex))
    if hit is None or hit[0] is not lex:
        cues = lex.data.get("cues", {})
        pre, post = _cue_regex(cues.get("hypothetical", ())), _cue_regex(cues.get("hypothetical_post", ()))
        hit = _cue_res[id(lex)] = (lex, (pre, post) if pre or post else None)
    return hit[1]


def _hypothetical(f: Finding, text: str, cue: Any) -> Finding:
    """``f`` with presence "hypothetical" when a request cue precedes it in its clause, or a
    caveat cue follows it there ("fractures may not be demonstrated")."""
    if f.presence == "hypothetical" or not 0 < f.start <= len(text):
        return f
    pre, post = cue
    window = text[max(0, f.start - HYPOTHETICAL_WINDOW): f.start]
    ends = list(_CLAUSE_END.finditer(window))
    if ends:
        window = window[ends[-1].end():]
    if pre is not None and any(not _HEDGE_BEFORE.search(window, 0, m.start()) for m in pre.finditer(window)):
        return replace(f, presence="hypothetical")
    if post is not None:
        after = text[f.end: f.end + HYPOTHETICAL_WINDOW]
        end = _CLAUSE_END.search(after)
        if post.search(after[: end.start()] if end else after):
            return replace(f, presence="hypothetical")
    return f


def _new_finding(observation, presence, laterality, locations, anatomy, severity, change, e: Entity) -> Finding:
    return Finding(observation, presence, laterality, locations, anatomy, severity, change, e.text, e.start, e.end)


class _Reader:
    def __init__(self, graph: EntityGraph, lex: Lexicon):
        self.lex = lex
        self.graph = graph
        self.ents = {e.id: e for e in graph.entities}
        self.located: dict[str, list[str]] = {}
        self.modifiers: dict[str, list[str]] = {}
        self.suggested_by: dict[str, list[str]] = {}
        self.modifies: set[str] = set()
        for r in graph.relations:
            if r.type == "located_at":
                self.located.setdefault(r.source, []).append(r.target)
            elif r.type == "modify":
                self.modifiers.setdefault(r.target, []).append(r.source)
                if self.ents[r.source].is_observation and self.ents[r.target].is_observation:
                    self.modifies.add(r.source)
            elif r.type == "suggestive_of":
                self.suggested_by.setdefault(r.target, []).append(r.source)
        self.norms = {e.id: self._norm(e) for e in graph.entities}
        # spans whose denial is explicit in the graph (rules graphs: "clear" OBS-DP normal
        # has an "abnormality" OBS-DA twin); elsewhere normal predicates are expanded here
        self.explicit = {(e.start, e.end) for e in graph.entities if e.label == "OBS-DA" and e.norm is not None}

    def _norm(self, e: Entity) -> str | None:
        if e.norm:
            return e.norm
        entries = self.lex.entries(e.text)
        want = (OBS, NORMAL, SEV, CHG, TMP, DESC) if e.is_observation else (ANAT, LAT)
        for cat in want:
            for x in entries:
                if x.cat == cat:
                    return x.norm
        return self.lex.normalize(e.text, OBS if e.is_observation else ANAT)

    def _cats(self, e: Entity) -> set[str]:
        return {x.cat for x in self.lex.entries(e.text)}

    def _side(self, e: Entity) -> str | None:
        """An explicit side ("right", "left", "bilateral") or one carried by the word
        ("bibasilar", "levoscoliosis", plural "bases"); the latter is marked implicit."""
        n = self.norms.get(e.id)
        if n in SIDES:
            return n
        entries = self.lex.entries(e.text)
        if not entries and e.norm and not e.is_observation:
            entries = self.lex.entries(e.norm)  # an elided zone word: "middle" (middle lobe) is right
        for x in entries:
            if x.laterality:
                implied = x.cat == ANAT and x.laterality == "bilateral" and phrase_tokens(e.text) not in self.lex.explicit_bilateral
                return "~" + x.laterality if implied else x.laterality
        return None

    def where(self, eid: str) -> tuple[list[str], list[str], set[str]]:
        """(organs, zones, sides) of the anatomy an observation is located at."""
        lex = self.lex
        organs: list[str] = []
        zones: list[tuple[int, str]] = []  # (start of the anatomy, zone): zones in text order
        sides: set[str] = set()
        visited: set[str] = set()
        self.zone_sides: list[tuple[int, str, str]] = []  # (start, side, zone) of sided zones
        stack = list(self.located.get(eid, ()))
        while stack:
            x = stack.pop()
            if x in visited:
                continue
            visited.add(x)
            side = self._side(self.ents[x])
            if side:
                sides.add(side)
            an = self.norms.get(x)
            if an and an not in SIDES:
                z = lex.zone.get(an)
                if z:
                    zones.append((self.ents[x].start, z))
                    zs = side or next((sd for sd in (self._side(self.ents[m]) for m in self.modifiers.get(x, ()) if m in self.ents) if sd), None)
                    if zs in ("right", "left"):
                        self.zone_sides.append((self.ents[x].start, zs, z))
                organ = lex.organ.get(an, an)
                if organ not in organs:
                    organs.append(organ)
            stack.extend(self.modifiers.get(x, ()))
        if len(zones) > 1:
            zones.sort(key=lambda t: t[0])
        return organs, list(dict.fromkeys(z for _, z in zones)), sides

    def findings(self) -> tuple[Finding, ...]:
        lex = self.lex
        out: list[Finding] = []
        for e in self.graph.entities:
            if not e.is_observation or e.id in self.modifies:
                continue
            obs = self.norms.get(e.id) or e.text.lower().strip()
            if e.norm is None:
                cats = self._cats(e)
                if cats and not (cats & {OBS, NORMAL}):
                    continue  # a modifier (another extractor's OBS label) left unattached
            organs, zones, sides = self.where(e.id)
            zone_sides = self.zone_sides
            if not organs and e.id in self.suggested_by:
                for src in self.suggested_by[e.id]:
                    o2, z2, s2 = self.where(src)
                    organs, zones, sides = organs or o2, zones or z2, sides or s2
            own = self._side(e)
            if own:
                sides.add(own)
            severity = change = temporal = None
            for mid in self.modifiers.get(e.id, ()):
                me = self.ents[mid]
                if not me.is_observation:
                    side = self._side(me)
                    if side:
                        sides.add(side)
                    continue
                mn = self.norms.get(mid) or ""
                obs = lex.modifier_rules.get((mn, obs), obs)
                if mn in lex.severity_norms:
                    severity = severity or mn
                elif mn in lex.change_norms:
                    change = change or mn
                elif mn == "acute":
                    temporal = temporal or mn
            laterality = _laterality(sides)
            zones_t = tuple(zones)
            anat_norms = [a for a in (self.norms.get(t) for t in self.located.get(e.id, ())) if a and a not in SIDES]
            if obs == NORMAL_NORM:
                if e.norm is not None or (e.start, e.end) in self.explicit:
                    continue  # rules graphs carry the denied findings as entities
                # a normal statement from another extractor: expand it here
                out.extend(self._denied(anat_norms, laterality, zones_t, "acute" if temporal else None, e, umbrella=True))
                continue
            for an in anat_norms:
                spec = lex.contextual.get((obs, an))
                if spec:
                    obs = spec
                    break
            if obs in (lex.umbrella, lex.acute_umbrella):
                if temporal == "acute":
                    obs = lex.acute_umbrella
                scopes = [s for an in anat_norms for s in lex.scope(an)] or [None]
                for scope in dict.fromkeys(scopes):
                    out.append(_new_finding(obs, PRESENCE[e.label], laterality, zones_t, scope, severity, change or temporal, e))
                if e.label == "OBS-DA":  # the specifics an acute umbrella denies are acute too
                    out.extend(self._denied(anat_norms, laterality, zones_t, "acute" if obs == lex.acute_umbrella else None, e, umbrella=False))
                continue
            home = lex.obs_organ.get(obs)  # of several organs, the finding's own when named
            anatomy = (home if home in organs else organs[0]) if organs else home
            f = _new_finding(obs, PRESENCE[e.label], laterality, zones_t, anatomy, severity, change or temporal, e)
            if zone_sides and (len({sd for _, sd, _ in zone_sides}) > 1 or laterality == "bilateral"):
                # "left upper lobe and right lower lobe"; "bibasilar and left perihilar" (the
                # left perihilar zone is one side of a bilateral finding)
                f = replace(f, zone_sides=tuple(dict.fromkeys(f"{sd} {z}" for _, sd, z in sorted(zone_sides))))
            out.append(f)
        return tuple(out)

    def _denied(self, anat_norms, laterality, zones, temporal, e: Entity, umbrella: bool) -> list[Finding]:
        lex = self.lex
        out = []
        for an in anat_norms or [lex.default_anatomy]:
            if umbrella:
                name = lex.acute_umbrella if temporal else lex.umbrella
                for scope in lex.scope(an if anat_norms else None):
                    out.append(_new_finding(name, "absent", laterality, zones, scope, None, temporal, e))
            scope = lex.scope(an)
            for f in lex.implied(an):
                anatomy = scope[0] if len(scope) == 1 else lex.obs_organ.get(f, scope[0])
                out.append(_new_finding(f, "absent", laterality, zones, anatomy, None, temporal, e))
        return out


def _laterality(sides: set[str]) -> str | None:
    explicit = {x for x in sides if not x.startswith("~")}
    sides = explicit or {x[1:] for x in sides}  # "right middle and lower lobes" is right, not plural-bilateral
    if not sides:
        return None
    if "bilateral" in sides or ("right" in sides and "left" in sides):
        return "bilateral"
    return next(iter(sides))


__all__ = ["findings_from_graph", "PRESENCE"]
