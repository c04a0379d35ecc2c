"""Keras code as learners write it (keras-io's vision and timeseries examples, TensorFlow's
tutorials) converts and computes what Keras computes: Conv1D and its poolings for series,
SeparableConv2D and DepthwiseConv2D, data augmentation layers inline or in a nested
Sequential block, against Keras 3 on PyTorch through the .keras file, the legacy .h5 and the
live model, within 1e-5."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # Keras 3 reads it once, at its first import
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L  # noqa: E402
from helpers import randomize  # noqa: E402

from neuralab.errors import NeuralabError  # noqa: E402
from neuralab.keras import build, convert, parameter_count, read  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

TOL = 1e-5


def to_torch(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def torch_out(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(np.ascontiguousarray(to_torch(x)))).numpy()


def assert_parity(model, x: np.ndarray, tmp_path: Path, routes=("keras", "h5", "live")):
    want = to_torch(keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
    for route in routes:
        source = model if route == "live" else tmp_path / f"model.{route}"
        if route != "live":
            model.save(source)
        got = torch_out(convert(source), x)
        assert got.shape == want.shape, route
        # float32: within TOL of outputs up to 1, relative to larger ones (random weights give logits of 80)
        assert np.abs(got - want).max() <= TOL * max(1.0, np.abs(want).max()), (route, np.abs(got - want).max())


def series(n, t, f, seed=1):
    return np.random.default_rng(seed).standard_normal((n, t, f)).astype("float32")


def images(n, h, w, c, seed=1):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype("float32")


# --- Conv1D and its poolings: series ----------------------------------------------------------

@pytest.mark.parametrize("steps", [7, 8])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_matches_keras(tmp_path, steps, stride, padding):
    model = randomize(keras.Sequential([keras.Input((steps, 3)), L.Conv1D(5, 4, strides=stride, padding=padding)]))
    assert_parity(model, series(2, steps, 3), tmp_path, routes=("keras", "live"))


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, dilation_rate=2, padding="causal"),   # WaveNet's stack
    dict(kernel_size=3, dilation_rate=2, padding="same"),
    dict(kernel_size=3, groups=2, use_bias=False),
    dict(kernel_size=5, activation="relu", padding="same"),
])
def test_conv1d_options_match_keras(tmp_path, options):
    model = randomize(keras.Sequential([keras.Input((9, 4)), L.Conv1D(6, **options)]))
    assert_parity(model, series(2, 9, 4), tmp_path)


@pytest.mark.parametrize("cls,options", [
    (L.MaxPooling1D, {}), (L.MaxPooling1D, dict(pool_size=3, strides=2, padding="same")),
    (L.MaxPool1D, dict(pool_size=3)), (L.AveragePooling1D, dict(pool_size=2)),
    (L.AveragePooling1D, dict(pool_size=2, strides=1, padding="same")), (L.AveragePooling1D, dict(pool_size=3, strides=2)),
])
@pytest.mark.parametrize("steps", [7, 8])
def test_pooling_1d_matches_keras(tmp_path, cls, options, steps):
    model = keras.Sequential([keras.Input((steps, 3)), cls(**options)])
    assert_parity(model, series(2, steps, 3), tmp_path, routes=("keras", "live"))


def test_average_pooling_1d_same_averages_the_cells_inside_as_tensorflow():
    """As AveragePooling2D: TensorFlow's "same" puts the odd padding after and averages the cells
    inside the series only (Keras on PyTorch differs there: test_keras_convert.py)."""
    x = np.arange(8, dtype="float32").reshape(1, 8, 1)
    model = keras.Sequential([keras.Input((8, 1)), L.AveragePooling1D(3, strides=2, padding="same")])
    got = torch_out(convert(model), x)[0, :, 0]
    assert got.tolist() == pytest.approx([1.0, 3.0, 5.0, 6.5])  # the last window: steps 6 and 7


def test_keras_io_timeseries_classification_model_matches_keras(tmp_path):
    """keras-io's timeseries_classification_from_scratch: Conv1D, BatchNormalization, ReLU,
    GlobalAveragePooling1D."""
    input_layer = keras.layers.Input((50, 1))
    x = input_layer
    for _ in range(3):
        x = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    gap = keras.layers.GlobalAveragePooling1D()(x)
    model = randomize(keras.models.Model(inputs=input_layer, outputs=keras.layers.Dense(2, activation="softmax")(gap)))
    assert_parity(model, series(4, 50, 1), tmp_path)
    assert parameter_count(read(model).spec) == model.count_params()


def test_conv1d_lstm_forecaster_matches_keras(tmp_path):
    model = keras.Sequential()
    model.add(L.Conv1D(filters=8, kernel_size=3, activation="relu", padding="causal", input_shape=(30, 1)))
    model.add(L.MaxPooling1D(pool_size=2))
    model.add(L.LSTM(8))
    model.add(L.Dense(1))
    assert_parity(randomize(model), series(4, 30, 1), tmp_path)


# --- SeparableConv2D, DepthwiseConv2D ------------------------------------------------------------

@pytest.mark.parametrize("cls", [L.SeparableConv2D, L.DepthwiseConv2D])
@pytest.mark.parametrize("options", [
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2),
    dict(kernel_size=(3, 2), padding="valid", use_bias=False, activation="relu"),
    dict(kernel_size=3, dilation_rate=2, padding="same", depth_multiplier=3),
])
def test_depthwise_and_separable_conv2d_match_keras(tmp_path, cls, options):
    args = (6,) if cls is L.SeparableConv2D else ()  # filters
    model = randomize(keras.Sequential([keras.Input((9, 8, 4)), cls(*args, **options)]))
    assert_parity(model, images(2, 9, 8, 4), tmp_path)


def test_keras_io_small_xception_matches_keras(tmp_path):
    """keras-io's image_classification_from_scratch, smaller: Rescaling, strided "same"
    convolutions, SeparableConv2D, residual Add with a projected shortcut, global pooling."""
    inputs = keras.Input(shape=(24, 24, 3))
    x = L.Rescaling(1.0 / 255)(inputs)
    x = L.Conv2D(8, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    previous = x
    for size in [16, 32]:
        x = L.Activation("relu")(x)
        x = L.SeparableConv2D(size, 3, padding="same")(x)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.add([x, L.Conv2D(size, 1, strides=2, padding="same")(previous)])
        previous = x
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.5)(x)
    model = randomize(keras.Model(inputs, L.Dense(3, activation="softmax")(x)))
    assert_parity(model, 255 * np.abs(images(4, 24, 24, 3)), tmp_path)
    assert parameter_count(read(model).spec) == model.count_params()


def test_depthwise_kernels_start_with_kerass_glorot_bound():
    """A model built from code starts from Keras's initialisers: Keras counts a depthwise
    kernel's (3, 3, 16, 1) fans as 9 x 16 and 9 x 1, PyTorch's (16, 1, 3, 3) as 9 and 144."""
    spec = read(keras.Sequential([keras.Input((8, 8, 16)), L.DepthwiseConv2D(3)])).spec
    torch.manual_seed(0)
    weight = next(m for m in build(spec).modules() if isinstance(m, torch.nn.Conv2d)).weight
    bound = math.sqrt(6 / (9 * 16 + 9 * 1))
    assert 0.9 * bound < weight.abs().max() <= bound


# --- data augmentation: nothing at inference, random transforms in training -----------------------

def test_augmentation_layers_inline_pass_images_at_inference_as_keras(tmp_path):
    augmentation = [L.RandomFlip("horizontal"), L.RandomRotation(0.1), L.RandomZoom(0.1),
                    L.RandomTranslation(0.1, 0.2), L.RandomContrast(0.2), L.RandomBrightness(0.2),
                    L.RandomZoom((-0.2, 0.1), width_factor=0.3, fill_mode="constant", fill_value=0.5),
                    L.RandomRotation(0.2, fill_mode="nearest", interpolation="nearest")]
    model = randomize(keras.Sequential([keras.Input((16, 16, 3)), *augmentation, L.Rescaling(1 / 255),
                                        L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                                        L.Dense(5, activation="softmax")]))
    # Keras's legacy .h5 writer cannot save these layers (it fails to deepcopy their config)
    assert_parity(model, np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32"), tmp_path,
                  routes=("keras", "live"))


def test_a_nested_augmentation_block_converts_as_in_tensorflows_tutorial(tmp_path):
    """TensorFlow's image classification tutorial: Sequential([data_augmentation, Rescaling, ...])."""
    data_augmentation = keras.Sequential([L.RandomFlip("horizontal", input_shape=(20, 20, 3)),
                                          L.RandomRotation(0.1), L.RandomZoom(0.1)])
    model = randomize(keras.Sequential([data_augmentation, L.Rescaling(1.0 / 255),
                                        L.Conv2D(8, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                                        L.Dropout(0.2), L.Flatten(), L.Dense(16, activation="relu"),
                                        L.Dense(3, name="outputs")]))
    x = np.random.default_rng(0).uniform(0, 255, (4, 20, 20, 3)).astype("float32")
    assert_parity(model, x, tmp_path)
    spec = read(model).spec
    assert [e["class"] for e in spec["layers"][:5]] == ["InputLayer", "RandomFlip", "RandomRotation", "RandomZoom",
                                                       "Rescaling"]
    # the functional form: x = data_augmentation(inputs)
    inputs = keras.Input((20, 20, 3))
    block = keras.Sequential([L.RandomFlip("horizontal"), L.RandomRotation(0.1)])
    h = L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(L.Rescaling(1 / 255)(block(inputs))))
    assert_parity(randomize(keras.Model(inputs, L.Dense(2, activation="softmax")(h))), x, tmp_path)


