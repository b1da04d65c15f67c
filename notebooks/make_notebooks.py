"""Writes the exploration notebooks from the cells below (kept as code so diffs stay
readable). Run: python notebooks/make_notebooks.py. The notebooks are executed in CI by
tests/test_notebooks.py."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

EXPLORE = [
    new_markdown_cell(
        "# Exploring claims and verdicts on real IU reports\n\n"
        "Read one Indiana University report (shipped inside torchxrayvision), split it into\n"
        "claims, look at the entity graphs (RadGraph schema) and findings, then check an\n"
        "altered copy against the original and see which claims are flagged and why.\n"
        "Nothing here needs torch or a GPU."
    ),
    new_code_cell(
        "from reportgen.iu import load_iu_reports\n"
        "from checkers.read import read_report\n"
        "from checkers.pipeline import Pipeline\n"
        "from evals.inject import inject_report\n\n"
        "reports = load_iu_reports(require_text=True)\n"
        "# a report with a positive, lateralised finding makes a good first look\n"
        "study = next(r for r in reports if any('/right' in t or '/left' in t for t in r.mesh_major) and r.findings)\n"
        "print(study.id, study.mesh_major)\n"
        "text = study.report.text\n"
        "print(text)"
    ),
    new_markdown_cell("## Claims, entities and findings\nOffsets are exact: `text[claim.start:claim.end]` is the claim's source span."),
    new_code_cell(
        "rr = read_report(text)\n"
        "for cc in rr.claims:\n"
        "    c = cc.claim\n"
        "    assert text[c.start:c.end] in text\n"
        "    found = '; '.join(f'{f.presence} {f.observation}' + (f' ({f.laterality})' if f.laterality else '') for f in cc.findings)\n"
        "    print(f'[{c.section:10}] {c.text!r:60} -> {found or \"(no finding)\"}')"
    ),
    new_code_cell(
        "cc = next(c for c in rr.claims if c.graph.entities)\n"
        "for e in cc.graph.entities:\n"
        "    print(e.id, e.label, repr(e.text), '->', e.norm)\n"
        "for r in cc.graph.relations:\n"
        "    print(r.source, r.type, r.target)"
    ),
    new_markdown_cell("## Check an altered copy against the original\nThe injector records every changed span and its category."),
    new_code_cell(
        "inj = inject_report(study.id, text, seed=3, rate=0.6)\n"
        "for i in inj.injections:\n"
        "    print(i.category, ':', repr(i.original), '->', repr(i.text))\n"
        "result = Pipeline('rules').check(study.id, inj.perturbed, reference_text=text)\n"
        "for c in result.claims:\n"
        "    print(f'{c.status:12} {c.claim.text!r}')\n"
        "    for reason in c.verdicts[0].reasons[:1] if c.verdicts else []:\n"
        "        print('             ', reason)\n"
        "result.summary"
    ),
    new_markdown_cell("## Metrics over a small corpus\nEvery figure comes with a seeded bootstrap 95% CI."),
    new_code_cell(
        "from evals.suite import Suite\n"
        "sample = reports[:150]\n"
        "pairs = []\n"
        "for r in sample:\n"
        "    t = r.report.text\n"
        "    pairs.append((r.id, inject_report(r.id, t, seed=0, rate=0.3).perturbed, t))\n"
        "res = Suite('rules').evaluate(pairs, n_bootstrap=200, seed=0)\n"
        "for name, ci in sorted(res.corpus.items()):\n"
        "    print(f'{name:32} {ci}')"
    ),
    new_code_cell(
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "rates = [r.hallucination.rate for r in res.scored if r.hallucination and r.hallucination.rate is not None]\n"
        "fig, ax = plt.subplots(figsize=(5, 3))\n"
        "ax.hist(rates, bins=20)\n"
        "ax.set_xlabel('flagged claims / claims (per report)')\n"
        "ax.set_ylabel('reports')\n"
        "len(rates)"
    ),
]


def write(name: str, cells) -> Path:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = HERE / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    print(write("explore_checking.ipynb", EXPLORE))
