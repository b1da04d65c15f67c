"""`reportgen demo`: check a seeded sample of the real IU reports, offline, in seconds.

Part A checks each sampled report for internal consistency (findings vs impression and
the other sentences). Part B alters a few sentences of other sampled reports in a visible
way and checks the altered report against the original as its reference:

- negation flip: a negative sentence ("No pneumothorax.") becomes positive
  ("Pneumothorax is present.");
- laterality swap: "right" and "left" are swapped in a sentence with a sided finding;
- fabricated finding: a sentence about a finding the report never mentions is added.

It prints a verdict table with reasons (altered claims marked) and a summary: counts per
status and which altered sentences were caught (contradicted or unsupported). The IU
reports are public, de-identified data (Open-i, CC BY-NC-ND 4.0), so the demo prints them.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from reportgen.types import FLAGGED, Report

FLIP, SWAP, FABRICATE = "negation flip", "laterality swap", "fabricated finding"
KINDS = (FLIP, SWAP, FABRICATE)
MARK = {FLIP: "*N", SWAP: "*L", FABRICATE: "*+"}
CAUGHT = FLAGGED  # the statuses that catch an altered sentence
# Sentences added by the fabrication, keyed by the observation they assert; the first
# whose observation the report never mentions is used.
FABRICATIONS = (
    ("pneumothorax", "There is a large right pneumothorax."),
    ("nodule", "There is a nodule in the left upper lobe."),
    ("pleural effusion", "There is a moderate left pleural effusion."),
    ("consolidation", "There is consolidation in the right lower lobe."),
)
# Sentences that are explicit negations ("No pneumothorax.", "There is no effusion.").
_NEGATIVE = re.compile(r"\s*(?:no|there (?:is|are) no|without|negative for)\b", re.I)
_SIDE = re.compile(r"\b(right|left|Right|Left|RIGHT|LEFT)\b")
_SWAP = {"right": "left", "left": "right", "Right": "Left", "Left": "Right", "RIGHT": "LEFT", "LEFT": "RIGHT"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=6, help="reports per part (default 6)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", metavar="DEMO.jsonl", help="also write every checked record as JSONL")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules)")


@dataclass(frozen=True)
class Alteration:
    """One altered sentence: its kind and span in the altered report text."""

    kind: str
    start: int
    end: int
    original: str
    altered: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "original": self.original, "altered": self.altered}


def _replace(findings: str, start: int, end: int, new: str) -> str:
    return findings[:start] + new + findings[end:]


def alter(findings: str, impression: str | None, kind: str, read: Callable[[str], Any]) -> tuple[Report, Alteration] | None:
    """Apply one alteration of ``kind`` to the findings section, or None when the report
    has no sentence it applies to. Sentences are chosen from the reader's claims."""
    fr = read(findings)
    if kind == FLIP:
        for cc in fr.claims:
            if not _NEGATIVE.match(findings, _sentence(cc.claim)[0]):
                continue
            obs = [f for f in cc.findings if f.presence == "absent" and f.observation not in ("abnormality", "acute abnormality")]
            if obs:
                s, e = _sentence(cc.claim)
                new = f"{obs[0].observation.capitalize()} is present."
                return _build(findings, impression, s, e, new, kind)
    elif kind == SWAP:
        for cc in fr.claims:
            if any(f.presence == "present" and f.laterality in ("right", "left") for f in cc.findings):
                s, e = _sentence(cc.claim)
                sentence = findings[s:e]
                new = _SIDE.sub(lambda m: _SWAP[m.group()], sentence)
                if new != sentence:
                    return _build(findings, impression, s, e, new, kind)
    elif kind == FABRICATE:
        mentioned = {f.observation for cc in fr.claims for f in cc.findings}
        for obs, sentence in FABRICATIONS:
            if obs not in mentioned:
                at = len(findings.rstrip())
                sep = "" if findings[:at].endswith((" ", "\n")) or not findings.strip() else " "
                return _build(findings, impression, at, at, sep + sentence, kind)
    return None


def _sentence(claim) -> tuple[int, int]:
    s = claim.sentence_start if claim.sentence_start is not None else claim.start
    e = claim.sentence_end if claim.sentence_end is not None else claim.end
    return s, e


def _build(findings: str, impression: str | None, s: int, e: int, new: str, kind: str) -> tuple[Report, Alteration]:
    altered = _replace(findings, s, e, new)
    report = Report.from_sections({"findings": altered, "impression": impression})
    offset = report.sections[0].start
    lead = len(new) - len(new.lstrip())
    return report, Alteration(kind, offset + s + lead, offset + s + len(new), findings[s:e], new.strip())


