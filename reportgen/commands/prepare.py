"""`reportgen prepare`: write the studies JSONL of a public dataset (train and draft input).

    reportgen prepare mimic-cxr --root /data/mimic-cxr-jpg/2.1.0 --reports /data/mimic-cxr/2.1.0 \\
        --split train validate --out mimic_trainval.jsonl
    reportgen prepare mimic-cxr --root ... --reports ... --split test --out mimic_test.jsonl
    reportgen prepare csv --csv df_chexpert_plus_240401.csv --image-root /data/chexpert-plus --out cxp.jsonl

Records: {"id", "images", "views", "patient_id", "split", "indication"?, "comparison"?,
"findings"?, "impression"?, "report"} (``report``: the --section to train on). Studies left
out (no report, no section, no image file) are counted by reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=("mimic-cxr", "csv"), help="mimic-cxr: MIMIC-CXR-JPG layout; csv: one row per image")
    p.add_argument("--out", required=True, help="studies JSONL to write (atomically)")
    p.add_argument("--section", choices=("findings", "impression", "full"), default="findings",
                   help="the section that becomes 'report' (the training target; default findings)")
    p.add_argument("--split", nargs="+", default=None, metavar="SPLIT",
                   help="keep only these official splits (train, validate, test; default all)")
    p.add_argument("--root", help="mimic-cxr: the MIMIC-CXR-JPG folder (split/metadata CSVs and files/)")
    p.add_argument("--reports", help="mimic-cxr: the folder whose files/pXX/pID/sID.txt are the reports (default --root)")
    p.add_argument("--csv", help="csv: the table, one row per image")
    p.add_argument("--image-root", help="csv: folder that relative image paths are read under (default: the CSV's)")
    p.add_argument("--preset", default="chexpert-plus", help="csv: column layout (default chexpert-plus)")


def run(args: argparse.Namespace) -> int:
    from reportgen.errors import ReportgenError
    from reportgen.jsonl import atomic_writer, dumps

    splits = tuple(s.lower() for s in args.split) if args.split else None
    if args.dataset == "mimic-cxr":
        from reportgen.datasets.mimic import SPLITS, LoadStats, load_mimic_cxr

        if not args.root:
            raise ReportgenError("E110", "prepare mimic-cxr needs --root", fix="give the MIMIC-CXR-JPG folder")
        st = LoadStats()
        records = load_mimic_cxr(args.root, args.reports, section=args.section, splits=splits or SPLITS, stats=st)
        counts: Counter = st.skipped
    else:
        from reportgen.datasets.table import load_table

        if not args.csv:
            raise ReportgenError("E110", "prepare csv needs --csv", fix="give the CSV file")
        counts = Counter()
        records = load_table(args.csv, args.image_root, columns=args.preset, section=args.section, splits=splits, stats=counts)
    n = 0
    by_split: Counter = Counter()
    with atomic_writer(args.out) as fh:
        for rec in records:
            fh.write(dumps(rec) + "\n")
            n += 1
            by_split[rec.get("split") or "-"] += 1
    counts.pop("written", None)
    left = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
    splits_txt = ", ".join(f"{k} {v}" for k, v in sorted(by_split.items()))
    print(f"reportgen prepare: {n} studies -> {args.out} ({splits_txt}); left out: {left}", file=sys.stderr)
    return 0 if n else 1
