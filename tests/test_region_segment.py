"""Lung segmentation for the region zones: the threshold segmenter on a phantom and on the
real radiographs, the torchxrayvision PSPNet adapter with a stubbed network, selection by
name in RegionChecker, and the laterality convention (patient right = image left)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.checkers.region.images import RadiographImage, load_radiograph
from reportgen.checkers.region.segment import (
    SEGMENTERS, XrvPSPNetLungs, implausible, load_params, resize_mask, resolve_segmenter, threshold_lungs,
    threshold_lungs_detail,
)
from reportgen.checkers.region.zones import Atlas
from reportgen.errors import ReportgenError
from tests.light_imports import heavy_modules_loaded

GRID = 128

# Films the threshold segmenter must segment (all normal-looking PA films) and those it must
# refuse (a negative film; a right lung largely opacified by tuberculosis). Names are under
# tests/data/cxr (shipped), "pydicom-data:" files come from the pydicom-data package (dev
# extra), and the films marked ``shared`` are under ../shared/data/cxr (an extra).
RSNA = "rsna_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
SEGMENTABLE = ["00000001_000.png", "00027426_000.png", "00000001_000_384.jpg", RSNA,
               "pydicom-data:RG1_UNCI.dcm",  # a real 15-bit MONOCHROME1 chest CR, 1955x1841
               *(pytest.param(n, marks=pytest.mark.shared) for n in ("16747_3_1.jpg", "tbx11k/h0001.png", "tbx11k/tb0005.png"))]
REFUSED = ["Fake_MONOHR1.dcm", pytest.param("tbx11k/tb0007.png", marks=pytest.mark.shared)]
# IoU floors with the atlas lungs (docs/region.md, "Lung segmentation"): measured 0.40-0.68 per
# lung and 0.44-0.59 for both lungs together on the films above.
IOU_LUNG_FLOOR = 0.35
IOU_BOTH_FLOOR = 0.40


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def centroid_x(mask: np.ndarray) -> float:
    return float((np.nonzero(mask)[1].mean() + 0.5) / mask.shape[1])


def ellipse(shape, cx, cy, rx, ry) -> np.ndarray:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    return (((x + 0.5) / w - cx) / rx) ** 2 + (((y + 0.5) / h - cy) / ry) ** 2 <= 1.0


def phantom(shape=(300, 360), seed=0):
    """A bright body on black air with two dark lungs: (pixels, image-left lung, image-right lung)."""
    rng = np.random.default_rng(seed)
    body = ellipse(shape, 0.5, 0.5, 0.46, 0.52)
    img = np.where(body, 0.8, 0.02)
    lung_l = ellipse(shape, 0.29, 0.45, 0.12, 0.27)  # image left: the patient's right
    lung_r = ellipse(shape, 0.71, 0.47, 0.12, 0.28)
    img = np.where(lung_l | lung_r, 0.25, img) + rng.normal(0, 0.03, shape)
    return np.clip(img, 0, 1).astype(np.float32), lung_l, lung_r


@pytest.fixture(scope="module")
def atlas() -> Atlas:
    return Atlas.load()


@pytest.fixture(scope="module")
def atlas_lungs(atlas):
    st = atlas.zone_set("PA", shape=(GRID, GRID)).structures
    return st["lung_right"], st["lung_left"]


_FILMS: dict[str, RadiographImage] = {}


def film_path(name: str, request, test_data) -> str:
    if name.startswith("pydicom-data:"):
        from pydicom.data import get_testdata_file

        path = get_testdata_file(name.split(":", 1)[1], download=False)
        if path is None:
            pytest.skip(f"{name} is not installed (the dev extra installs pydicom-data)")
        return str(path)
    if (test_data / "cxr" / name).is_file():
        return str(test_data / "cxr" / name)
    return str(request.getfixturevalue("shared_data") / "cxr" / name)  # marked shared: skips without it


@pytest.fixture()
def film(request, test_data) -> RadiographImage:
    """The film named by the test's ``name`` parameter, loaded once per session."""
    name = request.getfixturevalue("name")
    if name not in _FILMS:
        _FILMS[name] = load_radiograph(film_path(name, request, test_data))
    return _FILMS[name]


def test_import_is_light():
    assert heavy_modules_loaded("import reportgen.checkers.region.segment", ("torch", "torchxrayvision", "open_clip", "scipy")) == []


def test_phantom_lungs_are_recovered_on_the_right_sides():
    img, image_left, image_right = phantom()
    m = threshold_lungs(img)
    assert m is not None and m.right.shape == img.shape == m.left.shape
    # patient right = image left on a standard frontal display
    assert iou(m.right, image_left) > 0.9 and iou(m.left, image_right) > 0.9
    assert centroid_x(m.right) < 0.5 < centroid_x(m.left)
    # the heart lies between the lungs, in their lower half
    assert m.heart is not None and not (m.heart & (m.right | m.left)).any()
    assert 0.4 < centroid_x(m.heart) < 0.6


