"""Keras code as workshop learners write it, through `neuralab import`: binary classifiers of
grey images given without their channel axis, losses passed as Keras functions, Keras's MNIST
MLP on flattened images, a fit that diverged; and a .keras file whose weights member is a zip
bomb, or objects from modules outside Keras in fields neuralab ignores. Through `neuralab train
--model`: losses as Keras functions, learning-rate schedules, Keras's input_shape warnings, the
MNIST MLP. Each imports and predicts what Keras's predict gives (within 1e-5), or is refused in
one line saying what to do."""

from __future__ import annotations

import json
import os
import warnings
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



# --- `neuralab train --model FILE.py` on learners' listings ---------------------------------------

MLP_LISTING = """
import keras
from keras import layers

model = keras.Sequential([layers.Dense(32, activation="relu", input_shape=(784,)), layers.Dropout(0.2),
                          layers.Dense(10, activation="softmax")])
model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
"""

CNN_LISTING = """
import keras
from keras import layers

model = keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), layers.Flatten(),
                          layers.Dense(10, activation="softmax")])
model.compile(optimizer={optimizer}, loss={loss}, metrics=["accuracy"])
"""


@pytest.fixture(scope="module")
def fashion_subset(fashion_mnist, tmp_path_factory) -> Path:
    from helpers import idx_subset

    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 256, 64)


def test_train_model_takes_a_loss_given_as_a_keras_function(tmp_path, capsys, fashion_subset):
    """compile(loss=keras.losses.sparse_categorical_crossentropy), as Keras's own examples write
    it: the run trains with that loss (cross-entropy on the softmax's logits), not refused as a
    loss named 'function'."""
    from neuralab.training.keras_model import compile_settings

    listing = tmp_path / "cnn.py"
    listing.write_text(CNN_LISTING.format(optimizer="keras.optimizers.SGD(0.05)",
                                          loss="keras.losses.sparse_categorical_crossentropy"))
    code = main(["train", "--model", str(listing), "--data", "fashion-mnist", "--data-dir", str(fashion_subset),
                 "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    train = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]
    assert (train["loss"], train["optimizer"], train["lr"]) == ("cross_entropy", "sgd", 0.05)
    for function, ours in ((keras.losses.mean_squared_error, "mse"), (keras.losses.huber, "huber"),
                           (keras.losses.categorical_crossentropy, "cross_entropy")):
        model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss=function)
        assert compile_settings(model.get_compile_config())["loss"] == ours, function
    with pytest.raises(NeuralabError, match="compile\\(loss='kldivergence'\\): neuralab trains with"):
        model.compile(optimizer="adam", loss=keras.losses.kl_divergence)
        compile_settings(model.get_compile_config())


@pytest.mark.parametrize("ext", ["code", "keras"])
def test_a_learning_rate_schedule_is_said_and_its_initial_rate_taken(tmp_path, ext):
    """SGD(learning_rate=ExponentialDecay(0.1, ...)): neuralab's trainer runs its own schedules,
    so the run takes the schedule's initial rate, and a warning says so rather than train at
    neuralab's default rate without a word."""
    from neuralab.training.config import TrainConfig, with_compile
    from neuralab.training.source import resolve

    schedule = "keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.9)"
    listing = tmp_path / "cnn.py"
    listing.write_text(CNN_LISTING.format(optimizer=f"keras.optimizers.SGD(learning_rate={schedule})",
                                          loss="'sparse_categorical_crossentropy'"))
    model = str(listing)
    if ext == "keras":  # a saved model's compile_config keeps the schedule the same way
        import runpy

        runpy.run_path(model)["model"].save(tmp_path / "cnn.keras")
        model = str(tmp_path / "cnn.keras")
    with pytest.warns(UserWarning, match=r"SGD\(learning_rate=ExponentialDecay\(\.\.\.\)\).*initial_learning_rate, "
                                         r"0\.1, as the rate"):
        settings = resolve(model).compile
    assert settings["optimizer"] == "sgd" and settings["lr"] == 0.1
    assert with_compile(TrainConfig(), settings).lr == 0.1

    from neuralab.training.keras_model import compile_settings

    steps = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="softmax")])
    steps.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.01, 0.001])),
                  loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="PiecewiseConstantDecay.*neuralab's default rate"):
        assert "lr" not in compile_settings(steps.get_compile_config())


