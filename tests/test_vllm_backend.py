"""The vllm backend against a fake OpenAI server on 127.0.0.1: requests, retries, errors,
the concurrency bound, and the resume semantics of `reportgen draft` through it."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

from reportgen.types import Study
from tests.fake_openai import FakeOpenAI, report_for

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("httpx")

from reportgen.backends.vllm import VLLMDrafter, image_data_url  # noqa: E402


def fake_render(study, task):
    """Stands in for reportgen.prompting.render_messages: the study id is in the text."""
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]},
        {"role": "user", "content": [*({"type": "image", "image": p} for p in study.images),
                                     {"type": "text", "text": f"Write the {task}. STUDY={study.id}"}]},
    ]


def load_png(path):
    from PIL import Image

    return Image.open(path)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "cxr.png"
    Image.frombytes("L", (16, 12), bytes(range(192))).save(path)
    return path


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f


def make(fake, **kw) -> VLLMDrafter:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_backoff_s", 0.05)
    return VLLMDrafter(fake.url, render=fake_render, load_image=load_png, **kw)


def studies(n, image, prefix="s"):
    return [Study(f"{prefix}{i}", images=(str(image),)) for i in range(n)]


def test_drafts_with_base_model_by_default_and_sends_png_data_urls(fake, image_file):
    with make(fake, max_new_tokens=33) as d:
        (draft,) = d.draft(studies(1, image_file))
    assert draft.report == report_for("s0", "tiny-base")
    assert (draft.model, draft.adapter) == ("tiny-base", None)
    assert draft.latency_s > 0
    body = fake.requests[0]
    assert body["model"] == "tiny-base" and body["temperature"] == 0.0 and body["max_tokens"] == 33
    parts = body["messages"][1]["content"]
    url = parts[0]["image_url"]["url"]
    assert parts[0]["type"] == "image_url" and url.startswith("data:image/png;base64,")
    from PIL import Image

    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.tobytes() == Image.open(image_file).tobytes()  # lossless, same pixels
    assert parts[1] == {"type": "text", "text": "Write the findings. STUDY=s0"}


def test_model_selects_an_adapter_and_unknown_names_are_listed(fake, image_file):
    with make(fake, model="cxr") as d:
        (draft,) = d.draft(studies(1, image_file))
    assert fake.requests[-1]["model"] == "cxr"
    assert (draft.model, draft.adapter) == ("tiny-base", "cxr")
    with make(fake, model="nope") as d:
        (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.draft is None and r.error_kind == "request"
    assert "E569" in r.error and "'tiny-base'" in r.error and "'cxr'" in r.error


def test_retries_5xx_and_dropped_connections_then_succeeds(fake, image_file):
    fake.fail("s0", 503, "drop", 500)
    with make(fake, retries=3) as d:
        (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.ok and r.draft.report == report_for("s0", "tiny-base")
    assert fake.by_study["s0"] == 4


def test_gives_up_after_retries_as_a_transient_error(fake, image_file):
    fake.fail("s0", 503, 503, 503, 503, 503)
    with make(fake, retries=2) as d:
        (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.draft is None and r.transient and "E567" in r.error and "HTTP 503" in r.error
    assert fake.by_study["s0"] == 3  # 1 try + 2 retries


def test_backoff_grows_exponentially(fake, image_file):
    fake.fail("s0", 503, 503, 503)
    with make(fake, retries=3, backoff_s=0.1, max_backoff_s=10) as d:
        t0 = time.perf_counter()
        (r,) = list(d.draft_iter(studies(1, image_file)))
        elapsed = time.perf_counter() - t0
    assert r.ok
    assert elapsed >= 0.1 + 0.2 + 0.4 - 0.02


def test_4xx_is_not_retried_and_names_status_and_message(fake, image_file):
    fake.messages[400] = "This model's maximum context length is 2048 tokens."
    fake.fail("s1", 400)
    with make(fake, retries=5) as d:
        results = {r.study_id: r for r in d.draft_iter(studies(3, image_file))}
    bad = results["s1"]
    assert bad.draft is None and bad.error_kind == "request" and not bad.transient
    assert "E566" in bad.error and "HTTP 400" in bad.error and "maximum context length" in bad.error
    assert fake.by_study["s1"] == 1
    assert results["s0"].ok and results["s2"].ok  # the batch went on


def test_unreachable_server_is_a_transient_error(image_file):
    from reportgen.serve import free_port

    d = VLLMDrafter(f"http://127.0.0.1:{free_port()}", render=fake_render, load_image=load_png,
                    retries=1, backoff_s=0.01, connect_timeout_s=2)
    (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.draft is None and r.transient and "E565" in r.error and "failed after 2 tries" in r.error


def test_read_timeout_is_retried(fake, image_file):
    fake.fail("s0", ("sleep", 1.0))
    with make(fake, timeout_s=0.3, retries=2) as d:
        (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.ok and fake.by_study["s0"] == 2


def test_concurrency_is_bounded_and_used(fake, image_file):
    fake.delay_s = 0.15
    with make(fake, concurrency=3) as d:
        t0 = time.perf_counter()
        results = list(d.draft_iter(studies(9, image_file)))
        elapsed = time.perf_counter() - t0
    assert sorted(r.study_id for r in results) == [f"s{i}" for i in range(9)]
    assert all(r.ok for r in results)
    assert fake.max_inflight == 3
    assert elapsed < 9 * 0.15 * 0.7  # overlapped, not one by one


def test_draft_keeps_input_order_and_raises_a_failed_study(fake, image_file):
    fake.delay_s = 0.0
    fake.fail("s0", ("sleep", 0.2))
    with make(fake, concurrency=4) as d:
        drafts = d.draft(studies(4, image_file))
        assert [x.id for x in drafts] == ["s0", "s1", "s2", "s3"]
        fake.fail("s2", 422)
        with pytest.raises(Exception, match="E579.*s2.*HTTP 422"):
            d.draft(studies(4, image_file))


def test_unreadable_image_is_an_input_error(fake, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with make(fake) as d:
        (r,) = list(d.draft_iter([Study("x", images=(str(bad),))]))
    assert r.draft is None and r.error_kind == "input" and "E564" in r.error
    assert not fake.requests  # nothing was sent


def test_token_ids_and_usage(fake, image_file):
    with make(fake, return_token_ids=True) as d:
        (r,) = list(d.draft_iter(studies(1, image_file)))
    assert r.token_ids == tuple(ord(c) for c in report_for("s0", "tiny-base"))
    assert r.completion_tokens == len(r.token_ids) and r.finish_reason == "stop"
    assert fake.requests[0]["return_tokens_as_token_ids"] is True


def test_url_forms_and_bad_options():
    from reportgen.errors import ReportgenError

    assert VLLMDrafter("http://127.0.0.1:9/v1/").url == "http://127.0.0.1:9"
    with pytest.raises(ReportgenError, match="E563"):
        VLLMDrafter("http://127.0.0.1:9", concurrency=0)
    with pytest.raises(ReportgenError, match="E563.*task"):
        VLLMDrafter("http://127.0.0.1:9", task="summary")


def test_image_data_url_converts_other_modes():
    from PIL import Image

    url = image_data_url(Image.new("RGBA", (4, 4), (10, 20, 30, 255)))
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (10, 20, 30)


# -- `reportgen draft` through the vllm backend ------------------------------------------
@pytest.fixture
def patched_prompting(monkeypatch):
    import reportgen.backends.vllm as vb

    monkeypatch.setattr(vb, "_default_render", fake_render)
    monkeypatch.setattr(vb, "_default_load_image", load_png)


def write_studies(path: Path, image: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"s{i}", "images": [image.name]}) + "\n" for i in range(n)))
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def draft_cli(fake_url, studies_path, out, *extra):
    from reportgen.cli import main

    return main(["draft", "--studies", str(studies_path), "--backend", f"vllm:{fake_url}?model=cxr&retries=1&backoff_s=0.01",
                 "--out", str(out), "--no-progress", *extra])


def test_draft_cli_resume_retries_transient_errors_only(fake, image_file, tmp_path, patched_prompting, capsys):
    studies_path = write_studies(image_file.parent / f"studies-{tmp_path.name}.jsonl", image_file, 6)
    out = tmp_path / "drafts.jsonl"
    fake.fail("s1", 503, 503)  # transient: both tries fail
    fake.fail("s4", 400)  # refused: kept unless --retry-errors
    assert draft_cli(fake.url, studies_path, out) == 1
    recs = {r["id"]: r for r in records(out)}
    assert set(recs) == {f"s{i}" for i in range(6)}
    for key in ("id", "report", "model", "adapter", "prompt_version", "latency_s", "error"):
        assert all(key in r for r in recs.values())
    assert recs["s1"]["error_kind"] == "unavailable" and recs["s4"]["error_kind"] == "request"
    assert recs["s0"]["report"] == report_for("s0", "cxr") and recs["s0"]["adapter"] == "cxr"
    assert "Report for" not in capsys.readouterr().err  # report text is never logged
    kept = {i: r for i, r in recs.items() if i not in ("s1",)}

    before = dict(fake.by_study)
    assert draft_cli(fake.url, studies_path, out) == 0  # s1 retried, s4 kept
    after = {r["id"]: r for r in records(out)}
    assert len(records(out)) == 6
    assert after["s1"]["report"] == report_for("s1", "cxr") and after["s1"]["error"] is None
    assert {i: after[i] for i in kept} == kept  # completed drafts unchanged
    assert {k: fake.by_study[k] - before.get(k, 0) for k in fake.by_study} == {**{k: 0 for k in before}, "s1": 1}

    assert draft_cli(fake.url, studies_path, out, "--retry-errors") == 0
    final = {r["id"]: r for r in records(out)}
    assert len(records(out)) == 6 and final["s4"]["error"] is None
    assert fake.completed["s0"] == 1 and fake.completed["s4"] == 1


def test_draft_cli_stops_when_the_server_goes_away_and_resumes(image_file, tmp_path, patched_prompting, capsys):
    from reportgen.serve import free_port

    port = free_port()
    studies_path = write_studies(image_file.parent / f"studies-{tmp_path.name}.jsonl", image_file, 12)
    out = tmp_path / "drafts.jsonl"
    with FakeOpenAI(port=port) as fake:
        fake.fail("s5", 400)
        assert draft_cli(fake.url, studies_path, out, "--limit", "6", "--concurrency", "2") == 1
    first = {r["id"]: r for r in records(out)}
    assert len(first) == 6 and sum(r["error"] is None for r in first.values()) == 5
    # Server gone: the batch stops after a few unreachable studies instead of writing 6 errors.
    assert draft_cli(f"http://127.0.0.1:{port}", studies_path, out, "--max-consecutive-failures", "2", "--concurrency", "1") == 1
    assert "E578" in capsys.readouterr().err
    mid = records(out)
    assert 6 < len(mid) < 12 and all(r["error_kind"] == "unavailable" for r in mid[6:])
    with FakeOpenAI(port=port) as fake:
        assert draft_cli(fake.url, studies_path, out) == 0
        redone = set(fake.by_study)
    final = {r["id"]: r for r in records(out)}
    assert len(records(out)) == 12 and set(final) == {f"s{i}" for i in range(12)}
    assert redone == {f"s{i}" for i in range(6, 12)}  # nothing done was redone
    assert {i: final[i] for i in first} == first


def test_draft_cli_ctrl_c_stops_promptly_keeps_finished_drafts_and_resumes(fake, image_file, tmp_path):
    """The real prompting and image loading (reportgen.prompting / reportgen.images); the
    study id travels in the indication. A request that hangs does not hold up Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys

    pytest.importorskip("reportgen.prompting")
    studies_path = image_file.parent / f"studies-{tmp_path.name}.jsonl"
    studies_path.write_text("".join(
        json.dumps({"id": f"s{i}", "images": [image_file.name], "indication": f"STUDY=s{i}"}) + "\n" for i in range(6)))
    out = tmp_path / "drafts.jsonl"
    fake.fail("s3", ("sleep", 60))
    cmd = [sys.executable, "-m", "reportgen", "draft", "--studies", str(studies_path), "--backend", f"vllm:{fake.url}",
           "--out", str(out), "--concurrency", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.monotonic() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10 and proc.returncode == 130, err
    assert sorted(r["id"] for r in records(out)) == ["s0", "s1", "s2", "s4", "s5"]
    body = fake.requests[0]
    assert isinstance(body["messages"][0]["content"], str) and body["messages"][0]["role"] == "system"
    assert any(p["type"] == "image_url" and p["image_url"]["url"].startswith("data:image/png;base64,")
               for p in body["messages"][1]["content"])
    assert records(out)[0]["prompt_version"] == __import__("reportgen.prompting").prompting.PROMPT_VERSION
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(x["id"] for x in records(out)) == [f"s{i}" for i in range(6)]
    assert fake.completed["s3"] == 1 and all(fake.completed[f"s{i}"] == 1 for i in range(6))


def test_real_prompting_and_a_custom_template(fake, image_file, tmp_path):
    pytest.importorskip("reportgen.prompting")
    template = json.loads((Path(__file__).resolve().parents[1] / "prompts" / "draft.json").read_text())
    template["version"] = "custom-v9"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    study = Study("s0", images=(str(image_file),), indication="STUDY=s0")
    with VLLMDrafter(fake.url, template=str(path)) as d:
        (draft,) = d.draft([study])
    assert draft.prompt_version == "custom-v9" and draft.report == report_for("s0", "tiny-base")
    from reportgen.prompting import render_messages

    sent = fake.requests[0]["messages"]
    expected = render_messages(study, "findings")
    assert sent[0] == expected[0]  # the system message as rendered
    assert [p["type"] for p in sent[1]["content"]] == [
        "image_url" if p["type"] == "image" else p["type"] for p in expected[1]["content"]]
