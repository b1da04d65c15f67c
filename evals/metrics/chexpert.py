"""CheXpert 14-observation labels from findings, and label F1 as users compare it.

Labels (``chexpert_labels``): each finding maps to one or more of the 14 CheXpert
observations through the versioned data file ``evals/data/chexpert_map.json`` (observation
+ anatomy rules first, then lexicon normal form -> name or list of names: a
hydropneumothorax is both Pleural Effusion and Pneumothorax). Presence gives the mention value:
present 1, uncertain -1, absent 0. Mentions of one observation aggregate as CheXpert's
labeler does: positive if any mention is positive, else uncertain if any is uncertain,
else negative if any is negative, else blank (None). "No Finding" is 1 when no other
observation (Support Devices ignored) is positive or uncertain, else blank.

Label F1 (``label_f1``), the CheXbert / f1chexbert convention: each label is made binary
per report by the uncertain policy (``uncertain-as-positive``, the default and
f1chexbert's "rrg" mode: 1 and -1 count as positive; ``uncertain-as-negative``: only 1),
blank and 0 are negative. Micro F1 pools true/false positives over the labels; macro F1 is
the mean of per-label F1, with F1 = 0 for a label no report has on either side (as
scikit-learn's classification_report does with its default ``zero_division``). Both are
given over all 14 labels and over the 5 (Cardiomegaly, Edema, Consolidation, Atelectasis,
Pleural Effusion).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.types import Finding

MAP_PATH = Path(__file__).resolve().parents[1] / "data" / "chexpert_map.json"
CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
FIVE = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
POLICIES = ("uncertain-as-positive", "uncertain-as-negative")
_VALUE = {"present": 1, "uncertain": -1, "absent": 0}
Labels = Mapping[str, "int | None"]


@dataclass(frozen=True)
class ChexpertMap:
    """Normal form -> CheXpert observations, read from ``chexpert_map.json``."""

    version: str
    observations: Mapping[str, tuple[str, ...]]
    anatomy_rules: tuple[tuple[frozenset[str], frozenset[str], tuple[str, ...]], ...]
    no_finding_ignore: frozenset[str]

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ChexpertMap":
        return _load_map(str(path or MAP_PATH))

    def labels_of(self, finding: Finding) -> tuple[str, ...]:
        """Every CheXpert observation the finding states (empty: none)."""
        obs = finding.observation.lower()
        anat = (finding.anatomy or "").lower()
        for observations, anatomy, names in self.anatomy_rules:
            if obs in observations and anat in anatomy:
                return names
        return self.observations.get(obs, ())

    def label_of(self, finding: Finding) -> str | None:
        """The first CheXpert observation of the finding (``labels_of`` gives all)."""
        names = self.labels_of(finding)
        return names[0] if names else None


@lru_cache(maxsize=4)
def _load_map(path: str) -> ChexpertMap:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportgenError("E410", f"cannot read the CheXpert map {path}: {exc}", fix="check the file is valid JSON") from None
    known = set(CHEXPERT_LABELS)

    def check(name: str, where: str) -> str:
        if name not in known:
            raise ReportgenError("E411", f"{path}: {where} names {name!r}, not a CheXpert observation",
                                 fix=f"use one of: {', '.join(CHEXPERT_LABELS)}")
        return name

    def names(value: Any, where: str) -> tuple[str, ...]:
        vals = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else None
        if not vals:
            raise ReportgenError("E411", f"{path}: {where} maps to {value!r}, not a name or a list of names",
                                 fix="give one CheXpert observation or a non-empty list of them")
        return tuple(dict.fromkeys(check(v, where) for v in vals))

    obs = {k.lower(): names(v, f"observation {k!r}") for k, v in data.get("observations", {}).items()}
    rules = tuple(
        (frozenset(o.lower() for o in r["observation"]), frozenset(a.lower() for a in r["anatomy"]), names(r["label"], "an anatomy rule"))
        for r in data.get("anatomy_rules", ())
    )
    ignore = frozenset(check(x, "no_finding.ignore") for x in data.get("no_finding", {}).get("ignore", ["Support Devices"]))
    return ChexpertMap(str(data.get("version", "")), obs, rules, ignore)


def chexpert_labels(findings: Iterable[Finding], mapping: ChexpertMap | None = None) -> dict[str, int | None]:
    """The 14 CheXpert labels (1 / 0 / -1 / None) of one report's findings."""
    mapping = mapping or ChexpertMap.load()
    seen: dict[str, set[int]] = {}
    for f in findings:
        if f.presence not in _VALUE:  # a hypothetical finding gives no label
            continue
        for name in mapping.labels_of(f):
            if name != "No Finding":
                seen.setdefault(name, set()).add(_VALUE[f.presence])
    out: dict[str, int | None] = {}
    for name in CHEXPERT_LABELS[1:]:
        values = seen.get(name, set())
        out[name] = 1 if 1 in values else -1 if -1 in values else 0 if 0 in values else None
    abnormal = any(out[n] in (1, -1) for n in CHEXPERT_LABELS[1:] if n not in mapping.no_finding_ignore)
    return {"No Finding": None if abnormal else 1, **out}


