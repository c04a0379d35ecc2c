"""The workshop's Keras listings (examples/keras/) convert to PyTorch and compute what Keras
computes, with Keras's parameter counts."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from neuralab.keras import convert, parameter_count, read  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "keras"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"keras_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model


def keras_out(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_lenet5_listing_converts_and_matches_keras(tmp_path):
    model = example("lenet5")
    x = np.random.default_rng(0).uniform(0, 1, (16, 32, 32, 1)).astype("float32")
    want = keras_out(model, x)
    model.save(tmp_path / "lenet5.keras")
    for source in (model, tmp_path / "lenet5.keras"):
        net = convert(source).eval()
        with torch.no_grad():
            got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        assert np.abs(got - want).max() <= 1e-5
        assert np.allclose(got.sum(1), 1, atol=1e-5)  # Keras's softmax probabilities
    assert parameter_count(read(model).spec) == model.count_params() == 61_706
    assert sum(p.numel() for p in net.parameters()) == 61_706


def test_stacked_lstm_listing_converts_and_matches_keras(tmp_path):
    model = example("stacked_lstm")
    x = np.random.default_rng(1).standard_normal((8, 60, 1)).astype("float32")
    want = keras_out(model, x)
    model.save(tmp_path / "lstm.h5")
    for source in (model, tmp_path / "lstm.h5"):
        net = convert(source).eval()
        with torch.no_grad():
            got = net(torch.from_numpy(x)).numpy()
        assert got.shape == (8, 1)
        assert np.abs(got - want).max() <= 1e-5
    # Keras counts one bias per gate; PyTorch's LSTM has two, the second held at zero, untrained.
    assert parameter_count(read(model).spec) == model.count_params() == 116_033
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 116_033
    assert sum(p.numel() for p in net.parameters()) == 116_801


def test_batch_norm_slide_listing_converts_and_matches_keras():
    """The slide on BatchNormalization, verbatim (MaxPool2D is Keras's other name for MaxPooling2D)."""
    from keras.layers import BatchNormalization, Conv2D, MaxPool2D
    from keras.models import Sequential

    model = Sequential()
    model.add(Conv2D(75, (3, 3), strides=1, activation="relu", input_shape=(28, 28, 1)))
    model.add(BatchNormalization())
    model.add(MaxPool2D((2, 2), strides=2))
    rng = np.random.default_rng(2)
    model.layers[1].set_weights([rng.uniform(0.5, 1.5, 75).astype("float32") for _ in range(4)])
    x = rng.uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    with torch.no_grad():
        got = convert(model).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(got.transpose(0, 2, 3, 1) - keras_out(model, x)).max() <= 1e-5


@pytest.mark.parametrize("name", ["lenet5", "stacked_lstm"])
def test_summary_of_a_keras_file_is_keras_s_own(tmp_path, capsys, name):
    """`neuralab summary FILE.keras` prints Keras's rows: its layer names, (None, H, W, C) shapes
    and counts, as model.summary() does; under the stacked LSTM, PyTorch's count and why."""
    from neuralab.cli import main

    model = example(name)
    model.save(tmp_path / f"{name}.keras")
    assert main(["summary", str(tmp_path / f"{name}.keras")]) == 0
    out = capsys.readouterr().out
    for layer in model.layers:
        shape = "(" + ", ".join("None" if v is None else str(v) for v in layer.output.shape) + ")"
        assert f"{layer.name} ({type(layer).__name__})" in out and shape in out, layer.name
        assert f"{layer.count_params():,}" in out
    assert f"Total params: {model.count_params():,}" in out
    if name == "stacked_lstm":
        assert "counts 116,801: its LSTM keeps two biases per gate where Keras keeps one" in out
    else:
        assert "PyTorch's layout" not in out


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("layout", ["keras", "torch"])
def test_a_summary_reads_the_architecture_alone(tmp_path, capsys, suffix, layout):
    """A summary needs no weights: a file whose weights are gone (the archive's model.weights.h5,
    the .h5's model_weights group) still shows its table, as Keras's model.summary() does from a
    config; what trains or predicts (read) still refuses it."""
    import zipfile

    import h5py

    from neuralab.cli import main
    from neuralab.errors import NeuralabError

    model = example("lenet5")
    path = tmp_path / f"lenet5{suffix}"
    model.save(path)
    if suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            kept = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
        with zipfile.ZipFile(path, "w") as z:
            for name, data in kept.items():
                z.writestr(name, data)
    else:
        with h5py.File(path, "a") as f:
            del f["model_weights"]
    assert main(["summary", str(path), "--layout", layout]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and ("conv2d" in out if layout == "keras" else "Conv2d" in out), out
    with pytest.raises(NeuralabError, match="weights"):
        read(path)


def test_a_sequence_models_summary_shows_the_converted_module_in_torch_layout(tmp_path, capsys):
    """docs/models.md: `--layout torch` shows the converted module; the stacked LSTM was refused
    as "drawn for image models". Its rows add up to the module's parameters."""
    import json

    from neuralab.cli import main

    model = example("stacked_lstm")
    path = tmp_path / "stacked_lstm.keras"
    model.save(path)
    assert main(["summary", str(path), "--layout", "torch", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    net = convert(model)
    assert table["total_params"] == sum(p.numel() for p in net.parameters())
    assert [r["kind"] for r in table["rows"] if r["kind"] == "LSTM"] == ["LSTM"] * sum(
        type(layer).__name__ == "LSTM" for layer in model.layers)


@pytest.mark.parametrize("shape", [(None, 3), (None, None, 3)])
def test_a_model_of_open_input_sizes_is_sent_to_the_keras_layout(tmp_path, capsys, shape):
    """`--layout torch` on a model of open sizes blamed `--input`, which a Keras file refuses."""
    from neuralab.cli import main

    layers = [keras.layers.LSTM(4)] if len(shape) == 2 else [keras.layers.Conv2D(4, 3),
                                                              keras.layers.GlobalAveragePooling2D()]
    path = tmp_path / "open.keras"
    keras.Sequential([keras.Input(shape), *layers, keras.layers.Dense(2)]).save(path)
    assert main(["summary", str(path), "--layout", "torch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "open sizes" in err and "use the keras layout" in err and "--input" not in err
    assert main(["summary", str(path)]) == 0
