"""The seams of reportgen.protocols: the claim splitter is chosen on its own (also with
another graph extractor), the rules extractor is a SentenceAnalyzer, and one status
vocabulary is shared."""

from __future__ import annotations

import pytest

from reportgen.checkers.claims import RulesClaimSplitter, get_claim_splitter
from reportgen.checkers.graphs import get_extractor
from reportgen.checkers.read import read_report
from reportgen.errors import ReportgenError
from reportgen.protocols import ClaimSplitter, GraphExtractor, SentenceAnalyzer
from reportgen.types import FLAGGED, STATUS_ORDER, Claim, EntityGraph, Entity, worst_status

TEXT = "FINDINGS: No pleural effusion or pneumothorax. Mild cardiomegaly."


class GraphsOnly:
    """Another backend (as radgraph is): graphs, no sentence analysis."""

    name = "other"

    def __init__(self):
        self.texts = []

    def extract(self, text):
        self.texts.append(text)
        i = text.find("cardiomegaly")
        return EntityGraph((Entity("e1", "cardiomegaly", i, i + 12, "OBS-DP"),) if i >= 0 else ())

    def extract_many(self, texts):
        return [self.extract(t) for t in texts]


class OneClaimPerSection:
    name = "sections"

    def split(self, report, *, include_context=False):
        return tuple(Claim(report.text[s.start:s.end], s.name, s.start, s.end, s.start, s.end) for s in report.sections)


def test_the_rules_extractor_is_an_analyzer_and_other_backends_get_the_rules_splitter():
    rules = get_extractor("rules")
    assert isinstance(rules, SentenceAnalyzer) and isinstance(rules, GraphExtractor)
    other = GraphsOnly()
    assert not isinstance(other, SentenceAnalyzer)
    fast = read_report(TEXT, rules)
    slow = read_report(TEXT, other)  # claims cut by the documented rules splitter, graphs by the backend
    assert [c.claim for c in slow.claims] == [c.claim for c in fast.claims]
    assert [c.claim.text for c in slow.claims] == ["No pleural effusion.", "No pneumothorax.", "Mild cardiomegaly."]
    assert [[f.observation for f in c.findings] for c in slow.claims] == [[], [], ["cardiomegaly"]]


def test_a_claim_splitter_is_chosen_independently_of_the_extractor():
    assert isinstance(OneClaimPerSection(), ClaimSplitter) and isinstance(get_claim_splitter("rules"), RulesClaimSplitter)
    rr = read_report(TEXT, GraphsOnly(), splitter=OneClaimPerSection())
    assert [c.claim.text for c in rr.claims] == ["No pleural effusion or pneumothorax. Mild cardiomegaly."]
    rr = read_report(TEXT, "rules", splitter=OneClaimPerSection())  # the rules graphs, another splitter
    assert len(rr.claims) == 1 and {f.observation for f in rr.claims[0].findings} >= {"pleural effusion", "cardiomegaly"}
    with pytest.raises(ReportgenError, match="E006"):
        get_claim_splitter("sentences")
    with pytest.raises(ReportgenError, match="E006"):
        get_claim_splitter(object())


def test_one_status_vocabulary():
    assert worst_status(["supported", "abstain", "unsupported", "error"]) == "unsupported"
    assert worst_status(["abstain", "error"]) is None
    assert STATUS_ORDER[0] == "contradicted" and set(FLAGGED) == {"contradicted", "unsupported"}
    from reportgen.checkers.graph_checker import STATUS_ORDER as graph_order
    from reportgen.commands.demo import CAUGHT
    from reportgen.evals.check_html import FLAGGED as html_flagged

    assert graph_order is STATUS_ORDER and CAUGHT is FLAGGED and html_flagged is FLAGGED
