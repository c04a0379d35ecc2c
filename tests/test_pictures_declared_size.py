"""The picture reader's limits hold for what a picture costs, not only for what it declares:
progressive JPEGs are held to the pixel cap as declared (libjpeg keeps their full-size
coefficients at any draft scale), while a camera's baseline photo over it is still read at a
fraction of its size; 16- and 32-bit grey pictures are turned into bytes without float64
copies of the whole picture."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from neuralab.data.pictures import _to_bytes, decode_image, read_image
from neuralab.errors import NeuralabError

CAP = 16_000_000  # the web app's upload cap (neuralab.web.images.MAX_UPLOAD_PIXELS)


def declaring(data: bytes, width: int, height: int) -> bytes:
    """A JPEG's bytes with its frame header (SOF0 or SOF2) saying ``width`` x ``height``: the
    coded data stays that of the small picture, which libjpeg decodes as a truncated large one."""
    b = bytearray(data)
    at = b.index(b"\xff\xc2") if b"\xff\xc2" in b else b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, at + 5, height, width)
    return bytes(b)


def jpeg(mode: str, side: int = 16, **options) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side), 128).save(buf, "JPEG", **options)
    return buf.getvalue()


def test_a_progressive_jpeg_declaring_more_than_the_cap_is_refused_before_decoding(monkeypatch):
    """A 705-byte progressive CMYK file declaring 13370 x 13370 made libjpeg allocate 1.4 GB:
    the cap was checked on the size draft() brought it to, an eighth a side. Here 8000 x 8000
    grey (64 Mpixels, a quarter a side within the cap, 128 MB of coefficients if decoded)."""
    from PIL import ImageFile

    bomb = declaring(jpeg("L", progressive=True), 8000, 8000)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size))
    with pytest.raises(NeuralabError) as e:
        decode_image(bomb, "upload", "L", CAP, size=(28, 28))
    assert str(e.value) == ("upload: a JPEG of 8000x8000 pixels not in one sequential scan (a progressive one, say) "
                            "is more than the 16,000,000 allowed (it is decoded at full size, whatever size it is "
                            "read at); resize it first")
    assert decoded == []
    cmyk = declaring(jpeg("CMYK", progressive=True, subsampling=0), 9000, 9000)  # 648 MB if decoded
    with pytest.raises(NeuralabError, match="JPEG of 9000x9000 pixels not in one sequential scan"):
        decode_image(cmyk, "upload", "L", CAP)


def test_a_jpeg_whose_colours_come_in_separate_scans_is_held_to_the_cap_as_declared(monkeypatch):
    """A sequential JPEG whose first scan holds one colour of three: libjpeg buffers it whole,
    as a progressive one (it says so from the scan header, as done here)."""
    from PIL import ImageFile

    b = bytearray(declaring(jpeg("RGB", subsampling=0), 8000, 8000))
    sos = b.index(b"\xff\xda")
    length, count = struct.unpack_from(">HB", b, sos + 2)
    assert count == 3 and length == 12
    b[sos + 2:sos + 2 + length] = struct.pack(">HB", 8, 1) + b[sos + 5:sos + 7] + b[sos + 11:sos + 14]
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(NeuralabError, match="8000x8000 pixels not in one sequential scan"):
        decode_image(bytes(b), "upload", "L", CAP)


def test_a_baseline_camera_photo_over_the_cap_is_still_read_at_half_its_size(tmp_path):
    """6000 x 4000 (24 Mpixels, a camera's) in baseline JPEG with an EXIF thumbnail, whose own
    scan comes first in the file: decoded at 3000 x 2000, as before, by the web app and the CLI."""
    stripes = np.arange(4000, dtype=np.uint16)[:, None] // 7 + np.arange(6000, dtype=np.uint16) // 11
    photo = Image.fromarray((stripes % 256).astype(np.uint8)).convert("RGB")
    thumb = io.BytesIO()
    photo.resize((160, 120)).save(thumb, "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 1
    path = tmp_path / "photo.jpg"
    photo.save(path, "JPEG", quality=80, exif=exif.tobytes() + thumb.getvalue())
    assert path.read_bytes().count(b"\xff\xda") == 2  # the thumbnail's scan, then the photo's
    assert decode_image(path.read_bytes(), "upload", "L", CAP).shape == (2000, 3000)
    assert read_image(path, "L", max_pixels=CAP, size=(28, 28)).shape == (28, 28)
    with Image.open(path) as img:
        img.save(tmp_path / "progressive.jpg", "JPEG", progressive=True)
    with pytest.raises(NeuralabError, match="JPEG of 6000x4000 pixels not in one sequential scan"):
        read_image(tmp_path / "progressive.jpg", "L", max_pixels=CAP)


def test_a_16_bit_picture_gives_the_same_bytes_without_float_copies_of_it():
    """A 16-bit grey scan: its 8-bit levels are its levels / 257, rounded, as before; the
    conversion made six float64 copies of the picture (45 bytes a pixel: 720 MB for a 31 KB PNG
    of 4000 x 4000), now a few megabytes beyond the picture itself."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:2000, 0:2000]
    levels = np.clip(rows * 20 + cols * 9 + rng.normal(0, 300, rows.shape), 0, 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(levels).save(buf, "PNG")  # Pillow's I;16
    data = buf.getvalue()
    tracemalloc.start()
    try:
        got = decode_image(data, "upload", "L", CAP)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(got, np.rint(levels / 257).astype(np.uint8))
    assert peak < 8 * levels.size, f"{peak / levels.size:.1f} bytes a pixel"


def test_32_bit_and_float_pictures_keep_their_conversion():
    """Stretched from their own range (NaN and infinities at its ends), or floats in [0, 1] times
    255, as the whole-picture float64 arithmetic gave, across the pieces' borders."""
    rng = np.random.default_rng(1)
    wide = rng.integers(-5000, 70000, (700, 800)).astype(np.int32)
    low, high = float(wide.min()), float(wide.max())
    assert np.array_equal(_to_bytes(wide, "I"), np.rint((wide - low) * (255 / (high - low))).astype(np.uint8))
    floats = rng.random((700, 800)).astype(np.float32)
    floats[0, 0], floats[-1, -1] = np.nan, np.inf
    finite = floats[np.isfinite(floats)].astype(np.float64)
    expected = np.rint(np.nan_to_num(floats.astype(np.float64), nan=finite.min(), posinf=finite.max()) * 255)
    assert np.array_equal(_to_bytes(floats, "F"), expected.astype(np.uint8))


def test_a_baseline_jpeg_with_stray_bytes_between_segments_is_read_scaled():
    """libjpeg steps over bytes between segments (with a warning) and decodes the file; the walk
    that tells a one-scan JPEG stopped at them and refused the photo as progressive."""
    good = bytearray(jpeg("RGB", side=400))
    at = good.index(b"\xff\xdb")  # the first quantisation table
    stray = bytes(good[:at] + b"\x00\x00" + good[at:])
    picture = decode_image(stray, "upload", "RGB", 100_000)
    assert picture.shape == (200, 200, 3)