def test_noise_blank_and_inverted_images_give_no_lungs():
    rng = np.random.default_rng(1)
    assert threshold_lungs(rng.random((256, 256), dtype=np.float32)) is None
    assert threshold_lungs(np.full((200, 200), 0.5, np.float32)) is None
    assert threshold_lungs_detail(np.zeros((64, 64), np.float32))[1].startswith("blank")
    img, _, _ = phantom()
    assert threshold_lungs(1.0 - img) is None  # a negative film: the "lungs" would be the body


def test_implausible_pairs_are_named():
    shape = (100, 100)
    right, left = ellipse(shape, 0.3, 0.45, 0.12, 0.27), ellipse(shape, 0.7, 0.45, 0.12, 0.27)
    assert implausible(right, left) is None
    assert "no left lung" in implausible(right, np.zeros(shape, bool))
    assert "side by side" in implausible(right, ellipse(shape, 0.35, 0.45, 0.12, 0.27))
    assert "covers" in implausible(ellipse(shape, 0.3, 0.45, 0.03, 0.05), left)
    low = np.zeros(shape, bool)
    low[56:90, 60:85] = True  # side by side, but mostly below the other lung
    assert "overlap" in implausible(right, low)
    img = np.where(right | left, 0.6, 0.3)  # lungs brighter than the mediastinum: a negative film
    assert "mediastinum" in implausible(right, left, image=img)


@pytest.mark.parametrize("name", SEGMENTABLE)
def test_real_films_give_two_plausible_lungs_on_the_right_sides(film, atlas, atlas_lungs, name):
    rad = film
    m, why = threshold_lungs_detail(rad.pixels)
    assert m is not None, why
    assert m.right.shape == rad.pixels.shape
    r, l = resize_mask(m.right, (GRID, GRID)), resize_mask(m.left, (GRID, GRID))
    ar, al = atlas_lungs
    assert centroid_x(r) < 0.5 < centroid_x(l)  # the patient's right lung on the image left
    assert iou(r, ar) >= IOU_LUNG_FLOOR and iou(l, al) >= IOU_LUNG_FLOOR
    assert iou(r | l, ar | al) >= IOU_BOTH_FLOOR
    # a swapped labelling would overlap the wrong atlas lung: it does not
    assert iou(r, al) < 0.05 and iou(l, ar) < 0.05
    zs = atlas.zone_set("PA", shape=(GRID, GRID), lungs=m)
    assert zs.source == "segmentation"
    for side, lung in (("right", r), ("left", l)):
        for z in ("upper_zone", "middle_zone", "lower_zone", "costophrenic_angle"):
            zone = zs.masks[f"{side}_{z}"]
            assert zone.any() and not (zone & ~lung).any(), f"{side}_{z} leaves the segmented lung"
            assert (centroid_x(zone) < 0.5) == (side == "right")
        # upper above lower, inside the segmented lung
        up, low = zs.masks[f"{side}_upper_zone"], zs.masks[f"{side}_lower_zone"]
        assert np.nonzero(up)[0].mean() < np.nonzero(low)[0].mean()


@pytest.mark.parametrize("name", SEGMENTABLE)
def test_real_films_segment_consistently_when_flipped_rotated_or_regraded(film, name):
    """A film mirrored left-right gives the mirrored lungs with the sides swapped (the
    segmenter labels by image position); gamma and a 5 degree rotation barely change the
    lungs (measured IoU >= 0.91 on every film, docs/region.md)."""
    from scipy import ndimage

    px = film.pixels
    m = threshold_lungs(px)
    flipped = threshold_lungs(px[:, ::-1].copy())
    assert flipped is not None
    assert iou(flipped.right[:, ::-1], m.left) > 0.9 and iou(flipped.left[:, ::-1], m.right) > 0.9
    regraded = threshold_lungs(px ** 1.25)
    assert iou(regraded.right, m.right) > 0.85 and iou(regraded.left, m.left) > 0.85
    rotated = threshold_lungs(ndimage.rotate(px, 5, reshape=False, order=1, mode="nearest"))
    for got, ref in ((rotated.right, m.right), (rotated.left, m.left)):
        assert iou(got, ndimage.rotate(ref.astype(np.float32), 5, reshape=False, order=0) > 0.5) > 0.85


@pytest.mark.parametrize("name", REFUSED)
def test_negative_film_and_opacified_lung_fall_back_to_the_atlas(film, name):
    m, why = threshold_lungs_detail(film.pixels)
    assert m is None and why


