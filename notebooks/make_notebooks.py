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
        "from reportgen.checkers.read import read_report\n"
        "from reportgen.checkers.pipeline import Pipeline\n"
        "from reportgen.evals.inject import inject_report\n\n"
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
        "from reportgen.evals.suite import Suite\n"
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
    new_markdown_cell(
        "## Region evidence: the mechanics, with a RANDOM model\n\n"
        "**The model below has random weights** (a tiny open_clip built from a JSON config in this\n"
        "notebook; nothing is downloaded), **so its verdicts are meaningless.** The point is the\n"
        "mechanics: the image is encoded once, every claim gets a similarity map, the claimed\n"
        "anatomical zone comes from the text (on a PA film the patient's left is the image right),\n"
        "and the verdict comes with its numbers (CNR of the claimed zone, best zone, mirrored side).\n"
        "For real evidence use a trained checkpoint (`local-dir:` from `reportgen train-clip`) or\n"
        "BiomedCLIP, see docs/region.md."
    ),
    new_code_cell(
        "import json, tempfile\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "import torch\n"
        "import reportgen\n"
        "from reportgen.checkers.region import RegionChecker\n\n"
        "# a 1-layer ViT (64x64 input, 8x8 patches -> an 8x8 map grid) and a 1-layer text tower\n"
        "config = {\n"
        "    'embed_dim': 32,\n"
        "    'vision_cfg': {'image_size': 64, 'layers': 1, 'width': 32, 'head_width': 16, 'patch_size': 8, 'pool_type': 'avg'},\n"
        "    'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1},\n"
        "}\n"
        "work = Path(tempfile.mkdtemp(prefix='reportgen-notebook-'))\n"
        "config_path = work / 'notebook-tiny-clip.json'\n"
        "config_path.write_text(json.dumps(config))\n"
        "torch.manual_seed(0)  # random weights, the same ones on every run\n"
        "rc = RegionChecker(str(config_path))  # a model-config JSON: random weights (a warning says so)\n\n"
        "# a real radiograph (NIH ChestX-ray14) from the checkout's tests/data, else a synthetic one\n"
        "image = Path(reportgen.__file__).resolve().parents[1] / 'tests' / 'data' / 'cxr' / '00000001_000.png'\n"
        "if not image.is_file():\n"
        "    from PIL import Image\n"
        "    y, x = np.mgrid[0:256, 0:256] / 256\n"
        "    lungs = np.exp(-((x - 0.3) ** 2 + (y - 0.5) ** 2) / 0.03) + np.exp(-((x - 0.7) ** 2 + (y - 0.5) ** 2) / 0.03)\n"
        "    image = work / 'synthetic.png'\n"
        "    Image.fromarray((200 - 120 * lungs).clip(0, 255).astype(np.uint8)).save(image)\n"
        "print('image:', image)"
    ),
    new_markdown_cell(
        "The region checker joins the graph checker in the pipeline; each claim keeps both verdicts.\n"
        "Negative claims get a region abstention (no absence threshold calibrated): the graph checker decides them."
    ),
    new_code_cell(
        "from reportgen.checkers.pipeline import Pipeline\n"
        "from reportgen.types import Study\n\n"
        "report = ('FINDINGS: Right upper lobe opacity. Small left pleural effusion. No pneumothorax.\\n\\n'\n"
        "          'IMPRESSION: Cardiomegaly.')\n"
        "study = Study('nb-1', images=(str(image),), views=('PA',))\n"
        "result = Pipeline(region=rc).check(study.id, report, study=study)\n"
        "print(f\"{'claim':36} {'combined':13} {'region':13} {'claimed zone':32} {'CNR':>6} best zone\")\n"
        "for c in result.claims:\n"
        "    for v in c.verdicts:\n"
        "        if v.checker == 'region':\n"
        "            m = v.evidence[0].meta\n"
        "            zone = ', '.join(m.get('zone', ()))\n"
        "            print(f\"{c.claim.text:36} {c.status:13} {v.status:13} {zone[:32]:32} {m['cnr']:6.2f} {m.get('best_zone')}\")"
    ),
    new_markdown_cell(
        "The study's PNG: each region verdict's similarity map over the radiograph, the claimed zone\n"
        "outlined white, the best-matching zone dashed yellow, \"R\" at the patient's right. Here every\n"
        "region verdict is drawn (`flagged_only=False`); `reportgen check --region-png-dir` draws the\n"
        "flagged claims only, and `reportgen check --html` inlines that PNG in its page."
    ),
    new_code_cell(
        "from IPython.display import Image as PNG, display\n"
        "region_verdicts = [v for c in result.claims for v in c.verdicts if v.checker == 'region']\n"
        "png = rc.render_study(study.images, study.views, region_verdicts, flagged_only=False, title=study.id)\n"
        "display(PNG(data=png))"
    ),
    new_code_cell(
        "# the HTML report of reportgen check, from the same record (docs/checking.md, \"HTML report\")\n"
        "from reportgen.evals.check_html import render_check_html\n"
        "record = result.to_record()\n"
        "(work / 'nb-1.png').write_bytes(png)\n"
        "record['region_png'] = str(work / 'nb-1.png')\n"
        "page = render_check_html([record], title='notebook study')\n"
        "(work / 'check.html').write_text(page, encoding='utf-8')\n"
        "print(work / 'check.html', f'{len(page):,} characters,', page.count('data:image/png;base64'), 'picture inlined')"
    ),
]


