"""Error injection: hand-checked edits with exact spans, reproducibility, and scoring with
oracle and blunt checkers whose scores are known."""

from __future__ import annotations

import pytest

from reportgen.evals.inject import (
    CATEGORIES, build_benchmark, inject_report, run_benchmark, score_run, category_score, split_sentences,
)
from reportgen.errors import ReportgenError

TEXT = ("FINDINGS: Mild cardiomegaly. Small right pleural effusion. There is no pneumothorax.\n\n"
        "IMPRESSION: Cardiomegaly and right effusion.")


def _sentences(text):
    return [text[s.start:s.end] for s in split_sentences(text)]


def test_sentences_are_the_checkers_without_list_numbers_and_headings():
    """Benchmark 1.3: the checker's sentences (1.2 kept "1." with its sentence: a unit the
    checker never reads)."""
    t = "FINDINGS: Lungs clear.There is no effusion.\n\nIMPRESSION: 1. No acute disease. 2. Stable 2.5 cm nodule."
    assert _sentences(t) == ["Lungs clear.", "There is no effusion.", "No acute disease.", "Stable 2.5 cm nodule."]
    assert [s.section for s in split_sentences(t)] == [0, 0, 1, 1]
    assert _sentences("No heading here. Second") == ["No heading here.", "Second"]
    assert _sentences("INDICATION: Cough. FINDINGS: Approx. 2 cm nodule. No effusion.") == ["Approx. 2 cm nodule.", "No effusion."]


def test_sentences_are_those_the_checker_reads_on_iu_reports():
    from reportgen.checkers.read import read_report
    from reportgen.iu import load_iu_reports

    reports = load_iu_reports(require_text=True)
    numbered = [r for r in reports if "1. " in r.report.text][:150] + list(reports[:150])
    for r in numbered:
        text = r.report.text
        mine = [(s.start, s.end) for s in split_sentences(text)]
        read = sorted({(c.claim.sentence_start, c.claim.sentence_end) for c in read_report(text).claims})
        assert mine == read, r.id


def test_laterality_swap_spans():
    r = inject_report("r1", TEXT, seed=0, rate=1.0, categories=["laterality_swap"])
    assert r.perturbed == TEXT.replace("right", "left")
    assert [i.category for i in r.injections] == ["laterality_swap", "laterality_swap"]
    first = r.injections[0]
    assert r.perturbed[first.start:first.end] == "Small left pleural effusion."
    assert r.perturbed[first.edit_start:first.edit_end] == "left"
    assert TEXT[first.ref_start:first.ref_end] == first.original == "Small right pleural effusion."
    labels = [(r.perturbed[a:b], c) for a, b, c in r.sentences]
    assert labels == [("Mild cardiomegaly.", None), ("Small left pleural effusion.", "laterality_swap"),
                      ("There is no pneumothorax.", None), ("Cardiomegaly and left effusion.", "laterality_swap")]


def test_negation_flip_both_ways():
    r = inject_report("r1", TEXT, seed=0, rate=1.0, categories=["negation_flip"])
    assert _sentences(r.perturbed) == ["No mild cardiomegaly.", "No small right pleural effusion.",
                                       "There is pneumothorax.", "No cardiomegaly and right effusion."]
    edits = [r.perturbed[i.edit_start:i.edit_end] for i in r.injections]
    assert edits == ["No ", "No ", "There is ", "No "]


def test_omission_keeps_one_sentence_per_section():
    r = inject_report("r1", TEXT, seed=0, rate=1.0, categories=["omitted_finding"])
    assert r.perturbed == "FINDINGS: There is no pneumothorax.\n\nIMPRESSION: Cardiomegaly and right effusion."
    assert [i.original for i in r.injections] == ["Mild cardiomegaly.", "Small right pleural effusion."]
    assert all(i.start == i.end for i in r.injections)
    assert [c for *_, c in r.ref_sentences] == ["omitted_finding", "omitted_finding", None, None]


def test_fabrication_severity_location():
    fab = inject_report("r1", TEXT, seed=3, rate=1.0, categories=["fabricated_finding"])
    for i in fab.injections:
        assert fab.perturbed[i.start:i.end] == i.text and i.original == ""
        assert "effusion" not in i.text and "cardiomegaly" not in i.text.lower()  # nothing the report mentions
    assert fab.injections and len({i.text for i in fab.injections}) == len(fab.injections)  # no repeats
    # Removing the inserted sentences gives back the reference.
    out = fab.perturbed
    for i in reversed(fab.injections):
        out = out[: i.start - 1] + out[i.end:]
    assert out == TEXT
    sev = inject_report("r1", TEXT, seed=0, rate=1.0, categories=["severity_change"])
    assert _sentences(sev.perturbed)[:2] == ["Severe cardiomegaly.", "Large right pleural effusion."]
    loc = inject_report("r2", "Opacity in the right upper lobe. No effusion.", seed=0, rate=1.0, categories=["location_change"])
    assert loc.perturbed == "Opacity in the right lower lobe. No effusion."


def test_reproducible_and_independent_of_other_reports():
    reports = [(f"r{i}", TEXT) for i in range(30)]
    a = build_benchmark(reports, seed=5, rate=0.4)
    b = build_benchmark(reports, seed=5, rate=0.4)
    c = build_benchmark(reports, seed=6, rate=0.4)
    assert [x.perturbed for x in a] == [x.perturbed for x in b]
    assert [x.perturbed for x in a] != [x.perturbed for x in c]
    assert build_benchmark(reports[7:8], seed=5, rate=0.4)[0] == a[7]
    assert {i.category for x in a for i in x.injections} <= set(CATEGORIES)
    with pytest.raises(ReportgenError, match="E451"):
        build_benchmark(reports, categories=["typo"])
    with pytest.raises(ReportgenError, match="E452"):
        build_benchmark(reports, rate=1.5)


