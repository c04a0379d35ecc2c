"""Two more Keras scripts as learners write them, through `neuralab train --model`: the
workshop's MNIST script, which loads its data with keras.datasets' load_data() at the top of the
file (answered from neuralab's own copy, offline, nothing written; a download refused in one line
saying what to do), and Keras's LSTM on the rows of MNIST's pictures, `LSTM(64, input_shape=(28,
28))` -> `Dense(10, softmax)`, an image classifier, not a forecaster: it trains, evaluates,
predicts what Keras's predict gives on the same pictures, and exports. Real data: MNIST and
Fashion-MNIST as the tests find them, scikit-learn's handwritten digits as a folder of PNGs."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import digits_folder
from PIL import Image

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras

# The workshop's usual MNIST script, as learners copy it (layers named: auto-names depend on what ran before)
WORKSHOP = """\
from keras.datasets import {dataset}
from keras.models import Sequential
from keras.layers import Conv2D, MaxPool2D, Flatten, Dense
from keras.utils import to_categorical
(x_train, y_train), (x_test, y_test) = {dataset}.load_data()
x_train = x_train.reshape(-1, 28, 28, 1) / 255.0
x_test = x_test.reshape(-1, 28, 28, 1) / 255.0
y_train = to_categorical(y_train, 10); y_test = to_categorical(y_test, 10)
model = Sequential(name="workshop")
model.add(Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1), name="conv"))
model.add(MaxPool2D((2, 2), name="pool"))
model.add(Flatten(name="flat"))
model.add(Dense(10, activation="softmax", name="scores"))
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=1, batch_size=128, validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test)
print("Test accuracy:", score[1])
"""

# Keras's LSTM on the rows of grey pictures, for the 8x8 digits
ROWS = """\
import keras
from keras import layers
model = keras.Sequential([layers.LSTM(16, input_shape=(8, 8), name="rows"),
                          layers.Dense(10, activation="softmax", name="scores")], name="rnn_digits")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("scripts2") / "digits", 300)


@pytest.fixture
def offline(monkeypatch):
    """No connection can be made: a download attempt fails loudly, whatever the machine's network."""
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """Keras's cache (~/.keras) as a folder of the test's, empty unless the test fills it."""
    from keras.src.backend import config

    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setattr(config, "keras_home", lambda: str(home))
    return home