@pytest.mark.parametrize("name", ["00027426_000.png"])
def test_inverted_real_film_is_refused(film, name):
    rad = film
    assert threshold_lungs(rad.pixels) is not None
    assert threshold_lungs(1.0 - rad.pixels) is None


# ---- selection by name and the checker --------------------------------------------------------
def test_segmenters_by_name():
    assert resolve_segmenter(None) is None and resolve_segmenter("none") is None
    assert resolve_segmenter("threshold") is threshold_lungs
    assert isinstance(resolve_segmenter("xrv-pspnet"), XrvPSPNetLungs)  # constructing loads nothing
    assert str(resolve_segmenter("xrv-pspnet:/models/psp.pth").weights) == "/models/psp.pth"
    fn = lambda px: None  # noqa: E731
    assert resolve_segmenter(fn) is fn
    with pytest.raises(ReportgenError, match="E612"):
        resolve_segmenter("threshold:0.5")
    with pytest.raises(ReportgenError, match="E612") as e:
        resolve_segmenter("unet")
    for name in SEGMENTERS:
        assert name in e.value.fix


def test_checker_records_where_the_zones_came_from(tiny_clip_dir):
    from reportgen.checkers.region.checker import RegionChecker

    img, image_left, image_right = phantom()
    rc = RegionChecker(f"local-dir:{tiny_clip_dir}", segmenter="threshold")
    enc = rc.encode_image(RadiographImage(img, "<phantom>"), "PA")
    assert enc.zones.source == "segmentation" and enc.zones_note == "segmentation (threshold)"
    r = resize_mask(image_left, (GRID, GRID))
    assert iou(enc.zones.structures["lung_right"], r) > 0.85
    # a mirrored film (rows toward the patient's right): the image-left lung is the patient's LEFT
    enc_m = rc.encode_image(RadiographImage(img, "<phantom>", mirrored=True), "PA")
    assert iou(enc_m.zones.masks["left_upper_zone"] | enc_m.zones.masks["left_lower_zone"]
               | enc_m.zones.masks["left_middle_zone"], r) > 0.85
    assert centroid_x(enc_m.zones.masks["right_upper_zone"]) > 0.5
    # no plausible lungs: the atlas, and the note says why
    enc_n = rc.encode_image(RadiographImage(np.full((64, 64), 0.5, np.float32), "<blank>"), "PA")
    assert enc_n.zones.source == "atlas" and "no plausible lungs" in enc_n.zones_note
    # lateral views never use the segmenter
    assert rc.encode_image(RadiographImage(img, "<lat>"), "LATERAL").zones_note == "atlas"
    with pytest.raises(ReportgenError, match="E612.*threshold"):
        RegionChecker(f"local-dir:{tiny_clip_dir}", segmenter="bogus")


def test_verdict_meta_and_reasons_name_the_zone_source(tiny_clip_dir):
    from reportgen.checkers.read import read_report
    from reportgen.checkers.region.checker import RegionChecker

    claims = read_report("FINDINGS: Right upper lobe opacity.").claims
    img, _, _ = phantom()
    v = RegionChecker(f"local-dir:{tiny_clip_dir}", segmenter="threshold").check_images([img], ["PA"], claims)
    assert v and v[0].evidence[0].meta["zones"] == "segmentation (threshold)"
    v = RegionChecker(f"local-dir:{tiny_clip_dir}", segmenter=lambda px: None).check_images([img], ["PA"], claims)
    assert v[0].evidence[0].meta["zones"].startswith("atlas (")
    assert any("zones from the atlas" in r for r in v[0].reasons)
    v = RegionChecker(f"local-dir:{tiny_clip_dir}").check_images([img], ["PA"], claims)
    assert v[0].evidence[0].meta["zones"] == "atlas" and not any("zones from" in r for r in v[0].reasons)


# ---- torchxrayvision PSPNet adapter -------------------------------------------------------------
def test_xrv_pspnet_missing_weights_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere" / "pspnet.pth"
    seg = XrvPSPNetLungs(weights=path)  # nothing is loaded or downloaded here
    assert not path.parent.exists()
    with pytest.raises(ReportgenError, match="E613") as e:
        seg(np.zeros((64, 64), np.float32))
    assert str(path) in e.value.message and "pspnet_chestxray_best_model_4.pth" in e.value.fix
    assert not path.parent.exists()  # still nothing downloaded
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    pytest.importorskip("torchxrayvision")
    with pytest.raises(ReportgenError, match="E613.*could not be loaded"):
        XrvPSPNetLungs(weights=bad).load()


