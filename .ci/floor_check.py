"""Run inside a venv holding the FLOOR versions of pyproject's draft extra that install
without torch (pydicom, pillow, numpy): reportgen.images must load a windowed 16-bit
MONOCHROME1 DICOM and a PNG with them. Started by .ci/floor_check.sh."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from reportgen.images import DEFAULT_POLICY, load_image

d = Path(tempfile.mkdtemp())
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = FileDataset(str(d / "x.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 1, 16, 12, 11
ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME1"
ds.WindowCenter, ds.WindowWidth, ds.ViewPosition = 2048, 4096, "PA"
ds.PixelData = (np.arange(64, dtype=np.uint16) * 64).reshape(8, 8).tobytes()
ds.save_as(d / "x.dcm", enforce_file_format=True)
img = load_image(d / "x.dcm")
assert img.mode == "L" and img.size == (8, 8) and img.getpixel((0, 0)) > img.getpixel((7, 7)), "MONOCHROME1 inverted"
from PIL import Image

Image.fromarray(np.zeros((600, 700), dtype=np.uint8)).save(d / "y.png")
w, h = DEFAULT_POLICY.fit(load_image(d / "y.png")).size
assert w * h <= DEFAULT_POLICY.max_pixels
print(f"floor check ok: pydicom {pydicom.__version__}, pillow {Image.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
