"""Page components shared by every HTML page of reportgen (``reportgen run``'s report,
``reportgen check --html``, ``reportgen eval --html``): status colours and badges, the
stylesheet, a metrics table with CIs, inline SVG bar charts, and a report text with each
claim highlighted by status. Pure string building: no template engine, nothing fetched,
everything escaped."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence
from reportgen.types import STATUS_ORDER

STATUSES = (*STATUS_ORDER, "error")  # worst first (the one vocabulary: reportgen.types)
COLOURS = {
    "contradicted": "#b00020", "unsupported": "#d35400", "uncertain": "#8a6d00",
    "supported": "#2e7d32", "error": "#6a1b9a",
}
# light backgrounds for claims highlighted inside a report text
TINTS = {
    "contradicted": "#ffd6dc", "unsupported": "#ffe3cc", "uncertain": "#fff2b3",
    "supported": "#dcf2dc", "error": "#ead9f5",
}

STATUS_CSS = (
    ".st{font-weight:600;white-space:nowrap;color:#fff;padding:1px 6px;border-radius:3px;font-size:12px}"
    + "".join(f".st-{s}{{background:{c}}}" for s, c in COLOURS.items())
)
BASE_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.5em 2em;max-width:1280px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top}"
    "th{background:#f3f3f3;text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{background:#fff8e1;border:1px solid #f0c36d;padding:6px 10px;font-size:13px}"
    ".banner{background:#e8f0fe;border:2px solid #4472c4;padding:8px 12px;font-size:15px;margin:.5em 0}"
    ".err{color:#b00020}.meta{font-size:11px;color:#555}"
    + STATUS_CSS
    + "".join(f".claim.st-bg-{s}{{background:{t};border-bottom:2px solid {COLOURS[s]}}}" for s, t in TINTS.items())
    + ".claim{border-radius:2px;padding:0 1px;cursor:pointer}.claim.sel{outline:2px solid #1a73e8}"
)


def e(value: Any) -> str:
    """HTML-escaped text ('' for None)."""
    return html.escape("" if value is None else str(value), quote=True)


def badge(status: Any) -> str:
    s = str(status) if status in COLOURS else "error"
    return f"<span class='st st-{s}'>{e(status)}</span>"


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return e(x)


def metrics_table(corpus: Mapping[str, Mapping[str, Any]], digits: int = 4) -> str:
    """metric | estimate | 95% low | 95% high, one row per corpus figure."""
    rows = "".join(
        f"<tr><td>{e(k)}</td><td class='num'>{fmt(v.get('estimate'), digits)}</td>"
        f"<td class='num'>{fmt(v.get('low'), digits)}</td><td class='num'>{fmt(v.get('high'), digits)}</td></tr>"
        for k, v in corpus.items() if isinstance(v, Mapping))
    return "<table class='metrics'><tr><th>metric</th><th>estimate</th><th>95% low</th><th>95% high</th></tr>" + rows + "</table>"


def svg_bars(title: str, items: Sequence[tuple[str, float]], *, colours: Mapping[str, str] | None = None,
             vmax: float | None = None, width: int = 470, fmt_value: str = "{:g}") -> str:
    """A horizontal bar chart as inline SVG (one bar per (label, value)), labelled values."""
    if not items:
        return ""
    bar_h, gap, label_w, top = 16, 5, 200, 22
    vmax = vmax if vmax is not None else max((v for _, v in items), default=0) or 1
    plot_w = width - label_w - 50
    h = top + len(items) * (bar_h + gap) + 4
    parts = [f"<svg class='chart' role='img' aria-label='{e(title)}' width='{width}' "
             f"height='{h}' viewBox='0 0 {width} {h}'><title>{e(title)}</title>"
             f"<text x='0' y='14' font-size='13' font-weight='600'>{e(title)}</text>"]
    for k, (label, v) in enumerate(items):
        y = top + k * (bar_h + gap)
        w = 0 if vmax <= 0 else max(0.0, min(1.0, v / vmax)) * plot_w
        colour = (colours or {}).get(label, "#4472c4")
        parts.append(f"<text x='{label_w - 6}' y='{y + 12}' font-size='11' text-anchor='end'>{e(label)}</text>"
                     f"<rect x='{label_w}' y='{y}' width='{w:.1f}' height='{bar_h}' fill='{colour}'/>"
                     f"<text x='{label_w + w + 4:.1f}' y='{y + 12}' font-size='11'>{e(fmt_value.format(v))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def highlight(text: str, claims: Sequence[Mapping[str, Any]]) -> str:
    """The report text with each claim a ``<span class='claim' data-claim=i data-status=S>``
    (i: the claim's index in the record), the rest plain; line breaks kept."""
    out, at = [], 0
    spans = sorted((c.get("start"), c.get("end"), i, c.get("status")) for i, c in enumerate(claims)
                   if isinstance(c.get("start"), int) and isinstance(c.get("end"), int))
    shown = set()
    for start, end, i, status in spans:
        if start < at or end > len(text) or end <= start:
            continue  # overlapping or out of range: listed below the text only
        s = status if status in COLOURS else "error"
        out.append(e(text[at:start]))
        out.append(f"<span class='claim st-bg-{s}' id='claim-{i}' data-claim='{i}' data-status='{e(status)}' "
                   f"title='{e(status)}'>{e(text[start:end])}</span>")
        shown.add(i)
        at = end
    out.append(e(text[at:]))
    hidden = [i for i, c in enumerate(claims) if i not in shown]
    body = "".join(out).replace("\n", "<br>")
    for i in hidden:  # still one element per claim, so tools can read every status
        c = claims[i]
        body += (f"<div class='meta'>claim {i} (not placed in the text): <span class='claim st-bg-"
                 f"{c.get('status') if c.get('status') in COLOURS else 'error'}' data-claim='{i}' "
                 f"data-status='{e(c.get('status'))}'>{e(c.get('text'))}</span></div>")
    return body