def binarize(labels: Labels, policy: str = "uncertain-as-positive") -> np.ndarray:
    """14 zeros and ones in CHEXPERT_LABELS order, by the uncertain policy."""
    if policy not in POLICIES:
        raise ReportgenError("E412", f"unknown uncertain policy {policy!r}", fix=f"use one of {', '.join(POLICIES)}")
    positive = (1, -1) if policy == "uncertain-as-positive" else (1,)
    return np.array([1 if labels.get(n) in positive else 0 for n in CHEXPERT_LABELS], dtype=np.int64)


def label_counts(hyps: Sequence[Labels], refs: Sequence[Labels], policy: str = "uncertain-as-positive") -> np.ndarray:
    """Per report and label: true positives, false positives, false negatives, shape (n, 14, 3)."""
    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    if not hyps:
        return np.zeros((0, len(CHEXPERT_LABELS), 3), dtype=np.int64)
    h = np.stack([binarize(x, policy) for x in hyps])
    r = np.stack([binarize(x, policy) for x in refs])
    return np.stack([h & r, h & (1 - r), (1 - h) & r], axis=-1)


@dataclass(frozen=True)
class LabelF1:
    micro_14: float
    macro_14: float
    micro_5: float
    macro_5: float
    per_label: Mapping[str, float]
    support: Mapping[str, int]
    policy: str

    def to_dict(self) -> dict:
        return {"policy": self.policy, "micro_14": self.micro_14, "macro_14": self.macro_14, "micro_5": self.micro_5,
                "macro_5": self.macro_5, "per_label": dict(self.per_label), "support": dict(self.support)}


_FIVE_IX = np.array([CHEXPERT_LABELS.index(n) for n in FIVE])


def f1_from_counts(totals: np.ndarray, subset: str = "14") -> tuple[float, float]:
    """(micro, macro) F1 from summed counts of shape (14, 3) (or (..., 14, 3))."""
    t = totals[..., _FIVE_IX, :] if subset == "5" else totals
    tp, fp, fn = t[..., 0].astype(float), t[..., 1].astype(float), t[..., 2].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = 2 * tp + fp + fn
        per = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
        mden = 2 * tp.sum(-1) + fp.sum(-1) + fn.sum(-1)
        micro = np.where(mden > 0, 2 * tp.sum(-1) / np.where(mden > 0, mden, 1), 0.0)
    return micro, per.mean(-1)


def label_f1(hyps: Sequence[Labels], refs: Sequence[Labels], policy: str = "uncertain-as-positive") -> LabelF1:
    """CheXpert label F1 of hypothesis labels against reference labels."""
    totals = label_counts(hyps, refs, policy).sum(axis=0)
    m14, M14 = f1_from_counts(totals, "14")
    m5, M5 = f1_from_counts(totals, "5")
    tp, fp, fn = totals[:, 0], totals[:, 1], totals[:, 2]
    per = {n: (float(2 * tp[i] / (2 * tp[i] + fp[i] + fn[i])) if (2 * tp[i] + fp[i] + fn[i]) else 0.0)
           for i, n in enumerate(CHEXPERT_LABELS)}
    support = {n: int(tp[i] + fn[i]) for i, n in enumerate(CHEXPERT_LABELS)}
    return LabelF1(float(m14), float(M14), float(m5), float(M5), per, support, policy)
