"""Keras code as workshop learners write it, through `neuralab import`: binary classifiers of
grey images given without their channel axis, losses passed as Keras functions, Keras's MNIST
MLP on flattened images, a fit that diverged; and a .keras file whose weights member is a zip
bomb. Each imports and predicts what Keras's predict gives (within 1e-5), or is refused in one
line saying what to do."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.errors import NeuralabError
from neuralab.keras import read

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

TOL = 1e-5


def randomize(model, seed: int = 0):
    """Weights far from Keras's initial ones, so that a weight loaded in the wrong place shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([(0.1 * rng.standard_normal(w.shape)).astype("float32") for w in layer.get_weights()])
    return model


def cli_refused(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def import_and_predict(tmp_path: Path, capsys, model_file: Path, picture: Path, k: int) -> np.ndarray:
    """`neuralab import` the file, then `neuralab predict` the picture: its K probabilities."""
    run = tmp_path / f"run-{model_file.name}"
    assert main(["import", str(model_file), "--out", str(run)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["predict", str(run), str(picture), "--json", "--top-k", str(k)]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    top = (result if isinstance(result, list) else result["predictions"])[0]["top"]
    return np.array([{int(t["class"]): t["probability"] for t in top}[i] for i in range(k)])


@pytest.fixture(scope="module")
def garment(fashion_mnist, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A real Fashion-MNIST test image as a PNG, and its pixels (28x28)."""
    pixels = read_idx(file_in(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[0]
    path = tmp_path_factory.mktemp("garment") / "garment.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


# --- binary classifiers of grey images without their channel axis ------------------------------

def grey_binary(form: str):
    """A 2-class Fashion-MNIST classifier as TensorFlow's first tutorial writes its input, (28, 28),
    with keras-io's one-unit head: a sigmoid with binary cross-entropy, or its logit."""
    sigmoid = form == "sigmoid"
    model = keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(64, activation="relu"),
                              L.Dense(1, activation="sigmoid" if sigmoid else None)])
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss="binary_crossentropy" if sigmoid else keras.losses.BinaryCrossentropy(from_logits=True))
    return randomize(model, seed=1)


def sigmoid_of(model, pixels: np.ndarray, logit: bool) -> float:
    z = float(keras.ops.convert_to_numpy(model.predict(pixels[None].astype("float32") / 255, verbose=0))[0, 0])
    return 1 / (1 + np.exp(-z)) if logit else z


@pytest.mark.parametrize("form", ["sigmoid", "logits"])
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_binary_classifier_of_grey_images_without_a_channel_axis_predicts_as_keras(
        tmp_path, capsys, garment, form, ext):
    """Input((28, 28)) -> Flatten -> ... -> Dense(1, sigmoid) is an image classifier, as its
    10-class softmax version is: `neuralab predict` gives [1 - p, p], p Keras's predict."""
    picture, pixels = garment
    model = grey_binary(form)
    model.save(tmp_path / f"shirts.{ext}")
    p = sigmoid_of(model, pixels, form == "logits")
    assert 0.01 < p < 0.99  # a score the test can tell from its complement
    got = import_and_predict(tmp_path, capsys, tmp_path / f"shirts.{ext}", picture, 2)
    assert np.abs(got - [1 - p, p]).max() <= TOL


def test_runlogger_records_a_grey_binary_classifier_as_an_image_classifier(tmp_path):
    from neuralab.training import RunLogger

    keras.utils.set_random_seed(0)
    model = grey_binary("sigmoid")
    x = np.random.default_rng(0).uniform(0, 1, (64, 28, 28)).astype("float32")
    y = (x.mean(axis=(1, 2)) > 0.5).astype("float32")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run", test=(x[:16], y[:16]))])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == "image-classifier"
    assert json.loads((tmp_path / "run" / "model.json").read_text())["input_shape"] == [1, 28, 28]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_loss"] == pytest.approx(model.evaluate(x[:16], y[:16], verbose=0)[0], abs=1e-5)


def test_a_binary_model_on_data_of_more_classes_is_refused_in_the_users_terms(tmp_path, capsys):
    """The message speaks of the one sigmoid unit the code wrote, not of the (None, 2) logits
    neuralab makes of it."""
    for i, name in enumerate(("boot", "sandal", "sneaker")):
        (tmp_path / "shoes" / name).mkdir(parents=True)
        for j in range(4):
            Image.fromarray(np.full((8, 8), 60 * i + j, np.uint8), "L").save(tmp_path / "shoes" / name / f"{j}.png")
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.save(tmp_path / "boots.keras")
    err = cli_refused(capsys, "import", tmp_path / "boots.keras", "--out", tmp_path / "run",
                      "--data", tmp_path / "shoes")
    assert "one sigmoid unit (None, 1)" in err and "2 classes" in err and "has 3 classes" in err, err
    assert "(None, 2)" not in err
    err = cli_refused(capsys, "import", tmp_path / "boots.keras", "--out", tmp_path / "run", "--classes", "a,b,c")
    assert "--classes" in err and "one sigmoid unit" in err and "give 2 distinct names" in err, err
    assert not (tmp_path / "run").exists()


def test_a_loss_given_as_a_keras_function_is_read_by_its_name(tmp_path, capsys, garment):
    """compile(loss=keras.losses.binary_crossentropy): Keras writes a function's name as its
    config; the one-unit model is the binary classifier it says, not a model of loss 'function'."""
    picture, pixels = garment
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                              L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss=keras.losses.binary_crossentropy, metrics=["accuracy"])
    randomize(model, seed=4).save(tmp_path / "fn.keras")
    p = sigmoid_of(model, pixels[..., None], logit=False)
    assert 0.01 < p < 0.99
    got = import_and_predict(tmp_path, capsys, tmp_path / "fn.keras", picture, 2)
    assert np.abs(got - [1 - p, p]).max() <= TOL


