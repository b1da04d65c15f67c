"""`reportgen check --region-model ...`: records with images, region verdicts in the
JSONL output, per-record region errors that keep the graph verdicts, the study PNGs.
In process via reportgen.cli.main, with the tiny open_clip model (local-dir:)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("reportgen.checkers.read")

from reportgen.checkers.region.checker import RegionChecker  # noqa: E402
from reportgen.checkers.region.zones import GRID  # noqa: E402
from reportgen.cli import main  # noqa: E402
from tests.fixtures_clip import LEFT_UPPER, blob  # noqa: E402

RIGHT = "FINDINGS: Right upper lobe opacity. No pleural effusion."


@pytest.fixture()
def left_upper_maps(monkeypatch):
    """Every RegionChecker the command builds sees evidence in the patient's LEFT upper zone."""
    monkeypatch.setattr(RegionChecker, "similarity_maps",
                        lambda self, enc, texts: np.stack([blob(*LEFT_UPPER) for _ in texts]) if texts else np.zeros((0, GRID, GRID)))


@pytest.fixture()
def study_files(tmp_path, test_data):
    src = test_data / "cxr" / "00027426_000.png"
    (tmp_path / "imgs").mkdir()
    shutil.copy(src, tmp_path / "imgs" / "pa.png")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    return tmp_path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_out(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def claim(rec, text):
    return next(c for c in rec["claims"] if c["text"] == text)


def test_region_verdicts_errors_and_pngs_in_the_batch(study_files, tiny_clip_dir, left_upper_maps, capsys):
    d = study_files
    reports = write_jsonl(d / "r.jsonl", [
        {"id": "rel", "report": RIGHT, "images": ["imgs/pa.png"], "view": "PA"},                 # line 1
        {"id": "abs/2", "report": RIGHT, "images": [str(d / "imgs" / "pa.png")], "views": ["PA"]},  # line 2
        {"id": "missing", "report": RIGHT, "images": ["imgs/nope.png"]},                          # line 3
        {"id": "broken", "report": RIGHT, "images": ["imgs/broken.png"], "views": ["PA"]},        # line 4
        {"id": "noimg", "report": RIGHT},                                                         # line 5
        {"id": "badviews", "report": RIGHT, "images": ["imgs/pa.png"], "views": ["PA", "LL"]},    # line 6
        {"id": "badimages", "report": RIGHT, "images": [3]},                                      # line 7
    ])
    ref = write_jsonl(d / "ref.jsonl", [{"id": i, "report": "FINDINGS: Right upper lobe opacity. No pleural effusion."}
                                        for i in ("rel", "abs/2", "missing", "broken", "noimg", "badviews", "badimages")])
    out, pngs = d / "v.jsonl", d / "pngs"
    code = main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out), "--format", "table",
                 "--region-model", f"local-dir:{tiny_clip_dir}", "--region-png-dir", str(pngs), "--strict"])
    assert code == 1  # --strict: records had region errors
    recs = {r["id"]: r for r in read_out(out)}
    assert list(recs) == ["rel", "abs/2", "missing", "broken", "noimg", "badviews", "badimages"]
    assert all(r["error"] is None for r in recs.values())  # the reports themselves were all checked

    for rid in ("rel", "abs/2"):
        r = recs[rid]
        assert r["summary"]["region"] == "checked" and "image" in r["summary"]["evidence"]
        assert r["summary"]["checkers"] == ["graph", "region"]
        c = claim(r, "Right upper lobe opacity.")
        graph_v, region_v = c["verdicts"]
        assert (graph_v["checker"], graph_v["status"]) == ("graph", "supported")
        assert (region_v["checker"], region_v["status"]) == ("region", "contradicted")
        assert c["status"] == "contradicted" and 0.0 <= c["score"] < 0.5  # one checker flagging is enough
        (meta,) = region_v["evidence_meta"]
        assert meta["zone"] == ["right_upper_zone"] and meta["best_zone"].startswith("left_") and meta["cnr"] < meta["mirror_cnr"]
        assert meta["image"] == str(d / "imgs" / "pa.png") and meta["view"] == "PA"
        assert c["reasons"][0].startswith("region: wrong side")
        neg = claim(r, "No pleural effusion.")
        assert neg["status"] == "supported"  # the region abstention drops out, the reference decides
        assert [v["status"] for v in neg["verdicts"]] == ["supported", "uncertain"] and neg["verdicts"][1]["score"] is None
        png = r["region_png"]
        assert png.startswith(str(pngs)) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert recs["rel"]["images"] == ["imgs/pa.png"]  # input keys pass through as given
    assert sorted(p.name for p in pngs.iterdir()) == ["abs_2.png", "rel.png"]

    # bad images: a region error naming the record; graph verdicts kept; no picture
    for rid, line, code_ in (("missing", 3, "E705"), ("broken", 4, "E603"), ("badviews", 6, "E704"), ("badimages", 7, "E703")):
        r = recs[rid]
        err = r["summary"]["region_error"]
        assert r["summary"]["region"] == "error" and err.startswith(f"{reports}:{line}: {code_}"), err
        c = claim(r, "Right upper lobe opacity.")
        assert [(v["checker"], v["status"]) for v in c["verdicts"]] == [("graph", "supported"), ("region", "error")]
        assert c["status"] == "supported" and r["region_png"] is None
    assert "nope.png" in recs["missing"]["summary"]["region_error"] and "broken.png" in recs["broken"]["summary"]["region_error"]

    r = recs["noimg"]
    assert r["summary"]["region"] == "no_images" and "region_png" not in r
    assert all(v["checker"] == "graph" for c in r["claims"] for v in c["verdicts"])

    cap = capsys.readouterr()
    assert f"region map: {recs['rel']['region_png']}" in cap.out and "region: wrong side" in cap.out
    assert f"{reports}:3: E705" in cap.err and "4 with region errors" in cap.err


