"""The HTML page of ``reportgen eval --html``: corpus figures with CIs and matplotlib plots
of the per-study metric distributions, PNGs embedded as base64 (one self-contained file)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Mapping, Sequence

DISTRIBUTIONS = (
    ("bleu4", "BLEU-4 (per report, smoothed)"), ("rouge_l", "ROUGE-L"),
    ("radgraph_simple", "RadGraph F1 simple"), ("radgraph_partial", "RadGraph F1 partial"), ("radgraph_complete", "RadGraph F1 complete"),
    ("green", "GREEN-style score"), ("radfact_logical_precision", "RadFact logical precision"),
    ("radfact_logical_recall", "RadFact logical recall"), ("hallucination_rate", "Hallucination rate"),
)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
    for key, label in (("only_in_pred", "ids only in the predictions"), ("only_in_ref", "ids only in the references")):
        if metrics.get(key):
            ids += f"<p><b>{label} ({len(metrics[key])}):</b> {html.escape(', '.join(metrics[key][:200]))}</p>"
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
