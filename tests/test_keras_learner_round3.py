"""A learner's Keras in a notebook, round 3: a model Keras fitted keeps its weights, a model file's
Keras settings do not outlast it, a finished RunLogger run survives a continuation that fails in
its first step, RunLogger's test loss is Keras's evaluate, and refusals say what the learner wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import digits_folder  # noqa: E402
from PIL import Image  # noqa: E402

from neuralab import load_classifier  # noqa: E402
from neuralab.errors import NeuralabError  # noqa: E402
from neuralab.keras.layers import Args  # noqa: E402
from neuralab.training import ClassifierConfig, RunLogger, TrainConfig, train_classifier  # noqa: E402
from neuralab.training.keras_model import compile_settings  # noqa: E402
from neuralab.training.source import resolve  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
L = keras.layers


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("round3") / "digits", 400)


def pixels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The folder's pictures as uint8 (N, 8, 8, 1), sorted, and their labels."""
    files = sorted(folder.rglob("*.png"))
    x = np.stack([np.asarray(Image.open(f)) for f in files])[..., None]
    return x, np.array([int(f.parent.name) for f in files])


def small_cnn(name: str):
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu", name="conv"),
                             L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="scores")], name=name)


# --- 1. a Keras model object that Keras fitted starts from its weights ------------------------------------

def test_a_fitted_keras_object_starts_from_its_weights_on_pixels_over_255(digits, tmp_path):
    x, y = pixels(digits)
    keras.utils.set_random_seed(1)
    model = small_cnn("fitted")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x / 255.0, y, epochs=5, verbose=0)
    fitted = model.predict(x[:64] / 255.0, verbose=0)
    assert (fitted.argmax(1) == y[:64]).mean() > 0.5  # trained: what a fresh start would lose
    out = tmp_path / "run"
    # at a rate that moves nothing, the run's model is the object's
    train_classifier(ClassifierConfig(model=model, data=str(digits),
                                      train=TrainConfig(epochs=1, lr=1e-12, schedule="constant")),
                     out=out, verbose=False)
    clf = load_classifier(out)
    assert list(clf.preprocess.mean) == [0.0] and clf.preprocess.std[0] == pytest.approx(1.0)  # pixels / 255
    probs = clf.predict_proba(x[:64].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(probs, fitted, atol=1e-4)


def test_a_keras_object_only_built_still_starts_from_the_seeded_initialisers():
    model = small_cnn("built")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert resolve(model).weights is None
    model.fit(np.zeros((4, 8, 8, 1)), np.zeros(4), epochs=1, verbose=0)
    assert set(resolve(model).weights) == {"conv", "scores"}


# --- 2. a model file's Keras settings are put back -----------------------------------------------------

@pytest.fixture
def keras_settings():
    from keras.src.backend.common import global_state

    kept = (keras.config.floatx(), keras.config.image_data_format(), keras.config.epsilon(),
            global_state.get_global_attribute("dtype_policy"))
    yield kept
    keras.config.set_floatx(kept[0])
    keras.config.set_image_data_format(kept[1])
    keras.config.set_epsilon(kept[2])
    global_state.set_global_attribute("dtype_policy", kept[3])


def test_a_files_mixed_precision_policy_does_not_outlast_it(tmp_path, keras_settings):
    path = tmp_path / "mixed.py"
    path.write_text("import keras\nfrom keras import layers\n"
                    "keras.mixed_precision.set_global_policy('mixed_float16')\n"
                    "model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(name='flat'),\n"
                    "    layers.Dense(10, name='logits'), layers.Activation('softmax', dtype='float32', name='p')])\n")
    before = keras.config.dtype_policy().name
    source = resolve(path)
    assert keras.config.dtype_policy().name == before == "float32"
    assert keras.layers.Dense(2, name="next").dtype_policy.name == "float32"
    assert source.type == "keras"


def test_a_files_channels_first_and_float64_do_not_outlast_its_refusal(tmp_path, keras_settings):
    path = tmp_path / "cf.py"
    path.write_text("import keras\nkeras.config.set_image_data_format('channels_first')\n"
                    "keras.config.set_floatx('float64')\nkeras.config.set_epsilon(1e-3)\n"
                    "model = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Conv2D(4, 3, name='conv'),\n"
                    "    keras.layers.Flatten(name='flat'), keras.layers.Dense(10, activation='softmax', name='p')])\n")
    with pytest.raises(NeuralabError, match="channels_first"):
        resolve(path)
    assert (keras.config.floatx(), keras.config.image_data_format(), keras.config.epsilon()) == \
        keras_settings[:3]


# --- 3. a finished run survives a continuation failing in its first step -------------------------------

def _files(run: Path) -> set[str]:
    return {p.name for p in run.iterdir()}


def test_a_continuation_failing_before_its_first_epoch_leaves_the_run_finished(tmp_path):
    x = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
    y = np.arange(64) % 10
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"),
                              L.Dense(10, activation="softmax", name="p")], name="crash")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = tmp_path / "run"
    logger = RunLogger(out=out, test=(x, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
    finished = (out / "results.json").read_bytes(), (out / "config.json").read_bytes()
    assert {"results.json", "report.html"} <= _files(out) and "run.lock" not in _files(out)
    with pytest.raises(Exception):  # noqa: B017  one-hot labels for a sparse loss: Keras refuses the first step
        model.fit(x, keras.utils.to_categorical(y, 10)[:, :, None], initial_epoch=1, epochs=2, verbose=0,
                  callbacks=[logger])
    assert {"results.json", "report.html"} <= _files(out) and "run.lock" not in _files(out)
    assert ((out / "results.json").read_bytes(), (out / "config.json").read_bytes()) == finished
    # the same logger then continues it as it would have
    model.fit(x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[logger])
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    assert "run.lock" not in _files(out)


# --- 4. RunLogger's test loss is Keras's evaluate ------------------------------------------------------

@pytest.mark.parametrize("head, loss, one_hot", [
    ("softmax", "categorical_crossentropy", True),
    ("softmax", "sparse_categorical_crossentropy", False),
    ("sigmoid", "binary_crossentropy", False),
])
def test_runloggers_test_loss_is_kerass_evaluate_where_probabilities_are_tiny(tmp_path, head, loss, one_hot):
    rng = np.random.default_rng(0)
    x = rng.random((80, 8, 8, 1)).astype("float32")
    k = 1 if head == "sigmoid" else 10
    y = rng.integers(0, 2 if k == 1 else 10, 80)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), L.Dense(k, activation=head, name="p")],
                             name=f"tiny_{head}")
    kernel, bias = model.get_layer("p").get_weights()
    model.get_layer("p").set_weights([rng.normal(0, 30, kernel.shape).astype("float32"), bias])  # confident, often wrong
    model.compile(optimizer=keras.optimizers.SGD(1e-12), loss=loss, metrics=["accuracy"])
    labels = keras.utils.to_categorical(y, 10) if one_hot else y
    out = tmp_path / "run"
    model.fit(x, labels, epochs=1, verbose=0, callbacks=[RunLogger(out=out, test=(x, labels))])
    probs = model.predict(x, verbose=0)
    chosen = probs[np.arange(80), y] if k == 10 else np.where(y == 1, probs[:, 0], 1 - probs[:, 0])
    assert (chosen < 1e-7).sum() > 5  # where Keras's clipped loss and the exact one part
    evaluated = model.evaluate(x, labels, verbose=0)[0]
    assert json.loads((out / "results.json").read_text())["test_loss"] == pytest.approx(evaluated, rel=1e-4)


