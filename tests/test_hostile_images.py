"""Hostile and unusual images (issue 16): each is a clear per-image error or a correct
image, never a crash or an unbounded allocation."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from reportgen.errors import InputError, ReportgenError
from reportgen.images import load_image
from tests.test_images import write_dicom

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("pydicom")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def zero_png(path: Path, width: int, height: int, rows_per_block: int = 100) -> Path:
    """A REAL grey PNG of zeros, width x height, written compactly: one deflate block of
    ``rows_per_block`` zero rows is compressed once (full flush: byte-aligned, no history)
    and repeated; the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1."""
    row = width + 1  # filter byte + pixels
    assert height % rows_per_block == 0
    c = zlib.compressobj(9)
    head = c.compress(b"\0" * row * rows_per_block) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(b"\0" * row * rows_per_block) + c.flush(zlib.Z_FULL_FLUSH)
    n = row * height
    tail = b"\x03\x00" + struct.pack(">I", ((n % 65521) << 16) | 1)  # an empty final fixed block + checksum
    idat = head + block * (height // rows_per_block - 1) + tail
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def test_the_compact_png_writer_makes_valid_pngs(tmp_path):
    p = zero_png(tmp_path / "small.png", 300, 200)
    im = load_image(p)
    assert im.size == (300, 200) and not np.asarray(im).any()


def test_a_30000_by_30000_png_is_refused_before_decoding(tmp_path):
    p = zero_png(tmp_path / "bomb.png", 30_000, 30_000)
    assert p.stat().st_size < 2_000_000  # under 2 MB on disk, 900 MB decoded
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"E142.*bomb"):
        load_image(p)
    assert time.perf_counter() - t0 < 2.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # nothing near the 900 MB it would take


def test_the_limit_is_configurable(tmp_path, monkeypatch):
    p = zero_png(tmp_path / "mid.png", 400, 300)
    monkeypatch.setenv("REPORTGEN_MAX_IMAGE_PIXELS", "100000")
    with pytest.raises(InputError, match="E142"):
        load_image(p)
    monkeypatch.setenv("REPORTGEN_MAX_IMAGE_PIXELS", "120000")
    assert load_image(p).size == (400, 300)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_unreadable_errors(tmp_path, fmt):
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (128, 128), dtype=np.uint8)).save(buf, format=fmt)
    data = buf.getvalue()
    original = np.asarray(Image.open(io.BytesIO(data)))
    for cut in range(1, len(data), max(1, len(data) // 97)):
        p = tmp_path / f"cut{cut}.{fmt.lower()}"
        p.write_bytes(data[:cut])
        try:
            im = load_image(p)
        except InputError as e:  # a clear error naming the problem ...
            assert e.code == "E501", e
        else:  # ... or, when only trailing bytes are gone, the whole correct image
            assert (np.asarray(im) == original).all(), cut


def test_a_dicom_without_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)))
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(InputError, match="E502.*no pixel data"):
        load_image(path)


def test_a_huge_dicom_is_refused_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)))
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 40_000, 40_000  # the header lies; nothing of that size is decoded
    ds.save_as(path)
    with pytest.raises(InputError, match="E142"):
        load_image(path)


@pytest.mark.parametrize("photometric", ["MONOCHROME3", "HSV", ""])
def test_an_unknown_photometric_interpretation_is_refused(tmp_path, photometric):
    path = write_dicom(tmp_path / "a.dcm", np.arange(16).reshape(4, 4), PhotometricInterpretation=photometric or "X")
    import pydicom

    if not photometric:
        ds = pydicom.dcmread(path)
        del ds.PhotometricInterpretation
        ds.save_as(path)
    with pytest.raises(InputError, match="E143"):
        load_image(path)


def test_palette_color_becomes_rgb(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", np.array([[0, 1], [2, 3]]), PhotometricInterpretation="PALETTE COLOR", BitsStored=16)
    import pydicom

    ds = pydicom.dcmread(path)
    lut = np.array([0, 65535, 0, 65535], dtype=np.uint16)
    from pydicom.dataelem import DataElement

    for n, (colour, values) in enumerate((("Red", lut), ("Green", lut[::-1]), ("Blue", np.zeros(4, np.uint16)))):
        ds[0x00281101 + n] = DataElement(0x00281101 + n, "US", [4, 0, 16])  # descriptor
        setattr(ds, f"{colour}PaletteColorLookupTableData", values.tobytes())
    ds.save_as(path)
    im = load_image(path)
    assert im.mode == "RGB"
    assert np.asarray(im)[0, 1].tolist() == [255, 0, 0] and np.asarray(im)[0, 0].tolist() == [0, 255, 0]


def test_presentation_lut_shape_inverse(tmp_path):
    px = np.array([[0, 100], [200, 300]])
    plain = np.asarray(load_image(write_dicom(tmp_path / "a.dcm", px)))
    inverse = np.asarray(load_image(write_dicom(tmp_path / "b.dcm", px, PresentationLUTShape="INVERSE")))
    assert plain[0, 0] == 0 and plain[1, 1] == 255
    assert (inverse == 255 - plain).all()
    # MONOCHROME1 is inverted once, whether or not it also says INVERSE (as DX requires).
    m1 = np.asarray(load_image(write_dicom(tmp_path / "c.dcm", px, PhotometricInterpretation="MONOCHROME1")))
    m1_inv = np.asarray(load_image(write_dicom(tmp_path / "d.dcm", px, PhotometricInterpretation="MONOCHROME1",
                                               PresentationLUTShape="INVERSE")))
    assert (m1 == 255 - plain).all() and (m1_inv == m1).all()


def test_a_bomb_between_our_limit_and_pillows_is_ours(tmp_path):
    p = zero_png(tmp_path / "big.png", 10_000, 10_000)  # 100 M pixels: Pillow only warns
    with pytest.raises(InputError, match=r"E142.*10,000 x 10,000.*limit of 64,000,000"):
        load_image(p)


def test_pixel_padding_value_is_left_out_of_the_window_and_black(tmp_path):
    px = np.array([[65535, 65535, 1000], [1000, 2000, 3000]])
    im = np.asarray(load_image(write_dicom(tmp_path / "a.dcm", px, PixelPaddingValue=65535)))
    assert im[0, 0] == 0 and im[0, 1] == 0  # padding: black
    assert im[0, 2] == 0 and im[1, 2] == 255 and im[1, 1] == 128  # the body spans the whole range
    ranged = np.array([[0, 5, 1000], [1000, 2000, 3000]])
    im = np.asarray(load_image(write_dicom(tmp_path / "b.dcm", ranged, PixelPaddingValue=0, PixelPaddingRangeLimit=10)))
    assert im[0, 0] == 0 and im[0, 1] == 0 and im[1, 2] == 255 and im[1, 1] == 128
    # MONOCHROME1 with padding: the body is inverted, the padding stays black
    im = np.asarray(load_image(write_dicom(tmp_path / "c.dcm", px, PixelPaddingValue=65535, PhotometricInterpretation="MONOCHROME1")))
    assert im[0, 0] == 0 and im[0, 2] == 255 and im[1, 2] == 0


def test_the_region_checker_and_the_drafter_turn_them_into_per_study_errors(tmp_path):
    """The batch goes on: the region loader names the file and code; the vllm backend makes
    an error record of kind input (nothing is sent)."""
    from reportgen.checkers.region.images import load_radiograph

    bomb = zero_png(tmp_path / "bomb.png", 30_000, 30_000)
    with pytest.raises(ReportgenError, match="E603.*E142"):
        load_radiograph(bomb)
    pytest.importorskip("httpx")
    from reportgen.backends.vllm import VLLMDrafter
    from reportgen.types import Study
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:
        with VLLMDrafter(fake.url, retries=0,
                         render=lambda s, t: [{"role": "user", "content": [{"type": "image", "image": s.images[0]}]}]) as d:
            (r,) = list(d.draft_iter([Study("s0", images=(str(bomb),))]))
        assert r.draft is None and "E142" in r.error and not fake.requests
