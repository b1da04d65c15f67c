"""The HTML report of ``reportgen run``: ``report/index.html`` and one page per study.

Static and self-contained: every page opens from disk, its CSS and JavaScript inline,
images embedded as data URIs, charts inline SVG; nothing is fetched. The index shows the
corpus metrics with CIs, charts (claim status distribution, CheXpert per-label F1, error
categories) and a sortable, filterable table of studies, each linking to its page. A study
page shows the images (DICOM rendered), the draft with each claim highlighted by status
(``<span class='claim' data-claim=INDEX data-status=STATUS data-version=draft>``) beside
the reference, each claim's reasons, basis and evidence, the region map when there is one,
the study's problems (draft failed, missing image, missing reference, ...) and, after
``--repair``, the redraft with its verdicts. Arrow keys (or j/k) move between studies,
``i`` goes to the index.

Report text is what the pages are for, so it appears in them; nothing here logs it.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from reportgen.evals.page import BASE_CSS, COLOURS, STATUSES, badge, e, fmt, highlight, metrics_table, svg_bars

STAND_IN_NOTE = (
    "These drafts were not written by a model. They are real Indiana University chest X-ray reports "
    "with errors injected on purpose by the open error-injection benchmark (reportgen.evals.inject), "
    "standing in for a model's drafts; the reference beside each is the original report. "
    "Run with --studies and --backend to check drafts a model really wrote."
)
CSS = BASE_CSS + (
    ".nav{display:flex;gap:1em;align-items:center;font-size:14px;margin-bottom:.5em}.nav .keys{color:#666;font-size:12px}"
    ".cols{display:grid;grid-template-columns:1fr 1fr;gap:1.2em}.text{border:1px solid #ddd;padding:8px 10px;line-height:1.6;"
    "font-size:14px;background:#fcfcfc;min-height:3em}.thumbs img{height:220px;margin:0 8px 8px 0;border:1px solid #ccc;cursor:zoom-in}"
    ".thumbs img.big{height:auto;max-width:100%;cursor:zoom-out}.charts{display:flex;flex-wrap:wrap;gap:1.5em}"
    "#studies th{cursor:pointer;user-select:none}#studies th.sorted-asc:after{content:' \\25B2'}#studies th.sorted-desc:after{content:' \\25BC'}"
    ".filters{margin:.5em 0;display:flex;gap:1em;align-items:center;font-size:13px}.problem{margin:2px 0}"
    "table.claims td:first-child{white-space:nowrap}.legend span{margin-right:.6em}tr.flag{background:#fff4f0}"
    "img.region{max-width:100%;border:1px solid #ccc}ul.reasons{margin:2px 0 2px 1em;padding-left:1em;font-size:12px}"
)
KEY_METRICS = ("hallucination_rate", "radfact_logical_f1", "radgraph_partial", "chexpert_micro_f1_14", "green", "bleu4", "rouge_l")
ERROR_JS = ("<script>window.onerror=function(m,s,l){document.documentElement.setAttribute('data-js-error',"
            "String(m)+' line '+l);};</script>")


def safe_name(sid: str, k: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(sid)).strip("._")[:80] or "study"
    return f"{k:04d}-{stem}.html"


def _head(title: str) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"{ERROR_JS}<title>{e(title)}</title><style>{CSS}</style></head><body>")


def image_uri(path: str, most: int = 768) -> tuple[str | None, str | None]:
    """(PNG data URI of the image, None) or (None, the problem): DICOM windowed and rendered."""
    try:
        from reportgen.images import load_image

        img = load_image(path)
        img.thumbnail((most, most))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), None
    except ImportError as ex:
        return None, f"E807 image {Path(path).name} cannot be shown: {ex.name} is not installed (pip install 'reportgen-cxr[draft]')"
    except Exception as ex:  # missing, corrupt, unsupported: the page says which and why
        return None, f"E807 image {Path(path).name} cannot be shown: {ex}"


def _hallucination(v: Mapping[str, Any]) -> float | None:
    s = v.get("summary") or {}
    n = s.get("claims", 0)
    return (s.get("contradicted", 0) + s.get("unsupported", 0)) / n if n and not v.get("error") else None


# -- the index ---------------------------------------------------------------------------------

INDEX_JS = r"""
(function(){
var table=document.getElementById('studies'); if(!table) return;
var body=table.tBodies[0], heads=table.tHead.rows[0].cells, q=document.getElementById('q'), show=document.getElementById('show');
function key(row,i){var c=row.cells[i], v=c.getAttribute('data-v'); if(v===null) return c.textContent.toLowerCase();
  return v===''?-Infinity:parseFloat(v);}
function sortBy(i,dir){var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=key(a,i),y=key(b,i); return (x<y?-1:x>y?1:0)*dir;});
  rows.forEach(function(r){body.appendChild(r);});
  for(var k=0;k<heads.length;k++){heads[k].classList.remove('sorted-asc','sorted-desc');}
  heads[i].classList.add(dir>0?'sorted-asc':'sorted-desc');}
