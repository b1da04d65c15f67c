"""Sections, sentences and atomic claims on hand-checked sentences of the IU reports.

Each test quotes the report text it uses and names its IU report id; the expected claims
were checked by reading the sentence.
"""

from __future__ import annotations

import json

import pytest

from reportgen.checkers.claims import sentences, split_claims, split_sections
from reportgen.types import Report
from tests.light_imports import heavy_modules_loaded


def _claims(text: str, **kw):
    return split_claims(split_sections(text), **kw)


def _check_offsets(text: str, claims) -> None:
    for c in claims:
        assert 0 <= c.sentence_start <= c.start < c.end <= c.sentence_end <= len(text)
        span = text[c.start : c.end]
        assert span == span.strip() and span
        if c.text == span:
            continue
        # a rewritten (split) claim keeps the words of its span (a leading "without" reads "no")
        words = span.lower().strip(" .").split()
        if words[0] in ("without", "with"):
            words = words[1:]
        assert " ".join(words[1:]) in c.text.lower(), (span, c.text)


# ---- sections --------------------------------------------------------------------------------
def test_sections_of_an_iu_report(iu_by_id):
    r = iu_by_id["CXR558"]  # FINDINGS: The lungs are clear. ... IMPRESSION: No evidence of active disease.
    rep = split_sections(r.report.text)
    assert [s.name for s in rep.sections] == ["findings", "impression"]
    assert rep.findings == r.findings
    assert rep.impression == "No evidence of active disease."


def test_headings_in_any_case_inline_and_text_before_them():
    text = "Chest, 2 views.\nIndication: cough\nfindings: No effusion.   Impression:\nNormal chest."
    rep = split_sections(text)
    assert [(s.name, text[s.start : s.end]) for s in rep.sections] == [
        ("text", "Chest, 2 views."), ("indication", "cough"), ("findings", "No effusion."), ("impression", "Normal chest."),
    ]


def test_no_heading_is_one_text_section_and_blank_text_has_none():
    rep = split_sections("  Mild cardiomegaly.  ")
    assert [(s.name, s.start, s.end) for s in rep.sections] == [("text", 2, 20)]
    assert split_sections("   \n ").sections == ()
    assert split_claims(split_sections("")) == ()


def test_heading_after_a_sentence_end_starts_a_section():
    text = "FINDINGS: No pneumothorax. IMPRESSION: No acute disease."
    rep = split_sections(text)
    assert rep.findings == "No pneumothorax." and rep.impression == "No acute disease."


def test_context_sections_give_claims_only_when_asked(iu_by_id):
    text = "INDICATION: Positive TB test\n\nFINDINGS: The lungs are clear."  # CXR1's indication
    assert [c.section for c in _claims(text)] == ["findings"]
    assert [c.section for c in _claims(text, include_context=True)] == ["indication", "findings"]


# ---- sentences -------------------------------------------------------------------------------
def test_numbered_impression_items_are_sentences_without_their_marker(iu_by_id):
    r = iu_by_id["CXR822"]  # IMPRESSION: 1. No acute findings. 2. Bibasilar subsegmental atelectasis or scarring. 3. Emphysema.
    claims = [c for c in _claims(r.report.text) if c.section == "impression"]
    assert [c.text for c in claims] == ["No acute findings.", "Bibasilar subsegmental atelectasis or scarring.", "Emphysema."]


def test_numbered_item_without_a_period_before_the_next_number(iu_by_id):
    r = iu_by_id["CXR682"]  # IMPRESSION: 1. No acute cardiopulmonary disease 2. No suspicious pulmonary nodules or masses. ...
    imp = [c.text for c in _claims(r.report.text) if c.section == "impression"]
    assert imp[0] == "No acute cardiopulmonary disease"
    assert imp[1:3] == ["No suspicious pulmonary nodules.", "No masses."]


def test_numbered_item_glued_to_its_text(iu_by_id):
    r = iu_by_id["CXR1307"]  # IMPRESSION: 1.Lucency in the left lateral clavicle ... 2. Clear lungs
    imp = [c.text for c in _claims(r.report.text) if c.section == "impression"]
    assert imp[0] == "Lucency in the left lateral clavicle near the acromioclavicular joint."
    assert imp[-1] == "Clear lungs"


def test_decimals_and_vertebra_levels(iu_by_id):
    t = iu_by_id["CXR91"].report.text  # ... There is a moderate sized right pneumothorax. This measures 3.2 cm at the level the right apex.
    sents = [t[a:b] for a, b in sentences(t)]
    assert "This measures 3.2 cm at the level the right apex." in sents
    t = iu_by_id["CXR2408"].report.text  # ... anterior XXXX loss of T10. Degenerative changes of the spine.
    sents = [t[a:b] for a, b in sentences(t)]
    assert any(s.endswith("loss of T10.") for s in sents) and "Degenerative changes of the spine." in sents


