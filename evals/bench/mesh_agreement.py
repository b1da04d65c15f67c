"""Agreement of the rules graphs with the IU MeSH major tags (finding + side).

    python -m evals.bench.mesh_agreement [--out runs/mesh_agreement.json] [--uncertain positive|negative]
                                         [--min-support 10] [--limit N] [--show-errors ROW [--kind CLASS] --max-errors 10]

Every IU report with text is read with ``reportgen.checkers.read.read_report``; a MeSH row (see
``evals/data/mesh_map.json``) is *predicted* when one of its observation normal forms is
found present (or uncertain, with ``--uncertain positive``, the default) in any claim, and
*gold* when one of its MeSH tag patterns is among the report's major tags. Per row:
precision, recall, F1 over reports; side agreement over the true positives whose tag has
a side (right / left / bilateral): the share whose side is among the predicted sides of
that row. A "normal" row compares the MeSH tag "normal" with "no finding of any row
predicted". Prints a table and writes JSON (settings, rows, micro/macro averages,
unmapped tags, timing). ``--show-errors ROW`` prints false positives / negatives of one
row with their report ids and text (IU reports are public; off by default); with ``--kind``
only the errors of one disagreement class (``DISAGREEMENTS``), a false positive as the
report's tags and the claims that gave the prediction. A row's optional ``anatomy`` (organs)
restricts the findings that predict it (``MeshMap.rows_of``).

The IU tags were assigned by people reading the same text, so they are a fair reference
for "what the report says is there", but they are not complete (incidental findings are
often untagged) and they never tag absent findings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from evals.bench import write_json

DATA = Path(__file__).resolve().parents[1] / "data" / "mesh_map.json"
SIDES = ("right", "left", "bilateral")


def load_map(path: str | Path = DATA) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class MeshMap:
    def __init__(self, data: dict[str, Any]):
        self.ignore = set(data.get("ignore", ()))
        self.rows: dict[str, dict[str, Any]] = data["rows"]
        self.obs_to_rows: dict[str, list[str]] = defaultdict(list)
        self.patterns: list[tuple[str, str | None, str]] = []  # (term, qualifier, row)
        for row, spec in self.rows.items():
            for o in spec["observations"]:
                self.obs_to_rows[o].append(row)
            for pat in spec["mesh"]:
                term, _, qual = pat.partition("/")
                self.patterns.append((term, qual or None, row))
        # specific patterns (with a qualifier) first
        self.patterns.sort(key=lambda p: p[1] is None)

    def gold(self, tags) -> tuple[dict[str, set[str]], list[str], bool]:
        """row -> sides (possibly empty), unmapped tags, whether the report is tagged normal."""
        out: dict[str, set[str]] = {}
        unmapped = []
        normal = False
        for tag in tags:
            parts = [p.strip() for p in tag.split("/")]
            if parts[0] in self.ignore:
                normal = normal or parts[0] == "normal"
                continue
            quals = set(parts[1:])
            rows = [row for term, qual, row in self.patterns if term == parts[0] and (qual is None or qual in quals)]
            if not rows:
                unmapped.append(tag)
                continue
            sides = {q for q in quals if q in SIDES}
            for row in dict.fromkeys(rows):
                out.setdefault(row, set()).update(sides)
        return out, unmapped, normal

    def rows_of(self, f) -> list[str]:
        """The rows a finding predicts: those listing its observation, except rows whose
        ``anatomy`` (a list of organs) does not hold the finding's anatomy."""
        return [row for row in self.obs_to_rows.get(f.observation, ())
                if "anatomy" not in self.rows[row] or f.anatomy in self.rows[row]["anatomy"]]

    def predicted(self, read, uncertain_positive: bool, why: dict[str, list[str]] | None = None) -> dict[str, set[str]]:
        """row -> predicted sides; ``why`` (optional) collects row -> the claim texts that predicted it."""
        out: dict[str, set[str]] = {}
        ok = ("present", "uncertain") if uncertain_positive else ("present",)
        for cc in read.claims:
            for f in cc.findings:
                if f.presence not in ok:
                    continue
                for row in self.rows_of(f):
                    sides = out.setdefault(row, set())
                    if f.laterality:
                        sides.add(f.laterality)
                    if why is not None and cc.claim.text not in why.setdefault(row, []):
                        why[row].append(cc.claim.text)
        return out


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
    return p, r, f


def _side_match(gold: set[str], pred: set[str]) -> bool:
    if not pred:
        return False
    if "bilateral" in gold:
        return "bilateral" in pred or {"right", "left"} <= pred
    return bool(gold & pred)


