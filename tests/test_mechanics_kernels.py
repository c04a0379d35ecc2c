"""The classic kernels on pictures, against scipy.signal.correlate2d; parsing; closest kernels."""

from __future__ import annotations

import codecs

import numpy as np
import pytest
from scipy.signal import correlate2d

from neuralab.errors import NeuralabError
from neuralab.mechanics.kernels import (
    KERNELS,
    apply_kernel,
    closest_kernels,
    default_scale,
    get_kernel,
    parse_kernel,
    scale_reason,
    to_uint8,
)


def scipy_apply(plane, kernel, stride, pads):
    """What apply_kernel must give for one channel: zero-pad, correlate ('valid'), keep every stride-th."""
    padded = np.pad(plane.astype(float), pads)
    return correlate2d(padded, kernel, mode="valid")[:: stride[0], :: stride[1]]


def picture(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize(
    "shape,stride,padding,pads",
    [((20, 17), (1, 1), "valid", 0), ((20, 17), (2, 2), 1, 1), ((9, 12), (1, 1), "same", 1), ((11, 8), (2, 3), 2, 2)],
)
def test_named_kernels_equal_scipy_on_gray(name, shape, stride, padding, pads):
    image = picture(shape)
    kernel = KERNELS[name]
    got = apply_kernel(image, kernel, stride, padding)
    np.testing.assert_allclose(got, scipy_apply(image, kernel, stride, pads), rtol=1e-12, atol=1e-9)


def test_per_channel_and_summed_depth_equal_scipy_on_rgb():
    image = picture((15, 13, 3), seed=1)
    kernel = KERNELS["sobel-y"]
    per_channel = apply_kernel(image, kernel)
    assert per_channel.shape == (13, 11, 3)
    for c in range(3):
        np.testing.assert_allclose(per_channel[..., c], correlate2d(image[..., c].astype(float), kernel, mode="valid"))
    summed = apply_kernel(image, kernel, depth="sum", stride=2, padding="same")
    expected = sum(scipy_apply(image[..., c], kernel, (2, 2), 1) for c in range(3))
    np.testing.assert_allclose(summed, expected)
    assert summed.shape == (8, 7)


def test_same_stride_1_equals_scipy_same():
    image = picture((10, 14), seed=2)
    for name in ("sharpen", "laplacian", "gaussian"):
        np.testing.assert_allclose(apply_kernel(image, KERNELS[name], padding="same"), correlate2d(image.astype(float), KERNELS[name], mode="same"))


def test_workshop_kernels_are_the_slides():
    assert np.allclose(KERNELS["box-blur"], 1 / 9)
    assert KERNELS["sharpen"].tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert KERNELS["sobel-y"].tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]  # slide: "Horizontal"
    assert KERNELS["sobel-x"].tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]  # slide: "Vertical"
    assert get_kernel("blur")[0] == "box-blur" and get_kernel("Sobel-X")[0] == "sobel-x"


def test_custom_kernel_from_string_and_file(tmp_path):
    assert parse_kernel("1,0,-1;2,0,-2;1,0,-1").tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    assert np.allclose(parse_kernel("1/9 1/9; 1/9 1/9"), 1 / 9)
    name, k = get_kernel("0.5, -1.5")
    assert name == "custom" and k.shape == (1, 2)
    path = tmp_path / "edge.txt"
    path.write_text("-1 -1 -1\n-1 8 -1\n-1 -1 -1\n")
    name, k = get_kernel(str(path))
    assert name == "edge" and k[1, 1] == 8 and k.sum() == 0


