"""What neuralab.keras refuses, each with one line naming the file and the layer or field at
fault, and with nothing from the file executed. The files are written by hand (zip, JSON and
HDF5, as Keras lays them out) or cut from the TF-Keras references; no Keras is needed."""

from __future__ import annotations

import base64
import copy
import json
import marshal
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neuralab.errors import NeuralabError
from neuralab.keras import build, check, convert, read

DATA = Path(__file__).resolve().parent / "data" / "keras"

INPUT = {"class_name": "InputLayer", "config": {"name": "input_layer", "batch_shape": [None, 4]}}
DENSE = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "dense", "units": 2, "activation": "softmax"}}


def sequential(*layers) -> dict:
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "layers": [INPUT, *layers]}}


def write_keras(path: Path, config, weights: dict[str, np.ndarray] | None = None, members=None) -> Path:
    """A .keras file as Keras 3 writes one: config.json, metadata.json, model.weights.h5."""
    if weights is None:
        weights = {"layers/dense/vars/0": np.ones((4, 2), "float32"), "layers/dense/vars/1": np.zeros(2, "float32")}
    h5 = path.with_suffix(".h5tmp")
    with h5py.File(h5, "w") as f:
        for key, value in weights.items():
            f[key] = value
    with zipfile.ZipFile(path, "w") as z:
        for name in members or ("config.json", "metadata.json", "model.weights.h5"):
            if name == "config.json":
                z.writestr(name, config if isinstance(config, str) else json.dumps(config))
            elif name == "metadata.json":
                z.writestr(name, json.dumps({"keras_version": "3.15.1"}))
            else:
                z.write(h5, name)
    return path


def refused(source) -> str:
    with pytest.raises(NeuralabError) as e:
        convert(source)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_handmade_file_converts(tmp_path):
    """The baseline the refusals below depart from, in Keras 3's notation and in TF-Keras 2's
    older one (no InputLayer: the first layer carries batch_input_shape)."""
    old_style = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "softmax",
                                           "batch_input_shape": [None, 4]}}]}}
    for i, config in enumerate((sequential(DENSE), old_style)):
        model = convert(write_keras(tmp_path / f"ok{i}.keras", config))
        assert model(torch.ones(1, 4)).tolist() == [[0.5, 0.5]]


# --- damaged files ----------------------------------------------------------------------------

@pytest.mark.parametrize("file", ["graph_tfk2.keras", "same_cnn_8_tfk2.h5", "same_cnn_8_k3tf.keras"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_files_are_refused(tmp_path, file, keep):
    data = (DATA / file).read_bytes()
    cut = tmp_path / file
    cut.write_bytes(data[:int(len(data) * keep)])
    message = refused(cut)
    assert str(cut) in message
    assert any(w in message for w in ("damaged", "truncated")), message


def test_corrupt_zip_is_refused(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    assert "damaged or truncated" in refused(bad)


def test_flipped_bytes_in_the_weights_are_caught(tmp_path):
    """A .keras zip checks each member's CRC: a damaged weights file never gets read as weights."""
    path = DATA / "same_cnn_8_k3tf.keras"
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    data[info.header_offset + 200] ^= 0xFF  # inside the stored member, past its local header
    bad = tmp_path / "flipped.keras"
    bad.write_bytes(bytes(data))
    assert "damaged" in refused(bad)


def test_not_a_model_file(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("model = Sequential()\n")
    assert "neither a .keras file (zip) nor an HDF5 .h5 file" in refused(text)
    assert "file not found" in refused(tmp_path / "missing.keras")
    assert "SavedModel" in refused(tmp_path)


def test_bad_json_config(tmp_path):
    assert "config.json is not valid JSON" in refused(write_keras(tmp_path / "m.keras", "{\"class_name\": "))


# --- no architecture --------------------------------------------------------------------------

def test_tf_keras_weights_only_h5_is_refused():
    message = refused(DATA / "weights_only_tfk2.h5")
    assert "the architecture is missing" in message and "give the .keras file" in message


def test_keras3_weights_only_file_is_refused(tmp_path):
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        f["layers/dense/vars/0"] = np.ones((4, 2), "float32")
    assert "the architecture is missing" in refused(path)


def test_zip_of_weights_only_is_refused(tmp_path):
    assert "the architecture is missing" in refused(write_keras(tmp_path / "w.keras", {}, members=["model.weights.h5"]))


# --- layers and objects neuralab does not run ----------------------------------------------------

def test_lambda_is_refused_and_never_run(tmp_path):
    canary = tmp_path / "ran"
    code = compile(f"open({str(canary)!r}, 'w').close()", "<lambda>", "exec")
    lam = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
           "config": {"name": "lambda", "function": {"class_name": "__lambda__", "config": {
               "code": base64.b64encode(marshal.dumps(code)).decode(), "defaults": None, "closure": None}}}}
    message = refused(write_keras(tmp_path / "m.keras", sequential(lam, DENSE)))
    assert "layer 'lambda' (Lambda)" in message and "never runs code" in message
    assert "supported layers: Activation, Add," in message
    assert not canary.exists()


@pytest.mark.parametrize("layer,expected", [
    ({"module": "my_package.layers", "class_name": "MyLayer", "registered_name": "MyPackage>MyLayer",
      "config": {"name": "mine"}}, "layer 'mine' (MyPackage>MyLayer): a custom layer from 'my_package.layers'"),
    ({"module": "evil", "class_name": "Dense", "registered_name": None, "config": {"name": "fake", "units": 2}},
     "layer 'fake' (Dense): a custom layer from 'evil'"),
    ({"module": "keras.layers", "class_name": "Conv1D", "registered_name": None, "config": {"name": "c"}},
     "layer 'c' (Conv1D): it is not a layer neuralab converts; supported layers:"),
    ({**DENSE, "config": {**DENSE["config"], "activation": {"module": "builtins", "class_name": "function",
                                                             "config": "my_act", "registered_name": "function"}}},
     "activation is a custom function, which neuralab never runs"),
    ({**DENSE, "config": {**DENSE["config"], "activation": "hard_sigmoid"}}, "activation='hard_sigmoid' is not supported"),
])
def test_unsupported_and_custom_layers_are_refused_by_name(tmp_path, layer, expected):
    message = refused(write_keras(tmp_path / "m.keras", sequential(layer)))
    assert str(tmp_path / "m.keras") in message
    assert expected in message


@pytest.mark.parametrize("module", ["my_models", None])  # Keras 3 writes a class from __main__ with no module
def test_subclassed_model_is_refused(tmp_path, module):
    config = {"module": module, "class_name": "MyModel", "registered_name": "MyModel", "config": {"units": 3}}
    assert "the model is a custom class 'MyModel' (a subclassed model's" in refused(write_keras(tmp_path / "m.keras", config))


def test_unsupported_options_are_named(tmp_path):
    lstm = {"class_name": "LSTM", "config": {"name": "lstm", "units": 3, "recurrent_dropout": 0.2}}
    config = sequential(lstm)
    config["config"]["layers"][0] = {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 4]}}
    message = refused(write_keras(tmp_path / "m.keras", config))
    assert "layer 'lstm' (LSTM): recurrent_dropout=0.2 is not supported" in message


def functional(layers: list[dict], inputs, outputs) -> dict:
    return {"class_name": "Functional", "config": {"name": "f", "layers": layers, "input_layers": inputs,
                                                   "output_layers": outputs}}


def node(*names):
    return [[[n, 0, 0, {}] for n in names]]


def test_two_inputs_and_shared_layers_are_refused(tmp_path):
    a = {"class_name": "InputLayer", "name": "a", "config": {"name": "a", "batch_shape": [None, 4]}, "inbound_nodes": []}
    b = {**a, "name": "b", "config": {**a["config"], "name": "b"}}
    add = {"class_name": "Add", "name": "add", "config": {"name": "add"}, "inbound_nodes": node("a", "b")}
    message = refused(write_keras(tmp_path / "two.keras", functional([a, b, add], [["a", 0, 0], ["b", 0, 0]],
                                                                       [["add", 0, 0]]), weights={}))
    assert "2 inputs; neuralab converts models with one input and one output" in message
    dense = {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 4},
             "inbound_nodes": node("a") + node("d")}
    message = refused(write_keras(tmp_path / "shared.keras", functional([a, dense], [["a", 0, 0]], [["d", 1, 0]])))
    assert "layer 'd' (Dense): the layer is called 2 times" in message