# Why a row's tag and prediction disagree, told apart automatically (counts in the JSON under
# "disagreements", table with --conventions). MeSH conventions: the first two FN classes and
# the first two FP classes; our errors are among "FN: stated, not read" and "FP: definite,
# untagged" (the latter also holds incidental findings the indexers left untagged).
DISAGREEMENTS = {
    "FN: not stated": "tagged, but no synonym of the row's observations occurs in FINDINGS/IMPRESSION: the tag comes from elsewhere (indication, the images, an implied finding)",
    "FN: read as absent": "tagged, and the text mentions the finding but denies it somewhere (MeSH tags a negated or resolved finding; or our negation scope)",
    "FN: stated, not read": "tagged, a synonym occurs, but no present/uncertain finding was read: our miss (or a synonym used in another sense)",
    "FP: hedged only": "predicted only from hedged mentions ('may represent pneumonia'): the indexers rarely tag differentials",
    "FP: report tagged normal": "a definite finding read in a report the indexers tagged 'normal' (incidental findings they judged normal)",
    "FP: definite, untagged": "a definite finding read in a report with other tags: untagged incidental finding, or our error",
}


def _row_words(mm: "MeshMap") -> dict[str, "re.Pattern[str]"]:
    """One pattern per row matching any lower-cased synonym of the row's observations (default
    lexicon) as whole words: a substring test counted "fusion" in "effusion" and "ild" in "mild"
    as the finding being stated."""
    from reportgen.checkers.lexicon import OBS, load_lexicon

    lex = load_lexicon()
    by_obs: dict[str, set[str]] = defaultdict(set)
    for toks, entries in lex.phrases.items():
        for e in entries:
            if e.cat == OBS:
                by_obs[e.norm].add(" ".join(toks))
    out = {}
    for row, spec in mm.rows.items():
        ws = sorted({w for o in spec["observations"] for w in by_obs.get(o, ())} | set(spec["observations"]), key=len, reverse=True)
        out[row] = re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, ws)) + r")(?![a-z0-9])")
    return out


