"""`reportgen extract`: print the claims, entity graphs (RadGraph schema) and findings of text.

    reportgen extract "No pleural effusion or pneumothorax. Mild cardiomegaly."
    echo "FINDINGS: The lungs are clear." | reportgen extract - --format json
    reportgen extract "..." --extractor radgraph          # needs reportgen-cxr[radgraph]
    reportgen extract "..." --lexicon my_terms.json        # a user lexicon merged in

Offsets are into the text as given (several words on the command line are joined by
single spaces). ``--format json`` prints one JSON object:
``{"text", "extractor", "sections": [...], "claims": [{"text", "section", "start", "end",
"sentence_start", "sentence_end", "entities": [...], "relations": [...], "findings": [...]}]}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from reportgen.errors import ReportgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="+", help="report text (several words are joined by spaces); '-' reads standard input")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="graph backend (default: rules, offline)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.add_argument("--lexicon", metavar="LEXICON.json", help="user lexicon for the rules extractor (see docs/lexicon.md)")
    p.add_argument("--lexicon-mode", choices=("merge", "replace"), default="merge", help="merge the user lexicon into the default one (default) or replace it")
    p.add_argument("--include-context", action="store_true", help="also claims of INDICATION / COMPARISON / HISTORY / TECHNIQUE")


def _read_text(args: argparse.Namespace) -> str:
    if args.text == ["-"]:
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReportgenError("E250", f"standard input is not UTF-8 text (byte {e.start})", fix="convert the input to UTF-8") from None
    return " ".join(args.text)


def run(args: argparse.Namespace) -> int:
    from reportgen.checkers.graphs import get_extractor
    from reportgen.checkers.read import read_report

    text = _read_text(args)
    if not text.strip():
        raise ReportgenError("E251", "no text to extract from", fix='give the report text as arguments, or "-" to read standard input')
    opts = {}
    if args.lexicon:
        if args.extractor != "rules":
            raise ReportgenError("E252", "--lexicon works with the rules extractor only", fix="drop --lexicon or use --extractor rules")
        opts = {"lexicon": args.lexicon, "lexicon_mode": args.lexicon_mode}
    extractor = get_extractor(args.extractor, **opts)
    rr = read_report(text, extractor, include_context=args.include_context)
    if args.format == "json":
        out = {
            "text": text,
            "extractor": extractor.name,
            "sections": [s.to_dict() for s in rr.report.sections],
            "claims": [
                dict(c.claim.to_dict(), entities=[e.to_dict() for e in c.graph.entities],
                     relations=[r.to_dict() for r in c.graph.relations], findings=[f.to_dict() for f in c.findings])
                for c in rr.claims
            ],
        }
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return 0
    sys.stdout.write(format_table(rr))
    return 0


def format_table(rr) -> str:
    """A readable listing: each claim, its entities and relations, its findings."""
    lines: list[str] = []
    if not rr.claims:
        return "(no claims)\n"
    for c in rr.claims:
        cl = c.claim
        lines.append(f"[{cl.section}] [{cl.start}:{cl.end}] {cl.text}")
        ents = {e.id: e for e in c.graph.entities}
        for e in c.graph.entities:
            norm = f" -> {e.norm}" if e.norm and e.norm != e.text.lower() else ""
            lines.append(f"    {e.id:<8} {e.label:<8} [{e.start}:{e.end}] {e.text!r}{norm}")
        for r in c.graph.relations:
            lines.append(f"    {ents[r.source].text!r} ({r.source}) -{r.type}-> {ents[r.target].text!r} ({r.target})")
        for f in c.findings:
            where = ", ".join(x for x in (f.laterality, *f.locations, f.anatomy) if x)
            extra = ", ".join(x for x in (f.severity, f.change) if x)
            lines.append(f"    = {f.presence:<9} {f.observation}" + (f" @ {where}" if where else "") + (f" ({extra})" if extra else ""))
    return "\n".join(lines) + "\n"
