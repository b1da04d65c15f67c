"""RadGraph F1: identical values to the radgraph package's own reward function, and the
annotation format round trip.

The parity tests load ``radgraph/rewards.py`` by file path from ``$RADGRAPH_REWARDS_PY``,
the installed radgraph package, or from a radgraph wheel/sdist under ``.cache/radgraph/`` (set up with
``pip download radgraph==0.1.18 --no-deps -d .cache/radgraph``); they skip without it.
"""

from __future__ import annotations

import importlib.util
import os
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from reportgen.evals.metrics.radgraph_f1 import (
    RadGraphScore, from_radgraph, radgraph_f1, reward, to_radgraph, tokenize,
)
from reportgen.errors import ReportgenError
from reportgen.types import Entity, EntityGraph, Relation

REPO = Path(__file__).resolve().parents[1]


def _find_rewards_py(tmp: Path) -> Path | None:
    env = os.environ.get("RADGRAPH_REWARDS_PY")
    if env:
        return Path(env) if Path(env).is_file() else None
    spec = importlib.util.find_spec("radgraph")  # the installed package (radgraph extra)
    if spec is not None and spec.origin and (Path(spec.origin).parent / "rewards.py").is_file():
        return Path(spec.origin).parent / "rewards.py"
    cache = REPO / ".cache" / "radgraph"
    for archive in sorted(cache.glob("radgraph-*")) if cache.is_dir() else ():
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                if "radgraph/rewards.py" in zf.namelist():
                    out = tmp / "rewards.py"
                    out.write_bytes(zf.read("radgraph/rewards.py"))
                    return out
        elif archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tf:
                for m in tf.getmembers():
                    if m.name.endswith("/radgraph/rewards.py"):
                        out = tmp / "rewards.py"
                        out.write_bytes(tf.extractfile(m).read())
                        return out
        elif archive.is_dir() and (archive / "radgraph" / "rewards.py").is_file():
            return archive / "radgraph" / "rewards.py"
    return None


@pytest.fixture(scope="module")
def rg_rewards(tmp_path_factory):
    path = _find_rewards_py(tmp_path_factory.mktemp("radgraph"))
    if path is None:
        pytest.skip("radgraph rewards.py not found: set RADGRAPH_REWARDS_PY or "
                    "pip download radgraph==0.1.18 --no-deps -d .cache/radgraph")
    spec = importlib.util.spec_from_file_location("radgraph_rewards_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORDS = ["effusion", "Effusion", "pleural", "left", "Left", "lung", "opacity", "base", "heart",
         "enlarged", "no", "pneumothorax", "lobe", "lower", "right", "mild", "edema", "EDEMA"]
LABELS = ["OBS-DP", "OBS-U", "OBS-DA", "ANAT-DP"]
RELS = ["located_at", "modify", "suggestive_of"]


def _random_annotation(rng: random.Random) -> dict:
    n = rng.choice([0, 1, 2, 3, 5, 8, 12])
    ents = {}
    for i in range(n):
        k = rng.choice([1, 1, 2, 3])
        start = rng.randrange(0, 40)
        ents[str(i + 1)] = {
            "tokens": " ".join(rng.choice(WORDS) for _ in range(k)),
            "label": rng.choice(LABELS), "start_ix": start, "end_ix": start + k - 1, "relations": [],
        }
    for eid, ent in ents.items():
        for _ in range(rng.choice([0, 0, 1, 2])):
            ent["relations"].append([rng.choice(RELS), rng.choice(list(ents))])
    return {"entities": ents}


