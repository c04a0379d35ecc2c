"""A user's own pictures and outputs, as they come: pictures in sub-folders and in every format
the reader opens, links to folders, a size no classifier takes, and ONNX exports that must
never cost the run a file or leave an unchecked graph behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import digits_folder
from neuralab.cli import main
from neuralab.data import SkippedImagesWarning, folders, load_image_folder
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, load_classifier, train_classifier
from test_web_app import parsers_watched  # noqa: F401 (the fixture)


def shade(value: int, size=(12, 10)) -> Image.Image:
    return Image.fromarray(np.full(size, value, np.uint8))


def two_classes(root: Path) -> Path:
    """``root`` with classes a and b of three shades each (10-12 and 90-92)."""
    for name, value in (("a", 10), ("b", 90)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            shade(value + i).save(root / name / f"{i}.png")
    return root


def test_pictures_in_folders_below_a_class_folder_belong_to_that_class(tmp_path):
    """As Keras's image_dataset_from_directory and torchvision's ImageFolder read them: a class
    kept in sub-folders (by year, by camera) was refused as empty, and a class partly kept in
    them lost those pictures without a word."""
    root = tmp_path / "pets"
    for i in range(3):
        (root / "cat" / "2023").mkdir(parents=True, exist_ok=True)
        shade(10 + i).save(root / "cat" / "2023" / f"{i}.png")
        (root / "dog" / "old" / "scans").mkdir(parents=True, exist_ok=True)
        shade(100 + i).save(root / "dog" / f"{i}.png")
        shade(150 + i).save(root / "dog" / "old" / "scans" / f"{i}.png")
    (root / "dog" / ".thumbnails").mkdir()
    shade(255).save(root / "dog" / ".thumbnails" / "0.png")  # hidden: left out, as hidden files are
    data = load_image_folder(root, val_fraction=0, test_fraction=0)
    assert data.classes == ["cat", "dog"] and data.skipped == []
    values = sorted(zip(data.train.y.tolist(), data.train.x[:, 0, 0, 0].tolist()))
    assert values == [(0, 10), (0, 11), (0, 12), (1, 100), (1, 101), (1, 102), (1, 150), (1, 151), (1, 152)]


def test_every_format_the_reader_opens_is_found_in_a_folder(tmp_path):
    """BMP, GIF (animated: its first frame), TIFF and WebP pictures were left out of training
    without a word, though `neuralab predict` reads them."""
    root = tmp_path / "shapes"
    (root / "a").mkdir(parents=True)
    shade(20).save(root / "a" / "0.png")
    shade(30).save(root / "a" / "1.BMP")
    frames = [shade(40), shade(200)]
    frames[0].save(root / "a" / "2.gif", save_all=True, append_images=frames[1:])
    (root / "b").mkdir()
    shade(120).save(root / "b" / "0.tif")
    shade(130).save(root / "b" / "1.webp", lossless=True)
    (root / "b" / "readme.txt").write_text("not a picture")
    data = load_image_folder(root, val_fraction=0, test_fraction=0)
    assert sorted(zip(data.train.y.tolist(), data.train.x[:, 0, 0, 0].tolist())) == \
        [(0, 20), (0, 30), (0, 40), (1, 120), (1, 130)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_link_to_a_folder_is_named_and_not_followed(tmp_path):
    root = two_classes(tmp_path / "shapes")
    private = tmp_path / "elsewhere"
    private.mkdir()
    shade(1).save(private / "secret.png")
    (root / "a" / "more").symlink_to(private, target_is_directory=True)
    with pytest.raises(NeuralabError, match=r"1 of 7 images cannot be read: .*a/more \(a link to a folder, which is "
                                            r"not followed"):
        load_image_folder(root)
    with pytest.warns(SkippedImagesWarning, match="skipped 1 of 7"):
        data = load_image_folder(root, on_error="skip", val_fraction=0, test_fraction=0)
    assert len(data.train) == 6 and 1 not in data.train.x[:, 0, 0, 0]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
@pytest.mark.parametrize("inside", [True, False], ids=["to-a-class-beside-it", "out-of-the-folder"])
def test_a_class_folder_that_is_a_link_is_named_and_not_followed(tmp_path, inside):
    """A link beside the classes was followed as a class of its own: to a class beside it, the
    same pictures trained and tested under two names without a word; out of the folder, each of
    its pictures was refused as a link leading out."""
    root = two_classes(tmp_path / "shapes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(4):
        shade(200 + i).save(elsewhere / f"{i}.png")
    (root / "c").symlink_to(root / "a" if inside else elsewhere, target_is_directory=True)
    with pytest.raises(NeuralabError, match=r"1 of 7 images cannot be read: \S*shapes/c \(a link to a folder, which "
                                            r"is not followed"):
        load_image_folder(root)
    with pytest.warns(SkippedImagesWarning, match="skipped 1 of 7"):
        data = load_image_folder(root, on_error="skip", val_fraction=0, test_fraction=0)
    assert data.classes == ["a", "b"] and len(data.train) == 6


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_folder_of_linked_classes_says_the_links_are_not_followed(tmp_path):
    root, elsewhere = tmp_path / "farm", tmp_path / "store"
    for name in ("cat", "dog"):
        (elsewhere / name).mkdir(parents=True)
        shade(9).save(elsewhere / name / "0.png")
    root.mkdir()
    for name in ("cat", "dog"):
        (root / name).symlink_to(elsewhere / name, target_is_directory=True)
    with pytest.raises(NeuralabError, match=r"found 0 class folder\(s\).*; cat, dog: links to folders, which are not "
                                            r"followed, so copy their pictures in"):
        load_image_folder(root)


def test_pictures_beside_the_class_folders_are_said_not_dropped_without_a_word(tmp_path):
    """Pictures at the top of the dataset's folder belong to no class: they were left out
    silently, and a folder of nothing else was refused as having no class folders, the
    pictures it holds unsaid."""
    root = tmp_path / "shapes"
    root.mkdir()
    for i in range(4):
        shade(10 * i).save(root / f"{i}.png")
    with pytest.raises(NeuralabError, match=r"found 0 class folder\(s\).*; its 4 picture\(s\) \(0.png, 1.png, 2.png, "
                                            r"\.\.\.\) belong in a sub-folder named after their class"):
        load_image_folder(root)
    two_classes(root)
    with pytest.warns(SkippedImagesWarning, match=r"left out 4 picture\(s\) beside the class folders"):
        data = load_image_folder(root, val_fraction=0, test_fraction=0)
    assert data.classes == ["a", "b"] and len(data.train) == 6
    assert [(Path(p).name, why.split("; ")[0]) for p, why in data.skipped] == \
        [(f"{i}.png", "beside the class folders, in no class") for i in range(4)]


def test_a_size_no_classifier_takes_is_refused_before_any_picture_is_resized(tmp_path, monkeypatch, capsys):
    """--image-size 60000x60000 resized the first picture (10 GB, 40 s) before refusing it,
    and then told the user to pass the --image-size they had passed."""
    root = digits_folder(tmp_path / "digits", 40)

    def no_read(path, *args, **kwargs):
        raise AssertionError(f"{path} read before the size was checked")

    monkeypatch.setattr(folders, "read_image", no_read)
    with pytest.raises(NeuralabError, match=r"^image_size=\(60000, 60000\): expected \(height, width\), whole "
                                            r"numbers of pixels from 1 to 1024"):
        load_image_folder(root, image_size=(60000, 60000))
    with pytest.raises(SystemExit) as usage:  # a usage error, from the option as typed
        main(["train", "--model", "cnn", "--data", str(root), "--image-size", "1025x32", "--epochs", "1",
              "--out", str(tmp_path / "run")])
    code = usage.value.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--image-size" in err and "1025x32': at most 1024 pixels a side" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as usage:  # Keras's (height, width, channels), as a learner writes it
        main(["train", "--model", "cnn", "--data", str(root), "--image-size", "32x32x3", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and err.count("\n") == 1
    assert "'32x32x3': give HEIGHTxWIDTH in pixels (32x32); the colour channels are --color's (rgb for 3" in err


# --- ONNX export -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def alexnet_64(tmp_path_factory) -> Path:
    """AlexNet (dense layers cut to 16 units) trained one epoch on real handwritten digits at
    64x64: the size a user picks for small photos, where its 6x6 adaptive pool does not divide
    the last map."""
    root = digits_folder(tmp_path_factory.mktemp("pictures") / "digits", 100)
    out = tmp_path_factory.mktemp("runs") / "alexnet"
    train_classifier(ClassifierConfig(model="alexnet", model_options={"hidden": 16}, data=str(root),
                                      image_size=(64, 64), train=TrainConfig(epochs=1, batch_size=32)),
                     out=out, verbose=False)
    return out


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory) -> Path:
    """The workshop's CNN trained one epoch on real handwritten digits at 16x16."""
    root = digits_folder(tmp_path_factory.mktemp("pictures") / "digits", 100)
    out = tmp_path_factory.mktemp("runs") / "cnn"
    train_classifier(ClassifierConfig(model="cnn", data=str(root), image_size=(16, 16),
                                      train=TrainConfig(epochs=1, batch_size=32)), out=out, verbose=False)
    return out


