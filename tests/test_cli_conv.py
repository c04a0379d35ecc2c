"""`neuralab conv ...`: outputs, written pictures (shape and values) and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from neuralab.cli import main
from neuralab.mechanics.kernels import KERNELS


def run(capsys, *argv):
    code = main(["conv", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def argparse_error(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(["conv", *argv])
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def gray(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (21, 30), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "gray.png")
    return tmp_path / "gray.png", pixels


@pytest.fixture
def rgb(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (16, 19, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    return tmp_path / "rgb.png", pixels


def read(path):
    return np.asarray(Image.open(path))


def test_demo_prints_every_step(capsys):
    code, out, _ = run(capsys, "demo")
    assert code == 0
    for text in ("sum = 0 + 1 + 6 + 12 = 19", "19 25", "37 43", "4 3 4", "2 4 3", "2 3 4", "= -25", "61,706",
                 "0  0 16 24  9 13  1  0  0", "slide: Convolved Feature with filter"):
        assert text in out


def test_demo_one_example_and_list(capsys):
    code, out, _ = run(capsys, "demo", "dot-product")
    assert code == 0 and "43" in out and "Convolved Feature" not in out
    code, out, _ = run(capsys, "demo", "--list")
    assert code == 0 and "padding" in out and "Lenet-5" in out
    code, _, err = run(capsys, "demo", "nope")
    assert code == 2 and "example 'nope': allowed are dot-product" in err


def test_shape_of_the_issue_example(capsys):
    code, out, _ = run(capsys, "shape", "--input", "32x32x3", "--filters", "16", "--kernel", "5", "--stride", "2", "--padding", "same")
    assert code == 0
    assert "output shape: 16x16x16" in out
    assert "floor((32 - 5 + (1+2)) / 2) + 1 = floor(30/2) + 1 = 16" in out
    assert "3 is odd: 1 on the top, 2 on the bottom" in out
    assert "16 x (3 x 5 x 5 + 1) = 1,216" in out


def test_shape_floor_case_and_rectangular_settings(capsys):
    code, out, _ = run(capsys, "shape", "--input", "28x28x1", "--kernel", "3", "--stride", "2")
    assert code == 0 and "output shape: 13x13x1" in out and "the last of 28 padded rows (input row 27) is never covered" in out
    code, out, _ = run(capsys, "shape", "--input", "9x8x2", "--kernel", "3x2", "--stride", "2x1", "--padding", "1", "--no-bias")
    assert code == 0 and "output shape: 5x9x1" in out and "F x C x K_h x K_w (no bias) = 1 x 2 x 3 x 2 = 12" in out


@pytest.mark.parametrize(
    "argv,option,allowed",
    [
        (["--stride", "0"], "--stride", "at least 1"),
        (["--stride", "-2"], "--stride", "at least 1"),
        (["--kernel", "0"], "--kernel", "at least 1"),
        (["--padding", "full"], "--padding", "valid, same or a whole number >= 0"),
        (["--filters", "0"], "--filters", "at least 1"),
    ],
)
def test_shape_bad_options(capsys, argv, option, allowed):
    settings = {"--input": "8x8x1", "--kernel": "3"}
    settings.update(dict(zip(argv[::2], argv[1::2])))
    line = argparse_error(capsys, "shape", *[a for kv in settings.items() for a in kv])
    assert option in line and allowed in line


def test_shape_kernel_larger_than_padded_input(capsys):
    code, out, err = run(capsys, "shape", "--input", "4x4x1", "--kernel", "7", "--padding", "1")
    assert code == 2 and out == ""
    assert err == ("neuralab: error: --kernel 7x7 is larger than the padded input 6x6; allowed: 1 to 6 high and 1 to 6 "
                   "wide, or more --padding\n")  # the library names its parameters, the command its flags


def test_kernels_lists_the_library(capsys):
    code, out, _ = run(capsys, "kernels")
    assert code == 0 and all(name in out for name in KERNELS) and "-1  5 -1" in out


def test_apply_sobel_on_gray_writes_the_values_and_a_figure(capsys, gray, tmp_path):
    path, pixels = gray
    out_png = tmp_path / "edges.png"
    code, out, _ = run(capsys, "apply", str(path), "--kernel", "sobel-x", "--out", str(out_png))
    assert code == 0 and "21x30x1 -> output 19x28x1" in out
    expected = np.clip(np.rint(np.abs(correlate2d(pixels.astype(float), KERNELS["sobel-x"], mode="valid"))), 0, 255)
    assert np.array_equal(read(out_png), expected.astype(np.uint8))
    figure = read(tmp_path / "edges-figure.png")
    assert figure.ndim == 3 and figure.shape[1] > 2 * figure.shape[0]  # three panels side by side


def test_apply_custom_kernel_with_stride_and_padding_raw_values(capsys, gray, tmp_path):
    path, pixels = gray
    out_npy = tmp_path / "raw.npy"
    code, _, _ = run(capsys, "apply", str(path), "--kernel", "1,0,-1;2,0,-2;1,0,-1", "--stride", "2", "--padding", "same",
                     "--out", str(out_npy), "--no-figure")
    assert code == 0 and not (tmp_path / "raw-figure.png").exists()
    # "same" with stride 2: 21 rows need 2 zeros (1 top, 1 bottom), 30 columns need 1 (on the right)
    padded = np.pad(pixels.astype(float), ((1, 1), (0, 1)))
    expected = correlate2d(padded, [[1, 0, -1], [2, 0, -2], [1, 0, -1]], mode="valid")[::2, ::2]
    np.testing.assert_allclose(np.load(out_npy), expected)
    assert np.load(out_npy).shape == (11, 15)


def test_apply_rgb_per_channel_and_summed(capsys, rgb, tmp_path):
    path, pixels = rgb
    code, _, _ = run(capsys, "apply", str(path), "--kernel", "sharpen", "--out", str(tmp_path / "sharp.png"))
    assert code == 0
    written = read(tmp_path / "sharp.png")
    assert written.shape == (14, 17, 3)
    for c in range(3):
        expected = np.clip(np.rint(correlate2d(pixels[..., c].astype(float), KERNELS["sharpen"], mode="valid")), 0, 255)
        assert np.array_equal(written[..., c], expected)
    code, out, _ = run(capsys, "apply", str(path), "--kernel", "sobel-y", "--depth", "sum", "--out", str(tmp_path / "sum.npy"))
    assert code == 0 and "output 14x17x1" in out
    expected = sum(correlate2d(pixels[..., c].astype(float), KERNELS["sobel-y"], mode="valid") for c in range(3))
    np.testing.assert_allclose(np.load(tmp_path / "sum.npy"), expected)


def test_apply_default_output_names(capsys, gray, tmp_path, monkeypatch):
    path, _ = gray
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "apply", str(path), "--kernel", "blur")
    assert code == 0
    assert read(tmp_path / "gray-box-blur.png").shape == (19, 28)
    assert (tmp_path / "gray-box-blur-figure.png").stat().st_size > 0


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_writes_pooled_picture(capsys, rgb, tmp_path, mode):
    path, pixels = rgb
    out_png = tmp_path / f"{mode}.png"
    code, out, _ = run(capsys, "pool", str(path), "--size", "2", "--mode", mode, "--out", str(out_png))
    assert code == 0 and "16x19x3 -> output 8x9x3" in out
    windows = pixels[:16, :18].astype(float).reshape(8, 2, 9, 2, 3)
    expected = windows.max(axis=(1, 3)) if mode == "max" else np.rint(windows.mean(axis=(1, 3)))
    assert np.array_equal(read(out_png), expected.astype(np.uint8))
    assert read(tmp_path / f"{mode}-figure.png").ndim == 3


def test_pool_gray_with_stride(capsys, gray, tmp_path):
    path, pixels = gray
    code, _, _ = run(capsys, "pool", str(path), "--size", "3", "--stride", "2", "--out", str(tmp_path / "p.png"), "--no-figure")
    assert code == 0
    expected = np.lib.stride_tricks.sliding_window_view(pixels, (3, 3))[::2, ::2].max(axis=(2, 3))
    assert np.array_equal(read(tmp_path / "p.png"), expected)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--kernel", "1,x;2,3"], "error: --kernel: 'x' is not a number"),
        (["--kernel", "ones(50)"], "not a known name"),
        (["--kernel", ";".join(["1," * 29 + "1"] * 30)], "kernel 30x30 is larger than the padded input 21x30; allowed: 1 to 21 high"),
    ],
)
def test_apply_bad_kernels_are_one_line_errors(capsys, gray, argv, message):
    path, _ = gray
    code, _, err = run(capsys, "apply", str(path), *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_apply_stride_zero_is_refused(capsys, gray):
    line = argparse_error(capsys, "apply", str(gray[0]), "--stride", "0")
    assert "--stride" in line and "at least 1" in line


def test_pool_size_larger_than_image(capsys, gray):
    code, _, err = run(capsys, "pool", str(gray[0]), "--size", "25")
    assert code == 2 and "size 25x25 is larger than the input 21x30" in err


def test_unreadable_and_huge_images(capsys, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    code, _, err = run(capsys, "apply", str(bad))
    assert code == 2 and "not a readable image" in err and err.count("\n") == 1
    code, _, err = run(capsys, "pool", str(tmp_path / "missing.png"))
    assert code == 2 and "file not found" in err
    huge = tmp_path / "huge.png"
    Image.new("1", (7000, 6000)).save(huge)  # 42 million pixels, a few kB on disk
    code, _, err = run(capsys, "apply", str(huge))
    assert code == 2 and "more than the 40,000,000 allowed" in err


def test_train_scratch_runs(capsys):
    code, out, _ = run(capsys, "train-scratch", "--epochs", "1")
    assert code == 0
    assert "total parameters: 6,090" in out and "epoch 1/1" in out and "test accuracy" in out
    assert "first-layer filters" in out


def test_padding_that_would_make_a_giant_picture_is_refused_before_the_copy(gray, capsys):
    """--padding 10000 asked for a 20,000-pixel-wide copy of each channel and the machine ran out of memory."""
    code, out, err = run(capsys, "apply", str(gray[0]), "--kernel", "sobel-x", "--padding", "10000", "--no-figure")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--padding 10000: the padded picture would be" in err and "pad less" in err


def test_scratch_training_refuses_a_negative_seed(capsys):
    assert "--seed: -1" in argparse_error(capsys, "train-scratch", "--epochs", "1", "--seed", "-1")


def test_default_names_tell_the_settings_apart(gray, tmp_path, capsys, monkeypatch):
    """A 2x3 pooling wrote photo-maxpool2.png over the 2x2 one; a stride or padding kept the kernel's name alone."""
    monkeypatch.chdir(tmp_path)
    for argv, name in ((["pool", "--size", "2"], "gray-maxpool2.png"), (["pool", "--size", "2x3"], "gray-maxpool2x3-s2x3.png"),
                       (["apply", "--kernel", "sobel-x"], "gray-sobel-x.png"),
                       (["apply", "--kernel", "sobel-x", "--stride", "2", "--padding", "same"], "gray-sobel-x-s2x2-psame.png")):
        code, out, _ = run(capsys, argv[0], str(gray[0]), *argv[1:], "--no-figure")
        assert code == 0 and f"wrote {name}" in out, out
    assert len(list(tmp_path.glob("gray-*.png"))) == 4


