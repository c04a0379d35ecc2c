"""The Python API's boundary: build_model, Classifier, Preprocess, top_k and confusion_matrix
refuse what they cannot use with one ParameterError naming the parameter, never a raw
NumPy or PyTorch error, and a Classifier computes where its model is."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import handwritten_digit

from neuralab.errors import NeuralabError, ParameterError
from neuralab.models import build_model
from neuralab.training.evaluate import confusion_matrix
from neuralab.training.preprocess import Preprocess
from neuralab.training.trained_classifier import Classifier

DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """40 real handwritten digits, (N, 1, 28, 28) uint8 as load_image_data gives them, and their labels."""
    pictures, labels = zip(*(handwritten_digit(i) for i in range(40)))
    return np.stack(pictures)[:, None], np.array(labels)


@pytest.fixture(scope="module")
def clf(digits) -> Classifier:
    torch.manual_seed(0)
    return Classifier(build_model("mlp", (1, 28, 28), 10), DIGITS, Preprocess.fit(digits[0]), "mlp")


def one_line(e: pytest.ExceptionInfo, parameter: str) -> str:
    assert isinstance(e.value, ParameterError) and e.value.parameter == parameter, e.value
    assert "\n" not in str(e.value)
    return str(e.value)


# --- where a Classifier computes ------------------------------------------------------------------

def _seen_inputs(model: torch.nn.Module) -> list[torch.Tensor]:
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


def test_predict_proba_gives_the_model_its_inputs_in_the_weights_float_type(digits):
    images, _ = digits
    pre = Preprocess.fit(images)
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10).double()
    seen = _seen_inputs(model)
    probs = Classifier(model, DIGITS, pre, "mlp").predict_proba(images)
    assert seen and all(x.dtype == torch.float64 for x in seen)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(pre(images).double()), dim=1).numpy()
    assert probs.dtype == np.float32 and probs.shape == (40, 10)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_predict_proba_leaves_a_module_in_the_middle_of_its_training_in_its_modes(digits):
    """A researcher checks predictions inside their own training loop: Dropout goes on after,
    and the BatchNorm they froze in eval stays so; the predictions are eval mode's."""
    images, _ = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.BatchNorm1d(32),
                                torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 10)).train()
    model[2].eval()  # frozen
    clf = Classifier(model, DIGITS, Preprocess.fit(images), "net")
    probs = clf.predict_proba(images)
    assert [m.training for m in model.modules()] == [True, True, True, False, True, True, True]
    np.testing.assert_array_equal(probs, clf.predict_proba(images))  # no Dropout drew in either


def test_predict_proba_takes_a_uint8_tensor_as_its_numpy_array(digits, clf):
    images, _ = digits
    np.testing.assert_array_equal(clf.predict_proba(torch.from_numpy(images)), clf.predict_proba(images))
    with pytest.raises(ParameterError) as e:
        clf.predict_proba(torch.from_numpy(images).float())
    assert "give uint8 pixels (0-255) of (N, 1, 28, 28)" in one_line(e, "images")


@pytest.mark.gpu
def test_predict_proba_runs_on_the_gpu_the_trained_model_is_on(digits, clf):
    """After Trainer.fit the model's weights are on the GPU: the batches go there, the
    probabilities come back as NumPy on the CPU, the same as the CPU's."""
    images, _ = digits
    on_cpu = clf.predict_proba(images)
    model = build_model("mlp", (1, 28, 28), 10)
    model.load_state_dict(clf.model.state_dict())
    model.cuda()
    seen = _seen_inputs(model)
    probs = Classifier(model, DIGITS, clf.preprocess, "mlp").predict_proba(images)
    assert seen and all(x.device.type == "cuda" for x in seen)
    assert isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs, on_cpu, atol=1e-5)


# --- build_model ---------------------------------------------------------------------------------