def run(args: argparse.Namespace, extractor: Any = None, reports: list | None = None) -> dict[str, Any]:
    """The agreement over the IU reports (``reports``: already loaded ones, to share);
    ``extractor``: a GraphExtractor object to use instead of the one ``args.extractor`` names
    (evals/bench/scope_compare.py)."""
    from reportgen.checkers.graphs import get_extractor
    from reportgen.checkers.read import read_report
    from reportgen.iu import load_iu_reports

    mm = MeshMap(load_map(args.map))
    every = load_iu_reports() if reports is None else reports
    reports = [r for r in every if r.findings or r.impression]
    skipped = len(every) - len(reports)
    if args.limit:
        reports = reports[: args.limit]
    extractor = get_extractor(args.extractor) if extractor is None else extractor
    uncertain_positive = args.uncertain == "positive"
    counts: dict[str, Counter] = defaultdict(Counter)
    unmapped: Counter = Counter()
    errors: list[tuple[str, str, str]] = []
    why: dict[str, Counter] = defaultdict(Counter)  # row -> disagreement class -> reports (DISAGREEMENTS)
    words = _row_words(mm)
    kind = getattr(args, "kind", None)
    t0 = time.process_time()
    w0 = time.perf_counter()
    for r in reports:
        read = read_report(r.report.text, extractor)
        gold, um, normal = mm.gold(r.mesh_major)
        unmapped.update(t.split("/")[0] for t in um)
        because: dict[str, list[str]] = {}
        definite = mm.predicted(read, False, because)
        pred = mm.predicted(read, True) if uncertain_positive else definite
        absent = {row for cc in read.claims for f in cc.findings if f.presence == "absent" for row in mm.rows_of(f)}
        low = r.report.text.lower()
        for row in set(gold) | set(pred):
            c = counts[row]
            if row in gold and row in pred:
                c["tp"] += 1
                if gold[row]:
                    c["side_n"] += 1
                    c["side_ok"] += _side_match(gold[row], pred[row])
                    if not _side_match(gold[row], pred[row]) and args.show_errors == row and kind is None:
                        errors.append(("side", r.id, f"gold {sorted(gold[row])} predicted {sorted(pred[row])}: {r.report.text}"))
            elif row in gold:
                c["fn"] += 1
                cls = ("FN: not stated" if row not in words or not words[row].search(low) else
                       "FN: read as absent" if row in absent else "FN: stated, not read")
                why[row][cls] += 1
                if args.show_errors == row and kind in (None, cls):
                    errors.append(("FN", r.id, r.report.text if kind is None else f"tags {r.mesh_major}: {r.report.text}"))
            else:
                c["fp"] += 1
                cls = "FP: hedged only" if row not in definite else "FP: report tagged normal" if normal else "FP: definite, untagged"
                why[row][cls] += 1
                if args.show_errors == row and kind in (None, cls):
                    errors.append(("FP", r.id, r.report.text if kind is None else
                                   f"tags {r.mesh_major}; read from: " + " | ".join(because.get(row, ()))))
        # "normal": MeSH normal vs nothing predicted
        c = counts["normal (no finding)"]
        if normal and not pred:
            c["tp"] += 1
        elif normal:
            c["fn"] += 1
            if args.show_errors == "normal":
                errors.append(("FN", r.id, f"{sorted(pred)}: {r.report.text}"))
        elif not pred:
            c["fp"] += 1
            if args.show_errors == "normal":
                errors.append(("FP", r.id, f"{r.mesh_major}: {r.report.text}"))
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    rows = []
    for row in list(mm.rows) + ["normal (no finding)"]:
        c = counts.get(row, Counter())
        p, rc, f = _prf(c["tp"], c["fp"], c["fn"])
        rows.append({
            "row": row, "gold": c["tp"] + c["fn"], "predicted": c["tp"] + c["fp"], "tp": c["tp"], "fp": c["fp"], "fn": c["fn"],
            "precision": p, "recall": rc, "f1": f, "side_n": c["side_n"],
            "side_agreement": (c["side_ok"] / c["side_n"]) if c["side_n"] else None,
        })
    findings_rows = [x for x in rows if x["row"] != "normal (no finding)"]
    tp = sum(x["tp"] for x in findings_rows)
    fp = sum(x["fp"] for x in findings_rows)
    fn = sum(x["fn"] for x in findings_rows)
    mp, mr, mf = _prf(tp, fp, fn)
    supported = [x for x in findings_rows if x["gold"] >= args.min_support]
    macro = {k: (sum(x[k] or 0.0 for x in supported) / len(supported) if supported else None) for k in ("precision", "recall", "f1")}
    side_n = sum(x["side_n"] for x in findings_rows)
    side_ok = sum(counts[x["row"]]["side_ok"] for x in findings_rows)
    from reportgen.checkers.lexicon import load_lexicon

    result = {
        "benchmark": "mesh_agreement",
        "settings": {"extractor": getattr(extractor, "name", args.extractor), "uncertain": args.uncertain, "min_support": args.min_support,
                     "map": str(args.map), "map_version": load_map(args.map).get("version"),
                     "lexicon_version": load_lexicon().version},
        "reports": len(reports), "reports_without_text": skipped,
        "micro": {"precision": mp, "recall": mr, "f1": mf, "tp": tp, "fp": fp, "fn": fn},
        "macro_rows_with_support": {**macro, "rows": len(supported)},
        "side_agreement": {"n": side_n, "agreement": side_ok / side_n if side_n else None},
        "rows": rows,
        "unmapped_tags": dict(unmapped.most_common()),
        "disagreements": {"classes": DISAGREEMENTS, "total": dict(sum(why.values(), Counter())),
                          "rows": {row: dict(c) for row, c in why.items()}},
        "timing": {"cpu_s": cpu, "wall_s": wall, "reports_per_cpu_s": len(reports) / cpu if cpu else None},
    }
    result["_errors"] = errors
    return result


def shown_rows(res: dict[str, Any], min_support: int) -> list[dict[str, Any]]:
    """The rows both tables show: most gold mentions first, rare rows dropped (the normal row kept)."""
    return [x for x in sorted(res["rows"], key=lambda x: -x["gold"])
            if x["gold"] >= min_support or x["row"] == "normal (no finding)"]


