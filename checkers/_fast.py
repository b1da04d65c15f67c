"""Trusted constructors for the hot path: frozen core types built from values that our
own code already validated (a shifted entity, a lexicon label), without re-running their
checks. Anything built from user input goes through the normal constructors."""

from __future__ import annotations

from reportgen.types import Entity, EntityGraph, Relation

_new = object.__new__


def entity(id: str, text: str, start: int, end: int, label: str, norm: str | None) -> Entity:
    e = _new(Entity)
    e.__dict__.update(id=id, text=text, start=start, end=end, label=label, norm=norm)
    return e


def relation(type: str, source: str, target: str) -> Relation:
    r = _new(Relation)
    r.__dict__.update(type=type, source=source, target=target)
    return r


def graph(entities: tuple[Entity, ...], relations: tuple[Relation, ...]) -> EntityGraph:
    g = _new(EntityGraph)
    g.__dict__.update(entities=entities, relations=relations)
    return g


def shifted(g: EntityGraph, offset: int, prefix: str) -> EntityGraph:
    """``g`` moved by ``offset`` characters with ``prefix`` on every id."""
    if not g.entities:
        return g
    ents = tuple(entity(prefix + e.id, e.text, e.start + offset, e.end + offset, e.label, e.norm) for e in g.entities)
    rels = tuple(relation(r.type, prefix + r.source, prefix + r.target) for r in g.relations)
    return graph(ents, rels)