def test_doctor_and_time_abbreviations_do_not_break(iu_by_id):
    t = iu_by_id["CXR9"].report.text  # ... XXXX by Dr. XXXX XXXX telephone at XXXX p.m. XXXX/XXXX. Dr. XXXX<XXXX>technologist ...
    sents = [t[a:b] for a, b in sentences(t)]
    assert "XXXX by Dr. XXXX XXXX telephone at XXXX p.m. XXXX/XXXX." in sents


def test_vertebra_levels_and_units_before_lower_case_words_do_not_end_sentences():
    text = "Mild compression deformity of T12. vertebral body is stable. Nodule measures 2 cm. in size. Fracture of T11. The lungs are clear."
    assert [text[a:b] for a, b in sentences(text)] == [
        "Mild compression deformity of T12. vertebral body is stable.", "Nodule measures 2 cm. in size.",
        "Fracture of T11.", "The lungs are clear.",
    ]


def test_radiology_abbreviations_do_not_end_sentences():
    text = "Heart size approx. 2.5 cm larger than on the A.P. view, e.g. vs. the P.A. film of Dr. Smith. No effusion."
    assert [text[a:b] for a, b in sentences(text)] == [
        "Heart size approx. 2.5 cm larger than on the A.P. view, e.g. vs. the P.A. film of Dr. Smith.", "No effusion.",
    ]


def test_missing_space_after_a_period_still_breaks(iu_by_id):
    t = iu_by_id["CXR60"].report.text  # Clear right lung XXXX.In the left superior lower lobe there is ...
    sents = [t[a:b] for a, b in sentences(t)]
    assert "Clear right lung XXXX." in sents
    assert any(s.startswith("In the left superior lower lobe") for s in sents)


def test_blank_lines_break_and_lone_periods_are_dropped():
    text = "No acute cardiopulmonary abnormalities. .\n\nStable heart size"
    assert [text[a:b] for a, b in sentences(text)] == ["No acute cardiopulmonary abnormalities. .", "Stable heart size"]


# ---- atomic claims ---------------------------------------------------------------------------
def test_coordinated_negation_gives_two_claims_with_exact_spans(iu_by_id):
    t = iu_by_id["CXR558"].report.text  # No pleural effusion or pneumothorax.
    claims = _claims(t)
    at = t.index("No pleural effusion or pneumothorax.")
    pair = [c for c in claims if c.sentence_start == at]
    assert [c.text for c in pair] == ["No pleural effusion.", "No pneumothorax."]
    assert [t[c.start : c.end] for c in pair] == ["No pleural effusion", "pneumothorax"]
    assert all(t[c.sentence_start : c.sentence_end] == "No pleural effusion or pneumothorax." for c in pair)
    _check_offsets(t, claims)


def test_four_coordinated_negated_findings(iu_by_id):
    t = iu_by_id["CXR3513"].report.text  # No focal consolidation, suspicious pulmonary opacity, pneumothorax or definite pleural effusion.
    at = t.index("No focal consolidation")
    parts = [c for c in _claims(t) if c.sentence_start == at]
    assert [c.text for c in parts] == [
        "No focal consolidation.", "No suspicious pulmonary opacity.", "No pneumothorax.", "No definite pleural effusion.",
    ]
    assert [t[c.start : c.end] for c in parts] == [
        "No focal consolidation", "suspicious pulmonary opacity", "pneumothorax", "definite pleural effusion",
    ]


def test_without_list_after_a_normal_statement(iu_by_id):
    t = iu_by_id["CXR30"].report.text  # Lungs are clear without focal consolidation, effusion, or pneumothorax.
    at = t.index("Lungs are clear")
    parts = [c for c in _claims(t) if c.sentence_start == at]
    assert [c.text for c in parts] == ["Lungs are clear.", "No focal consolidation.", "No effusion.", "No pneumothorax."]
    assert [t[c.start : c.end] for c in parts] == ["Lungs are clear", "without focal consolidation", "effusion", "pneumothorax"]


def test_shared_normal_predicate_is_repeated(iu_by_id):
    t = iu_by_id["CXR1"].report.text  # The cardiac silhouette and mediastinum size are within normal limits.
    parts = [c for c in _claims(t) if c.sentence_start == t.index("The cardiac silhouette")]
    assert [c.text for c in parts] == ["The cardiac silhouette are within normal limits.", "Mediastinum size are within normal limits."]
    assert t[parts[0].start : parts[0].end] == "The cardiac silhouette"


def test_xxxx_tokens_are_handled(iu_by_id):
    t = iu_by_id["CXR264"].report.text  # Heart XXXX, mediastinum, XXXX, bony structures and lung XXXX are unremarkable.
    parts = [c for c in _claims(t) if c.sentence_start == 10]
    assert [c.text for c in parts] == [
        "Heart XXXX are unremarkable.", "Mediastinum, XXXX are unremarkable.", "Bony structures are unremarkable.",
        "Lung XXXX are unremarkable.",
    ]
    _check_offsets(t, _claims(t))


