"""Patient data (issue 16): commands run over real IU reports with logging at DEBUG print
no report sentence, indication or image path on stderr; `--log-phi` opts in; the HTML page
carries a banner that it contains report text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.phi import scrub, set_allowed

REPO = Path(__file__).resolve().parents[1]
N = 80


@pytest.fixture(scope="module")
def iu():
    pytest.importorskip("torchxrayvision")
    from reportgen.iu import load_iu_reports

    reports = [r for r in load_iu_reports() if r.indication and len(r.indication) > 12][:N]
    assert len(reports) == N
    return reports


def phrases(reports) -> set[str]:
    """Every sentence of the reports and every indication, at least 16 characters long."""
    from reportgen.checkers.claims import sentences

    out = set()
    for r in reports:
        text = r.report.text if hasattr(r.report, "text") else r.report
        out.update(text[a:b] for a, b in sentences(text) if b - a >= 16)
        out.add(r.indication.strip())
    return out


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def leaks(output: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s in output)


def test_scrub_rules():
    set_allowed(None)
    assert scrub("E576 image 'a/b.png' not found") == "E576 image '<path>' not found"
    assert scrub("E575 'images' must be a list") == "E575 'images' must be a list"
    assert scrub("claim \"Right upper lobe opacity is new\" failed") == "claim \"<text>\" failed"
    set_allowed(True)
    try:
        assert scrub("E576 image 'a/b.png' not found") == "E576 image 'a/b.png' not found"
    finally:
        set_allowed(None)


def test_check_and_label_over_iu_reports_at_debug_leak_no_text(iu, tmp_path):
    rows = [json.dumps({"id": r.id, "report": r.report.text if hasattr(r.report, "text") else r.report}) for r in iu]
    rows.insert(5, "{not json " + rows[5][:80])  # a broken line that starts with report text
    rows.insert(9, json.dumps({"id": "bad", "report": 42}))
    (tmp_path / "r.jsonl").write_text("\n".join(rows) + "\n")
    ref = [json.dumps({"id": r.id, "report": r.report.text if hasattr(r.report, "text") else r.report}) for r in iu[:50]]
    (tmp_path / "ref.jsonl").write_text("\n".join(ref + ["{broken " + ref[0][:60]]) + "\n")
    secrets = phrases(iu)
    check = run("-vv", "check", "--reports", "r.jsonl", "--reference", "ref.jsonl", "--out", "v.jsonl",
                "--html", "v.html", cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-2000:]
    label = run("-vv", "label", "--reports", "r.jsonl", "--out", "l.jsonl", cwd=tmp_path)
    assert label.returncode == 0, label.stderr[-2000:]
    for proc in (check, label):
        assert not leaks(proc.stderr + proc.stdout, secrets)
    assert "DEBUG" in check.stderr + label.stderr or "INFO" in check.stderr + label.stderr  # logging was on
    page = (tmp_path / "v.html").read_text()
    assert "Contains report text (patient data)" in page and page.index("class='phi'") < page.index("<h2>Summary")


def test_draft_at_debug_leaks_no_indication_or_image_path(iu, tmp_path):
    pytest.importorskip("httpx")
    from PIL import Image

    from tests.fake_openai import FakeOpenAI

    data = tmp_path / "data"
    data.mkdir()
    Image.frombytes("L", (8, 8), bytes(range(64))).save(data / "frontal-patient-7731.png")
    (data / "corrupt-patient-7731.png").write_bytes(b"\x89PNG not really")
    outside = tmp_path / "elsewhere-patient-7731.png"
    Image.frombytes("L", (8, 8), bytes(64)).save(outside)
    images = ["frontal-patient-7731.png", "missing-patient-7731.png", "corrupt-patient-7731.png", str(outside),
              "../elsewhere-patient-7731.png"]
    studies = [{"id": r.id, "images": [images[i % len(images)]], "indication": r.indication} for i, r in enumerate(iu[:40])]
    (data / "studies.jsonl").write_text("".join(json.dumps(s) + "\n" for s in studies))
    secrets = {r.indication.strip() for r in iu[:40]} | {"patient-7731"}  # (the studies file path is not patient data)
    with FakeOpenAI() as fake:
        fake.default = 503  # every request fails: the error path is logged too
        fake.fail("?", "ok")
        d = run("-vv", "draft", "--studies", str(data / "studies.jsonl"), "--backend", f"vllm:{fake.url}?retries=0",
                "--out", str(tmp_path / "d.jsonl"), "--no-progress", "--max-consecutive-failures", "0", cwd=tmp_path)
    assert d.returncode == 1, d.stderr[-2000:]
    assert "E576" in d.stderr and "E904" in d.stderr and ("E564" in d.stderr or "E501" in d.stderr)
    assert not leaks(d.stderr + d.stdout, secrets), leaks(d.stderr + d.stdout, secrets)
    records = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert any("missing-patient-7731.png" in (r["error"] or "") for r in records)  # the output keeps the detail

    with FakeOpenAI() as fake:
        again = run("--log-phi", "-vv", "draft", "--studies", str(data / "studies.jsonl"), "--backend",
                    f"vllm:{fake.url}?retries=0", "--out", str(tmp_path / "d2.jsonl"), "--no-progress", cwd=tmp_path)
    assert "missing-patient-7731.png" in again.stderr  # opted in: the path is shown
    with FakeOpenAI() as fake:
        sub = run("-vv", "draft", "--log-phi", "--studies", str(data / "studies.jsonl"), "--backend",
                  f"vllm:{fake.url}?retries=0", "--out", str(tmp_path / "d3.jsonl"), "--no-progress", cwd=tmp_path)
    assert "missing-patient-7731.png" in sub.stderr  # the flag after the command works too
