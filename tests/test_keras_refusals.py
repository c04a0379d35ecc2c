"""What neuralab.keras refuses, each with one line naming the file and the layer or field at
fault, and with nothing from the file executed. The files are written by hand (zip, JSON and
HDF5, as Keras lays them out) or cut from the TF-Keras references; no Keras is needed."""

from __future__ import annotations

import base64
import copy
import json
import marshal
import pickle
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neuralab.cli import main
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
    ({"module": "keras.layers", "class_name": "Conv3D", "registered_name": None, "config": {"name": "c"}},
     "layer 'c' (Conv3D): it is not a layer neuralab converts; supported layers:"),
    ({**DENSE, "config": {**DENSE["config"], "activation": {"module": "builtins", "class_name": "function",
                                                             "config": "my_act", "registered_name": "function"}}},
     "activation is a custom function, which neuralab never runs"),
    ({**DENSE, "config": {**DENSE["config"], "activation": "hard_sigmoid"}}, "activation='hard_sigmoid' is not supported"),
])
def test_unsupported_and_custom_layers_are_refused_by_name(tmp_path, layer, expected):
    message = refused(write_keras(tmp_path / "m.keras", sequential(layer)))
    assert str(tmp_path / "m.keras") in message
    assert expected in message


def test_hard_sigmoid_is_refused_saying_why_and_what_to_use(tmp_path):
    """Keras 3's hard_sigmoid is relu6(x + 3) / 6, TF-Keras 2's clip(0.2x + 0.5, 0, 1): a learner is
    told so, and which activation converts."""
    layer = {**DENSE, "config": {**DENSE["config"], "activation": "hard_sigmoid"}}
    message = refused(write_keras(tmp_path / "m.keras", sequential(layer)))
    assert "TF-Keras 2 and Keras 3 define it differently" in message and "fit it again with 'sigmoid'" in message


@pytest.mark.parametrize("module", ["my_models", None])  # Keras 3 writes a class from __main__ with no module
def test_subclassed_model_is_refused(tmp_path, module):
    config = {"module": module, "class_name": "MyModel", "registered_name": "MyModel", "config": {"units": 3}}
    assert "the model is a custom class 'MyModel' (a subclassed model's" in refused(write_keras(tmp_path / "m.keras", config))


def marshalled(canary: Path) -> dict:
    """A function as Keras writes a Python lambda, marshalled: run, it would create ``canary``."""
    code = compile(f"open({str(canary)!r}, 'w').close()", "<lambda>", "exec")
    return {"class_name": "__lambda__", "config": {"code": base64.b64encode(marshal.dumps(code)).decode(),
                                                   "defaults": None, "closure": None}}


def lambda_layer(canary: Path) -> dict:
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "lambda", "function": marshalled(canary)}}


def torch_module(canary: Path) -> dict:
    """A TorchModuleWrapper as Keras writes one, its module pickled: unpickled, it would create ``canary``."""
    class Module:
        def __reduce__(self):
            return open, (str(canary), "w")

    return {"module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": None,
            "config": {"name": "torch_module_wrapper", "module": base64.b64encode(pickle.dumps(Module())).decode()}}


def with_dense_field(key: str, value) -> dict:
    return sequential({**DENSE, "config": {**DENSE["config"], key: value}})


def with_compile(key: str, value) -> dict:
    return {**sequential(DENSE), "compile_config": {"optimizer": "adam", "loss": "mse", "metrics": None, key: value}}


