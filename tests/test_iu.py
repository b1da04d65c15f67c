"""The IU reports are read from the installed torchxrayvision package, without torch."""


import pytest

from reportgen.iu import load_iu_reports, parse_xml
from tests.light_imports import heavy_modules_loaded


@pytest.fixture(scope="module")
def iu():
    return load_iu_reports()


def test_all_3955_reports_with_sections_and_mesh(iu):
    assert len(iu) == 3955
    r1 = iu[0]
    assert r1.id == "CXR1"
    assert r1.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits.")
    assert r1.impression == "Normal chest x-XXXX."
    assert r1.indication == "Positive TB test"
    assert r1.mesh_major == ("normal",)
    assert r1.images == ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001")
    assert r1.report.findings == r1.findings
    assert sum(1 for r in iu if r.findings or r.impression) > 3900
    # MeSH tags carry finding / anatomy / side
    assert any(t.startswith("Opacity/lung") for r in iu for t in r.mesh_major)


def test_loading_does_not_import_torch():
    assert heavy_modules_loaded("from reportgen.iu import load_iu_reports; load_iu_reports()", ("torch",)) == []


def test_parse_xml_minimal():
    xml = b"""<eCitation><uId id="CXR9"/><Abstract>
    <AbstractText Label="FINDINGS">Small left effusion.</AbstractText>
    <AbstractText Label="IMPRESSION"></AbstractText></Abstract>
    <MeSH><major>Pleural Effusion/left/small</major></MeSH>
    <parentImage id="CXR9_1"/></eCitation>"""
    r = parse_xml(xml)
    assert (r.id, r.findings, r.impression, r.mesh_major, r.images) == (
        "CXR9", "Small left effusion.", None, ("Pleural Effusion/left/small",), ("CXR9_1",))