def test_kernel_files_saved_by_windows_tools_read_as_written(tmp_path):
    """Notepad's "UTF-8 with BOM" read as "'\\ufeff1' is not a number", PowerShell's UTF-16 as
    "'��1\\x00' is not a number"; a file in another encoding gets a line that says what to do."""
    text = "-1 -1 -1\r\n-1 8 -1\r\n-1 -1 -1\r\n"
    saved = {"utf-8": text.encode(), "utf-8-sig": text.encode("utf-8-sig"), "utf-16": text.encode("utf-16"),
             "utf-16-be": codecs.BOM_UTF16_BE + text.encode("utf-16-be")}
    for encoding, data in saved.items():
        path = tmp_path / f"edge-{encoding}.txt"
        path.write_bytes(data)
        name, k = get_kernel(str(path))
        assert name == path.stem and k.tolist() == parse_kernel(text).tolist(), encoding
    path = tmp_path / "weights.txt"
    path.write_bytes(b"1/9 1/9\n1/9 \xbd\n")  # Windows-1252's one half
    with pytest.raises(NeuralabError) as e:
        get_kernel(str(path))
    assert str(e.value) == f"kernel file {path}: not UTF-8 text; save it as plain UTF-8"
    for encoding in ("utf-32", "utf-32-be"):  # UTF-32's little-endian mark begins with UTF-16's: read as that,
        path = tmp_path / f"edge-{encoding}.txt"  # it gave "'\x001\x00' is not a number"
        path.write_bytes(text.encode(encoding) if encoding == "utf-32" else codecs.BOM_UTF32_BE + text.encode(encoding))
        with pytest.raises(NeuralabError) as e:
            get_kernel(str(path))
        assert str(e.value) == f"kernel file {path}: not UTF-8 text; save it as plain UTF-8", encoding