# --- 5. refusals say what the learner wrote -----------------------------------------------------------

def test_a_custom_layer_is_named_in_the_learners_file(tmp_path):
    path = tmp_path / "customlayer.py"
    path.write_text("import keras\nfrom keras import layers\nclass Scale(layers.Layer):\n"
                    "    def call(self, x):\n        return x * 2.0\n"
                    "model = keras.Sequential([keras.Input((8, 8, 1)), Scale(name='scale'), layers.Flatten(name='f'),\n"
                    "    layers.Dense(10, activation='softmax', name='p')])\n")
    with pytest.raises(NeuralabError) as e:
        resolve(path)
    said = str(e.value)
    assert "class Scale in customlayer.py" in said and "neuralab_model_" not in said, said


def test_a_size_past_the_limit_says_the_limit_and_what_to_do():
    with pytest.raises(NeuralabError) as e:
        Args("layer 'conv' (Conv2D)", {"filters": 2**31}).int("filters")
    assert str(e.value) == ("layer 'conv' (Conv2D): filters=2147483648: expected a whole number from 1 to "
                            "2,147,483,647; make the layer smaller")
    with pytest.raises(NeuralabError, match="expected a whole number from 1 to 2,147,483,647"):
        Args("layer 'conv' (Conv2D)", {"filters": 0}).int("filters")


def test_an_optimizer_object_is_quoted_as_an_object():
    model = small_cnn("nadam")
    model.compile(optimizer=keras.optimizers.Nadam(1e-3), loss="sparse_categorical_crossentropy")
    with pytest.raises(NeuralabError) as e:
        compile_settings(model.get_compile_config())
    assert str(e.value).startswith("compile(optimizer=Nadam(...)): neuralab trains with adam"), str(e.value)
