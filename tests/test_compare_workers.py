"""`reportgen compare --workers N`: the same output whatever N (blocks of studies scored in
several processes, joined in study order), the default choice of N, and its errors."""

from __future__ import annotations

import json
import os

import pytest

from reportgen.cli import main
from reportgen.commands import compare as cmp
from reportgen.errors import ReportgenError
from tests.test_compare import _write


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    tmp = tmp_path_factory.mktemp("cmpw")
    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)[:30]]
    ref = _write(tmp / "ref.jsonl", [{"id": i, "report": t} for i, t in reports])
    b1 = {b.id: b.perturbed for b in build_benchmark(reports, seed=1, rate=0.3)}
    b2 = {b.id: b.perturbed for b in build_benchmark(reports, seed=2, rate=0.6)}
    a = _write(tmp / "a.jsonl", [{"id": i, "report": b1[i]} for i, _ in reports])
    # B: a failed draft (null, with its error), an empty report, and 3 studies missing.
    recs = [{"id": i, "report": b2[i]} for i, _ in reports[3:]]
    recs[4] = {"id": recs[4]["id"], "report": None, "error": "E511 the backend timed out"}
    recs[9] = {"id": recs[9]["id"], "report": ""}
    b = _write(tmp / "b.jsonl", recs)
    texts = [t for _, t in reports]
    c = _write(tmp / "c.jsonl", [{"id": i, "report": texts[(k + 3) % len(texts)]} for k, (i, _) in enumerate(reports)])
    return tmp, ref, a, b, c


def _run(systems, name, *more):
    tmp, ref, a, b, c = systems
    out = tmp / f"{name}.json"
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--pred", f"B={b}", "--pred", f"C={c}", "--out", str(out),
                 "--resamples", "200", "--permutations", "200", "--seed", "3", "-q", *more]) == 0
    return out.read_text()


def test_workers_give_the_same_output(systems, monkeypatch):
    monkeypatch.setattr(cmp, "BLOCK", 7)  # 30 studies: 5 blocks, so that 3 processes share them
    one = json.loads(_run(systems, "one", "--workers", "1"))
    three = json.loads(_run(systems, "three", "--workers", "3"))
    assert one["timings_s"]["workers"] == 1 and three["timings_s"]["workers"] == 3
    assert three["timings_s"]["score_stages_cpu"]["check"] > 0  # the workers' stage times come back
    t1, t3 = one.pop("timings_s"), three.pop("timings_s")
    assert set(t1["score_stages"]) == set(t3["score_stages"])
    # byte-identical but for the run's timings
    assert json.dumps(one, indent=1) == json.dumps(three, indent=1)
    assert one["systems"]["B"]["n_failed"] == 5 and len(one["systems"]["B"]["missing"]) == 3
    assert any("E511" in f["reason"] for f in one["systems"]["B"]["failed"])
    assert len(one["comparisons"]) == 3 * len({c["metric"] for c in one["comparisons"]})


def test_choose_workers(monkeypatch):
    monkeypatch.setattr(cmp, "usable_cpus", lambda: 16)
    assert cmp.choose_workers(0, 3927) == cmp.MAX_AUTO_WORKERS  # one per CPU, at most 8
    assert cmp.choose_workers(0, 600) == 2  # at least 250 studies each
    assert cmp.choose_workers(0, 40) == 1  # small inputs: this process only
    assert cmp.choose_workers(5, 300) == 3  # never more than the blocks of 128 studies
    assert cmp.choose_workers(4, 3927) == 4
    monkeypatch.setattr(cmp, "usable_cpus", lambda: 2)
    assert cmp.choose_workers(0, 3927) == 2
    with pytest.raises(ReportgenError) as e:
        cmp.choose_workers(-1, 100)
    assert e.value.code == "E730"


def test_negative_workers_is_a_clear_error(systems, capsys):
    tmp, ref, a, b, _ = systems
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--pred", f"B={b}", "--out", str(tmp / "x.json"),
                 "--workers", "-2"]) == 1
    assert "E730" in capsys.readouterr().err and not (tmp / "x.json").exists()


_PARENT = os.getpid()


def _die(job):
    if os.getpid() == _PARENT:
        raise AssertionError("expected to run in a worker process")
    os._exit(3)  # a worker killed (out of memory) gives no answer


def test_a_dead_worker_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cmp, "_score_block", _die)
    monkeypatch.setattr(cmp, "BLOCK", 2)
    ref = {f"s{k}": "No pleural effusion." for k in range(4)}
    with pytest.raises(ReportgenError) as e:
        cmp.compare(ref, {"A": dict(ref), "B": dict(ref)}, {}, resamples=10, permutations=10, workers=2)
    assert e.value.code == "E732"


def test_a_pair_seen_before_is_scored_once_with_the_same_figures():
    from reportgen.evals.suite import Suite

    ref = "FINDINGS: Mild cardiomegaly. No pleural effusion. Small right pneumothorax, new since prior."
    pred = "FINDINGS: Mild cardiomegaly. Small left pleural effusion. No pneumothorax."
    other = "FINDINGS: The lungs are clear. No pneumothorax."
    pairs = [("s1", pred, ref), ("s2", other, ref), ("s3", pred, ref), ("s4", None, ref)]
    suite = Suite(memo={})  # a memo given (as compare gives one to every system's Suite) is kept between calls
    res = suite.evaluate(pairs, n_bootstrap=20, seed=1)
    alone = [Suite().evaluate([p], n_bootstrap=0).results[0] for p in pairs]
    assert [r.id for r in res.results] == ["s1", "s2", "s3", "s4"]
    rows = lambda results: [json.dumps(r.row(), sort_keys=True) for r in results]  # noqa: E731 (NaN-safe equality)
    assert rows(res.results) == rows(alone)  # s3 is s1's figures under its own id; nothing else changes
    checks = suite.cpu_timings["check"]
    again = suite.score([("s5", pred, ref), ("s6", other, ref)])  # both pairs in the memo: neither read nor checked again
    assert [r.id for r in again.results] == ["s5", "s6"] and suite.cpu_timings["check"] == checks
    assert rows(again.results) == [x.replace('"id": "s1"', '"id": "s5"').replace('"id": "s2"', '"id": "s6"') for x in rows(alone[:2])]


def test_bad_resample_counts_fail_before_any_study_is_scored(monkeypatch):
    def never(*a, **k):
        raise AssertionError("scored although the counts are bad")

    monkeypatch.setattr(cmp, "_score_blocks", never)
    ref = {"s1": "No pleural effusion."}
    for kw in ({"resamples": 0}, {"permutations": 0}):
        with pytest.raises(ReportgenError) as e:
            cmp.compare(ref, {"A": dict(ref), "B": dict(ref)}, {}, **kw)
        assert e.value.code == "E858"


def test_a_reader_object_needs_fork(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(cmp, "BLOCK", 1)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    ref = {"s1": "No pleural effusion.", "s2": "Mild cardiomegaly."}
    with pytest.raises(ReportgenError) as e:
        cmp.compare(ref, {"A": dict(ref), "B": dict(ref)}, {}, resamples=5, permutations=5, workers=2, reader=lambda text: None)
    assert e.value.code == "E731"
