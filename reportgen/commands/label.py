"""`reportgen label`: CheXpert 14-observation labels for reports (JSONL).

    reportgen label --reports R.jsonl --out L.jsonl

Input records ``{"id": str, "report": str, ...}``. One output record per input line:
``{"id", "labels": {NAME: 1 | 0 | -1 | null}, "error": null}`` with the 14 names spelled
as CheXpert spells them (1 positive, 0 negative, -1 uncertain, null not mentioned), read
off the rules graphs' findings through ``evals/data/chexpert_map.json`` (see
docs/metrics.md). A bad line (malformed JSON, non-UTF-8 bytes, a missing id, an empty or
oversized report) gives ``{"id": <id or "line:N">, "labels": null, "error": "<file:line:
code problem>", "error_code": "E103"}`` (docs/errors.md) and the batch goes on; the output
is written atomically.
"""

from __future__ import annotations

import argparse
import sys

from reportgen.errors import error_code
from reportgen.jsonl import MAX_RECORD_CHARS, atomic_writer, dumps, read_jsonl


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", required=True, metavar="R.jsonl", help='input JSONL, one {"id": str, "report": str} per line')
    p.add_argument("--out", required=True, metavar="L.jsonl", help="output JSONL, written atomically")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules, offline)")
    p.add_argument("--map", metavar="MAP.json", help="normal form -> CheXpert observation map (default: evals/data/chexpert_map.json)")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,} characters)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any record has an error")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary on stderr")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reportgen.checkers.read import read_report
    from reportgen.evals.metrics.chexpert import CHEXPERT_LABELS, ChexpertMap, chexpert_labels
    from reportgen.errors import ReportgenError

    mapping = ChexpertMap.load(args.map)
    n = errors = 0
    positives = dict.fromkeys(CHEXPERT_LABELS, 0)
    bar = tqdm(file=sys.stderr, unit="report", disable=args.quiet or not sys.stderr.isatty(), desc="label")
    with atomic_writer(args.out) as fh:
        for rec in read_jsonl(args.reports, require=("id", "report"), text_fields=("report",), max_chars=args.max_chars):
            n += 1
            bar.update(1)
            if rec.error:
                errors += 1
                fh.write(dumps({"id": rec.fallback_id(), "labels": None, "error": rec.error, "error_code": rec.error_code}) + "\n")
                continue
            try:
                read = read_report(rec.data["report"], extractor=args.extractor)
                labels = chexpert_labels((f for c in read.claims for f in c.findings), mapping)
            except ReportgenError as e:
                errors += 1
                fh.write(dumps({"id": rec.id, "labels": None, "error": f"{rec.where}: {e}", "error_code": e.code}) + "\n")
                continue
            except Exception as e:  # a bug on one report must not stop the batch
                errors += 1
                message = f"{rec.where}: E490 labelling failed: {type(e).__name__}: {e}"
                fh.write(dumps({"id": rec.id, "labels": None, "error": message, "error_code": error_code(message)}) + "\n")
                continue
            for k, v in labels.items():
                positives[k] += v == 1
            fh.write(dumps({"id": rec.id, "labels": labels, "error": None}) + "\n")
    bar.close()
    if not args.quiet:
        top = ", ".join(f"{k} {v}" for k, v in sorted(positives.items(), key=lambda kv: -kv[1]) if v)
        print(f"reportgen label: {n} records, {errors} errors -> {args.out} (map v{mapping.version}); positives: {top or 'none'}", file=sys.stderr)
    return 1 if args.strict and errors else 0