@pytest.mark.parametrize("command", ["apply", "pool"])
def test_a_result_type_not_written_here_is_refused_before_the_work(capsys, gray, tmp_path, command):
    """.h5, .xbm and .fits stopped on Pillow's traceback once the picture was computed; .pdf and .ico
    were written though no doc offers them."""
    for name in ("res.h5", "p.xbm", "p.fits", "p.pdf", "p.ico", "p.gif", "result"):
        code, out, err = run(capsys, command, str(gray[0]), "--out", str(tmp_path / name))
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert f"--out {tmp_path / name}: results are written as .png, .jpg, .jpeg, .bmp, .tif, " in err
        assert ".pgm, .ppm pictures or .npy values" in err
    assert list(tmp_path.iterdir()) == [gray[0]]
    for name in ("r.png", "r.JPG", "r.jpeg", "r.npy", "r.bmp", "r.tif", "r.webp", "r.pgm"):
        assert run(capsys, command, str(gray[0]), "--out", str(tmp_path / name), "--no-figure")[0] == 0
    assert read(tmp_path / "r.JPG").shape == read(tmp_path / "r.png").shape == np.load(tmp_path / "r.npy").shape
    for lossless in ("r.bmp", "r.tif", "r.pgm"):  # the picture as it is, in the formats that keep every pixel
        np.testing.assert_array_equal(read(tmp_path / lossless), read(tmp_path / "r.png"))
    # WebP keeps no grey levels: each comes back as three equal ones. Before, it was written lossy
    np.testing.assert_array_equal(read(tmp_path / "r.webp"), np.repeat(read(tmp_path / "r.png")[..., None], 3, axis=2))