@pytest.mark.parametrize("config, expected", [
    (lambda c: with_dense_field("kernel_regularizer", marshalled(c)),
     "layer 'dense' (Dense): kernel_regularizer holds Python code (a marshalled function)"),
    (lambda c: with_dense_field("kernel_constraint", lambda_layer(c)),
     "layer 'dense' (Dense): kernel_constraint holds Python code (a Lambda layer)"),
    (lambda c: with_dense_field("activation", marshalled(c)),
     "layer 'dense' (Dense): activation holds Python code (a marshalled function)"),
    (lambda c: with_dense_field("kernel_initializer", {
        "module": "keras.initializers", "class_name": "VarianceScaling", "registered_name": None,
        "config": {"scale": 1.0, "seed": {"module": "keras", "class_name": "Sequential", "registered_name": None,
                                          "config": {"layers": [INPUT, lambda_layer(c)]}}}}),
     "kernel_initializer.config.seed.config.layers[1] holds Python code (a Lambda layer)"),
    (lambda c: with_dense_field("bias_constraint", torch_module(c)),
     "layer 'dense' (Dense): bias_constraint holds Python code (a pickled PyTorch module)"),
    (lambda c: with_compile("optimizer", {"module": "keras.layers", "class_name": "TorchModuleWrapper",
                                          "config": {"name": "t"}}),
     "m.keras: compile_config.optimizer holds Python code (a pickled PyTorch module)"),
    (lambda c: with_dense_field("kernel_initializer", {"module": "keras.layers", "class_name": "TFSMLayer",
                                                       "registered_name": None,
                                                       "config": {"name": "tfsm", "filepath": str(c)}}),
     "layer 'dense' (Dense): kernel_initializer holds Python code (a TensorFlow SavedModel's graph)"),
    (lambda c: with_compile("loss", marshalled(c)), "m.keras: compile_config.loss holds Python code"),
    (lambda c: with_compile("metrics", ["accuracy", {"module": "keras.metrics", "class_name": "MeanMetricWrapper",
                                                     "registered_name": None, "config": {"fn": marshalled(c)}}]),
     "m.keras: compile_config.metrics[1].config.fn holds Python code (a marshalled function)"),
    (lambda c: with_compile("optimizer", {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
                                          "config": {"learning_rate": lambda_layer(c)}}),
     "compile_config.optimizer.config.learning_rate holds Python code (a Lambda layer)"),
])
def test_python_code_anywhere_in_the_config_is_refused_naming_its_field(tmp_path, capsys, config, expected):
    """Keras's loader would make code of a Lambda or a marshalled __lambda__ function wherever it
    sits, and import's check hands the file to it: refused in one line, exit 2, nothing run."""
    canary = tmp_path / "ran"
    path = write_keras(tmp_path / "m.keras", config(canary))
    message = refused(path)
    assert expected in message and "which neuralab never runs" in message, message
    assert ("compile the model without it" in message) == ("compile_config" in expected), message
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not canary.exists()


def test_a_torch_module_wrapper_layer_is_refused_as_code(tmp_path):
    canary = tmp_path / "ran"
    message = refused(write_keras(tmp_path / "m.keras", sequential(torch_module(canary), DENSE)))
    assert ("layer 'torch_module_wrapper' (TorchModuleWrapper): it holds Python code (a pickled PyTorch module)"
            in message), message
    assert not canary.exists()


@pytest.mark.parametrize("field, value, expected", [
    ("loss", lambda c: marshalled(c), "training_config.loss holds"),
    ("metrics", lambda c: ["accuracy", marshalled(c)], "training_config.metrics[1] holds"),
    ("weighted_metrics", lambda c: [{"class_name": "MeanMetricWrapper", "config": {"fn": marshalled(c)}}],
     "training_config.weighted_metrics[0].config.fn holds"),
])
def test_python_code_in_a_legacy_h5_training_config_is_refused(tmp_path, field, value, expected):
    """All of the training_config is judged, its metrics too, which the compile settings neuralab
    takes from it (optimizer and loss) leave out."""
    path = tmp_path / "m.h5"
    path.write_bytes((DATA / "same_cnn_8_tfk2.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy", "metrics": ["accuracy"],
                                                 "optimizer_config": {"class_name": "Adam", "config": {"lr": 0.001}},
                                                 field: value(tmp_path / "ran")})
    message = refused(path)
    assert f"m.h5: {expected} Python code (a marshalled function)" in message, message
    assert "compile the model without it" in message and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("obj, expected", [
    ({"module": "keras.src.utils.python_utils", "class_name": "func_load", "registered_name": None, "config": {}},
     "'func_load' from module 'keras.src.utils.python_utils'"),
    ({"module": "keras.utils", "class_name": "Progbar", "registered_name": None, "config": {}},
     "'Progbar' from module 'keras.utils'"),
    ({"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Adam", "registered_name": "Evil",
      "config": {}}, "'Evil' from module 'keras.src.backend.torch.optimizers.torch_adam'"),
    ({"module": "keras.models", "class_name": "function", "config": "load_model"},
     "'load_model' from module 'keras.models'"),
    ({"module": "keras.ops", "class_name": "function", "config": "mean", "registered_name": "function"},
     "'mean' from module 'keras.ops'"),
    ({"module": "keras.src.losses.losses", "class_name": "function", "config": "mean_squared_error"},
     "'mean_squared_error' from module 'keras.src.losses.losses'"),
])
def test_a_keras_module_that_no_saved_model_names_is_refused(tmp_path, obj, expected):
    """Keras's loader imports any keras.* module a file names: only those Keras's saving writes
    pass (its public ones, its functional model's, the PyTorch backend's optimizers), and a
    function only from those of losses, metrics, activations, initializers, regularizers, constraints."""
    message = refused(write_keras(tmp_path / "m.keras", with_dense_field("bias_constraint", obj)))
    assert f"layer 'dense' (Dense): bias_constraint is {expected}, not one of Keras's own objects" in message
    message = refused(write_keras(tmp_path / "c.keras", with_compile("optimizer", obj)))
    assert f"c.keras: compile_config.optimizer is {expected}" in message


