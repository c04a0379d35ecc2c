"""neuralab.keras.convert computes what Keras computes: every supported layer, on even and
odd sizes, strides 1 and 2, valid and same, through the three routes (a .keras file, a
legacy .h5 and the live model), against Keras 3 on its PyTorch backend, within 1e-5.

Where Keras's backends disagree (the "same" average pooling over an uneven padding),
tests/test_keras_references.py holds neuralab to TF-Keras's outputs instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # Keras 3 reads it once, at its first import
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
from keras import layers as L  # noqa: E402
from helpers import randomize  # noqa: E402

from neuralab.keras import (
    build,
    convert,
    ends_in_softmax,
    input_shape,
    keras_summary,
    parameter_count,
    read,  # noqa: E402
)
from neuralab.models.layers import same_padding  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's copy= notes from Keras

TOL = 1e-5
REPO = Path(__file__).resolve().parents[1]


def to_torch(a: np.ndarray) -> np.ndarray:
    """Keras's channels-last images (N, H, W, C) -> PyTorch's (N, C, H, W); others unchanged."""
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def keras_out(model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def torch_out(module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(to_torch(x)))).numpy()


def assert_parity(model, x: np.ndarray, tmp_path: Path, routes=("keras", "h5", "live")) -> dict:
    """Convert ``model`` by each route and compare with Keras's output; returns the modules."""
    want = to_torch(keras_out(model, x))
    modules = {}
    for route in routes:
        if route == "live":
            source = model
        else:
            source = tmp_path / f"model.{route}"
            model.save(source)
        module = modules[route] = convert(source)
        got = torch_out(module, x)
        assert got.shape == want.shape, route
        assert np.abs(got - want).max() <= TOL, (route, np.abs(got - want).max())
    return modules


def sequential(input_shape, *layers, seed: int = 0):
    return randomize(keras.Sequential([keras.Input(input_shape), *layers]), seed)


def images(n, h, w, c, seed=1):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype("float32")


def series(n, t, f, seed=1):
    return np.random.default_rng(seed).standard_normal((n, t, f)).astype("float32")


# --- convolution and pooling: even and odd sizes, strides 1 and 2, valid and same -------------

GRID = [(size, stride, padding) for size in (7, 8) for stride in (1, 2) for padding in ("valid", "same")]


@pytest.mark.parametrize("size,stride,padding", GRID)
@pytest.mark.parametrize("kernel", [3, 4])
def test_conv2d_matches_keras(tmp_path, size, stride, padding, kernel):
    model = sequential((size, size, 3), L.Conv2D(5, kernel, strides=stride, padding=padding))
    assert_parity(model, images(2, size, size, 3), tmp_path, routes=("keras", "live"))


@pytest.mark.parametrize("options", [
    dict(kernel_size=(3, 2), strides=(2, 1), padding="same"),   # non-square kernel and strides
    dict(kernel_size=3, dilation_rate=2, padding="same"),
    dict(kernel_size=3, dilation_rate=(2, 1), padding="valid"),
    dict(kernel_size=3, groups=2, padding="same", use_bias=False),
    dict(kernel_size=1, activation="relu"),
])
def test_conv2d_options_match_keras(tmp_path, options):
    model = sequential((9, 8, 4), L.Conv2D(6, **options))
    assert_parity(model, images(2, 9, 8, 4), tmp_path)


@pytest.mark.parametrize("size,stride,padding", GRID)
@pytest.mark.parametrize("pool", [2, 3])
def test_max_pooling_matches_keras(tmp_path, size, stride, padding, pool):
    model = sequential((size, size, 3), L.MaxPooling2D(pool, strides=stride, padding=padding))
    assert_parity(model, images(2, size, size, 3), tmp_path, routes=("keras", "live"))


