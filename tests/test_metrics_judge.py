"""The LLM judge with mocked chat models (no endpoint): prompts, structured output,
evidence indices, and failed calls counted as errors, never as "not entailed"."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reportgen.evals.metrics.judge import EntailmentDecision, EntailmentPrompt, LLMJudge
from reportgen.evals.metrics.radfact import Judged, logical_score

PREMISES = ["Heart size is mildly enlarged.", "Small left pleural effusion.", "No pneumothorax."]


def _fake_reply(messages) -> str:
    """A deterministic stand-in for the LLM: looks at the last user message."""
    last = messages[-1][1]
    hyp = last.split("HYPOTHESIS:")[1].strip()
    if "boom" in hyp:
        raise ConnectionError("endpoint down")
    if "garbage" in hyp:
        return "I think it is entailed."
    if "bad status" in hyp:
        return '{"status": "maybe", "evidence": []}'
    if "effusion" in hyp and "left" in hyp:
        return 'Sure: {"status": "entailment", "evidence": [2, 2, 9], "reason": "same side"}'
    return json.dumps({"status": "not_entailment", "evidence": [], "reason": "not stated"})


def _lambda_judge():
    from langchain_core.runnables import RunnableLambda

    return LLMJudge(RunnableLambda(_fake_reply), max_concurrency=2)


def test_prompt_file_renders_few_shot_messages():
    p = EntailmentPrompt.load()
    assert p.version and "entail" in p.system
    msgs = p.messages("Mild cardiomegaly.", PREMISES)
    assert msgs[0][0] == "system" and msgs[-1][0] == "human"
    assert "1. Heart size is mildly enlarged.\n2. Small left pleural effusion." in msgs[-1][1]
    assert msgs[-1][1].rstrip().endswith("HYPOTHESIS: Mild cardiomegaly.")
    assert len(msgs) == 2 + 2 * len(p.examples) and len(p.examples) >= 2
    for ex in p.examples:  # the few-shot answers validate against the schema themselves
        EntailmentDecision.model_validate_json(ex["output"])


def test_text_path_parses_and_counts_failures():
    judge = _lambda_judge()
    assert not judge.structured
    hyps = ["Small left pleural effusion.", "Right lower lobe pneumonia.", "boom", "garbage", "bad status"]
    out = judge.judge(hyps, PREMISES)
    assert out[0] == Judged(True, (1,))  # 1-based 2 -> 0-based 1; duplicate and out-of-range dropped
    assert out[1] == Judged(False, ())
    assert out[2].entailed is None and "E444" in out[2].error and "ConnectionError" in out[2].error
    assert out[3].entailed is None and "E445" in out[3].error
    assert out[4].entailed is None and "E445" in out[4].error
    # Errors are excluded from the fractions, not counted as "not entailed".
    s = logical_score(out, [Judged(True)])
    assert s.logical_precision == 0.5 and s.n_errors == 3


def test_structured_output_path_and_batches():
    from langchain_core.runnables import RunnableLambda

    calls = {}

    class FakeStructuredModel:
        def with_structured_output(self, schema, method):
            calls["schema"], calls["method"] = schema, method
            return RunnableLambda(lambda msgs: EntailmentDecision(status="entailment", evidence=[3]))

    judge = LLMJudge(FakeStructuredModel())
    assert judge.structured and calls == {"schema": EntailmentDecision, "method": "json_schema"}
    out = judge.judge_many([(["No pneumothorax."], PREMISES), (["a", "b"], ["x"]), ([], PREMISES)])
    assert out[0] == [Judged(True, (2,))]
    assert out[1] == [Judged(True, ()), Judged(True, ())]  # premise 3 does not exist there
    assert out[2] == []


def test_from_endpoint_is_greedy_and_lazy():
    judge = LLMJudge.from_endpoint("http://127.0.0.1:9/v1", "tiny-model", structured="text")
    llm = judge.runnable
    assert llm.temperature == 0 and llm.model_name == "tiny-model"
    assert str(llm.openai_api_base).startswith("http://127.0.0.1:9/v1")
    # Nothing listens on port 9: the call fails and is reported as an error.
    out = LLMJudge.from_endpoint("http://127.0.0.1:9/v1", "tiny-model", structured="text", max_retries=0, timeout=2).judge(["x"], ["y"])
    assert out[0].entailed is None and out[0].error.startswith("E444")
    code = "import sys, reportgen.evals.metrics.judge, reportgen.evals.metrics; print(any(m.startswith('langchain') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


class _JudgeServer:
    """A loopback OpenAI-compatible chat endpoint standing in for a vLLM server: answers
    with an entailment decision, or HTTP 500 for hypotheses containing "boom"."""

    def __init__(self, refuse_schema: bool = False):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                hyp = body["messages"][-1]["content"].split("HYPOTHESIS:")[1].strip()
                if refuse_schema and "response_format" in body:  # a server without structured output
                    status, payload = 400, {"object": "error", "message": "response_format json_schema is not supported", "code": 400}
                elif "boom" in hyp:
                    status, payload = 500, {"error": {"message": "engine died"}}
                else:
                    decision = {"status": "entailment" if "left" in hyp else "not_entailment", "evidence": [2], "reason": "r"}
                    status, payload = 200, {
                        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": json.dumps(decision)}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_judge_over_http_with_json_schema_structured_output():
    server = _JudgeServer()
    with server as url:
        judge = LLMJudge.from_endpoint(url, "judge-model", max_retries=0, timeout=10)
        assert judge.structured
        out = judge.judge(["Small left pleural effusion.", "Right pneumonia.", "boom"], PREMISES)
    assert out[0] == Judged(True, (1,)) and out[1] == Judged(False, (1,))
    assert out[2].entailed is None and out[2].error.startswith("E444")
    body = server.bodies[0]
    assert body["temperature"] == 0 and body["model"] == "judge-model"
    assert body["response_format"]["type"] == "json_schema"
    assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"status", "evidence", "reason"}


@pytest.mark.vllm
@pytest.mark.timeout(1200)
def test_judge_against_a_real_vllm_server(tmp_path_factory, tiny_vlm_dir, tiny_adapter_dir):
    """A real vLLM server accepts the judge's json_schema request (guided decoding), and
    every answer either validates or is counted as an error, never "not entailed". (The
    random tiny model fills the JSON with whitespace until max_tokens, which the JSON
    grammar allows: that is the LengthFinishReasonError path, counted as E444.)"""
    from reportgen.serve import free_port
    from tests.test_vllm_integration import Served, _vllm_python, serve_args

    py = _vllm_python()
    if not py.exists():
        pytest.skip(f"no vLLM environment at {py}: run `bash scripts/setup_vllm_env.sh`")
    srv = Served(serve_args(py, tiny_vlm_dir, tiny_adapter_dir, free_port()), tmp_path_factory.mktemp("judge") / "vllm.log")
    url = srv.wait_ready()
    try:
        base = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1") else "/v1")
        judge = LLMJudge.from_endpoint(base, str(tiny_vlm_dir), structured="json_schema", max_tokens=64, timeout=300, max_retries=0)
        out = judge.judge(["Small left pleural effusion.", "No pneumothorax."], PREMISES)
    finally:
        srv.stop()
    assert len(out) == 2
    for j in out:
        if j.entailed is None:
            assert j.error.startswith(("E444", "E445")), j.error
            assert "BadRequest" not in j.error  # the server took the schema
        else:
            assert j.error is None
    assert judge.structured


def test_auto_mode_falls_back_to_text_when_the_server_refuses_structured_output():
    """Regression (issue 14): a server without json_schema support answered 400 to every
    call and 'auto' counted them all as errors; it now falls back to plain-text parsing."""
    server = _JudgeServer(refuse_schema=True)
    with server as url:
        judge = LLMJudge.from_endpoint(url, "judge-model", max_retries=0, timeout=10)
        assert judge.structured  # auto starts with json_schema
        out = judge.judge(["Small left pleural effusion.", "Right pneumonia."], PREMISES)
        assert out == [Judged(True, (1,)), Judged(False, (1,))]
        assert not judge.structured and "400" in judge.fallback
        n = len(server.bodies)
        assert judge.judge(["Small left effusion."], PREMISES) == [Judged(True, (1,))]
        assert "response_format" not in server.bodies[-1] and len(server.bodies) == n + 1  # later calls go straight to text
        # json_schema asked explicitly: no fallback, the refusals are errors.
        strict = LLMJudge.from_endpoint(url, "judge-model", max_retries=0, timeout=10, structured="json_schema")
        assert strict.judge(["Left effusion."], PREMISES)[0].error.startswith("E444") and strict.fallback is None