def test_keras_input_shape_warnings_are_silenced_while_the_file_runs_and_others_are_not(tmp_path):
    """The workshop's listings pass input_shape= to their first layer; Keras's advice against it
    printed on every `train --model`, --quiet or not. The file's own warnings still show."""
    from neuralab.training.source import resolve

    listing = tmp_path / "mlp.py"
    listing.write_text(CNN_LISTING.format(optimizer="'adam'", loss="'sparse_categorical_crossentropy'")
                       + "\nimport warnings\nwarnings.warn('the listing speaks')\n"
                       + "\ndef build():\n    return keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])\n")
    for model in (str(listing), f"{listing}:build"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resolve(model)
        said = [str(w.message) for w in caught]
        assert not [m for m in said if "input_shape" in m], said
        assert "the listing speaks" in said


def test_train_model_on_flattened_images_gives_imports_advice_not_forecasts(tmp_path, capsys, fashion_subset):
    """Keras's MNIST MLP, Dense(..., input_shape=(784,)), through `train --model` (code or a saved
    file): the advice `neuralab import` gives, not "a sequence model ... neuralab forecast"."""
    listing = tmp_path / "mlp.py"
    listing.write_text(MLP_LISTING)
    import runpy

    runpy.run_path(str(listing))["model"].save(tmp_path / "mlp.keras")
    said = []
    for model in (listing, tmp_path / "mlp.keras"):
        err = cli_refused(capsys, "train", "--model", model, "--data", "fashion-mnist", "--data-dir", fashion_subset,
                          "--epochs", "1", "--out", tmp_path / "run")
        assert "vectors of 784 values" in err and "keras.Input((28, 28, 1)) and Flatten()" in err, err
        assert "forecast" not in err and "sequence" not in err, err
        said.append(err.split(": ", 3)[-1])
    imported = cli_refused(capsys, "import", tmp_path / "mlp.keras", "--out", tmp_path / "run")
    assert said[0] == said[1] and "vectors of 784 values" in imported
    assert not (tmp_path / "run").exists()


# --- objects from other modules in fields neuralab ignores ------------------------------------------

def with_object(source: Path, target: Path, layer: str, key: str, obj) -> Path:
    """``source`` (a .keras file) with ``obj`` put in ``key`` of ``layer``'s config."""
    with zipfile.ZipFile(source) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    entry = next(r for r in config["config"]["layers"] if r["config"]["name"] == layer)
    entry["config"][key] = obj
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return target


@pytest.mark.parametrize("key, obj, named", [
    ("kernel_initializer", {"module": "os", "class_name": "system", "config": {"command": "touch pwned"},
                            "registered_name": None}, "kernel_initializer is 'system' from module 'os'"),
    ("kernel_regularizer", {"module": "keras.regularizers", "class_name": "L1L2", "registered_name": None,
                            "config": {"l1": {"module": "subprocess", "class_name": "Popen", "config": {},
                                              "registered_name": None}}},
     "kernel_regularizer.config.l1 is 'Popen' from module 'subprocess'"),
    ("dtype", {"module": "my_policies", "class_name": "Policy", "config": {"name": "float32"},
               "registered_name": "Mine>Policy"}, "dtype is 'Mine>Policy' from module 'my_policies'"),
])
def test_an_object_from_outside_keras_in_an_ignored_field_never_reaches_keras(tmp_path, capsys, monkeypatch,
                                                                              key, obj, named):
    """The reader ignores initializers, regularizers, constraints and dtype policies, but import's
    conversion check hands the file to Keras's loader: an object there from another module is
    refused in one line naming the layer and the field, before any Keras call."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(),
                              L.Dense(3, activation="softmax", name="scores",
                                      kernel_regularizer=keras.regularizers.L2(0.01),
                                      kernel_constraint=keras.constraints.MaxNorm(2.0))])
    model.save(tmp_path / "plain.keras")
    assert main(["import", str(tmp_path / "plain.keras"), "--out", str(tmp_path / "plain")]) == 0  # Keras's own pass
    capsys.readouterr()
    loads = []

    def load_model(*args, **kwargs):
        loads.append(args)
        raise RuntimeError("Keras's loader was handed the file")

    monkeypatch.setattr(keras.saving, "load_model", load_model)
    hostile = with_object(tmp_path / "plain.keras", tmp_path / "hostile.keras", "scores", key, obj)
    err = cli_refused(capsys, "import", hostile, "--out", tmp_path / "run")
    assert "layer 'scores' (Dense)" in err and named in err and "not one of Keras's own objects" in err, err
    assert not loads and not (tmp_path / "run").exists()
    with pytest.raises(NeuralabError, match=named.replace(".", r"\.")):
        read(hostile)


LOGITS_LISTING = """
import keras
from keras import layers

model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10)])
model.compile(optimizer="adam", loss={loss}, metrics=["accuracy"])
"""


@pytest.mark.parametrize("loss, warned", [
    ('"sparse_categorical_crossentropy"', True),
    ("keras.losses.SparseCategoricalCrossentropy()", True),
    ("keras.losses.SparseCategoricalCrossentropy(from_logits=True)", False),
])
def test_a_model_without_softmax_compiled_on_probabilities_is_said_to_train_on_logits(tmp_path, capsys,
                                                                                         fashion_subset, loss, warned):
    """Dense(10) with from_logits=False: Keras would take the outputs as probabilities (and train
    badly); neuralab trains them as logits, and says so rather than differ from Keras in silence."""
    import warnings

    listing = tmp_path / "mlp.py"
    listing.write_text(LOGITS_LISTING.format(loss=loss))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = main(["train", "--model", str(listing), "--data", "fashion-mnist", "--data-dir", str(fashion_subset),
                     "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    said = [str(w.message) for w in seen if "ends without a softmax" in str(w.message)]
    assert len(said) == warned and all("neuralab reads them as logits" in m for m in said)


def test_a_lambda_loss_is_refused_in_a_saved_file_and_taken_from_a_live_model(tmp_path, capsys):
    """Keras writes compile(loss=lambda ...) into the file as marshalled code: refused, naming the
    field, before Keras's loader; the live model, the caller's own code, converts as it is."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=lambda y, p: keras.ops.mean((y - p) ** 2))
    assert read(model).spec["layers"][-1]["output_shape"] == [None, 3]
    model.save(tmp_path / "m.keras")
    err = cli_refused(capsys, "import", tmp_path / "m.keras", "--out", tmp_path / "run")
    assert "m.keras: compile_config.loss holds Python code (a marshalled function)" in err, err
    assert not (tmp_path / "run").exists()


