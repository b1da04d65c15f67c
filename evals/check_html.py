"""A self-contained HTML page of ``reportgen check`` results (``reportgen check --html``).

Input: the JSONL records ``reportgen check`` writes (docs/checking.md, "JSONL contract"),
as dicts. The page: a summary (records, claims, counts per status, errors), an index of
the studies shown, then per study each claim with its combined status coloured, each
checker's verdict with its reasons (graph, region, ...) and the study's region PNG
(``region_png``) inlined as a base64 data URI. A PNG that is missing or unreadable gives a
visible note naming the file (E708), never an exception. All text is HTML-escaped.

Report text is what the page is for, so it appears in the page; nothing here logs it.

```python
from reportgen.evals.check_html import render_check_html
from reportgen.jsonl import read_jsonl
records = [r.data for r in read_jsonl("V.jsonl") if r.data]
open("check.html", "w").write(render_check_html(records, flagged_only=True))
```
or ``python -m reportgen.evals.check_html V.jsonl --out check.html [--flagged-only] [--max-studies N]``.

``CheckPage`` builds the page one record at a time (the summary counts every record; only
the studies shown are kept), which is what the command uses for large batches.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from reportgen.evals import page
from reportgen.evals.page import COLOURS, STATUS_CSS, STATUSES  # noqa: F401  (shared components; COLOURS re-exported)
from reportgen.types import FLAGGED
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Region numbers shown beside a region verdict (from its evidence_meta), in this order.
REGION_META = (("zone", "claimed zone"), ("cnr", "CNR"), ("best_zone", "best zone"), ("best_cnr", "best CNR"),
               ("mirror_zone", "mirror zone"), ("mirror_cnr", "mirror CNR"), ("threshold", "threshold"),
               ("calibrated", "calibrated"), ("view", "view"), ("query", "query"), ("zones", "zones from"))

# Every page shows the reports it checked: it is patient data wherever it is saved or sent.
PHI_BANNER = (
    "<p class='phi' role='note'><b>Contains report text (patient data).</b> This page quotes the checked "
    "reports and their claims; store and share it as you would the reports themselves.</p>"
)

CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top}"
    "th{background:#f3f3f3;text-align:left}.num{text-align:right}"
    + STATUS_CSS
    + ".claim-flagged{background:#fff4f0}.reasons{margin:2px 0 2px 1em;padding-left:1em;font-size:12px;color:#333}"
    ".basis{font-size:11px;color:#444;font-family:monospace}.checker{font-size:12px;margin-top:3px}.meta{font-size:11px;color:#555}"
    ".note{background:#fff8e1;border:1px solid #f0c36d;padding:4px 8px;font-size:13px}"
    ".phi{background:#fdecea;border:1px solid #e57373;padding:6px 10px;font-size:14px}"
    ".err{color:#b00020}section.study{border-top:2px solid #ddd;margin-top:1.5em;padding-top:.5em}"
    "img.region{max-width:100%;border:1px solid #ccc}"
)


def _e(value: Any) -> str:
    return page.e(value)


def _badge(status: Any) -> str:
    return page.badge(status)


def _basis(basis: Any) -> str:
    """The basis of a verdict (reportgen.types.VERDICT_BASES), its meaning as a tooltip;
    records written before the basis existed show '-'."""
    from reportgen.types import VERDICT_BASES

    if not basis:
        return "<span class='basis'>-</span>"
    return f"<span class='basis' title='{_e(VERDICT_BASES.get(str(basis), ''))}'>{_e(basis)}</span>"


def _legend() -> str:
    """What the basis words and the evidence notation mean."""
    from reportgen.types import VERDICT_BASES

    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in VERDICT_BASES.items())
    return ("<details><summary>Legend: basis and evidence notation</summary><ul class='reasons'>" + items + "</ul>"
            f"<p class='meta'>{_e(EVIDENCE_NOTATION)}</p></details>")


# How reasons name their evidence (EvidenceItem.describe), explained in the table and the page.
EVIDENCE_NOTATION = ("Evidence is named source[start:end] 'text': reference = the reference report, self = another "
                     "sentence of the same report (self-consistency), image/box = image evidence; start:end are character "
                     "offsets of that sentence in its own report (self: in this report).")


def _num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.2f}"
    if isinstance(x, (list, tuple)):
        return ", ".join(_e(v) for v in x) or "-"
    return _e(x)


def _zone(z: Any) -> str:
    """Zone ids as words: "right_upper_zone" -> "right upper zone"."""
    zones = z if isinstance(z, (list, tuple)) else [z]
    return ", ".join(_e(str(x).replace("_", " ")) for x in zones if x) or "-"


def is_flagged(record: Mapping[str, Any]) -> bool:
    """A study with at least one contradicted or unsupported claim."""
    summary = record.get("summary") if isinstance(record.get("summary"), Mapping) else {}
    if summary.get("flagged"):
        return True
    return any(isinstance(c, Mapping) and c.get("status") in FLAGGED for c in _claims(record))


def _claims(record: Mapping[str, Any]) -> list[Any]:
    claims = record.get("claims")
    return claims if isinstance(claims, list) else []


def split_reasons(claim: Mapping[str, Any]) -> dict[str, list[str]]:
    """The claim's reasons by checker. With several checkers each reason is prefixed with
    its checker's name ("region: wrong side ..."); with one checker none is."""
    names = [v.get("checker") for v in claim.get("verdicts") or [] if isinstance(v, Mapping) and v.get("checker")]
    names = list(dict.fromkeys(str(n) for n in names))
    out: dict[str, list[str]] = {n: [] for n in names}
    for r in claim.get("reasons") or []:
        r = str(r)
        if len(names) == 1:
            out[names[0]].append(r)
            continue
        for n in sorted(names, key=len, reverse=True):  # "region-box" before "region"
            if r.startswith(f"{n}: "):
                out[n].append(r[len(n) + 2:])
                break
        else:
            out.setdefault("", []).append(r)
    return out