def test_a_nested_block_with_weights_is_refused_naming_the_layer(tmp_path):
    block = keras.Sequential([L.RandomFlip("horizontal"), L.Conv2D(3, 3, name="inner_conv")], name="block")
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(block(inputs))))
    for ext in ("keras", "h5"):
        model.save(tmp_path / f"m.{ext}")
        with pytest.raises(NeuralabError) as e:
            convert(tmp_path / f"m.{ext}")
        assert "layer 'inner_conv' (Conv2D): a layer with weights inside the nested model 'block'" in str(e.value)


def _training_outputs(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    net = convert(keras.Sequential([keras.Input(x.shape[1:]), layer]))
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        out = net(torch.from_numpy(to_torch(x).copy())).numpy()
    return to_torch(x), out


def test_random_flip_flips_some_images_in_training():
    x, out = _training_outputs(L.RandomFlip("horizontal"), images(64, 5, 6, 2))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    same = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | same) and 10 < flipped.sum() < 54


@pytest.mark.parametrize("cls,args", [(L.RandomRotation, (0.2,)), (L.RandomZoom, (0.3,)),
                                      (L.RandomTranslation, (0.2, 0.2))])
def test_resampling_layers_move_each_image_by_its_own_draw_in_training(cls, args):
    x = np.random.default_rng(0).uniform(0, 1, (16, 12, 10, 3)).astype("float32")
    x_t, out = _training_outputs(cls(*args), x)
    moved = np.abs(out - x_t).max(axis=(1, 2, 3))
    assert out.shape == x_t.shape and np.all(moved > 1e-3)
    assert len(np.unique(np.round(out.mean(axis=(1, 2, 3)) - x_t.mean(axis=(1, 2, 3)), 6))) > 8
    # "reflect" fills from the picture: no value leaves the input's range
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6


