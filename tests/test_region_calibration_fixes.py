"""Region checker bugs from review (issue 16): the side margin is calibrated on wrong-side
claims about real lesions only, calibration keeps a custom score_scale, a PNG/JPEG can be
marked mirrored in the study record, and verdicts from random or uncalibrated weights say so."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from reportgen.checkers.region.calibrate import calibrate  # noqa: E402
from reportgen.checkers.region.evidence import Calibration  # noqa: E402
from reportgen.checkers.region.zones import GRID  # noqa: E402
from reportgen.protocols import CheckedClaim  # noqa: E402
from reportgen.types import Claim, EntityGraph, Finding  # noqa: E402
from tests.fixtures_clip import LEFT_UPPER, blob  # noqa: E402


def _reader(text: str):
    side = "left" if "left" in text.lower() else "right"
    f = Finding("opacity", "present", side, ("upper lobe",))
    return [CheckedClaim(Claim(text, "findings", 0, len(text)), EntityGraph(), (f,))]


def claim(text, side):
    return CheckedClaim(Claim(text, "findings", 0, len(text)), EntityGraph(),
                        (Finding("opacity", "present", side, ("upper lobe",)),))


@pytest.fixture
def lesion_maps(tiny_region_checker, monkeypatch):
    """Films with mean pixel 0.5 have a lesion in the IMAGE-right upper zone; others are clear."""
    rc = tiny_region_checker

    def maps(enc, texts):
        lesion = float(np.mean(enc.pixels)) > 0.45
        return np.stack([blob(*LEFT_UPPER, seed=i, amp=1.0 if lesion else 0.0, noise=0.05) for i, _ in enumerate(texts)]) \
            if texts else np.zeros((0, GRID, GRID))

    monkeypatch.setattr(rc, "similarity_maps", maps)
    return rc


def labels():
    lesion = np.full((32, 32), 0.5, dtype=np.float32)
    rows = []
    for k in range(3):
        film = lesion + 0.001 * k  # a film with a left upper lesion (image right on a standard display)
        rows += [{"image": film, "text": "Left upper opacity.", "label": True},
                 {"image": film, "text": "Right upper opacity.", "label": False}]  # wrong side, real lesion
        clear = np.full((32, 32), 0.3 + 0.01 * k, dtype=np.float32)
        rows += [{"image": clear, "text": "Right upper opacity.", "label": False},  # no lesion at all
                 {"image": clear, "text": "Left upper opacity.", "label": False}]
    return rows


def test_side_margin_uses_wrong_side_claims_about_real_lesions_only(lesion_maps):
    calib = calibrate(lesion_maps, labels(), reader=_reader)
    side = calib.stats["side"]
    assert side["n_true"] == 3 and side["n_false"] == 3  # the 3 wrong-side claims; the 6 clear-film claims left out
    assert side["n_excluded_no_lesion"] == 6 and side["auc"] == 1.0
    pos = calib.stats["positive"]
    assert pos["n_true"] == 3 and pos["n_false"] == 9  # the CNR threshold still sees every false claim


def test_an_explicit_wrong_side_key_wins(lesion_maps):
    rows = labels()
    for r in rows:
        if not r["label"] and float(np.mean(r["image"])) > 0.45:
            r["wrong_side"] = False  # said not to be a wrong-side claim: left out too
    calib = calibrate(lesion_maps, rows, reader=_reader, base=Calibration(side_margin=0.33))
    assert calib.stats["side"]["calibrated"] is False and calib.stats["side"]["n_excluded_no_lesion"] == 9
    assert calib.side_margin == 0.33  # nothing to fit it on: the base value stays


def test_calibration_keeps_a_custom_score_scale(lesion_maps):
    assert calibrate(lesion_maps, labels(), reader=_reader, base=Calibration(score_scale=0.7)).score_scale == 0.7
    lesion_maps.calibration = Calibration(score_scale=0.4)
    assert calibrate(lesion_maps, labels(), reader=_reader).score_scale == 0.4


def test_labels_file_with_bad_flags_is_refused(lesion_maps, tmp_path):
    from reportgen.errors import ReportgenError

    from PIL import Image

    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "l.jsonl").write_text(json.dumps({"image": "a.png", "text": "Left upper opacity.", "label": True,
                                                  "mirrored": "yes"}) + "\n")
    with pytest.raises(ReportgenError, match="E141.*mirrored"):
        calibrate(lesion_maps, tmp_path / "l.jsonl", reader=_reader)


def test_a_png_marked_mirrored_swaps_the_sides(lesion_maps, tmp_path):
    from PIL import Image

    png = tmp_path / "film.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(png)
    left, right = claim("Left upper lobe opacity.", "left"), claim("Right upper lobe opacity.", "right")
    plain = {v.claim.text: v for v in lesion_maps.check_images([str(png)], ["PA"], [left, right])}
    assert plain["Left upper lobe opacity."].status == "supported"
    assert plain["Right upper lobe opacity."].status == "contradicted"
    flipped = {v.claim.text: v for v in lesion_maps.check_images([str(png)], ["PA"], [left, right], mirrored=[True])}
    assert flipped["Right upper lobe opacity."].status == "supported"  # the image right is the patient's right
    assert flipped["Left upper lobe opacity."].status == "contradicted"
    assert flipped["Left upper lobe opacity."].evidence[0].meta["mirrored"] is True
    from reportgen.errors import ReportgenError

    with pytest.raises(ReportgenError, match="E140"):
        lesion_maps.check_images([str(png)], ["PA"], [left], mirrored=[True, False])


def test_check_records_carry_a_mirrored_flag(tmp_path):
    from reportgen.checkers.batch import record_study
    from reportgen.jsonl import Record

    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "b.png").write_bytes(b"png")
    study, problem = record_study(Record("r.jsonl", 1, {"id": "x", "images": ["a.png", "b.png"], "mirrored": [True, None]}), tmp_path)
    assert problem is None and study.meta["mirrored"] == (True, None)
    study, problem = record_study(Record("r.jsonl", 1, {"id": "x", "images": ["a.png"], "mirrored": True}), tmp_path)
    assert study.meta["mirrored"] == (True,)
    for bad in ("yes", [True, True], [1]):
        study, problem = record_study(Record("r.jsonl", 1, {"id": "x", "images": ["a.png"], "mirrored": bad}), tmp_path)
        assert study is None and problem.startswith("E140")
    study, _ = record_study(Record("r.jsonl", 1, {"id": "x", "images": ["a.png"]}), tmp_path)
    assert "mirrored" not in study.meta


def test_random_or_uncalibrated_weights_are_said_in_the_reasons(tiny_clip_dir, tmp_path, monkeypatch):
    from reportgen.checkers.region.checker import RegionChecker
    from tests.fixtures_clip import write_tiny_config

    def patch(rc):
        monkeypatch.setattr(rc, "similarity_maps", lambda enc, texts: np.stack([blob(*LEFT_UPPER) for _ in texts]))
        return rc

    img = np.full((32, 32), 0.5, dtype=np.float32)
    left = claim("Left upper lobe opacity.", "left")
    random_rc = patch(RegionChecker(str(write_tiny_config(tmp_path / "cfg", "reportgen-tiny-clip-rand"))))
    assert random_rc.backend.random_weights
    (v,) = random_rc.check_images([img], ["PA"], [left])
    assert any("RANDOM weights" in r for r in v.reasons) and any("uncalibrated" in r for r in v.reasons)
    trained = patch(RegionChecker(f"local-dir:{tiny_clip_dir}", calibration=Calibration(calibrated=True)))
    (v,) = trained.check_images([img], ["PA"], [left])
    assert not trained.backend.random_weights
    assert not any("RANDOM" in r or "uncalibrated defaults" in r for r in v.reasons)
    uncal = patch(RegionChecker(f"local-dir:{tiny_clip_dir}", calibration=Calibration()))
    (v,) = uncal.check_images([img], ["PA"], [left])
    assert any("uncalibrated defaults" in r for r in v.reasons) and not any("RANDOM" in r for r in v.reasons)
