"""Hostile text (issue 16): property-based tests over the report reader, the claim splitter
and the graph extractor. Any Unicode (control characters, RTL and zero-width marks,
combining characters, only punctuation, 1 MB lines) gives no exception, and every offset
lies inside the text with ``text[start:end]`` equal to the span's text."""

from __future__ import annotations

import json
import string
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reportgen.checkers.claims import split_claims, split_sections  # noqa: E402
from reportgen.checkers.graphs.rules import RulesExtractor  # noqa: E402
from reportgen.checkers.read import read_report  # noqa: E402

WORDS = [
    "FINDINGS:", "IMPRESSION:", "INDICATION:", "Right", "left", "upper lobe", "opacity", "no", "pleural effusion",
    "pneumothorax", "or", "and", "cardiomegaly", "is", "not", "seen", "mild", "XXXX", "1.", "2)", "T12.", "3 cm.",
    ".", ",", ";", ":", "?", "!", "...", "(", ")", "-", "/", " ", " ", "\n", "\n\n", "\t", "\r\n",
]
ODD = [
    "\u200f", "\u200e", "\u202e", "\u202d", "\u2066", "\u2069",  # RTL / LTR marks and overrides
    "\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad",  # zero-width and soft hyphen
    "\u0301", "\u0308", "\u0338", "\u20dd", "e\u0301", "\U0001f1fa\U0001f1f8",  # combining, flags
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\x0b", "\x0c",  # controls, separators
    "\u0627\u0644\u0631\u0626\u0629", "\u05e8\u05d9\u05d0\u05d4", "\u80ba", "\U0001d400", "\ufb01", "\u0130", "\u1e9e",
    "\ud7ff", "\U0010ffff",
]
PUNCT = string.punctuation + "\u2026\u2014\u2013\u00bf\u00a1\u3002\uff0c\u061f\u2022\u00b7"

text_like = st.lists(st.sampled_from(WORDS + ODD), max_size=60).map("".join)
any_text = st.text(max_size=300)
punct_only = st.text(alphabet=PUNCT + " \n", max_size=300)
mixed = st.one_of(text_like, any_text, punct_only,
                  st.tuples(text_like, any_text, text_like).map("".join))

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
EXTRACTOR = RulesExtractor()


def check_span(text: str, start: int, end: int, what: str) -> None:
    assert isinstance(start, int) and isinstance(end, int), what
    assert 0 <= start <= end <= len(text), f"{what}: [{start}:{end}] outside a text of {len(text)}"


def check_graph(text: str, graph) -> None:
    for e in graph.entities:
        check_span(text, e.start, e.end, f"entity {e.id}")
        assert text[e.start:e.end] == e.text, (e, text[e.start:e.end])
    ids = {e.id for e in graph.entities}
    for r in graph.relations:
        assert r.source in ids and r.target in ids


@SETTINGS
@given(mixed)
def test_sections_cover_the_text(text):
    report = split_sections(text)
    assert report.text == text
    for s in report.sections:
        check_span(text, s.start, s.end, f"section {s.name}")


@SETTINGS
@given(mixed)
def test_claim_splitter_offsets(text):
    report = split_sections(text)
    for c in split_claims(report, include_context=True):
        check_span(text, c.start, c.end, "claim")
        if c.sentence_start is not None:
            check_span(text, c.sentence_start, c.sentence_end, "claim sentence")
            assert c.sentence_start <= c.start and c.end <= c.sentence_end
        assert isinstance(c.text, str) and c.text.strip()


@SETTINGS
@given(mixed)
def test_graph_extractor_offsets(text):
    check_graph(text, EXTRACTOR.extract(text))


@SETTINGS
@given(mixed)
def test_report_reader_offsets(text):
    read = read_report(text, include_context=True)
    assert read.report.text == text
    for cc in read.claims:
        check_span(text, cc.claim.start, cc.claim.end, "claim")
        check_graph(text, cc.graph)
        for f in cc.findings:
            check_span(text, f.start, f.end, "finding")
    json.dumps(read.to_dict())  # serialisable as it is written to JSONL


@SETTINGS
@given(st.lists(st.sampled_from(ODD + ["FINDINGS:", "opacity", ".", " ", "\n"]), max_size=40).map("".join))
def test_jsonl_reader_round_trips_any_text(tmp_path_factory, text):
    from reportgen.jsonl import dumps, read_jsonl

    path = tmp_path_factory.mktemp("j") / "r.jsonl"
    path.write_text(dumps({"id": "r1", "report": text}) + "\n" + "\u2028junk\n", encoding="utf-8")
    recs = list(read_jsonl(path, require=("id",)))
    assert recs[0].data["report"] == text
    assert all(r.error is None or r.error.startswith(str(path)) for r in recs)


MEGA = {
    "letters": "a" * 1_000_000,
    "full stops": "." * 1_000_000,
    "punctuation": "!?;:" * 250_000,
    "controls": "\x00\x01\x1f" * 300_000,
    "rtl + combining": "\u200f\u0301x" * 300_000,
    "one run-on coordination": "Right lower lobe opacity, " * 40_000,
}


@pytest.mark.parametrize("name", list(MEGA))
def test_one_megabyte_lines(name):
    text = MEGA[name]
    t0 = time.perf_counter()
    read = read_report(text)
    for cc in read.claims[:2000]:
        check_span(text, cc.claim.start, cc.claim.end, "claim")
        check_graph(text, cc.graph)
    check_graph(text, EXTRACTOR.extract(text))
    assert time.perf_counter() - t0 < 60  # linear: seconds, not the minutes a quadratic pass took
