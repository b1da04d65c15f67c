"""`reportgen run`: the stages, their outputs and cross-references, resume, bad input,
configuration files, and (slow) the tiny Qwen2-VL drafting end to end with --repair."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reportgen.cli import main
from reportgen.errors import ReportgenError
from reportgen.run import STAND_IN, RunConfig, load_config, run


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "run.json"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    res = run(RunConfig(out=str(out), demo_n=5, bootstrap=20))
    assert res.stages == {s: "done" for s in ("inputs", "draft", "check", "metrics", "report")}
    return out


def test_demo_writes_every_file_and_they_agree(demo_run):
    out = demo_run
    drafts, verdicts = lines(out / "drafts.jsonl"), lines(out / "verdicts.jsonl")
    refs = {r["id"]: r["report"] for r in lines(out / "inputs" / "reference.jsonl")}
    ids = [d["id"] for d in drafts]
    assert len(ids) == 5 and [v["id"] for v in verdicts] == ids and set(refs) == set(ids)
    for d, v in zip(drafts, verdicts):
        assert d["stand_in"] == STAND_IN and d["injections"] is not None
        assert d["report"] != refs[d["id"]] or not d["injections"]  # the stand-in is the altered report
        assert v["summary"]["reference"] == "given" and v["problems"] == [] and v["draft"]["stand_in"] == STAND_IN
        for c in v["claims"]:  # each claim's span lies in the draft (a split claim's text is rewritten)
            assert 0 <= c["start"] < c["end"] <= len(d["report"]) and d["report"][c["start"]:c["end"]].strip()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_studies"] == metrics["n_with_reference"] == metrics["n_scored"] == 5 and metrics["failed"] == []
    claims = sum(v["summary"]["claims"] for v in verdicts)
    assert sum(metrics["claims"].values()) == claims
    flagged = sum(v["summary"]["contradicted"] + v["summary"]["unsupported"] for v in verdicts)
    hr = metrics["corpus"]["hallucination_rate"]
    assert hr["estimate"] == pytest.approx(flagged / claims) and hr["low"] <= hr["estimate"] <= hr["high"]
    assert [r["id"] for r in metrics["per_study"]] == ids
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["demo_n"] == 5 and info["versions"]["python"]
    assert "checkers/data/lexicon.json" in info["data_files"] and "prompts/draft.json" in info["data_files"]
    for stage in ("inputs", "draft", "check", "metrics", "report"):
        st = info["stages"][stage]
        assert st["status"] == "done" and st["seconds"] >= 0 and st["errors"] == 0 and st["inputs"]
    assert info["stages"]["check"]["outputs"]["verdicts.jsonl"]
    # the report: an index linking to one page per study, each saying the drafts are stand-ins
    index = (out / "report" / "index.html").read_text()
    assert "no model wrote these drafts" in index.lower() and "http://" not in index and "https://" not in index
    links = re.findall(r"href='studies/([^']+)'", index)
    assert len(links) == 5 and all((out / "report" / "studies" / x).is_file() for x in links)
    for link, v, d in zip(links, verdicts, drafts):
        page = (out / "report" / "studies" / link).read_text()
        assert v["id"] in page and "no model wrote this draft" in page.lower()
        spans = re.findall(r"data-version='draft' data-claim='(\d+)' data-status='(\w+)'", page)
        assert [(int(i), s) for i, s in spans] == [(i, c["status"]) for i, c in enumerate(v["claims"])]


def test_rerun_redoes_nothing_and_a_changed_input_redoes_what_follows(demo_run, tmp_path):
    before = mtimes(demo_run)
    res = run(RunConfig(out=str(demo_run), demo_n=5, bootstrap=20))
    assert set(res.stages.values()) == {"skipped"} and mtimes(demo_run) == before
    # another bootstrap: metrics and report redone, drafting and checking not
    res = run(RunConfig(out=str(demo_run), demo_n=5, bootstrap=10))
    assert res.stages == {"inputs": "skipped", "draft": "skipped", "check": "skipped", "metrics": "done", "report": "done"}
    after = mtimes(demo_run)
    assert after["verdicts.jsonl"] == before["verdicts.jsonl"] and after["metrics.json"] != before["metrics.json"]


def test_interrupted_run_resumes_at_the_stage_it_stopped(tmp_path, monkeypatch):
    drafts = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "report": "Small right pleural effusion. No pneumothorax."},
                                                {"id": "b", "report": "The lungs are clear."}])
    ref = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": "Small left pleural effusion."},
                                             {"id": "b", "report": "Lungs are clear. Heart size normal."}])
    out = tmp_path / "run"
    cfg = RunConfig(out=str(out), reports=str(drafts), reference=str(ref), bootstrap=0)
    res = run(cfg, until="repair")  # a stage this run does not have: stops where it would be
    assert res.stages == {"draft": "done", "check": "done"} and not (out / "metrics.json").exists()
    res = run(cfg, until="check")  # stopped between stages
    assert res.stages == {"draft": "skipped", "check": "skipped"}
    checked = mtimes(out)

    import reportgen.run as run_module

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "compute_metrics", boom)  # interrupted inside the metrics stage
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert json.loads((out / "run.json").read_text())["stages"]["metrics"]["status"] == "running"
    monkeypatch.undo()
    res = run(cfg)
    assert res.stages == {"draft": "skipped", "check": "skipped", "metrics": "done", "report": "done"}
    now = mtimes(out)
    assert all(now[k] == v for k, v in checked.items())
    # a changed reference redoes the check and what follows it, never the drafts
    write_jsonl(ref, [{"id": "a", "report": "Small right pleural effusion."}, {"id": "b", "report": "Lungs are clear."}])
    res = run(cfg)
    assert res.stages == {"draft": "skipped", "check": "done", "metrics": "done", "report": "done"}


def test_bad_input_ends_as_error_records_and_the_rest_completes(tmp_path):
    drafts = write_jsonl(tmp_path / "d.jsonl", [
        {"id": "ok", "report": "Small right pleural effusion. No pneumothorax."},
        {"id": "empty", "report": "   "},
        {"id": "failed", "report": None, "error": "E571 server said no"},
        "{not json",
        {"id": "noref", "report": "The lungs are clear."},
        {"id": "noimage", "report": "No focal consolidation.", "images": ["missing.png"]},
    ])
    ref = write_jsonl(tmp_path / "r.jsonl", [{"id": i, "report": "Small right pleural effusion."}
                                             for i in ("ok", "empty", "failed", "noimage")])
    out = tmp_path / "run"
    assert main(["run", "--reports", str(drafts), "--reference", str(ref), "--out", str(out), "--bootstrap", "0", "-q"]) == 0
    v = {r["id"]: r for r in lines(out / "verdicts.jsonl")}
    assert set(v) == {"ok", "empty", "failed", "line:4", "noref", "noimage"}
    assert v["ok"]["error"] is None and v["ok"]["problems"] == []
    assert v["empty"]["error"].startswith("E804") and v["empty"]["problems"][0]["stage"] == "draft"
    assert "E805 draft failed: E571 server said no" == v["failed"]["error"]
    assert v["line:4"]["error"].startswith("E810") and v["line:4"]["error_code"] == "E810"
    assert v["empty"]["error_code"] == "E804" and v["failed"]["error_code"] == "E805" and v["ok"].get("error_code") is None
    assert v["noref"]["problems"][0]["code"] == "E806"
    assert v["noref"]["error"] is None and v["noref"]["summary"]["reference"] == "missing"
    assert [p["stage"] for p in v["noref"]["problems"]] == ["reference"] and "E806" in v["noref"]["problems"][0]["error"]
    assert [p["stage"] for p in v["noimage"]["problems"]] == ["image"] and "E807" in v["noimage"]["problems"][0]["error"]
    m = json.loads((out / "metrics.json").read_text())
    assert sorted(f["id"] for f in m["failed"]) == ["empty", "failed"]  # scored as failures, never dropped
    assert m["n_with_reference"] == 4 and m["n_scored"] == 2
    assert m["corpus_with_failures"]["draft_failure_rate"]["estimate"] == 0.5
    assert m["corpus_with_failures"]["rouge_l"]["estimate"] == pytest.approx(m["corpus"]["rouge_l"]["estimate"] / 2)
    info = json.loads((out / "run.json").read_text())
    # line 4's record has no usable id, so no reference either
    assert info["errors"]["check"] == 6 and info["stages"]["check"]["problems_by_stage"] == {"draft": 3, "reference": 2, "image": 1}
    assert info["errors"] == {"draft": 3, "check": 6, "metrics": 2, "report": 0} and info["stages"]["report"]["problems_shown"] == 6
    assert v["empty"]["summary"]["reference"] == "given" and v["line:4"]["summary"].get("reference") == "missing"
    pages = {p.name.split("-", 1)[1][:-5]: p.read_text() for p in (out / "report" / "studies").glob("*.html")}
    assert "E804" in pages["empty"] and "E806" in pages["noref"] and "E807" in pages["noimage"] and "E810" in pages["line_4"]
    assert "data-stage='draft'" in pages["failed"] and "data-problems='0'" in (out / "report" / "index.html").read_text()


def test_a_bug_on_one_study_is_an_e808_record_and_the_run_completes(tmp_path, monkeypatch):
    from reportgen.checkers.pipeline import Pipeline

    drafts = write_jsonl(tmp_path / "d.jsonl", [{"id": "ok", "report": "Small right pleural effusion."},
                                                {"id": "bug", "report": "The lungs are clear."}])
    real = Pipeline.check

    def check(self, id, *a, **k):
        if id == "bug":
            raise KeyError("boom")
        return real(self, id, *a, **k)

    monkeypatch.setattr(Pipeline, "check", check)
    res = run(RunConfig(out=str(tmp_path / "run"), reports=str(drafts), bootstrap=0))
    assert res.stages["check"] == "done"
    v = {r["id"]: r for r in lines(tmp_path / "run" / "verdicts.jsonl")}
    assert v["ok"]["error"] is None and v["ok"]["claims"]
    assert v["bug"]["error"] == "E808 study 'bug': checking failed: KeyError: 'boom'" and v["bug"]["error_code"] == "E808"
    assert v["bug"]["problems"][0]["stage"] == "check" and v["bug"]["claims"] == []


def test_config_file_flags_override_and_print_config(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "report": "No pneumothorax."}\n')
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nreports = "d.jsonl"\nbootstrap = 50\nseed = 3\nout = "x"\ntitle = "My run"\n')
    assert main(["run", "--config", str(cfg), "--seed", "7", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "bootstrap = 50" in text and "seed = 7" in text and f'reports = "{tmp_path / "d.jsonl"}"' in text
    import tomllib

    again = tmp_path / "again.toml"
    again.write_text(text)
    assert load_config(again) == load_config(cfg, {"seed": 7})  # the printed config is a config file
    cfg.write_text("bootstrapp = 1\n")
    assert main(["run", "--config", str(cfg)]) == 1 and "E801: config" in capsys.readouterr().err
    cfg.write_text("bootstrap = 'many'\n")
    assert main(["run", "--config", str(cfg)]) == 1 and "E801" in capsys.readouterr().err
    cfg.write_text("bootstrap = \n")
    assert main(["run", "--config", str(cfg)]) == 1 and "E800" in capsys.readouterr().err
    assert tomllib  # noqa
    for argv, code in ((["--studies", str(tmp_path / "d.jsonl")], "E802"), (["--backend", "hf:x"], "E802"),
                       (["--reports", str(tmp_path / "d.jsonl"), "--repair"], "E812"),
                       (["--reports", str(tmp_path / "nope.jsonl")], "E802"), (["--reference", str(tmp_path / "d.jsonl")], "E802")):
        assert main(["run", *argv, "--out", str(tmp_path / "o")]) == 1
        assert code in capsys.readouterr().err
    with pytest.raises(ReportgenError, match="E803"):
        run(RunConfig(out=str(tmp_path / "d.jsonl"), reports=str(tmp_path / "d.jsonl")))


def test_demo_command_prints_the_report_path(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["run", "--out", str(out), "--demo-n", "3", "--bootstrap", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"report: {(out / 'report' / 'index.html').resolve()}"
    assert "stand in as drafts" in captured.err and "no model writes them" in captured.err


# -- drafting with the tiny model ------------------------------------------------------------------

@pytest.mark.slow
def test_run_drafts_checks_and_repairs_with_the_tiny_model(tiny_vlm_dir, tiny_adapter_dir, tiny_manifest, tmp_path):
    from tests.tiny_models import ADAPTER_TARGET

    rows = lines(tiny_manifest)[:4]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    studies = write_jsonl(tmp_path / "studies.jsonl", [{k: r[k] for k in ("id", "images", "views")} for r in rows] + [
        {"id": "missing", "images": [str(tmp_path / "gone.png")]}, {"id": "corrupt", "images": [str(corrupt)]}])
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": r["id"], "report": r["report"]} for r in rows])
    out = tmp_path / "run"
    spec = f"hf:{tiny_vlm_dir}?adapter={tiny_adapter_dir}&batch_size=2"
    argv = ["run", "--studies", str(studies), "--backend", spec, "--reference", str(ref), "--out", str(out),
            "--max-new-tokens", "24", "--bootstrap", "20", "-q", "--allow-outside-root"]
    assert main(argv + ["--until", "draft"]) == 0
    drafts = {d["id"]: d for d in lines(out / "drafts.jsonl")}
    assert set(drafts) == {r["id"] for r in rows} | {"missing", "corrupt"}
    for r in rows:
        d = drafts[r["id"]]
        assert d["error"] is None and d["report"] == ADAPTER_TARGET and d["adapter"] == str(tiny_adapter_dir)
    assert "E576" in drafts["missing"]["error"] and drafts["corrupt"]["error"]
    stamp = (out / "drafts.jsonl").stat().st_mtime_ns
    assert main(argv + ["--repair", "--repair-keep", "better"]) == 0
    assert (out / "drafts.jsonl").stat().st_mtime_ns == stamp  # drafting not redone
    info = json.loads((out / "run.json").read_text())
    assert info["stages"]["draft"]["status"] == "done" and info["errors"]["draft"] == 2
    assert info["model"]["adapter"] == str(tiny_adapter_dir) and len(info["model"]["adapter_hash"]) == 64
    verdicts = {v["id"]: v for v in lines(out / "verdicts.jsonl")}
    assert verdicts["missing"]["error"].startswith("E805 draft failed") and verdicts["missing"]["problems"][0]["stage"] == "draft"
    flagged = sorted(i for i, v in verdicts.items() if v["summary"]["contradicted"] + v["summary"]["unsupported"])
    repaired = lines(out / "repair.jsonl")
    assert flagged and sorted(r["id"] for r in repaired) == flagged  # one redraft per flagged study
    for r in repaired:
        assert r["prompt_version"] == "repair-v1" and r["verdicts"]["id"] == r["id"] and r["kept"] in ("original", "repaired")
        assert r["kept"] == ("repaired" if r["flagged_after"] is not None and r["flagged_after"] < r["flagged_before"] else "original")
    m = json.loads((out / "metrics.json").read_text())
    assert m["repair"]["redrafted"] == len(flagged) and "hallucination_rate" in m["repair"]["before"]["corpus"]
    assert sorted(f["id"] for f in m["failed"]) == []  # missing/corrupt have no reference: listed in verdicts, not scored
    index = (out / "report" / "index.html").read_text()
    assert "no model wrote" not in index.lower() and str(tiny_vlm_dir) in index
    page = next((out / "report" / "studies").glob(f"*-{flagged[0]}.html")).read_text()
    assert "data-version='repair'" in page and "<img alt=" in page  # the study's PNG shown


@pytest.mark.slow
def test_region_evidence_in_the_run_and_its_pages(tiny_clip_dir, tiny_manifest, tmp_path):
    rows = lines(tiny_manifest)[1:3]
    drafts = write_jsonl(tmp_path / "d.jsonl", [
        {"id": rows[0]["id"], "report": "Right upper lobe opacity. No pneumothorax.", "images": rows[0]["images"], "view": "PA"},
        {"id": rows[1]["id"], "report": "Small left pleural effusion.", "images": rows[1]["images"], "view": "PA"},
        {"id": "gone", "report": "Small left pleural effusion.", "images": [str(tmp_path / "gone.png")], "view": "PA"}])
    out = tmp_path / "run"
    assert main(["run", "--reports", str(drafts), "--out", str(out), "--region-model", f"local-dir:{tiny_clip_dir}", "-q"]) == 0
    v = {r["id"]: r for r in lines(out / "verdicts.jsonl")}
    for r in rows:
        rec = v[r["id"]]
        assert "region" in rec["summary"]["checkers"] and rec["problems"] == []
        assert all(any(x["checker"] == "region" for x in c["verdicts"]) for c in rec["claims"])
        assert (out / rec["region_png"]).read_bytes().startswith(b"\x89PNG")
        page = next((out / "report" / "studies").glob(f"*-{r['id']}.html")).read_text()
        assert "Region map" in page and "not calibrated" in page
    gone = v["gone"]  # graph verdicts kept, the image problem on the page and in run.json
    assert gone["error"] is None and gone["claims"] and [p["stage"] for p in gone["problems"]] == ["image"]
    assert "E807" in gone["problems"][0]["error"]
    assert json.loads((out / "run.json").read_text())["stages"]["check"]["problems_by_stage"] == {"image": 1}


def test_server_down_gives_error_records_retried_by_the_next_run(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    import reportgen.run as run_module

    Image.fromarray((np.arange(64 * 48) % 251).reshape(64, 48).astype(np.uint8)).save(tmp_path / "a.png")
    studies = write_jsonl(tmp_path / "s.jsonl", [{"id": f"s{i}", "images": ["a.png"]} for i in range(4)])
    ref = write_jsonl(tmp_path / "r.jsonl", [{"id": f"s{i}", "report": "No pneumothorax."} for i in range(4)])
    monkeypatch.setattr(run_module, "MAX_CONSECUTIVE_FAILURES", 2)
    out = tmp_path / "run"
    cfg = RunConfig(out=str(out), studies=str(studies), reference=str(ref), bootstrap=0,
                    backend="vllm:http://127.0.0.1:9?model=x&retries=0&connect_timeout_s=1")
    res = run(cfg)
    assert res.stages["draft"] == "done" and res.stages["report"] == "done"  # the rest of the run completes
    drafts = {d["id"]: d for d in lines(out / "drafts.jsonl")}
    assert sorted(drafts) == ["s0", "s1", "s2", "s3"] and all(d["error_kind"] == "unavailable" for d in drafts.values())
    assert sum("E814 not tried" in d["error"] for d in drafts.values()) == 2  # stopped trying after 2 in a row
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["failed"]) == 4 and m["corpus_with_failures"]["draft_failure_rate"]["estimate"] == 1.0
    info = json.loads((out / "run.json").read_text())
    assert info["stages"]["draft"]["retry"] == 4 and info["errors"]["draft"] == 4
    assert "E565" in (out / "report" / "studies" / "0000-s0.html").read_text()
    assert run(cfg).stages["draft"] == "done"  # the server-down drafts are retried, not skipped


def test_the_run_module_and_its_pages_import_light():
    from tests.light_imports import heavy_modules_loaded

    code = ("import reportgen.run, reportgen.evals.run_html, reportgen.evals.page, reportgen.commands.run\n"
            "from reportgen.cli import build_parser\nbuild_parser(['run', '--help'])")
    assert heavy_modules_loaded(code, ("torch", "transformers", "open_clip", "vllm", "matplotlib", "PIL")) == []
