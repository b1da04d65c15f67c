"""The HTML page of `reportgen check` results (reportgen.evals.check_html, `reportgen check --html`):
summary counts, claims coloured by status with each checker's reasons, the region PNG
inlined as a data URI, escaping, notes for missing pictures, flagged-only and the cap."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest

from reportgen.evals.check_html import CheckPage, render_check_html, split_reasons

pytest.importorskip("reportgen.checkers.read")

from reportgen.checkers.pipeline import Pipeline  # noqa: E402

PNG_URI = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")
REPORT = "FINDINGS: Mild cardiomegaly. No pneumothorax.\n\nIMPRESSION: Normal chest."
REFERENCE = "FINDINGS: Mild cardiomegaly. No pleural effusion or pneumothorax."


def tiny_png(path=None, size=(24, 16)) -> bytes:
    Image = pytest.importorskip("PIL.Image")  # Pillow comes with the clip/draft extras

    buf = io.BytesIO()
    Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) % 256).astype(np.uint8)).save(buf, format="PNG")
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture(scope="module")
def records():
    """Real records of the pipeline: a flagged study (with a reference) and a clean one."""
    pipe = Pipeline(self_check=True)
    flagged = pipe.check("flagged", REPORT, REFERENCE).to_record()
    clean = pipe.check("clean", "FINDINGS: No pneumothorax.", "FINDINGS: No pneumothorax.").to_record()
    assert flagged["summary"]["flagged"] >= 1 and clean["summary"]["flagged"] == 0
    return flagged, clean


def section(page: str, rid: str) -> str:
    """The HTML of the study with this (escaped) id."""
    for part in page.split("<section class='study'")[1:]:
        if f"<h2>{rid}</h2>" in part:
            return part
    raise AssertionError(f"no section for {rid}")


def test_summary_claims_status_and_reasons(records):
    flagged, clean = records
    error = {"id": "line:3", "error": "r.jsonl:3: E103 line is not valid JSON", "claims": [], "summary": {"claims": 0}}
    page = render_check_html([flagged, clean, error], title="my run")
    assert page.startswith("<!DOCTYPE html>") and "<title>my run</title>" in page
    n_claims = len(flagged["claims"]) + len(clean["claims"])
    assert f"<tr><th>claims</th><td class='num'>{n_claims}</td></tr>" in page
    n_contra = sum(c["status"] == "contradicted" for c in flagged["claims"] + clean["claims"])
    assert f"<span class='st st-contradicted'>contradicted</span></th><td class='num'>{n_contra}</td>" in page
    assert "<tr><th>records with errors</th><td class='num'>1</td></tr>" in page
    assert "r.jsonl:3: E103 line is not valid JSON" in page  # the error record is listed
    # every claim of the flagged study: its text, its status badge and its graph reasons
    body = section(page, "flagged")
    for c in flagged["claims"]:
        at = body.index("<td>" + c["text"])  # the claim's cell (its text may also stand in another claim's reasons)
        row = body[at - 300: at]
        assert f"st-{c['status']}'>{c['status']}</span>" in row
        for r in c["reasons"]:
            assert f"<li>{r}</li>".replace("'", "&#x27;") in body
    assert "<b>graph</b>" in body and "st-contradicted" in body
    assert "<img" not in page  # no region evidence: no picture and no note
    assert "region map" not in page.lower()


def test_text_is_escaped():
    rec = Pipeline().check("<b>id</b>", "FINDINGS: <script>alert(1)</script> Right pleural effusion.").to_record()
    page = render_check_html([rec], title="<i>t</i>")
    assert "<script>" not in page and "<b>id</b>" not in page and "<i>t</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;id&lt;/b&gt;" in page


def test_reasons_split_by_checker():
    claim = {"text": "Right effusion.", "status": "contradicted",
             "reasons": ["region: wrong side: evidence lies on the left", "graph: supported: matches", "region-box: box on the left"],
             "verdicts": [{"checker": "graph", "status": "supported", "score": 1.0, "evidence": []},
                          {"checker": "region", "status": "contradicted", "score": 0.1, "evidence": ["image"],
                           "evidence_meta": [{"zone": ["right_base"], "cnr": 0.123, "best_zone": "left_base", "calibrated": False}]},
                          {"checker": "region-box", "status": "contradicted", "score": 0.0, "evidence": []}]}
    assert split_reasons(claim) == {"graph": ["supported: matches"], "region": ["wrong side: evidence lies on the left"],
                                    "region-box": ["box on the left"]}
    assert split_reasons({"reasons": ["supported: x"], "verdicts": [{"checker": "graph"}]}) == {"graph": ["supported: x"]}
    page = render_check_html([{"id": "s", "error": None, "claims": [claim], "summary": {"claims": 1, "contradicted": 1, "flagged": 1}}])
    region = page[page.index("<b>region</b>"): page.index("<b>region-box</b>")]
    assert "claimed zone right base; CNR 0.12; best zone left base; calibrated no" in region
    assert "<li>wrong side: evidence lies on the left</li>" in region and "matches" not in region


def test_region_png_inlined_and_notes_for_missing_or_bad_files(records, tmp_path, monkeypatch):
    flagged, _ = records
    png = tiny_png(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    recs = [dict(flagged, id="ok", region_png=str(tmp_path / "ok.png"), summary=dict(flagged["summary"], region="checked")),
            dict(flagged, id="rel", region_png="ok.png", summary=dict(flagged["summary"], region="checked")),
            dict(flagged, id="gone", region_png=str(tmp_path / "gone.png")),
            dict(flagged, id="bad", region_png=str(tmp_path / "bad.png")),
            dict(flagged, id="failed", region_png=None, summary=dict(flagged["summary"], region="error", region_error="r.jsonl:5: E705 image 'x.png' not found")),
            dict(flagged, id="drawfail", region_png=None, region_png_error="E706 writing p/x.png failed: disk full")]
    monkeypatch.chdir(tmp_path.parent)  # "ok.png" is not in the current folder: found in png_base
    page = render_check_html(recs, png_base=tmp_path)
    for rid in ("ok", "rel"):
        (b64,) = PNG_URI.findall(section(page, rid))
        assert base64.b64decode(b64) == png
    assert f"E708 region PNG {tmp_path / 'gone.png'} not found" in section(page, "gone")
    assert f"E708 region PNG {tmp_path / 'bad.png'} is not a PNG file" in section(page, "bad")
    assert "E705 image &#x27;x.png&#x27; not found" in section(page, "failed")
    assert "images could not be used" in section(page, "failed")
    assert "E706 writing p/x.png failed: disk full" in section(page, "drawfail")
    assert len(PNG_URI.findall(page)) == 2
    # PNG bytes handed over directly (the command without --region-png-dir)
    p = CheckPage()
    p.add(dict(flagged, id="mem", summary=dict(flagged["summary"], region="checked")), png=png)
    p.add(dict(flagged, id="nopic", summary=dict(flagged["summary"], region="checked")), png_problem="E708 the region map could not be drawn: boom")
    out = p.render()
    assert [base64.b64decode(b) for b in PNG_URI.findall(out)] == [png]
    assert "E708 the region map could not be drawn: boom" in section(out, "nopic")


def test_flagged_only_and_the_cap(records):
    flagged, clean = records
    recs = [clean, dict(flagged, id="f1"), clean, dict(flagged, id="f2"), dict(flagged, id="f3")]
    page = render_check_html(recs, flagged_only=True)
    assert "<h2>clean</h2>" not in page and all(f"<h2>{i}</h2>" in page for i in ("f1", "f2", "f3"))
    assert "<tr><th>records (studies)</th><td class='num'>5</td></tr>" in page  # the summary counts all
    assert "<tr><th>studies with a flagged claim</th><td class='num'>3</td></tr>" in page
    capped = render_check_html(recs, flagged_only=True, max_studies=2)
    assert [m for m in re.findall(r"<h2>(f\d)</h2>", capped)] == ["f1", "f2"]
    assert "1 more left out (at most 2 shown)" in capped
    everything = render_check_html(recs)
    assert everything.count("<section class='study'") == 5


# --- the command -------------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def study(tmp_path):
    """A synthetic grey radiograph-sized PNG and reports naming it (no shared data needed)."""
    Image = pytest.importorskip("PIL.Image")

    y, x = np.mgrid[0:96, 0:96]
    Image.fromarray((128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(np.uint8)).save(tmp_path / "pa.png")
    return write_jsonl(tmp_path / "r.jsonl", [
        {"id": "s/1", "report": "FINDINGS: Right upper lobe opacity <script>x</script>. No pleural effusion.", "images": ["pa.png"], "view": "PA"},
        {"id": "s2", "report": "FINDINGS: No pneumothorax."},
        {"id": "s3", "report": "FINDINGS: Right upper lobe opacity.", "images": ["missing.png"]},
    ])


@pytest.fixture()
def left_upper_maps(monkeypatch):
    """Every region map puts the evidence in the patient's LEFT upper zone, so the right
    upper lobe claim is contradicted (wrong side) and its map is drawn."""
    pytest.importorskip("open_clip")
    from reportgen.checkers.region.checker import RegionChecker
    from reportgen.checkers.region.zones import GRID
    from tests.fixtures_clip import LEFT_UPPER, blob

    monkeypatch.setattr(RegionChecker, "similarity_maps",
                        lambda self, enc, texts: np.stack([blob(*LEFT_UPPER) for _ in texts]) if texts else np.zeros((0, GRID, GRID)))


def test_cli_html_embeds_the_region_pngs(study, tiny_clip_dir, left_upper_maps, capsys):
    from reportgen.cli import main

    d = study.parent
    out, html_path, pngs = d / "v.jsonl", d / "page" / "check.html", d / "pngs"
    assert main(["check", "--reports", str(study), "--out", str(out), "--html", str(html_path),
                 "--region-model", f"local-dir:{tiny_clip_dir}", "--region-png-dir", str(pngs)]) == 0
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(recs["s/1"]) >= {"id", "error", "claims", "summary", "region_png"}  # the JSONL shape is unchanged
    page = html_path.read_text(encoding="utf-8")
    (b64,) = PNG_URI.findall(page)
    assert base64.b64decode(b64) == open(recs["s/1"]["region_png"], "rb").read()
    assert "<script>" not in page and "Right upper lobe opacity &lt;script&gt;x&lt;/script&gt;." in page
    assert "st-contradicted'>contradicted</span>" in section(page, "s/1") and "<b>region</b>" in section(page, "s/1")
    assert "E705 image &#x27;missing.png&#x27; not found" in section(page, "s3")
    err = capsys.readouterr().err
    assert f"HTML page {html_path} (3 studies shown)" in err
    assert "Right upper lobe" not in err and "script" not in err  # report text is never logged

    # without --region-png-dir the picture is drawn for the page only; flagged studies only
    html2 = d / "flagged.html"
    assert main(["check", "--reports", str(study), "--out", str(d / "v2.jsonl"), "--html", str(html2), "--html-flagged-only",
                 "-q", "--region-model", f"local-dir:{tiny_clip_dir}"]) == 0
    page2 = html2.read_text(encoding="utf-8")
    assert "<h2>s/1</h2>" in page2 and "<h2>s2</h2>" not in page2 and "<h2>s3</h2>" not in page2
    (b64,) = PNG_URI.findall(page2)
    assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n")
    assert not any("region_png" in json.loads(line) for line in (d / "v2.jsonl").read_text().splitlines())


def test_cli_html_without_region_model_and_option_errors(study, tmp_path, capsys):
    from reportgen.cli import main

    html_path = tmp_path / "page.html"
    assert main(["check", "--reports", str(study), "--html", str(html_path), "--html-max-studies", "2", "-q"]) == 0
    page = html_path.read_text(encoding="utf-8")
    assert page.count("<section class='study'") == 2 and "1 more left out (at most 2 shown)" in page and "<img" not in page
    assert '{"id":"s/1"' in capsys.readouterr().out  # the JSONL still goes to stdout
    out = tmp_path / "v.jsonl"
    for argv, code in ((["--html-flagged-only"], "E709"), (["--html-max-studies", "3"], "E709"),
                       (["--html", str(out)], "E709"), (["--html", str(html_path), "--html-max-studies", "0"], "E709"),
                       (["--html", str(study / "x.html")], "E707"), (["--html", str(tmp_path)], "E707")):
        assert main(["check", "--reports", str(study), "--out", str(out), *argv]) == 1, argv
        assert code in capsys.readouterr().err, argv
        assert not out.exists()  # stopped before checking anything


def test_module_cli_renders_an_existing_output(records, tmp_path, capsys):
    from reportgen.evals.check_html import main

    flagged, clean = records
    src = tmp_path / "v.jsonl"
    src.write_text(json.dumps(flagged) + "\n" + json.dumps(clean) + "\n{torn\n", encoding="utf-8")
    assert main([str(src), "--out", str(tmp_path / "p.html"), "--flagged-only"]) == 0
    page = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "<h2>flagged</h2>" in page and "<h2>clean</h2>" not in page
    assert "1 line(s)" in capsys.readouterr().err
    assert main([str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "q.html")]) == 1
    assert "E709" in capsys.readouterr().err
