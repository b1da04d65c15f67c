"""The LLM checker and the cascade (issue 11 section 4) against the fake OpenAI-compatible
server: the verdict contract (status, basis, reasons, evidence sentence), failed and
malformed answers as error verdicts, batching and concurrency limits, the CLI and the
Python API."""

from __future__ import annotations

import json
import re

import pytest

from reportgen.checkers.llm_checker import CascadeChecker, LLMChecker
from reportgen.checkers.pipeline import Pipeline
from reportgen.cli import main
from reportgen.errors import ReportgenError
from reportgen.types import VERDICT_BASES
from tests.fake_openai import FakeOpenAI

REPORT = ("FINDINGS: Small left pleural effusion. Right lower lobe pneumonia. Garbage answer here. "
          "Nodule number nine. Mild cardiomegaly.")
REFERENCE = "FINDINGS: Mild cardiomegaly. Small left pleural effusion. No pneumothorax."


def respond(body: dict) -> str:
    """A deterministic stand-in for the model: reads the claim and the numbered evidence."""
    user = body["messages"][-1]["content"]
    claim = user.split("CLAIM:")[1].strip()
    evidence = dict((int(n), t) for n, t in re.findall(r"^(\d+)\. (.*)$", user.split("CLAIM:")[0], re.M))
    if "Garbage" in claim:
        return "I think it is fine."
    if "nine" in claim:
        return json.dumps({"status": "supported", "basis": "matched", "evidence": [9], "reason": "x"})
    hit = next((n for n, t in evidence.items() if t.rstrip(".") == claim.rstrip(".")), None)
    if hit is not None:
        return json.dumps({"status": "supported", "basis": "matched", "evidence": [hit], "reason": "stated verbatim"})
    return json.dumps({"status": "unsupported", "basis": "no_evidence", "evidence": [], "reason": "not mentioned"})


@pytest.fixture()
def fake():
    with FakeOpenAI(base="judge-model") as f:
        f.respond = respond
        yield f


def llm_for(fake, **kw) -> LLMChecker:
    return LLMChecker.from_endpoint(fake.url + "/v1", "judge-model", max_retries=0, timeout=20, **kw)


def by_text(result):
    return {c.claim.text: c for c in result.claims}


def test_llm_checker_gives_the_verdict_contract_and_errors_for_bad_answers(fake):
    llm = llm_for(fake, max_concurrency=2, batch_size=2)
    r = by_text(Pipeline(checkers=["llm"], llm=llm, self_check=False).check("a", REPORT, REFERENCE))
    ok = r["Small left pleural effusion."]
    v = ok.verdicts[0]
    assert (v.checker, v.status, v.basis, v.score) == ("llm", "supported", "matched", 1.0)
    assert [e.text for e in v.evidence] == ["Small left pleural effusion."] and v.evidence[0].source == "reference"
    assert "stated verbatim" in v.reasons[0] and "reference[" in v.reasons[0]  # the evidence sentence is named
    miss = r["Right lower lobe pneumonia."]
    assert (miss.status, miss.basis) == ("unsupported", "no_evidence")
    garbage, nine = r["Garbage answer here."], r["Nodule number nine."]
    assert garbage.status == "error" and garbage.reasons[0].startswith("E481 malformed LLM answer")
    assert nine.status == "error" and nine.reasons[0].startswith("E482") and "[9] of 3" in nine.reasons[0]
    # batching: 5 claims in batches of 2, never more than 2 requests in flight
    assert len(fake.requests) == 5 and fake.max_inflight <= 2
    body = fake.requests[0]
    assert body["temperature"] == 0 and body["model"] == "judge-model"
    assert body["response_format"]["type"] == "json_schema"  # structured output requested
    assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"status", "basis", "evidence", "reason"}
    assert all(c.basis in VERDICT_BASES for c in r.values())


