"""Drafting on Ray Data's LLM API (reportgen.engines.ray_llm): the HTTP request processor
against fake OpenAI servers sends the single-process drafter's very requests and gives the
local engine's drafts and verdicts; a processor that stops hands the rest to the actor path
(nothing lost, nothing doubled, no prompt in what the command prints); the vLLM engine
processor's configuration, and the clear error where vLLM is not importable by the workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("ray.data.llm")

from reportgen.errors import ReportgenError  # noqa: E402

from tests.ray_helpers import ray_cluster  # noqa: E402,F401  (the fixture: one local Ray per module)
pytestmark = pytest.mark.slow


@pytest.fixture()
def studies(tmp_path):
    import numpy as np
    from PIL import Image

    Image.fromarray((np.arange(64 * 48) % 251).reshape(64, 48).astype(np.uint8)).save(tmp_path / "a.png")
    rows = [{"id": f"s{i}", "images": ["a.png"], "indication": f"STUDY=s{i}"} for i in range(9)]
    rows[4]["images"] = ["missing.png"]  # an input error: its own error record, on both engines
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"id": r["id"], "report": f"Report for {r['id']} by cxr. No pneumothorax."}) + "\n"
                                              for r in rows))
    return tmp_path


def _drafts(path: Path) -> list[dict]:
    """drafts.jsonl's records with latency_s (a wall-clock measurement) masked."""
    return [{**json.loads(x), "latency_s": "masked"} for x in path.read_text().splitlines()]


def _bodies(fake) -> dict[str, str]:
    """The request bodies a fake server received, by the study named in them."""
    out = {}
    for body in fake.requests:
        text = json.dumps(body, sort_keys=True)
        sid = text.split("STUDY=")[1].split('"')[0].split("\\")[0]
        out[sid] = text
    return out


def test_http_processor_gives_the_local_engines_files_and_sends_its_requests(ray_cluster, studies):
    """One endpoint: drafts.jsonl byte-identical to the local engine's (latency_s, a
    wall-clock measurement, masked), verdicts.jsonl byte-identical, and the server got the
    single-process drafter's very request bodies."""
    from reportgen.run import RunConfig, run
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as srv:
        common = dict(studies=str(studies / "s.jsonl"), reference=str(studies / "r.jsonl"), bootstrap=0,
                      backend=f"vllm:{srv.url}?model=cxr")
        local = run(RunConfig(out=str(studies / "local"), **common))
        local_bodies = _bodies(srv)
        srv.requests.clear()
        on_ray = run(RunConfig(out=str(studies / "ray"), engine="ray", ray_drafter="http", ray_block_size=3, **common))
        assert _bodies(srv) == local_bodies and len(srv.requests) == 8  # one per study with a readable image, none twice
    assert local.stages == on_ray.stages
    assert json.loads((studies / "ray" / "run.json").read_text())["ray_drafter"] == "http"
    mask = lambda p: "\n".join(json.dumps(r) for r in _drafts(p))  # noqa: E731
    assert mask(studies / "ray" / "drafts.jsonl") == mask(studies / "local" / "drafts.jsonl")
    assert _drafts(studies / "ray" / "drafts.jsonl")[4]["error_code"] == "E576"  # the missing image, as locally
    assert (studies / "ray" / "verdicts.jsonl").read_bytes() == (studies / "local" / "verdicts.jsonl").read_bytes()


def test_two_endpoints_share_the_work_and_a_processor_that_stops_hands_the_rest_to_the_actor_path(ray_cluster, studies, capfd):
    """Blocks alternate between two endpoints. A study whose requests keep failing ends
    Ray's dataset (Ray 2.60); the studies not handed over are drafted on the actor path:
    every study gets exactly one record, and Ray's error text (which holds the request
    payload) is never printed."""
    from reportgen.run import RunConfig, run
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.fail("s0", 503, 503, 503, 503, 503)  # the processor's 4 tries fail, the actor's second try succeeds
        cfg = RunConfig(out=str(studies / "ray"), engine="ray", ray_drafter="http", ray_block_size=2, studies=str(studies / "s.jsonl"),
                        reference=str(studies / "r.jsonl"), bootstrap=0, backend=f"vllm:{a.url}?model=cxr&backoff_s=0.02",
                        ray_backends=f"vllm:{b.url}?model=cxr&backoff_s=0.02")
        run(cfg)
        assert len(b.requests) >= 4  # blocks 1 and 3 (s2, s3, s6, s7) went to the second endpoint
        sent = len(a.requests) + len(b.requests)
        assert set(run(cfg).stages.values()) == {"skipped"} and len(a.requests) + len(b.requests) == sent  # a rerun redoes nothing
    drafts = [json.loads(x) for x in (studies / "ray" / "drafts.jsonl").read_text().splitlines()]
    assert [d["id"] for d in drafts] == [f"s{i}" for i in range(9)]
    assert [d["id"] for d in drafts if d["error"]] == ["s4"]  # only the missing image
    assert all(d["report"] == f"FINDINGS: Report for {d['id']} by cxr." for d in drafts if d["id"] != "s4")
    assert {d["backend"] for d in drafts} == {f"vllm:{a.url}", f"vllm:{b.url}"}
    out, err = capfd.readouterr()
    assert "STUDY=s0" not in out + err and "base64" not in out + err