@pytest.mark.parametrize("command", ["apply", "pool"])
def test_netpbm_endings_say_whether_the_result_is_grey_or_colour(capsys, gray, rgb, tmp_path, command):
    """Pillow wrote a colour result as P6 under .pgm and a grey one as P5 under .ppm; converted to
    what the ending says, neither would read back as computed: refused after the work, nothing written."""
    for picture, name, other in ((rgb[0], "c.pgm", ".ppm"), (gray[0], "g.ppm", ".pgm")):
        code, out, err = run(capsys, command, str(picture), "--out", str(tmp_path / name), "--no-figure")
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"neuralab: error: --out {tmp_path / name}: a "), err
        assert err.endswith(f"give a name ending in {other} or .png\n") and not (tmp_path / name).exists()
    for picture, name in ((rgb[0], "c.ppm"), (gray[0], "g.pgm")):
        assert run(capsys, command, str(picture), "--out", str(tmp_path / name), "--no-figure")[0] == 0
        assert run(capsys, command, str(picture), "--out", str(tmp_path / f"{name}.png"), "--no-figure")[0] == 0
        np.testing.assert_array_equal(read(tmp_path / name), read(tmp_path / f"{name}.png"))


def test_netpbm_endings_are_refused_before_the_work_by_the_results_kind(capsys, rgb, tmp_path, monkeypatch):
    """The result's kind is known once the picture is read: a colour picture's per-channel result
    is in colour, its --depth sum result grey. Before, the convolution was computed first."""
    import neuralab.mechanics.kernels as kernels

    computed = []
    real = kernels.apply_kernel
    monkeypatch.setattr(kernels, "apply_kernel", lambda *a, **k: computed.append(1) or real(*a, **k))
    for depth, name, other in (("per-channel", "c.pgm", ".ppm"), ("sum", "s.ppm", ".pgm")):
        code, out, err = run(capsys, "apply", str(rgb[0]), "--depth", depth, "--out", str(tmp_path / name))
        assert code == 2 and computed == [] and out == "" and err.count("\n") == 1, err
        assert err.endswith(f"and the result is {'in colour' if other == '.ppm' else 'grey'}; give a name ending in "
                            f"{other} or .png\n"), err
        assert not (tmp_path / name).exists()
    assert run(capsys, "apply", str(rgb[0]), "--depth", "sum", "--out", str(tmp_path / "s.pgm"), "--no-figure")[0] == 0
    assert read(tmp_path / "s.pgm").ndim == 2 and computed == [1]