def test_an_object_whose_class_name_is_not_a_string_is_refused_in_one_line(tmp_path):
    obj = {"module": "evil", "class_name": ["Lambda"], "registered_name": None, "config": {}}
    message = refused(write_keras(tmp_path / "m.keras", with_dense_field("bias_constraint", obj)))
    assert "layer 'dense' (Dense): bias_constraint is \"['Lambda']\" from module 'evil'" in message


def test_what_keras_writes_in_a_compile_config_is_read(tmp_path):
    """Keras 3 on PyTorch writes its Adam from the backend's module, a loss function by its module
    and a learning-rate schedule from keras.optimizers.schedules: all its own, all read."""
    config = {**sequential(DENSE), "compile_config": {
        "optimizer": {"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Adam",
                      "registered_name": "Adam", "config": {"learning_rate": {
                          "module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                          "registered_name": None, "config": {"initial_learning_rate": 0.01, "decay_steps": 10,
                                                              "decay_rate": 0.9}}}},
        "loss": {"module": "keras.losses", "class_name": "function", "config": "categorical_crossentropy",
                 "registered_name": "categorical_crossentropy"},
        "metrics": ["accuracy"]}}
    model = read(write_keras(tmp_path / "m.keras", config))
    assert model.compile["loss"]["config"] == "categorical_crossentropy"
    assert model.compile["optimizer"]["module"] == "keras.src.backend.torch.optimizers.torch_adam"


def test_unsupported_options_are_named(tmp_path):
    lstm = {"class_name": "LSTM", "config": {"name": "lstm", "units": 3, "go_backwards": True}}
    config = sequential(lstm)
    config["config"]["layers"][0] = {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 4]}}
    message = refused(write_keras(tmp_path / "m.keras", config))
    assert "layer 'lstm' (LSTM): go_backwards=True is not supported" in message


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
    huge = {**DENSE, "config": {**DENSE["config"], "units": 2**26}}  # a 1 GiB float32 kernel, outputs within bounds
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


# --- data from outside the file ---------------------------------------------------------------

def keras_h5(path: Path, tmp_path: Path, edit) -> Path:
    """A copy of the .keras file ``path`` whose model.weights.h5 went through ``edit(h5py.File)``."""
    h5 = tmp_path / "model.weights.h5"
    with zipfile.ZipFile(path) as z:
        h5.write_bytes(z.read("model.weights.h5"))
        members = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
    with h5py.File(h5, "r+") as f:
        edit(f)
    out = tmp_path / path.name
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.write(h5, "model.weights.h5")
    return out


def outside(how: str, dataset: str, tmp_path: Path):
    """An edit putting ``dataset`` (of an HDF5 file) somewhere else than in the file."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"sk_live_SECRET\n" * 1000)

    def edit(f: h5py.File):
        shape = f[dataset].shape
        with h5py.File(tmp_path / "other.h5", "w") as other:
            other["k"] = np.full(shape, 42.0, "float32")
        f.move(dataset, "/moved")
        if how == "soft link":
            f[dataset] = h5py.SoftLink("/moved")
        elif how == "external link":
            f[dataset] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/k")
        elif how == "external storage":
            f.create_dataset(dataset, shape=shape, dtype="<f4", external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        else:
            layout = h5py.VirtualLayout(shape, "f4")
            layout[...] = h5py.VirtualSource(str(tmp_path / "other.h5"), "k", shape)
            f.create_virtual_dataset(dataset, layout)
    return edit


@pytest.mark.parametrize("how", ["external storage", "external link", "soft link", "virtual dataset"])
@pytest.mark.parametrize("file", ["same_cnn_8_k3tf.keras", "same_cnn_8_tfk2.h5"])
def test_weights_kept_outside_the_file_are_refused(tmp_path, capsys, file, how):
    """HDF5 can keep a dataset's bytes in another file, or link to one: a Keras file would
    then read any local file into the weights. Nothing but the file's own data is read."""
    if file.endswith(".keras"):
        path, dataset = keras_h5(DATA / file, tmp_path, outside(how, "layers/conv2d/vars/0", tmp_path)), \
            "/layers/conv2d/vars/0"
    else:
        path, dataset = tmp_path / file, "/model_weights/conv2d/conv2d/kernel:0"
        path.write_bytes((DATA / file).read_bytes())
        with h5py.File(path, "r+") as f:
            outside(how, dataset, tmp_path)(f)
    message = refused(path)
    assert message.startswith((f"{path}: {dataset} is a link (", f"{path}: the array {dataset} is "))
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert dataset in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