def test_alexnet_at_64x64_exports_and_onnxruntime_gives_its_probabilities(alexnet_64, capsys):
    """ONNX has no adaptive pool whose output does not divide its input: the export stopped in
    a traceback with a page of TorchScript graph."""
    import onnxruntime

    assert main(["export", str(alexnet_64), "--onnx"]) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    clf = load_classifier(alexnet_64)
    images = np.stack([np.asarray(Image.fromarray(np.full((64, 64), v, np.uint8)))[None] for v in (0, 90, 200)])
    images[1, 0, 20:44, 28:36] = 255  # a bar, so that the pictures differ in shape, not only in brightness
    session = onnxruntime.InferenceSession(str(alexnet_64 / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": clf.preprocess(images).numpy()})[0]
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), clf.predict_proba(images),
                               atol=1e-5)


def test_an_out_that_names_a_file_of_the_run_is_refused_and_the_file_kept(cnn_run, capsys):
    """`--out RUN/config.json` wrote the ONNX graph over the run's config: the run was lost."""
    config = (cnn_run / "config.json").read_bytes()
    for name in ("config.json", "model.safetensors"):
        before = (cnn_run / name).read_bytes()
        assert main(["export", str(cnn_run), "--onnx", "--out", str(cnn_run / name)]) == 2
        err = capsys.readouterr().err
        assert f"--out {cnn_run / name}: is a file that is no ONNX model" in err and err.count("\n") == 1
        assert (cnn_run / name).read_bytes() == before
    assert json.loads(config)["config"]["model"] == "cnn"
    assert main(["evaluate", str(cnn_run)]) == 0  # the run still works