@pytest.mark.parametrize(
    "spec,message",
    [
        ("1,a;2,3", "kernel: 'a' is not a number"),
        ("1,2;3", "is not a rectangle of numbers"),
        ("1/0", "'1/0' is not a number"),
        # an empty value was dropped: a 3x2 kernel where a 3x3 one was meant
        ("-1,,1;-2,,2;-1,,1", "kernel: row 1 '-1,,1' has an empty value; every comma stands between two numbers"),
        ("1,2;3,", "is not a rectangle of numbers"),  # a row's trailing comma ends it, as a spreadsheet's do
        ("wobble", "not a known name (identity, box-blur"),
        (";".join([",".join(["1"] * 40)] * 40), "40x40 is too large; sides from 1 to 31"),
    ],
)
def test_bad_custom_kernels_say_what_is_wrong(spec, message):
    with pytest.raises(NeuralabError) as e:
        get_kernel(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_to_uint8_scales():
    values = np.array([-300.0, -2.4, 0.5, 254.6, 400.0])
    assert to_uint8(values, "clip").tolist() == [0, 0, 0, 255, 255]
    assert to_uint8(values, "abs").tolist() == [255, 2, 0, 255, 255]
    assert to_uint8(np.array([-1.0, 0.0, 1.0]), "minmax").tolist() == [0, 128, 255]
    with np.errstate(all="raise"):  # a range of subnormal numbers: 255 / range overflows to infinity
        assert to_uint8(np.array([-2.2e-318, 0.0, 2.0e-318]), "minmax").tolist() == [0, 134, 255]
    assert [default_scale(KERNELS[k]) for k in ("sobel-x", "laplacian", "sharpen", "box-blur")] == ["abs", "abs", "clip", "clip"]
    assert default_scale(KERNELS["box-blur"], summed_colour=True) == "minmax"


def test_closest_kernels_finds_each_classic_kernel_and_its_negative():
    names = list(KERNELS)
    weights = np.stack([KERNELS[n] for n in names])[:, None]  # (8, 1, 3, 3)
    matches = closest_kernels(weights)
    assert [m.name for m in matches] == names
    assert all(abs(m.similarity - 1) < 1e-12 for m in matches)
    (flipped,) = closest_kernels(-KERNELS["sobel-x"][None, None])
    assert flipped.name == "sobel-x" and abs(flipped.similarity + 1) < 1e-12


def test_closest_kernels_sizes_channels_and_noise():
    rng = np.random.default_rng(0)
    big = np.pad(KERNELS["laplacian"], 1) + rng.normal(scale=0.05, size=(5, 5))  # a 5x5 filter, laplacian at the centre
    rgb = np.stack([KERNELS["sobel-y"] * s for s in (0.5, 1.0, 1.5)])  # (3, 3, 3), channels averaged
    assert closest_kernels(big[None, None])[0].name == "laplacian"
    assert closest_kernels(rgb[None])[0].name == "sobel-y"
    assert closest_kernels(np.ones((2, 1, 2, 2))) == [(None, 0.0), (None, 0.0)]  # no 3x3 kernel fits a 2x2 filter
    assert closest_kernels(np.zeros((1, 1, 3, 3)))[0].similarity == 0.0


def test_kernel_files_as_spreadsheets_and_old_macs_write_them_read_as_their_rows(tmp_path):
    """A file of CR-only lines (Excel for Mac's "CSV (Macintosh)") read as a 1x9 kernel; rows of
    commas alone and commas ending each row (a spreadsheet's wider range) were refused as empty
    values. An empty value between two numbers still is."""
    sobel = parse_kernel("1,0,-1;2,0,-2;1,0,-1").tolist()
    for name, data in (("mac.csv", b"1,0,-1\r2,0,-2\r1,0,-1\r"), ("mac16.txt", "1 0 -1\r2 0 -2\r1 0 -1\r".encode("utf-16")),
                       ("excel.csv", b"1,0,-1,,\r\n2,0,-2,,\r\n1,0,-1,,\r\n,,,,\r\n")):
        (tmp_path / name).write_bytes(data)
        assert get_kernel(str(tmp_path / name))[1].tolist() == sobel, name
    assert parse_kernel("1,0,-1,;2,0,-2,;1,0,-1,").tolist() == sobel
    with pytest.raises(NeuralabError, match=r"row 2 '2,,-2' has an empty value"):
        parse_kernel("1,0,-1\n,,\n2,,-2\n1,0,-1")


def test_auto_scale_stretches_kernels_that_do_not_keep_the_brightness():
    """The Gaussian as typed before dividing by 16 was clipped: every pixel of the result 255.
    Kernels summing to about 1 are clipped, to 0 shown as |value|, any other sum stretched."""
    typed = {"gaussian x16": KERNELS["gaussian"] * 16, "box x9": np.ones((3, 3)), "minus one": -np.ones((1, 1)),
             "half": KERNELS["identity"] / 2}
    assert {name: default_scale(k) for name, k in typed.items()} == dict.fromkeys(typed, "minmax")
    assert default_scale(np.full((3, 3), 0.11)) == "clip"  # 1/9 typed as 0.11: a box blur
    picture = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(float)
    shown = to_uint8(apply_kernel(picture, typed["gaussian x16"]), default_scale(typed["gaussian x16"]))
    assert shown.min() == 0 and shown.max() == 255
    normalised = to_uint8(apply_kernel(picture, KERNELS["gaussian"]), "minmax")
    assert np.abs(shown.astype(int) - normalised).max() <= 1  # the same picture, up to rounding
    assert scale_reason(typed["gaussian x16"]) == "the kernel sums to 16, not 1: clipped, the picture would come out too bright"
    assert scale_reason(KERNELS["sharpen"]) == "the kernel sums to 1: it keeps the brightness"


def test_a_decimal_comma_spreadsheets_kernel_file_is_refused_not_read_as_other_numbers(tmp_path):
    """A spreadsheet where the decimal mark is a comma splits values by ';' (or tabs): read with ';'
    ending rows, '0;1;0' on three lines gave a 9x1 kernel and '0,5;0,5' the values 0 and 5,
    silently. Such files are refused naming the line; the command line's rows over several lines,
    and English CSVs of two columns (the workshop's dot product), read as ever."""
    refused = {"laplacian_excel.csv": b"0;1;0\r\n1;-4;1\r\n0;1;0\r\n",
               "blur_de.csv": b"0,0625;0,125;0,0625\n0,125;0,25;0,125\n0,0625;0,125;0,0625\n",
               "gauss_tab_de.txt": b"0,0625\t0,125\t0,0625\n0,125\t0,25\t0,125\n0,0625\t0,125\t0,0625\n"}
    for name, data in refused.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(NeuralabError, match=rf"kernel file .*{name}: (line|row) 1 .*decimal") as e:
            get_kernel(str(tmp_path / name))
        assert "\n" not in str(e.value)
    sobel = KERNELS["sobel-x"].tolist()
    read = {"rows.txt": (b"1,0,-1; 2,0,-2;\n1,0,-1\n", [[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
            "ends.csv": (b"1,0,-1;\n2,0,-2;\n1,0,-1;\n", [[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
            "spaces.txt": (b"1 0 -1; 2 0 -2\n1 0 -1\n", [[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
            "dot.csv": (b"0,1\r\n2,3\r\n", [[0, 1], [2, 3]]),
            "column.csv": (b"1;\n2;\n1;\n", [[1], [2], [1]])}
    for name, (data, kernel) in read.items():
        (tmp_path / name).write_bytes(data)
        assert get_kernel(str(tmp_path / name))[1].tolist() == kernel, name
    assert parse_kernel("1,0,-1;2,0,-2;1,0,-1").tolist() == [[-v for v in row] for row in sobel]
    assert parse_kernel("0,1;1,0").tolist() == [[0, 1], [1, 0]]  # one line: ';' ends rows, as documented