def test_parity_on_random_annotations(rg_rewards):
    rng = random.Random(1234)
    pairs = [(_random_annotation(rng), _random_annotation(rng)) for _ in range(400)]
    # Near-copies too: a reference and a lightly edited copy share most keys.
    for _ in range(100):
        ref = _random_annotation(rng)
        hyp = {"entities": {k: dict(v, relations=list(v["relations"])) for k, v in ref["entities"].items()}}
        for ent in hyp["entities"].values():
            if rng.random() < 0.3:
                ent["tokens"] = ent["tokens"].upper()
            if rng.random() < 0.2:
                ent["label"] = rng.choice(LABELS)
        pairs.append((hyp, ref))
    nonzero = 0
    for hyp, ref in pairs:
        ours = reward(hyp, ref)
        for level in ("simple", "partial", "complete", "all"):
            assert ours.level(level) == rg_rewards.compute_reward(hyp, ref, level)
        nonzero += ours.complete > 0
    assert nonzero > 50  # the comparison covered real overlaps, not only zeros


def test_parity_on_exported_graphs(rg_rewards):
    text_h = "Mild enlargement of the cardiac silhouette. Small left pleural effusion. No pneumothorax."
    text_r = "The cardiac silhouette is enlarged. Small LEFT pleural effusion and left basilar atelectasis."
    gh = _graph(text_h, [("enlargement", "OBS-DP"), ("Mild", "OBS-DP"), ("cardiac silhouette", "ANAT-DP"),
                         ("left", "ANAT-DP"), ("pleural effusion", "OBS-DP"), ("pneumothorax", "OBS-DA")],
                [("modify", 1, 0), ("located_at", 0, 2), ("located_at", 4, 3)])
    gr = _graph(text_r, [("cardiac silhouette", "ANAT-DP"), ("enlarged", "OBS-DP"), ("LEFT", "ANAT-DP"),
                         ("pleural effusion", "OBS-DP"), ("basilar", "ANAT-DP"), ("atelectasis", "OBS-DP")],
                [("located_at", 1, 0), ("located_at", 3, 2), ("located_at", 5, 4)])
    for style in ("radgraph", "xl"):
        h, r = to_radgraph(gh, text_h, label_style=style), to_radgraph(gr, text_r, label_style=style)
        assert reward(h, r).level("all") == rg_rewards.compute_reward(h, r, "all")
    assert reward(h, r).simple > 0 and reward(h, r).complete > 0


def _graph(text: str, ents: list[tuple[str, str]], rels: list[tuple[str, int, int]]) -> EntityGraph:
    out, pos = [], {}
    for i, (word, label) in enumerate(ents):
        start = text.index(word, pos.get(word, 0))
        pos[word] = start + 1
        out.append(Entity(f"e{i}", word, start, start + len(word), label))
    return EntityGraph(tuple(out), tuple(Relation(t, f"e{a}", f"e{b}") for t, a, b in rels))


def test_golden_values_by_hand():
    # hyp {A, B(rel->A)} vs ref {A, C}: simple 1/2 & 1/2 -> 0.5; partial: hyp {A, (B,True)}
    # ref {A, C} -> 0.5; complete: hyp {A, (b, OBS-DP, modify, a)} ref {A, C} -> 0.5.
    hyp = {"entities": {"1": {"tokens": "effusion", "label": "OBS-DP", "start_ix": 0, "end_ix": 0, "relations": []},
                        "2": {"tokens": "small", "label": "OBS-DP", "start_ix": 1, "end_ix": 1, "relations": [["modify", "1"]]}}}
    ref = {"entities": {"1": {"tokens": "effusion", "label": "OBS-DP", "start_ix": 0, "end_ix": 0, "relations": []},
                        "2": {"tokens": "large", "label": "OBS-DP", "start_ix": 1, "end_ix": 1, "relations": []}}}
    assert reward(hyp, ref) == RadGraphScore(0.5, 0.5, 0.5)
    # Same tokens, relation on both sides: complete counts the relation (lower-cased).
    ref2 = {"entities": {"1": {"tokens": "Effusion", "label": "OBS-DP", "start_ix": 0, "end_ix": 0, "relations": []},
                         "2": {"tokens": "SMALL", "label": "OBS-DP", "start_ix": 1, "end_ix": 1, "relations": [["modify", "1"]]}}}
    s = reward(hyp, ref2)
    # simple: {effusion, small} vs {Effusion, SMALL}: 0; partial: 0; complete: hyp
    # {(effusion,..), (small,OBS-DP,modify,effusion)} vs {(Effusion,..), (small,OBS-DP,modify,effusion)} -> 1/2, 1/2.
    assert (s.simple, s.partial, s.complete) == (0.0, 0.0, 0.5)
    assert reward({"entities": {}}, ref) == RadGraphScore(0.0, 0.0, 0.0)
    corpus = radgraph_f1([hyp, hyp], [ref, ref2])
    assert corpus.mean == RadGraphScore(0.25, 0.25, 0.5)
    with pytest.raises(ReportgenError, match="E407"):
        radgraph_f1([hyp], [])