def _own_data(tmp_path: Path, monkeypatch, **folders: Path) -> Path:
    """neuralab's data cache holding only ``folders`` (name -> the real dataset's folder, linked),
    and no system folder: what neuralab.data finds is what the test gives."""
    from neuralab.data import sources

    cache = tmp_path / "neuralab-data"
    cache.mkdir()
    for name, folder in folders.items():
        (cache / name).symlink_to(folder)
    monkeypatch.setenv("NEURALAB_DATA", str(cache))
    monkeypatch.setattr(sources, "candidates", lambda source: [sources.cache_dir() / source.name])
    return cache


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _idx(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    return (read_idx(file_in(folder, f"{part}-images-idx3-ubyte.gz")),
            read_idx(file_in(folder, f"{part}-labels-idx1-ubyte.gz")))


def _refused(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return captured.err + captured.out


# --- keras.datasets while neuralab reads the file ------------------------------------------------

def test_the_workshops_mnist_script_trains_offline_on_neuralabs_copy(mnist, digits, tmp_path, monkeypatch, capsys,
                                                                     offline, keras_home):
    """`(x_train, y_train), (x_test, y_test) = mnist.load_data()` at the top of the file failed
    offline ("URL fetch failure on https://storage.googleapis.com/...") before the model existed,
    though neuralab trains on `data` itself. It reads neuralab's copy now: nothing downloaded,
    nothing written, neither in neuralab's cache nor in Keras's."""
    cache = _own_data(tmp_path, monkeypatch, mnist=mnist)
    script = tmp_path / "mnist_cnn.py"
    script.write_text(WORKSHOP.format(dataset="mnist"))
    assert main(["summary", str(script)]) == 0
    out = capsys.readouterr().out
    assert "conv (Conv2D)" in out and "(None, 26, 26, 8)" in out and "Downloading" not in out
    # the workshop's script on other pictures of digits, made 28x28 as its model wants
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--model", str(script), "--data", str(digits), "--image-size", "28x28", "--threads", "1",
                     "--quiet", "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert not any("load_data" in str(w.message) for w in caught)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_accuracy"] > 0.2  # 10 classes: 0.1 by chance
    assert _files(cache) == ["mnist"] and _files(keras_home) == []


def test_load_data_gives_keras_layout_from_neuralabs_copies(mnist, fashion_mnist, tmp_path, monkeypatch, offline,
                                                             keras_home):
    from neuralab.training.keras_script import fit_recorded

    cache = _own_data(tmp_path, monkeypatch, mnist=mnist, **{"fashion-mnist": fashion_mnist})
    script = tmp_path / "reads.py"
    script.write_text("import keras\n")
    for module, folder in ((keras.datasets.mnist, mnist), (keras.datasets.fashion_mnist, fashion_mnist)):
        with fit_recorded(script, {}):
            (x, y), (x_test, y_test) = module.load_data()
        assert (x.shape, x_test.shape, y.shape, y_test.shape) == ((60000, 28, 28), (10000, 28, 28), (60000,), (10000,))
        assert {a.dtype for a in (x, y, x_test, y_test)} == {np.dtype(np.uint8)}
        assert x.flags.writeable and y.flags.writeable  # as Keras's: a script may scale them in place
        for (got, labels), part in (((x, y), "train"), ((x_test, y_test), "t10k")):
            images, want = _idx(folder, part)
            assert np.array_equal(got, images) and np.array_equal(labels, want)
    with pytest.raises(TypeError), fit_recorded(script, {}):  # a call Keras would refuse fails as in Keras
        keras.datasets.fashion_mnist.load_data("fashion.npz")
    assert keras.datasets.mnist.load_data.__module__.startswith("keras")  # Keras's own again
    assert _files(cache) == ["fashion-mnist", "mnist"] and _files(keras_home) == []


def test_neuralabs_copy_is_the_array_keras_reads_from_its_own_cache(fashion_mnist, tmp_path, monkeypatch, offline,
                                                                     keras_home):
    """Fashion-MNIST in Keras's cache and not in neuralab's: Keras reads its own files, as
    without neuralab, and gives the arrays that neuralab's copy gives."""
    from neuralab.training.keras_script import fit_recorded, own_copy

    _own_data(tmp_path, monkeypatch)
    (keras_home / "datasets" / "fashion-mnist").mkdir(parents=True)
    for f in ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz"):
        (keras_home / "datasets" / "fashion-mnist" / f).symlink_to(fashion_mnist / f)
    script = tmp_path / "reads.py"
    script.write_text("import keras\n")
    with fit_recorded(script, {}):
        keras_read = keras.datasets.fashion_mnist.load_data()
    monkeypatch.setattr("neuralab.data.sources.candidates", lambda source: [fashion_mnist])
    ours = own_copy("fashion-mnist")
    for (kx, ky), (ox, oy) in zip(keras_read, ours):
        assert kx.dtype == ox.dtype and kx.shape == ox.shape and np.array_equal(kx, ox) and np.array_equal(ky, oy)


@pytest.mark.parametrize("dataset, fetch", [("cifar10", False), ("mnist", True)])
def test_a_dataset_keras_would_download_is_refused_in_one_line(dataset, fetch, digits, tmp_path, monkeypatch, capsys,
                                                               offline, keras_home):
    """CIFAR-10, which neuralab keeps no copy of in Keras's layout, and MNIST where neuralab has
    none: Keras would download them; the line says why not and what to do, and no run is made."""
    _own_data(tmp_path, monkeypatch)
    script = tmp_path / f"{dataset}_cnn.py"
    script.write_text(WORKSHOP.format(dataset=dataset))
    said = _refused(capsys, "train", "--model", script, "--data", digits, "--out", tmp_path / "run")
    assert f"{script}:5: keras.datasets.{dataset}.load_data() would download the dataset" in said, said
    assert "trains the model on --data itself" in said and 'if __name__ == "__main__":' in said
    assert ("`neuralab data fetch mnist`" in said) == fetch
    assert "Downloading" not in said and "URL fetch failure" not in said and "Exception" not in said
    assert not (tmp_path / "run").exists()
    assert [f for f in _files(keras_home) if f != "datasets"] == []  # Keras made its folder, wrote nothing in it


# --- the LSTM on the rows of grey pictures -------------------------------------------------------

def _keras_with_run_weights(run: Path):
    """ROWS's model in Keras with the run's trained weights: PyTorch's LSTM keeps Keras's gate
    order (i, f, c, o), its weights transposed and two biases where Keras adds them into one."""
    from safetensors.numpy import load_file

    w = load_file(run / "model.safetensors")
    model = keras.Sequential([keras.Input((8, 8)), L.LSTM(16, name="rows"), L.Dense(10, activation="softmax",
                                                                                    name="scores")])
    model.get_layer("rows").set_weights([w["rows.rnn.weight_ih_l0"].T, w["rows.rnn.weight_hh_l0"].T,
                                         w["rows.rnn.bias_ih_l0"] + w["rows.rnn.bias_hh_l0"]])
    model.get_layer("scores").set_weights([w["scores.weight"].T, w["scores.bias"]])
    return model


def test_an_lstm_on_the_rows_of_grey_pictures_is_an_image_classifier(digits, tmp_path, capsys):
    """Keras's RNN-on-MNIST listing was refused ("a sequence model is a forecaster; train it with
    `neuralab forecast --model`", which refuses it too). It trains on the pictures, each one's
    rows its steps, and predicts what Keras's predict gives on the same (N, 8, 8) pictures."""
    script = tmp_path / "rnn_digits.py"
    script.write_text(ROWS)
    assert main(["summary", str(script)]) == 0
    out = capsys.readouterr().out
    assert "(Reshape)" in out and "rows (LSTM)" in out and "(None, 8, 8)" in out and "(None, 16)" in out, out
    run = tmp_path / "run"
    assert main(["train", "--model", str(script), "--data", str(digits), "--epochs", "8", "--batch-size", "32",
                 "--threads", "1", "--quiet", "--out", str(run)]) == 0, capsys.readouterr().err
    assert json.loads((run / "model.json").read_text())["input_shape"] == [1, 8, 8]
    assert json.loads((run / "results.json").read_text())["test_accuracy"] > 0.2  # 10 classes: 0.1 by chance
    for argv in (["evaluate", run], ["export", run, "--onnx"]):
        assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert (run / "model.onnx").is_file()
    pictures = sorted(digits.rglob("*.png"))[:24]
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, pictures), "--json", "--top-k", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result if isinstance(result, list) else result["predictions"]
    got = np.array([[{int(t["class"]): t["probability"] for t in row["top"]}[k] for k in range(10)] for row in rows])
    # (N, 8, 8), normalised as the run feeds them: a fresh model from code trains on neuralab's normalisation
    pre = json.loads((run / "model.json").read_text())["preprocess"]
    x = (np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in pictures]) - pre["mean"][0]) / pre["std"][0]
    want = keras.ops.convert_to_numpy(_keras_with_run_weights(run).predict(x, verbose=0))
    assert np.abs(got - want).max() <= 1e-5


