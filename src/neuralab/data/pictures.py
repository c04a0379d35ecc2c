"""Reading users' picture files (PNG, JPEG, ...) safely into NumPy arrays, and encoding arrays as image files."""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from pathlib import Path

import numpy as np

from neuralab.errors import NeuralabError, ParameterError

# The formats pictures are written in, by their name's ending (Pillow's names): those neuralab
# reads (FORMATS) but GIF, whose palette reads back a grey picture as colour. Pillow writes some
# thirty more by name alone, of which some fail on a grey picture (XBM) or want a handler
# installed (HDF5, FITS), and others are no picture neuralab reads back (PDF, EPS, ICO).
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".pgm": "PPM", ".ppm": "PPM"}
# What Netpbm's endings hold, where Pillow's PPM writer writes grey and colour alike under either:
# (dimensions of the array, in words, the ending for the other kind)
NETPBM = {".pgm": (2, "grey levels", ".ppm"), ".ppm": (3, "colour", ".pgm")}
# Pictures above this many pixels are refused from their header, before Pillow decodes them
# (decompression bombs: a few kilobytes of PNG can declare gigapixels); a JPEG of one scan is
# decoded at a fraction of its size instead (read_image).
MAX_PIXELS = 40_000_000
# The longest side JPEG can store. A PNG or TIFF may declare 1 x 16,000,000 pixels within the
# pixel cap, and decoding and resizing cost per row: seconds of CPU for 31 KB of zeros.
MAX_PICTURE_SIDE = 65_535
# A progressive JPEG's passes over the picture: encoders write about 10 (libjpeg's script).
# Each costs a decode of the whole picture, and a file may repeat one thousands of times (18 ms
# each at 4000x4000: hours of CPU in 10 MB), which no size in its header tells.
MAX_JPEG_SCANS = 100
MAX_SIDE = 1024  # pixels a side of the images a classifier takes (a dataset's, a run's model.json)
# The formats a user's picture may have, by Pillow's names. Pillow knows some forty more; each
# is a parser fed with untrusted bytes, and some hand the file to another program (EPS and PDF
# to Ghostscript). Photos, scans, drawings and datasets come in these seven.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # PPM: Netpbm's PGM and PPM, classic face datasets
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")  # Pillow's modes with an alpha channel
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, TIFF, WebP or PGM/PPM"
# Pillow's signature tests that other files pass too, which name no format here: an uncompressed
# TGA starts as a CUR does, a binary file whose first four bytes are a small number as a DIB, GBR
# or EMF (WMF) does, a C or CSS file as an XBM.
UNSURE = frozenset({"CUR", "DIB", "GBR", "WMF", "XBM"})
TGA_FOOTER = b"TRUEVISION-XFILE.\0"  # how a TGA file ends (version 2); it has no signature at its start
# The brands an HEIF file (an iPhone's photo) names in its first box; Pillow has no test for them
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# Name endings of pictures in formats neuralab does not open (phones' HEIC, Photoshop, ...): a
# folder's are named in a warning, so that a class never loses its iPhone photos without a word
# as it loses its notes.txt
OTHER_SUFFIXES = frozenset({".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".psd", ".tga", ".svg", ".ico"})
# How a picture's polarity is taken for a classifier: "auto" inverts one drawn dark on light
# (looks_dark_on_light) for a model trained on light-on-dark pictures, MNIST's way, no class of
# them mostly drawn so (Preprocess.inverts); "yes" inverts every picture, "no" none
INVERT = ("auto", "yes", "no")


def picture_suffixes() -> frozenset[str]:
    """The file name endings Pillow gives the formats in ``FORMATS`` (.png, .jpg, .jpeg, .gif,
    .bmp, .tif, .webp, ...): how a folder's pictures are told from its other files."""
    from PIL import Image

    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in FORMATS)


def read_image(path: str | os.PathLike, mode: str | None = None, max_pixels: int = MAX_PIXELS,
               size: tuple[int, int] | None = None, max_side: int = MAX_PICTURE_SIDE) -> np.ndarray:
    """The image at ``path`` as uint8, (H, W) for mode "L" or (H, W, 3) for "RGB"; resized to
    ``size`` (height, width) where given, as ``resize`` resizes (a large JPEG from the reduced
    scale it was decoded at, below).

    ``mode=None`` keeps grayscale images grayscale and turns everything else into RGB.
    Photos stand upright by their EXIF orientation, transparent pixels are shown on white (as
    viewers and web pages show them) or, read in one channel under light strokes on a
    transparent page, on black (``_flattened``), an animation or a multi-page TIFF gives its first frame.
    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size, as libjpeg can in that fraction of the
    time and memory, where it has more than ``max_pixels`` or where that still covers twice
    ``size`` (a 12-megapixel photo for a 64x64 input: 40 photos read in 0.5 s against 15-21 s
    at full size). ``max_pixels`` is what a picture may declare in its header, checked before
    decoding; a JPEG of one scan (a camera's photo) may declare more, up to what its eighth
    brings within it, as it costs only the smaller picture; a progressive one may not, as
    libjpeg holds it at full size whatever the scale (``_jpeg_in_one_scan``). ``max_side``: the
    longest side a picture may declare, at whatever scale it is decoded (the web app's canvas,
    a drawing of 280 x 280, holds any picture to 1024 a side). Only the formats
    in ``FORMATS`` are opened, whatever the file's name says. Folders, unreadable, empty,
    non-image, other-format and oversized files give a NeuralabError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise NeuralabError(f"{path}: is a folder, not a picture; give a {FORMAT_NAMES} file")
    if not path.exists():
        raise NeuralabError(f"{path}: file not found")
    if not path.is_file():
        raise NeuralabError(f"{path}: not a regular file; give a {FORMAT_NAMES} file")
    if path.stat().st_size == 0:
        raise NeuralabError(f"{path}: file is empty; give a {FORMAT_NAMES} file")
    return _decode(path, str(path), mode, max_pixels, size, max_side)


def picture_size(path: str | os.PathLike) -> tuple[int, int]:
    """A picture file's (width, height) as its header declares it, the size viewers and the
    pixel caps' messages give: a large JPEG is decoded at a fraction of it."""
    from PIL import Image

    with Image.open(path, formats=FORMATS) as img:
        return img.size


def has_transparency(path: str | os.PathLike) -> bool:
    """Whether the picture at ``path`` may have transparent pixels, as its header says (an alpha
    channel, or a PNG's or GIF's transparent colour): those ``read_image`` lays on a page that
    depends on the mode it is read in (``_flattened``), so that only such a picture reads
    otherwise in one channel than in three. An unreadable header says it may."""
    from PIL import Image

    try:
        with Image.open(path, formats=FORMATS) as img:
            return img.mode in TRANSPARENT_MODES or "transparency" in img.info
    except Exception:  # read_image, reading it again, says what is wrong with it
        return True


def decode_image(data: bytes, name: str, mode: str | None = None, max_pixels: int = MAX_PIXELS,
                 size: tuple[int, int] | None = None, max_side: int = MAX_PICTURE_SIDE) -> np.ndarray:
    """A picture file's bytes already in memory (an upload), read as ``read_image`` reads a
    file, with no file written anywhere; errors name the picture ``name``."""
    if not data:
        raise NeuralabError(f"{name}: file is empty; give a {FORMAT_NAMES} file")
    return _decode(io.BytesIO(data), name, mode, max_pixels, size, max_side)


def _decode(source: Path | io.BytesIO, name: str, mode: str | None, max_pixels: int,
            size: tuple[int, int] | None = None, max_side: int = MAX_PICTURE_SIDE) -> np.ndarray:
    from PIL import Image

    try:
        img = Image.open(source, formats=FORMATS)
        with img:
            width, height, fmt = *img.size, img.format
            if fmt in ("JPEG", "MPO"):
                if width * height > max_pixels and not _jpeg_in_one_scan(source):
                    raise NeuralabError(
                        f"{name}: a JPEG of {width}x{height} pixels not in one sequential scan (a progressive one, "
                        f"say) is more than the {max_pixels:,} allowed (it is decoded at full size, whatever size it "
                        "is read at); resize it first")
                scale = _jpeg_scale(width, height, max_pixels, size)
                if scale > 1:  # libjpeg scales it down while decoding
                    img.draft(None, (width // scale, height // scale))
            if img.width * img.height > max_pixels:
                raise _too_many_pixels(name, width, height, max_pixels)
            if max(width, height) > max_side:
                raise NeuralabError(f"{name}: {width}x{height} pixels has a side longer than the "
                                    f"{max_side:,} allowed; crop or resize it first")
            if fmt in ("JPEG", "MPO") and _jpeg_scans(source) > MAX_JPEG_SCANS:
                raise NeuralabError(f"{name}: a JPEG of more than {MAX_JPEG_SCANS} scans, which encoders do not "
                                    "write (a file made to take hours to decode); save it again as a JPEG")
            img.load()
            img = _upright(img)
            if img.mode.startswith(("I", "F")):  # 16- and 32-bit grey: to 0-255 by its own range
                # a PGM of more than 8 bits comes as 32-bit levels, scaled by Pillow from its maximum to 65535
                depth = "I;16" if img.mode == "I" and fmt == "PPM" else img.mode
                img = Image.fromarray(_to_bytes(np.asarray(img), depth))
            if mode is None:
                mode = "L" if img.mode in ("1", "L", "LA", "La") else "RGB"
            if img.mode in TRANSPARENT_MODES or "transparency" in img.info:
                img = _flattened(img, mode)
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.LANCZOS)  # as resize() resizes
            return np.asarray(img, dtype=np.uint8).copy()
    except NeuralabError:
        raise
    except MemoryError:
        raise NeuralabError(f"{name}: too large to decode in this machine's memory; resize it first") from None
    except Image.DecompressionBombError:
        # Pillow refuses, before any check above, a header declaring more than twice its own
        # MAX_IMAGE_PIXELS, without the size: the size is read again, past its check, to be named
        declared = _declared_size(source)
        if declared is None:
            raise NeuralabError(f"{name}: image is too large to decode safely; resize it first") from None
        limit = min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else max_pixels
        raise _too_many_pixels(name, *declared, limit, "too large to decode safely") from None
    except Image.UnidentifiedImageError:
        other = _other_format(source)
        if other:
            raise NeuralabError(f"{name}: {other} format, which neuralab does not open; "
                                f"convert it to {FORMAT_NAMES}") from None
        raise NeuralabError(f"{name}: not a readable image; give a {FORMAT_NAMES} file") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise NeuralabError(f"{name}: not a readable image ({e}); give a {FORMAT_NAMES} file") from None


def _upright(img):
    """A photo turned upright by its EXIF orientation tag, as viewers show it; as it is where the
    tag is missing, unknown or unreadable. Only the tag is read: Pillow's ``exif_transpose`` also
    writes the EXIF back without the tag, and raised TypeError or struct.error on a tag of an
    unexpected type elsewhere in it (text where a number belongs, as some cameras write), a
    traceback for a picture any viewer shows."""
    from PIL import Image

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # damaged EXIF says nothing of the orientation: the picture as stored
        return img
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _too_many_pixels(name: str, width: int, height: int, max_pixels: int, why: str = "") -> NeuralabError:
    """The one wording of a picture refused for the pixels its header declares."""
    why = f" ({why})" if why else ""
    return NeuralabError(f"{name}: {width}x{height} pixels is more than the {max_pixels:,} allowed{why}; resize it first")


def _declared_size(source: Path | io.BytesIO) -> tuple[int, int] | None:
    """(width, height) as the picture's header declares them, read by the Pillow plugin of its
    format (one of FORMATS) as ``Image.open`` reads them, less its decompression-bomb check;
    None where no plugin reads the header. A WebP's and a GIF's are read from their bytes here:
    Pillow's plugins make the check themselves, inside the reading, so that no size comes out
    of them."""
    from PIL import Image

    Image.init()
    try:
        with contextlib.ExitStack() as stack:
            fp = source if isinstance(source, io.BytesIO) else stack.enter_context(open(source, "rb"))
            fp.seek(0)
            header = fp.read(30)
            prefix = header[:16]
            if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
                return _webp_size(header)
            if prefix[:6] in (b"GIF87a", b"GIF89a"):
                fp.seek(0)
                return _gif_size(fp)
            for fmt in FORMATS:
                factory, accept = Image.OPEN.get(fmt, (None, None))
                known = accept(prefix) if accept else factory is not None
                if not known or isinstance(known, str):  # a str: Pillow's warning that the format is not this
                    continue
                fp.seek(0)
                with factory(fp, "") as img:
                    return img.size
    except (OSError, SyntaxError, ValueError, IndexError, TypeError, struct.error, Image.DecompressionBombError):
        return None
    return None


def _gif_size(fp) -> tuple[int, int] | None:
    """(width, height) of a GIF as Pillow sizes it from its first frame (the GIF89a spec's
    layout): the logical screen, stretched to hold the first image descriptor's rectangle (its
    left, top, width and height) where that reaches past it; None where the bytes end first."""
    screen = fp.read(13)  # the signature, then the screen's width, height and flags, 16-bit little-endian
    if len(screen) < 13:
        return None
    width, height, flags = *struct.unpack("<HH", screen[6:10]), screen[10]
    if flags & 0x80:  # a global color table: 2^(N+1) RGB triples
        fp.seek(3 << ((flags & 7) + 1), io.SEEK_CUR)
    while True:
        kind = fp.read(1)
        if kind == b"!":  # an extension: its label, then sub-blocks, each led by its length, to a 0
            fp.read(1)
            while (length := fp.read(1)) and length[0]:
                fp.seek(length[0], io.SEEK_CUR)
            if not length:
                return None
        elif kind == b",":
            frame = fp.read(8)
            if len(frame) < 8:
                return None
            left, top, w, h = struct.unpack("<HHHH", frame)
            return max(width, left + w), max(height, top + h)
        else:  # the trailer, or bytes no GIF holds: the screen is all there is
            return width, height


def _webp_size(header: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first 30 bytes, by the layout of its first chunk (the WebP
    container spec): VP8X (extended) stores the canvas's sides less one in 24 bits each, VP8L
    (lossless) in 14 bits each after its signature byte 2F, VP8 (lossy) in the low 14 bits of
    two 16-bit numbers after its key frame's start code; None for anything else."""
    chunk = header[12:16]
    if chunk == b"VP8X" and len(header) >= 30:
        return int.from_bytes(header[24:27], "little") + 1, int.from_bytes(header[27:30], "little") + 1
    if chunk == b"VP8L" and len(header) >= 25 and header[20] == 0x2F:
        bits = int.from_bytes(header[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(header) >= 30 and header[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(header[26:28], "little") & 0x3FFF, int.from_bytes(header[28:30], "little") & 0x3FFF
    return None


def _jpeg_scale(width: int, height: int, max_pixels: int, size: tuple[int, int] | None) -> int:
    """The fraction (1, 2, 4 or 8) of a JPEG's size to decode it at: the largest that still
    covers twice ``size`` on either side (EXIF may turn the photo), and at least the one that
    brings it within ``max_pixels`` (a 50-megapixel camera's photo). Twice, as Pillow's
    thumbnail() leaves it (reducing_gap=2): libjpeg's scaled decode aliases fine patterns,
    which LANCZOS then smooths; decoded just to the size, 5-pixel stripes came out 17 grey
    levels from the full decode's, on average, at twice it 0.3, in about the same time."""
    fits = next((s for s in (1, 2, 4) if math.ceil(width / s) * math.ceil(height / s) <= max_pixels), 8)
    covers = max((s for s in (1, 2, 4, 8) if min(width, height) // s >= 2 * max(size)), default=1) if size else 1
    return max(fits, covers)


# The frames libjpeg can decode scaled, one row of blocks at a time when their first scan holds every
# colour: baseline and extended sequential (Huffman), sequential arithmetic. Lossless (SOF3) and
# hierarchical ones are not scaled; progressive ones (SOF2, SOF10) keep every coefficient.
SEQUENTIAL_FRAMES = frozenset({0xC0, 0xC1, 0xC9})


def _jpeg_in_one_scan(source: Path | io.BytesIO) -> bool:
    """Whether libjpeg decodes this JPEG in one pass, holding a row of blocks at a time, so that
    ``draft()`` makes it cost what the smaller picture costs: a sequential frame whose first scan
    holds all its colours (libjpeg's test for a file of one scan). A progressive JPEG, or one whose
    colours come one scan each, is held as the coefficients of the full-size picture whatever
    the scale (1.4 GB for a 705-byte progressive CMYK file declaring 13370 x 13370); so is any
    file whose markers this walk cannot follow. The segments are stepped over by their lengths,
    as libjpeg reads them, so that an EXIF thumbnail's scan is not taken for the picture's."""
    with open(source, "rb") if isinstance(source, Path) else contextlib.nullcontext(source) as f:
        at = f.tell()
        try:
            f.seek(0)
            if f.read(2) != b"\xff\xd8":
                return False
            colours = None
            while _next_ff(f):
                marker = f.read(1)
                while marker == b"\xff":  # fill bytes before a marker
                    marker = f.read(1)
                if not marker or marker[0] in (0x00, 0xD8, 0xD9):
                    return False
                if 0xD0 <= marker[0] <= 0xD7 or marker[0] == 0x01:  # markers without a segment
                    continue
                length = int.from_bytes(f.read(2), "big") - 2
                if length < 0:
                    return False
                if marker[0] == 0xDA:  # the first scan: its first byte counts its colours
                    return colours is not None and f.read(1) == bytes([colours])
                if 0xC0 <= marker[0] <= 0xCF and marker[0] not in (0xC4, 0xC8, 0xCC):  # a frame, not DHT/JPG/DAC
                    frame = f.read(length)
                    if marker[0] not in SEQUENTIAL_FRAMES or colours is not None or len(frame) < 6:
                        return False
                    colours = frame[5]
                else:
                    f.seek(length, os.SEEK_CUR)
            return False
        finally:
            f.seek(at)


def _next_ff(f) -> bool:
    """Step ``f`` past the next byte FF, as libjpeg steps over stray bytes between segments (with a
    warning, and decodes the file); False at the file's end."""
    while chunk := f.read(1 << 16):
        at = chunk.find(b"\xff")
        if at >= 0:
            f.seek(at + 1 - len(chunk), os.SEEK_CUR)
            return True
    return False


def _jpeg_scans(source: Path | io.BytesIO) -> int:
    """The start-of-scan markers in a JPEG file: FF DA stands nowhere else, since the coded data
    writes a byte FF as FF 00 (an EXIF thumbnail's own scans count too, a few at most)."""
    if isinstance(source, io.BytesIO):
        return source.getvalue().count(b"\xff\xda")
    count, tail = 0, b""
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            chunk = tail + block
            count += chunk.count(b"\xff\xda")
            tail = block[-1:] if block[-1:] == b"\xff" else b""  # a marker split across two blocks
    return count


def _flattened(img, mode: str):
    """A picture with transparent pixels laid on a page, for reading in ``mode``: white, as viewers
    and web pages show them; in one channel ("L"), black where the transparent pixels are the
    page (more than half of the picture) and everything drawn on it is light (no more than 1% of
    its opaque pixels darker than mid-grey): white strokes on a transparent page, as digits are
    exported, laid on white left a blank square, trained and classified without a word. A light
    card with dark writing and transparent margins keeps white margins, however wide (black ones
    framed it, and the frame told ``invert`` that it was drawn light on dark). Colour pictures
    all get white: a colour dataset of cut-outs (stickers, products) whose page followed each
    one's brightness would tell its class by its background. Dropping the alpha, as Keras does,
    shows what lies under it, often black: black strokes drawn on a transparent page became a
    black square. The one rule for every reader, a dataset's and one to classify alike, so that
    a model is given the picture it was trained on. A picture with no transparent pixel (most
    PNGs with an alpha channel) is as it was."""
    from PIL import Image

    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:  # no copy of the alpha band (64 MB for a 4000x4000 picture)
        return rgba
    if mode != "L":
        return Image.alpha_composite(Image.new("RGBA", img.size, "white"), rgba)
    # the mean of a copy at most ~256 a side: the same answer, without float copies of 16 Mpixels
    small = np.asarray(rgba.reduce(max(1, max(rgba.size) // 256)), dtype=np.float32)
    opacity = small[..., 3] / 255
    lum = small[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's "L"
    opaque = opacity >= 0.5
    light_on_clear = float(opaque.mean()) < 0.5 and opaque.any() and float((lum[opaque] < 127.5).mean()) <= 0.01
    page = "black" if light_on_clear else "white"
    return Image.alpha_composite(Image.new("RGBA", img.size, page), rgba)


# Pixels converted at a time by _to_bytes: its float64 arithmetic on a whole 16-megapixel picture
# made six copies of it, 720 MB for a 31 KB PNG; in pieces it holds a few megabytes more than the picture
TO_BYTES_PIECE = 1 << 18


def _to_bytes(values: np.ndarray, mode: str) -> np.ndarray:
    """Grey levels of a 16-bit, 32-bit or floating-point picture (Pillow's modes I;16*, I, F) as
    uint8: 16-bit ones divided by 257, whatever their darkest and brightest; floats in [0, 1]
    times 255; others stretched from their own minimum to their maximum. Clipping them to 255
    turned most of a 16-bit picture white."""
    flat = values.reshape(-1)
    pieces = [flat[i:i + TO_BYTES_PIECE] for i in range(0, flat.size, TO_BYTES_PIECE)]
    if values.dtype.kind == "f":
        ranges = [(p.min(), p.max()) for p in (p[np.isfinite(p)] for p in pieces) if p.size]
    else:  # whole numbers are all finite: no copy
        ranges = [(flat.min(), flat.max())] if flat.size else []
    low, high = (float(min(r[0] for r in ranges)), float(max(r[1] for r in ranges))) if ranges else (0.0, 0.0)
    out = np.empty(flat.shape, np.uint8)
    at = 0
    for piece in pieces:
        piece = np.nan_to_num(piece.astype(np.float64), copy=False, nan=low, posinf=high, neginf=low)
        if mode.startswith("I;16"):
            scaled = piece / 257
        elif mode == "F" and 0 <= low and high <= 1:
            scaled = piece * 255
        elif 0 <= low and high <= 255 and mode != "F":
            scaled = piece  # 8-bit levels in a 32-bit picture
        else:
            scaled = (piece - low) * (255 / (high - low)) if high > low else np.zeros_like(piece)
        out[at:at + piece.size] = np.clip(np.rint(scaled), 0, 255)
        at += piece.size
    return out.reshape(values.shape)


def _other_format(source: Path | io.BytesIO) -> str | None:
    """The name of the refused format ``source`` is in, told by its last bytes (TGA) or by
    Pillow's signature tests of its first 16 (the sure ones); no parser of that format runs."""
    from PIL import Image

    Image.init()
    with open(source, "rb") if isinstance(source, Path) else contextlib.nullcontext(source) as f:
        f.seek(0)
        prefix = f.read(16)
        f.seek(max(0, f.seek(0, os.SEEK_END) - len(TGA_FOOTER)))
        tail = f.read()
    if tail == TGA_FOOTER:
        return "TGA"
    if prefix[4:8] == b"ftyp" and prefix[8:12] in HEIF_BRANDS:
        return "HEIC"
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if name not in FORMATS and name not in UNSURE and accept is not None and accept(prefix):
                return name
        except Exception:  # a plugin's test that chokes on odd bytes tells us nothing
            continue
    return None


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (H, W) or (H, W, C) uint8 image with antialiasing."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def looks_dark_on_light(image: np.ndarray) -> bool:
    """True when the border of the picture (H, W) or (H, W, 3) is mostly light (``light_bordered``):
    a drawing on paper, not MNIST-style."""
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return bool(light_bordered(chw[None])[0])


def light_bordered(images: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each of ``images`` (N, C, H, W) uint8 has a mostly light border, its
    outermost pixels, all channels together, above 127 on average, as a photo or a drawing on
    paper has and an MNIST digit never does."""
    border = np.concatenate([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], axis=2)
    return border.mean(axis=(1, 2), dtype=np.float64) > 127


def encode_image(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """A uint8 (H, W) or (H, W, 3) array as the bytes of an image file in Pillow's ``fmt``;
    ``options`` are Pillow's for that format (``compress_level=1``: a faster, larger PNG)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format=fmt, **options)
    return buf.getvalue()


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as a picture of a format neuralab reads
    (``WRITE_FORMATS``, told by ``path``'s ending), atomically."""
    from neuralab.files import atomic_write

    suffix = Path(path).suffix.lower()
    fmt = WRITE_FORMATS.get(suffix)
    if fmt is None:
        raise ParameterError("path", str(path), f"pictures are written as {', '.join(WRITE_FORMATS)}; "
                                                "give a name with one of these endings")
    if suffix in NETPBM and np.ndim(image) != NETPBM[suffix][0]:  # converted, it would not read back as it is
        ndim, holds, other = NETPBM[suffix]
        raise ParameterError("path", str(path), f"a {suffix} picture holds {holds} only, and this one is "
                                                f"{'in colour' if ndim == 2 else 'grey'}; give a name ending in {other} "
                                                "or .png")
    # WebP's default is lossy: a result written to be read back, a lesson's figures, keeps every value
    data = encode_image(image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    with atomic_write(path, "wb") as f:
        f.write(data)