def test_contrast_and_brightness_stay_in_value_range_in_training():
    x = np.random.default_rng(0).uniform(0, 255, (32, 6, 6, 3)).astype("float32")
    for layer in (L.RandomContrast(0.9), L.RandomBrightness(0.5)):
        x_t, out = _training_outputs(layer, x)
        assert out.min() >= 0 and out.max() <= 255 and np.abs(out - x_t).max() > 1


# --- the commands on a learner's augmented model ---------------------------------------------------

def import_and_predict(tmp_path: Path, model_file: Path, picture: Path, k: int) -> np.ndarray:
    """`neuralab import` the file, then `neuralab predict` the picture: its K probabilities."""
    cli = [sys.executable, "-m", "neuralab"]
    done = subprocess.run([*cli, "import", model_file, "--out", tmp_path / "run"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cli, "predict", tmp_path / "run", picture, "--json", "--top-k", str(k)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    top = (result if isinstance(result, list) else result["predictions"])[0]["top"]
    return np.array([{int(t["class"]): t["probability"] for t in top}[i] for i in range(k)])


def test_import_of_an_augmented_model_takes_raw_pixels_as_keras_predict(tmp_path):
    """Rescaling after the augmentation still means raw pixels: the run feeds the picture's
    0..255 values, and `neuralab predict` gives Keras's probabilities for the PNG."""
    from PIL import Image

    model = randomize(keras.Sequential([keras.Input((12, 12, 1)), L.RandomFlip("horizontal"), L.RandomZoom(0.1),
                                        L.Rescaling(1 / 255), L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                                        L.Dense(3, activation="softmax")]), seed=3)
    model.save(tmp_path / "aug.keras")
    pixels = np.random.default_rng(5).integers(0, 256, (12, 12), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    want = model.predict(pixels.reshape(1, 12, 12, 1).astype("float32"), verbose=0)[0]
    got = import_and_predict(tmp_path, tmp_path / "aug.keras", tmp_path / "p.png", 3)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["imported"]["scale"] == 1.0
    assert np.abs(got - want).max() <= 1e-5


def tf_basic_classification():
    """TensorFlow's first tutorial (Fashion-MNIST): grey images without a channel axis."""
    model = keras.Sequential([L.Flatten(input_shape=(28, 28)), L.Dense(32, activation="relu"), L.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_import_of_tensorflows_first_tutorial_model_predicts_as_keras(tmp_path):
    from PIL import Image

    model = tf_basic_classification()
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 1, (32, 28, 28)).astype("float32")
    model.fit(x, np.arange(32) % 10, epochs=1, verbose=0)
    model.save(tmp_path / "basic.keras")
    pixels = np.random.default_rng(5).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    logits = model.predict(pixels[None].astype("float32") / 255, verbose=0)
    want = keras.ops.convert_to_numpy(keras.ops.softmax(logits))[0]
    assert np.abs(import_and_predict(tmp_path, tmp_path / "basic.keras", tmp_path / "p.png", 10) - want).max() <= 1e-5


def test_runlogger_records_tensorflows_first_tutorial_as_an_image_classifier(tmp_path):
    from neuralab.training import RunLogger

    model = tf_basic_classification()
    x = np.random.default_rng(0).uniform(0, 1, (64, 28, 28)).astype("float32")
    y = np.arange(64) % 10
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run", test=(x[:16], y[:16]))])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == "image-classifier"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_loss"] == pytest.approx(model.evaluate(x[:16], y[:16], verbose=0)[0], abs=1e-5)


def test_a_flattening_forecaster_stays_a_sequence_model(tmp_path):
    """A dense forecaster reading (steps, features) through Flatten gives several outputs too,
    but no class scores: no softmax, a regression loss."""
    from neuralab.training import RunLogger

    model = keras.Sequential([L.Flatten(input_shape=(20, 1)), L.Dense(16, activation="relu"), L.Dense(7)])
    model.compile(optimizer="adam", loss="mse")
    x = series(32, 20, 1)
    model.fit(x, x[:, :7, 0], epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run")])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == "forecaster"
    # no data named: the runs list's data column is empty, not "None"
    from neuralab.run_list import describe
    from neuralab.runs import Run
    assert describe(Run(tmp_path / "run")).data == ""


# --- recurrent_dropout: Chollet's weather LSTM, keras-io's LSTM classifier ------------------------

@pytest.mark.parametrize("cls,options", [(L.LSTM, {}), (L.GRU, {}), (L.GRU, dict(reset_after=False)),
                                         (L.SimpleRNN, {})])
def test_recurrent_dropout_converts_and_predicts_as_keras(tmp_path, cls, options):
    model = randomize(keras.Sequential([keras.Input((12, 3)), cls(8, recurrent_dropout=0.25, dropout=0.1,
                                                                  return_sequences=True, **options),
                                        cls(4, recurrent_dropout=0.3, **options), L.Dense(1)]))
    assert_parity(model, series(4, 12, 3), tmp_path)


@pytest.mark.parametrize("cls,options", [(L.LSTM, {}), (L.GRU, {}), (L.GRU, dict(reset_after=False)),
                                         (L.SimpleRNN, dict(activation="relu"))])
def test_recurrent_dropout_drops_state_units_in_training_only(cls, options):
    from neuralab.keras.build import Recurrent, masked_steps

    net = convert(randomize(keras.Sequential([keras.Input((10, 3)), cls(6, recurrent_dropout=0.5, **options)])))
    layer = next(m for m in net.modules() if isinstance(m, Recurrent))
    x = torch.from_numpy(series(8, 10, 3))
    with torch.no_grad():
        plain = layer.rnn(x)[0]
        # the step-by-step run with nothing dropped is the layer itself
        assert torch.allclose(masked_steps(layer.rnn, x, torch.ones(8, 6)), plain, atol=1e-6)
        torch.manual_seed(0)
        trained = net.train()(x)
        assert (trained - plain[:, -1]).abs().max() > 1e-3
        assert torch.allclose(net.eval()(x), plain[:, -1])


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_recurrent_layers_match_keras(tmp_path, merge_mode):
    model = randomize(keras.Sequential([
        keras.Input((9, 3)),
        L.Bidirectional(L.LSTM(6, return_sequences=True), merge_mode=merge_mode),
        L.Bidirectional(L.GRU(4, recurrent_dropout=0.2), merge_mode=merge_mode),
        L.Dense(2, activation="softmax")]))
    assert_parity(model, series(4, 9, 3), tmp_path)
    assert parameter_count(read(model).spec) == model.count_params()


def test_a_bidirectional_with_a_backward_layer_of_its_own_is_refused(tmp_path):
    layer = L.Bidirectional(L.LSTM(4), backward_layer=L.LSTM(4, go_backwards=True, use_bias=False))
    with pytest.raises(NeuralabError) as e:
        read(keras.Sequential([keras.Input((5, 2)), layer]))
    assert "backward_layer is not the forward layer reading backwards" in str(e.value)


def test_runlogger_feeds_an_augmented_model_raw_pixels(tmp_path, mnist):
    """Keras's fit of TensorFlow's tutorial model (augmentation, then Rescaling, on raw MNIST
    pixels): the run records scale 1, and its rebuilt model gives Keras's predict on raw pixels."""
    from helpers import idx_subset

    from neuralab.data.idx import read_idx
    from neuralab.training import RunLogger

    folder = idx_subset(mnist, tmp_path / "mnist", 256, 64)
    x = read_idx(folder / "train-images-idx3-ubyte.gz")[..., None].astype("float32")
    y = read_idx(folder / "train-labels-idx1-ubyte.gz").astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.Sequential([L.RandomRotation(0.05), L.RandomZoom(0.1)]),
                              L.Rescaling(1.0 / 255), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(),
                              L.Flatten(), L.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[RunLogger(out=tmp_path / "run", test=(x[:32], y[:32]))])
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["config"]["scale"] == 1.0
    # what `neuralab predict` feeds it: a pixel p as p / 255 / std = p
    assert json.loads((tmp_path / "run" / "model.json").read_text())["preprocess"]["std"] == [pytest.approx(1 / 255)]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    loss, accuracy = model.evaluate(x[:32], y[:32], verbose=0)
    assert results["test_loss"] == pytest.approx(loss, abs=1e-5)
    assert results["test_accuracy"] == pytest.approx(accuracy)


# --- noise layers: nothing at inference ------------------------------------------------------------

def test_noise_layers_pass_inputs_at_inference_as_keras(tmp_path):
    model = randomize(keras.Sequential([
        keras.Input((12, 3)), L.Conv1D(6, 3, activation="relu"), L.SpatialDropout1D(0.3), L.GaussianNoise(0.5),
        L.LSTM(4), L.GaussianDropout(0.3), L.Dense(2, activation="softmax")]))
    assert_parity(model, series(4, 12, 3), tmp_path)
    images_model = randomize(keras.Sequential([
        keras.Input((8, 8, 2)), L.Conv2D(4, 3), L.SpatialDropout2D(0.3), L.Flatten(), L.GaussianNoise(0.2), L.Dense(3)]))
    assert_parity(images_model, images(2, 8, 8, 2), tmp_path)


def test_spatial_dropout_drops_whole_features_in_training():
    net = convert(keras.Sequential([keras.Input((10, 16)), L.SpatialDropout1D(0.5)]))
    x = torch.ones(4, 10, 16)
    torch.manual_seed(0)
    out = net.train()(x)
    dropped = out[:, 0] == 0  # (N, F): features dropped at the first step
    assert dropped.any() and (~dropped).any()
    assert torch.equal(out == 0, dropped[:, None].expand_as(out))  # the same at every step


def test_training_keras_code_with_augmentation_before_rescaling_feeds_raw_pixels(tmp_path):
    """keras-io's image_classification_from_scratch: Sequential([data_augmentation,
    Rescaling(1./255), ...]). The run normalised the pixels as for a model without Rescaling,
    and the model then divided them by 255 again."""
    from helpers import digits_folder
    from neuralab.training import ClassifierConfig, TrainConfig, train_classifier

    code = tmp_path / "aug.py"
    code.write_text("import keras\nfrom keras import layers\n"
                    "data_augmentation = keras.Sequential([layers.RandomFlip('horizontal'), layers.RandomRotation(0.1)])\n"
                    "model = keras.Sequential([keras.Input((8, 8, 1)), data_augmentation, layers.Rescaling(1.0 / 255),\n"
                    "                          layers.Conv2D(8, 3, activation='relu'), layers.Flatten(),\n"
                    "                          layers.Dense(10, activation='softmax')])\n")
    config = ClassifierConfig(model=str(code), data=str(digits_folder(tmp_path / "digits", 200)),
                              train=TrainConfig(epochs=1))
    train_classifier(config, out=tmp_path / "run", verbose=False)
    pre = json.loads((tmp_path / "run" / "model.json").read_text())["preprocess"]
    assert pre["mean"] == [0.0] and pre["std"] == [pytest.approx(1 / 255)]  # pixels as they are: (p / 255 - 0) * 255


def test_training_tensorflows_first_tutorial_model_from_its_code(tmp_path, fashion_mnist):
    """`neuralab train --model basic.py`: Flatten(input_shape=(28, 28)) takes grey images
    without their channel axis; it was refused as a sequence model."""
    from helpers import idx_subset
    from neuralab.cli import main

    code = tmp_path / "basic.py"
    code.write_text("import keras\nmodel = keras.Sequential([keras.layers.Flatten(input_shape=(28, 28)),\n"
                    "    keras.layers.Dense(32, activation='relu'), keras.layers.Dense(10)])\n"
                    "model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy("
                    "from_logits=True), metrics=['accuracy'])\n")
    data = idx_subset(fashion_mnist, tmp_path / "fashion", 600, 200)
    assert main(["train", "--model", str(code), "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "2",
                 "--quiet", "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_accuracy"] > 0.3  # ten classes, chance 0.1: it learned


# --- a binary classifier as keras-io's image_classification_from_scratch writes it ----------------

def binary_model(form: str, side: int = 12, channels: int = 3):
    """keras-io's cats vs dogs head: one unit, a sigmoid with binary cross-entropy ("sigmoid"),
    or its logit with BinaryCrossentropy(from_logits=True) ("logits"), the example's newer form."""
    sigmoid = form == "sigmoid"
    model = keras.Sequential([keras.Input((side, side, channels)), L.Rescaling(1.0 / 255),
                              L.Conv2D(8, 3, activation="relu"), L.GlobalAveragePooling2D(), L.Dropout(0.25),
                              L.Dense(1, activation="sigmoid" if sigmoid else None)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"],
                  loss="binary_crossentropy" if sigmoid else keras.losses.BinaryCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("form", ["sigmoid", "logits"])
def test_import_of_a_one_unit_binary_classifier_predicts_kerass_sigmoid(tmp_path, form):
    """Class 1 is the one the sigmoid scores (Keras's label 1): `neuralab predict` gives
    [1 - p, p] for the picture, p Keras's predict (or the sigmoid of its logit)."""
    from PIL import Image

    model = randomize(binary_model(form), seed=2)
    model.save(tmp_path / "cats_vs_dogs.keras")
    pixels = np.random.default_rng(5).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    z = keras.ops.convert_to_numpy(model.predict(pixels[None].astype("float32"), verbose=0))[0, 0]
    p = z if form == "sigmoid" else 1 / (1 + np.exp(-np.float64(z)))
    assert 0.01 < p < 0.99  # a score the test can tell from its complement
    got = import_and_predict(tmp_path, tmp_path / "cats_vs_dogs.keras", tmp_path / "p.png", 2)
    assert np.abs(got - [1 - p, p]).max() <= 1e-5


def test_training_keras_ios_binary_classifier_from_its_code(tmp_path):
    """`neuralab train --model FILE.py` on a 2-class folder (digits 0 and 1): the sigmoid unit
    trains as a 2-class classifier and learns."""
    import shutil

    from helpers import digits_folder
    from neuralab.cli import main

    digits = digits_folder(tmp_path / "digits", 600)
    for label in ("0", "1"):
        shutil.copytree(digits / label, tmp_path / "two" / label)
    code = tmp_path / "binary.py"
    code.write_text("import keras\nfrom keras import layers\n"
                    "model = keras.Sequential([keras.Input((8, 8, 1)), layers.Rescaling(1.0 / 255),\n"
                    "    layers.Conv2D(8, 3, activation='relu'), layers.Flatten(), layers.Dropout(0.25),\n"
                    "    layers.Dense(1, activation='sigmoid')])\n"
                    "model.compile(optimizer=keras.optimizers.Adam(1e-2), loss='binary_crossentropy',\n"
                    "              metrics=['accuracy'])\n")
    assert main(["train", "--model", str(code), "--data", str(tmp_path / "two"), "--epochs", "3", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["num_classes"] == 2 and meta["classes"] == ["0", "1"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_accuracy"] > 0.8  # chance: 0.5

    # Binary cross-entropy on two softmax outputs (one label per output, as for several labels
    # an image) is another loss than the 2-class cross-entropy neuralab trains: refused, as before
    code.write_text(code.read_text().replace("layers.Dense(1, activation='sigmoid')",
                                             "layers.Dense(2, activation='softmax')"))
    assert main(["train", "--model", str(code), "--data", str(tmp_path / "two"), "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "multi")]) == 2
    assert not (tmp_path / "multi").exists()


@pytest.mark.parametrize("form", ["sigmoid", "logits"])
def test_runlogger_records_a_one_unit_binary_classifier_with_kerass_test_loss(tmp_path, form):
    """Labels as binary cross-entropy takes them, (N, 1) floats: the run's test loss is Keras's
    evaluate, its cross-entropy on [0, z] the binary one on z."""
    from neuralab.training import RunLogger

    keras.utils.set_random_seed(0)
    model = binary_model(form, side=8, channels=1)
    x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype("float32")[:, None]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run", test=(x[:32], y[:32]))])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == "image-classifier"
    assert json.loads((tmp_path / "run" / "model.json").read_text())["classes"] == ["0", "1"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    loss, accuracy = model.evaluate(x[:32], y[:32], verbose=0)
    assert results["test_loss"] == pytest.approx(loss, abs=1e-5)
    assert results["test_accuracy"] == pytest.approx(accuracy)


def test_a_one_unit_model_with_a_regression_loss_is_refused_naming_it(tmp_path, capsys):
    from neuralab.cli import main

    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "regressor.keras")
    assert main(["import", str(tmp_path / "regressor.keras"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(None, 1)" in err and "'mse'" in err and "not a classifier" in err
    assert not (tmp_path / "run").exists()


def test_a_series_models_one_output_stays_one_output_as_logits():
    """The [0, z] of a binary image classifier is for image models: an LSTM forecaster's Dense(1)
    keeps its one output however it is built (RunLogger converts every model with logits=True)."""
    model = randomize(keras.Sequential([keras.Input((12, 3)), L.LSTM(8), L.Dense(1)]))
    x = np.random.default_rng(2).standard_normal((5, 12, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    for logits in (False, True):
        got = torch_out(convert(model, logits=logits), x)
        assert got.shape == (5, 1) and np.abs(got - want).max() <= TOL