def test_outs_help_says_which_netpbm_ending_holds_which_result(capsys):
    with pytest.raises(SystemExit):
        main(["conv", "apply", "--help"])
    help = " ".join(capsys.readouterr().out.split())
    assert ".pgm for a grey result, .ppm for a colour one" in help


def test_scales_help_says_what_auto_chooses(capsys):
    """The help said auto stretched only --depth sum: an unnormalised blur is stretched too."""
    with pytest.raises(SystemExit):
        main(["conv", "apply", "--help"])
    help = " ".join(capsys.readouterr().out.split())
    assert ("(default auto): clip, abs (|value|) or minmax (stretch the range to 0..255); auto clips a kernel summing "
            "to about 1 (blur, sharpen), takes |value| for one summing to 0 (edges) and stretches any other sum (under "
            "--depth sum on colour, any sum but 0)") in help


@pytest.mark.parametrize("command,stem,shape", [("apply", "gray-sobel-x", (19, 28)), ("pool", "gray-maxpool2", (10, 15))])
def test_a_new_folder_given_with_its_slash_gets_the_default_names(capsys, gray, tmp_path, command, stem, shape, monkeypatch):
    """`--out newdir/` was read as a file named newdir and refused, after the picture was computed,
    as an "unknown image type ''"."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, command, str(gray[0]), "--out", "results/", "--figure", "figures/")
    assert code == 0, err
    assert f"wrote {Path('results', stem + '.png')}" in out and f"wrote {Path('figures', stem + '-figure.png')}" in out
    assert read(tmp_path / "results" / f"{stem}.png").shape == shape
    assert read(tmp_path / "figures" / f"{stem}-figure.png").ndim == 3


def test_the_figure_is_written_in_the_format_its_name_asks(capsys, rgb, tmp_path):
    """--figure fig.svg (or .pdf, .jpg, .txt) held a PNG under that name."""
    path, _ = rgb
    signatures = {"fig.png": b"\x89PNG", "fig.svg": b"<?xml", "fig.pdf": b"%PDF"}
    for name, signature in signatures.items():
        code, _, err = run(capsys, "pool", str(path), "--out", str(tmp_path / "r.png"), "--figure", str(tmp_path / name))
        assert code == 0, err
        assert (tmp_path / name).read_bytes().startswith(signature)
    assert b"<svg" in (tmp_path / "fig.svg").read_bytes()
    for name in ("fig.jpg", "fig.txt", "fig"):
        code, out, err = run(capsys, "apply", str(path), "--out", str(tmp_path / "a.png"), "--figure", str(tmp_path / name))
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"--figure {tmp_path / name}: figures are written as .png, .svg, .pdf" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "r.png", *signatures])


def test_an_empty_out_or_figure_is_refused_and_a_new_folder_without_its_slash_is_told_to_end_with_one(capsys, gray,
                                                                                                       tmp_path):
    """An empty --out (an unset shell variable) wrote the result under its default name, as export
    refuses it; a new folder typed without its slash was refused with no way on."""
    for option in ("--out", "--figure"):
        code, out, err = run(capsys, "apply", str(gray[0]), "--kernel", "blur", option, "")
        assert code == 2 and err == f"neuralab: error: {option} '': is empty; give a file or a folder, or leave it out\n"
    code, _, err = run(capsys, "pool", str(gray[0]), "--out", str(tmp_path / "newresults"))
    assert code == 2 and err.endswith("or a folder (a new one: end its name with /)\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == [gray[0].name]


def test_apply_an_unnormalised_blur_is_stretched_and_says_why(capsys, gray, tmp_path):
    """'1 2 1 / 2 4 2 / 1 2 1' (the Gaussian before dividing by 16) was clipped to an all-white picture."""
    path, pixels = gray
    (tmp_path / "k.txt").write_text("1 2 1\n2 4 2\n1 2 1\n")
    code, out, _ = run(capsys, "apply", str(path), "--kernel", str(tmp_path / "k.txt"), "--out", str(tmp_path / "k.png"),
                       "--no-figure")
    assert code == 0 and "shown as minmax (auto: the kernel sums to 16, not 1: clipped, the picture would come out too bright)" in out
    values = correlate2d(pixels.astype(float), [[1, 2, 1], [2, 4, 2], [1, 2, 1]], mode="valid")
    expected = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
    assert np.abs(read(tmp_path / "k.png").astype(int) - expected).max() <= 1
