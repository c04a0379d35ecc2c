"""`neuralab import MODEL.keras --data FOLDER --image-size HxW`: a model whose input takes any
size (None, None, C), a fully convolutional net, reads a folder of pictures of several sizes at
the size given, and `neuralab evaluate` reads it again alike; a model of one size refuses
another, naming the option. A model with one open side, (None, 16, C), is told which size to
give (its fixed side kept, "Hx16"), not to leave out the option; each refusal shows the size
as typed. A size too small for a layer's window names the option and the smallest size that
works, where it named only the layer."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from neuralab.cli import main  # noqa: E402
from neuralab.errors import ParameterError  # noqa: E402
from neuralab.training.keras_import import import_keras  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

SIZES = [(16, 16), (24, 20), (12, 18)]  # (height, width), in turn


def digits_of_several_sizes(root, n=240):
    """scikit-learn's real 8x8 handwritten digits, enlarged to the SIZES in turn, as a folder of
    grey PNGs, one sub-folder per digit: pictures gathered from several sources."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (image, label) in enumerate(zip(d.images[:n], d.target[:n])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        h, w = SIZES[i % len(SIZES)]
        picture = Image.fromarray((image * 16).clip(0, 255).astype(np.uint8))
        picture.resize((w, h), Image.Resampling.BILINEAR).save(root / str(label) / f"{i}.png")
    return root


def saved(tmp_path, sides, name):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((*sides, 1), name="image"), keras.layers.Rescaling(1 / 255, name="scale"),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="pool"),
                              keras.layers.Dense(10, activation="softmax", name="scores")], name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / f"{name}.keras")
    return tmp_path / f"{name}.keras"