def test_hedge_and_relations_keep_a_sentence_together(iu_by_id):
    # CXR2334: "Left base opacity may represent early infection or atelectasis."
    t = iu_by_id["CXR2334"].report.text
    c = next(c for c in _claims(t) if t[c.sentence_start :].startswith("Left base opacity"))
    assert c.text == "Left base opacity may represent early infection or atelectasis." and t[c.start : c.end] == c.text


def test_clauses_joined_by_a_comma_split_without_leaking_negation():
    text = "No pneumothorax, the heart is enlarged."
    assert [c.text for c in _claims(text)] == ["No pneumothorax.", "Heart is enlarged."]


@pytest.mark.slow
def test_offsets_exact_on_all_iu_reports(iu_by_id):
    for r in iu_by_id.values():
        t = r.report.text
        _check_offsets(t, _claims(t))


def test_offsets_exact_on_a_sample_of_iu_reports(iu_by_id):
    for r in list(iu_by_id.values())[:400]:
        t = r.report.text
        claims = _claims(t)
        _check_offsets(t, claims)
        if r.findings or r.impression:
            assert claims


def test_given_report_sections_are_used_as_they_are():
    rep = Report("xx No effusion. yy", ())
    assert split_claims(rep) == split_claims(split_sections(rep.text))


def test_importing_the_text_modules_stays_light():
    code = ("import reportgen.checkers, reportgen.checkers.claims, reportgen.checkers.graphs, reportgen.checkers.findings, reportgen.checkers.read;"
            "from reportgen.checkers.read import read_report; read_report('FINDINGS: No effusion. Mild cardiomegaly.')")
    assert heavy_modules_loaded(code, ("torch", "transformers", "open_clip", "vllm")) == []


def test_regex_fast_path_agrees_with_spacy_on_every_iu_section(iu_by_id):
    from reportgen.checkers.claims import _fast_ends, _list_items, _spacy_ends

    taken = 0
    for r in iu_by_id.values():
        t = r.report.text
        for s in split_sections(t).sections:
            sec = t[s.start : s.end]
            for a, b in _list_items(sec, 0, len(sec)):
                seg = sec[a:b]
                fast = _fast_ends(seg)
                if fast is None:
                    continue
                taken += 1
                spacy_ends = [seg[:e].rstrip() for e in _spacy_ends(seg) if e < len(seg)]
                assert [seg[:e].rstrip() for e in fast if e < len(seg)] == spacy_ends, seg
    assert taken > 5000
    # what the fast path must leave to spaCy
    for hard in ("Heart size approx. 2 cm.", "Seen on the A.P. view.", "At 3 p.m. today.", "Lung XXXX.In the left base.",
                 "Type a. Next.", "No effusion. [Note] x."):
        assert _fast_ends(hard) is None, hard


def _sentence_claims(iu, rid: str, start: str):
    t = iu[rid].report.text
    at = t.index(start)
    return t, [c for c in _claims(t) if c.sentence_start == at]


def test_coordinated_predicates_and_later_negation(iu_by_id):
    # CXR66: "Both lungs are clear and expanded with no pleural air collections or parenchymal consolidations."
    t, parts = _sentence_claims(iu_by_id, "CXR66", "Both lungs are clear")
    assert [c.text for c in parts] == [
        "Both lungs are clear and expanded.", "No pleural air collections.", "No parenchymal consolidations."]
    assert [t[c.start : c.end] for c in parts][1:] == ["with no pleural air collections", "parenchymal consolidations"]


def test_relative_clause_stays_and_plain_suffix_is_shared(iu_by_id):
    # CXR2467: "... opacities in the right upper lung, some of which are centrally lucent."
    t, parts = _sentence_claims(iu_by_id, "CXR2467", "There are several small circular opacities")
    assert len(parts) == 1
    # CXR3508: "Biapical scarring and pleural thickening appears stable."
    t, parts = _sentence_claims(iu_by_id, "CXR3508", "Biapical scarring")
    assert [c.text for c in parts] == ["Biapical scarring appears stable.", "Pleural thickening appears stable."]


def test_spacy_exceptions_data_matches_the_installed_spacy():
    """spacy_exceptions.json (read by the regex fast path so that plain text never imports
    spaCy) is what the installed spaCy's tokenizer has; regenerate it when spaCy changes."""
    from reportgen.checkers.claims import SPACY_EXCEPTIONS, spacy_dotted_words

    assert json.loads(SPACY_EXCEPTIONS.read_text(encoding="utf-8"))["dotted"] == spacy_dotted_words()


def test_plain_text_never_imports_spacy_and_spacy_is_loaded_on_first_need():
    code = ("import sys; from reportgen.checkers.read import read_report;"
            "read_report('FINDINGS: No effusion. Mild cardiomegaly.'); assert 'spacy' not in sys.modules;"
            "from reportgen.checkers.claims import sentences; t = 'Size approx. 2 cm. No effusion.';"
            "assert [t[a:b] for a, b in sentences(t)] == ['Size approx. 2 cm.', 'No effusion.'], sentences(t);"
            "assert 'spacy' in sys.modules")
    assert heavy_modules_loaded(code, ("transformers", "open_clip", "vllm")) == []