def test_strict_passes_when_every_study_is_checked(study_files, tiny_clip_dir, capsys):
    reports = write_jsonl(study_files / "r.jsonl", [{"id": "a", "report": RIGHT, "images": ["imgs/pa.png"], "view": "PA"}])
    out = study_files / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet", "--strict",
                 "--region-model", f"local-dir:{tiny_clip_dir}"]) == 0
    (rec,) = read_out(out)
    region = [v for c in rec["claims"] for v in c["verdicts"] if v["checker"] == "region"]
    assert region and all(v["score"] is None or 0.0 <= v["score"] <= 1.0 for v in region)
    assert "region_png" not in rec  # no --region-png-dir


def test_region_flags_need_a_model_and_a_bad_model_stops_early(tmp_path, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": RIGHT, "images": ["x.png"]}])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "--region-png-dir", str(tmp_path / "p")]) == 1
    assert "E700" in capsys.readouterr().err and not out.exists()
    assert main(["check", "--reports", str(reports), "--out", str(out), "--region-model", f"local-dir:{tmp_path / 'none'}"]) == 1
    assert "E601" in capsys.readouterr().err and not out.exists()
    # images without --region-model: checked as text, with a note
    assert main(["check", "--reports", str(reports), "--out", str(out)]) == 0
    assert "no --region-model" in capsys.readouterr().err
    (rec,) = read_out(out)
    assert "region" not in rec["summary"] and rec["summary"]["checkers"] == ["graph"]


def test_region_segmenter_flag(study_files, tiny_clip_dir, capsys):
    """--region-segmenter threshold cuts the zones from the film's segmented lungs (the
    evidence says so); a bad name or missing weights stop before any record; the flag
    needs --region-model."""
    reports = write_jsonl(study_files / "r.jsonl", [{"id": "a", "report": RIGHT, "images": ["imgs/pa.png"], "view": "PA"}])
    out = study_files / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet",
                 "--region-model", f"local-dir:{tiny_clip_dir}", "--region-segmenter", "threshold"]) == 0
    (rec,) = read_out(out)
    metas = [m for c in rec["claims"] for v in c["verdicts"] if v["checker"] == "region" for m in v.get("evidence_meta") or ()]
    assert metas and {m["zones"] for m in metas} == {"segmentation (threshold)"}
    # the default stays the atlas
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet",
                 "--region-model", f"local-dir:{tiny_clip_dir}"]) == 0
    (rec,) = read_out(out)
    assert {m["zones"] for c in rec["claims"] for v in c["verdicts"] if v["checker"] == "region"
            for m in v.get("evidence_meta") or ()} == {"atlas"}
    out.unlink()
    for name, code in (("watershed", "E612"), (f"xrv-pspnet:{study_files / 'no.pth'}", "E613")):
        assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet",
                     "--region-model", f"local-dir:{tiny_clip_dir}", "--region-segmenter", name]) == 1
        err = capsys.readouterr().err
        assert code in err and not out.exists(), err
    assert main(["check", "--reports", str(reports), "--out", str(out), "--region-segmenter", "threshold"]) == 1
    err = capsys.readouterr().err
    assert "E700" in err and "--region-segmenter" in err and not out.exists()