def tf_average_pool(x: np.ndarray, k: int, s: int, same: bool) -> np.ndarray:
    """TensorFlow's average pooling written out: each window averages its cells inside the map;
    "same" pads (out - 1) * s + k - n cells, the odd one after."""
    n = x.shape[1]
    out = -(-n // s) if same else (n - k) // s + 1
    before = max((out - 1) * s + k - n, 0) // 2 if same else 0
    y = np.empty((x.shape[0], out, out, x.shape[3]), "float32")
    for i in range(out):
        for j in range(out):
            r0, c0 = i * s - before, j * s - before
            y[:, i, j] = x[:, max(r0, 0):r0 + k, max(c0, 0):c0 + k].mean((1, 2))
    return y


@pytest.mark.parametrize("size,stride,padding", GRID)
@pytest.mark.parametrize("pool", [2, 3])
def test_average_pooling_matches_tensorflow_and_keras(tmp_path, size, stride, padding, pool):
    """Keras on PyTorch pads an uneven "same" window by repeating the edge, and averages those
    copies; TensorFlow averages the cells inside only. Every case matches TensorFlow's rule,
    and Keras 3 on PyTorch where the two agree (TF-Keras's own outputs:
    test_keras_references.py)."""
    model = sequential((size, size, 3), L.AveragePooling2D(pool, strides=stride, padding=padding))
    x = images(2, size, size, 3)
    got = torch_out(convert(model), x)
    assert np.abs(got - to_torch(tf_average_pool(x, pool, stride, padding == "same"))).max() <= TOL
    before, after = same_padding(size, pool, stride) if padding == "same" else (0, 0)
    # A 2-wide window reaching into the padding holds one cell and its copy: both average to the cell.
    if before == after or pool == 2:
        assert_parity(model, x, tmp_path, routes=("keras", "live"))
    else:
        assert np.abs(got - to_torch(keras_out(model, x))).max() > 0.01  # the backends' disagreement


def test_average_pooling_same_excludes_the_padding_as_tensorflow_does():
    """The rule itself, on the case where Keras-on-PyTorch differs: 3x3 windows at stride 2 over
    an 8x8 map need one row and column of padding, which TensorFlow puts after; the last
    window averages its 4 cells inside the map, where Keras-on-PyTorch repeats the edge."""
    x = np.arange(64, dtype="float32").reshape(1, 8, 8, 1)
    model = sequential((8, 8, 1), L.AveragePooling2D(3, strides=2, padding="same"))
    got = torch_out(convert(model), x)[0, 0]
    assert got.shape == (4, 4)
    assert got[0, 0] == pytest.approx(x[0, 0:3, 0:3, 0].mean())   # nothing padded before
    assert got[1, 2] == pytest.approx(x[0, 2:5, 4:7, 0].mean())
    assert got[3, 3] == pytest.approx(x[0, 6:8, 6:8, 0].mean())   # rows and columns 6-7 only
    assert abs(keras_out(model, x)[0, 3, 3, 0] - got[3, 3]) > 1   # Keras on PyTorch: (6,7,7) x (6,7,7)


@pytest.mark.parametrize("padding", [1, (2, 1), ((0, 1), (2, 3))])
def test_zero_padding_matches_keras(tmp_path, padding):
    model = sequential((5, 6, 2), L.ZeroPadding2D(padding), L.Conv2D(3, 3))
    assert_parity(model, images(2, 5, 6, 2), tmp_path)


@pytest.mark.parametrize("layer", [L.GlobalAveragePooling2D(), L.GlobalMaxPooling2D(),
                                   L.GlobalAveragePooling2D(keepdims=True)])
def test_global_pooling_2d_matches_keras(tmp_path, layer):
    model = sequential((7, 6, 3), L.Conv2D(4, 3, padding="same"), layer)
    assert_parity(model, images(2, 7, 6, 3), tmp_path)


@pytest.mark.parametrize("layer", [L.GlobalAveragePooling1D(), L.GlobalMaxPooling1D(),
                                   L.GlobalMaxPooling1D(keepdims=True)])
@pytest.mark.parametrize("steps", [6, 7])
def test_global_pooling_1d_matches_keras(tmp_path, layer, steps):
    model = sequential((steps, 3), L.Dense(4, activation="tanh"), layer)
    assert_parity(model, series(2, steps, 3), tmp_path)


# --- Flatten, Dense, Reshape: Keras flattens (H, W, C), PyTorch (C, H, W) ---------------------

def test_flatten_dense_after_convolution_matches_keras(tmp_path):
    model = sequential((9, 7, 2), L.Conv2D(3, 3, strides=2, padding="same"), L.Flatten(),
                       L.Dropout(0.3), L.Activation("relu"), L.Dense(5))
    modules = assert_parity(model, images(3, 9, 7, 2), tmp_path)
    # The fold: PyTorch's own Flatten, the Dense kernel's rows permuted instead.
    assert torch.nn.Flatten in {type(m) for m in modules["keras"]}


def test_flatten_as_output_keeps_keras_order(tmp_path):
    model = sequential((4, 3, 2), L.Conv2D(3, 2), L.Flatten())
    modules = assert_parity(model, images(2, 4, 3, 2), tmp_path)
    assert torch.nn.Flatten not in {type(m) for m in modules["keras"]}  # it flattens channels last


@pytest.mark.parametrize("target", [(6, 4), (2, 3, 4), (-1,), (4, -1, 3)])
def test_reshape_matches_keras(tmp_path, target):
    model = sequential((4, 3, 2), L.Conv2D(2, 1), L.Reshape(target), L.Dense(3))
    assert_parity(model, images(2, 4, 3, 2), tmp_path)


@pytest.mark.parametrize("shape", [(6,), (5, 4), (3, 4, 2)])
def test_dense_on_vectors_sequences_and_maps_matches_keras(tmp_path, shape):
    model = sequential(shape, L.Dense(3, activation="tanh"), L.Dense(2, use_bias=False))
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype("float32")
    assert_parity(model, x, tmp_path)


ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "elu", "selu", "softplus", "softsign",
               "swish", "silu", "gelu", "relu6", "leaky_relu", "mish", "hard_silu", "hard_swish"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_match_keras(tmp_path, activation):
    model = sequential((4, 4, 3), L.Conv2D(3, 2, activation=activation), L.Flatten(),
                       L.Dense(4, activation=activation), L.Activation(activation))
    assert_parity(model, 3 * images(2, 4, 4, 3), tmp_path, routes=("live",))


def test_exponential_activation_matches_keras(tmp_path):
    """Once only: three exponentials stacked overflow float32 on these inputs."""
    model = sequential((4, 4, 3), L.Conv2D(3, 2), L.Flatten(), L.Dense(4, activation="exponential"))
    assert_parity(model, 0.2 * images(2, 4, 4, 3), tmp_path, routes=("live",))  # outputs near 1: float32's 1e-5


@pytest.mark.parametrize("layer", [L.ReLU(), L.ReLU(max_value=0.5), L.LeakyReLU(), L.LeakyReLU(negative_slope=0.1),
                                   L.Softmax()])
def test_activation_layers_match_keras(tmp_path, layer):
    model = sequential((5, 5, 2), L.Conv2D(3, 2), layer)
    assert_parity(model, images(2, 5, 5, 2), tmp_path)


@pytest.mark.parametrize("scale,offset,pixels", [(1 / 255, 0.0, 255), (2.0, -1.0, 1), ([0.5, 2.0, 1.0], [0.0, 1.0, -1.0], 1)])
def test_rescaling_matches_keras(tmp_path, scale, offset, pixels):
    model = sequential((4, 4, 3), L.Rescaling(scale, offset), L.Conv2D(2, 3))
    x = pixels * np.random.default_rng(6).uniform(0, 1, (2, 4, 4, 3)).astype("float32")
    assert_parity(model, x, tmp_path)


def test_dropout_is_identity_at_inference_and_drops_in_training(tmp_path):
    model = sequential((20,), L.Dropout(0.5), L.Dense(3))
    module = assert_parity(model, series(4, 20, 1)[..., 0], tmp_path, routes=("live",))["live"]
    module.train()
    x = torch.ones(200, 20)
    kept = module[0](x)
    assert set(kept.unique().tolist()) == {0.0, 2.0}   # inverted dropout, as Keras: kept units scaled by 1/(1-rate)
    assert 0.4 < (kept == 0).float().mean() < 0.6


# --- BatchNormalization ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6,), (5, 4), (5, 4, 3)])
@pytest.mark.parametrize("options", [{}, dict(scale=False), dict(center=False, epsilon=0.1, momentum=0.5)])
def test_batch_norm_inference_matches_keras(tmp_path, shape, options):
    model = sequential(shape, L.BatchNormalization(**options))
    x = 2 + 3 * np.random.default_rng(3).standard_normal((4, *shape)).astype("float32")
    assert_parity(model, x, tmp_path)


def train_both(model, batches, lr=0.1):
    """Train a Keras model (train_on_batch) and its conversion (PyTorch, train mode) with plain
    SGD on the same batches and mean squared error; return the converted module."""
    module = convert(model)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=lr)
    module.train()
    for x, y in batches:
        model.train_on_batch(x, y)
        opt.zero_grad()
        torch.nn.functional.mse_loss(module(torch.from_numpy(to_torch(x))), torch.from_numpy(to_torch(y))).backward()
        opt.step()
    return module


