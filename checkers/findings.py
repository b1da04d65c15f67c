"""EntityGraph -> normalised findings (what is or is not seen, where, how much).

Works on graphs from any extractor: entities without ``norm`` (the radgraph backend) are
normalised through the lexicon. One Finding per head observation (an OBS entity that does
not modify another one):

- ``observation``: the lexicon normal form, made specific by its anatomy ("enlarged" at
  the heart -> "cardiomegaly"); normal statements give the umbrella "abnormality" (or
  "acute abnormality") with ``presence="absent"`` and one absent Finding per implied
  specific finding ("the lungs are clear" -> opacity, consolidation, ... absent in lung).
  The RadGraph-style "normal" entity itself gives no Finding.
- ``presence``: OBS-DP present, OBS-U uncertain, OBS-DA absent.
- ``anatomy``: the organ ("lung", "heart", "pleura", "mediastinum", "bone", ...) of the
  anatomy it is located at; ``locations``: zone normal forms ("lower lobe", "base",
  "apex", "lingula", "costophrenic angle", "perihilar", "retrocardiac", "midlung", ...);
  ``laterality``: right / left / bilateral (right + left = bilateral).
- ``severity``: trace, minimal, mild, small, moderate, large, severe, borderline.
- ``change``: new, increased, decreased, improved, unchanged, stable, chronic; else the
  temporal descriptor "acute" when present.
- A target of ``suggestive_of`` ("opacity suggestive of pneumonia") without its own
  location takes its source's.
"""

from __future__ import annotations

from functools import lru_cache

from checkers.lexicon import ANAT, CHG, DESC, LAT, OBS, SEV, TMP, Lexicon, load_lexicon
from reportgen.types import Entity, EntityGraph, Finding

PRESENCE = {"OBS-DP": "present", "OBS-U": "uncertain", "OBS-DA": "absent"}
NORMAL = "normal"


@lru_cache(maxsize=1)
def _lex() -> Lexicon:
    return load_lexicon()


def findings_from_graph(graph: EntityGraph, lexicon: Lexicon | None = None) -> tuple[Finding, ...]:
    """Findings of one graph (see module doc), in entity order."""
    if not graph.entities:
        return ()
    lex = lexicon or _lex()
    return _findings(graph, lex)


def _norm(e: Entity, lex: Lexicon, cat: str | None = None) -> str | None:
    if e.norm:
        return e.norm
    n = lex.normalize(e.text, cat)
    if n is None and cat == OBS:
        # another extractor may tag a modifier or a normal predicate as an observation
        for c in (NORMAL_CAT, SEV, CHG, TMP, DESC):
            if lex.lookup(e.text, c):
                return lex.lookup(e.text, c).norm
    return n


NORMAL_CAT = "normal"


