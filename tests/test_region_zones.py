"""Zone atlas geometry and the laterality convention (numpy only, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.checkers.region.zones import GRID, Atlas, LungMasks, box_mask, normalise_view, rasterise_polygon, view_kind
from reportgen.errors import ReportgenError
from reportgen.types import Finding
from tests.light_imports import heavy_modules_loaded


@pytest.fixture(scope="module")
def atlas() -> Atlas:
    return Atlas.load()


def centroid_x(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float((xs.mean() + 0.5) / mask.shape[1])


def centroid_y(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float((ys.mean() + 0.5) / mask.shape[0])


def test_import_checkers_region_is_light():
    code = ("import reportgen.checkers, reportgen.checkers.region, reportgen.checkers.region.zones, reportgen.checkers.region.evidence, "
            "reportgen.checkers.region.grounded, reportgen.checkers.region.checker")
    assert heavy_modules_loaded(code, ("torch", "open_clip", "transformers", "vllm")) == []


def test_atlas_has_every_named_zone(atlas):
    zs = atlas.zone_set("PA")
    for side in ("right", "left"):
        for z in ("upper_zone", "middle_zone", "lower_zone", "apex", "base", "costophrenic_angle", "hilum"):
            assert zs.masks[f"{side}_{z}"].any(), f"{side}_{z} is empty"
    for z in ("cardiac_silhouette", "mediastinum"):
        assert zs.masks[z].any()
    assert zs.thorax.shape == (GRID, GRID)
    assert atlas.version == json.loads(open(atlas.path).read())["version"]


def test_patient_left_is_image_right_on_frontal_views(atlas):
    for view in ("PA", "AP", None):
        zs = atlas.zone_set(view)
        for z in ("upper_zone", "lower_zone", "costophrenic_angle", "hilum"):
            assert centroid_x(zs.masks[f"left_{z}"]) > 0.5 > centroid_x(zs.masks[f"right_{z}"])
        assert zs.sides["left_upper_zone"] == "left"
        # the heart bulges to the patient's left
        assert centroid_x(zs.masks["cardiac_silhouette"]) > 0.5


def test_zone_bands_are_ordered_top_to_bottom(atlas):
    zs = atlas.zone_set("PA")
    for side in ("right", "left"):
        ys = [centroid_y(zs.masks[f"{side}_{z}"]) for z in ("apex", "upper_zone", "middle_zone", "lower_zone", "base")]
        assert ys == sorted(ys)
        upper, middle, lower = (zs.masks[f"{side}_{z}"] for z in ("upper_zone", "middle_zone", "lower_zone"))
        assert not (upper & middle).any() and not (middle & lower).any()
        # the costophrenic angle is the lateral, lowest part of the base
        cp = zs.masks[f"{side}_costophrenic_angle"]
        assert (cp & ~zs.masks[f"{side}_base"]).sum() == 0
        lateral_is_left = side == "right"
        assert (centroid_x(cp) < centroid_x(zs.masks[f"{side}_base"])) == lateral_is_left


def test_mirrored_image_flips_the_sides(atlas):
    zs = atlas.zone_set("PA", mirrored=True)
    assert centroid_x(zs.masks["left_upper_zone"]) < 0.5 < centroid_x(zs.masks["right_upper_zone"])
    assert zs.side_mask("left")[:, 0].all() and not zs.side_mask("left")[:, -1].any()
    assert atlas.zone_set("PA").side_mask("left")[:, -1].all()


def test_lateral_view_has_no_left_right_zones(atlas):
    zs = atlas.zone_set("LATERAL")
    assert zs.kind == "lateral"
    assert not any(n.startswith(("left_", "right_")) for n in zs.masks)
    cz = atlas.claim_zones(Finding("opacity", "present", "left", ("lower lobe",)), "LL")
    assert cz.laterality is None and cz.zones == ("lower_zone",) and cz.mirrored() == ()


@pytest.mark.parametrize("raw, norm", [
    ("PA", "PA"), ("pa", "PA"), ("AP", "AP"), ("AP SUPINE", "AP"), ("LL", "LATERAL"), ("RL", "LATERAL"),
    ("LATERAL", "LATERAL"), ("Lateral", "LATERAL"), ("", None), (None, None), ("weird", None),
])
def test_view_names(raw, norm):
    assert normalise_view(raw) == norm
    assert view_kind(raw) == ("lateral" if norm == "LATERAL" else "frontal")


@pytest.mark.parametrize("finding, zones, lat", [
    (Finding("opacity", "present", "left", ("upper lobe",)), ("left_upper_zone",), "left"),
    (Finding("opacity", "present", "right", ("base",)), ("right_base", "right_lower_zone"), "right"),
    (Finding("opacity", "present", None, ("lingula",)), ("left_middle_zone", "left_lower_zone"), "left"),
    (Finding("opacity", "present", None, ("middle lobe",)), ("right_middle_zone", "right_lower_zone"), "right"),
    (Finding("cardiomegaly", "present"), ("cardiac_silhouette",), None),
    (Finding("pleural effusion", "present", "left"), ("left_base", "left_lower_zone"), "left"),
    (Finding("opacity", "present", "left", ("left costophrenic angles",)), ("left_costophrenic_angle", "left_base"), "left"),
    (Finding("enlargement", "present", None, (), "heart"), ("cardiac_silhouette",), None),
    (Finding("nodule", "present", "right"), ("right_upper_zone", "right_middle_zone", "right_lower_zone"), "right"),
])
def test_findings_map_to_zones(atlas, finding, zones, lat):
    cz = atlas.claim_zones(finding, "PA")
    assert cz.zones == zones
    assert cz.laterality == lat


def test_unlateralised_and_bilateral_findings_cover_both_sides(atlas):
    for lat in (None, "bilateral"):
        cz = atlas.claim_zones(Finding("opacity", "present", lat, ("upper lobe",)), "PA")
        assert set(cz.zones) == {"right_upper_zone", "left_upper_zone"}
        assert cz.mirrored() == ()
    cz = atlas.claim_zones(Finding("opacity", "present", "right", ("apex",)), "PA")
    assert cz.mirrored() == ("left_apex", "left_upper_zone")


def test_segmented_lungs_replace_the_atlas_lungs(atlas):
    h = w = 64
    right = np.zeros((h, w), bool)
    left = np.zeros((h, w), bool)
    right[16:48, 4:20] = True  # patient right lung on the image left, rows 16..47
    left[8:56, 40:60] = True
    zs = atlas.zone_set("PA", lungs=LungMasks(right, left))
    assert zs.source == "segmentation"
    up = zs.masks["right_upper_zone"]
    rows = np.nonzero(up.any(axis=1))[0]
    # the upper third of the segmented lung, in grid rows (64 -> 128: x2)
    assert rows[0] == 32 and abs(rows[-1] - (32 + 64 / 3)) <= 1.5
    assert (zs.masks["left_lower_zone"] & ~zs.structures["lung_left"]).sum() == 0
    # midline structures still come from the atlas
    assert zs.masks["cardiac_silhouette"].sum() == atlas.zone_set("PA").masks["cardiac_silhouette"].sum()


def test_polygon_and_box_rasterisation():
    sq = rasterise_polygon([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]], (100, 100))
    assert sq.sum() == 50 * 50 and sq[50, 50] and not sq[10, 10]
    b = box_mask((0.1, 0.2, 0.3, 0.4), (100, 100))
    assert b.sum() == 20 * 20 and b[25, 15]
    assert box_mask((0.5, 0.5, 0.5, 0.5), (10, 10)).sum() == 1  # degenerate box: one cell


def test_bad_atlas_files_are_rejected(tmp_path):
    bad = tmp_path / "zones.json"
    bad.write_text("{not json")
    with pytest.raises(ReportgenError, match="E605"):
        Atlas.load(bad)
    data = json.loads(open(Atlas.load().path).read())
    data["frontal"]["zones"]["right_upper_zone"]["structure"] = "spleen"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReportgenError, match="unknown structure 'spleen'"):
        Atlas.load(bad)
    with pytest.raises(ReportgenError, match="E606"):
        Atlas.load().zone_set("PA").union(["left_kidney"])


def test_observation_defaults_beat_generic_anatomy(atlas):
    # the claim reader gives effusions anatomy "pleura" and lung findings "lung": generic
    cz = atlas.claim_zones(Finding("pleural effusion", "present", "right", (), "pleura", "small"), "PA")
    assert cz.zones == ("right_base", "right_lower_zone") and not cz.explicit
    cz = atlas.claim_zones(Finding("opacity", "present", "left", (), "lung"), "PA")
    assert cz.zones == ("left_upper_zone", "left_middle_zone", "left_lower_zone") and not cz.explicit
    assert atlas.claim_zones(Finding("opacity", "present", "left", ("base",), "lung"), "PA").explicit
    assert atlas.claim_zones(Finding("cardiomegaly", "present", None, (), "heart"), "PA").explicit


def test_diffuse_device_and_normal_findings_are_not_localised(atlas):
    assert not atlas.localisable(Finding("abnormality", "absent", None, (), "lung"))
    assert not atlas.localisable(Finding("degenerative change", "present", None, (), "spine"))
    assert not atlas.localisable(Finding("pacemaker", "present"))
    assert atlas.localisable(Finding("emphysema", "present", "left", ("upper lobe",)))  # a location makes it local
    assert atlas.localisable(Finding("opacity", "present", None, (), "lung"))
