"""The region benchmark script runs end to end on a tiny model and reports what it claims."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tests.fixtures_clip import write_tiny_config  # noqa: E402


def test_region_bench_rows_and_parity(tmp_path, capsys):
    from evals.bench.region_bench import main

    cfg = write_tiny_config(tmp_path / "cfg", "rg-bench-tiny")
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert main(["--model", str(cfg), "--studies", "2", "--claims", "3", "--threads", "1", "--repeats", "2", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the script sets it for its process; not for the rest of the tests
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"cold, full context", "cold", "warm"}
    for row in res["rows"].values():
        assert row["claims"] > 0 and row["claims_per_s"] > 0
    assert res["image_encodes_per_study"] == 1.0  # the image is encoded once per study
    # cold runs encode each study's texts in one batch; warm runs hit the cache
    assert res["repeats"] == 2
    assert res["text_batches_cold_and_warm"] == {"cold, full context": 4, "cold": 4, "warm": 0}
    assert res["trimmed_vs_full_max_abs_diff"] < 1e-4
    assert "claims/s" in capsys.readouterr().out