def test_too_small_for_alexnet2012_names_inputs_that_really_work():
    """alexnet2012 takes its small-input layers below 64 pixels, and the paper's unpadded ones
    vanish at 64 to 66: sizes below and above work, 64 does not. The message names the nearest
    of each, not 1x1x1 (which works, but is no answer to "too small")."""
    with pytest.raises(NeuralabError) as e:
        build_model("alexnet2012", (1, 64, 64), 10)
    message = str(e.value)
    assert message.startswith("input_shape=(1, 64, 64): too small for alexnet2012") and "(1, 1, 1)" not in message
    down, up = (int(s) for s in re.fullmatch(r".*the nearest inputs that work are \(1, (\d+), \1\) and \(1, (\d+), \2\)",
                                              message).groups())
    assert down < 64 < up
    with torch.device("meta"):
        for side in (down, up):
            build_model("alexnet2012", (1, side, side), 10)
        for side in (down + 1, up - 1):  # the nearest: one pixel closer fails
            with pytest.raises(NeuralabError, match="too small"):
                build_model("alexnet2012", (1, side, side), 10)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), [224, 224, 3]])
def test_keras_order_of_input_shape_is_refused(shape):
    with pytest.raises(ParameterError) as e:
        build_model("cnn", shape, 10)
    message = one_line(e, "input_shape")
    h, w, c = shape
    assert f"({c}, {h}, {w})" in message and "Keras" in message
    build_model("cnn", (c, h, w), 10)  # channels first builds


@pytest.mark.parametrize("kwargs, parameter", [
    ({"num_classes": 10.0}, "num_classes"),
    ({"num_classes": "10"}, "num_classes"),
    ({"input_shape": "1x28x28"}, "input_shape"),
    ({"input_shape": (1, 28.5, 28)}, "input_shape"),
    ({"hidden": 3}, "hidden"),
    ({"hidden": (256, "128")}, "hidden"),
])
def test_mlp_build_refuses_wrong_types_naming_the_parameter(kwargs, parameter):
    args = {"input_shape": (1, 28, 28), "num_classes": 10, **kwargs}
    with pytest.raises(ParameterError) as e:
        build_model("mlp", **args)
    one_line(e, parameter)


@pytest.mark.parametrize("name, options, parameter", [
    ("cnn", {"dense": "x"}, "dense"),
    ("cnn", {"dense": 64, "channels": 32}, "channels"),  # the one at fault, among several
    ("alexnet", {"hidden": -1}, "hidden"),
    ("mlp", {"dropout": 1.5}, "dropout"),
])
def test_a_zoo_option_of_the_wrong_kind_is_named(name, options, parameter):
    with pytest.raises(ParameterError) as e:
        build_model(name, (1, 28, 28), 10, **options)
    assert f"neuralab.models.{name}" in one_line(e, parameter)


def test_options_that_fit_still_build():
    assert build_model("mlp", (1, 28, 28), 10, hidden=[64]).features[1].out_features == 64  # a list, as JSON gives it
    assert build_model("cnn", (1, 28, 28), 10, dense=np.int64(32)).classifier[0].out_features == 32


# --- Classifier and Preprocess ---------------------------------------------------------------------

@pytest.mark.parametrize("classes", [DIGITS[:2], DIGITS + ["10"]])
def test_class_names_that_do_not_match_the_models_outputs_are_refused(digits, clf, classes):
    images, _ = digits
    other = Classifier(clf.model, classes, clf.preprocess, "mlp")
    with pytest.raises(NeuralabError, match=rf"^classes names {len(classes)} classes, but the model gives outputs "
                                            r"of \(10,\) per image"):
        other.predict(images)


@pytest.mark.parametrize("classes", ["0123456789", None, ["only"]])
def test_classes_that_are_no_list_of_names_are_refused(clf, classes):
    with pytest.raises(ParameterError) as e:
        Classifier(clf.model, classes, clf.preprocess, "mlp")
    one_line(e, "classes")


def test_a_classifier_needs_a_module_and_a_preprocess(clf):
    with pytest.raises(ParameterError) as e:
        Classifier("mlp.safetensors", DIGITS, clf.preprocess, "mlp")
    one_line(e, "model")
    with pytest.raises(ParameterError) as e:
        Classifier(clf.model, DIGITS, {"mean": [0.1], "std": [0.3]}, "mlp")
    one_line(e, "preprocess")