def test_export_tokens_and_round_trip():
    text = "Small left pleural effusion.  No pneumothorax."
    g = _graph(text, [("left", "ANAT-DP"), ("pleural effusion", "OBS-DP"), ("pneumothorax", "OBS-DA")],
               [("located_at", 1, 0)])
    ann = to_radgraph(g, text)
    assert ann["text"] == "Small left pleural effusion . No pneumothorax ."
    assert ann["entities"]["2"] == {"tokens": "pleural effusion", "label": "OBS-DP", "start_ix": 2, "end_ix": 3,
                                    "relations": [["located_at", "1"]]}
    assert [t[0] for t in tokenize("R-sided 2.5cm")] == ["R", "-", "sided", "2", ".", "5cm"]
    back = from_radgraph(ann)
    assert [(e.text, e.label) for e in back.entities] == [("left", "ANAT-DP"), ("pleural effusion", "OBS-DP"), ("pneumothorax", "OBS-DA")]
    assert back.relations == (Relation("located_at", "2", "1"),)
    assert to_radgraph(back, ann["text"]) == ann
    xl = to_radgraph(g, text, label_style="xl")
    assert xl["entities"]["3"]["label"] == "Observation::definitely absent"
    assert from_radgraph(xl).entities[2].label == "OBS-DA"


def test_import_errors_name_the_problem():
    with pytest.raises(ReportgenError, match="E403"):
        from_radgraph({"entities": {}})
    with pytest.raises(ReportgenError, match="E404"):
        from_radgraph({"text": "a b", "entities": {"1": {"tokens": "c", "label": "OBS-DP", "start_ix": 5, "end_ix": 5, "relations": []}}})
    with pytest.raises(ReportgenError, match="E402"):
        from_radgraph({"text": "a", "entities": {"1": {"tokens": "a", "label": "Thing", "start_ix": 0, "end_ix": 0, "relations": []}}})


def test_merge_claim_graphs():
    from reportgen.evals.metrics.radgraph_f1 import merge_graphs

    text = "No pleural effusion or pneumothorax."
    a = EntityGraph((Entity("e1", "pleural effusion", 3, 19, "OBS-DA"),), ())
    b = EntityGraph((Entity("e1", "pneumothorax", 23, 35, "OBS-DA"), Entity("e2", "pleural effusion", 3, 19, "OBS-DA")),
                    (Relation("modify", "e1", "e2"),))
    m = merge_graphs([a, b])
    assert [(e.id, e.text) for e in m.entities] == [("1", "pleural effusion"), ("2", "pneumothorax")]
    assert m.relations == (Relation("modify", "2", "1"),)
    assert to_radgraph(m, text)["entities"]["2"]["relations"] == [["modify", "1"]]


def test_export_of_several_graphs_equals_export_of_merged():
    from reportgen.evals.metrics.radgraph_f1 import merge_graphs

    text = "Small left pleural effusion and left basilar atelectasis."
    g1 = _graph(text, [("left", "ANAT-DP"), ("pleural effusion", "OBS-DP"), ("Small", "OBS-DP")], [("located_at", 1, 0), ("modify", 2, 1)])
    g2 = _graph(text, [("pleural effusion", "OBS-DP"), ("atelectasis", "OBS-DP"), ("basilar", "ANAT-DP")], [("located_at", 1, 2)])
    assert to_radgraph([g1, g2], text) == to_radgraph(merge_graphs([g1, g2]), text)
    assert len(to_radgraph([g1, g2], text)["entities"]) == 5
