"""The HTML page of ``reportgen eval --html``: corpus figures with CIs and matplotlib plots
of the per-study metric distributions, PNGs embedded as base64 (one self-contained file)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Mapping, Sequence

DISTRIBUTIONS = (
    ("bleu4", "BLEU-4 (per report, smoothed)"), ("rouge_l", "ROUGE-L"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"),
    ("radgraph_simple", "RadGraph F1 simple"), ("radgraph_partial", "RadGraph F1 partial"), ("radgraph_complete", "RadGraph F1 complete"),
    ("green", "GREEN-style score"), ("radfact_logical_precision", "RadFact logical precision"),
    ("radfact_logical_recall", "RadFact logical recall"), ("hallucination_rate", "Hallucination rate"),
    ("temporal_f1", "Temporal F1"), ("bertscore_f1", "BERTScore F1"), ("ratescore", "RaTEScore"), ("srr_bert", "SRR-BERT"),
)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else html.escape(str(x))


def render_html(metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], title: str = "reportgen eval") -> str:
    """A self-contained page: the corpus table, histograms of per-study metrics, CheXpert
    per-label F1 and GREEN error counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error")]
    figs: list[tuple[str, str]] = []
    present = [(k, t) for k, t in DISTRIBUTIONS if any(r.get(k) is not None for r in ok)]
    if present:
        cols = 3
        nrows = (len(present) + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
        for ax, (key, label) in zip(axes.flat, present):
            vals = [r[key] for r in ok if r.get(key) is not None]
            ax.hist(vals, bins=20, range=(0, 1), color="#4472c4", edgecolor="white")
            ax.set_title(f"{label} (n={len(vals)})", fontsize=9)
            ax.tick_params(labelsize=8)
        for ax in list(axes.flat)[len(present):]:
            ax.axis("off")
        fig.tight_layout()
        figs.append(("Per-study distributions", _png(fig)))
        plt.close(fig)
    per_label = metrics.get("chexpert", {}).get("per_label_f1") or {}
    if per_label:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        names = list(per_label)
        ax.barh(names, [per_label[n] for n in names], color="#70ad47")
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel(f"F1 ({metrics.get('chexpert', {}).get('policy', '')})", fontsize=9)
        ax.tick_params(labelsize=8)
        fig.tight_layout()
        figs.append(("CheXpert per-label F1", _png(fig)))
        plt.close(fig)
    green = metrics.get("green_totals") or {}
    cats = [c for c in ("false_finding", "missed_finding", "wrong_location", "wrong_severity", "false_comparison", "missed_comparison") if c in green]
    if cats:
        fig, ax = plt.subplots(figsize=(8, 2.6))
        ax.bar(cats, [green[c] for c in cats], color="#ed7d31")
        ax.set_ylabel("errors (all reports)", fontsize=9)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        figs.append(("GREEN-style error counts", _png(fig)))
        plt.close(fig)

    from reportgen.evals.page import metrics_table

    table = metrics_table(metrics.get("corpus", {}))
    ids = ""
    for key, label in (("only_in_pred", "ids only in the predictions"), ("only_in_ref", "ids only in the references (scored as failures)")):
        if metrics.get(key):
            ids += f"<p><b>{label} ({len(metrics[key])}):</b> {html.escape(', '.join(metrics[key][:200]))}</p>"
    failed = metrics.get("failed_predictions") or []
    if failed:
        ids += f"<p><b>failed predictions, scored as empty reports ({len(failed)}):</b></p><ul>" + "".join(
            f"<li>{html.escape(f['id'])}: {html.escape(str(f['reason']))}</li>" for f in failed[:200]) + "</ul>"
    for name, mf in (metrics.get("metric_failures") or {}).items():
        ids += (f"<p><b>{html.escape(name)} could not be computed for {mf['n']} studies ({mf['share']:.1%}):</b> "
                f"{html.escape(', '.join(mf['ids'][:200]))}</p>")
    for sk in metrics.get("skipped_metrics") or []:
        ids += f"<p><b>{html.escape(sk['metric'])} skipped:</b> {html.escape(sk['reason'])} Fix: {html.escape(sk['fix'])}</p>"
    errs = metrics.get("errors") or []
    if errs:
        ids += f"<p><b>unscored pairs ({len(errs)}):</b></p><ul>" + "".join(
            f"<li>{html.escape(e['id'])}: {html.escape(str(e['error']))}</li>" for e in errs[:200]) + "</ul>"
    images = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'/>" for t, b in figs)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{metrics.get('n_scored', 0)} pairs scored of {metrics.get('n_pairs', 0)}; "
        f"bootstrap {metrics.get('settings', {}).get('bootstrap', 0)} resamples, seed {metrics.get('settings', {}).get('seed', 0)}.</p>"
        + table
        + ids + images + "</body></html>"
    )


def render_compare_html(result: Mapping[str, Any], title: str = "reportgen compare") -> str:
    """A self-contained page for ``reportgen compare``: per-system figures with CIs, then the
    paired tests (difference, CI, raw and adjusted p-values) per metric and pair."""
    systems = list(result.get("systems", {}))
    metrics = list(next(iter(result["systems"].values()))["corpus"]) if systems else []
    head = "".join(f"<th>{html.escape(s)}</th>" for s in systems)
    rows = []
    for m in metrics:
        cells = []
        for s in systems:
            ci = result["systems"][s]["corpus"].get(m) or {}
            band = f" [{_fmt(ci.get('low'))}, {_fmt(ci.get('high'))}]" if ci.get("low") is not None else ""
            cells.append(f"<td>{_fmt(ci.get('estimate'))}{band}</td>")
        rows.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
    tests = []
    for c in result.get("comparisons", []):
        mark = " class='sig'" if c.get("significant") else ""
        tests.append(f"<tr{mark}><td>{html.escape(c['metric'])}</td><td>{html.escape(c['a'])} vs {html.escape(c['b'])}</td>"
                     f"<td>{_fmt(c.get('difference'))}</td><td>[{_fmt(c.get('ci_low'))}, {_fmt(c.get('ci_high'))}]</td>"
                     f"<td>{_fmt(c.get('p_bootstrap'))}</td><td>{_fmt(c.get('p_bootstrap_adjusted'))}</td>"
                     f"<td>{_fmt(c.get('p_permutation'))}</td><td>{_fmt(c.get('p_permutation_adjusted'))}</td></tr>")
    st = result.get("settings", {})
    fails = "".join(f"<li>{html.escape(s)}: {v.get('n_failed', 0)} failed predictions (scored as empty reports)</li>"
                    for s, v in result.get("systems", {}).items())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 8px;text-align:right}td:first-child{text-align:left}tr.sig{background:#e8f4e8}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{result.get('n_studies')} studies; {st.get('resamples')} bootstrap resamples, "
            f"{st.get('permutations')} permutations, seed {st.get('seed')}; correction: {html.escape(str(st.get('correction')))} "
            f"over {html.escape(str(st.get('correction_family')))}.</p><ul>{fails}</ul>"
            f"<h2>Figures (95% CI)</h2><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"
            "<h2>Paired tests</h2><table><tr><th>metric</th><th>pair</th><th>A-B</th><th>95% CI</th><th>p bootstrap</th>"
            f"<th>adjusted</th><th>p permutation</th><th>adjusted</th></tr>{''.join(tests)}</table></body></html>\n")