for(var i=0;i<heads.length;i++){(function(i){heads[i].addEventListener('click',function(){
  sortBy(i, heads[i].classList.contains('sorted-desc')?1:-1);});})(i);}
function filter(){var t=q.value.toLowerCase(), m=show.value, n=0;
  Array.prototype.forEach.call(body.rows,function(r){
    var ok=(!t||r.textContent.toLowerCase().indexOf(t)>=0)&&(m==='all'||(m==='flagged'&&r.getAttribute('data-flagged')==='1')||
      (m==='problems'&&r.getAttribute('data-problems')!=='0'));
    r.style.display=ok?'':'none'; if(ok) n++;});
  document.getElementById('shown').textContent=n;}
q.addEventListener('input',filter); show.addEventListener('change',filter); filter();
if(location.search.indexOf('selftest')>=0){  /* used by the browser test */
  var col=Array.prototype.map.call(heads,function(h){return h.getAttribute('data-key');}).indexOf('contradicted');
  sortBy(col,-1); var first=body.rows.length?key(body.rows[0],col):0, okSort=true;
  Array.prototype.forEach.call(body.rows,function(r){if(key(r,col)>first) okSort=false;});
  show.value='flagged'; filter(); var flagged=document.getElementById('shown').textContent;
  show.value='all'; filter();
  document.documentElement.setAttribute('data-selftest',(okSort?'sorted':'unsorted')+':'+flagged);}
})();
document.addEventListener('keydown',function(ev){if(ev.target.tagName==='INPUT'||ev.target.tagName==='SELECT') return;
  if(ev.key==='/'){ev.preventDefault();document.getElementById('q').focus();}});
