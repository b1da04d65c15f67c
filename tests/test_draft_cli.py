"""`reportgen draft` and backend specs: the JSONL contract, per-study errors, resume after a
crash with no lost or redone draft, and the hf backend on the tiny model."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

from reportgen.errors import ReportgenError
from reportgen.protocols import Draft
from tests.light_imports import heavy_modules_loaded

REPO = Path(__file__).resolve().parents[1]
CONTRACT = ("id", "report", "model", "adapter", "prompt_version", "latency_s", "error")


class FakeDrafter:
    """A batch-only Drafter (no draft_iter): ids listed in $FAKE_FAIL raise; once
    $FAKE_CRASH_AFTER studies are drafted the process dies hard (os._exit) at the next batch. Every drafted id is
    appended to $FAKE_CALLS."""

    def __init__(self, model: str, *, task: str = "findings", max_new_tokens: int = 256, batch_size: int = 3):
        self.model = model
        self.task = task
        self.batch_size = batch_size
        self.prompt_version = "fake-v1"
        self.name = f"fake:{model}"
        self.fail = set(filter(None, os.environ.get("FAKE_FAIL", "").split(",")))
        self.crash_after = int(os.environ.get("FAKE_CRASH_AFTER", "0"))
        self.calls = Path(os.environ["FAKE_CALLS"]) if os.environ.get("FAKE_CALLS") else None
        self.drafted = 0

    def draft(self, studies: Sequence) -> list[Draft]:
        if self.crash_after and self.drafted >= self.crash_after:
            os._exit(9)  # a hard crash between two batches (nothing flushed by us)
        out = []
        for s in studies:
            if s.id in self.fail:
                raise ValueError(f"cannot draft {s.id}")
            assert all(os.path.isabs(p) and os.path.isfile(p) for p in s.images)  # resolved by `draft`
            out.append(Draft(s.id, f"SECRET report text of {s.id} ({self.task}).", self.model, None, self.prompt_version, 0.01))
        for d in out:
            self.drafted += 1
            if self.calls:
                with self.calls.open("a") as fh:
                    fh.write(d.id + "\n")
        return out


def register_fake() -> None:
    import reportgen.backends as b

    b.BACKENDS["fake"] = ("tests.test_draft_cli", "FakeDrafter", "anything")


@pytest.fixture
def fake_backend(monkeypatch, tmp_path):
    import reportgen.backends as b

    monkeypatch.setitem(b.BACKENDS, "fake", ("tests.test_draft_cli", "FakeDrafter", "anything"))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.delenv("FAKE_CRASH_AFTER", raising=False)
    return calls


@pytest.fixture
def study_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    (d / "img").mkdir(parents=True)
    (d / "img" / "a.png").write_bytes(b"png")  # the fake never reads it
    return d


def write_studies(d: Path, n: int, extra_lines: Sequence[str] = ()) -> Path:
    lines = [json.dumps({"id": f"s{i}", "images": ["img/a.png"], "indication": "cough"}) for i in range(n)]
    path = d / "studies.jsonl"
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


def run_draft(studies: Path, out: Path, *extra: str, backend: str = "fake:m") -> int:
    from reportgen.cli import main

    return main(["draft", "--studies", str(studies), "--backend", backend, "--out", str(out), "--no-progress", *extra])


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def calls(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# -- backend specs -----------------------------------------------------------------------
def test_specs_parse_and_list_the_valid_forms():
    from reportgen.backends import parse_spec

    s = parse_spec("hf:runs/model?adapter=runs/lora&batch_size=8&dtype=float32&greedy=true")
    assert (s.kind, s.target) == ("hf", "runs/model")
    assert s.options == {"adapter": "runs/lora", "batch_size": 8, "dtype": "float32", "greedy": True}
    v = parse_spec("vllm:http://127.0.0.1:8001?model=cxr")
    assert (v.kind, v.target, dict(v.options)) == ("vllm", "http://127.0.0.1:8001", {"model": "cxr"})
    assert parse_spec("vllm").target == "http://127.0.0.1:8000"
    assert parse_spec("hf:Qwen/Qwen2-VL-2B-Instruct").target == "Qwen/Qwen2-VL-2B-Instruct"
    for bad, what in [("openai:gpt", "unknown backend 'openai'"), ("hf:", "names no model"), ("", "empty"),
                      ("vllm:localhost:8000", "needs a server URL")]:
        with pytest.raises(ReportgenError, match="E560") as e:
            parse_spec(bad)
        assert what in str(e.value) and "vllm:http://HOST:PORT" in str(e.value) and "hf:PATH_OR_ID" in str(e.value)


def test_get_drafter_options_defaults_and_unknown_ones():
    from reportgen.backends import get_drafter
    from reportgen.backends.vllm import VLLMDrafter

    d = get_drafter("vllm:http://127.0.0.1:9?model=cxr&concurrency=2", task="impression", concurrency=8, batch_size=4)
    assert isinstance(d, VLLMDrafter)
    assert (d.url, d.requested_model, d.task, d.concurrency) == ("http://127.0.0.1:9", "cxr", "impression", 2)
    with pytest.raises(ReportgenError, match="E562.*'temprature'") as e:
        get_drafter("vllm:http://127.0.0.1:9?temprature=0")
    assert "temperature" in e.value.fix


def test_choosing_no_backend_imports_nothing_heavy():
    code = "import reportgen.backends as b; b.parse_spec('hf:x?adapter=y')"
    assert heavy_modules_loaded(code, ("torch", "transformers", "httpx", "vllm")) == []


# -- the command -------------------------------------------------------------------------
def test_batch_records_every_study_and_isolates_failures(fake_backend, study_dir, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("FAKE_FAIL", "s4")
    studies = write_studies(study_dir, 6, [
        '{"id": "bad json"',
        json.dumps({"images": ["img/a.png"]}),
        json.dumps({"id": "noimg", "images": ["img/missing.png"]}),
        json.dumps({"id": "empty", "images": []}),
        json.dumps({"id": "s1", "images": ["img/a.png"]}),  # duplicate id
    ])
    out = tmp_path / "out" / "drafts.jsonl"
    with caplog.at_level(logging.DEBUG):
        assert run_draft(studies, out, "--task", "impression") == 1
    recs = records(out)
    by_id = {r["id"]: r for r in recs}
    assert len(recs) == len(by_id) == 10  # 6 studies + 4 bad lines; the duplicate is skipped
    assert all(set(CONTRACT) <= set(r) for r in recs)
    assert by_id["s0"]["report"] == "SECRET report text of s0 (impression)." and by_id["s0"]["error"] is None
    assert by_id["s0"]["prompt_version"] == "fake-v1" and by_id["s0"]["model"] == "m" and by_id["s0"]["task"] == "impression"
    # s4 failed inside a batch of 3: its batch mates s3 and s5 still got drafts
    assert by_id["s4"]["report"] is None and "ValueError: cannot draft s4" in by_id["s4"]["error"]
    assert by_id["s4"]["error_kind"] == "backend" and by_id["s3"]["error"] is None and by_id["s5"]["error"] is None
    assert "studies.jsonl:7" in by_id["line:7"]["error"] and "E103" in by_id["line:7"]["error"]
    assert "studies.jsonl:8" in by_id["line:8"]["error"] and "E105" in by_id["line:8"]["error"]
    assert "E576" in by_id["noimg"]["error"] and "img/missing.png" in by_id["noimg"]["error"]
    assert "E575" in by_id["empty"]["error"]
    assert all(by_id[i]["error_kind"] == "input" for i in ("line:7", "line:8", "noimg", "empty"))
    assert [by_id[i]["error_code"] for i in ("line:7", "line:8", "noimg", "empty")] == ["E103", "E105", "E576", "E575"]
    assert by_id["s4"]["error_code"] is None  # the backend's own ValueError carries no code
    assert "error_code" not in by_id["s0"]
    err = capsys.readouterr().err
    assert "6 drafted" not in err and "5 drafted, 5 errors" in err and "duplicate" in caplog.text
    assert "SECRET" not in err and "SECRET" not in caplog.text  # report text is never logged
    assert sorted(calls(fake_backend)) == ["s0", "s1", "s2", "s3", "s5"]


def test_resume_after_a_hard_crash_loses_and_redoes_nothing(fake_backend, study_dir, tmp_path):
    studies = write_studies(study_dir, 10)
    out = tmp_path / "drafts.jsonl"
    script = ("import sys; from tests.test_draft_cli import register_fake; register_fake(); "
              "from reportgen.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "FAKE_CRASH_AFTER": "4", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", script, "draft", "--studies", str(studies), "--backend", "fake:m",
                        "--out", str(out), "--no-progress"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr  # died mid-batch, no clean-up
    first = out.read_text()
    done = [f"s{i}" for i in range(6)]  # two batches of 3
    assert [x["id"] for x in records(out)] == done == calls(fake_backend)
    # a torn last line, as a crash during a write leaves it
    with out.open("a") as fh:
        fh.write('{"id": "s6", "report": "half')
    assert run_draft(studies, out) == 0
    recs = records(out)
    assert out.read_text().startswith(first)  # what was done is untouched
    assert [x["id"] for x in recs] == [f"s{i}" for i in range(10)]
    assert calls(fake_backend) == [f"s{i}" for i in range(10)]  # each drafted exactly once
    assert run_draft(studies, out) == 0 and calls(fake_backend) == [f"s{i}" for i in range(10)]


def test_resume_keeps_a_complete_last_record_that_lost_its_newline(fake_backend, study_dir, tmp_path):
    # Bug 3: the last line was complete JSON without its newline: it counted as done and
    # was then cut off by the tail repair, so that study was missing from the output.
    studies = write_studies(study_dir, 3)
    out = tmp_path / "drafts.jsonl"
    out.write_text(json.dumps({"id": "s0", "report": "kept", "error": None}) + "\n"
                   + json.dumps({"id": "s1", "report": "kept too", "error": None}))
    assert run_draft(studies, out) == 0
    assert [r["id"] for r in records(out)] == ["s0", "s1", "s2"] and calls(fake_backend) == ["s2"]
    assert records(out)[1]["report"] == "kept too" and out.read_text().endswith("\n")


def test_empty_optional_fields_are_absent_in_draft_as_in_train(fake_backend, study_dir, tmp_path):
    # Bug 4: "indication": "" (or whitespace) made `draft` refuse the study (E109) while
    # `train` accepted it. Both now treat it as not given; a non-string is still an error.
    from reportgen.drafts import load_studies
    from reportgen.train import read_manifest

    rows = [{"id": "a", "images": ["img/a.png"], "indication": ""},
            {"id": "b", "images": ["img/a.png"], "indication": "  ", "comparison": None},
            {"id": "c", "images": ["img/a.png"], "indication": 3}]
    studies = study_dir / "studies.jsonl"
    studies.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {sid: (study, err) for sid, study, err, _ in load_studies(studies)}
    assert got["a"][1] is None and got["a"][0].indication is None
    assert got["b"][1] is None and got["b"][0].indication is None and got["b"][0].comparison is None
    assert "E107" in got["c"][1]
    (study_dir / "img" / "a.png").write_bytes(b"png")
    manifest = study_dir / "train.jsonl"
    manifest.write_text("".join(json.dumps({**r, "report": "Clear."}) + "\n" for r in rows))
    data = read_manifest(manifest)
    assert [e.study.id for e in data.examples] == ["a", "b"] and all(e.study.indication is None for e in data.examples)
    assert "E107" in data.errors[0]["error"] and data.errors[0]["id"] == "c"
    out = tmp_path / "drafts.jsonl"
    assert run_draft(studies, out) == 1  # c fails alone
    assert {r["id"]: r["error"] is None for r in records(out)} == {"a": True, "b": True, "c": False}


def test_error_records_are_kept_unless_retry_errors(fake_backend, study_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "s1")
    studies = write_studies(study_dir, 3, [json.dumps({"id": "noimg", "images": ["nope.png"]})])
    out = tmp_path / "drafts.jsonl"
    assert run_draft(studies, out) == 1
    monkeypatch.setenv("FAKE_FAIL", "")
    assert run_draft(studies, out) == 0  # nothing to do: errors of kind backend/input are kept
    assert calls(fake_backend) == ["s0", "s2"]
    assert run_draft(studies, out, "--retry-errors") == 1  # s1 now drafts; noimg still fails
    recs = records(out)
    assert sorted(r["id"] for r in recs) == ["noimg", "s0", "s1", "s2"]  # one record per id
    by_id = {r["id"]: r for r in recs}
    assert by_id["s1"]["error"] is None and by_id["noimg"]["error_kind"] == "input"
    assert calls(fake_backend) == ["s0", "s2", "s1"]


def test_transient_errors_are_retried_on_the_next_run(fake_backend, study_dir, tmp_path):
    studies = write_studies(study_dir, 3)
    out = tmp_path / "drafts.jsonl"
    out.write_text(
        json.dumps({"id": "s0", "report": "done", "error": None}) + "\n"
        + json.dumps({"id": "s1", "report": None, "error": "E565: server down", "error_kind": "unavailable"}) + "\n"
    )
    assert run_draft(studies, out) == 0
    assert calls(fake_backend) == ["s1", "s2"]
    by_id = {r["id"]: r for r in records(out)}
    assert len(records(out)) == 3 and by_id["s0"]["report"] == "done" and by_id["s1"]["error"] is None


def test_limit_and_bad_arguments(fake_backend, study_dir, tmp_path):
    studies = write_studies(study_dir, 5)
    out = tmp_path / "drafts.jsonl"
    assert run_draft(studies, out, "--limit", "2") == 0 and calls(fake_backend) == ["s0", "s1"]
    assert run_draft(studies, out, "--limit", "2") == 0 and calls(fake_backend) == ["s0", "s1", "s2", "s3"]
    assert run_draft(studies, studies) == 1  # --out is the input
    assert run_draft(study_dir / "none.jsonl", out) == 1
    assert run_draft(studies, out, backend="gpt:4") == 1


# -- the hf backend on the tiny model ----------------------------------------------------
@pytest.mark.slow
def test_hf_backend_drafts_the_tiny_manifest_with_the_adapter(tiny_vlm_dir, tiny_adapter_dir, tiny_manifest, tmp_path, capsys):
    from tests.tiny_models import ADAPTER_TARGET

    out = tmp_path / "drafts.jsonl"
    spec = f"hf:{tiny_vlm_dir}?adapter={tiny_adapter_dir}&batch_size=3"
    from reportgen.cli import main

    assert main(["draft", "--studies", str(tiny_manifest), "--backend", spec, "--out", str(out),
                 "--max-new-tokens", "24", "--no-progress"]) == 0
    recs = records(out)
    ids = [json.loads(x)["id"] for x in tiny_manifest.read_text().splitlines() if x.strip()]
    assert sorted(r["id"] for r in recs) == sorted(ids)
    for r in recs:
        assert r["error"] is None and r["report"] == ADAPTER_TARGET
        assert r["model"] == str(tiny_vlm_dir) and r["adapter"] == str(tiny_adapter_dir)
        assert r["prompt_version"] and r["latency_s"] > 0 and r["finish_reason"] == "stop"
        # the template's content hash, the image policy and every generation setting
        from reportgen.prompting import PROMPT_SHA256

        assert r["prompt_sha256"] == PROMPT_SHA256
        assert r["image_policy"] == {"max_pixels": 512 * 512, "min_pixels": 0, "max_images": 2}
        gen = r["generation"]
        assert gen["max_new_tokens"] == 24 and gen["do_sample"] is False and gen["repetition_penalty"] == 1.0
        assert gen["num_beams"] == 1 and gen["eos_token_id"]
    assert ADAPTER_TARGET not in capsys.readouterr().err
    assert main(["draft", "--studies", str(tiny_manifest), "--backend", spec, "--out", str(out), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().err and len(records(out)) == len(ids)
