"""Keras files made to hurt: shapes that Keras's own loader would build from and neuralab's
reader ignored, and input sizes that no image classifier takes. Each is refused in one line
before anything is allocated; a model leaving its image size free trains on the data's.
The files are saved by Keras 3 (on PyTorch), then edited as JSON where the case needs it."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_subset

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.keras import read

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras


def saved(path: Path, input_shape, *layers) -> Path:
    keras.Sequential([keras.Input(input_shape), *layers]).save(path)
    return path


def edited(path: Path, edit) -> Path:
    """``path`` with its config.json through ``edit(config)``."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def cli_refused(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def small(path: Path) -> Path:
    return saved(path, (8, 8, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax"))


# --- shapes Keras builds from ------------------------------------------------------------------

def layer_config(c: dict, cls: str) -> dict:
    return next(r for r in c["config"]["layers"] if r["class_name"] == cls)


@pytest.mark.parametrize("field,edit", [
    ("build_config.input_shape=[null, 65536]",
     lambda c: layer_config(c, "Dense").__setitem__("build_config", {"input_shape": [None, 2**16]})),
    ("build_config.input_shape=[null, 4096, 4096, 1]",
     lambda c: layer_config(c, "Conv2D")["build_config"].__setitem__("input_shape", [None, 4096, 4096, 1])),
    ("batch_input_shape=[null, 4096, 4096, 1]",
     lambda c: layer_config(c, "InputLayer")["config"].__setitem__("batch_input_shape", [None, 4096, 4096, 1])),
    ("input_shape=[65536]", lambda c: layer_config(c, "Dense")["config"].__setitem__("input_shape", [2**16])),
    ("build_input_shape=[null, 4096, 4096, 1]",
     lambda c: c["config"].__setitem__("build_input_shape", [None, 4096, 4096, 1])),
    ("build_config.shapes_dict=", lambda c: layer_config(c, "Dense").__setitem__(
        "build_config", {"shapes_dict": {"inputs_shape": [None, 2**16]}})),
])
def test_shapes_keras_would_build_from_must_be_the_ones_neuralab_computes(tmp_path, capsys, field, edit):
    """Keras builds each layer from its build_config (and a few other shape fields), which
    neuralab computes for itself: an 18 KB file could make the import's conversion check
    (Keras's loader) allocate gigabytes. The file is refused before Keras sees it."""
    path = edited(small(tmp_path / "m.keras"), edit)
    with pytest.raises(NeuralabError) as e:
        read(path)
    assert str(e.value).startswith(f"{path}: ") and field in str(e.value) and "the config was edited" in str(e.value)
    assert field in cli_refused(capsys, "import", path, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_genuine_files_keep_their_shapes(tmp_path):
    """The shapes that Keras writes all agree: a model through every kind of layer input."""
    inputs = keras.Input((6, 6, 3))
    a, b = L.Conv2D(4, 3, padding="same")(inputs), L.Conv2D(4, 1)(inputs)
    x = L.GlobalAveragePooling2D()(L.BatchNormalization()(L.Concatenate()([L.Add()([a, b]), inputs])))
    keras.Model(inputs, L.Dense(2)(x)).save(tmp_path / "f.keras")
    assert [e["class"] for e in read(tmp_path / "f.keras").spec["layers"]][-1] == "Dense"


# --- image sizes ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 256, 64)


def any_size(path: Path) -> Path:
    return saved(path, (None, None, 1), L.Conv2D(4, 3, activation="relu"), L.GlobalAveragePooling2D(),
                 L.Dense(10, activation="softmax"))


def test_a_model_of_any_image_size_trains_at_the_datasets_size(tmp_path, capsys, fashion):
    """keras.Input((None, None, 1)): training takes the dataset's 28x28, and the run keeps it."""
    from neuralab.training import load_classifier

    path = any_size(tmp_path / "fcn.keras")
    code = main([str(a) for a in ("train", "--model", path, "--data", "fashion-mnist", "--data-dir", fashion,
                                  "--epochs", "1", "--out", tmp_path / "run", "--quiet")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "model.json").read_text())["input_shape"] == [1, 28, 28]
    images = np.zeros((2, 1, 28, 28), np.uint8)
    assert load_classifier(tmp_path / "run").predict_proba(images).shape == (2, 10)


def test_a_model_of_any_image_size_needs_a_size_to_be_imported(tmp_path, capsys, fashion):
    path = any_size(tmp_path / "fcn.keras")
    err = cli_refused(capsys, "import", path, "--out", tmp_path / "run")
    assert "keras:fcn: the model takes images of any height and width, and needs a fixed size" in err
    assert "--data" in err and not (tmp_path / "run").exists()
    # as the message says: with a dataset it takes the dataset's size, and Keras checks it there
    code = main([str(a) for a in ("import", path, "--data", "fashion-mnist", "--data-dir", fashion,
                                  "--out", tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and "Keras and neuralab differ by at most" in out and "test accuracy" in out, out
    assert json.loads((tmp_path / "run" / "model.json").read_text())["input_shape"] == [1, 28, 28]


@pytest.mark.parametrize("side", [4000, 2**31 - 1])
def test_image_sides_beyond_max_side_are_refused_before_allocating(tmp_path, capsys, side):
    from neuralab.data.pictures import MAX_SIDE
    from neuralab.training.keras_model import keras_classifier

    path = saved(tmp_path / "big.keras", (side, side, 1), L.Conv2D(2, 3), L.GlobalAveragePooling2D(),
                 L.Dense(3, activation="softmax"))
    expected = f"the model takes images of {side}x{side}x1, larger than the {MAX_SIDE} pixels a side"
    if side > 2**20:  # refused as the file is read: its input alone is more values than any layer may output
        expected = f"outputs [None, {side}, {side}, 1], {side * side:,} values an input, more than the 268,435,456 " \
                   "neuralab allows; make the model's input shape smaller"
        assert expected in cli_refused(capsys, "import", path, "--out", tmp_path / "run")
        return
    with pytest.raises(NeuralabError, match=expected):
        keras_classifier(read(path).spec, None, (1, side, side), 3, "keras:big")


def test_the_conversion_check_is_left_out_where_its_outputs_would_not_fit_its_memory(tmp_path, capsys, monkeypatch):
    """A few hundred bytes of weights can ask for gigabytes of layer outputs: the check that
    runs random images through Keras and neuralab is then left out, and says why."""
    from neuralab.training import keras_import

    monkeypatch.setattr(keras_import, "MAX_CHECK_BYTES", 2**20)  # 1 MB: this model's 8 x 30x30x64 outputs are 1.8 MB
    path = saved(tmp_path / "wide.keras", (32, 32, 1), L.Conv2D(64, 3), L.GlobalAveragePooling2D(),
                 L.Dense(3, activation="softmax"))
    assert main([str(a) for a in ("import", path, "--out", tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "not checked against Keras: a layer outputs 57,600 values an image" in out, out
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["imported"]["conversion_check"]["checked"] is False
    monkeypatch.setattr(keras_import, "MAX_CHECK_BYTES", 2**30)
    assert main([str(a) for a in ("import", path, "--out", tmp_path / "run", "--overwrite")]) == 0
    assert "Keras and neuralab differ by at most" in capsys.readouterr().out


# --- what an import takes, and what it is imported with -------------------------------------------

def pet_folder(root: Path) -> Path:
    """Two classes ("cat", "dog") of 8x8 grey PNGs."""
    from PIL import Image

    for name, base in (("cat", 40), ("dog", 200)):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8), base + i, np.uint8), "L").save(root / name / f"{i}.png")
    return root


def test_an_image_folder_gives_its_classes_and_must_have_the_models_number(tmp_path, capsys, monkeypatch):
    """The default class names are the folder's; a model of 3 outputs on 2 classes is refused,
    as `neuralab train` refuses it, instead of a run whose classes say 0, 1, 2."""
    pet_folder(tmp_path / "pets")
    monkeypatch.chdir(tmp_path)
    three = saved(tmp_path / "three.keras", (8, 8, 1), L.Flatten(), L.Dense(3, activation="softmax"))
    for extra in ([], ["--classes", "a,b,c"]):
        err = cli_refused(capsys, "import", three, "--out", tmp_path / "run3", "--data", "pets", *extra)
        assert "the model outputs (None, 3)" in err and "has 2 classes" in err, err
        assert not (tmp_path / "run3").exists()
    two = saved(tmp_path / "two.keras", (8, 8, 1), L.Flatten(), L.Dense(2, activation="softmax"))
    assert main([str(a) for a in ("import", two, "--out", tmp_path / "run2", "--data", "pets")]) == 0
    record = json.loads((tmp_path / "run2" / "config.json").read_text())
    assert record["data"]["classes"] == ["cat", "dog"]
    assert record["config"]["data"] == str((tmp_path / "pets").resolve())  # read again from any directory


def test_a_file_is_taken_by_its_extension_and_read_by_its_content(tmp_path, capsys):
    """An .h5 renamed .keras imports and is still checked against Keras; a .zip is refused by
    `import` as by `train --model`, naming the extensions both take."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.h5")
    (tmp_path / "m.h5").rename(tmp_path / "renamed.keras")
    assert main([str(a) for a in ("import", tmp_path / "renamed.keras", "--out", tmp_path / "run")]) == 0
    check = json.loads((tmp_path / "run" / "config.json").read_text())["imported"]["conversion_check"]
    assert check["checked"] is True and check["max_abs_difference"] < 1e-5, check
    small(tmp_path / "m.keras").rename(tmp_path / "m.zip")
    err = cli_refused(capsys, "import", tmp_path / "m.zip", "--out", tmp_path / "zip")
    assert ".keras, .h5 or .hdf5" in err and not (tmp_path / "zip").exists()
    err = cli_refused(capsys, "train", "--model", tmp_path / "m.zip", "--out", tmp_path / "zip")
    assert ".keras, .h5, .hdf5" in err


def test_an_unconvertible_layer_in_a_python_file_names_the_file(tmp_path):
    from neuralab.training.source import resolve

    net = tmp_path / "net.py"
    # named: an unnamed layer would take Keras's next default name, which the process's other tests move on
    net.write_text("import keras\nfrom keras import layers as L\n"
                   "model = keras.Sequential([keras.Input((28, 28, 1)), L.Reshape((28, 28)), "
                   "L.Cropping1D(1, name='c1'), L.Flatten(), L.Dense(2, activation='softmax')], name='net')\n")
    with pytest.raises(NeuralabError) as e:
        resolve(str(net))
    assert str(e.value).startswith(f"{net}: Keras model 'net': layer 'c1' (Cropping1D)"), str(e.value)