document.documentElement.setAttribute('data-js-ready','1');
"""


def render_index(verdicts: Sequence[Mapping[str, Any]], pages: Sequence[str], metrics: Mapping[str, Any],
                 run: Mapping[str, Any] | None, title: str, stand_in: bool) -> str:
    parts = [_head(title), f"<h1>{e(title)}</h1>"]
    if stand_in:
        parts.append(f"<p class='banner' id='stand-in'><b>Demo: no model wrote these drafts.</b> {e(STAND_IN_NOTE)}</p>")
    model = (run or {}).get("model") or {}
    cfg = (run or {}).get("config") or {}
    facts = [("studies", metrics.get("n_studies")), ("with a reference", metrics.get("n_with_reference")),
             ("scored", metrics.get("n_scored")), ("failed drafts", len(metrics.get("failed") or [])),
             ("studies with a flagged claim", metrics.get("studies_flagged"))]
    if model:
        facts += [("model", model.get("model")), ("adapter", model.get("adapter")), ("prompt", model.get("prompt_version"))]
    if cfg.get("backend"):
        facts.append(("backend", cfg.get("backend")))
    facts.append(("checkers", "graph" + (" + region" if cfg.get("region_model") else "")))
    parts.append("<p>" + "; ".join(f"{e(k)}: <b>{e(v)}</b>" for k, v in facts if v is not None) + "</p>")
    errs = (run or {}).get("errors") or {}
    if any(errs.values()):
        parts.append("<p class='note'>Errors per stage: " + ", ".join(f"{e(k)} {v}" for k, v in errs.items() if v)
                     + " (each study's page says what went wrong).</p>")
    # charts
    claims = metrics.get("claims") or {}
    charts = [svg_bars("Claims by status", [(s, claims.get(s, 0)) for s in STATUSES], colours=COLOURS)]
    per_label = ((metrics.get("chexpert") or {}).get("per_label_f1") or {})
    if per_label:
        charts.append(svg_bars("CheXpert per-label F1", [(k, float(v)) for k, v in per_label.items() if v is not None],
                               vmax=1.0, fmt_value="{:.2f}", colours={k: "#70ad47" for k in per_label}))
    green = metrics.get("green_totals") or {}
    from reportgen.evals.metrics.green import GREEN_CATEGORIES

    cats = [(k.replace("_", " "), green[k]) for k in GREEN_CATEGORIES if isinstance(green.get(k), (int, float))]
    if cats:
        charts.append(svg_bars("Error categories (GREEN-style, all reports)", cats, colours={k: "#ed7d31" for k, _ in cats}))
    corpus = metrics.get("corpus") or {}
    key = {k: corpus[k] for k in KEY_METRICS if k in corpus}
    if key:
        charts.insert(0, "<div><b style='font-size:13px'>Key metrics (95% CI)</b>" + metrics_table(key, digits=3) + "</div>")
    parts.append("<h2>Overview</h2><div class='charts'>" + "".join(charts) + "</div>")
    tail = []
    if corpus:
        boot = (metrics.get("settings") or {}).get("bootstrap")
        tail.append(f"<h2>Corpus metrics</h2><p class='meta'>Over the {e(metrics.get('n_scored'))} studies with a reference "
                    f"and a draft; 95% CIs from {e(boot)} bootstrap resamples of studies.</p>" + metrics_table(corpus))
    wf = metrics.get("corpus_with_failures") or {}
    if wf:
        tail.append("<h3>Counting failed drafts</h3><p class='meta'>Every study with a reference; a failed or empty draft "
                    "scores 0.</p>" + metrics_table(wf))
    rep = metrics.get("repair")
    if rep:
        b, a = rep.get("before", {}).get("claims", {}), rep.get("after", {}).get("claims", {})
        rows = "".join(f"<tr><td>{badge(s)}</td><td class='num'>{b.get(s, 0)}</td><td class='num'>{a.get(s, 0)}</td></tr>" for s in STATUSES)
        hb = (rep.get("before", {}).get("corpus") or {}).get("hallucination_rate", {}).get("estimate")
        ha = (rep.get("after", {}).get("corpus") or {}).get("hallucination_rate", {}).get("estimate")
        tail.append(f"<h2>Repair</h2><p>{e(rep.get('redrafted'))} flagged drafts redrafted once (keep: {e(rep.get('keep'))}); "
                     f"hallucination rate {fmt(hb)} before, {fmt(ha)} after.</p><table><tr><th>claims</th><th>before</th>"
                     f"<th>after</th></tr>{rows}</table>")
    if not corpus and not metrics.get("n_with_reference"):
        parts.append("<p class='note'>No references were given: claims were checked for self-consistency only and no "
                     "reference metrics were computed.</p>")
    # the studies table
    keys = [("id", "study"), ("claims", "claims"), ("contradicted", "contradicted"), ("unsupported", "unsupported"),
            ("uncertain", "uncertain"), ("hallucination", "hallucination rate"), ("problems", "errors")]
    if stand_in:
        keys.insert(1, ("injected", "injected errors"))
    head = "".join(f"<th data-key='{k}'>{e(label)}</th>" for k, label in keys)
    rows = []
    for v, page in zip(verdicts, pages):
        s = v.get("summary") or {}
        h = _hallucination(v)
        probs = v.get("problems") or []
        flagged = int(bool(s.get("contradicted", 0) + s.get("unsupported", 0)))
        cells = [f"<td><a href='studies/{e(page)}'>{e(v.get('id'))}</a></td>"]
        if stand_in:
            n_inj = len((v.get("draft") or {}).get("injections") or [])
            cells.append(f"<td class='num' data-v='{n_inj}'>{n_inj}</td>")
        for k in ("claims", "contradicted", "unsupported", "uncertain"):
            cells.append(f"<td class='num' data-v='{int(s.get(k, 0))}'>{int(s.get(k, 0))}</td>")
        cells.append(f"<td class='num' data-v='{'' if h is None else f'{h:.4f}'}'>{'-' if h is None else f'{h:.2f}'}</td>")
        ptxt = ", ".join(sorted({p.get('stage', '?') for p in probs}))
        cells.append(f"<td data-v='{len(probs)}' class='{'err' if probs else ''}'>{e(ptxt) or '-'}</td>")
        rows.append(f"<tr data-flagged='{flagged}' data-problems='{len(probs)}'{' class=flag' if flagged else ''}>{''.join(cells)}</tr>")
    parts.append(
        "<h2>Studies</h2><div class='filters'><label>filter <input id='q' type='search' placeholder='id or text (/)'></label>"
        "<label>show <select id='show'><option value='all'>all studies</option><option value='flagged'>with a flagged claim"
        "</option><option value='problems'>with problems</option></select></label><span><span id='shown'>"
        f"{len(rows)}</span> of {len(rows)} shown; click a column to sort</span></div>"
        f"<table id='studies'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    parts.extend(tail)
    if run:
        versions = run.get("versions") or {}
        parts.append("<details><summary>Run details</summary><p class='meta'>"
                     + "; ".join(f"{e(k)} {e(v)}" for k, v in versions.items() if v)
                     + "</p><p class='meta'>Stage times: " + ", ".join(
                         f"{e(k)} {fmt(st.get('seconds'), 1)}s" for k, st in (run.get('stages') or {}).items()
                         if isinstance(st, Mapping) and 'seconds' in st) + "</p></details>")
    parts.append(f"<script>{INDEX_JS}</script></body></html>")
    return "".join(parts)


# -- a study page ------------------------------------------------------------------------------

STUDY_JS = r"""
document.addEventListener('keydown',function(ev){
  if(ev.altKey||ev.ctrlKey||ev.metaKey) return;
  var t=ev.target.tagName; if(t==='INPUT'||t==='TEXTAREA'||t==='SELECT') return;
  var go=null;
  if(ev.key==='ArrowRight'||ev.key==='j') go=document.getElementById('next');
  else if(ev.key==='ArrowLeft'||ev.key==='k') go=document.getElementById('prev');
  else if(ev.key==='i'||ev.key==='u') go=document.getElementById('up');
  if(go&&go.getAttribute('href')){ev.preventDefault(); window.location.href=go.getAttribute('href');}
});
Array.prototype.forEach.call(document.querySelectorAll('.claim[data-claim]'),function(el){
  el.addEventListener('click',function(){var d=document.getElementById('detail-'+el.getAttribute('data-version')+'-'+el.getAttribute('data-claim'));
    Array.prototype.forEach.call(document.querySelectorAll('.sel'),function(x){x.classList.remove('sel');});
    el.classList.add('sel'); if(d){d.classList.add('sel'); d.scrollIntoView({block:'nearest'});}});
});
Array.prototype.forEach.call(document.querySelectorAll('.thumbs img'),function(img){
  img.addEventListener('click',function(){img.classList.toggle('big');});});
