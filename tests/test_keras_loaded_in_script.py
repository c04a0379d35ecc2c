"""A learner's Keras script that loads its trained model (keras.saving.load_model of a .keras,
keras.models.load_model of an .h5, load_weights, set_weights) starts from the weights it loaded,
with the compile() settings the file restores, as the saved file itself would; a script that only
builds its model still starts from neuralab's seeded initialisation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import digits_folder  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from neuralab import load_classifier  # noqa: E402
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier  # noqa: E402
from neuralab.training.source import resolve  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
L = keras.layers
CNN = """keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
    keras.layers.Flatten(name="flat"), keras.layers.Dense(10, activation="softmax", name="scores")], name="digits")"""


def pixels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The folder's pictures as uint8 (N, 8, 8, 1), sorted, and their labels."""
    files = sorted(folder.rglob("*.png"))
    x = np.stack([np.asarray(Image.open(f)) for f in files])[..., None]
    return x, np.array([int(f.parent.name) for f in files])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Digits, and a small CNN Keras trained on them (RMSprop, not neuralab's default), saved as
    .keras, .h5 and .weights.h5; the model itself, for its predictions."""
    root = tmp_path_factory.mktemp("loaded")
    digits = digits_folder(root / "digits", 400)
    x, y = pixels(digits)
    keras.utils.set_random_seed(3)
    model = eval(CNN)
    model.compile(optimizer=keras.optimizers.RMSprop(0.003), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x / 255.0, y, epochs=5, verbose=0)
    assert (model.predict(x / 255.0, verbose=0).argmax(1) == y).mean() > 0.5  # what a fresh start would lose
    for name in ("net.keras", "net.h5", "net.weights.h5"):
        (model.save_weights if name.endswith(".weights.h5") else model.save)(root / name)
    return digits, root, model


def script(folder: Path, body: str) -> Path:
    path = folder / "learner.py"
    path.write_text(f"import keras\nimport numpy as np\n{body}\n"
                    "model.fit(np.zeros((4, 8, 8, 1)), np.zeros(4), epochs=1)\n")
    return path


def run(model: Path, out: Path, **train) -> Path:
    train_classifier(ClassifierConfig(model=str(model), data=str(train.pop("data")),
                                      train=TrainConfig(epochs=1, schedule="constant", **train)),
                     out=out, verbose=False)
    return out


@pytest.mark.parametrize("load, saved", [
    ("model = keras.saving.load_model({!r})", "net.keras"),
    ("model = keras.models.load_model({!r})", "net.h5"),
    # no optimizer state loaded: the script compiles the model as the file did
    ("model = keras.models.load_model({!r}, compile=False)\n"
     "model.compile(optimizer=keras.optimizers.RMSprop(0.003), loss='sparse_categorical_crossentropy')", "net.h5"),
], ids=["keras", "h5", "h5-compiled-by-the-script"])
def test_a_model_the_script_loads_trains_on_from_the_loaded_weights(trained, tmp_path, load, saved):
    digits, root, model = trained
    path = script(tmp_path, load.format(str(root / saved)))
    # the file's compile() settings, restored by load_model, as the saved file's own route takes them
    assert resolve(path).compile == {**resolve(root / saved).compile, "epochs": 1, "batch_size": 32}  # fit()'s
    assert resolve(path).compile["optimizer"] == "rmsprop"
    out = run(path, tmp_path / "run", data=digits, lr=1e-12)  # a rate that moves nothing
    x, _ = pixels(digits)
    probs = load_classifier(out).predict_proba(x[:64].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(probs, model.predict(x[:64] / 255.0, verbose=0), atol=1e-4)


@pytest.mark.parametrize("body", [
    f"model = {CNN}\nmodel.load_weights({{weights!r}})",
    f"trained = keras.saving.load_model({{keras_file!r}}, compile=False)\nmodel = {CNN}\n"
    "model.set_weights(trained.get_weights())",
    f"trained = keras.saving.load_model({{keras_file!r}}, compile=False)\nmodel = {CNN}\n"
    "for layer in model.layers:\n    layer.set_weights(trained.get_layer(layer.name).get_weights())",
], ids=["load_weights", "model.set_weights", "layer.set_weights"])
def test_weights_the_script_sets_are_those_the_model_starts_from(trained, tmp_path, body):
    _, root, model = trained
    path = script(tmp_path, body.format(weights=str(root / "net.weights.h5"), keras_file=str(root / "net.keras")))
    weights = resolve(path).weights
    assert weights is not None and set(weights) == {"conv", "scores"}
    for name, arrays in weights.items():
        for got, want in zip(arrays.values(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_a_model_the_script_builds_beside_a_loaded_one_starts_from_the_seeded_initialisation(trained, tmp_path):
    digits, root, model = trained
    # the loaded model is the script's reference; the one it trains is built fresh
    path = script(tmp_path, f"reference = keras.saving.load_model({str(root / 'net.keras')!r})\nmodel = {CNN}\n"
                            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')")
    assert resolve(path).weights is None
    first, second = (load_file(run(path, tmp_path / name, data=digits, lr=1e-12, seed=7) / "model.safetensors")
                     for name in ("one", "two"))
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # not the loaded model's weights, in whatever order the run lays them out
    kernel = next(a for a in first.values() if a.size == 288 * 10)
    assert not np.allclose(np.sort(kernel, None), np.sort(model.get_layer("scores").get_weights()[0], None), atol=1e-3)


def test_a_new_head_on_a_loaded_models_layers_starts_from_the_loaded_weights(trained, tmp_path):
    _, root, model = trained
    # transfer learning, keras.io's way: the functional model's layers are the loaded model's own
    path = script(tmp_path, f"base = keras.saving.load_model({str(root / 'net.keras')!r})\n"
                            "head = keras.layers.Dense(3, name='head')(base.get_layer('flat').output)\n"
                            "model = keras.Model(base.inputs, head, name='tl')\n"
                            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')")
    weights = resolve(path).weights
    assert weights is not None and set(weights) == {"conv", "head"}
    for got, want in zip(weights["conv"].values(), model.get_layer("conv").get_weights()):
        np.testing.assert_array_equal(got, want)


def test_a_model_set_to_its_own_first_values_starts_from_the_seeded_initialisation(tmp_path):
    # the tutorials' reset before each fit(): Keras's own draws, set again, load nothing
    path = script(tmp_path, f"model = {CNN}\ninitial = model.get_weights()\n"
                            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n"
                            "model.set_weights(initial)\nmodel.layers[0].set_weights(initial[:2])")
    assert resolve(path).weights is None


def test_the_settings_load_model_restored_are_named_as_such_where_compile_replaces_them(trained, tmp_path):
    _, root, _ = trained
    path = script(tmp_path, f"model = keras.saving.load_model({str(root / 'net.keras')!r})\n"
                            "model.compile(optimizer=keras.optimizers.SGD(0.01), loss='sparse_categorical_crossentropy')")
    with pytest.warns(UserWarning, match=r"learner\.py:4: model\.compile\(\) replaces the settings "
                                         r"keras\.saving\.load_model restored at line 3, as in Keras"):
        assert resolve(path).compile["optimizer"] == "sgd"


# A fresh process's first read imports Keras as the file runs, inside the run's seeded generators
READ_FIRST = """
import hashlib, json, os, sys, warnings
os.environ["KERAS_BACKEND"] = "torch"
warnings.simplefilter("ignore")
from neuralab.training.source import resolve
from neuralab.training.seeds import generators_kept
assert "keras" not in sys.modules
with generators_kept(0):
    weights = resolve(sys.argv[1]).weights
print(json.dumps(weights and {f"{layer}/{name}": hashlib.sha256(a.tobytes()).hexdigest()
                              for layer, arrays in weights.items() for name, a in arrays.items()}))
"""


@pytest.mark.parametrize("body", [
    # a new head, whose weights Keras draws as the file runs, on a loaded model's layers
    "base = keras.saving.load_model({keras_file!r})\n"
    "model = keras.Model(base.inputs, keras.layers.Dense(3, name='head')(base.get_layer('flat').output), name='tl')",
    # reset to the values Keras drew
    f"model = {CNN}\ninitial = model.get_weights()\nmodel.set_weights(initial)",
], ids=["new-head", "reset"])
def test_the_same_seed_gives_the_same_weights_whether_or_not_keras_was_imported_before(trained, tmp_path, body):
    import hashlib
    import json
    import subprocess
    import sys

    from neuralab.training.seeds import generators_kept

    _, root, _ = trained
    path = script(tmp_path, body.format(keras_file=str(root / "net.keras")))
    done = subprocess.run([sys.executable, "-c", READ_FIRST, str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert done.returncode == 0, done.stderr[-2000:]
    with generators_kept(0):  # here Keras was imported long before
        weights = resolve(path).weights
    here = weights and {f"{layer}/{name}": hashlib.sha256(a.tobytes()).hexdigest()
                        for layer, arrays in weights.items() for name, a in arrays.items()}
    assert json.loads(done.stdout.splitlines()[-1]) == here
