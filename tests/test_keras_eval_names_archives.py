"""What a learner's Keras model gives through neuralab.keras: convert() predicts as Keras's
predict on its first call (augmentation, Dropout and BatchNormalization included), a custom
layer is refused under the name Keras gives it, and a .keras archive whose entries would unpack
outside its folder is refused naming the entry before Keras sees it."""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.keras import convert, read

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 reads it once, at its first import
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras


# --- convert() is Keras's predict, from its first call ------------------------------------------

def augmented_cnn():
    """keras-io's image_classification_from_scratch in small: an augmentation block, Rescaling,
    Conv2D, BatchNormalization and Dropout, with BatchNormalization's statistics and every weight
    set far from Keras's initial ones (a fitted model's), so that batch statistics show."""
    keras.utils.set_random_seed(0)
    augmentation = keras.Sequential([L.RandomFlip("horizontal", name="flip"), L.RandomRotation(0.2, name="rotate")],
                                     name="augmentation")
    model = keras.Sequential([
        keras.Input((16, 16, 1), name="pixels"), augmentation, L.Rescaling(1 / 255, name="scale"),
        L.Conv2D(6, 3, activation="relu", name="conv"), L.BatchNormalization(name="bn"), L.Dropout(0.5, name="drop"),
        L.Flatten(name="flatten"), L.Dense(4, activation="softmax", name="out"),
    ], name="augmented_cnn")
    rng = np.random.default_rng(0)
    for layer in (model.get_layer("conv"), model.get_layer("bn"), model.get_layer("out")):
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.path
                           else (0.5 * rng.standard_normal(w.shape)).astype("float32")
                           for v, w in zip(layer.weights, layer.get_weights())])
    return model


@pytest.mark.parametrize("route", ["live", "keras"])
def test_convert_predicts_as_keras_on_the_first_call_and_after(tmp_path, route):
    model = augmented_cnn()
    x = (np.random.default_rng(1).random((16, 16, 16, 1)) * 255).astype("float32")  # pixels in [0, 255]
    want = model.predict(x, verbose=0)
    if route == "keras":
        model.save(tmp_path / "cnn.keras")
    net = convert(model if route == "live" else tmp_path / "cnn.keras")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        first, second = net(images).numpy(), net(images).numpy()
    # the first call neither transforms, drops nor normalises with the batch; nor does it move the
    # statistics that every later call uses
    assert np.abs(first - want).max() < 1e-5, np.abs(first - want).max()
    assert np.abs(second - want).max() < 1e-5, np.abs(second - want).max()


# --- a custom layer is refused under its name ---------------------------------------------------

class Scale(L.Layer):
    """A learner's layer: its keyword arguments, as ``**kw``, to the base class and no get_config().
    Keras's generated config leaves out the name where ``__init__`` takes neither ``name`` nor
    ``**kwargs`` by that spelling, so the saved config has none."""

    def __init__(self, **kw):
        super().__init__(**kw)

    def build(self, shape):
        self.s = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * self.s


def test_a_custom_layer_in_a_sequential_model_is_refused_by_its_name():
    model = keras.Sequential([keras.Input((8, 8, 1), name="pixels"), Scale(name="my_scale"),
                              L.Flatten(name="flat"), L.Dense(3, activation="softmax", name="out")], name="learner")
    scale = model.layers[0]
    assert "name" not in scale.get_config()  # the case: Keras's config does not say it
    with pytest.raises(NeuralabError) as e:
        convert(model)
    assert "layer 'my_scale' (Scale): a custom layer (class Scale in test_keras_eval_names_archives.py)" in str(e.value)
    assert "None" not in str(e.value)


def test_a_saved_custom_layer_without_a_name_is_refused_without_printing_none(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1), name="pixels"), Scale(name="my_scale"),
                              L.Flatten(name="flat"), L.Dense(3, activation="softmax", name="out")], name="learner")
    model.save(tmp_path / "custom.keras")
    with pytest.raises(NeuralabError, match=r"custom\.keras: an unnamed Scale layer: a custom layer") as e:
        read(tmp_path / "custom.keras")
    assert "None" not in str(e.value)


# --- a .keras archive whose entries unpack outside its folder -----------------------------------

def with_entry(path: Path, entry: str) -> Path:
    """A genuine small .keras file, plus ``entry`` (what a zip-slip archive adds)."""
    keras.Sequential([keras.Input((8, 8, 1), name="pixels"), L.Conv2D(2, 3, name="conv"), L.Flatten(name="flat"),
                      L.Dense(3, activation="softmax", name="out")], name="small").save(path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(entry, b"outside")
    return path


ESCAPING = ["../../pwned.txt", "assets/../../pwned.txt", "/tmp/pwned_abs.txt", "..\\pwned.txt", "C:/pwned.txt"]


@pytest.mark.parametrize("entry", ESCAPING)
def test_an_entry_outside_the_archives_folder_is_refused_naming_it(tmp_path, entry):
    path = with_entry(tmp_path / "slip.keras", entry)
    for weights in (True, False):  # summary reads the architecture alone
        with pytest.raises(NeuralabError) as e:
            read(path, weights=weights)
        assert str(e.value).startswith(f"{path}: the archive holds the entry {entry!r}"), str(e.value)


@pytest.mark.parametrize("command", ["import", "summary"])
def test_the_cli_refuses_such_an_archive_in_one_line_before_keras_loads_it(tmp_path, capsys, monkeypatch, command):
    path = with_entry(tmp_path / "slip.keras", "../../pwned.txt")
    loaded = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: loaded.append(a) or pytest.fail("Keras loaded it"))
    argv = ["import", path, "--out", tmp_path / "run"] if command == "import" else ["summary", path]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # zipfile's raw "Skipping invalid path" is one
        code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'../../pwned.txt'" in err and str(path) in err, err
    assert not loaded and not (tmp_path / "run").exists()


def test_a_genuine_archive_with_assets_is_still_read(tmp_path):
    path = tmp_path / "fine.keras"
    with_entry(path, "assets/vocabulary.txt")
    assert read(path).spec["output"] == "out"
