"""CheXpert labels from findings (labeler conventions) and label F1 (CheXbert conventions),
on hand-computed examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.evals.metrics.bootstrap import bootstrap_sums
from reportgen.evals.metrics.chexpert import (
    CHEXPERT_LABELS, ChexpertMap, chexpert_labels, f1_from_counts, label_counts, label_f1,
)
from reportgen.errors import ReportgenError
from reportgen.types import Finding


def F(obs: str, presence: str = "present", anatomy: str | None = None) -> Finding:
    return Finding(observation=obs, presence=presence, anatomy=anatomy)


def test_labels_follow_chexpert_aggregation():
    labels = chexpert_labels([
        F("pleural effusion", "absent"), F("pleural effusion", "uncertain"),  # uncertain beats negative
        F("atelectasis", "uncertain"), F("atelectasis", "present"),  # positive beats uncertain
        F("pneumothorax", "absent"),
        F("enlarged", "present", anatomy="cardiac silhouette"),  # via an anatomy rule
        F("calcified granuloma"),  # not a CheXpert observation
    ])
    assert list(labels) == list(CHEXPERT_LABELS)
    assert labels["Pleural Effusion"] == -1
    assert labels["Atelectasis"] == 1
    assert labels["Pneumothorax"] == 0
    assert labels["Cardiomegaly"] == 1
    assert labels["Edema"] is None and labels["Lung Lesion"] is None
    assert labels["No Finding"] is None  # something positive or uncertain


def test_no_finding_rule():
    normal = chexpert_labels([F("abnormality", "absent"), F("pneumothorax", "absent"), F("cardiomegaly", "absent")])
    assert normal["No Finding"] == 1 and normal["Pneumothorax"] == 0
    # Support devices do not stop No Finding; an uncertain finding does.
    assert chexpert_labels([F("pacemaker")])["No Finding"] == 1
    assert chexpert_labels([F("pacemaker")])["Support Devices"] == 1
    assert chexpert_labels([F("pneumonia", "uncertain")])["No Finding"] is None
    assert chexpert_labels([])["No Finding"] == 1


def test_label_f1_by_hand():
    blank = {n: None for n in CHEXPERT_LABELS}
    ref1 = dict(blank, **{"Cardiomegaly": 1, "Edema": -1})
    hyp1 = dict(blank, **{"Cardiomegaly": 1, "Pleural Effusion": 1})
    ref2 = dict(blank, **{"No Finding": 1})
    hyp2 = dict(blank, **{"No Finding": 1, "Edema": -1})
    # uncertain-as-positive: Cardiomegaly tp1; Edema fn1 (report 1) + fp1 (report 2);
    # Pleural Effusion fp1; No Finding tp1.
    s = label_f1([hyp1, hyp2], [ref1, ref2])
    assert s.per_label["Cardiomegaly"] == 1.0 and s.per_label["No Finding"] == 1.0
    assert s.per_label["Edema"] == 0.0 and s.per_label["Pleural Effusion"] == 0.0
    assert s.micro_14 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))  # tp 2, fp 2, fn 1
    assert s.macro_14 == pytest.approx(2 / 14)  # labels absent on both sides count as F1 0
    assert s.micro_5 == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))
    assert s.macro_5 == pytest.approx(1 / 5)
    assert s.support["Edema"] == 1
    # uncertain-as-negative: Edema disappears from both sides.
    n = label_f1([hyp1, hyp2], [ref1, ref2], policy="uncertain-as-negative")
    assert n.micro_14 == pytest.approx(2 * 2 / (2 * 2 + 1 + 0)) and n.support["Edema"] == 0
    with pytest.raises(ReportgenError, match="E412"):
        label_f1([hyp1], [ref1], policy="uncertain-as-blank")


def test_counts_bootstrap_matches_point_estimate():
    blank = {n: None for n in CHEXPERT_LABELS}
    rng = np.random.default_rng(0)
    hyps, refs = [], []
    for _ in range(40):
        hyps.append(dict(blank, **{n: int(rng.choice([1, 0, -1])) for n in ("Cardiomegaly", "Edema", "Atelectasis")}))
        refs.append(dict(blank, **{n: int(rng.choice([1, 0, -1])) for n in ("Cardiomegaly", "Edema", "Pneumothorax")}))
    counts = label_counts(hyps, refs)
    ci = bootstrap_sums(counts, lambda t: f1_from_counts(t)[0], n_resamples=300, seed=1)
    assert ci.estimate == pytest.approx(label_f1(hyps, refs).micro_14)
    assert ci.low < ci.estimate < ci.high


def test_map_is_versioned_data_and_checked(tmp_path):
    m = ChexpertMap.load()
    assert m.version and m.label_of(F("pleural effusion")) == "Pleural Effusion"
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"version": "x", "observations": {"effusion": "Pleural effusions"}}))
    with pytest.raises(ReportgenError, match="E411"):
        ChexpertMap.load(bad)
