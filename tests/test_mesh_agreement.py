"""evals.bench.mesh_agreement tells MeSH conventions from reading errors (issue 11 quality
goals): every disagreement of a row falls in exactly one class, on real IU reports."""

from __future__ import annotations

import argparse

from evals.bench import mesh_agreement as ma


def test_every_disagreement_has_one_class(tmp_path):
    args = argparse.Namespace(map=str(ma.DATA), limit=300, extractor="rules", uncertain="positive", show_errors=None,
                              min_support=10)
    res = ma.run(args)
    res.pop("_errors")
    d = res["disagreements"]
    assert set(d["total"]) <= set(ma.DISAGREEMENTS)
    for row in res["rows"]:
        if row["row"] == "normal (no finding)":
            continue
        c = d["rows"].get(row["row"], {})
        assert sum(v for k, v in c.items() if k.startswith("FN")) == row["fn"]
        assert sum(v for k, v in c.items() if k.startswith("FP")) == row["fp"]
    table = ma.format_disagreements(res, 1)
    assert table.startswith("| finding (MeSH) | FN: not stated |") and "**all rows**" in table


def test_a_row_can_be_restricted_to_the_findings_anatomy():
    """Degenerative changes of a shoulder are no degenerative spine (mesh_map rows' "anatomy")."""
    from reportgen.checkers.read import read_report

    mm = ma.MeshMap(ma.load_map())
    assert mm.rows["Degenerative Spine"]["anatomy"]
    rows = lambda text: set(mm.predicted(read_report(f"FINDINGS: {text}"), True))  # noqa: E731
    assert "Degenerative Spine" not in rows("Degenerative changes of the right shoulder.")
    assert "Degenerative Spine" not in rows("Severe arthritic changes in both hips.")
    assert "Degenerative Spine" in rows("Degenerative changes of the thoracic spine and right shoulder.")
    assert "Degenerative Spine" in rows("The osseous structures are remarkable for degenerative changes.")
    # a row without "anatomy" takes its observations anywhere
    assert "Calcinosis" in rows("Calcific tendinitis of the right shoulder.")


def test_kind_lists_one_class_with_tags_and_the_sentences_that_predicted_it(capsys, tmp_path):
    out = tmp_path / "m.json"
    ma.main(["--limit", "400", "--show-errors", "Opacity", "--kind", "FP: definite, untagged", "--max-errors", "50", "--out", str(out)])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("--- ")]
    res = __import__("json").loads(out.read_text())
    assert 0 < len(lines) == min(50, res["disagreements"]["rows"]["Opacity"]["FP: definite, untagged"])
    assert all(x.startswith("--- FP CXR") and "tags (" in x and "read from: " in x and "FINDINGS:" not in x for x in lines)


def test_a_row_is_stated_only_by_whole_words():
    """ "fusion" (spinal fusion, a device row word) is not stated by "effusion", nor "ild" by
    "mild": a substring test put such misses in "FN: stated, not read" (our errors) instead of
    "FN: not stated" (a MeSH convention)."""
    words = ma._row_words(ma.MeshMap(ma.load_map()))
    devices = words["Medical Devices"]
    assert devices.search("status post spinal fusion.") and not devices.search("no pleural effusion.")
    assert words["Opacity"].search("increased interstitial opacities.")
    ild = words["Interstitial Lung Disease / Fibrosis"]
    assert not ild.search("mild cardiomegaly.") and ild.search("findings of ild.")