def test_a_failed_call_is_an_error_verdict_never_unsupported(fake):
    fake.default = 503
    r = Pipeline(checkers=["llm"], llm=llm_for(fake), self_check=False).check("a", "FINDINGS: Mild cardiomegaly.", REFERENCE)
    (c,) = r.claims
    assert c.status == "error" and c.basis == "error" and c.reasons[0].startswith("E480 LLM call failed")
    # beside the graph checker, the failed LLM verdict drops out and the rules decide
    r2 = Pipeline(checkers=["graph", "llm"], llm=llm_for(fake), self_check=False).check("a", "FINDINGS: Mild cardiomegaly.", REFERENCE)
    (c2,) = r2.claims
    assert c2.status == "supported" and [v.checker for v in c2.verdicts] == ["graph", "llm"]
    assert c2.verdicts[1].status == "error"


def test_cascade_asks_the_llm_only_for_what_the_rules_leave_open(fake):
    report = "FINDINGS: Mild cardiomegaly. Comparison made to prior study. There may be a small left pleural effusion."
    cascade = CascadeChecker(llm_for(fake))
    r = by_text(Pipeline(checkers=[cascade], self_check=False).check("a", report, REFERENCE))
    decided = r["Mild cardiomegaly."]
    assert decided.verdicts[0].checker == "cascade" and (decided.status, decided.basis) == ("supported", "matched")
    # the other two are uncertain for the rules (not_read, hedged): the LLM decides them
    assert cascade.escalated == 2 and len(fake.requests) == 2
    asked = [json.dumps(b["messages"][-1]) for b in fake.requests]
    assert not any("CLAIM: Mild cardiomegaly." in a for a in asked)
    hedged = r["There may be a small left pleural effusion."]
    assert (hedged.status, hedged.basis) == ("unsupported", "no_evidence")
    assert hedged.reasons[-1].startswith("rules (secondary): uncertain (hedged)")


def test_cli_checkers_graph_llm_and_cascade(fake, tmp_path):
    reports = tmp_path / "r.jsonl"
    reports.write_text(json.dumps({"id": "a", "report": "FINDINGS: Mild cardiomegaly. Right lower lobe pneumonia."}) + "\n")
    ref = tmp_path / "ref.jsonl"
    ref.write_text(json.dumps({"id": "a", "report": REFERENCE}) + "\n")
    for checkers in ("graph,llm", "cascade"):
        out = tmp_path / f"{checkers}.jsonl"
        assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out), "-q",
                     "--checkers", checkers, "--llm-url", fake.url + "/v1", "--llm-model", "judge-model",
                     "--llm-concurrency", "1", "--llm-batch-size", "4", "--llm-retries", "0"]) == 0
        rec = json.loads(out.read_text())
        assert rec["summary"]["checkers"] == checkers.split(",")
        names = {v["checker"] for c in rec["claims"] for v in c["verdicts"]}
        assert names == set(checkers.split(","))
        assert all(v["basis"] in VERDICT_BASES for c in rec["claims"] for v in c["verdicts"])
    assert fake.max_inflight == 1


def test_llm_checkers_need_an_endpoint(capsys):
    with pytest.raises(ReportgenError) as e:
        Pipeline(checkers=["cascade"])
    assert e.value.code == "E484"
    for argv in (["--checkers", "llm"], ["--checkers", "graph,gpt"], ["--llm-url", "http://x/v1"]):
        assert main(["check", "--reports", "r.jsonl", *argv]) != 0  # stops before reading any record
        assert "E485" in capsys.readouterr().err
    with pytest.raises(ReportgenError) as e:
        LLMChecker(object(), structured="text", batch_size=0)
    assert e.value.code == "E483"


