"""The Ray engine: the same verdicts as the local engine, byte for byte; killed workers lose
and duplicate nothing; an interrupted run resumes from its shards. A real local Ray
(num_cpus=2) runs here; the module is skipped where Ray Data is not installed."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("ray.data")

from reportgen.checkers.pipeline import Pipeline  # noqa: E402
from reportgen.engines.ray_engine import CheckJob, RayOptions, check_file, default_shard_dir, plan_blocks  # noqa: E402

from tests.ray_helpers import ray_cluster  # noqa: E402,F401  (the fixture: one local Ray per module)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """40 real IU reports with injected errors (predictions), their originals (references),
    and two bad lines, so error records travel through the engine too."""
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    d = tmp_path_factory.mktemp("ray_corpus")
    reps = [r for r in load_iu_reports() if r.report.text.strip()][:40]
    bench = build_benchmark([(r.id, r.report.text) for r in reps], seed=3, rate=0.3)
    lines = [json.dumps({"id": b.id, "report": b.perturbed, "extra": i}) for i, b in enumerate(bench)]
    lines.insert(7, '{"id": "broken", "report": "unterminated')
    lines.insert(20, "")
    lines.insert(25, '{"id": "no-report"}')
    (d / "pred.jsonl").write_text("\n".join(lines) + "\n")
    (d / "ref.jsonl").write_text("".join(json.dumps({"id": r.id, "report": r.report.text}) + "\n" for r in reps[:-3]))
    return {"pred": d / "pred.jsonl", "ref": d / "ref.jsonl", "dir": d}


@pytest.fixture(scope="module")
def local_out(corpus) -> bytes:
    out = corpus["dir"] / "local.jsonl"
    done = subprocess.run([sys.executable, "-m", "reportgen", "check", "-q", "--reports", str(corpus["pred"]),
                           "--reference", str(corpus["ref"]), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def _job(corpus, factory=None, **settings) -> CheckJob:
    return CheckJob(str(corpus["pred"]), factory or functools.partial(Pipeline, "rules"), reference=str(corpus["ref"]),
                    base=str(corpus["dir"]), settings={"extractor": "rules", **settings})


def test_blocks_cover_every_line_once(corpus):
    blocks = plan_blocks(corpus["pred"], 7)
    data = corpus["pred"].read_bytes()
    assert blocks[0].start == 0 and blocks[-1].end == len(data)
    assert all(a.end == b.start and b.first_line == a.first_line + a.lines for a, b in zip(blocks, blocks[1:]))
    assert sum(b.lines for b in blocks) == data.count(b"\n")
    # every block but the last holds exactly 7 non-blank lines
    for b in blocks[:-1]:
        assert sum(1 for line in data[b.start:b.end].split(b"\n") if line.strip()) == 7


def test_ray_output_equals_local_byte_for_byte(corpus, local_out, ray_cluster, tmp_path):
    out = tmp_path / "ray.jsonl"
    run = check_file(_job(corpus), out, RayOptions(actors=2, block_size=8))
    assert out.read_bytes() == local_out
    assert run.records == 42 and run.errors == 2 and run.blocks == 6
    assert run.missing_reference and set(run.missing_reference) <= {json.loads(x)["id"] for x in local_out.splitlines()}
    assert not default_shard_dir(out).exists()  # merged and cleaned up


def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_doubled(corpus, local_out, ray_cluster, tmp_path):
    victim = json.loads(local_out.splitlines()[30])["id"]
    marker = tmp_path / "died"
    from tests.ray_helpers import DyingOnce

    out = tmp_path / "ray.jsonl"
    check_file(_job(corpus, functools.partial(DyingOnce, victim, str(marker))), out, RayOptions(actors=2, block_size=8))
    assert marker.exists(), "the worker did not die: the fault was not exercised"
    assert out.read_bytes() == local_out


def test_an_interrupted_run_resumes_from_its_shards(corpus, local_out, ray_cluster, tmp_path):
    from tests.ray_helpers import AlwaysDying

    victim = json.loads(local_out.splitlines()[-1])["id"]  # the last block never finishes
    out = tmp_path / "ray.jsonl"
    from reportgen.errors import ReportgenError

    with pytest.raises(ReportgenError, match="E955"):
        check_file(_job(corpus, functools.partial(AlwaysDying, victim, str(tmp_path / "m"))), out,
                   RayOptions(actors=2, block_size=8, max_retries=1))
    assert not out.exists()  # never a partial output
    shards = sorted(p.name for p in default_shard_dir(out).glob("0*.jsonl"))
    assert shards and "00000005.jsonl" not in shards
    run = check_file(_job(corpus), out, RayOptions(actors=2, block_size=8))
    assert run.blocks_resumed == len(shards)
    assert out.read_bytes() == local_out


def test_changed_settings_discard_old_shards(corpus, ray_cluster, tmp_path):
    out = tmp_path / "ray.jsonl"
    shards = default_shard_dir(out)
    shards.mkdir()
    (shards / "plan.json").write_text('{"version": 0}')
    (shards / "00000000.jsonl").write_text('{"id": "stale"}\n')
    check_file(_job(corpus), out, RayOptions(actors=1, block_size=64))
    assert b"stale" not in out.read_bytes()


def test_cli_engine_ray_starts_its_own_ray_and_matches_local(corpus, local_out, tmp_path):
    out = tmp_path / "cli.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "check", "-q", "--reports", str(corpus["pred"]), "--reference", str(corpus["ref"]),
         "--out", str(out), "--engine", "ray", "--ray-num-cpus", "2", "--ray-actors", "2", "--ray-block-size", "16"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes() == local_out
    sentences = [c["text"] for line in local_out.decode().splitlines() for c in json.loads(line)["claims"] if len(c["text"]) > 20]
    assert sentences and not [t for t in sentences if t in done.stderr]  # no report text in what the command prints


def test_options_are_validated():
    from reportgen.errors import ReportgenError

    with pytest.raises(ReportgenError, match="E951"):
        RayOptions(actors=0)
    with pytest.raises(ReportgenError, match="E951"):
        RayOptions(address="auto", num_cpus=2)


def test_drafting_spreads_blocks_over_two_servers_and_hands_over_each_study_once(ray_cluster, tmp_path):
    from PIL import Image

    from reportgen.engines.ray_engine import DraftJob, draft_studies
    from reportgen.types import Study
    from tests.fake_openai import FakeOpenAI
    from tests.ray_helpers import draft_record

    img = tmp_path / "cxr.png"
    Image.frombytes("L", (32, 32), bytes(range(256)) * 4).save(img)
    studies = [Study(f"s{i}", images=(str(img),), indication="cough") for i in range(10)]
    with FakeOpenAI() as a, FakeOpenAI() as b:
        job = DraftJob(backends=(f"vllm:{a.url}?model=cxr", f"vllm:{b.url}?model=cxr"),
                       drafter_options={"task": "findings", "max_new_tokens": 16, "concurrency": 2},
                       make_record=functools.partial(draft_record, task="findings"))
        got: list[list[dict]] = []
        n_blocks = draft_studies(job, studies, RayOptions(actors=2, block_size=3), on_block=got.append)
        assert n_blocks == 4 and len(got) == 4
        ids = [r["id"] for block in got for r in block]
        assert sorted(ids) == sorted(s.id for s in studies) and len(ids) == len(set(ids))
        assert all(r["error"] is None and r["report"] for block in got for r in block)
        for block in got:  # a block's records keep the input order
            assert [r["id"] for r in block] == sorted((r["id"] for r in block), key=lambda x: int(x[1:]))
        assert len(a.requests) and len(b.requests)  # both servers drafted
        assert len(a.requests) + len(b.requests) == 10


def test_map_rows_keeps_input_order_across_actors(ray_cluster):
    from reportgen.engines.ray_engine import map_rows
    from tests.ray_helpers import make_upper

    rows = [{"id": i, "text": f"row {i} é"} for i in range(23)]
    out = list(map_rows(rows, make_upper, RayOptions(actors=2, block_size=4)))
    assert [o["id"] for o in out] == list(range(23))
    assert [o["text"] for o in out] == [r["text"].upper() for r in rows]
    assert all(isinstance(o["pid"], int) for o in out)  # built in the actors (which actor takes a block is Ray's choice)


def test_run_engine_ray_drafts_over_http_and_writes_the_local_engines_verdicts(ray_cluster, tmp_path):
    import numpy as np
    from PIL import Image

    from reportgen.run import RunConfig, run
    from tests.fake_openai import FakeOpenAI

    Image.fromarray((np.arange(64 * 48) % 251).reshape(64, 48).astype(np.uint8)).save(tmp_path / "a.png")
    # the indication carries the fake server's STUDY= marker, so each draft names its study
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "images": ["a.png"], "indication": f"STUDY=s{i}"}) + "\n"
                                              for i in range(7)))
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "report": f"Report for s{i} by cxr. No pneumothorax."}) + "\n"
                                              for i in range(7)))
    with FakeOpenAI() as fake:
        common = dict(studies=str(tmp_path / "s.jsonl"), reference=str(tmp_path / "r.jsonl"), bootstrap=0,
                      backend=f"vllm:{fake.url}?model=cxr")
        local = run(RunConfig(out=str(tmp_path / "local"), **common))
        on_ray = run(RunConfig(out=str(tmp_path / "ray"), engine="ray", ray_actors=2, ray_block_size=3, **common))
    assert local.stages == on_ray.stages
    assert (tmp_path / "ray" / "verdicts.jsonl").read_bytes() == (tmp_path / "local" / "verdicts.jsonl").read_bytes()
    drafts = [json.loads(x) for x in (tmp_path / "ray" / "drafts.jsonl").read_text().splitlines()]
    assert [d["id"] for d in drafts] == [f"s{i}" for i in range(7)]  # merged in input order
    assert all(d["report"] == f"FINDINGS: Report for {d['id']} by cxr." for d in drafts)
    assert (tmp_path / "ray" / "report" / "index.html").is_file()
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["ray_drafter"] == "actors"  # auto, for servers
    # the engine is not an input: a rerun with the local engine redoes nothing
    assert set(run(RunConfig(out=str(tmp_path / "ray"), **common)).stages.values()) == {"skipped"}


@pytest.fixture()
def region_corpus(tmp_path, test_data):
    import shutil

    (tmp_path / "imgs").mkdir()
    shutil.copy(test_data / "cxr" / "00027426_000.png", tmp_path / "imgs" / "pa.png")
    right = "FINDINGS: Right upper lobe opacity. No pleural effusion."
    rows = [{"id": f"r{i}", "report": right if i % 2 else "FINDINGS: Left basilar atelectasis. Heart size normal.",
             "images": ["imgs/pa.png"], "view": "PA"} for i in range(5)]
    rows.insert(2, {"id": "missing", "report": right, "images": ["imgs/nope.png"]})
    rows.insert(4, {"id": "noimg", "report": right})
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ref.jsonl").write_text("".join(json.dumps({"id": r["id"], "report": right}) + "\n" for r in rows))
    return tmp_path


def test_check_on_ray_with_a_region_model_html_and_table_equals_local(region_corpus, tiny_clip_dir, ray_cluster, capsys):
    """Region checking on CPU actors (the tiny open_clip model, loaded once per actor), and
    the HTML page and the table rendered from the merged verdicts: the local engine's files
    and table, byte for byte."""
    pytest.importorskip("open_clip")
    from reportgen.cli import main

    d = region_corpus
    common = ["check", "--reports", str(d / "r.jsonl"), "--reference", str(d / "ref.jsonl"), "--format", "table",
              "--region-model", f"local-dir:{tiny_clip_dir}"]
    assert main([*common, "--out", str(d / "local.jsonl"), "--html", str(d / "local.html")]) == 0
    local_table = capsys.readouterr().out
    assert main([*common, "--out", str(d / "ray.jsonl"), "--html", str(d / "ray.html"), "--engine", "ray", "--ray-actors", "2",
                 "--ray-block-size", "2"]) == 0
    ray_table = capsys.readouterr().out
    local = (d / "local.jsonl").read_bytes()
    assert (d / "ray.jsonl").read_bytes() == local
    recs = [json.loads(x) for x in local.splitlines()]
    assert [r["summary"].get("region") for r in recs].count("checked") == 5  # the region checker ran on the actors
    assert any(r["summary"].get("region_error") for r in recs)  # the missing image: a region error, graph verdicts kept
    assert ray_table == local_table and "== r0:" in ray_table
    assert (d / "ray.html").read_bytes() == (d / "local.html").read_bytes()
    assert b"data:image/png;base64" in (d / "ray.html").read_bytes()  # the region maps drawn on the actors, inlined
    # this Ray has no GPU: GPU actors are a clear error, not a hang
    assert main([*common, "--out", str(d / "gpu.jsonl"), "--region-device", "cuda", "--engine", "ray"]) != 0
    assert "E966" in capsys.readouterr().err and not (d / "gpu.jsonl").exists()