# --- Keras's MNIST MLP: vectors of flattened pixels --------------------------------------------------

def test_a_model_of_flattened_images_is_refused_saying_how_to_take_images(tmp_path, capsys, garment):
    """Dense(512, input_shape=(784,)) on x.reshape(-1, 784): refused as vectors (not as a
    forecaster), with the fix; the fix as told, the same weights, imports and predicts as the
    original model does on the flattened pixels."""
    picture, pixels = garment
    mlp = keras.Sequential([L.Dense(32, activation="relu", input_shape=(784,)), L.Dropout(0.2),
                            L.Dense(10, activation="softmax")])
    mlp.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    randomize(mlp, seed=2).save(tmp_path / "mlp.keras")
    err = cli_refused(capsys, "import", tmp_path / "mlp.keras", "--out", tmp_path / "run")
    assert "vectors of 784 values" in err and "keras.Input((28, 28, 1)) and Flatten()" in err, err
    assert "forecast" not in err

    fixed = keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(32, activation="relu"),
                              L.Dropout(0.2), L.Dense(10, activation="softmax")])
    fixed.set_weights(mlp.get_weights())
    fixed.save(tmp_path / "fixed.keras")
    want = keras.ops.convert_to_numpy(mlp.predict(pixels.reshape(1, 784).astype("float32") / 255, verbose=0))[0]
    assert np.abs(import_and_predict(tmp_path, capsys, tmp_path / "fixed.keras", picture, 10) - want).max() <= TOL


# --- files that would hurt -------------------------------------------------------------------------

def test_a_diverged_model_is_refused_naming_the_layer(tmp_path, capsys):
    """A fit gone to NaN saves as it is; importing it would give NaN for every picture."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3), L.Flatten(),
                              L.Dense(3, activation="softmax", name="scores")])
    model.save(tmp_path / "nan.h5")
    with h5py.File(tmp_path / "nan.h5", "r+") as h:
        layer = h["model_weights/scores"]
        layer[layer.attrs["weight_names"][1]][1] = np.nan  # kernel, bias
    err = cli_refused(capsys, "import", tmp_path / "nan.h5", "--out", tmp_path / "run")
    assert "layer 'scores': bias holds NaN" in err and "lower learning rate" in err, err
    assert not (tmp_path / "run").exists()


def test_a_weights_member_that_is_a_zip_bomb_is_refused_before_it_is_extracted(tmp_path, capsys, monkeypatch):
    """A model whose config declares 16 MB of weights, its model.weights.h5 deflated zeros that
    expand to 257 MiB from a few hundred KB: refused from the archive's sizes, as Keras's loader
    refuses it, before a byte is written out (Keras stores members uncompressed)."""
    import shutil

    model = keras.Sequential([keras.Input((4096,)), L.Dense(1024, activation="softmax")])
    model.layers[0].set_weights([np.zeros((4096, 1024), "float32"), np.zeros(1024, "float32")])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name in ("metadata.json", "config.json"):
            z.writestr(name, members[name])
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            f.write(members["model.weights.h5"])
            chunk = bytes(2**20)
            for _ in range(257 - len(members["model.weights.h5"]) // 2**20):
                f.write(chunk)
    info = zipfile.ZipFile(bomb).getinfo("model.weights.h5")
    assert info.file_size > 256 * 2**20 and info.compress_size < info.file_size // 100

    copied = []
    monkeypatch.setattr(shutil, "copyfileobj", lambda *a, **k: copied.append(a))
    with pytest.raises(NeuralabError, match="zip bomb"):
        read(bomb)
    assert "zip bomb" in cli_refused(capsys, "import", bomb, "--out", tmp_path / "run")
    assert not copied and not (tmp_path / "run").exists()