def _read_png(path: str, base: Path | None) -> tuple[bytes | None, str | None]:
    """(PNG bytes, None) or (None, the problem)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None and not p.is_file() and (base / p).is_file():
        p = base / p  # relative to the current folder first (as the command wrote it), else to base
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        where = f" (nor in {base})" if base is not None and not Path(path).is_absolute() else ""
        return None, f"E708 region PNG {path} not found{where}"
    except OSError as e:
        return None, f"E708 region PNG {path} could not be read ({e.strerror or type(e).__name__})"
    if not data.startswith(PNG_SIGNATURE):
        return None, f"E708 region PNG {path} is not a PNG file"
    return data, None


def _data_uri(png: bytes) -> str:
    from reportgen.checkers.region.visuals import png_data_uri

    return png_data_uri(png)


@dataclass
class CheckPage:
    """Builds the page record by record: ``add`` every record (the summary counts them
    all), ``render()`` the page. Only the studies shown are kept: with ``flagged_only``
    those with a contradicted or unsupported claim; at most ``max_studies`` of them (the
    page says how many were left out). Relative ``region_png`` paths are read from the
    current folder (as the command wrote them), else from ``png_base``."""

    title: str = "reportgen check"
    flagged_only: bool = False
    max_studies: int | None = None
    png_base: str | Path | None = None
    records: int = 0
    record_errors: list[tuple[str, str]] = field(default_factory=list)
    region_errors: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    claims: int = 0
    not_checked: int = 0
    flagged_studies: int = 0
    region_checked: int = 0
    left_out: int = 0
    shown: list[tuple[dict[str, Any], bytes | None, str | None]] = field(default_factory=list)
    skipped: int = 0

    def wants(self, record: Mapping[str, Any]) -> bool:
        """Would ``add(record)`` show this study (the flag filter and the cap)?"""
        if not isinstance(record, Mapping):
            return False
        if self.flagged_only and not is_flagged(record):
            return False
        return self.max_studies is None or len(self.shown) < self.max_studies

    def add(self, record: Mapping[str, Any], png: bytes | None = None, png_problem: str | None = None) -> None:
        """Count a record; keep it when it is shown. ``png``: the study's picture as
        bytes, used instead of reading ``record["region_png"]`` (the command passes the
        PNG it drew when no ``--region-png-dir`` was given); ``png_problem``: why there is
        no picture (shown instead)."""
        if not isinstance(record, Mapping):
            self.skipped += 1
            return
        self.records += 1
        rid = str(record.get("id"))
        summary = record.get("summary") if isinstance(record.get("summary"), Mapping) else {}
        if record.get("error"):
            self.record_errors.append((rid, str(record["error"])))
        for key in ("region_error", "reference_error"):
            if summary.get(key):
                self.region_errors.append((rid, str(summary[key])))
        if record.get("region_png_error"):
            self.region_errors.append((rid, str(record["region_png_error"])))
        for c in _claims(record):
            if not isinstance(c, Mapping):
                continue
            self.claims += 1
            if c.get("status") in self.counts:
                self.counts[c["status"]] += 1
        self.not_checked += int(summary.get("not_checked") or 0)
        flagged = is_flagged(record)
        self.flagged_studies += flagged
        self.region_checked += summary.get("region") == "checked"
        if self.flagged_only and not flagged:
            return
        if self.max_studies is not None and len(self.shown) >= self.max_studies:
            self.left_out += 1
            return
        self.shown.append((_slim(record), png, png_problem))

    def render(self) -> str:
        base = Path(self.png_base) if self.png_base is not None else None
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{_e(self.title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{_e(self.title)}</h1>",
            PHI_BANNER,
            self._summary(),
            _legend(),
            self._index(),
        ]
        for i, (record, png, problem) in enumerate(self.shown):
            parts.append(_study(i, record, png, problem, base))
        parts.append("</body></html>")
        return "".join(parts)

    def _summary(self) -> str:
        rows = [("records (studies)", self.records), ("records with errors", len(self.record_errors)),
                ("claims", self.claims)]
        rows += [(s, self.counts[s]) for s in STATUSES]
        rows += [("not checked (every checker abstained)", self.not_checked),
                 ("flagged claims (contradicted + unsupported)", self.counts["contradicted"] + self.counts["unsupported"]),
                 ("studies with a flagged claim", self.flagged_studies)]
        if self.region_checked or self.region_errors:
            rows.append(("studies checked against images", self.region_checked))
        body = "".join(
            f"<tr><th>{_badge(k) if k in STATUSES else _e(k)}</th><td class='num'>{v:,}</td></tr>" for k, v in rows)
        out = f"<h2>Summary</h2><table>{body}</table>"
        if self.skipped:
            out += f"<p class='note'>{self.skipped} input item(s) were not records (not JSON objects) and were skipped.</p>"
        for label, errs in (("Records with errors", self.record_errors), ("Region and reference problems", self.region_errors)):
            if errs:
                items = "".join(f"<li><b>{_e(i)}</b>: <span class='err'>{_e(m)}</span></li>" for i, m in errs[:500])
                more = f"<li>... {len(errs) - 500} more</li>" if len(errs) > 500 else ""
                out += f"<h3>{label} ({len(errs)})</h3><ul>{items}{more}</ul>"
        return out

    def _index(self) -> str:
        what = "studies with a contradicted or unsupported claim" if self.flagged_only else "studies"
        note = f"<p>Showing {len(self.shown):,} {what}"
        if self.left_out:
            note += f"; {self.left_out:,} more left out (at most {self.max_studies:,} shown)"
        note += ".</p>"
        if not self.shown:
            return "<h2>Studies</h2>" + note
        rows = []
        for i, (r, _, _) in enumerate(self.shown):
            s = r.get("summary") or {}
            cells = "".join(f"<td class='num'>{_e(s.get(k, 0))}</td>" for k in ("claims", "contradicted", "unsupported", "uncertain", "supported"))
            state = "record error" if r.get("error") else _e(s.get("region", "")) or "-"
            rows.append(f"<tr><td><a href='#study-{i}'>{_e(r.get('id'))}</a></td>{cells}<td>{state}</td></tr>")
        head = "".join(f"<th>{h}</th>" for h in ("id", "claims", "contradicted", "unsupported", "uncertain", "supported", "region"))
        return f"<h2>Studies</h2>{note}<table><tr>{head}</tr>{''.join(rows)}</table>"


def _slim(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the page needs of a record (entities, relations and findings dropped)."""
    keep = ("text", "section", "status", "basis", "score", "reasons", "verdicts")
    claims = [{k: c.get(k) for k in keep} for c in _claims(record) if isinstance(c, Mapping)]
    out = {k: record.get(k) for k in ("id", "error", "summary", "region_png", "region_png_error", "images") if k in record}
    out["claims"] = claims
    return out


