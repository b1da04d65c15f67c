"""Image loading: PNG/JPEG and DICOM (rescale, windowing, MONOCHROME1, precision)."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.errors import ReportgenError
from reportgen.images import load_image, view_from_dicom, window

RSNA = "rsna_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


def write_dicom(path, pixels: np.ndarray, **attrs) -> str:
    """A minimal valid grey-scale DICOM (explicit VR little endian) with ``attrs``."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = attrs.pop("PhotometricInterpretation", "MONOCHROME2")
    ds.BitsAllocated = 16
    ds.BitsStored = attrs.pop("BitsStored", 16)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)


def test_monochrome1_is_the_inverse_of_the_original(test_data):
    mono1 = np.asarray(load_image(test_data / "cxr" / "Fake_MONOHR1.dcm"), dtype=np.float64)
    mono2 = np.asarray(load_image(test_data / "cxr" / RSNA), dtype=np.float64)
    assert mono1.shape == mono2.shape == (1024, 1024)
    assert np.corrcoef(mono1.ravel(), mono2.ravel())[0, 1] < -0.999
    assert np.abs(mono1 - (255 - mono2)).mean() < 0.5
    assert np.abs(mono1 - (255 - mono2)).max() <= 1


def test_dicom_view_position(test_data):
    assert view_from_dicom(test_data / "cxr" / RSNA) == "PA"


def test_png_and_jpeg_load_as_8bit(test_data):
    png = load_image(test_data / "cxr" / "00000001_000.png")
    jpg = load_image(test_data / "cxr" / "00000001_000_384.jpg")  # the same film, downscaled, JPEG
    assert png.mode in ("L", "RGB") and png.size == (512, 512)
    assert jpg.mode in ("L", "RGB") and jpg.size == (384, 384)
    small = np.asarray(png.convert("L").resize((384, 384)), dtype=np.float64)
    assert np.corrcoef(small.ravel(), np.asarray(jpg.convert("L"), dtype=np.float64).ravel())[0, 1] > 0.99


def test_shared_jpeg_from_another_source_loads_as_8bit(shared_data):
    jpg = load_image(shared_data / "cxr" / "16747_3_1.jpg")  # covid-chestxray-dataset: not square
    assert jpg.mode in ("L", "RGB") and jpg.size == (1036, 885)


def test_15bit_monochrome1_chest_has_full_contrast():
    data = pytest.importorskip("pydicom.data")
    try:
        path = data.get_testdata_file("RG1_UNCI.dcm", download=False)
    except TypeError:  # older pydicom without the download flag
        path = data.get_testdata_file("RG1_UNCI.dcm")
    if path is None:
        pytest.skip("pydicom-data's RG1_UNCI.dcm is not installed")
    import pydicom

    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    assert raw.max() > 4096  # really more than 12 bits
    img = np.asarray(load_image(path), dtype=np.float64)
    assert img.shape == raw.shape
    assert img.max() - img.min() >= 200  # the 15-bit range is spread over the 8-bit one
    assert len(np.unique(img)) > 200
    # MONOCHROME1: high stored values are dark in the output.
    assert np.corrcoef(img.ravel()[::97], raw.ravel()[::97])[0, 1] < -0.99


def test_window_keeps_16bit_precision(tmp_path):
    # 16 grey levels packed into values 40000..40015: an early 8-bit cut (>> 8) would make
    # them one level; windowing in float keeps them apart.
    pixels = (40000 + np.arange(16 * 16).reshape(16, 16) % 16).astype(np.uint16)
    path = write_dicom(tmp_path / "narrow.dcm", pixels, WindowCenter=40007.5, WindowWidth=16)
    img = np.asarray(load_image(path))
    assert len(np.unique(img)) == 16
    assert img.min() <= 8 and img.max() >= 247


def test_rescale_slope_intercept_then_window(tmp_path):
    # Stored 0..2000 with slope 2 and intercept -1024 -> -1024..2976; a window of
    # centre 0 and width 400 shows -200..200: stored 412 (= -200) black, 612 (= 200) white.
    pixels = np.array([[0, 412, 512, 612, 2000, 562]], dtype=np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", pixels, RescaleSlope=2, RescaleIntercept=-1024,
                       WindowCenter=0, WindowWidth=400)
    got = np.asarray(load_image(path))[0]
    assert got[0] == 0 and got[1] <= 1 and got[3] >= 254 and got[4] == 255
    assert abs(int(got[2]) - 128) <= 1  # the window centre is mid-grey
    assert abs(int(got[5]) - 192) <= 1  # stored 562 = 100 units: three quarters up


def test_no_window_uses_the_data_range_and_monochrome1_inverts(tmp_path):
    pixels = np.array([[100, 300], [500, 1100]], dtype=np.uint16)
    m2 = np.asarray(load_image(write_dicom(tmp_path / "m2.dcm", pixels)))
    m1 = np.asarray(load_image(write_dicom(tmp_path / "m1.dcm", pixels, PhotometricInterpretation="MONOCHROME1")))
    assert m2[0, 0] == 0 and m2[1, 1] == 255 and m2[0, 1] == round(200 / 1000 * 255)
    assert (m1.astype(int) == 255 - m2.astype(int)).all()


def test_lateral_view_from_header(tmp_path):
    path = write_dicom(tmp_path / "lat.dcm", np.zeros((4, 4), dtype=np.uint16), ViewPosition="LL")
    assert view_from_dicom(path) == "LATERAL"
    assert view_from_dicom(write_dicom(tmp_path / "none.dcm", np.zeros((4, 4), dtype=np.uint16))) is None


def test_16bit_png_is_scaled_by_its_range(tmp_path):
    from PIL import Image

    arr = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    img = load_image(tmp_path / "deep.png")
    assert img.mode == "L"
    assert np.asarray(img).tolist() == [[0, 64], [128, 255]]


def test_sigmoid_and_linear_window_functions():
    x = np.array([-1000.0, 0.0, 1000.0])
    assert window(x, 0, 100, "SIGMOID")[1] == pytest.approx(0.5)
    assert window(x, 0, 100, "SIGMOID")[0] < 1e-6 and window(x, 0, 100, "SIGMOID")[2] > 1 - 1e-6
    assert window(x, 0, 100, "LINEAR_EXACT").tolist() == [0.0, 0.5, 1.0]


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(ReportgenError) as e:
        load_image(tmp_path / "missing.png")
    assert e.value.code == "E500" and "missing.png" in str(e.value)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ReportgenError) as e:
        load_image(junk)
    assert e.value.code == "E501" and "junk.png" in str(e.value)
    bad_dcm = tmp_path / "bad.dcm"
    bad_dcm.write_bytes(b"\0" * 10)
    with pytest.raises(ReportgenError) as e:
        load_image(bad_dcm)
    assert e.value.code in ("E501", "E502") and "bad.dcm" in str(e.value)