def test_a_model_of_any_size_reads_the_folder_at_the_size_given(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits")
    model = saved(tmp_path, (None, None), "anysize")
    out = tmp_path / "runs" / "imported"
    # without a size: the pictures differ, and the refusal names the option import has
    assert main(["import", str(model), "--out", str(out), "--data", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "images differ in size" in err and "--image-size" in err and len(err.strip().splitlines()) == 1
    code = main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", "16x16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["image_size"] == [16, 16] and config["data"]["input_shape"] == [1, 16, 16]
    results = json.loads((out / "results.json").read_text())
    assert sum(map(sum, results["confusion_matrix"])) > 0
    # evaluate reads the folder again at the size the run recorded, and finds the same figures
    assert main(["evaluate", str(out)]) == 0, capsys.readouterr().err
    again = json.loads((out / "results.json").read_text())
    assert np.array_equal(again["confusion_matrix"], results["confusion_matrix"])


def test_a_model_of_one_size_refuses_another_and_takes_its_own(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits", 120)
    model = saved(tmp_path, (28, 28), "fixed28")
    out = tmp_path / "runs" / "imported"
    assert main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", "16x16"]) != 0
    err = capsys.readouterr().err
    assert "--image-size" in err and "28x28" in err and not out.exists()
    with pytest.raises(ParameterError, match="takes 28x28 pictures") as refused:
        import_keras(model, out, data=str(folder), image_size=(16, 16))
    assert refused.value.parameter == "image_size"
    # its own size, given, is what it reads the folder at anyway
    written = import_keras(model, out, data=str(folder), image_size=(28, 28))
    assert json.loads((written["run_dir"] / "config.json").read_text())["config"]["image_size"] == [28, 28]


def test_a_size_without_a_folder_is_refused(tmp_path):
    model = saved(tmp_path, (None, None), "anysize")
    with pytest.raises(ParameterError, match="give the folder as") as refused:
        import_keras(model, tmp_path / "runs" / "x", image_size=(16, 16))
    assert refused.value.parameter == "image_size"


def refused(capsys, *args) -> str:
    assert main(["import", *map(str, args)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize("sides, typed, wanted, good", [
    ((None, 16), "20x20", "takes pictures 16 wide (any height); give --image-size Hx16", "20x16"),
    ((16, None), "20x20", "takes pictures 16 high (any width); give --image-size 16xW", "16x20"),
])
def test_a_model_with_one_open_side_is_told_the_size_to_give(tmp_path, capsys, sides, typed, wanted, good):
    folder = digits_of_several_sizes(tmp_path / "digits")
    model = saved(tmp_path, sides, "half")
    out = tmp_path / "runs" / "imported"
    assert "--image-size" in refused(capsys, model, "--out", out, "--data", folder)  # the sizes differ: give one
    err = refused(capsys, model, "--out", out, "--data", folder, "--image-size", typed)
    assert f"--image-size {typed}: {model} {wanted}" in err and "leave" not in err
    with pytest.raises(ParameterError, match=r"takes pictures 16 (wide|high) .*; give image_size") as python:
        import_keras(model, out, data=str(folder), image_size=(20, 20))
    assert python.value.parameter == "image_size"
    # the size the refusal asks for is taken
    code = main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", good])
    assert code == 0, capsys.readouterr().err
    h, w = map(int, good.split("x"))
    assert json.loads((out / "config.json").read_text())["data"]["input_shape"] == [1, h, w]


def test_a_fixed_model_is_told_to_leave_the_size_out_shown_as_typed(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits")
    model = saved(tmp_path, (28, 28), "fixed28")
    err = refused(capsys, model, "--out", tmp_path / "o", "--data", folder, "--image-size", "16x16")
    assert err.endswith(f"--image-size 16x16: {model} takes 28x28 pictures, and an image folder's are read at that "
                        "size; leave --image-size out (it is for a model whose input leaves a side open, None)")


def test_a_size_without_a_folder_is_shown_as_typed(tmp_path, capsys):
    model = saved(tmp_path, (None, None), "anysize")
    err = refused(capsys, model, "--out", tmp_path / "o", "--image-size", "16x12")
    assert "--image-size 16x12: reads the pictures of an image folder at that size" in err and "(16, 12)" not in err


def test_a_keras_shape_given_as_import_image_size_names_no_option_import_has_not(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["import", str(tmp_path / "model.keras"), "--image-size", "32x32x3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--color" not in err and "(32x32); the colour channels are the model's" in err, err


def pooled(tmp_path, sides, name):
    """A fully convolutional net of two 3-wide convolutions around a 2-wide pooling, whose input
    leaves ``sides`` open (None): a size too small for it is one of a few pixels."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([keras.Input((*sides, 1)), L.Rescaling(1 / 255), L.Conv2D(4, 3, activation="relu"),
                              L.MaxPooling2D(2), L.Conv2D(4, 3, activation="relu", name="conv2"),
                              L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")], name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / f"{name}.keras")
    return tmp_path / f"{name}.keras"


def smallest_said(err: str) -> str:
    assert "the smallest size that works is " in err, err
    return err.rsplit("the smallest size that works is ", 1)[1].split()[0].rstrip(",:")


def test_a_size_too_small_for_a_layer_names_the_option_and_the_smallest_size_that_works(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits", 60)
    model = pooled(tmp_path, (None, None), "open")
    out = tmp_path / "runs" / "imported"
    err = refused(capsys, model, "--out", out, "--data", folder, "--image-size", "4x4")
    assert err.startswith("neuralab: error: --image-size 4x4: too small: keras:open: layer 'conv2' (Conv2D): a 3-wide "
                          "window does not fit an input of size 1; the smallest size that works is "), err
    assert not out.exists()
    with pytest.raises(ParameterError, match="too small") as python:
        import_keras(model, out, data=str(folder), image_size=(4, 4))
    assert python.value.parameter == "image_size" and "--" not in str(python.value)
    # the size said works, and one less is refused: it is the smallest
    size = smallest_said(err)
    side = int(size.split("x")[0])
    assert size == f"{side}x{side}"
    assert smallest_said(refused(capsys, model, "--out", out, "--data", folder, "--image-size",
                                 f"{side - 1}x{side}")) == size
    code = main(["import", str(model), "--out", str(out), "--data", str(folder), "--image-size", size])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data"]["input_shape"] == [1, side, side]


def test_a_size_too_small_for_a_model_with_one_open_side_keeps_its_fixed_side(tmp_path, capsys):
    folder = digits_of_several_sizes(tmp_path / "digits", 60)
    model = pooled(tmp_path, (None, 16), "half")
    err = refused(capsys, model, "--out", tmp_path / "o", "--data", folder, "--image-size", "4x16")
    assert "--image-size 4x16: too small: " in err and smallest_said(err).endswith("x16"), err
    side = int(smallest_said(err).split("x")[0])
    assert main(["import", str(model), "--out", str(tmp_path / "o"), "--data", str(folder), "--image-size",
                 f"{side}x16"]) == 0, capsys.readouterr().err


def test_pictures_too_small_read_as_they_are_are_told_the_size_to_read_them_at(tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (image, label) in enumerate(zip(d.images[:60], d.target[:60])):  # 4x4 thumbnails of real digits
        (tmp_path / "thumbs" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 16).clip(0, 255).astype(np.uint8)).resize((4, 4)).save(
            tmp_path / "thumbs" / str(label) / f"{i}.png")
    model = pooled(tmp_path, (None, None), "open")
    err = refused(capsys, model, "--out", tmp_path / "o", "--data", tmp_path / "thumbs")
    assert f"{tmp_path / 'thumbs'}: pictures of 4x4 are too small: " in err, err
    assert "read an image folder at that size (--image-size), or make the model's layers fit 4x4" in err
    size = smallest_said(err)
    assert main(["import", str(model), "--out", str(tmp_path / "o"), "--data", str(tmp_path / "thumbs"),
                 "--image-size", size]) == 0, capsys.readouterr().err


def test_training_a_keras_file_at_a_size_too_small_names_the_option_and_the_smallest_size_that_works(tmp_path, capsys):
    """`neuralab train --model open.keras --image-size 4x4` said only the layer's refusal, as import did."""
    folder = digits_of_several_sizes(tmp_path / "digits", 60)
    model = pooled(tmp_path, (None, None), "open")
    out = tmp_path / "run"
    assert main(["train", "--model", str(model), "--data", str(folder), "--image-size", "4x4", "--epochs", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralab: error: pictures of 4x4 are too small: "), err
    assert err.endswith(f"the smallest size that works is {smallest_said(err)}: read an image folder at that size "
                        "(--image-size), or make the model's layers fit 4x4\n")
    assert not out.exists()
    assert main(["train", "--model", str(model), "--data", str(folder), "--image-size", smallest_said(err),
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