@pytest.mark.parametrize("swap_names", [False, True])
def test_xrv_pspnet_channels_map_to_patient_sides_and_image_size(tmp_path, monkeypatch, swap_names):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchxrayvision")
    import torchxrayvision.baseline_models.chestx_det.ptsemseg.pspnet as ptsem
    from torchxrayvision.baseline_models.chestx_det import PSPNet

    targets = list(PSPNet.targets)
    size = load_params()["xrv_pspnet"]["input_size"]
    seen = {}
    # the lung on the image right is channel "Left Lung" (the patient's left); swap_names puts it in
    # the other channel: sides must then still follow the position on the image
    image_right_ch = targets.index("Right Lung" if swap_names else "Left Lung")
    image_left_ch = targets.index("Left Lung" if swap_names else "Right Lung")

    class StubNet(torch.nn.Module):
        def forward(self, x):
            seen["shape"], seen["mean"] = tuple(x.shape), float(x.mean())
            logits = torch.full((1, len(targets), size, size), -8.0)
            logits[0, image_left_ch][torch.as_tensor(ellipse((size, size), 0.3, 0.45, 0.12, 0.27))] = 8.0
            logits[0, image_right_ch][torch.as_tensor(ellipse((size, size), 0.7, 0.45, 0.12, 0.27))] = 8.0
            logits[0, targets.index("Heart")][torch.as_tensor(ellipse((size, size), 0.55, 0.62, 0.12, 0.1))] = 8.0
            return logits

    monkeypatch.setattr(ptsem, "pspnet", lambda n_classes: StubNet())
    weights = tmp_path / "pspnet.pth"
    torch.save({}, weights)
    seg = XrvPSPNetLungs(weights=weights)
    shape = (300, 420)  # not square: resized whole to the network and back
    m = seg(np.full(shape, 0.5, np.float32))
    assert seen["shape"] == (1, 3, size, size)
    assert abs(seen["mean"] - (0.5 - 0.449) / 0.226) < 0.05  # ImageNet-normalised grey 0.5
    assert m is not None and m.right.shape == m.left.shape == m.heart.shape == shape
    assert iou(m.right, ellipse(shape, 0.3, 0.45, 0.12, 0.27)) > 0.95
    assert iou(m.left, ellipse(shape, 0.7, 0.45, 0.12, 0.27)) > 0.95
    assert iou(m.heart, ellipse(shape, 0.55, 0.62, 0.12, 0.1)) > 0.9
    # through the atlas: the patient-right upper zone on the image left, inside that lung
    zs = Atlas.load().zone_set("PA", shape=(GRID, GRID), lungs=m)
    assert centroid_x(zs.masks["right_upper_zone"]) < 0.5 < centroid_x(zs.masks["left_upper_zone"])


def test_xrv_pspnet_implausible_output_gives_none(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchxrayvision")
    import torchxrayvision.baseline_models.chestx_det.ptsemseg.pspnet as ptsem

    class Empty(torch.nn.Module):
        def forward(self, x):
            return torch.full((1, 14, x.shape[2], x.shape[3]), -8.0)

    monkeypatch.setattr(ptsem, "pspnet", lambda n_classes: Empty())
    weights = tmp_path / "pspnet.pth"
    torch.save({}, weights)
    assert XrvPSPNetLungs(weights=weights)(np.full((64, 64), 0.5, np.float32)) is None


def test_segment_overlay_default_folders_are_beside_and_inside_the_checkout():
    from evals.bench import segment_overlay
    from tests.conftest import REPO

    assert segment_overlay.REPO == REPO  # runs/ and the data folders are found from the checkout
    assert segment_overlay.DEFAULT_DATA in (REPO.parent / "shared" / "data" / "cxr", REPO / "tests" / "data" / "cxr")
    assert segment_overlay.DEFAULT_DATA.is_dir()


@pytest.mark.parametrize("refused", ["Fake_MONOHR1.dcm", pytest.param("tbx11k/tb0007.png", marks=pytest.mark.shared)])
def test_segment_overlay_script_writes_png_and_table(request, test_data, refused, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from evals.bench.segment_overlay import main

    data = test_data / "cxr" if refused == "Fake_MONOHR1.dcm" else request.getfixturevalue("shared_data") / "cxr"
    films = [data / "00027426_000.png", data / refused]
    assert main(["--images", *map(str, films), "--data", str(data), "--out", str(tmp_path)]) == 0
    png = (tmp_path / "overlay.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["film"]: r for r in json.loads((tmp_path / "segment_overlay.json").read_text())["films"]}
    assert rows["00027426_000.png"]["result"] == "ok" and rows["00027426_000.png"]["iou_both"] >= IOU_BOTH_FLOOR
    assert rows[refused]["result"] != "ok" and "iou_both" not in rows[refused]
    assert "| 00027426_000.png | ok |" in capsys.readouterr().out
