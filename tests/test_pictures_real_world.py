"""Pictures and folders as they come from real life: drawings on a transparent page, zip files
unpacked on a Mac, iPhone photos, a camera's 50-megapixel photos, damaged EXIF data, folders
one level too deep and pictures saved without a name ending."""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import _sklearn_digits
from neuralab.cli import main
from neuralab.data import SkippedImagesWarning, load_image_folder
from neuralab.data.pictures import read_image
from neuralab.errors import NeuralabError


def digits(n: int) -> list[tuple[np.ndarray, int]]:
    """scikit-learn's handwritten digits as 32x32 uint8 ink (255 = full ink), with their labels."""
    data = _sklearn_digits()
    return [(np.asarray(Image.fromarray((im * 16).clip(0, 255).astype(np.uint8)).resize((32, 32))), int(label))
            for im, label in zip(data.images[:n], data.target[:n])]


def photo(height: int, width: int) -> np.ndarray:
    """A smooth colour picture, as a photo is at the scale of a few pixels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([255 * x // max(width - 1, 1), 255 * y // max(height - 1, 1),
                     np.full_like(x, 90)], axis=2).astype(np.uint8)


def test_a_drawing_on_a_transparent_page_is_read_as_it_is_seen_on_white(tmp_path):
    """Drawing apps save black ink on a transparent page: dropping the alpha showed the black
    under it, and every digit became a black square."""
    (ink, _), = digits(1)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 3] = ink  # black everywhere; the ink is how opaque it is
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawn.png")
    Image.fromarray(np.stack([np.zeros_like(ink), ink], axis=2), "LA").save(tmp_path / "drawn-gray.png")
    seen = 255 - ink.astype(int)  # black ink over a white page
    for name in ("drawn.png", "drawn-gray.png"):
        for mode in ("L", None):
            got = read_image(tmp_path / name, mode).astype(int)
            assert np.abs((got if got.ndim == 2 else got[..., 0]) - seen).max() <= 1, (name, mode)
    # a GIF's or palette PNG's transparent colour is shown as the page, not as what the palette holds
    page = np.where(ink > 128, 0, 1).astype(np.uint8)
    paletted = Image.fromarray(page, "P")
    paletted.putpalette([0, 0, 0, 255, 0, 255])  # ink black, page magenta: transparent
    paletted.save(tmp_path / "sticker.gif", transparency=1)
    got = read_image(tmp_path / "sticker.gif")
    assert (got[page == 1] == 255).all() and (got[page == 0] == 0).all()
    # one page for every colour picture: a light cut-out is on white too, so the background tells no class
    light = np.zeros((32, 32, 4), np.uint8)
    light[..., :3], light[..., 3] = (250, 230, 40), ink
    Image.fromarray(light, "RGBA").save(tmp_path / "light.png")
    assert (read_image(tmp_path / "light.png")[ink == 0] == 255).all()
    # read in one channel, light strokes on a transparent page lie on black: on white they would all but vanish
    assert (read_image(tmp_path / "light.png", "L")[ink == 0] == 0).all()
    # no transparent pixel: an alpha channel changes nothing
    solid = np.dstack([photo(32, 32), np.full((32, 32), 255, np.uint8)])
    Image.fromarray(solid, "RGBA").save(tmp_path / "solid.png")
    assert np.array_equal(read_image(tmp_path / "solid.png"), photo(32, 32))


def test_white_strokes_on_a_transparent_page_train_as_they_are_classified(tmp_path):
    """Training read a folder's transparent pictures on white, and predict on black under light
    strokes: white digits on a transparent page trained as blank squares, and scored 14 points
    lower as evaluate read them than as predict read the same files."""
    import torch

    from neuralab.data.folders import list_images
    from neuralab.training.preprocess import Preprocess
    from neuralab.training.trained_classifier import Classifier

    for i, (ink, label) in enumerate(d for d in digits(40) if d[1] in (0, 1)):
        (tmp_path / "digits" / str(label)).mkdir(parents=True, exist_ok=True)
        white_on_clear = np.zeros((32, 32, 4), np.uint8)
        white_on_clear[..., :3], white_on_clear[..., 3] = 255, ink
        Image.fromarray(white_on_clear, "RGBA").save(tmp_path / "digits" / str(label) / f"{i}.png")
    data = load_image_folder(tmp_path / "digits", (28, 28), "grayscale", val_fraction=0, test_fraction=0)
    _, files, _ = list_images(tmp_path / "digits")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
    clf = Classifier(model, ["0", "1"], Preprocess((1, 28, 28), [0.1], [0.3]), "digits")  # trained light on dark
    np.testing.assert_array_equal(data.train.x, clf.load_images([path for path, _ in files]))
    assert (data.train.x.reshape(len(files), -1).std(1) > 20).all()  # light strokes on a dark page


def test_grey_pictures_with_transparency_in_a_colour_folder_train_as_they_are_classified(tmp_path, monkeypatch):
    """In a folder of colour photos, training read a grey picture with transparent pixels in one
    channel, on black under light strokes, and copied it into three; predict read it for the
    colour model on white: a training picture of white strokes came out as another class. Those
    read before the first colour one are read again; a grey picture without transparency, the
    same in three channels, is not (every grey picture was: a grey folder with one colour
    picture loaded at half speed)."""
    import torch

    from neuralab.data import folders
    from neuralab.data.folders import list_images
    from neuralab.training.preprocess import Preprocess
    from neuralab.training.trained_classifier import Classifier

    (tmp_path / "drawing").mkdir()
    (tmp_path / "photo").mkdir()
    for i, (ink, _) in enumerate(digits(6)):
        Image.fromarray(np.stack([np.full_like(ink, 255), ink], axis=2), "LA").save(tmp_path / "drawing" / f"{i}.png")
        Image.fromarray(255 - ink).save(tmp_path / "drawing" / f"scan{i}.png")  # dark on light, no transparency
        Image.fromarray(np.roll(photo(32, 32), 3 * i, axis=1)).save(tmp_path / "photo" / f"{i}.png")
    Image.fromarray(ink).save(tmp_path / "drawing" / "trns.png", transparency=0)  # a PNG's transparent grey level
    # one after the first colour picture too: the class folders are read in order
    Image.fromarray(np.stack([np.full_like(ink, 255), ink], axis=2), "LA").save(tmp_path / "photo" / "z.png")
    reads = []
    monkeypatch.setattr(folders, "read_image",
                        lambda path, *a, **k: reads.append(path.relative_to(tmp_path).as_posix()) or
                        read_image(path, *a, **k))
    data = load_image_folder(tmp_path, (28, 28), "auto", val_fraction=0, test_fraction=0)
    _, files, _ = list_images(tmp_path)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 784, 2))
    clf = Classifier(model, data.classes, Preprocess((3, 28, 28), [0.5] * 3, [0.2] * 3), "folder")
    assert data.train.x.shape == (20, 3, 28, 28)
    np.testing.assert_array_equal(data.train.x, clf.load_images([path for path, _ in files]))
    read = {name: reads.count(name) for name in ("drawing/0.png", "drawing/trns.png", "drawing/scan0.png", "photo/z.png")}
    assert read == {"drawing/0.png": 2, "drawing/trns.png": 2, "drawing/scan0.png": 1, "photo/z.png": 1}


def macos_zip(root: Path, n: int = 20) -> Path:
    """Digits 0 and 1 as a Mac user's zip unpacks: __MACOSX with its ._ twins, .DS_Store,
    Thumbs.db from Windows, and a Jupyter checkpoint folder."""
    kept = [(ink, label) for ink, label in digits(200) if label in (0, 1)][:n]
    for i, (ink, label) in enumerate(kept):
        name = ["zero", "one"][label]
        for folder in (root / name, root / "__MACOSX" / name):
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ink).save(root / name / f"IMG_{i:04d}.PNG")
        (root / "__MACOSX" / name / f"._IMG_{i:04d}.PNG").write_bytes(b"\x00\x05\x16\x07" + bytes(78))
        (root / name / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(40))
        (root / name / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40))
    (root / ".ipynb_checkpoints").mkdir()
    return root


def test_a_zip_unpacked_on_a_mac_trains_on_its_classes_not_on_macosx(tmp_path, capsys):
    """__MACOSX became a third class, holding no pictures, and the load was refused."""
    root = macos_zip(tmp_path / "digits")
    data = load_image_folder(root, val_fraction=0, test_fraction=0)
    assert data.classes == ["one", "zero"] and len(data.train) == 20 and data.skipped == []
    out = tmp_path / "run"
    code = main(["train", "--model", "mlp", "--data", str(root), "--epochs", "1", "--image-size", "16x16",
                 "--threads", "1", "--test-fraction", "0.2", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "model.json").read_text())["classes"] == ["one", "zero"]


def heic(path: Path) -> None:
    """The first bytes of an iPhone's HEIC photo: an ISO box naming its brand."""
    path.write_bytes(struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + bytes(200))