@pytest.mark.vllm
@pytest.mark.timeout(1200)
def test_llm_checker_and_cascade_against_a_real_vllm_server(tmp_path_factory, tiny_vlm_dir, tiny_adapter_dir):
    """The plumbing and the contract against a real vLLM server with the tiny random test
    model (not the quality): the server takes the json_schema request; every LLM verdict is
    either a valid verdict or an error verdict with its reason (the random model usually
    runs to max_tokens: E481), never a silent 'unsupported'; the cascade asks only for the
    claims the rules leave open."""
    from reportgen.serve import free_port
    from tests.test_vllm_integration import Served, _vllm_python, serve_args

    py = _vllm_python()
    if not py.exists():
        pytest.skip(f"no vLLM environment at {py}: run `bash scripts/setup_vllm_env.sh`")
    srv = Served(serve_args(py, tiny_vlm_dir, tiny_adapter_dir, free_port()), tmp_path_factory.mktemp("llmcheck") / "vllm.log")
    url = srv.wait_ready()
    report = "FINDINGS: Mild cardiomegaly. There may be a small left pleural effusion."
    try:
        base = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1") else "/v1")
        llm = LLMChecker.from_endpoint(base, str(tiny_vlm_dir), structured="json_schema", max_tokens=64, timeout=300,
                                       max_retries=0, max_concurrency=2, batch_size=2)
        both = Pipeline(checkers=["graph", llm], self_check=False).check("a", report, REFERENCE)
        cascade = CascadeChecker(llm)
        cas = Pipeline(checkers=[cascade], self_check=False).check("a", report, REFERENCE)
    finally:
        srv.stop()
    assert llm.structured
    for c in both.claims:
        v = next(v for v in c.verdicts if v.checker == "llm")
        assert v.basis in VERDICT_BASES
        if v.status == "error":
            assert v.reasons[0].startswith(("E480", "E481", "E482")), v.reasons
            assert "BadRequest" not in v.reasons[0]  # the server took the schema
        else:
            assert v.status in ("supported", "contradicted", "unsupported", "uncertain") and v.reasons
    assert cascade.escalated == 1  # only the hedged claim
    decided = by_text(cas)["Mild cardiomegaly."]
    assert decided.status == "supported" and decided.verdicts[0].checker == "cascade"


def test_run_checks_with_the_cascade_and_names_it(fake, tmp_path):
    """`reportgen run --reports D --checkers cascade --llm-url ...`: the run's verdicts come from
    the cascade (graph first, the LLM where the rules leave a claim open), and run.json says so."""
    reports = tmp_path / "d.jsonl"
    reports.write_text(json.dumps({"id": "a", "report": "FINDINGS: Mild cardiomegaly. Right lower lobe pneumonia."}) + "\n")
    ref = tmp_path / "ref.jsonl"
    ref.write_text(json.dumps({"id": "a", "report": REFERENCE}) + "\n")
    out = tmp_path / "run"
    assert main(["run", "--reports", str(reports), "--reference", str(ref), "--out", str(out), "--bootstrap", "0", "-q",
                 "--checkers", "cascade", "--convention", "radfact", "--llm-url", fake.url + "/v1", "--llm-model", "judge-model"]) == 0
    rec = json.loads((out / "verdicts.jsonl").read_text().splitlines()[0])
    assert rec["summary"]["checkers"] == ["cascade"] and rec["summary"]["convention"] == "radfact"
    assert {v["checker"] for c in rec["claims"] for v in c["verdicts"]} == {"cascade"}
    assert fake.requests  # the LLM was asked about the claims the rules left open
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert (cfg["checkers"], cfg["convention"], cfg["llm_model"]) == ("cascade", "radfact", "judge-model")

def test_run_refuses_an_llm_checker_without_an_endpoint(tmp_path, capsys):
    reports = tmp_path / "d.jsonl"
    reports.write_text(json.dumps({"id": "a", "report": "FINDINGS: Mild cardiomegaly."}) + "\n")
    assert main(["run", "--reports", str(reports), "--out", str(tmp_path / "x"), "--checkers", "cascade", "-q"]) != 0
    assert "E801" in capsys.readouterr().err