def _sentence_checker(flag_all: bool = False):
    """Claims = sentences; flagged when the sentence is not in the other text (an oracle),
    or always (a blunt checker)."""
    def check(pairs):
        out = []
        for cand, ref in pairs:
            out.append([(s.start, s.end, "unsupported" if flag_all or cand[s.start:s.end] not in ref else "supported")
                        for s in split_sentences(cand)])
        return out
    return check


def test_scores_of_an_oracle_and_a_blunt_checker():
    reports = [(f"r{i}", TEXT) for i in range(20)] + [("n1", "FINDINGS: Lungs are clear. No effusion.")]
    rows, benches = run_benchmark(reports, _sentence_checker(), seed=1, rate=0.5)
    by = {r.category: r for r in rows}
    assert set(by) == set(CATEGORIES) | {"all"}
    assert by["all"].errors > 0
    for r in rows:
        if r.errors:
            assert (r.recall, r.precision, r.false_flag_rate) == (1.0, 1.0, 0.0), r
    blunt, _ = run_benchmark(reports, _sentence_checker(flag_all=True), seed=1, rate=0.5, categories=["laterality_swap"])
    lat = blunt[0]
    assert lat.recall == 1.0 and lat.false_flag_rate == 1.0
    assert lat.precision == pytest.approx(lat.tp_flags / (lat.tp_flags + lat.fp_flags))
    # The same numbers by hand from the benchmark itself.
    bench = benches["laterality_swap"]
    touched = sum(1 for x in bench for *_, c in x.sentences if c)
    untouched = sum(1 for x in bench for *_, c in x.sentences if c is None)
    assert (lat.errors, lat.tp_flags, lat.fp_flags) == (touched, touched, untouched)
    # Mixed mode: precision only overall.
    mixed, _ = run_benchmark(reports, _sentence_checker(), seed=1, rate=0.5, mode="mixed")
    assert all(r.precision is None for r in mixed if r.category != "all") and mixed[-1].precision == 1.0


def test_score_run_needs_aligned_inputs():
    bench = build_benchmark([("r1", TEXT)], seed=0, rate=1.0, categories=["negation_flip"])
    with pytest.raises(ReportgenError, match="E453"):
        score_run(bench, [])
    run = score_run(bench, [[(10, 28, "contradicted")]])  # one flag on the first (edited) sentence
    s = category_score("negation_flip", run)
    assert (s.errors, s.detected, s.recall) == (4, 1, 0.25)


def test_negation_flips_are_errors_by_construction():
    """Vocabulary 1.1: a flip keeps the qualifiers that narrow a denial, puts the prefix after
    a list number, never prefixes a hedged sentence or one opening with a determiner, and a
    fabricated sentence goes only after a sentence that ends like one."""
    def flip(text: str) -> str:
        return inject_report("r", text, seed=0, rate=1.0, categories=["negation_flip"]).perturbed

    assert flip("No acute disease.") == "Acute disease."  # 1.0 gave "Disease.", true of any chronic finding
    assert flip("No large pleural effusion.") == "Large pleural effusion."
    assert flip("No evidence of pneumothorax.") == "Pneumothorax."
    assert flip("2. Large hiatal hernia.") == "2. No large hiatal hernia."  # 1.0: "No 2. Large ..."
    for hedged in ("These may represent calcified granulomas.", "Left base could be atelectasis or pneumonia.",
                   "The heart is enlarged."):
        assert flip(hedged) == hedged  # nothing to flip: not made a non-sentence
    fab = inject_report("r", "Findings discussed with Dr. Bony thorax grossly unremarkable", seed=0, rate=1.0,
                        categories=["fabricated_finding"])
    assert not fab.injections  # neither after a sentence without end nor after "Dr."


def test_laterality_swaps_are_errors_by_construction():
    """Vocabulary 1.2: no swap of a pair that only changes order, of a one-sided statement
    the report also makes on the other side (or on both), or of a resolved finding; sentences
    naming both sides, and statements the report does not make on the other side, are swapped."""
    def swap(text: str) -> str:
        return inject_report("r", text, seed=0, rate=1.0, categories=["laterality_swap"]).perturbed

    assert swap("The right and left XXXX remain enlarged.") == "The right and left XXXX remain enlarged."
    both = "Small left pleural effusion. Small right pleural effusion."
    assert swap(both) == both  # each swap states what the other sentence says
    assert swap("Small left pleural effusion. Small bilateral pleural effusions.").startswith("Small left")
    assert swap("Small left pleural effusion. Bilateral pleural effusions.").startswith("Small right")  # "small" not stated
    assert swap("Small left pleural effusion. Large right pleural effusion.").startswith("Small right")  # severity differs
    assert swap("Left basilar opacity. Right upper lobe opacity.") == "Right basilar opacity. Left upper lobe opacity."
    assert swap("Nodules in the left midlung and right upper lung.") == "Nodules in the right midlung and left upper lung."
    for resolved in ("Interval resolution of left effusion.", "There has been clearing of the left base airspace disease.",
                     "Previously present left base airspace disease has cleared."):
        assert swap(resolved) == resolved