# notebooks/explore.ipynb: the main job's results, one study at a time, with live re-checking.
EXPLORE_RUN = [
    new_markdown_cell(
        "# Explore a run: studies, drafts, claims, region maps\n\n"
        "Pick a study, see its images and its draft with every claim coloured by its verdict beside the\n"
        "reference, edit the draft and re-check it live, compare two drafts of one study, and look at a\n"
        "region map. Runs offline on the IU reports (inside torchxrayvision).\n\n"
        "**The drafts here are not model output**: as in `make demo`, real IU reports with errors injected\n"
        "by the open benchmark (`reportgen.evals.inject`) stand in for a model's drafts, and the original\n"
        "reports are the references. Point `RunConfig(studies=..., backend=...)` at a real model to\n"
        "explore real drafts."
    ),
    new_code_cell(
        "import json, tempfile\n"
        "from pathlib import Path\n"
        "from reportgen.run import RunConfig, run\n\n"
        "work = Path(tempfile.mkdtemp(prefix='reportgen-explore-'))\n"
        "result = run(RunConfig(out=str(work / 'run'), demo_n=8, bootstrap=200), say=print)\n"
        "out = result.out\n"
        "def lines(p):\n"
        "    return [json.loads(x) for x in Path(p).read_text().splitlines() if x.strip()]\n"
        "drafts = {d['id']: d for d in lines(out / 'drafts.jsonl')}\n"
        "verdicts = {v['id']: v for v in lines(out / 'verdicts.jsonl')}\n"
        "refs = {r['id']: r['report'] for r in lines(out / 'inputs' / 'reference.jsonl')}\n"
        "metrics = json.loads((out / 'metrics.json').read_text())\n"
        "print('HTML report:', result.index)\n"
        "print('hallucination rate', metrics['corpus']['hallucination_rate'])"
    ),
    new_markdown_cell("## Pick a study\nThe draft's claims are coloured by status (hover for it); the reference is beside it."),
    new_code_cell(
        "import ipywidgets as widgets\n"
        "from IPython.display import HTML, display\n"
        "from reportgen.checkers.pipeline import Pipeline\n"
        "from reportgen.evals.page import BASE_CSS, STATUSES, e, highlight\n"
        "from reportgen.evals.run_html import image_uri\n\n"
        "pipeline = Pipeline('rules')\n"
        "STYLE = f'<style>{BASE_CSS} .cols{{display:grid;grid-template-columns:1fr 1fr;gap:1em}} .text{{border:1px solid #ddd;padding:6px}}</style>'\n\n"
        "def claims_html(text, record):\n"
        "    counts = ', '.join(f\"{record['summary'][s]} {s}\" for s in STATUSES if record['summary'].get(s))\n"
        "    return f\"<div class='text'>{highlight(text, record['claims'])}</div><p class='meta'>{e(counts)}</p>\"\n\n"
        "def study_html(sid, text=None):\n"
        "    text = drafts[sid]['report'] if text is None else text\n"
        "    record = verdicts[sid] if text == drafts[sid]['report'] else pipeline.check(sid, text, refs.get(sid)).to_record()\n"
        "    images = ''.join(f\"<img style='height:160px' src='{image_uri(p)[0]}'>\" for p in verdicts[sid].get('images', []) if image_uri(p)[0])\n"
        "    return (STYLE + (images or \"<p class='meta'>No images with this study (IU reports ship without films).</p>\")\n"
        "            + f\"<div class='cols'><div><b>draft</b>{claims_html(text, record)}</div>\"\n"
        "            + f\"<div><b>reference</b><div class='text'>{e(refs.get(sid, ''))}</div></div></div>\"), record\n\n"
        "ids = sorted(verdicts, key=lambda i: -(verdicts[i]['summary']['contradicted'] + verdicts[i]['summary']['unsupported']))\n"
        "pick = widgets.Dropdown(options=ids, description='study')\n"
        "view = widgets.HTML()\n"
        "def on_pick(change=None):\n"
        "    view.value, _ = study_html(pick.value)\n"
        "pick.observe(on_pick, 'value')\n"
        "on_pick()\n"
        "display(widgets.VBox([pick, view]))"
    ),
    new_markdown_cell(
        "## Edit the draft and re-check it live\n"
        "Every edit of the text box re-checks the draft against the reference (the rules checker takes\n"
        "milliseconds). Below, the first injected error of the study is undone in code, as a person would\n"
        "in the box, and the verdicts change."
    ),
    new_code_cell(
        "editor = widgets.Textarea(value=drafts[pick.value]['report'], layout=widgets.Layout(width='100%', height='110px'))\n"
        "live = widgets.HTML()\n"
        "def on_edit(change=None):\n"
        "    live.value, on_edit.record = study_html(pick.value, editor.value)\n"
        "editor.observe(on_edit, 'value')\n"
        "on_edit()\n"
        "display(widgets.VBox([editor, live]))\n"
        "before = on_edit.record['summary']\n"
        "inj = next((i for i in drafts[pick.value]['injections'] if i['text']), None)\n"
        "if inj:\n"
        "    editor.value = editor.value.replace(inj['text'], inj['original'], 1)  # fires on_edit: re-checked\n"
        "after = on_edit.record['summary']\n"
        "print('flagged before:', before['contradicted'] + before['unsupported'], ' after the fix:', after['contradicted'] + after['unsupported'])"
    ),
    new_markdown_cell("## Compare two drafts of one study\nThe stand-in draft against the original report used as a second draft, both checked against the reference."),
    new_code_cell(
        "sid = pick.value\n"
        "a_html, a = study_html(sid)\n"
        "b_text = refs[sid]\n"
        "b = pipeline.check(sid, b_text, refs[sid]).to_record()\n"
        "rows = ''.join(f\"<tr><td>{s}</td><td class='num'>{a['summary'][s]}</td><td class='num'>{b['summary'][s]}</td></tr>\" for s in STATUSES)\n"
        "display(HTML(STYLE + f\"<table><tr><th>claims</th><th>draft A (stand-in)</th><th>draft B (original)</th></tr>{rows}</table>\"\n"
        "             + f\"<div class='cols'><div><b>A</b>{claims_html(drafts[sid]['report'], a)}</div><div><b>B</b>{claims_html(b_text, b)}</div></div>\"))\n"
        "assert b['summary']['contradicted'] == 0"
    ),
    new_markdown_cell(
        "## Region maps (mechanics only: a RANDOM model)\n\n"
        "**The region model below has random weights** (a tiny open_clip built from a JSON config here;\n"
        "nothing is downloaded), **so its maps and verdicts mean nothing**: they show how a claim's\n"
        "similarity map, its claimed zone and the colour scale are drawn. Use a trained checkpoint\n"
        "(`reportgen run --region-model local-dir:PATH`) for evidence."
    ),
    new_code_cell(
        "import os\n"
        "import numpy as np\n"
        "import torch\n"
        "import reportgen\n"
        "from reportgen.checkers.region import RegionChecker\n"
        "from reportgen.types import Study\n"
        "from IPython.display import Image as PNG\n\n"
        "config = {'embed_dim': 32,\n"
        "          'vision_cfg': {'image_size': 64, 'layers': 1, 'width': 32, 'head_width': 16, 'patch_size': 8, 'pool_type': 'avg'},\n"
        "          'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}\n"
        "(work / 'tiny-clip.json').write_text(json.dumps(config))\n"
        "torch.manual_seed(0)\n"
        "rc = RegionChecker(str(work / 'tiny-clip.json'))\n"
        "shared = Path(os.environ.get('REPORTGEN_SHARED_DATA', Path(reportgen.__file__).resolve().parents[2] / 'shared' / 'data'))\n"
        "image = shared / 'cxr' / '00000001_000.png'\n"
        "if not image.is_file():  # a synthetic film when ../shared/data is absent\n"
        "    from PIL import Image\n"
        "    y, x = np.mgrid[0:256, 0:256] / 256\n"
        "    lungs = np.exp(-((x - 0.3) ** 2 + (y - 0.5) ** 2) / 0.03) + np.exp(-((x - 0.7) ** 2 + (y - 0.5) ** 2) / 0.03)\n"
        "    image = work / 'synthetic.png'\n"
        "    Image.fromarray((200 - 120 * lungs).clip(0, 255).astype(np.uint8)).save(image)\n"
        "study = Study('nb-region', images=(str(image),), views=('PA',))\n"
        "res = Pipeline(region=rc).check(study.id, 'Right upper lobe opacity. Small left pleural effusion.', study=study)\n"
        "region = [v for c in res.claims for v in c.verdicts if v.checker == 'region']\n"
        "display(PNG(data=rc.render_study(study.images, study.views, region, flagged_only=False, title='random weights: mechanics only')))"
    ),
]


def write(name: str, cells) -> Path:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = HERE / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    print(write("explore_checking.ipynb", EXPLORE))
    print(write("explore.ipynb", EXPLORE_RUN))
