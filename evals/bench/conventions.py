"""What each convention for unmentioned findings gives, side by side, on RadFact's
MIT-licensed narrative examples (``../shared/data/radfact/findings_generation_examples.csv``:
20 prediction/target pairs, no labels).

    python -m evals.bench.conventions [--data ../shared/data/radfact] [--out conventions.json]

For each pair, the prediction's claims are checked against the target and the target's
against the prediction (graph checker, reference evidence only), once per convention; the
Markdown tables (per example: RadFact-style logical precision/recall under each
convention; per claim: the claims whose verdict differs, and why) go to stdout, the numbers
to ``--out``. Only what is in that folder is read.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from reportgen.checkers.graph_checker import CONVENTIONS
from reportgen.checkers.pipeline import Pipeline
from reportgen.evals.metrics.radfact import logical_score
from reportgen.evals.suite import _judged

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "radfact"


def _f(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"


def run(data: Path) -> dict:
    with (data / "findings_generation_examples.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pipes = {c: Pipeline(self_check=False, convention=c) for c in CONVENTIONS}
    examples, differing = [], []
    for row in rows:
        pid, pred, ref = row["example_id"], row["prediction"], row["target"]
        per = {}
        for conv, pipe in pipes.items():
            fwd, rev = pipe.check(pid, pred, ref), pipe.check(pid, ref, pred)
            s = logical_score(_judged(fwd, rev), _judged(rev, fwd))
            per[conv] = {"precision": s.logical_precision, "recall": s.logical_recall, "fwd": fwd, "rev": rev}
        n_diff = 0
        for direction in ("fwd", "rev"):
            a, b = per["chexpert"][direction], per["radfact"][direction]
            for ca, cb in zip(a.claims, b.claims):
                if ca.status != cb.status:
                    n_diff += 1
                    differing.append({"example": pid, "side": "prediction" if direction == "fwd" else "target",
                                      "claim": ca.claim.text, "chexpert": f"{ca.status} ({ca.basis})",
                                      "radfact": f"{cb.status} ({cb.basis})"})
        examples.append({"example": pid, "claims": len(per["chexpert"]["fwd"].claims) + len(per["chexpert"]["rev"].claims),
                         "differ": n_diff,
                         **{f"{k}_{c}": per[c][k] for c in CONVENTIONS for k in ("precision", "recall")}})
    return {"examples": examples, "differing_claims": differing}


def markdown(result: dict) -> str:
    out = ["| example | claims (both sides) | claims that differ | precision chexpert | precision radfact | recall chexpert | recall radfact |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in result["examples"]:
        out.append(f"| {e['example']} | {e['claims']} | {e['differ']} | {_f(e['precision_chexpert'])} | {_f(e['precision_radfact'])} "
                   f"| {_f(e['recall_chexpert'])} | {_f(e['recall_radfact'])} |")

    def mean(k: str) -> float:
        xs = [e[k] for e in result["examples"] if e[k] is not None and e[k] == e[k]]
        return sum(xs) / len(xs) if xs else float("nan")

    out.append(f"| mean | {sum(e['claims'] for e in result['examples'])} | {sum(e['differ'] for e in result['examples'])} "
               + " ".join(f"| {_f(mean(k))}" for k in ("precision_chexpert", "precision_radfact", "recall_chexpert", "recall_radfact")) + " |")
    out += ["", "| example | side | claim | chexpert | radfact |", "| --- | --- | --- | --- | --- |"]
    for d in result["differing_claims"]:
        out.append(f"| {d['example']} | {d['side']} | {d['claim']} | {d['chexpert']} | {d['radfact']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the radfact folder of the shared data")
    ap.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = ap.parse_args(argv)
    result = run(args.data)
    print(markdown(result))
    if args.out:
        from evals.bench import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