# --- weights that do not fit the architecture ------------------------------------------------------

def test_weights_of_the_wrong_shape_are_refused_before_reading(tmp_path):
    weights = {"layers/dense/vars/0": np.ones((4, 3), "float32"), "layers/dense/vars/1": np.zeros(3, "float32")}
    message = refused(write_keras(tmp_path / "m.keras", sequential(DENSE), weights))
    assert "layer 'dense' (Dense): kernel should be float [4, 2], the file has float32 [4, 3]" in message


def test_missing_and_extra_weights_are_refused(tmp_path):
    message = refused(write_keras(tmp_path / "a.keras", sequential(DENSE), {"layers/dense/vars/0": np.ones((4, 2), "float32")}))
    assert "has 1 weight arrays in the file, its config needs 2 (kernel, bias)" in message
    message = refused(write_keras(tmp_path / "b.keras", sequential(DENSE), {"layers/other/vars/0": np.ones(1, "float32")}))
    assert "layer 'dense' has no weights in the file (layers/dense)" in message


def test_integer_weights_are_refused(tmp_path):
    weights = {"layers/dense/vars/0": np.ones((4, 2), "int64"), "layers/dense/vars/1": np.zeros(2, "float32")}
    assert "kernel should be float [4, 2], the file has int64 [4, 2]" in refused(write_keras(tmp_path / "m.keras", sequential(DENSE), weights))


def test_a_config_declaring_more_weights_than_the_file_holds_is_refused_before_allocating(tmp_path):
    huge = {**DENSE, "config": {**DENSE["config"], "units": 2**28}}  # a 4 GiB float32 kernel
    assert "smaller than the weights the config declares" in refused(write_keras(tmp_path / "m.keras", sequential(huge)))
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(sequential(huge))
        f.attrs["keras_version"] = "2.15.0"
        f.create_group("model_weights")
    assert "smaller than the weights its config declares" in refused(path)


def test_a_live_object_that_is_not_a_keras_model_is_refused():
    assert "convert() takes a .keras or .h5 path or a Keras 3 model; got dict" in refused({"layers": []})


# --- stored specs are checked like files ---------------------------------------------------------

def test_a_tampered_spec_is_refused():
    spec = read(DATA / "same_cnn_8_tfk2.h5").spec
    assert check(copy.deepcopy(spec)) == spec
    bad = copy.deepcopy(spec)
    bad["layers"][1]["output_shape"] = [None, 9, 9, 4]
    with pytest.raises(NeuralabError, match="conv2d' \\(Conv2D\\): the stored shapes or arguments do not match"):
        build(bad)
    bad = copy.deepcopy(spec)
    bad["layers"][2]["class"] = "Lambda"
    with pytest.raises(NeuralabError, match="never runs code from a model file"):
        build(bad)
    bad = copy.deepcopy(spec)
    bad["layers"][1]["args"]["filters"] = 10**12
    with pytest.raises(NeuralabError, match="filters=1000000000000: expected a whole number"):
        build(bad)