def test_an_export_that_fails_its_check_keeps_the_earlier_file(cnn_run, monkeypatch, tmp_path, capsys):
    """The graph was renamed into place before onnxruntime checked it: a failed check deleted
    it, and with it the good model.onnx of an earlier export."""
    import onnxruntime

    from neuralab.training.export import export_onnx

    earlier = tmp_path / "model.onnx"
    export_onnx(cnn_run, earlier)
    good = earlier.read_bytes()
    real_run = onnxruntime.InferenceSession.run

    def off_by_one(self, *args, **kwargs):  # a graph that computes something else than the model
        return [out + 1 for out in real_run(self, *args, **kwargs)]

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", off_by_one)
    with pytest.raises(NeuralabError, match="ONNX output differs from PyTorch by 1.00e\\+00"):
        export_onnx(cnn_run, earlier)
    assert earlier.read_bytes() == good
    with pytest.raises(NeuralabError):
        export_onnx(cnn_run, tmp_path / "new.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no unchecked graph, no leftovers


SPECTRAL_NET = """
import torch
from torch import nn


class Net(nn.Module):
    \"\"\"Each row's spectrum, then a dense layer: an operator ONNX has no form for.\"\"\"

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 5, 10))

    def forward(self, x):
        return self.head(torch.fft.rfft(x, dim=-1).abs())
"""


def test_a_model_onnx_cannot_express_is_refused_in_one_line(tmp_path, capfd):
    """A traceback after a page of TorchScript graph on standard output."""
    root = digits_folder(tmp_path / "digits", 100)
    (tmp_path / "spectral.py").write_text(SPECTRAL_NET)
    run = tmp_path / "run"
    assert main(["train", "--model", f"{tmp_path / 'spectral.py'}:Net", "--data", str(root), "--epochs", "1",
                 "--quiet", "--out", str(run)]) == 0
    capfd.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"{run}: its model cannot be exported to ONNX" in err and "aten::fft_rfft" in err
    assert not (run / "model.onnx").exists() and not list(run.glob(".model.onnx*"))


def test_evaluate_and_resume_refuse_a_folder_changed_since_training(tmp_path, capsys):
    """A class folder added, renamed or taken away shifted the labels (an added one crashed with
    an IndexError, the others scored the model against the wrong classes without a word), and
    pictures added since shifted the seeded split, putting training pictures in the test set."""
    import shutil

    root = digits_folder(tmp_path / "digits", 300)
    out = tmp_path / "run"
    train_classifier(ClassifierConfig(model="mlp", data=str(root), train=TrainConfig(epochs=2, batch_size=64)),
                     out=out, verbose=False)
    assert main(["evaluate", str(out)]) == 0
    capsys.readouterr()

    def refused(*words):
        assert main(["evaluate", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and all(w in err for w in words), err

    shutil.copytree(root / "9", root / "ten")
    refused("not the 10 the run was trained on", "added: ten")
    shutil.rmtree(root / "ten")
    (root / "3").rename(root / "three")
    refused("added: three", "missing: 3")
    (root / "three").rename(root / "3")
    shade(40, (8, 8)).save(root / "3" / "extra.png")
    refused("301 images now, 300 when the run was trained", "give the data as it was")

    # an interrupted run goes on only on the data it began with
    (out / "results.json").unlink()  # as if stopped before its end
    assert main(["train", "--resume", str(out)]) == 2
    assert "301 images now" in capsys.readouterr().err
    (root / "3" / "extra.png").unlink()
    assert main(["evaluate", str(out)]) == 0


def test_one_picture_name_is_one_picture_and_many_are_classified_in_batches(tmp_path):
    root = digits_folder(tmp_path / "digits", 200)
    out = tmp_path / "run"
    train_classifier(ClassifierConfig(model="mlp", data=str(root), train=TrainConfig(epochs=1)), out=out,
                     verbose=False)
    clf = load_classifier(out)
    picture = next((root / "4").iterdir())
    one = clf.load_images(str(picture))  # a str is one name, not a list of its letters
    assert one.shape == (1, *clf.preprocess.input_shape)
    assert np.array_equal(one, clf.load_images(picture)) and np.array_equal(one, clf.load_images([picture]))
    many = np.repeat(one, 600, axis=0)  # more than a batch: the probabilities are those of each image alone
    probs = clf.predict_proba(many)
    assert probs.shape == (600, 10) and np.allclose(probs, probs[:1], atol=1e-6)
    assert np.allclose(probs[0], clf.predict_proba(one)[0], atol=1e-6)
    assert clf.predict_proba(many[:0]).shape == (0, 10)


def tga_bytes(footer: bool) -> bytes:
    """A 16 x 16 photo as Pillow writes TGA (version 2, ending in its footer), or as a version 1
    file, which has no footer and no signature at all."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buf, format="TGA")
    data = buf.getvalue()
    assert data.endswith(b"TRUEVISION-XFILE.\0")
    return data if footer else data[:-26]  # the footer: extension and developer offsets, then the signature


@pytest.mark.parametrize("footer, said", [
    (True, "TGA format, which neuralab does not open; convert it to PNG, JPEG, GIF, BMP, TIFF, WebP or PGM/PPM"),
    (False, "not a readable image; give a PNG, JPEG, GIF, BMP, TIFF, WebP or PGM/PPM file"),
])
def test_a_tga_picture_is_refused_by_its_name_or_none_never_as_a_cur(tmp_path, footer, said,
                                                                      parsers_watched):  # noqa: F811
    """An uncompressed TGA starts with the four bytes Pillow's CUR test looks for: it was
    refused as "CUR format"."""
    from neuralab.data.pictures import read_image
    from neuralab.web.images import decode

    path = tmp_path / "photo.tga"
    path.write_bytes(tga_bytes(footer))
    with pytest.raises(NeuralabError) as e:
        read_image(path)
    assert str(e.value) == f"{path}: {said}"
    with pytest.raises(NeuralabError) as e:
        decode(path.read_bytes())  # an upload to the web app
    assert str(e.value) == f"upload: {said}"
    assert parsers_watched == []  # told from its bytes: Pillow's TGA and CUR parsers never ran
