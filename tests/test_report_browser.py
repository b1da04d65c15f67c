"""The HTML report of `reportgen run` in a real browser: headless Chromium (Debian's
`chromium`, installed by scripts/setup_env.sh dev) loads the pages from disk, JavaScript
errors fail the test, the sort/filter code runs, screenshots are taken, and the claim
statuses read from the DOM equal those in verdicts.jsonl."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reportgen.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup_env.sh dev installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True, text=True,
                          timeout=120, check=False)


def dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran; fails on a JavaScript error."""
    r = chromium(url, profile, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'data-js-error="' not in r.stdout, r.stdout[:500]  # the attribute window.onerror sets
    assert "Uncaught" not in r.stderr, [x for x in r.stderr.splitlines() if "Uncaught" in x]
    assert 'data-js-ready="1"' in r.stdout
    return r.stdout


class Claims(HTMLParser):
    """(version, data-claim, data-status) of every element with data-claim."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, int, str]] = []
        self.images = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-claim" in a:
            self.found.append((a.get("data-version"), int(a["data-claim"]), a.get("data-status")))
        if tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self.images += 1


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A run over drafts with an image, a DICOM, a missing image and failed drafts."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("browser")
    yy, xx = np.mgrid[0:96, 0:80]
    Image.fromarray((120 + 80 * np.sin(xx / 9.0) * np.cos(yy / 11.0)).astype(np.uint8), mode="L").save(d / "film.png")
    images = ["film.png"]
    try:
        from pydicom import data

        dcm = data.get_testdata_file("RG1_UNCI.dcm", download=False)
        if dcm:
            images.append(str(dcm))
    except Exception:
        pass
    drafts = [
        {"id": "s1", "report": "FINDINGS: Small right pleural effusion. No pneumothorax. The heart is enlarged.\n"
                               "IMPRESSION: Right effusion.", "images": images},
        {"id": "s2", "report": "The lungs are clear. There is a large left pneumothorax."},
        {"id": "s3", "report": "", "images": ["missing.png"]},
        {"id": "s4", "report": None, "error": "E571 server said no"},
        {"id": "s5 <b>odd</b> id", "report": "No acute cardiopulmonary process. Mild cardiomegaly."},
    ]
    refs = [{"id": "s1", "report": "Small left pleural effusion. No pneumothorax. Heart size normal."},
            {"id": "s2", "report": "The lungs are clear. No pneumothorax."},
            {"id": "s3", "report": "Normal chest."}, {"id": "s5 <b>odd</b> id", "report": "Mild cardiomegaly."}]
    (d / "drafts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in drafts))
    (d / "ref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refs))
    assert main(["run", "--reports", str(d / "drafts.jsonl"), "--reference", str(d / "ref.jsonl"), "--out", str(d / "run"),
                 "--bootstrap", "20", "-q"]) == 0
    return d / "run"


def test_index_loads_sorts_and_filters_without_javascript_errors(report, tmp_path):
    html = dom((report / "report" / "index.html").as_uri() + "?selftest", tmp_path / "profile")
    verdicts = lines(report / "verdicts.jsonl")
    flagged = sum(1 for v in verdicts if v["summary"]["contradicted"] + v["summary"]["unsupported"])
    assert flagged >= 1
    assert f'data-selftest="sorted:{flagged}"' in html  # sorted by contradicted, then filtered to flagged studies


def test_study_pages_show_the_statuses_of_verdicts_jsonl(report, tmp_path):
    index = (report / "report" / "index.html").read_text()
    verdicts = lines(report / "verdicts.jsonl")
    pages = sorted((report / "report" / "studies").glob("*.html"))
    assert len(pages) == len(verdicts)
    for page, v in zip(pages, verdicts):
        assert f"studies/{page.name}" in index
        p = Claims()
        p.feed(dom(page.as_uri(), tmp_path / "profile"))
        assert [(i, s) for ver, i, s in p.found if ver == "draft"] == [(i, c["status"]) for i, c in enumerate(v["claims"])]
        if v["id"] == "s1":
            assert p.images == 2 if any(x.endswith(".dcm") for x in v["images"]) else 1  # the PNG and the DICOM rendered
            assert v["claims"] and {c["status"] for c in v["claims"]} & {"contradicted", "unsupported"}


def test_arrow_keys_move_between_studies(report, tmp_path):
    """The page presses ArrowRight on itself (?selftest-keys): the DOM dumped is the next study's."""
    import html as h

    pages = sorted((report / "report" / "studies").glob("*.html"))
    verdicts = lines(report / "verdicts.jsonl")
    html = dom(pages[0].as_uri() + "?selftest-keys", tmp_path / "profile")
    assert f"<h1>{h.escape(verdicts[1]['id'], quote=False)}</h1>" in html


def test_screenshots_of_the_index_and_a_study_page(report, tmp_path):
    for name, url in (("index", report / "report" / "index.html"),
                      ("study", sorted((report / "report" / "studies").glob("*.html"))[0])):
        shot = tmp_path / f"{name}.png"
        r = chromium(url.as_uri(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars")
        assert r.returncode == 0 and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000, r.stderr[-1000:]


def test_a_javascript_error_is_caught(tmp_path):
    """The marker the tests rely on does catch an error."""
    from reportgen.evals.run_html import ERROR_JS

    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head>{ERROR_JS}</head><body><script>undefinedFunction();</script></body></html>")
    r = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert 'data-js-error="' in r.stdout and "undefinedFunction" in r.stdout


def test_check_and_eval_pages_load(report, tmp_path):
    d = report.parent
    assert main(["check", "--reports", str(d / "drafts.jsonl"), "--reference", str(d / "ref.jsonl"), "--out",
                 str(tmp_path / "v.jsonl"), "--html", str(tmp_path / "check.html"), "-q"]) in (0, 1)
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in lines(d / "drafts.jsonl") if r.get("report")))
    assert main(["eval", "--pred", str(good), "--ref", str(d / "ref.jsonl"), "--out", str(tmp_path / "m.json"),
                 "--html", str(tmp_path / "eval.html"), "--bootstrap", "10", "-q"]) == 0
    for name in ("check.html", "eval.html"):
        r = chromium((tmp_path / name).as_uri(), tmp_path / "profile", "--dump-dom")
        assert r.returncode == 0 and "<h1>" in r.stdout and "Uncaught" not in r.stderr