def format_table(res: dict[str, Any], min_support: int) -> str:
    def pct(x):
        return "  -  " if x is None else f"{100 * x:5.1f}"

    lines = [f"MeSH agreement of the {res['settings']['extractor']} graphs over {res['reports']} IU reports "
             f"(uncertain counts as {res['settings']['uncertain']})",
             f"{'finding':<38} {'gold':>5} {'pred':>5} {'P%':>6} {'R%':>6} {'F1%':>6} {'side n':>7} {'side%':>6}"]
    for x in shown_rows(res, min_support):
        lines.append(f"{x['row']:<38} {x['gold']:>5} {x['predicted']:>5} {pct(x['precision']):>6} {pct(x['recall']):>6} "
                     f"{pct(x['f1']):>6} {x['side_n']:>7} {pct(x['side_agreement']):>6}")
    m, a, s = res["micro"], res["macro_rows_with_support"], res["side_agreement"]
    lines.append(f"{'micro (all rows)':<38} {m['tp'] + m['fn']:>5} {m['tp'] + m['fp']:>5} {pct(m['precision']):>6} {pct(m['recall']):>6} {pct(m['f1']):>6} {s['n']:>7} {pct(s['agreement']):>6}")
    lines.append(f"{'macro (rows with gold >= ' + str(min_support) + ')':<38} {'':>5} {'':>5} {pct(a['precision']):>6} {pct(a['recall']):>6} {pct(a['f1']):>6}")
    t = res["timing"]
    lines.append(f"{res['reports']} reports in {t['cpu_s']:.2f} s CPU ({t['reports_per_cpu_s']:.0f} reports/s, read_report only)")
    if res["unmapped_tags"]:
        top = ", ".join(f"{k} ({v})" for k, v in list(res["unmapped_tags"].items())[:8])
        lines.append(f"unmapped MeSH terms: {top}")
    return "\n".join(lines)


def format_markdown(res: dict[str, Any], min_support: int) -> str:
    """The table as Markdown (for docs/mesh_agreement.md)."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = ["| finding (MeSH) | gold | predicted | precision % | recall % | F1 % | side n | side agreement % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for x in shown_rows(res, min_support):
        lines.append(f"| {x['row']} | {x['gold']} | {x['predicted']} | {pct(x['precision'])} | {pct(x['recall'])} | "
                     f"{pct(x['f1'])} | {x['side_n']} | {pct(x['side_agreement'])} |")
    m, a, s = res["micro"], res["macro_rows_with_support"], res["side_agreement"]
    lines.append(f"| **micro, all rows** | {m['tp'] + m['fn']} | {m['tp'] + m['fp']} | {pct(m['precision'])} | {pct(m['recall'])} | "
                 f"{pct(m['f1'])} | {s['n']} | {pct(s['agreement'])} |")
    lines.append(f"| **macro, rows with gold >= {min_support}** ({a['rows']}) | | | {pct(a['precision'])} | {pct(a['recall'])} | {pct(a['f1'])} | | |")
    return "\n".join(lines) + "\n"


def format_disagreements(res: dict[str, Any], min_support: int) -> str:
    """Disagreements per row and class (Markdown; rows of the main table)."""
    cls = list(DISAGREEMENTS)
    d = res["disagreements"]
    lines = ["| finding (MeSH) | " + " | ".join(cls) + " |", "|---|" + "---:|" * len(cls)]
    for x in shown_rows(res, min_support):
        c = d["rows"].get(x["row"], {})
        if x["row"] != "normal (no finding)":
            lines.append(f"| {x['row']} | " + " | ".join(str(c.get(k, 0)) for k in cls) + " |")
    lines.append("| **all rows** | " + " | ".join(f"**{d['total'].get(k, 0)}**" for k in cls) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bench.mesh_agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/mesh_agreement.json", help="JSON result (default runs/mesh_agreement.json)")
    p.add_argument("--extractor", default="rules", choices=("rules", "radgraph"))
    p.add_argument("--uncertain", choices=("positive", "negative"), default="positive", help="count uncertain findings as predicted (default) or not")
    p.add_argument("--min-support", type=int, default=10, help="rows with fewer gold reports are left out of the table and the macro average (default 10)")
    p.add_argument("--limit", type=int, default=0, help="only the first N reports (default: all)")
    p.add_argument("--map", default=str(DATA), help="MeSH map JSON (default evals/data/mesh_map.json)")
    p.add_argument("--show-errors", metavar="ROW", help="print false positives/negatives of one row (report text!)")
    p.add_argument("--kind", choices=tuple(DISAGREEMENTS), help="with --show-errors: only errors of this disagreement class, "
                   "each with the report's tags and the claims that gave the prediction (FP) or the report text (FN)")
    p.add_argument("--max-errors", type=int, default=15)
    p.add_argument("--markdown", metavar="TABLE.md", help="also write the table as Markdown")
    p.add_argument("--conventions", action="store_true", help="also print the disagreements per row by class (MeSH convention or ours) as Markdown")
    args = p.parse_args(argv)
    res = run(args)
    errors = res.pop("_errors")
    print(format_table(res, args.min_support))
    if args.show_errors:
        for kind, rid, text in errors[: args.max_errors]:
            print(f"--- {kind} {rid}: {text}")
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(res, args.min_support), encoding="utf-8")
    if args.conventions:
        print(format_disagreements(res, args.min_support))
    out = write_json(args.out, res)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