def _study(i: int, r: Mapping[str, Any], png: bytes | None, problem: str | None, base: Path | None) -> str:
    s = r.get("summary") if isinstance(r.get("summary"), Mapping) else {}
    counts = ", ".join(f"{s[k]} {k}" for k in STATUSES if s.get(k))
    head = f"<section class='study' id='study-{i}'><h2>{_e(r.get('id'))}</h2>"
    n = s.get("claims", 0)
    head += f"<p>{_e(n)} claim{'' if n == 1 else 's'}" + (f" ({_e(counts)})" if counts else "")
    if s.get("reference"):
        head += f"; reference: {_e(s['reference'])}"
    if s.get("checkers"):
        head += f"; checkers: {_e(', '.join(map(str, s['checkers'])))}"
    if s.get("region"):
        head += f"; region: {_e(s['region'])}"
    head += "</p>"
    if r.get("error"):
        return head + f"<p class='err'>error: {_e(r['error'])}</p></section>"
    for key in ("region_error", "reference_error"):
        if s.get(key):
            head += f"<p class='note'>{_e(s[key])}</p>"
    rows = []
    for c in r.get("claims") or []:
        flagged = " class='claim-flagged'" if c.get("status") in FLAGGED else ""
        rows.append(f"<tr{flagged}><td>{_badge(c.get('status'))}</td><td>{_basis(c.get('basis'))}</td><td>{_e(c.get('section'))}</td>"
                    f"<td class='num'>{_num(c.get('score'))}</td><td>{_e(c.get('text'))}{verdicts_html(c)}</td></tr>")
    table = ("<table><tr><th>status</th><th>basis</th><th>section</th><th>score</th><th>claim, and each checker's verdict</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>No claims.</p>"
    picture = f"<p class='note'>{_e(problem)}</p>" if problem else _picture(r, png, base)
    return head + table + picture + "</section>"


def verdicts_html(c: Mapping[str, Any]) -> str:
    """HTML of a claim record's per-checker verdicts (status, basis, score, region numbers,
    reasons): the check page and the run page show them alike."""
    reasons = split_reasons(c)
    out = []
    for v in c.get("verdicts") or []:
        if not isinstance(v, Mapping):
            continue
        name = str(v.get("checker", ""))
        line = f"<div class='checker'><b>{_e(name)}</b> {_badge(v.get('status'))} {_basis(v.get('basis'))} score {_num(v.get('score'))}"
        metas = [m for m in v.get("evidence_meta") or [] if isinstance(m, Mapping) and m]
        for m in metas:
            shown = "; ".join(f"{label} {_zone(m[k]) if 'zone' in k else _num(m[k])}" for k, label in REGION_META if k in m)
            if shown:
                line += f"<div class='meta'>{shown}</div>"
        rs = reasons.pop(name, [])
        if rs:
            line += "<ul class='reasons'>" + "".join(f"<li>{_e(x)}</li>" for x in rs) + "</ul>"
        out.append(line + "</div>")
    rest = [x for rs in reasons.values() for x in rs]
    if rest:  # reasons of no listed checker (records written without "verdicts")
        out.append("<ul class='reasons'>" + "".join(f"<li>{_e(x)}</li>" for x in rest) + "</ul>")
    return "".join(out)


def _picture(r: Mapping[str, Any], png: bytes | None, base: Path | None) -> str:
    alt = f"region map of {r.get('id')}"
    if png is not None:
        if png.startswith(PNG_SIGNATURE):
            return f"<h3>Region map</h3><img class='region' alt='{_e(alt)}' src='{_data_uri(png)}'/>"
        return "<p class='note'>E708 the region picture of this study is not a PNG.</p>"
    if r.get("region_png_error"):
        return f"<p class='note'>{_e(r['region_png_error'])}</p>"
    path = r.get("region_png")
    if isinstance(path, str) and path:
        data, problem = _read_png(path, base)
        if problem:
            return f"<p class='note'>{_e(problem)}</p>"
        return (f"<h3>Region map</h3><p class='meta'>{_e(path)}: each flagged claim's similarity map, the claimed zone "
                f"outlined white, the best zone dashed</p><img class='region' alt='{_e(alt)}' src='{_data_uri(data)}'/>")
    if "region_png" in r:  # null: the study's images could not be used
        return "<p class='note'>No region map: the study's images could not be used (see the region problem above).</p>"
    if (r.get("summary") or {}).get("region") == "checked":
        return "<p class='meta'>No region map in this record (written without --region-png-dir).</p>"
    return ""


def render_check_html(
    records: Iterable[Mapping[str, Any]], title: str = "reportgen check", *, flagged_only: bool = False,
    max_studies: int | None = None, png_base: str | Path | None = None,
) -> str:
    """The page for ``reportgen check`` records (see ``CheckPage``)."""
    page = CheckPage(title=title, flagged_only=flagged_only, max_studies=max_studies, png_base=png_base)
    for r in records:
        page.add(r)
    return page.render()


def main(argv: list[str] | None = None) -> int:
    """``python -m reportgen.evals.check_html V.jsonl --out check.html``: the page of an existing output."""
    from reportgen.errors import ReportgenError
    from reportgen.jsonl import atomic_writer

    p = argparse.ArgumentParser(prog="python -m reportgen.evals.check_html", description=__doc__.split("\n\n")[0])
    p.add_argument("records", metavar="V.jsonl", help="output of reportgen check")
    p.add_argument("--out", required=True, metavar="OUT.html")
    p.add_argument("--flagged-only", action="store_true", help="only studies with a contradicted or unsupported claim")
    p.add_argument("--max-studies", type=int, default=None, metavar="N", help="show at most N studies")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        if args.max_studies is not None and args.max_studies < 1:
            raise ReportgenError("E709", f"--max-studies must be at least 1, got {args.max_studies}")
        page = CheckPage(title=args.title or f"reportgen check: {Path(args.records).name}", flagged_only=args.flagged_only,
                         max_studies=args.max_studies, png_base=Path(args.records).resolve().parent)
        bad = 0
        try:
            with open(args.records, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        page.add(json.loads(line))
                    except json.JSONDecodeError:
                        bad += 1
        except (OSError, UnicodeDecodeError) as e:
            raise ReportgenError("E709", f"{args.records} cannot be read ({e})", fix="give the JSONL that reportgen check wrote") from None
        try:
            with atomic_writer(args.out) as out:
                out.write(page.render())
        except OSError as e:
            raise ReportgenError("E707", f"{args.out}: the page could not be written ({e.strerror or e})") from None
    except ReportgenError as e:
        print(f"check_html: {e}", file=sys.stderr)
        return 1
    if bad:
        print(f"check_html: {bad} line(s) of {args.records} were not JSON and were skipped", file=sys.stderr)
    print(f"check_html: {page.records} records, {len(page.shown)} studies shown; written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