def _findings(graph: EntityGraph, lex: Lexicon) -> tuple[Finding, ...]:
    ents = {e.id: e for e in graph.entities}
    located: dict[str, list[str]] = {}
    modifiers: dict[str, list[str]] = {}
    suggested_by: dict[str, list[str]] = {}
    modifies: set[str] = set()
    for r in graph.relations:
        if r.type == "located_at":
            located.setdefault(r.source, []).append(r.target)
        elif r.type == "modify":
            modifiers.setdefault(r.target, []).append(r.source)
            if ents[r.source].is_observation and ents[r.target].is_observation:
                modifies.add(r.source)
        elif r.type == "suggestive_of":
            suggested_by.setdefault(r.target, []).append(r.source)
    norms = {e.id: (_norm(e, lex, OBS) if e.is_observation else _norm(e, lex, ANAT)) for e in graph.entities}
    # spans that carry explicit denied findings (rules graphs); elsewhere normal
    # statements are expanded here (radgraph graphs)
    expanded_spans = {(e.start, e.end) for e in graph.entities if e.label == "OBS-DA" and e.norm and e.norm != NORMAL
                      and any(o.norm == NORMAL and (o.start, o.end) == (e.start, e.end) for o in graph.entities)}

    def where(eid: str, seen: set[str] | None = None):
        """(organs, zones, sides) of the anatomy an observation is located at."""
        organs: list[str] = []
        zones: list[str] = []
        sides: set[str] = set()
        for a in located.get(eid, ()):
            stack = [a]
            visited: set[str] = set()
            while stack:
                x = stack.pop()
                if x in visited:
                    continue
                visited.add(x)
                ae = ents[x]
                an = norms.get(x)
                side = _side(ae, an, lex)
                if side:
                    sides.add(side)
                if an and an not in ("right", "left", "bilateral"):
                    if an in lex.zone and lex.zone[an] not in zones:
                        zones.append(lex.zone[an])
                    organ = lex.organ.get(an)
                    if organ and organ not in organs:
                        organs.append(organ)
                    elif organ is None and an not in organs:
                        organs.append(an)
                stack.extend(modifiers.get(x, ()))
        return organs, zones, sides

    out: list[Finding] = []
    for e in graph.entities:
        if not e.is_observation or e.id in modifies:
            continue
        obs = norms.get(e.id) or e.text.lower().strip()
        kind = _kind(e, obs, lex)
        if kind in ("mod", "lat"):
            continue  # a modifier left unattached
        organs, zones, sides = where(e.id)
        anat_norms = [norms.get(a) for a in located.get(e.id, ())]
        if not organs and e.id in suggested_by:
            for src in suggested_by[e.id]:
                o2, z2, s2 = where(src)
                organs, zones, sides = organs or o2, zones or z2, sides or s2
        own_side = _side(e, None, lex)
        if own_side:
            sides.add(own_side)
        severity = change = temporal = None
        for mid in modifiers.get(e.id, ()):
            me = ents[mid]
            mn = norms.get(mid) or ""
            if me.label == "ANAT-DP":
                side = _side(me, mn, lex)
                if side:
                    sides.add(side)
                continue
            cat = _mod_cat(me, mn, lex)
            if cat == SEV and severity is None:
                severity = mn
            elif cat == CHG and change is None:
                change = mn
            elif cat == TMP and temporal is None:
                temporal = mn
        laterality = _laterality(sides)
        presence = PRESENCE[e.label]
        if obs == NORMAL:
            if (e.start, e.end) in expanded_spans:
                continue
            # a normal statement from another extractor: expand it here
            targets = [a for a in anat_norms if a] or [lex.default_anatomy]
            for an in targets:
                for scope in lex.scope(an):
                    out.append(Finding(lex.umbrella, "absent", laterality, tuple(zones), scope, None, temporal, e.text, e.start, e.end))
                for f in lex.implied(an):
                    out.append(Finding(f, "absent", laterality, tuple(zones), lex.organ.get(an, an), None, None, e.text, e.start, e.end))
            continue
        # make generic observations specific by their anatomy
        for an in anat_norms:
            if an:
                spec = lex.specific(obs, an)
                if spec != obs:
                    obs = spec
                    break
        if obs in (lex.umbrella, lex.acute_umbrella):
            if temporal == "acute":
                obs = lex.acute_umbrella
            scopes = [s for an in anat_norms if an for s in lex.scope(an)] or [None]
            for scope in dict.fromkeys(scopes):
                out.append(Finding(obs, presence, laterality, tuple(zones), scope, severity, change or temporal, e.text, e.start, e.end))
            if presence == "absent" and not any((x.start, x.end) == (e.start, e.end) and x.id != e.id and x.label == "OBS-DA" for x in graph.entities):
                for an in ([a for a in anat_norms if a] or [lex.default_anatomy]):
                    for f in lex.implied(an):
                        out.append(Finding(f, "absent", laterality, tuple(zones), lex.organ.get(an, an), None, None, e.text, e.start, e.end))
            continue
        anatomy = organs[0] if organs else None
        if anatomy is not None and anatomy in lex.scopes and obs in (lex.umbrella,):
            anatomy = lex.scopes[anatomy][0]
        out.append(Finding(obs, presence, laterality, tuple(zones), anatomy, severity, change or temporal, e.text, e.start, e.end))
    return tuple(out)


def _kind(e: Entity, norm: str, lex: Lexicon) -> str:
    if e.norm is not None:
        # rules graphs: modifiers are attached; an OBS entity whose norm is a modifier
        # normal form and that modifies nothing is still a head (promoted)
        return "obs"
    entry = lex.lookup(e.text)
    if entry is None:
        return "obs"
    cats = {x.cat for x in lex.phrases.get(tuple(_toks(e.text)), ())}
    if OBS in cats or NORMAL_CAT in cats:
        return "obs"
    if cats & {SEV, CHG, TMP, DESC}:
        return "mod"
    if LAT in cats:
        return "lat"
    return "obs"


def _toks(text: str):
    from checkers.lexicon import phrase_tokens

    return phrase_tokens(text)


def _mod_cat(e: Entity, norm: str, lex: Lexicon) -> str | None:
    if norm in lex.severity_norms:
        return SEV
    if norm in lex.change_norms:
        return CHG
    if norm in ("acute",):
        return TMP
    entry = lex.lookup(e.text)
    if entry is not None:
        for x in lex.phrases.get(tuple(_toks(e.text)), ()):
            if x.cat in (SEV, CHG, TMP):
                return x.cat
    return None


def _side(e: Entity, norm: str | None, lex: Lexicon) -> str | None:
    if norm in ("right", "left", "bilateral"):
        return norm
    entry = None
    for x in lex.phrases.get(tuple(_toks(e.text)), ()):
        if x.laterality:
            return x.laterality
        if x.cat == LAT:
            entry = x
    if entry is not None and e.label == "ANAT-DP":
        return entry.norm
    return None


def _laterality(sides: set[str]) -> str | None:
    if not sides:
        return None
    if "bilateral" in sides or ("right" in sides and "left" in sides):
        return "bilateral"
    return next(iter(sides))


def zones_compatible(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether two location lists can describe the same place (no zone info = yes)."""
    if not a or not b:
        return True
    return bool(set(a) & set(b))


__all__ = ["findings_from_graph", "PRESENCE", "zones_compatible"]