def test_http_job_refuses_an_hf_backend():
    from reportgen.engines.ray_llm import HttpDraftJob

    with pytest.raises(ReportgenError, match="E961"):
        HttpDraftJob(("hf:/models/x",), {}, print)


def test_answer_of_maps_server_answers_to_the_drafters_codes_and_kinds():
    from reportgen.engines.ray_llm import answer_of

    ok = answer_of({"model": "cxr", "choices": [{"message": {"content": " A. "}, "finish_reason": "stop"}],
                    "usage": {"completion_tokens": 3}}, "cxr")
    assert ok == {"text": "A.", "finish_reason": "stop", "completion_tokens": 3}
    refused = answer_of({"object": "error", "message": "prompt too long", "code": 400}, "cxr")
    assert refused["kind"] == "request" and refused["error"].startswith("E566") and "prompt too long" in refused["error"]
    assert answer_of({"object": "error", "message": "boom", "code": 500}, "cxr")["kind"] == "unavailable"
    assert answer_of({"model": "other", "choices": [{"message": {"content": "x"}}]}, "cxr")["error"].startswith("E901")
    assert answer_of({"id": "x"}, "cxr")["error"].startswith("E900")


def test_http_processor_config_carries_concurrency_qps_retries_and_no_key():
    from reportgen.engines.ray_llm import http_processor_config

    os.environ["RG_TEST_KEY"] = "sekrit"
    try:
        cfg = http_processor_config("http://gpu1:8000/v1", concurrency=3, qps=5, retries=2, backoff_s=0.25, api_key_env="RG_TEST_KEY")
        assert cfg.url == "http://gpu1:8000/v1/chat/completions"
        assert (cfg.concurrency, cfg.qps, cfg.max_retries, cfg.base_retry_wait_time_in_s) == (3, 5, 2, 0.25)
        assert cfg.headers is None and "sekrit" not in repr(cfg.session_factory.__dict__)  # the key is read on the worker
        import asyncio

        async def headers():
            async with cfg.session_factory() as session:
                return dict(session.headers)

        assert asyncio.run(headers())["Authorization"] == "Bearer sekrit"
    finally:
        del os.environ["RG_TEST_KEY"]


def test_vllm_engine_config_for_multi_gpu_replicas_with_a_lora_adapter():
    import sys

    from reportgen.engines.ray_llm import EngineOptions, vllm_engine_config

    cfg = vllm_engine_config("/models/qwen2-vl", "/adapters/cxr",
                             EngineOptions(replicas=2, tensor_parallel=4, pipeline_parallel=2, max_lora_rank=32, max_loras=2,
                                           max_model_len=4096))
    assert cfg.model_source == "/models/qwen2-vl" and cfg.concurrency == 2 and cfg.should_continue_on_error
    assert {k: cfg.engine_kwargs[k] for k in ("enable_lora", "max_lora_rank", "max_loras", "tensor_parallel_size",
                                               "pipeline_parallel_size", "max_model_len")} == {
        "enable_lora": True, "max_lora_rank": 32, "max_loras": 2, "tensor_parallel_size": 4, "pipeline_parallel_size": 2,
        "max_model_len": 4096}
    assert "enable_lora" not in vllm_engine_config("/models/qwen2-vl").engine_kwargs
    assert "vllm" not in sys.modules
    with pytest.raises(ReportgenError, match="E962"):
        EngineOptions(replicas=0)


def test_vllm_engine_without_vllm_in_the_workers_is_a_clear_error(ray_cluster, studies):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    from reportgen.run import RunConfig, run

    cfg = RunConfig(out=str(studies / "ray"), engine="ray", ray_drafter="vllm-engine", studies=str(studies / "s.jsonl"),
                    backend="hf:/models/tiny?adapter=/adapters/cxr", bootstrap=0)
    with pytest.raises(ReportgenError, match="E963") as e:
        run(cfg)
    assert "vllm" in str(e.value) and "reportgen serve" in str(e.value.fix)
