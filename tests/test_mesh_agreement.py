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