@pytest.mark.parametrize("make", [lambda x: x / 255.0, lambda x: x.astype(np.float32), lambda x: x[:, 0],
                                  lambda x: x[:0], lambda x: x.tolist()],
                         ids=["floats-0-1", "float32-0-255", "3-D", "empty", "list"])
def test_preprocess_fit_refuses_what_is_not_uint8_images(digits, make):
    with pytest.raises(ParameterError) as e:
        Preprocess.fit(make(digits[0]))
    assert "uint8" in one_line(e, "x")


# --- top_k and confusion_matrix -------------------------------------------------------------------

def test_top_k_lists_k_classes_and_refuses_what_is_no_count(digits, clf):
    probs = clf.predict_proba(digits[0])
    top = clf.top_k(probs, 3)
    assert [len(row) for row in top] == [3] * 40
    assert all(row[0] == (DIGITS[p.argmax()], float(p.max())) for row, p in zip(top, probs))
    assert [len(row) for row in clf.top_k(probs, 50)] == [10] * 40  # every class, where there are fewer
    for k in (-1, 0, 2.5, True):
        with pytest.raises(ParameterError) as e:
            clf.top_k(probs, k)
        one_line(e, "k")


def test_top_k_of_one_row_asks_for_a_batch(digits, clf):
    probs = clf.predict_proba(digits[0][:1])
    with pytest.raises(ParameterError) as e:
        clf.top_k(probs[0], 3)
    assert "probs[None]" in one_line(e, "probs")
    assert len(clf.top_k(probs[0][None], 3)[0]) == 3
    with pytest.raises(ParameterError):
        clf.top_k(probs[:, :9], 3)  # not this classifier's classes


def test_confusion_matrix_counts_and_refuses_class_numbers_out_of_range(digits, clf):
    images, labels = digits
    pred = clf.predict_proba(images).argmax(1)
    matrix = confusion_matrix(pred, labels, 10)
    assert matrix.sum() == 40 and np.trace(matrix) == (pred == labels).sum()
    assert all(matrix[t, p] == ((labels == t) & (pred == p)).sum() for t in range(10) for p in range(10))

    with pytest.raises(ParameterError) as e:  # class 9 among 9 classes: counted as the next row's class 0 before
        confusion_matrix(np.full(40, 9), labels % 8, 9)
    assert "0..8" in one_line(e, "pred")
    with pytest.raises(ParameterError) as e:
        confusion_matrix(pred, labels - 1, 10)
    one_line(e, "true")
    with pytest.raises(ParameterError) as e:
        confusion_matrix(pred[:-1], labels, 10)
    one_line(e, "pred")
    with pytest.raises(ParameterError) as e:
        confusion_matrix(pred.astype(float), labels, 10)
    one_line(e, "pred")


def test_what_numpy_json_and_torch_give_for_sizes_builds_as_before():
    """Sizes as a notebook holds them (floats read from JSON, NumPy arrays, a tensor's count), and
    a one-dimensional signal of 12 channels: all built before the checks came, and still do."""
    import torch

    from neuralab.models import build_model

    model = build_model("cnn", [1.0, 28.0, 28.0], torch.tensor(10))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert build_model("cnn", np.array([1, 28, 28]), np.int64(3))(torch.zeros(1, 1, 28, 28)).shape == (1, 3)
    mlp = build_model("mlp", (1, 28, 28), 10, hidden=np.array([64, 32]))
    assert [m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [64, 32, 10]
    signal = build_model("mlp", (12, 1000, 1), 5)  # 12 leads of 1000 samples: no Keras order to refuse
    assert signal(torch.zeros(1, 12, 1000, 1)).shape == (1, 5)


def test_a_build_too_large_for_memory_blames_no_option():
    """An allocation that fails is the machine's size, not the first option's fault."""
    from neuralab.errors import ParameterError, out_of_memory
    from neuralab.models import build_model

    with pytest.raises(RuntimeError) as e:
        build_model("mlp", (3, 1024, 1024), 10, dropout=0.2, hidden=(2**20,))
    assert out_of_memory(e.value) and not isinstance(e.value, ParameterError)