def test_iphone_photos_in_a_class_folder_are_named_not_left_out_silently(tmp_path, capsys):
    """HEIC photos were left out of their class without a word, as if they were notes. They are
    named in a warning (a folder that trained before still trains); a class of them alone is
    refused saying to convert them; given to predict, one is refused by its format."""
    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(photo(12, 16) // (c + 1)).save(root / name / f"{i}.jpg")
    heic(root / "dog" / "IMG_0042.HEIC")
    (root / "dog" / "notes.txt").write_text("the dog photos from the holiday")
    with pytest.warns(SkippedImagesWarning, match=r"left out 1 picture\(s\) in formats neuralab does not open "
                                                   r"\(dog/IMG_0042.HEIC\); convert them to PNG or JPEG"):
        data = load_image_folder(root, val_fraction=0, test_fraction=0)
    assert len(data.train) == 6
    assert data.skipped == [(str(root / "dog" / "IMG_0042.HEIC"),
                             "a format neuralab does not open (.HEIC); convert it to PNG or JPEG")]
    with pytest.raises(NeuralabError, match=r"IMG_0042.HEIC: HEIC format, which neuralab does not open"):
        read_image(root / "dog" / "IMG_0042.HEIC")
    for i in range(3):
        (root / "dog" / f"{i}.jpg").unlink()
    with pytest.raises(NeuralabError, match=r"no pictures .* in class folder 'dog' .*its 1 picture\(s\) "
                                            r"\(IMG_0042.HEIC\) are in formats neuralab does not open"):
        load_image_folder(root)


def test_pictures_left_out_unread_are_recorded_in_the_run_and_its_report(tmp_path, capsys):
    """An iPhone photo in a class folder and a picture beside the class folders were only warned
    of: config.json's data.skipped said count 0 and the report had no line for them, as it has
    for pictures that cannot be read."""
    root = macos_zip(tmp_path / "digits")
    heic(root / "one" / "IMG_0001.HEIC")
    (root / "loose.png").write_bytes((root / "one" / "IMG_0001.PNG").read_bytes())
    out = tmp_path / "run"
    code = main(["train", "--model", "mlp", "--data", str(root), "--epochs", "1", "--image-size", "16x16",
                 "--threads", "1", "--test-fraction", "0.2", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    skipped = json.loads((out / "config.json").read_text())["data"]["skipped"]
    assert skipped["count"] == 2 and [p["path"] for p in skipped["pictures"]] == ["loose.png", "one/IMG_0001.HEIC"]
    report = (out / "report.html").read_text()
    assert "2 pictures of the folder were left out: loose.png (beside the class folders, in no class)" in report
    assert "one/IMG_0001.HEIC (a format neuralab does not open (.HEIC))" in report


def test_a_camera_photo_beyond_the_pixel_cap_is_decoded_at_a_smaller_scale(tmp_path):
    """A JPEG above the cap was refused, though libjpeg decodes it at half the size in a quarter
    of the memory; a PNG has no such scale and is still refused by its header."""
    picture = photo(300, 400)
    Image.fromarray(picture).save(tmp_path / "camera.jpg", quality=95)
    Image.fromarray(picture).save(tmp_path / "scan.png")
    half = read_image(tmp_path / "camera.jpg", max_pixels=40_000)  # 400x300 is 120,000
    assert half.shape == (150, 200, 3)
    expected = np.asarray(Image.fromarray(picture).resize((200, 150), Image.Resampling.BOX)).astype(int)
    assert np.abs(half.astype(int) - expected).mean() < 3
    assert read_image(tmp_path / "camera.jpg", max_pixels=10_000).shape == (75, 100, 3)  # a quarter
    with pytest.raises(NeuralabError, match=r"scan.png: 400x300 pixels is more than the 40,000 allowed"):
        read_image(tmp_path / "scan.png", max_pixels=40_000)
    with pytest.raises(NeuralabError, match=r"camera.jpg: 400x300 pixels is more than the 100 allowed"):
        read_image(tmp_path / "camera.jpg", max_pixels=100)  # even an eighth is too large


@pytest.mark.parametrize("orientation", [1, 6], ids=["upright", "turned-by-exif"])
def test_a_photo_for_a_small_input_is_decoded_at_the_scale_that_covers_it(tmp_path, monkeypatch, orientation):
    """A 12-megapixel photo read for a 64x64 input was decoded whole, then resized: 40 of them
    took 15-21 s to load, 0.5 s at the eighth of their size that libjpeg decodes directly."""
    from PIL import JpegImagePlugin

    from neuralab.data import pictures

    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: the camera was held upright, the viewer turns the picture a quarter
    picture = photo(600, 800)
    Image.fromarray(picture).save(tmp_path / "photo.jpg", quality=95, exif=exif)
    whole = pictures.resize(read_image(tmp_path / "photo.jpg"), 64, 48)
    drafts = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append(size) or real(self, mode, size))
    small = read_image(tmp_path / "photo.jpg", size=(64, 48))
    assert drafts == [(200, 150)]  # a quarter: 200x150 still covers twice 64x48 either way round
    assert small.shape == whole.shape == (64, 48, 3)
    assert np.abs(small.astype(int) - whole.astype(int)).mean() < 2
    assert pictures._jpeg_scale(800, 600, pictures.MAX_PIXELS, (150, 150)) == 2  # a half covers twice 150
    assert pictures._jpeg_scale(800, 600, pictures.MAX_PIXELS, (600, 600)) == 1
    Image.fromarray(picture).save(tmp_path / "scan.png")  # no scale to decode at: resized as before
    assert np.array_equal(read_image(tmp_path / "scan.png", size=(64, 48)),
                          pictures.resize(read_image(tmp_path / "scan.png"), 64, 48))


def test_the_command_leaves_out_what_pillow_warns_of(tmp_path, monkeypatch):
    """Damaged EXIF data was warned of with Pillow's source line and no file name, twice; Pillow's
    own size warning came before neuralab's refusal of the same size. The command's filters
    (cli.quiet_pillow, set where it starts) leave both out; the picture reads."""
    from neuralab.cli import quiet_pillow

    buffer = io.BytesIO()
    Image.fromarray(photo(8, 8)).save(buffer, "JPEG")
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + bytes(20)  # a table of 65,535 entries, cut short
    jpeg = buffer.getvalue()
    (tmp_path / "IMG_0001.jpg").write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
                                            + jpeg[2:])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow warns from here, refuses from twice it
    Image.fromarray(photo(30, 40)).save(tmp_path / "scan.png")

    def warned(quiet: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quiet:
                quiet_pillow()
            assert read_image(tmp_path / "IMG_0001.jpg").shape == (8, 8, 3)
            with pytest.raises(NeuralabError, match="scan.png: 40x30 pixels is more than the 1,000 allowed"):
                read_image(tmp_path / "scan.png", max_pixels=1_000)
        return [str(w.message) for w in caught]

    assert any("Corrupt EXIF data" in w for w in warned(False)) and any("exceeds limit" in w for w in warned(False))
    assert warned(True) == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_stands_as_its_exif_orientation_says_as_pillow_turns_it(tmp_path, orientation):
    """Each of EXIF's eight orientations turns and flips a photo as Pillow's own exif_transpose
    does (the table neuralab reads the tag by is its copy)."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(photo(40, 30)).save(tmp_path / "camera.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "camera.jpg") as img:
        upright = np.asarray(ImageOps.exif_transpose(img))
    np.testing.assert_array_equal(read_image(tmp_path / "camera.jpg"), upright)


# A tag holding text where EXIF wants a number: YPosition (a fraction), as some cameras and
# editors write (TypeError), or MinSampleValue (whole numbers), as a damaged file has it (struct.error)
@pytest.mark.parametrize("tag", [0x011F, 0x0118])
def test_a_photo_whose_exif_holds_a_tag_of_another_type_stands_upright(tmp_path, tag):
    """A tag of an unexpected type elsewhere in the EXIF made reading its orientation raise
    TypeError or struct.error: a traceback from train, even with --on-error skip, from predict,
    and HTTP 500 from the web app."""
    from neuralab.data.pictures import decode_image

    picture = photo(40, 30)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Cam"  # turned a quarter; the camera's make, text
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=95, exif=exif)
    data = bytearray(buffer.getvalue())
    entry = data.find(b"\x01\x0f\x00\x02")  # the make's entry: tag 010F, type 2 (text), big-endian
    data[entry + 1] = tag & 0xFF  # now the other tag, still holding the text
    (tmp_path / "camera.jpg").write_bytes(data)
    upright = np.rot90(picture, -1)  # orientation 6: the viewer turns it a quarter clockwise
    for got in (read_image(tmp_path / "camera.jpg"), decode_image(bytes(data), "upload")):
        assert got.shape == (30, 40, 3)
        assert np.abs(got.astype(int) - upright).mean() < 3


def test_a_folder_one_level_too_deep_or_of_unnamed_pictures_is_told_what_to_do(tmp_path):
    """A zip that held the dataset's folder unpacks to root/NAME/CLASS/; pictures saved from a
    browser often have no name ending. Both were refused without saying why."""
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "download" / "pets" / name).mkdir(parents=True)
        Image.fromarray(photo(12, 16) // (c + 1)).save(tmp_path / "download" / "pets" / name / "0.jpg")
    with pytest.raises(NeuralabError, match=r"found 1 class folder\(s\).*if cat, dog are the classes, give "
                                            r".*download/pets$"):
        load_image_folder(tmp_path / "download")
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "saved" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(photo(12, 16) // (c + 1)).save(tmp_path / "saved" / name / f"images{i}", format="JPEG")
    with pytest.raises(NeuralabError, match=r"saved/cat: no pictures .* its 2 file\(s\) \(images0, images1\) "
                                            r"have none of them: rename those that are pictures"):
        load_image_folder(tmp_path / "saved")


def test_a_face_dataset_of_pgm_files_trains_and_predicts(tmp_path, capsys):
    """Classic face datasets (AT&T's ORL faces, Yale) are Netpbm PGM files, 8 or 16 bits: a folder
    of them trains, each read as the grey levels written, and predict takes one."""
    for (ink, label) in digits(60):
        folder = tmp_path / "faces" / f"s{label % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ink).save(folder / f"{len(list(folder.iterdir()))}.pgm")
    ink, _ = digits(1)[0]
    assert np.array_equal(read_image(tmp_path / "faces" / "s0" / "0.pgm"), ink)
    deep = (ink.astype(np.uint16) * 257)  # a 16-bit PGM of the same levels
    Image.fromarray(deep).save(tmp_path / "deep.pgm")
    assert np.array_equal(read_image(tmp_path / "deep.pgm"), ink)
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", str(tmp_path / "faces"), "--epochs", "1", "--threads", "1",
                 "--quiet", "--out", str(out)]) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data"]["classes"] == ["s0", "s1", "s2"]
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "deep.pgm")]) == 0
    printed = capsys.readouterr().out
    assert "deep.pgm" in printed and any(f" s{c} " in f" {printed} " or f"s{c}:" in printed for c in range(3)), printed


def test_a_photo_predicted_is_read_as_the_folder_trained_on_it_was_read(tmp_path):
    """Training reads a folder's photos at --image-size, decoded at the scale that covers it;
    predicting must read them the same way, pixel for pixel."""
    from neuralab.training import load_classifier

    root = tmp_path / "photos"
    for label, shift in (("day", 0), ("night", 100)):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray((photo(600, 800).astype(int) * (i + 1) // 4 + shift).clip(0, 255).astype(np.uint8)) \
                .save(root / label / f"{i}.jpg", quality=90)
    run = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", str(root), "--image-size", "28x28", "--color", "rgb",
                 "--epochs", "1", "--val-fraction", "0", "--test-fraction", "0.25", "--quiet", "--out", str(run)]) == 0
    data = load_image_folder(root, image_size=(28, 28), color="rgb", val_fraction=0, test_fraction=0.25)
    files = sorted(root.glob("*/*.jpg"))
    read = load_classifier(run).load_images(files)
    assert sorted(map(bytes, read)) == sorted(map(bytes, [*data.train.x, *data.test.x]))


def test_a_progressive_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded(tmp_path):
    from neuralab.data.pictures import MAX_JPEG_SCANS, decode_image

    photo = io.BytesIO()
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1))).save(photo, "JPEG", progressive=True)
    good = photo.getvalue()
    assert read_image(_written(tmp_path / "good.jpg", good)).shape == (256, 256)  # an encoder's ten or so scans
    last, end = good.rfind(b"\xff\xda"), good.rfind(b"\xff\xd9")
    bomb = good[:end] + good[last:end] * MAX_JPEG_SCANS + good[end:]  # libjpeg only warns, and decodes each again
    with pytest.raises(NeuralabError, match=rf"bomb.jpg: a JPEG of more than {MAX_JPEG_SCANS} scans, which encoders "
                                            r"do not write \(a file made to take hours to decode\); save it again"):
        read_image(_written(tmp_path / "bomb.jpg", bomb))
    with pytest.raises(NeuralabError, match=r"^upload: a JPEG of more than \d+ scans"):
        decode_image(bomb, "upload")


def test_a_picture_with_a_side_no_jpeg_can_have_is_refused_from_its_header(tmp_path):
    from neuralab.data.pictures import MAX_PICTURE_SIDE

    # one pixel wide and within the pixel cap: Pillow decodes and resizes row by row, seconds for kilobytes
    Image.new("L", (1, MAX_PICTURE_SIDE + 1)).save(tmp_path / "strip.png")
    with pytest.raises(NeuralabError, match=rf"^{tmp_path / 'strip.png'}: 1x{MAX_PICTURE_SIDE + 1} pixels has a side "
                                            rf"longer than the 65,535 allowed; crop or resize it first$"):
        read_image(tmp_path / "strip.png")
    Image.new("L", (1, MAX_PICTURE_SIDE)).save(tmp_path / "longest.png")
    assert read_image(tmp_path / "longest.png").shape == (MAX_PICTURE_SIDE, 1)


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