if(location.search.indexOf('selftest-keys')>=0){  /* used by the browser test: the arrow key moves to the next study */
  document.dispatchEvent(new KeyboardEvent('keydown',{key:'ArrowRight',bubbles:true}));}
document.documentElement.setAttribute('data-js-ready','1');
"""


def _claim_rows(claims: Sequence[Mapping[str, Any]], version: str) -> str:
    from reportgen.evals.check_html import verdicts_html

    rows = []
    for i, c in enumerate(claims):
        evidence = [str(x) for v in c.get("verdicts") or [] if isinstance(v, Mapping) for x in v.get("evidence") or []]
        extra = ""
        bases = [("", c.get("basis"))] + [(f"{v.get('checker')} ", v.get("basis")) for v in c.get("verdicts") or []
                                          if isinstance(v, Mapping)]
        for who, basis in bases:  # the claim's basis and each checker's (when the records carry one)
            if basis:
                extra += f"<div class='meta'>{e(who)}basis: {e(basis if isinstance(basis, str) else json.dumps(basis))}</div>"
        if evidence:
            extra += "<div class='meta'>evidence: " + "; ".join(e(x) for x in evidence[:6]) + "</div>"
        flag = " class='flag'" if c.get("status") in ("contradicted", "unsupported") else ""
        rows.append(f"<tr{flag} id='detail-{version}-{i}' data-claim-detail='{i}'><td>{i}</td><td>{badge(c.get('status'))}</td>"
                    f"<td>{e(c.get('section'))}</td><td>{e(c.get('text'))}{extra}{verdicts_html(c)}</td></tr>")
    if not rows:
        return "<p>No claims.</p>"
    return ("<table class='claims'><tr><th>#</th><th>status</th><th>section</th><th>claim: basis, evidence, each checker's "
            "verdict and reasons</th></tr>" + "".join(rows) + "</table>")


def _text_block(text: str | None, claims: Sequence[Mapping[str, Any]], version: str) -> str:
    if not isinstance(text, str) or not text.strip():
        return "<div class='text err'>(no draft)</div>"
    body = highlight(text, claims).replace("data-claim=", f"data-version='{version}' data-claim=")
    return f"<div class='text' data-version='{version}'>{body}</div>"


def _region_block(v: Mapping[str, Any], out: Path) -> str:
    png = v.get("region_png")
    if not png:
        return ""
    p = Path(png) if Path(png).is_absolute() else out.parent / png
    try:
        data = p.read_bytes()
    except OSError:
        return f"<p class='note'>E807 region map {e(png)} could not be read.</p>"
    metas = [m for c in v.get("claims") or [] for vd in c.get("verdicts") or [] if vd.get("checker") == "region"
             for m in vd.get("evidence_meta") or [] if isinstance(m, Mapping)]
    note = ""
    if any(m.get("calibrated") is False for m in metas) or not metas:
        note = ("<p class='note'>The region model's thresholds are not calibrated (or its weights are random, as in tests): "
                "read the map as a picture of the similarity, not as evidence.</p>")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f"<h2>Region map</h2>{note}<p class='meta'>Each flagged claim's similarity map over the image; the colour bar "
            f"gives the scale, the claimed zone outlined (solid), the best-matching zone dashed, zone names written on the image.</p>"
            f"<img class='region' alt='region map of {e(v.get('id'))}' src='{uri}'>")


def render_study(v: Mapping[str, Any], reference: str | None, draft_text: str | None, *, prev: str | None, next_: str | None,
                 position: str, title: str, stand_in: bool, repaired: Mapping[str, Any] | None, out: Path) -> tuple[str, int]:
    """The page of one study and its count of problems shown."""
    sid = v.get("id")
    s = v.get("summary") or {}
    problems = list(v.get("problems") or [])
    parts = [_head(f"{sid}: {title}")]
    nav = (f"<a id='prev' href='{e(prev) if prev else ''}'{'' if prev else ' aria-disabled=true'}>&larr; previous</a>"
           f"<a id='up' href='../index.html'>index</a>"
           f"<a id='next' href='{e(next_) if next_ else ''}'{'' if next_ else ' aria-disabled=true'}>next &rarr;</a>"
           f"<span>{e(position)}</span><span class='keys'>keys: &larr;/&rarr; or k/j move, i index, click a claim</span>")
    parts.append(f"<div class='nav'>{nav}</div><h1>{e(sid)}</h1>")
    if stand_in:
        parts.append(f"<p class='banner'><b>Demo: no model wrote this draft.</b> {e(STAND_IN_NOTE)}</p>")
    d = v.get("draft") or {}
    if d.get("model"):
        parts.append(f"<p class='meta'>drafted by {e(d.get('model'))}" + (f" + adapter {e(d['adapter'])}" if d.get("adapter") else "")
                     + f", prompt {e(d.get('prompt_version'))}</p>")
    counts = ", ".join(f"{s.get(k)} {k}" for k in STATUSES if s.get(k))
    parts.append(f"<p>{e(s.get('claims', 0))} claims{(' (' + e(counts) + ')') if counts else ''}; reference: "
                 f"{e(s.get('reference', 'not given'))}; checkers: {e(', '.join(s.get('checkers') or []) or '-')}</p>")
    parts.append("<p class='legend'>" + "".join(f"<span class='claim st-bg-{k}'>{k}</span>" for k in STATUSES) + "</p>")
    # images
    imgs = v.get("images") or []
    thumbs = []
    for path in imgs:
        uri, problem = image_uri(path)
        if uri:
            thumbs.append(f"<img alt='{e(Path(path).name)}' title='{e(Path(path).name)} (click to enlarge)' src='{uri}'>")
        else:
            if not any(Path(path).name in p.get("error", "") for p in problems):
                problems.append({"stage": "image", "error": problem})
    if problems:
        parts.append("<div class='note' id='problems'><b>Problems with this study</b>" + "".join(
            f"<div class='problem' data-stage='{e(p.get('stage'))}'><b>{e(p.get('stage'))}</b>: <span class='err'>{e(p.get('error'))}</span></div>"
            for p in problems) + "</div>")
    if thumbs:
        parts.append("<h2>Images</h2><div class='thumbs'>" + "".join(thumbs) + "</div>")
    elif not imgs:
        parts.append("<p class='meta'>No images with this study.</p>")
    context = "; ".join(f"{k}: {v[k]}" for k in ("indication", "comparison") if v.get(k))
    if context:
        parts.append(f"<p class='meta' style='font-size:13px'>{e(context)}</p>")
    # draft and reference
    claims = v.get("claims") or []
    ref = (f"<div class='text'>{e(reference).replace(chr(10), '<br>')}</div>" if reference else
           "<div class='text meta'>(no reference report)</div>")
    parts.append("<div class='cols'><div><h2>Draft</h2>" + _text_block(draft_text, claims, "draft")
                 + "</div><div><h2>Reference</h2>" + ref + "</div></div>")
    inj = d.get("injections") or []
    if inj:
        parts.append("<h3>Errors injected into this stand-in draft</h3><ul>" + "".join(
            f"<li><b>{e(i.get('category'))}</b>: {e(i.get('original')) or '(nothing)'} &rarr; {e(i.get('text')) or '(removed)'}</li>"
            for i in inj) + "</ul>")
    parts.append("<h2>Claims</h2>" + _claim_rows(claims, "draft"))
    parts.append(_region_block(v, out))
    if repaired:
        rv = repaired.get("verdicts") or {}
        parts.append(f"<h2>Repaired draft</h2><p>Redrafted once with the flagged sentences and their evidence in the prompt "
                     f"({e(repaired.get('prompt_version'))}): flagged claims {e(repaired.get('flagged_before'))} before, "
                     f"{e(repaired.get('flagged_after'))} after; kept: {e(repaired.get('kept'))}.</p>"
                     + _text_block(repaired.get("report"), rv.get("claims") or [], "repair")
                     + _claim_rows(rv.get("claims") or [], "repair"))
    parts.append(f"<script>{STUDY_JS}</script></body></html>")
    return "".join(parts), len(problems)


def write_report(folder: Path, verdicts: Sequence[Mapping[str, Any]], refs: Mapping[str, str], metrics: Mapping[str, Any], *,
                 run: Mapping[str, Any] | None = None, repaired: Mapping[str, Any] | None = None, title: str | None = None,
                 stand_in: bool = False, drafts: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """Write ``folder/index.html`` and ``folder/studies/*.html``; (pages written, problems shown)."""
    from reportgen.jsonl import atomic_writer

    title = title or ("reportgen run: demo on stand-in drafts" if stand_in else "reportgen run")
    (folder / "studies").mkdir(parents=True, exist_ok=True)
    pages = [safe_name(v.get("id"), k) for k, v in enumerate(verdicts)]
    n_problems = 0
    for k, v in enumerate(verdicts):
        sid = v.get("id")
        text = ((drafts or {}).get(sid) or {}).get("report")
        page, n = render_study(v, refs.get(sid), text, prev=pages[k - 1] if k else None,
                               next_=pages[k + 1] if k + 1 < len(pages) else None, position=f"{k + 1} of {len(pages)}",
                               title=title, stand_in=stand_in, repaired=(repaired or {}).get(sid), out=folder)
        n_problems += n
        with atomic_writer(folder / "studies" / pages[k]) as fh:
            fh.write(page)
    with atomic_writer(folder / "index.html") as fh:
        fh.write(render_index(verdicts, pages, metrics, run, title, stand_in))
    return len(pages), n_problems
