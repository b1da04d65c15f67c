"""Dataset loaders on synthetic trees in the official layouts (the real data is
credentialed): MIMIC-CXR-JPG + reports, and a CheXpert-Plus style CSV; the official
split reaches `train`, which never splits a patient across sides."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from reportgen.errors import ReportgenError

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows.

 IMPRESSION:

 No acute cardiopulmonary process.
"""
IMPRESSION_ONLY = """ INDICATION: Dyspnea.\n\n IMPRESSION: Mild pulmonary edema.\n"""

# (subject, study, split, [(dicom, view)], report text or None)
STUDIES = [
    ("10000032", "50414267", "train", [("lat1", "LL"), ("pa1", "PA")], REPORT),
    ("10000032", "53189527", "train", [("ap2", "AP")], REPORT.replace("nipple shadows", "artifacts")),
    ("10000764", "57375967", "validate", [("pa3", "PA"), ("lat3", "LATERAL")], REPORT),
    ("11000011", "52000001", "test", [("pa4", "PA")], REPORT),
    ("11000011", "52000002", "train", [("pa5", "PA")], IMPRESSION_ONLY),  # no findings
    ("12000022", "53000003", "train", [("pa6", "PA")], None),  # no report file
]


@pytest.fixture(scope="module")
def mimic_tree(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("mimic-cxr-jpg")
    reports = tmp_path_factory.mktemp("mimic-cxr-reports")
    split_rows, meta_rows = [], []
    for subject, study, split, images, text in STUDIES:
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        for dicom, view in images:
            Image.new("L", (40, 32), 128).save(folder / f"{dicom}.jpg")
            split_rows.append({"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": split})
            meta_rows.append({"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": view, "Rows": 32})
        if text is not None:
            rp = reports / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
            rp.parent.mkdir(parents=True, exist_ok=True)
            rp.write_text(text)
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(split_rows[0]))
        w.writeheader()
        w.writerows(split_rows)
    with open(root / "mimic-cxr-2.0.0-metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(meta_rows[0]))
        w.writeheader()
        w.writerows(meta_rows)
    return root, reports


def test_mimic_layout_gives_studies_with_sections_views_and_splits(mimic_tree):
    from reportgen.datasets.mimic import LoadStats, load_mimic_cxr

    root, reports = mimic_tree
    st = LoadStats()
    recs = {r["id"]: r for r in load_mimic_cxr(root, reports, stats=st)}
    assert set(recs) == {"s50414267", "s53189527", "s57375967", "s52000001"}
    r = recs["s50414267"]
    assert [Path(p).name for p in r["images"]] == ["pa1.jpg", "lat1.jpg"] and r["views"] == ["PA", "LATERAL"]
    assert r["patient_id"] == "10000032" and r["split"] == "train" and r["mimic_study_id"] == "50414267"
    assert r["report"] == r["findings"] == ("There is no focal consolidation, pleural effusion or pneumothorax. "
                                            "Bilateral nodular opacities that most likely represent nipple shadows.")
    assert r["impression"] == "No acute cardiopulmonary process." and r["indication"].startswith("___F with new onset")
    assert r["comparison"] == "None."
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in r["images"])
    assert dict(st.skipped) == {"no findings section": 1, "no report file": 1}
    test_only = list(load_mimic_cxr(root, reports, splits=("test",)))
    assert [x["id"] for x in test_only] == ["s52000001"]
    imp = {x["id"]: x["report"] for x in load_mimic_cxr(root, reports, section="impression")}
    assert imp["s52000002"] == "Mild pulmonary edema." and len(imp) == 5
    full = next(load_mimic_cxr(root, reports, section="full"))
    assert full["report"].startswith("FINDINGS: There is no") and "\n\nIMPRESSION: No acute" in full["report"]
    with pytest.raises(ReportgenError) as e:
        list(load_mimic_cxr(root.parent, reports))
    assert e.value.code == "E110"


def test_prepare_cli_and_the_official_split_in_training(mimic_tree, tmp_path, capsys):
    from reportgen.cli import main
    from reportgen.train import read_manifest, split_examples

    root, reports = mimic_tree
    out = tmp_path / "trainval.jsonl"
    assert main(["prepare", "mimic-cxr", "--root", str(root), "--reports", str(reports), "--out", str(out),
                 "--split", "train", "validate"]) == 0
    err = capsys.readouterr().err
    assert "3 studies" in err and "1 no findings section" in err and "1 no report file" in err
    data = read_manifest(out, allow_outside_root=True)  # the images stay in the dataset's folder
    assert not data.errors and len(data.examples) == 3
    train, val = split_examples(data.examples, 0.5, 0)
    assert [e.study.id for e in val] == ["s57375967"]  # the official validate split, whatever val_fraction says
    assert {e.study.id for e in train} == {"s50414267", "s53189527"}
    test = tmp_path / "test.jsonl"
    assert main(["prepare", "mimic-cxr", "--root", str(root), "--reports", str(reports), "--out", str(test),
                 "--split", "test"]) == 0
    rows = [json.loads(x) for x in test.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s52000001"] and rows[0]["report"]  # reference for `reportgen eval --ref`


def test_chexpert_plus_style_csv(tmp_path):
    from PIL import Image

    from reportgen.datasets.table import load_table

    for name in ("a_frontal.jpg", "a_lateral.jpg", "b_frontal.jpg"):
        Image.new("L", (16, 16), 100).save(tmp_path / name)
    cols = ["path_to_image", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order", "report",
            "section_findings", "section_impression", "section_clinical_history", "section_comparison", "split"]
    rows = [
        ["a_lateral.jpg", "Lateral", "", "pat1", "1", "", "Clear lungs.", "Normal.", "Cough.", "", "train"],
        ["a_frontal.jpg", "Frontal", "AP", "pat1", "1", "", "Clear lungs.", "Normal.", "Cough.", "", "train"],
        ["b_frontal.jpg", "Frontal", "PA", "pat2", "1", "FINDINGS: Small effusion. IMPRESSION: Effusion.", "", "", "", "", "valid"],
        ["missing.jpg", "Frontal", "PA", "pat3", "1", "", "x", "", "", "", "train"],
    ]
    path = tmp_path / "df.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)
    from collections import Counter

    st: Counter = Counter()
    recs = {r["id"]: r for r in load_table(path, stats=st)}
    assert set(recs) == {"pat1_1", "pat2_1"}
    a = recs["pat1_1"]
    assert a["views"] == ["LATERAL", "AP"] and a["report"] == "Clear lungs." and a["indication"] == "Cough."
    assert a["patient_id"] == "pat1" and a["split"] == "train"
    b = recs["pat2_1"]
    assert b["report"] == "Small effusion." and b["impression"] == "Effusion." and b["split"] == "validate"
    assert st["no image file"] == 1