def test_lambdas_in_a_live_models_layer_fields_convert_and_are_refused_once_saved(tmp_path, capsys):
    """A lambda regularizer or initializer of the caller's own live model is code already running
    in the caller's process: the model converts; saved, Keras writes it as marshalled code, refused."""
    dense = L.Dense(3, activation="softmax", name="out", kernel_regularizer=lambda w: 1e-4 * keras.ops.sum(w ** 2),
                    kernel_initializer=lambda shape, dtype=None: keras.random.normal(shape, seed=1))
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), dense])
    converted = read(model)
    assert [converted.weights["out"][k].tolist() for k in ("kernel", "bias")] == [w.tolist() for w in dense.get_weights()]
    model.save(tmp_path / "m.keras")
    err = cli_refused(capsys, "import", tmp_path / "m.keras", "--out", tmp_path / "run")
    assert "layer 'out' (Dense): kernel_initializer holds Python code (a marshalled function)" in err, err

# --- why the import's check was not made -----------------------------------------------------

KERNEL = ("Kernel shape must have the same length as input, but received kernel of shape (3, 3, 1, 4) and input of "
          "shape (None, None, 28, 28, 1).")  # Keras 3 on a Keras 2.2.4 .h5 whose Conv2D holds batch_input_shape
LOCATE = ("Could not locate class 'Scale'. Make sure custom classes and functions are decorated with "
          "`@keras.saving.register_keras_serializable()`. If they are already decorated, make sure they are all "
          "imported so that the decorator is run before trying to load them. Full object config: "
          + json.dumps({"module": "my", "class_name": "Scale", "config": {"name": "scale", "units": list(range(40))}}))
