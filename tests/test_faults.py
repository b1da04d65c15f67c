"""Fault injection for `reportgen draft` through the vllm backend (issue 16).

Each fault of the matrix is injected into the fake OpenAI server (tests/fake_openai.py)
for some studies of a batch; the test then checks the promises of docs/hardening.md:
no finished draft lost, none duplicated, every failure an error record with its kind, and
a rerun against a healthy server drafts exactly the missing studies and nothing else.
Also: one writer per output (the lock) and one kind of draft per output (--allow-mixed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, report_for

pytest.importorskip("httpx")
pytest.importorskip("PIL.Image")

REPO = Path(__file__).resolve().parents[1]
N = 8


def fake_render(study, task):
    return [{"role": "user", "content": [*({"type": "image", "image": p} for p in study.images),
                                         {"type": "text", "text": f"Write the {task}. STUDY={study.id}"}]}]


def load_png(path):
    from PIL import Image

    return Image.open(path)


@pytest.fixture
def patched(monkeypatch):
    import reportgen.backends.vllm as vb

    monkeypatch.setattr(vb, "_default_render", fake_render)
    monkeypatch.setattr(vb, "_default_load_image", load_png)


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    Image.frombytes("L", (8, 8), bytes(range(64))).save(folder / "cxr.png")
    studies = folder / "studies.jsonl"
    studies.write_text("".join(json.dumps({"id": f"s{i}", "images": ["cxr.png"]}) + "\n" for i in range(N)))
    return studies, tmp_path / "drafts.jsonl"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def draft(url: str, studies: Path, out: Path, *extra: str, options: str = "") -> int:
    from reportgen.cli import main

    spec = f"vllm:{url}?model=cxr&retries=1&backoff_s=0.01&max_backoff_s=0.02&timeout_s=0.6{options}"
    return main(["draft", "--studies", str(studies), "--backend", spec, "--out", str(out), "--no-progress",
                 "--concurrency", "2", *extra])


# fault -> (how to inject it into a fake server, error kind of the failed studies, code in the error)
FAULTS = {
    "killed mid-batch": (lambda f: f.kill_after(3), "unavailable", "E56"),
    "hung": (lambda f: f.fail("s2", "hang", "hang"), "unavailable", "E565"),
    "HTTP 500": (lambda f: f.fail("s2", 500, 500), "unavailable", "E567"),
    "429 + Retry-After": (lambda f: f.fail("s2", ("http", 429, {"Retry-After": "0.3"}), ("http", 429, {"Retry-After": "0.3"})),
                          "unavailable", "E567"),
    "malformed JSON": (lambda f: f.fail("s2", "malformed", "malformed"), "bad_response", "E900"),
    "truncated": (lambda f: f.fail("s2", "truncate", "truncate"), "unavailable", "E565"),
    "slow past timeout": (lambda f: f.fail("s2", ("sleep", 1.5), ("sleep", 1.5)), "unavailable", "E565"),
    "wrong model": (lambda f: f.fail("s2", "wrong-model", "wrong-model"), "bad_response", "E901"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_matrix(fault, data, patched, capsys):
    from reportgen.serve import free_port

    inject, kind, code = FAULTS[fault]
    studies, out = data
    port = free_port()
    with FakeOpenAI(port=port) as fake:
        inject(fake)
        rc = draft(fake.url, studies, out, "--max-consecutive-failures", "3")
        sent_first = dict(fake.completed)
    assert rc == 1
    first = records(out)
    ids = [r["id"] for r in first]
    assert len(ids) == len(set(ids))  # nothing duplicated
    ok = {r["id"]: r for r in first if r["error"] is None}
    failed = [r for r in first if r["error"] is not None]
    assert failed, "the fault produced no error record"
    for r in failed:  # every failure an error record with its kind and code
        assert r["report"] is None and r["error_kind"] == kind and code in r["error"], r
    for sid, r in ok.items():  # every finished draft is there, whole
        assert r["report"] == report_for(sid, "cxr") and r["adapter"] == "cxr"
    if fault == "killed mid-batch":
        assert len(ok) == 3 and sum(sent_first.values()) == 3  # what the server finished was kept
    else:
        assert set(ok) == {f"s{i}" for i in range(N)} - {"s2"}
    assert "Report for" not in capsys.readouterr().err

    with FakeOpenAI(port=port) as fake:  # a healthy server on the same URL
        assert draft(fake.url, studies, out) == 0
        redone = set(fake.by_study)
    final = records(out)
    assert sorted(r["id"] for r in final) == sorted(f"s{i}" for i in range(N))  # one record per study
    assert all(r["error"] is None for r in final)
    assert redone == {f"s{i}" for i in range(N)} - set(ok)  # exactly the missing ones
    assert {r["id"]: r for r in final if r["id"] in ok} == ok  # finished drafts untouched


def test_retry_after_is_honoured(data, patched):
    from reportgen.backends.vllm import VLLMDrafter
    from reportgen.types import Study

    studies, _ = data
    with FakeOpenAI() as fake:
        fake.fail("s0", ("http", 429, {"Retry-After": "1"}))
        with VLLMDrafter(fake.url, retries=2, backoff_s=0.01, max_backoff_s=0.02) as d:
            t0 = time.perf_counter()
            (r,) = list(d.draft_iter([Study("s0", images=(str(studies.parent / "cxr.png"),))]))
            waited = time.perf_counter() - t0
    assert r.ok and fake.by_study["s0"] == 2
    assert waited >= 0.95  # the server's Retry-After, not the 0.01 s backoff


def test_retry_after_is_capped_and_accepts_http_dates():
    import httpx

    from reportgen.backends.vllm import retry_after_s

    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # past
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_s(httpx.Response(429)) is None


# -- one writer per output ---------------------------------------------------------------
def test_a_second_run_on_a_locked_output_refuses_and_writes_nothing(data, patched, capsys):
    from reportgen.lock import OutputLock

    studies, out = data
    with FakeOpenAI() as fake:
        with OutputLock(out):
            assert draft(fake.url, studies, out) == 1
            err = capsys.readouterr().err
            assert "E902" in err and f"pid {os.getpid()}" in err
            assert not out.exists() and not fake.requests
        assert draft(fake.url, studies, out) == 0  # released: the next run goes ahead
    assert len(records(out)) == N and not Path(str(out) + ".lock").exists()


def test_a_stale_lock_file_is_taken_over(data, patched, caplog):
    studies, out = data
    lock = Path(str(out) + ".lock")
    lock.write_text(json.dumps({"pid": 999999, "host": "gone", "since": "2026-01-01T00:00:00Z"}))
    with FakeOpenAI() as fake:
        assert draft(fake.url, studies, out) == 0
    assert len(records(out)) == N and not lock.exists()
    assert "999999" in caplog.text


def test_two_runs_at_once_do_not_interleave(data, tmp_path):
    """A real second process: while the first drafts (slowly), the second refuses."""
    studies, out = data
    studies.write_text("".join(json.dumps({"id": f"s{i}", "images": ["cxr.png"], "indication": f"STUDY=s{i}"}) + "\n"
                               for i in range(N)))
    with FakeOpenAI() as fake:
        fake.delay_s = 0.25
        cmd = [sys.executable, "-m", "reportgen", "draft", "--studies", str(studies), "--backend", f"vllm:{fake.url}",
               "--out", str(out), "--concurrency", "1", "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lock = Path(str(out) + ".lock")
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.exists()
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        _, err = first.communicate(timeout=60)
    assert second.returncode == 1 and "E902" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.returncode == 0, err
    final = records(out)
    assert [r["id"] for r in final] == [f"s{i}" for i in range(N)]  # one writer, in order, once each
    assert all(fake.completed[f"s{i}"] == 1 for i in range(N)) and not lock.exists()


def settle(fake, quiet_s: float = 0.3) -> None:
    deadline = time.monotonic() + 10
    seen, since = len(fake.requests), time.monotonic()
    while time.monotonic() < deadline and (fake.inflight or time.monotonic() - since < quiet_s):
        if len(fake.requests) != seen:
            seen, since = len(fake.requests), time.monotonic()
        time.sleep(0.02)


# -- one kind of draft per output --------------------------------------------------------
def test_a_rerun_with_another_adapter_task_or_template_refuses_unless_allow_mixed(data, patched, tmp_path, capsys):
    from reportgen.cli import main

    studies, out = data
    half = studies.parent / "half.jsonl"
    half.write_text("".join(studies.read_text().splitlines(keepends=True)[:4]))
    with FakeOpenAI() as fake:
        assert draft(fake.url, half, out) == 0
        before = out.read_text()

        def run(*extra, spec=f"vllm:{fake.url}?retries=1"):  # no ?model=: the base model, no adapter
            return main(["draft", "--studies", str(studies), "--backend", spec, "--out", str(out), "--no-progress", *extra])

        assert run() == 1  # adapter None != 'cxr'
        err = capsys.readouterr().err
        assert "E903" in err and "adapter" in err and "--allow-mixed" in err
        assert out.read_text() == before
        settle(fake)  # requests already in flight when the run stopped still arrive
        n = len(fake.requests)
        assert run("--task", "impression", spec=f"vllm:{fake.url}?model=cxr") == 1  # refused before any request
        assert "E903" in capsys.readouterr().err and len(fake.requests) == n
        template = json.loads((REPO / "prompts" / "draft.json").read_text())
        template["version"] = "other-v2"
        (tmp_path / "t.json").write_text(json.dumps(template))
        assert run(spec=f"vllm:{fake.url}?model=cxr&template={tmp_path / 't.json'}") == 1
        assert "prompt_version" in capsys.readouterr().err and out.read_text() == before
        assert len(fake.requests) == n
        assert draft(fake.url, studies, out) == 0  # the same kind: fine
        assert run("--allow-mixed", spec=f"vllm:{fake.url}?model=cxr&template={tmp_path / 't.json'}") == 0  # nothing left
    assert len(records(out)) == N and {r["adapter"] for r in records(out)} == {"cxr"}


def test_allow_mixed_adds_other_drafts(data, patched):
    studies, out = data
    half = studies.parent / "half.jsonl"
    half.write_text("".join(studies.read_text().splitlines(keepends=True)[:4]))
    from reportgen.cli import main

    with FakeOpenAI() as fake:
        assert draft(fake.url, half, out) == 0
        assert main(["draft", "--studies", str(studies), "--backend", f"vllm:{fake.url}", "--out", str(out),
                     "--no-progress", "--allow-mixed"]) == 0
    recs = {r["id"]: r for r in records(out)}
    assert len(recs) == N and recs["s0"]["adapter"] == "cxr" and recs["s7"]["adapter"] is None