def _sample(reports: Sequence[Any], n: int, rng: random.Random, exclude: set[str]) -> list[Any]:
    pool = [r for r in reports if r.findings and r.impression and r.id not in exclude]
    return rng.sample(pool, min(n, len(pool)))


def run(args: argparse.Namespace) -> int:
    from reportgen.checkers.pipeline import Pipeline, default_reader
    from reportgen.commands.check import STATUSES, render_table, table_legend
    from reportgen.iu import load_iu_reports
    from reportgen.jsonl import atomic_writer, dumps

    started = time.perf_counter()
    rng = random.Random(args.seed)
    reports = load_iu_reports()
    eligible = sum(1 for r in reports if r.findings and r.impression)
    if args.n > eligible // 2:  # part A would take them all and part B would check nothing
        from reportgen.errors import ReportgenError

        raise ReportgenError("E737", f"--n {args.n} is more than the sample holds: {eligible:,} IU reports have findings "
                             f"and an impression, so each part takes at most {eligible // 2:,}",
                             fix=f"give --n {eligible // 2} or less")
    read = default_reader(args.extractor)
    pipeline = Pipeline(extractor=args.extractor, reader=read)  # part A: self-consistency
    against_reference = Pipeline(extractor=args.extractor, self_check=False, reader=read)  # part B
    out_records: list[dict[str, Any]] = []
    say = print

    # Part A: internal consistency of unaltered reports.
    part_a = _sample(reports, args.n, rng, set())
    say(f"reportgen demo: {len(reports):,} IU reports loaded; seed {args.seed}\n")
    say(table_legend() + "\n")
    say(f"A. Internal consistency of {len(part_a)} sampled reports (each claim vs the report's other sentences)\n")
    totals_a = {k: 0 for k in STATUSES}
    for r in part_a:
        rec = pipeline.check(r.id, r.report.text).to_record()
        rec["demo"] = {"part": "self-consistency"}
        out_records.append(rec)
        for k in STATUSES:
            totals_a[k] += rec["summary"][k]
        say(render_table(rec))
        say()

    # Part B: altered copies checked against their originals.
    say("B. Altered reports checked against their original as the reference (altered claims marked "
        + ", ".join(f"{m} {k}" for k, m in MARK.items()) + ")\n")
    totals_b = {k: 0 for k in STATUSES}
    caught: dict[str, list[bool]] = {k: [] for k in KINDS}
    false_alarms = 0
    used = {r.id for r in part_a}
    candidates = [r for r in reports if r.findings and r.impression and r.id not in used]
    rng.shuffle(candidates)
    lateral = [r for r in candidates if _SIDE.search(r.findings)]
    done = 0
    kinds = [KINDS[i % len(KINDS)] for i in range(args.n)]
    for kind in kinds:
        pool = lateral if kind == SWAP else candidates
        for r in pool:
            if r.id in used:
                continue
            made = alter(r.findings, r.impression, kind, read)
            if made is None:
                continue
            used.add(r.id)
            altered, change = made
            rec = against_reference.check(r.id, altered.text, r.report.text).to_record()
            rec["demo"] = {"part": "altered-vs-reference", "altered": [change.to_dict()]}
            out_records.append(rec)
            hit = [c for c in rec["claims"] if change.start <= c["start"] < change.end]
            caught[kind].append(any(c["status"] in CAUGHT for c in hit))
            false_alarms += sum(1 for c in rec["claims"] if c not in hit and c["status"] in CAUGHT)
            for k in STATUSES:
                totals_b[k] += rec["summary"][k]
            if change.original:
                say(f"{change.kind}: {change.original!r} -> {change.altered!r}")
            else:
                say(f"{change.kind}: added {change.altered!r}")
            say(render_table(rec, marks={c["start"]: MARK[kind] for c in hit}))
            say()
            done += 1
            break

    say("Summary")
    say("  A (self-consistency): " + ", ".join(f"{totals_a[k]} {k}" for k in STATUSES))
    say("  B (vs reference):     " + ", ".join(f"{totals_b[k]} {k}" for k in STATUSES))
    n_caught = sum(sum(v) for v in caught.values())
    n_altered = sum(len(v) for v in caught.values())
    per_kind = "; ".join(f"{k} {sum(v)}/{len(v)}" for k, v in caught.items() if v)
    say(f"  altered sentences caught (contradicted or unsupported): {n_caught}/{n_altered} ({per_kind})")
    say(f"  unaltered claims flagged in B: {false_alarms}")
    say(f"  took {time.perf_counter() - started:.1f}s")
    if args.out:
        with atomic_writer(args.out) as fh:
            for rec in out_records:
                fh.write(dumps(rec) + "\n")
        say(f"  records written to {args.out}")
    sys.stdout.flush()
    return 0
