"""`reportgen compare` and the paired tests: three systems with a known difference and
with none, missing studies as failures, Holm by hand, seeded results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.cli import main
from reportgen.evals.metrics.significance import adjust, bootstrap_weights, paired_test, swap_masks
from reportgen.evals.suite import mean_figure


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, float("nan"), 0.5]
    # Holm over the 4 defined: sorted 0.01*4, 0.03*3, 0.04*2, 0.5*1, made monotone.
    assert adjust(p, "holm")[:3] == pytest.approx([0.04, 0.09, 0.09]) and adjust(p, "holm")[4] == 0.5
    assert np.isnan(adjust(p, "holm")[3])
    assert adjust(p, "bonferroni")[:3] == pytest.approx([0.04, 0.16, 0.12])
    assert adjust(p, "none")[:3] == [0.01, 0.04, 0.03]


def test_paired_tests_on_known_differences():
    rng = np.random.default_rng(0)
    n = 200
    a = rng.uniform(0.4, 0.9, n)
    w, m = bootstrap_weights(n, 500, 1), swap_masks(n, 500, 1)
    fa = mean_figure(a)
    same = paired_test(fa.rows, mean_figure(a).rows, fa.stat, weights=w, masks=m)
    assert same.difference == 0 and same.p_permutation == 1.0 and same.p_bootstrap == 1.0
    better = paired_test(fa.rows, mean_figure(a - 0.05).rows, fa.stat, weights=w, masks=m)
    assert better.difference == pytest.approx(0.05) and better.p_permutation < 0.01 and better.p_bootstrap < 0.01
    assert better.ci_low == pytest.approx(0.05) == pytest.approx(better.ci_high)  # a constant shift
    noise = paired_test(fa.rows, mean_figure(rng.permutation(a)).rows, fa.stat, weights=w, masks=m)
    assert noise.ci_low < 0 < noise.ci_high and noise.p_permutation > 0.05
    again = paired_test(fa.rows, mean_figure(a - 0.05).rows, fa.stat, weights=bootstrap_weights(n, 500, 1), masks=swap_masks(n, 500, 1))
    assert again == better  # seeded


def _write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


@pytest.fixture(scope="module")
def three_systems(tmp_path_factory):
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    tmp = tmp_path_factory.mktemp("cmp")
    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)[:40]]
    ref = _write(tmp / "ref.jsonl", [{"id": i, "report": t} for i, t in reports])
    # Two systems of the same quality: the same perturbation process with different seeds.
    b1 = {b.id: b.perturbed for b in build_benchmark(reports, seed=1, rate=0.3)}
    b2 = {b.id: b.perturbed for b in build_benchmark(reports, seed=2, rate=0.3)}
    a = _write(tmp / "a.jsonl", [{"id": i, "report": b1[i]} for i, _ in reports])
    b = _write(tmp / "b.jsonl", [{"id": i, "report": b2[i]} for i, _ in reports])
    # A much worse system: another study's report, and 5 studies missing.
    texts = [t for _, t in reports]
    c = _write(tmp / "c.jsonl", [{"id": i, "report": texts[(k + 7) % len(texts)]} for k, (i, _) in enumerate(reports) if k >= 5])
    return tmp, ref, a, b, c, [i for i, _ in reports]


def test_compare_three_systems(three_systems, capsys):
    tmp, ref, a, b, c, ids = three_systems
    out, page = tmp / "cmp.json", tmp / "cmp.html"
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--pred", f"B={b}", "--pred", f"C={c}", "--out", str(out),
                 "--html", str(page), "--resamples", "300", "--permutations", "300", "--seed", "4"]) == 0
    assert "p perm" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["n_studies"] == r["n_compared"] == 40 and r["settings"]["correction"] == "holm"
    assert r["systems"]["C"]["n_failed"] == 5 and r["systems"]["C"]["missing"] == sorted(ids[:5])
    assert r["systems"]["A"]["n_failed"] == 0
    cmp = {(x["metric"], x["a"], x["b"]): x for x in r["comparisons"]}
    assert {m for m, _, _ in cmp} >= {"bleu4", "rouge_l", "rouge1", "radgraph_complete", "chexpert_micro_f1_14", "green_pooled",
                                      "radfact_logical_f1", "hallucination_rate", "temporal_f1"}
    # A known difference: A and B both beat C on every similarity, significantly after Holm.
    for m in ("bleu4", "rouge_l", "radgraph_partial", "radfact_logical_recall"):
        for s in ("A", "B"):
            x = cmp[(m, s, "C")]
            assert x["difference"] > 0 and x["significant"] and x["p_permutation_adjusted"] < 0.05 and x["ci_low"] > 0
    # No difference: A vs B (same process, other seeds) is not significant.
    for m in ("rouge_l", "radgraph_complete", "bleu4"):
        x = cmp[(m, "A", "B")]
        assert not x["significant"] and x["ci_low"] < 0 < x["ci_high"] + 1e-12
    # Adjusted >= raw; the C figures include its 5 failures (scored, not dropped).
    assert all(x["p_permutation_adjusted"] >= x["p_permutation"] for x in r["comparisons"] if x["p_permutation"] is not None)
    assert r["systems"]["C"]["corpus"]["rouge_l"]["estimate"] < r["systems"]["A"]["corpus"]["rouge_l"]["estimate"]
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "holm" in html and "5 failed predictions" in html
    # Seeded: the same command gives the same numbers.
    out2 = tmp / "cmp2.json"
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--pred", f"B={b}", "--pred", f"C={c}", "--out", str(out2),
                 "--resamples", "300", "--permutations", "300", "--seed", "4", "-q", "--metrics", "rouge_l"]) == 0
    r2 = json.loads(out2.read_text())
    first = [x for x in r["comparisons"] if x["metric"] == "rouge_l"]
    assert len(r2["comparisons"]) == len(first) == 3
    for x, y in zip(r2["comparisons"], first):  # same resamples; only the summation order of the products differs
        assert x.keys() == y.keys() and all(x[k] == pytest.approx(y[k], abs=1e-12) for k in x if isinstance(x[k], float))


def test_compare_argument_errors(three_systems, capsys):
    tmp, ref, a, *_ = three_systems
    out = str(tmp / "x.json")
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--out", out]) == 1
    assert "E862" in capsys.readouterr().err
    assert main(["compare", "--ref", ref, "--pred", a, "--pred", f"B={a}", "--out", out]) == 1
    assert "E861" in capsys.readouterr().err
    assert main(["compare", "--ref", ref, "--pred", f"A={a}", "--pred", f"A={a}", "--out", out]) == 1
    assert "E861" in capsys.readouterr().err
