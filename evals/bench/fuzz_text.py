"""Coverage-guided fuzzing (atheris / libFuzzer) of the text entry points (issue 16).

Targets: the JSONL line reader (``reportgen.jsonl``), the section splitter, the claim
splitter, the rules graph extractor and ``read_report``. Every input must give no
exception, and every section, claim, entity and finding offset must lie inside the text
with ``text[start:end] == entity.text``. A finding is a crash: libFuzzer stops and writes
the input to ``crash-*`` in the current folder.

    pip install atheris==3.0.0     # not in any extra: a compiled package, for this script only
    python -m evals.bench.fuzz_text [--seconds 600] [--max-len 4096] [--corpus runs/fuzz/corpus]

The budget is fixed (``--seconds``, libFuzzer's -max_total_time); the last result is in
docs/hardening.md. Only reportgen's own modules are instrumented (coverage of spaCy and
the standard library would slow it down without telling us about our code).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def check(text: str) -> None:
    from reportgen.checkers.claims import split_claims, split_sections
    from reportgen.checkers.read import read_report

    def span(s: int, e: int, what: str) -> None:
        if not (0 <= s <= e <= len(text)):
            raise AssertionError(f"{what} [{s}:{e}] outside a text of {len(text)}")

    def graph(g) -> None:
        for ent in g.entities:
            span(ent.start, ent.end, "entity")
            if text[ent.start:ent.end] != ent.text:
                raise AssertionError(f"entity text {ent.text!r} != {text[ent.start:ent.end]!r}")

    report = split_sections(text)
    for sec in report.sections:
        span(sec.start, sec.end, "section")
    for c in split_claims(report, include_context=True):
        span(c.start, c.end, "claim")
    graph(_extractor().extract(text))
    for cc in read_report(text, include_context=True).claims:
        span(cc.claim.start, cc.claim.end, "claim")
        graph(cc.graph)
        for f in cc.findings:
            span(f.start, f.end, "finding")


_EX = None


def _extractor():
    global _EX
    if _EX is None:
        from reportgen.checkers.graphs.rules import RulesExtractor

        _EX = RulesExtractor()
    return _EX


def one_input(data: bytes) -> None:
    import atheris

    from reportgen.jsonl import _parse_line

    rec = _parse_line("fuzz.jsonl", 1, data, ("id",), 200_000, ("report",))
    if rec.error is None and rec.data is not None and isinstance(rec.data.get("report"), str):
        check(rec.data["report"])
    fdp = atheris.FuzzedDataProvider(data)
    check(fdp.ConsumeUnicodeNoSurrogates(len(data)))


SEEDS = [
    b'{"id": "a", "report": "FINDINGS: Right upper lobe opacity. No pleural effusion or pneumothorax.\\n\\nIMPRESSION: 1. Cardiomegaly."}',
    "INDICATION: cough\u200f. COMPARISON: None. Heart size normal; lungs clear. T12. compression, 3 cm. nodule.".encode(),
    "Left lower lobe e\u0301ffusion?? ... (stable) - XXXX. \x00\x1b No acute disease.".encode(),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600, help="fuzzing budget (default 600)")
    ap.add_argument("--max-len", type=int, default=4096, help="longest input in bytes (default 4096)")
    ap.add_argument("--corpus", default="runs/fuzz/corpus", help="corpus folder (kept between runs)")
    args, rest = ap.parse_known_args(argv)
    import atheris

    corpus = Path(args.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(seed)
    with atheris.instrument_imports(include=["reportgen"]):
        import reportgen.checkers.claims  # noqa: F401
        import reportgen.checkers.graphs.rules  # noqa: F401
        import reportgen.checkers.read  # noqa: F401
        import reportgen.jsonl  # noqa: F401
    check("warm up: Right upper lobe opacity.")  # load spaCy and the lexicon before the clock starts
    atheris.Setup([sys.argv[0], f"-max_total_time={args.seconds}", f"-max_len={args.max_len}", "-print_final_stats=1",
                   "-timeout=30", *rest, str(corpus)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