# --- malformed fields -------------------------------------------------------------------------

def test_malformed_input_layer_fields_are_refused(tmp_path):
    config = sequential(DENSE)
    config["config"]["layers"][0] = {**INPUT, "config": {**INPUT["config"], "name": [1]}}
    assert "layer names must be distinct strings, got [1]" in refused(write_keras(tmp_path / "name.keras", config))
    config["config"]["layers"][0] = {**INPUT, "config": {**INPUT["config"], "dtype": {"config": "x"}}}
    message = refused(write_keras(tmp_path / "dtype.keras", config))
    assert "layer 'input_layer' (InputLayer): dtype={'config': 'x'}: neuralab converts models with float inputs" in message


def zip_flags(path: Path, member: str, flag: int = 0, method: int | None = None) -> Path:
    """``path`` with ``member``'s flags or compression method changed in both its headers."""
    data = bytearray(path.read_bytes())
    local = zipfile.ZipFile(path).getinfo(member).header_offset
    at = data.find(b"PK\x01\x02")
    while at != -1:
        size = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + size].decode() == member:
            for flags, method_at in ((at + 8, at + 10), (local + 6, local + 8)):
                data[flags:flags + 2] = (int.from_bytes(data[flags:flags + 2], "little") | flag).to_bytes(2, "little")
                if method is not None:
                    data[method_at:method_at + 2] = method.to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
def test_encrypted_and_oddly_compressed_members_are_refused(tmp_path, member):
    path = zip_flags(write_keras(tmp_path / "enc.keras", sequential(DENSE)), member, flag=0x1)
    assert f"{path}: {member} in the archive is encrypted" in refused(path)
    path = zip_flags(write_keras(tmp_path / "odd.keras", sequential(DENSE)), member, method=97)
    assert f"{path}: {member} in the archive is compressed with method 97" in refused(path)


@pytest.mark.parametrize("names", [5, np.array([[b"a"]]), np.array([1, 2])])
def test_legacy_weight_names_that_are_no_list_of_names_are_refused(tmp_path, names):
    path = tmp_path / "m.h5"
    path.write_bytes((DATA / "same_cnn_8_tfk2.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        f["model_weights/conv2d"].attrs["weight_names"] = names
    assert f"{path}: layer 'conv2d': attribute weight_names should list the names of its weights" in refused(path)


@pytest.mark.parametrize("field,edit", [
    ("spec.output", lambda s: s.__setitem__("output", ["dense"])),
    ("spec.layers[1].inputs", lambda s: s["layers"][1].__setitem__("inputs", [["input_layer"]])),
    ("spec.layers[0]", lambda s: s.__setitem__("layers", ["x"])),
    ("spec.layers[1].class", lambda s: s["layers"][1].__setitem__("class", ["Conv2D"])),
    ("spec.layers[1].output_shape", lambda s: s["layers"][1].__setitem__("output_shape", "x")),
    ("spec.layers[1].weights", lambda s: s["layers"][1]["weights"][0].__setitem__(1, [3, 3, 2.0, 4])),
    ("spec.keras_version", lambda s: s.__setitem__("keras_version", 3)),
])
def test_a_spec_with_fields_of_the_wrong_type_is_refused_naming_the_field(tmp_path, field, edit):
    from neuralab.training.keras_model import keras_classifier
    from neuralab.training.source import check_record

    spec = read(DATA / "same_cnn_8_tfk2.h5").spec
    edit(spec)
    with pytest.raises(NeuralabError, match=f"^run/model.json: field 'source.{re.escape(field)}' must be "):
        check_record({"type": "keras", "spec": spec, "logits": True}, "run/model.json")
    with pytest.raises(NeuralabError, match=f"^keras:m: field '{re.escape(field)}' must be "):
        keras_classifier(spec, None, (2, 8, 8), 3, "keras:m")


def test_a_spec_whose_numbers_are_floats_or_a_wrong_dtype_is_refused():
    spec = read(DATA / "same_cnn_8_tfk2.h5").spec
    bad = copy.deepcopy(spec)
    bad["layers"][0]["args"]["dtype"] = {"config": 1}
    with pytest.raises(NeuralabError, match="InputLayer\\): dtype=\\{'config': 1\\}: neuralab converts"):
        check(bad)
    bad = copy.deepcopy(spec)
    bad["layers"][1]["input_shapes"] = [[None, 8.0, 8, 2]]  # == [None, 8, 8, 2] in Python, not in JSON
    with pytest.raises(NeuralabError, match="field 'spec.layers\\[1\\].input_shapes' must be"):
        check(bad)