@pytest.mark.parametrize("shape", [(6,), (5, 3), (7, 6, 3), (8, 8, 2)])
def test_batch_norm_training_updates_moving_statistics_as_keras(shape):
    """After SGD steps in training mode, Keras and the converted module hold the same moving
    mean and variance (Keras 3 averages the plain batch variance, not PyTorch's unbiased one)
    and the same weights."""
    rng = np.random.default_rng(4)
    head = {3: [L.Conv2D(4, 3), L.BatchNormalization(momentum=0.8), L.GlobalAveragePooling2D()],
            2: [L.Dense(4), L.BatchNormalization(momentum=0.8), L.GlobalAveragePooling1D()],  # over batch and time
            1: [L.Dense(4), L.BatchNormalization(momentum=0.8)]}[len(shape)]
    model = sequential(shape, *head, L.Dense(2))
    batches = [(1 + 2 * rng.standard_normal((8, *shape)).astype("float32"),
                rng.standard_normal((8, 2)).astype("float32")) for _ in range(4)]
    module = train_both(model, batches)
    bn = next(m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    gamma, beta, mean, var = model.layers[1].get_weights()
    assert np.abs(bn.running_mean.numpy() - mean).max() <= TOL
    assert np.abs(bn.running_var.numpy() - var).max() <= TOL
    assert np.abs(bn.weight.detach().numpy() - gamma).max() <= TOL
    assert np.abs(bn.bias.detach().numpy() - beta).max() <= TOL
    assert abs(var - 1).max() > 0.05  # the statistics did move
    x = 1 + 2 * rng.standard_normal((3, *shape)).astype("float32")
    assert np.abs(torch_out(module, x) - keras_out(model, x)).max() <= TOL


def test_frozen_layers_stay_frozen_in_training():
    """Keras's trainable=False (fine-tuning): the weights do not move, and a frozen
    BatchNormalization normalises with its moving statistics, leaving them as they are."""
    rng = np.random.default_rng(7)
    model = sequential((6, 6, 2), L.Conv2D(3, 3), L.BatchNormalization(momentum=0.8), L.GlobalAveragePooling2D(),
                       L.Dense(2))
    model.layers[0].trainable = model.layers[1].trainable = False
    frozen = [w.copy() for w in model.layers[0].get_weights() + model.layers[1].get_weights()]
    batches = [(rng.standard_normal((8, 6, 6, 2)).astype("float32"), rng.standard_normal((8, 2)).astype("float32"))
               for _ in range(3)]
    module = train_both(model, batches)
    after = [module[0].weight, module[0].bias, module[1].weight, module[1].bias, module[1].running_mean,
             module[1].running_var]
    kernel = frozen[0].transpose(3, 2, 0, 1)
    assert np.array_equal(after[0].detach().numpy(), kernel)
    assert all(np.array_equal(t.detach().numpy(), w) for t, w in zip(after[1:], frozen[1:]))
    x = rng.standard_normal((3, 6, 6, 2)).astype("float32")
    assert np.abs(torch_out(module, x) - keras_out(model, x)).max() <= TOL


# --- recurrent layers ----------------------------------------------------------------------------

RECURRENT = [
    lambda seq: L.SimpleRNN(5, return_sequences=seq),
    lambda seq: L.SimpleRNN(5, activation="relu", return_sequences=seq),
    lambda seq: L.LSTM(5, return_sequences=seq),
    lambda seq: L.LSTM(5, use_bias=False, return_sequences=seq),
    lambda seq: L.GRU(5, return_sequences=seq),
    lambda seq: L.GRU(5, reset_after=False, return_sequences=seq),
    lambda seq: L.GRU(5, use_bias=False, return_sequences=seq),
]


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("make", RECURRENT, ids=["rnn", "rnn-relu", "lstm", "lstm-nobias", "gru", "gru-reset-before",
                                                 "gru-nobias"])
def test_recurrent_layers_match_keras(tmp_path, make, return_sequences):
    model = sequential((7, 3), make(return_sequences), L.Dense(2))
    assert_parity(model, series(4, 7, 3), tmp_path)


@pytest.mark.parametrize("make", [L.SimpleRNN, L.LSTM, L.GRU], ids=["rnn", "lstm", "gru"])
def test_recurrent_input_dropout_is_inactive_at_inference_as_in_keras(tmp_path, make):
    model = sequential((6, 3), make(4, dropout=0.4, return_sequences=True), make(2, dropout=0.2), L.Dense(1))
    assert_parity(model, series(3, 6, 3), tmp_path)


def test_stacked_recurrent_with_variable_length_matches_keras(tmp_path):
    model = sequential((None, 2), L.LSTM(6, return_sequences=True), L.GRU(4, return_sequences=True),
                       L.SimpleRNN(3), L.Dense(1))
    for steps in (5, 9):
        assert_parity(model, series(3, steps, 2), tmp_path, routes=("live",))


def test_recurrent_training_matches_keras():
    """The same SGD steps give the same weights: the gates and biases are where Keras has them
    (PyTorch's second LSTM bias stays at zero, as Keras has one bias)."""
    rng = np.random.default_rng(5)
    model = sequential((6, 2), L.LSTM(4, return_sequences=True), L.GRU(3), L.Dense(1))
    batches = [(rng.standard_normal((8, 6, 2)).astype("float32"), rng.standard_normal((8, 1)).astype("float32"))
               for _ in range(3)]
    module = train_both(model, batches)
    x = rng.standard_normal((5, 6, 2)).astype("float32")
    assert np.abs(torch_out(module, x) - keras_out(model, x)).max() <= TOL
    assert not module[0].rnn.bias_hh_l0.any()


# --- functional graphs ---------------------------------------------------------------------------

@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"])
def test_functional_branches_match_keras(tmp_path, merge):
    inp = keras.Input((6, 5, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(4, 1)(inp)
    m = getattr(L, merge)()([a, b])
    x = L.BatchNormalization()(m)
    out = L.Dense(3, activation="softmax")(L.Flatten()(x))
    model = randomize(keras.Model(inp, out))
    assert_parity(model, images(2, 6, 5, 3), tmp_path)


def _squeeze_excite(keepdims: bool):
    """A squeeze-and-excitation block (MobileNetV3's, EfficientNet's): the maps' channel weights,
    (1, 1, C) kept or (C) squeezed, multiplied into the maps, which Keras broadcasts."""
    inp = keras.Input((7, 6, 3))
    maps = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    weights = L.Dense(4, activation="sigmoid")(L.Dense(2, activation="relu")(
        L.GlobalAveragePooling2D(keepdims=keepdims)(maps)))
    return inp, maps, weights


@pytest.mark.parametrize("merge", ["Multiply", "Add", "Subtract", "Maximum"])
@pytest.mark.parametrize("keepdims", [True, False])
def test_broadcasting_merges_match_keras(tmp_path, merge, keepdims):
    inp, maps, weights = _squeeze_excite(keepdims)
    m = getattr(L, merge)()([maps, weights] if keepdims else [weights, maps])  # either order broadcasts
    out = L.Dense(3, activation="softmax")(L.Flatten()(m))
    model = randomize(keras.Model(inp, out))
    assert_parity(model, images(2, 7, 6, 3), tmp_path)


def test_broadcasting_merge_of_sequences_matches_keras(tmp_path):
    inp = keras.Input((8, 3))
    h = L.LSTM(3, return_sequences=True)(inp)
    out = L.Dense(1)(L.Flatten()(L.Multiply()([h, L.Dense(3, activation="sigmoid")(L.GlobalAveragePooling1D()(h))])))
    model = randomize(keras.Model(inp, out))
    assert_parity(model, series(2, 8, 3), tmp_path)


def test_a_broadcasting_merge_exports_to_onnx_as_keras_computes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    inp, maps, weights = _squeeze_excite(True)
    model = randomize(keras.Model(inp, L.Dense(3, activation="softmax")(L.Flatten()(L.Multiply()([maps, weights])))))
    module = convert(model).eval()
    torch.onnx.export(module, torch.zeros(1, 3, 7, 6), tmp_path / "se.onnx", input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    x = images(3, 7, 6, 3)
    got = ort.InferenceSession(str(tmp_path / "se.onnx")).run(None, {"x": to_torch(x)})[0]
    assert np.abs(got - keras_out(model, x)).max() <= TOL


def test_merges_whose_shapes_do_not_broadcast_are_refused(tmp_path):
    """Keras refuses them when the model is built; a spec written otherwise is refused alike."""
    from neuralab.errors import NeuralabError
    from neuralab.keras import check

    inp = keras.Input((6, 5, 3))
    model = keras.Model(inp, L.Flatten()(L.Add()([L.Conv2D(4, 1)(inp), L.Conv2D(4, 1)(inp)])))
    model.save(tmp_path / "m.keras")
    spec = read(tmp_path / "m.keras").spec
    add = next(e for e in spec["layers"] if e["class"] == "Add")
    other = next(e for e in spec["layers"] if e["name"] == add["inputs"][1])
    other["args"]["filters"] = 3  # (None, 6, 5, 4) + (None, 6, 5, 3)
    with pytest.raises(NeuralabError, match=r"inputs of shapes \(None, 6, 5, 4\), \(None, 6, 5, 3\) do not broadcast: "
                                            r"sizes 4 and 3 on axis -1 differ and neither is 1"):
        check(spec)


def test_residual_sequence_model_matches_keras(tmp_path):
    inp = keras.Input((8, 3))
    h = L.LSTM(3, return_sequences=True)(inp)
    h = L.Add()([inp, h])
    out = L.Dense(1)(L.GlobalAveragePooling1D()(L.Concatenate(axis=1)([h, inp])))
    model = randomize(keras.Model(inp, out))
    assert_parity(model, series(2, 8, 3), tmp_path)


# --- what the spec tells ----------------------------------------------------------------------------

def test_spec_gives_keras_shapes_and_parameter_counts(tmp_path):
    model = sequential((28, 28, 1), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.MaxPooling2D(),
                       L.Flatten(), L.Dense(10, activation="softmax"))
    model.save(tmp_path / "m.keras")
    spec = read(tmp_path / "m.keras").spec
    rows = keras_summary(spec)
    assert [r["output_shape"] for r in rows] == [tuple(layer.output.shape) for layer in model.layers]
    assert [r["params"] for r in rows] == [layer.count_params() for layer in model.layers]
    assert parameter_count(spec) == model.count_params()
    assert ends_in_softmax(spec)
    assert input_shape(spec) == (1, 28, 28)  # PyTorch's layout, as neuralab's models take it


def test_logits_leave_out_the_final_softmax(tmp_path):
    model = sequential((6,), L.Dense(4, activation="softmax"))
    m = read(model)
    x = torch.randn(3, 6)
    probs, logits = build(m.spec, m.weights)(x), build(m.spec, m.weights, logits=True)(x)
    assert torch.allclose(probs, logits.softmax(1), atol=1e-6)
    assert not torch.allclose(probs, logits)


def test_spec_round_trips_through_json_and_rebuilds_without_keras(tmp_path):
    """What a run stores: the spec as JSON and the module's weights; both rebuild the module."""
    import json

    model = sequential((8, 8, 2), L.Conv2D(3, 3), L.BatchNormalization(), L.Flatten(), L.Dense(2))
    m = read(model)
    module = build(m.spec, m.weights).eval()
    spec = json.loads(json.dumps(m.spec))
    again = build(spec).eval()
    again.load_state_dict(module.state_dict())
    x = torch.randn(2, 2, 8, 8)
    assert torch.equal(again(x), module(x))


def test_conversion_imports_no_keras_for_files(tmp_path):
    """Reading a .keras or .h5 file does not need Keras at all."""
    import subprocess

    model = sequential((4, 4, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(2))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    code = ("import sys; sys.modules['keras'] = None\n"  # any import of keras now fails
            "from neuralab.keras import convert\n"
            f"for f in ('m.keras', 'm.h5'): convert({str(tmp_path)!r} + '/' + f)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.stdout.strip() == "ok", done.stderr[-400:]


# --- importing writes a whole run or none ------------------------------------------------------------

def test_a_file_name_that_is_no_utf8_imports_whole(tmp_path, capsys):
    from neuralab.cli import main
    from neuralab.runs import Run, Status

    model = sequential((8, 8, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax"))
    model.save(tmp_path / "m.keras")
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xff\xfe.keras"))  # a Latin-1 name on a UTF-8 system
    (tmp_path / "m.keras").rename(odd)
    assert main(["import", str(odd), "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert "\\udcff\\udcfe" in (tmp_path / "run" / "summary.txt").read_text(encoding="utf-8")
    assert Run(tmp_path / "run").status() is Status.FINISHED


def test_an_import_that_fails_half_way_leaves_no_run(tmp_path, capsys, monkeypatch):
    from neuralab.cli import main
    from neuralab.errors import NeuralabError
    from neuralab.training import checkpoint

    def full_disk(path, *args, **kwargs):
        raise NeuralabError(f"{path}: cannot write (No space left on device)")

    sequential((8, 8, 1), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax")).save(tmp_path / "m.keras")
    monkeypatch.setattr(checkpoint, "save_weights", full_disk)
    assert main(["import", str(tmp_path / "m.keras"), "--out", str(tmp_path / "run")]) == 2
    assert "No space left" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # config.json and model.json were written before the weights