# Keras 3's loader, where a layer's weights did not load: the cause on the lines after the colon
TOTAL = "A total of 1 objects could not be loaded. Example error message for object <Dense name=dense_1, built=True>:"
CAUSE = "Layer 'dense_1' expected 2 variables, but received 0 variables during loading. Expected: ['kernel', 'bias']"
MISMATCH = ("Layer 'conv2d' weight shape mismatch, e.g. the kernel of shape (3, 3, 1, 4) does not match the stored one "
            "of shape (3, 3, 4, 1); the file was saved by another version of Keras or was edited, so that the layer "
            "cannot take the weights it stores, and loading the model fails here before any weights are assigned")


@pytest.mark.parametrize("error, why", [
    (ValueError(KERNEL), f"ValueError: {KERNEL}"),
    (ValueError(f"{KERNEL}\n\nArguments received by Conv2D.call():\n  • inputs=torch.Tensor(shape=(None, 28))"),
     f"ValueError: {KERNEL}"),
    (TypeError(LOCATE), "TypeError: Could not locate class 'Scale'."),
    (ValueError(f"{TOTAL}\n\n{CAUSE}\n\nList of objects that could not be loaded:\n[<Dense name=dense_1, built=True>]"),
     f"ValueError: {TOTAL} {CAUSE}"),
])
def test_why_keras_could_not_load_the_file_is_kept_whole(tmp_path, capsys, monkeypatch, error, why):
    """The reason the import says it did not check the conversion against Keras is Keras's error
    whole, its first line (with the next, where the first ends in a colon; or its first sentence,
    where the line runs on into a config), not cut mid-word."""
    check, said = import_failing_check(tmp_path, capsys, monkeypatch, error)
    assert check == {"checked": False, "why": f"Keras could not load the file: {why}"}
    assert f"not checked against Keras: Keras could not load the file: {why}\n" in said, said


@pytest.mark.parametrize("message, at_a_word", [(MISMATCH, True), ("x" * 5000, False)])
def test_why_keras_could_not_load_the_file_is_cut_where_it_has_no_short_sentence(tmp_path, capsys, monkeypatch,
                                                                                 message, at_a_word):
    """A first line longer than the reason's bound, without a sentence's end before it ("e.g. " is
    none), is cut at the bound, at a word where it has one, and says so with "..."."""
    from neuralab.training.keras_import import MAX_REASON

    check, said = import_failing_check(tmp_path, capsys, monkeypatch, ValueError(message))
    why = check["why"].removeprefix("Keras could not load the file: ValueError: ")
    assert why.endswith("...") and len(f"ValueError: {why}") <= MAX_REASON, why
    assert message.startswith(why[:-3]) and len(why) > MAX_REASON // 2, why
    assert (message[len(why) - 3] == " ") == at_a_word, why
    assert f"not checked against Keras: {check['why']}\n" in said, said


def import_failing_check(tmp_path, capsys, monkeypatch, error: Exception) -> tuple[dict, str]:
    """`neuralab import` of a small model whose check Keras's loader fails with ``error``: the
    run's conversion_check and what the import printed."""
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.keras")

    def load_model(*args, **kwargs):
        raise error

    monkeypatch.setattr(keras.saving, "load_model", load_model)
    assert main(["import", str(tmp_path / "m.keras"), "--out", str(tmp_path / "run")]) == 0
    said = capsys.readouterr().out
    return json.loads((tmp_path / "run" / "config.json").read_text())["imported"]["conversion_check"], said