def test_an_imported_lstm_on_rows_predicts_as_keras(digits, tmp_path, capsys):
    model = keras.Sequential([keras.Input((8, 8)), L.GRU(12, name="rows"), L.Dense(10, activation="softmax",
                                                                                  name="scores")])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([(0.3 * rng.standard_normal(w.shape)).astype("float32") for w in layer.get_weights()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "rows.keras")
    assert main(["import", str(tmp_path / "rows.keras"), "--data", str(digits), "--out", str(tmp_path / "run")]) == 0
    check = json.loads((tmp_path / "run" / "config.json").read_text())["imported"]["conversion_check"]
    assert check["checked"] and check["max_abs_difference"] <= 1e-5, check
    picture = min(digits.rglob("*.png"))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(picture), "--json", "--top-k", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = (result if isinstance(result, list) else result["predictions"])[0]["top"]
    got = np.array([{int(t["class"]): t["probability"] for t in top}[k] for k in range(10)])
    want = keras.ops.convert_to_numpy(model.predict(np.asarray(Image.open(picture), np.float32)[None] / 255,
                                                    verbose=0))[0]
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("code, said, forecast", [
    # a forecast of 10 steps, with a regression loss: a forecaster, as before
    ('layers.LSTM(16, input_shape=(8, 8), name="rows"), layers.Dense(10, name="ahead")', "mse", True),
    # class scores on rows of any number: no picture has that; how to make it take pictures is said
    ('layers.LSTM(16, input_shape=(None, 8), name="rows"), layers.Dense(10, activation="softmax", name="scores")',
     "sparse_categorical_crossentropy", False),
])
def test_a_sequence_model_is_told_what_fits_it(code, said, forecast, digits, tmp_path, capsys):
    script = tmp_path / "seq.py"
    script.write_text(textwrap.dedent(f"""\
        import keras
        from keras import layers
        model = keras.Sequential([{code}])
        model.compile(optimizer="adam", loss="{said}")
        """))
    err = _refused(capsys, "train", "--model", script, "--data", digits, "--out", tmp_path / "run")
    assert ("neuralab forecast --model" in err) == forecast, err
    if not forecast:
        assert "(None, None, 8)" in err and "keras.Input((height, width, 1)) and Reshape((height, width))" in err
    assert not (tmp_path / "run").exists()
