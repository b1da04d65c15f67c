"""The two conventions' forward checks from one graph pass (issue 14, speed): the same
verdicts as two separate checks, the same metrics; E870 where one pass is not possible."""

from __future__ import annotations

import pytest

from reportgen.checkers.graph_checker import GraphChecker
from reportgen.checkers.pipeline import Pipeline
from reportgen.errors import ReportgenError


@pytest.fixture(scope="module")
def iu_pairs():
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)[:100]]
    # perturbed copies (flipped negations, swapped sides, invented findings, ...) and
    # another study's report, where unmentioned negatives (the conventions differ) abound
    perturbed = [(b.id, b.perturbed, b.reference) for b in build_benchmark(reports, seed=5, rate=0.5)]
    other = [(f"x{k}", reports[k + 1][1], reports[k][1]) for k in range(0, 40)]
    return [p for pair in zip(perturbed, other + perturbed[40:]) for p in pair]


def test_check_conventions_equals_one_check_per_convention(iu_pairs):
    both = Pipeline(self_check=False)
    single = {c: Pipeline(self_check=False, convention=c) for c in ("chexpert", "radfact")}
    differ = 0
    for pid, pred, ref in iu_pairs:
        chex, radf = both.check_conventions(pid, pred, ref, ("chexpert", "radfact"))
        assert chex == single["chexpert"].check(pid, pred, ref)
        assert radf == single["radfact"].check(pid, pred, ref)
        assert chex.summary["convention"] == "chexpert" and radf.summary["convention"] == "radfact"
        differ += [c.status for c in chex.claims] != [c.status for c in radf.claims]
    assert differ > 10  # the conventions really disagree on these pairs (not a vacuous check)


def test_graph_checker_one_pass_and_order_of_conventions(iu_pairs):
    from reportgen.checkers.evidence import reference_evidence
    from reportgen.checkers.read import read_report

    _, pred, ref = iu_pairs[3]
    claims, evidence = read_report(pred).claims, reference_evidence(read_report(ref))
    r, c = GraphChecker().check_conventions(claims, evidence, ("radfact", "chexpert"))
    assert r == GraphChecker(convention="radfact").check(claims, evidence)
    assert c == GraphChecker(convention="chexpert").check(claims, evidence)
    with pytest.raises(ReportgenError) as e:
        GraphChecker().check_conventions(claims, evidence, ("nope",))
    assert e.value.code == "E350"


def test_one_pass_refused_for_checkers_without_it():
    class Other:
        name = "other"

        def check(self, claims, evidence):
            return []

    with pytest.raises(ReportgenError) as e:
        Pipeline(checkers=(Other(),), self_check=False).check_conventions("r1", "No effusion.", "No effusion.", ("chexpert", "radfact"))
    assert e.value.code == "E870" and "other" in str(e.value)


def test_suite_one_pass_gives_the_same_rows_and_figures(iu_pairs):
    from reportgen.evals.suite import Suite

    pairs = iu_pairs[:60]
    a = Suite(one_pass=True).evaluate(pairs, n_bootstrap=50, seed=3)
    b = Suite(one_pass=False).evaluate(pairs, n_bootstrap=50, seed=3)
    assert [r.row() for r in a.results] == [r.row() for r in b.results]
    assert {k: v.to_dict() for k, v in a.corpus.items()} == {k: v.to_dict() for k, v in b.corpus.items()}
