"""Image folders (root/CLASS/*.png|jpg): real PNG and JPEG files the tests write, stratified
seeded splits, resizing, colour conversion, and corrupt files refused or skipped, never silently."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import digits_folder

from neuralab.data import FolderData, SkippedImagesWarning, load_image_data, load_image_folder
from neuralab.errors import NeuralabError


def write(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def gray(value: int, size=(12, 10)) -> np.ndarray:
    return np.full(size, value, np.uint8)


def rgb(r: int, g: int, b: int, size=(12, 10)) -> np.ndarray:
    return np.stack([np.full(size, v, np.uint8) for v in (r, g, b)], axis=2)


@pytest.fixture
def folder(tmp_path) -> Path:
    """3 classes x 10 grayscale PNGs of 12x10, each image's value = 10 * class + index."""
    root = tmp_path / "shapes"
    for c, name in enumerate(["circle", "square", "triangle"]):
        for i in range(10):
            write(root / name / f"{i:02d}.png", gray(10 * c + i))
    return root


def test_classes_splits_and_pixels(folder):
    data = load_image_folder(folder, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert isinstance(data, FolderData) and data.name == "shapes" and data.skipped == []
    assert data.classes == ["circle", "square", "triangle"]
    assert data.input_shape == (1, 12, 10) and data.train.x.dtype == np.uint8
    for split, per_class in ((data.train, 6), (data.val, 2), (data.test, 2)):
        assert np.bincount(split.y, minlength=3).tolist() == [per_class] * 3  # stratified
    # each image's pixels say which class and file it came from
    for split in (data.train, data.val, data.test):
        assert ((split.x[:, 0, 0, 0] // 10) == split.y).all()
    ids = np.concatenate([s.x[:, 0, 0, 0] for s in (data.train, data.val, data.test)])
    assert sorted(ids.tolist()) == sorted(10 * c + i for c in range(3) for i in range(10))


def test_a_class_too_small_to_split_is_named_in_a_warning(folder):
    """A class of 2 pictures beside classes of 10 keeps both for training: the run was tested on
    none of them, and training said only how many pictures each split had."""
    for i in range(2):
        write(folder / "tiny" / f"{i}.png", gray(40 + i))
    with pytest.warns(UserWarning) as caught:
        data = load_image_folder(folder, val_fraction=0.2, test_fraction=0.2, seed=3)
    said = [str(w.message) for w in caught]
    assert said == [f"{folder}: 1 class(es) too small to split: tiny (2 pictures: none to validate or test on); "
                    "the model's scores say nothing of them there: add pictures to those classes"], said
    tiny = data.classes.index("tiny")
    assert (data.train.y == tiny).sum() == 2 and (data.test.y != tiny).all() and (data.val.y != tiny).all()
    (folder / "tiny" / "1.png").unlink()
    with pytest.warns(UserWarning, match=r": tiny \(1 picture: none to validate or test on\);"):
        load_image_folder(folder, val_fraction=0.2, test_fraction=0.2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say where no split is asked for
        load_image_folder(folder, val_fraction=0, test_fraction=0)


def test_folder_warnings_name_the_users_line(folder, tmp_path, capsys):
    """A folder's warnings named data/__init__.py's line under ``load_image_data`` (and the
    trainer's under ``train_classifier``), not the user's line that loaded the folder; the
    command line still prints them as neuralab's, in one line."""
    import neuralab
    from neuralab import ClassifierConfig, TrainConfig, train_classifier
    from neuralab.cli import main

    for i in range(2):
        write(folder / "tiny" / f"{i}.png", gray(40 + i))
    write(folder / "stray.png", gray(50))  # beside the class folders
    (folder / "circle" / "broken.png").write_bytes(b"junk")
    with pytest.warns(UserWarning) as caught:
        load_image_data(str(folder), val_fraction=0.2, test_fraction=0.2, on_error="skip")
    assert len(caught) == 3 and {(w.filename, w.lineno) for w in caught} == {(__file__, caught[0].lineno)}
    with pytest.warns(UserWarning) as caught:
        load_image_folder(folder, val_fraction=0.2, test_fraction=0.2, on_error="skip")
    assert len(caught) == 3 and {w.filename for w in caught} == {__file__}
    config = ClassifierConfig(model="mlp", data=str(folder), val_fraction=0.2, test_fraction=0.2, on_error="skip",
                              train=TrainConfig(epochs=1))
    with pytest.warns(UserWarning) as caught:
        train_classifier(config, out=tmp_path / "run", verbose=False)
    assert {w.filename for w in caught if str(folder) in str(w.message)} == {__file__}
    with pytest.warns(UserWarning) as caught:
        main(["train", "--model", "mlp", "--data", str(folder), "--val-fraction", "0.2", "--test-fraction", "0.2",
              "--on-error", "skip", "--epochs", "1", "--quiet", "--out", str(tmp_path / "cli")])
    said = [w for w in caught if str(folder) in str(w.message)]
    assert len(said) == 3 and all(Path(w.filename).is_relative_to(Path(neuralab.__file__).parent) for w in said)


def test_split_is_seeded(folder):
    a = load_image_folder(folder, seed=1)
    b = load_image_folder(folder, seed=1)
    c = load_image_folder(folder, seed=2)
    assert np.array_equal(a.test.x, b.test.x) and np.array_equal(a.val.x, b.val.x)
    assert not np.array_equal(a.test.x, c.test.x)


def test_resize_and_colour_modes(tmp_path):
    root = tmp_path / "mixed"
    write(root / "a" / "1.png", gray(50, (20, 30)))
    write(root / "a" / "2.jpg", rgb(250, 0, 0, (40, 40)), "JPEG")
    write(root / "b" / "1.jpeg", rgb(0, 0, 250, (8, 8)), "JPEG")
    write(root / "b" / "2.PNG", rgb(0, 250, 0, (16, 16)))
    auto = load_image_folder(root, image_size=(16, 24), val_fraction=0, test_fraction=0)
    assert auto.input_shape == (3, 16, 24)  # one colour image makes everything RGB
    x = auto.train.x
    assert (x[0] == 50).all()  # the gray PNG repeated into 3 channels
    assert abs(int(x[1, 0].mean()) - 250) < 8 and x[1, 1].mean() < 8  # JPEG red stays red
    assert x[3, 1].mean() > 240 and x[3, 0].max() == 0
    g = load_image_folder(root, image_size=(8, 8), color="grayscale", val_fraction=0, test_fraction=0)
    assert g.input_shape == (1, 8, 8) and g.train.x[0].max() == 50
    c = load_image_folder(root, image_size=(8, 8), color="rgb", val_fraction=0, test_fraction=0)
    assert c.input_shape == (3, 8, 8)


def test_all_gray_stays_one_channel_and_different_sizes_need_image_size(tmp_path, folder):
    assert load_image_folder(folder).input_shape[0] == 1
    write(folder / "circle" / "big.png", gray(1, (30, 30)))
    with pytest.raises(NeuralabError, match=r"images differ in size \(12x10, 30x30\); pass image_size to resize"):
        load_image_folder(folder)
    assert load_image_folder(folder, image_size=(12, 10)).input_shape == (1, 12, 10)


def _corrupt(folder: Path) -> list[Path]:
    bad = [folder / "circle" / "broken.png", folder / "square" / "empty.jpg", folder / "triangle" / "cut.jpg"]
    bad[0].write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    bad[1].write_bytes(b"")
    jpeg = write(folder / "triangle" / "tmp.jpg", rgb(1, 2, 3, (64, 64)), "JPEG")
    bad[2].write_bytes(jpeg.read_bytes()[:100])
    jpeg.unlink()
    return bad


def test_corrupt_images_are_refused_by_default(folder):
    bad = _corrupt(folder)
    with pytest.raises(NeuralabError) as e:
        load_image_folder(folder)
    msg = str(e.value)
    assert "3 of 33 images cannot be read" in msg and "pass on_error skip" in msg and "\n" not in msg
    assert all(str(p) in msg for p in bad)


def test_corrupt_images_skipped_with_a_warning_and_a_list(folder):
    bad = _corrupt(folder)
    with pytest.warns(SkippedImagesWarning, match="skipped 3 of 33 images"):
        data = load_image_folder(folder, on_error="skip", val_fraction=0, test_fraction=0)
    assert sorted(p for p, _ in data.skipped) == sorted(map(str, bad))
    assert all(why for _, why in data.skipped)
    assert len(data.train) == 30


def test_many_corrupt_images_are_counted_and_the_first_listed(folder):
    for i in range(5):
        (folder / "circle" / f"bad{i}.png").write_bytes(b"junk")
    with pytest.raises(NeuralabError, match=r"5 of 35 images cannot be read: .*bad0\.png.*; \.\.\.; fix or remove"):
        load_image_folder(folder)


def test_a_class_with_only_unreadable_images(tmp_path, folder):
    for p in (folder / "square").iterdir():
        p.write_bytes(b"junk")
    with pytest.warns(SkippedImagesWarning), pytest.raises(NeuralabError, match="no readable images left in class folder"):
        load_image_folder(folder, on_error="skip")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_links_out_of_the_folder_are_not_read(tmp_path, folder):
    outside = write(tmp_path / "elsewhere.png", gray(1))
    (folder / "circle" / "link.png").symlink_to(outside)
    with pytest.raises(NeuralabError, match="link.png \\(a link that leads out of"):
        load_image_folder(folder)


def test_other_files_hidden_files_and_hidden_folders_are_ignored(folder):
    (folder / "circle" / "notes.txt").write_text("not an image")
    (folder / "circle" / ".DS_Store").write_bytes(b"junk")
    (folder / "square" / "._00.png").write_bytes(b"junk")
    (folder / ".git").mkdir()
    data = load_image_folder(folder, val_fraction=0, test_fraction=0)
    assert data.classes == ["circle", "square", "triangle"] and len(data.train) == 30


def test_folder_shape_errors(tmp_path):
    with pytest.raises(NeuralabError, match="no such folder"):
        load_image_folder(tmp_path / "nope")
    write(tmp_path / "one" / "only" / "a.png", gray(1))
    with pytest.raises(NeuralabError, match="found 1 class folder"):
        load_image_folder(tmp_path / "one")
    (tmp_path / "one" / "empty").mkdir()
    with pytest.raises(NeuralabError, match="no pictures \\(PNG, JPEG, GIF, BMP, TIFF, WebP or PGM/PPM\\) in class folder 'empty' "
                                            "or the folders below it; add pictures to it or remove the folder$"):
        load_image_folder(tmp_path / "one")


def test_a_folder_split_into_train_and_test_is_refused_naming_its_training_folder(tmp_path, capsys):
    """A dataset laid out as Kaggle and ImageFolder split it (split/train/CLASS, split/test/CLASS)
    trained silently as a model of 2 classes, test and train, at chance."""
    from neuralab.cli import main

    data = tmp_path / "split"
    digits_folder(data / "train", 60)
    digits_folder(data / "test", 30)
    with pytest.raises(NeuralabError) as refused:
        load_image_data(str(data))
    assert str(refused.value) == (f"{data}: its class folders (test, train) are a dataset's splits, not its classes; "
                                  f"give {data / 'train'} as data, whose folders (0, 1, 2, ...) are the classes: "
                                  "neuralab holds out validation and test pictures from it itself")
    named = load_image_folder(data / "train", val_fraction=0, test_fraction=0)
    assert named.classes == [str(d) for d in range(10)]
    code = main(["train", "--model", "mlp", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"give {data / 'train'} as --data," in err, err
    assert not (tmp_path / "run").exists()
    # Kaggle's other layout: Training/ of classes, Testing/ of pictures without labels
    (data / "train").rename(data / "Training")
    (data / "test").rename(data / "Testing")
    for path in list((data / "Testing").rglob("*.png")):
        path.rename(data / "Testing" / f"{path.parent.name}-{path.name}")
    for folder in (data / "Testing").iterdir():
        if folder.is_dir():
            folder.rmdir()
    with pytest.raises(NeuralabError, match=f"its class folders \\(Testing, Training\\) .*give {data / 'Training'} as"):
        load_image_folder(data)


@pytest.mark.parametrize("layout, given", [
    # Kaggle's, with its sample_submission/ beside the splits
    ({"train": 60, "test": 30, "sample_submission": 0}, "train"),
    # Intel's zip: seg_train/seg_train/CLASS, seg_test/seg_test/CLASS, seg_pred/seg_pred/*.png
    ({"seg_train/seg_train": 60, "seg_test/seg_test": 30, "seg_pred/seg_pred": 0}, "seg_train/seg_train"),
    ({"TRAIN": 60, "TEST": 30}, "TRAIN"), ({"train1": 60, "test1": 30}, "train1"), ({"train": 60, "dev": 30}, "train"),
])
def test_split_folders_beside_other_folders_are_refused_naming_the_folder_of_classes(tmp_path, layout, given):
    """A train folder of classes beside a test or dev one is refused whatever else sits beside them;
    Intel's and Kaggle's datasets trained as classes seg_pred, seg_test, seg_train."""
    data = tmp_path / "split"
    for folder, n in layout.items():
        if n:
            digits_folder(data / folder, n)
        else:  # pictures without labels, to be predicted
            for i in range(4):
                write(data / folder / f"{i}.png", gray(10 * i))
    splits = ", ".join(sorted(folder.split("/")[0] for folder, n in layout.items() if n))
    with pytest.raises(NeuralabError, match=f"its class folders \\({splits}\\) are a dataset's splits, not its "
                                            f"classes; give {data / given} as data, whose folders \\(0, 1, 2, "):
        load_image_folder(data)
    assert load_image_folder(data / given, val_fraction=0, test_fraction=0).classes == [str(d) for d in range(10)]


def test_classes_named_like_splits_or_sorted_below_load_as_classes(tmp_path):
    """Only a whole name is a split's: a lab's test_tube and training_shoes, contest and valve are
    classes; so are classes sorted by where their pictures came from (cat/flickr, dog/flickr),
    which were once warned of as splits with advice that trained flickr against google, and
    split-named folders that hold pictures of their own (a class of trains)."""
    def folder(name: str, layout: list[str]) -> Path:
        for label, rel in enumerate(layout):
            for i in range(4):
                write(tmp_path / name / rel / f"{i}.png", gray(10 * label + i))
        return tmp_path / name

    cases = {
        "lab_glass": ["test_tube/pyrex", "test_tube/generic", "training_shoes/nike", "training_shoes"],
        "contest_valve": ["contest", "valve/brass", "valve/steel"],
        "sorted_by_source": ["cat/flickr", "cat/google", "dog/flickr", "dog/google"],
        "sorted_by_year": ["cat/2019", "cat/2020", "dog/2019", "dog/2020", "train/2019", "train/2020"],
        "trains_and_tests": ["train", "train/steam", "test/patterns", "test"],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, layout in cases.items():
            expected = sorted({rel.split("/")[0] for rel in layout})
            assert load_image_folder(folder(name, layout), val_fraction=0, test_fraction=0).classes == expected, name


@pytest.mark.parametrize("kwargs, option", [
    ({"color": "sepia"}, "color='sepia'"), ({"on_error": "ignore"}, "on_error='ignore'"),
    ({"image_size": (0, 5)}, "image_size=\\(0, 5\\)"), ({"image_size": (32.5, 32)}, "image_size=\\(32.5, 32\\)"),
    ({"image_size": ("32", "32")}, "image_size=\\('32', '32'\\)"), ({"image_size": 32}, "image_size=32"),
    ({"val_fraction": 1.0}, "val_fraction=1.0"),
    ({"test_fraction": -0.1}, "test_fraction=-0.1"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction 0.5 \\+ test_fraction 0.5"),
])
def test_bad_options_name_the_option(folder, kwargs, option):
    with pytest.raises(NeuralabError, match=f"^{option}"):
        load_image_folder(folder, **kwargs)


def test_tiny_classes_keep_a_training_image(tmp_path):
    for name in ("a", "b"):
        write(tmp_path / "tiny" / name / "1.png", gray(1))
    data = load_image_folder(tmp_path / "tiny", val_fraction=0.5, test_fraction=0.4)
    assert np.bincount(data.train.y).tolist() == [1, 1] and len(data.val) == len(data.test) == 0


def test_load_image_data_dispatches_folders(folder, monkeypatch):
    data = load_image_data(str(folder), image_size=(6, 5), color="rgb", test_fraction=0.3, seed=0)
    assert data.input_shape == (3, 6, 5) and np.bincount(data.test.y).tolist() == [3, 3, 3]
    monkeypatch.chdir(folder.parent)
    assert load_image_data("shapes").classes == ["circle", "square", "triangle"]
    with pytest.raises(NeuralabError, match="data_dir='.*': applies to named datasets"):
        load_image_data(str(folder), data_dir=folder)
    with pytest.raises(NeuralabError, match="unknown dataset 'svhn'; choose one of: mnist, fashion-mnist, cifar10, or"):
        load_image_data("svhn")
    with pytest.raises(NeuralabError, match="not a folder"):
        load_image_data(str(folder / "circle" / "00.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder warns about nothing
        load_image_data(str(folder))


# --- what a folder of pictures may ask of the machine, and pictures beyond 8 bits -------------------

def test_a_class_folder_named_in_bytes_that_are_no_utf8_is_named_and_nothing_is_read(folder):
    odd = Path(os.fsdecode(os.fsencode(folder) + b"/b\xff"))
    odd.mkdir()
    write(odd / "0.png", gray(1))
    with pytest.raises(NeuralabError, match="the class folder's name is not UTF-8 text") as e:
        load_image_folder(folder)
    assert "rename the folder" in str(e.value)


def test_large_pictures_are_refused_before_they_fill_the_memory(tmp_path, monkeypatch):
    """A 3000x3000 PNG of one colour is a few kilobytes; two classes of them would give an MLP a
    first layer of 9 million inputs per unit."""
    from neuralab.data import folders

    for name in ("a", "b"):
        write(tmp_path / "big" / name / "0.png", gray(100, (3000, 3000)))
    assert (tmp_path / "big" / "a" / "0.png").stat().st_size < 100_000
    with pytest.raises(NeuralabError, match=r"3000x3000 pixels, more than the 1024 a side.*pass image_size"):
        load_image_folder(tmp_path / "big")
    data = load_image_folder(tmp_path / "big", image_size=(32, 32), test_fraction=0.0, val_fraction=0.0)
    assert data.train.x.shape == (2, 1, 32, 32)
    monkeypatch.setattr(folders, "MAX_BYTES", 2 * 32 * 32 - 1)  # one byte short of the two resized pictures
    with pytest.raises(NeuralabError, match="its 2 images take more than"):
        load_image_folder(tmp_path / "big", image_size=(32, 32))


def test_a_folder_too_large_for_memory_is_refused_before_its_rows_are_allocated(folder, monkeypatch):
    """Thousands of small pictures at a large `image_size`: the rows of them all were allocated at
    the first picture, before the cap was checked, and the out-of-memory error advised a smaller
    batch. Now refused before any picture is decoded where `image_size` is given, after the first
    one otherwise."""
    from neuralab.data import folders
    from neuralab.data.pictures import read_image

    read = []
    monkeypatch.setattr(folders, "read_image", lambda path, *a, **k: read.append(path) or read_image(path, *a, **k))
    monkeypatch.setattr(folders, "MAX_BYTES", 30 * 12 * 10 - 1)  # one byte short of the 30 grey pictures
    with pytest.raises(NeuralabError, match=r"its 30 images take more than .* at 12x10 pixels; pass a smaller"):
        load_image_folder(folder, image_size=(12, 10))
    assert read == []
    with pytest.raises(NeuralabError, match=r"its 30 images take more than .* at 12x10 pixels"):
        load_image_folder(folder)
    assert len(read) == 1
    assert len(load_image_folder(folder, image_size=(11, 10)).train) == 24  # within it: read
    # grey pictures take a byte a pixel (they were counted as RGB), colour ones three
    monkeypatch.setattr(folders, "MAX_BYTES", 30 * 12 * 10)
    assert load_image_folder(folder, image_size=(12, 10), color="grayscale").train.x.shape[1:] == (1, 12, 10)
    assert load_image_folder(folder, image_size=(12, 10)).train.x.shape[1:] == (1, 12, 10)  # grey ones, found so
    with pytest.raises(NeuralabError, match=r"its 30 images take more than"):
        load_image_folder(folder, image_size=(12, 10), color="rgb")
    write(folder / "triangle" / "09.png", np.full((12, 10, 3), (200, 30, 30), np.uint8))  # one colour: all RGB
    with pytest.raises(NeuralabError, match=r"its 30 images take more than"):
        load_image_folder(folder, image_size=(12, 10))


def test_a_folders_pixels_are_held_about_once_while_it_loads(tmp_path):
    """The 4 GB cap on a folder's pixels let its loading take 12 GB: the pictures read, their
    stack, its channels-first copy and each split's copy, 3.1x the pixels at the peak."""
    import tracemalloc

    rng = np.random.default_rng(0)
    for c, name in enumerate(["circle", "square", "triangle"]):
        for i in range(40):
            write(tmp_path / "shapes" / name / f"{i:02d}.png", rng.integers(0, 256, (64, 64, 3), np.uint8))
    write(tmp_path / "shapes" / "circle" / "00.png", gray(5, (64, 64)))  # a grey one first: made RGB with the rest
    load_image_folder(tmp_path / "shapes")  # what a first load imports and caches is no picture's
    tracemalloc.start()
    try:
        data = load_image_folder(tmp_path / "shapes", val_fraction=0.2, test_fraction=0.2, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pixels = sum(split.x.nbytes for split in (data.train, data.val, data.test))
    # once, and a third more while the first colour picture turns the grey rows before it to RGB
    assert pixels == 120 * 3 * 64 * 64 and peak < 1.5 * pixels, peak / pixels
    splits = (data.train, data.val, data.test)
    assert sum((x == 5).all() for split in splits for x in split.x) == 1  # the grey one, in all three channels
    assert sorted(np.concatenate([split.y for split in splits]).tolist()) == [0] * 40 + [1] * 40 + [2] * 40


def test_pictures_of_16_bits_and_floats_keep_their_shades_and_photos_stand_upright(tmp_path):
    from neuralab.data.pictures import read_image

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65,520
    write(tmp_path / "deep.png", ramp)
    deep = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(deep, np.rint(ramp / 257).astype(np.uint8))  # clipping made 99.6% of it white
    shades = (np.arange(64 * 64).reshape(64, 64) / 4095).astype(np.float32)  # 0 .. 1
    Image.fromarray(shades, mode="F").save(tmp_path / "float.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "float.tif"), np.rint(shades * 255).astype(np.uint8))
    photo = Image.fromarray(rgb(200, 10, 10, (20, 40)))
    exif = Image.Exif()
    exif[0x0112] = 6  # taken with the camera turned: shown rotated a quarter turn
    photo.save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(tmp_path / "turned.jpg").shape == (40, 20, 3)


def test_the_command_resizes_a_folder_of_mixed_sizes_and_its_run_keeps_the_size(folder, tmp_path, capsys):
    from neuralab.cli import main

    write(folder / "circle" / "big.png", gray(5, (40, 30)))
    out = tmp_path / "run"
    budget = ["train", "--model", "mlp", "--data", str(folder), "--epochs", "1", "--threads", "1", "--out", str(out)]
    assert main(budget) == 2
    assert "pass --image-size to resize them all" in capsys.readouterr().err
    assert main([*budget, "--image-size", "12x10", "--test-fraction", "0.2", "--quiet"]) == 0
    capsys.readouterr()
    import json

    config = json.loads((out / "config.json").read_text())["config"]
    assert config["image_size"] == [12, 10] and config["test_fraction"] == 0.2
    assert main(["evaluate", str(out)]) == 0  # reads the folder again at the run's size
    assert "test accuracy" in capsys.readouterr().out


def test_a_folder_too_small_to_leave_a_test_image_is_refused_before_training(tmp_path, capsys):
    """One picture a class: each must stay in training, and nothing could score the model."""
    from neuralab.cli import main

    for c, value in (("a", 0), ("b", 120), ("c", 250)):
        write(tmp_path / "pictures" / c / "0.png", gray(value))
    code = main(["train", "--model", "mlp", "--data", str(tmp_path / "pictures"), "--epochs", "1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "the test set is empty (3 images in all)" in err
    # no --test-fraction helps: each class keeps its one picture for training
    assert "give each class at least 2 pictures" in err and not (tmp_path / "run").exists()


def test_many_small_classes_still_leave_test_pictures(tmp_path):
    """Each class's test share rounds to none (40 classes of 4 pictures at 0.1), but the whole
    split's does not: the split's own count of pictures goes to classes drawn by the seed, one
    each, and every class keeps pictures to train on. The validation split is rounded per class,
    as every earlier version made it, so that a run's split made again is the one it recorded;
    classes whose shares round to some are split as before."""
    for c in range(40):
        for i in range(4):
            write(tmp_path / "many" / f"class{c:02d}" / f"{i}.png", gray(c * 6 + i))
    data = load_image_folder(tmp_path / "many", val_fraction=0.1, test_fraction=0.1, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (144, 0, 16)  # a tenth of 160 pictures to test
    assert len(set(data.train.y.tolist())) == 40 and len(set(data.test.y.tolist())) == 16
    assert len(load_image_folder(tmp_path / "many", val_fraction=0.1, test_fraction=0.1, seed=None).test) == 16
    again = load_image_folder(tmp_path / "many", val_fraction=0.1, test_fraction=0.1, seed=3)
    assert np.array_equal(again.test.x, data.test.x)  # the seed repeats the split
    for c in range(3):  # 10 pictures a class: one each for test and validation, as per-class rounding gives
        for i in range(10):
            write(tmp_path / "ten" / f"class{c}" / f"{i}.png", gray(c * 60 + i))
    ten = load_image_folder(tmp_path / "ten", val_fraction=0.1, test_fraction=0.1, seed=0)
    assert np.bincount(ten.test.y).tolist() == [1, 1, 1] and np.bincount(ten.val.y).tolist() == [1, 1, 1]


@pytest.mark.parametrize("out", ["run1", "runs/exp/r1", None])
def test_a_run_inside_the_data_folder_is_refused_before_anything_is_made(tmp_path, monkeypatch, capsys, out):
    """Every folder in the data folder is read as a class: a run written there (``--out DATA/run1``,
    or ``--data .`` with the default ./runs) became a class of no pictures, refused only once its
    folder was made, which then stayed and refused every try after it."""
    from neuralab.cli import main

    data = digits_folder(tmp_path / "digits", 60)
    monkeypatch.chdir(data)
    where = ["--out", out] if out else []
    code = main(["train", "--model", "mlp", "--data", ".", "--epochs", "1", "--quiet", *where])
    err = capsys.readouterr().err
    assert code == 2 and "is inside the data folder" in err and "give an --out outside it" in err, err
    assert sorted(p.name for p in data.iterdir()) == [str(d) for d in range(10)]


def test_a_run_already_inside_the_data_folder_is_refused_naming_it(tmp_path, capsys):
    """A run there from before (a forecast started from the picture folder, one of an earlier
    version) was trained on as a class of its report's figures; a dataset's own config.json in a
    class folder names no run's kind and stays a class's."""
    import json

    from neuralab.cli import main
    from neuralab.runs import Kind

    data = digits_folder(tmp_path / "digits", 60)
    (data / "0" / "config.json").write_text(json.dumps({"source": "scanner 3"}))
    run = data / "runs" / "week1" / "forecast-1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": Kind.FORECASTER.value}))
    args = ["train", "--model", "mlp", "--data", str(data), "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"neuralab: error: {run}: a neuralab run inside the data folder {data}, whose folders are all " \
                  "read as classes; move it out of the data folder\n"
    assert not (tmp_path / "r").exists()
    (data / "runs").rename(tmp_path / "runs")
    assert main(args) == 0


def test_compare_inside_the_data_folder_is_refused_naming_the_out_given(tmp_path, monkeypatch, capsys):
    """compare's refusal named its first run's folder (``--out cmp/mlp-seed0``), not what was typed."""
    from neuralab.cli import main

    data = digits_folder(tmp_path / "digits", 60)
    monkeypatch.chdir(tmp_path)
    code = main(["compare", "--models", "mlp", "--data", "digits", "--seeds", "1", "--epochs", "1",
                 "--out", "digits/cmp"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("neuralab: error: --out digits/cmp: is inside the data folder"), err
    assert sorted(p.name for p in data.iterdir()) == [str(d) for d in range(10)]
