"""ONNX export for every source of a classifier neuralab trains: zoo models, Keras code, a
Keras file, PyTorch modules (with BatchNorm and Dropout, and torch.nn.functional only). The
file alone is enough to classify: onnxruntime, given raw Fashion-MNIST pixels prepared as
its metadata says, gives neuralab's probabilities at batches of 1 and 7."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import idx_subset

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in
from neuralab.training import ClassifierConfig, TrainConfig, load_classifier, train_classifier

pytest.importorskip("onnxruntime")

BN_DROPOUT_NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 14 * 14, 32),
                                        nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
"""

FUNCTIONAL_NET = """
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(8, 1, 5, 5) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(8))
        self.w2 = nn.Parameter(torch.randn(10, 8 * 12 * 12) * 0.01)

    def forward(self, x):
        x = F.dropout(F.max_pool2d(F.relu(F.conv2d(x, self.w1, self.b1)), 2), 0.3, self.training)
        return F.linear(x.flatten(1), self.w2)
"""

# Resized to a fixed size, then pooled adaptively: the exporter loses the size the resize gives,
# which ONNX's pools need ("adaptive_avg_pool2d, input size not accessible").
RESIZED_NET = """
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * SIDE * SIDE, 10)

    def forward(self, x):
        x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
        return self.fc(F.POOL(F.relu(self.conv(x)), SIDE).flatten(1))
"""


def resized(pool: str, side: int) -> str:
    return RESIZED_NET.replace("POOL", pool).replace("SIDE", str(side))


# A part scripted with torch.jit.script makes the export script the whole model, whose adaptive
# pool no patch of torch.nn.functional reaches: 28 rows pooled to 5 need windows of 5 and 6 rows.
SCRIPTED_POOLED_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.jit.script(nn.Conv2d(1, 8, 3, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(8 * 5 * 5, 10)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))
"""


# The batch size as a Python number: torch's tracer keeps it as the constant it was (4).
LEN_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.reshape(len(x), -1))
"""


@pytest.fixture(scope="module")
def fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 192, 7)


def _train(model, fashion, out, **options):
    train_classifier(ClassifierConfig(model=model, model_options=options, data="fashion-mnist",
                                      data_dir=str(fashion), train=TrainConfig(epochs=1, batch_size=64, threads=1)),
                     out=out, verbose=False)
    return out


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _keras_file(fashion, tmp_path):
    """The workshop's LeNet-5 built by Keras and saved (softmax output), imported as a run."""
    import runpy
    from pathlib import Path

    keras = _keras()
    keras.utils.set_random_seed(0)
    model = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "keras" / "lenet5.py"))["model"]
    model.save(tmp_path / "lenet5.keras")
    assert main(["import", str(tmp_path / "lenet5.keras"), "--out", str(tmp_path / "run"), "--scale", "1/255"]) == 0
    return tmp_path / "run"


def _code(text):
    def write(fashion, tmp_path):
        (tmp_path / "net.py").write_text(text)
        return _train(f"{tmp_path / 'net.py'}:Net", fashion, tmp_path / "run")
    return write


SOURCES = {
    "cnn": lambda fashion, tmp_path: _train("cnn", fashion, tmp_path / "run"),
    "googlenet-aux": lambda fashion, tmp_path: _train("googlenet", fashion, tmp_path / "run", aux_logits=True),
    "keras-code": lambda fashion, tmp_path: (_keras(), _train("examples/keras/lenet5.py", fashion, tmp_path / "run"))[1],
    "keras-file": _keras_file,
    "torch-bn-dropout": _code(BN_DROPOUT_NET),
    "torch-functional": _code(FUNCTIONAL_NET),
    "torch-resized-avg-pooled": _code(resized("adaptive_avg_pool2d", 8)),
    "torch-resized-max-pooled": _code(resized("adaptive_max_pool2d", 8)),
    "torch-resized-avg-pooled-unevenly": _code(resized("adaptive_avg_pool2d", 5)),  # windows of 3 and 4 rows
    "torch-scripted-part-avg-pooled-unevenly": _code(SCRIPTED_POOLED_NET),
}


@pytest.mark.parametrize("source", SOURCES)
def test_the_onnx_file_alone_gives_neuralabs_probabilities_at_any_batch(source, fashion, tmp_path, monkeypatch,
                                                                        capsys):
    """The file held no class names and no word of the normalisation its input expects: a
    user of model.onnx alone got logits of unknown classes from pixels prepared by guess."""
    import onnxruntime
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # examples/keras/lenet5.py as a user names it
    run = SOURCES[source](fashion, tmp_path)
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 0
    assert f"wrote {run / 'model.onnx'}" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert [i.name for i in session.get_inputs()] == ["images"] and [o.name for o in session.get_outputs()] == ["logits"]
    classes, mean, std = (json.loads(meta[key]) for key in ("classes", "mean", "std"))
    _, h, w = json.loads(meta["input_shape"])  # 32x32 for the Keras file, fitted as the workshop pads
    pixels = read_idx(file_in(fashion, "t10k-images-idx3-ubyte.gz"))[:7, None]  # (7, 1, 28, 28) uint8
    pixels = np.pad(pixels, ((0, 0), (0, 0), ((h - 28) // 2,) * 2, ((w - 28) // 2,) * 2))
    clf = load_classifier(run, trust_code=True)
    for n in (1, 7):
        images = (pixels[:n] / np.float32(255) - np.float32(mean[0])) / np.float32(std[0])
        logits = session.run(None, {"images": images.astype(np.float32)})[0]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        np.testing.assert_allclose(probs, clf.predict_proba(pixels[:n]), atol=1e-5)
    assert classes == clf.classes and [1, h, w] == list(clf.preprocess.input_shape)


def test_a_graph_that_keeps_the_batch_size_is_refused_and_nothing_written(fashion, tmp_path, capfd):
    """`x.reshape(len(x), -1)` traced into a graph for batches of 4 alone: the export said it
    matched PyTorch, and the file failed on the first single picture it was given."""
    (tmp_path / "net.py").write_text(LEN_NET)
    run = _train(f"{tmp_path / 'net.py'}:Net", fashion, tmp_path / "run")
    capfd.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert f"{run}: its ONNX graph takes batches of 4 only, not of 1" in err and "x.flatten(1)" in err
    assert not (run / "model.onnx").exists() and not list(run.glob(".model.onnx*"))


def test_adaptive_max_pooling_to_a_size_that_does_not_divide_is_refused_saying_what_to_pool_to(fashion, tmp_path,
                                                                                                capfd):
    """ONNX has no maximum over windows of two sizes: the refusal was PyTorch's request for a pull request."""
    code = resized("adaptive_max_pool2d", 5)
    (tmp_path / "net.py").write_text(code)
    line = next(i for i, text in enumerate(code.splitlines(), 1) if "F.adaptive_max_pool2d" in text)
    run = _train(f"{tmp_path / 'net.py'}:Net", fashion, tmp_path / "run")
    capfd.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert (f"{run}: its model cannot be exported to ONNX (adaptive max pooling of 16x16 to 5x5 at model.py:{line} has "
            "no ONNX form" in err and "pool to a size that divides 16x16 (such as 4x4), or by average" in err), err
    assert "pull request" not in err and not (run / "model.onnx").exists()


def test_adaptive_max_pooling_of_a_torch_layer_is_refused_naming_the_layer(fashion, tmp_path, capfd):
    """An nn.AdaptiveMaxPool2d inside an nn.Sequential runs no line of the user's: the refusal named
    the line of neuralab's own that called the model."""
    (tmp_path / "net.py").write_text("from torch import nn\n\n\nclass Net(nn.Sequential):\n"
                                     "    def __init__(self):\n        super().__init__(nn.Conv2d(1, 4, 3), nn.ReLU(), "
                                     "nn.AdaptiveMaxPool2d(5), nn.Flatten(), nn.Linear(100, 10))\n")
    run = _train(f"{tmp_path / 'net.py'}:Net", fashion, tmp_path / "run")
    capfd.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert ("adaptive max pooling of 26x26 to 5x5 in layer 2 (AdaptiveMaxPool2d) has no ONNX form" in err
            and "pool to a size that divides 26x26 (such as 2x2)" in err), err
    assert ".py:" not in err and not (run / "model.onnx").exists()


def test_exporting_twice_replaces_the_file_and_a_read_only_folder_is_one_line(fashion, tmp_path, capsys):
    from helpers import read_only

    run = _train("lenet5", fashion, tmp_path / "run")
    for _ in range(2):
        assert main(["export", str(run), "--onnx"]) == 0
    assert "wrote" in capsys.readouterr().out and sorted(p.name for p in run.glob("*model.onnx*")) == ["model.onnx"]
    with read_only(tmp_path / "shelf") as shelf:
        assert main(["export", str(run), "--onnx", "--out", f"{shelf}/"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{shelf / 'model.onnx'}: cannot write" in err
        assert not list(shelf.iterdir())


@pytest.mark.parametrize("given", [{"rtol": -1}, {"rtol": 0}, {"rtol": float("nan")}, {"atol": -1e-4}])
def test_a_tolerance_that_no_graph_meets_is_refused_naming_it_before_the_export(given, fashion, tmp_path):
    import warnings

    from neuralab.errors import ParameterError
    from neuralab.training.export import export_onnx

    run = _train("mlp", fashion, tmp_path / "run")
    (name, value), = given.items()
    with warnings.catch_warnings(), pytest.raises(ParameterError, match=rf"^{name}=.*: must be a number above 0"):
        warnings.simplefilter("ignore", DeprecationWarning)  # atol's: the earlier name of rtol
        export_onnx(run, **given)
    assert not list(run.glob("*.onnx*"))


def test_a_graph_onnxruntime_cannot_load_is_one_line_and_nothing_written(fashion, tmp_path, capfd, monkeypatch):
    """onnxruntime refuses a graph whose operator or type it lacks when it loads it (its
    NotImplemented error, stood in for here): one line, and no model.onnx."""
    onnxruntime = pytest.importorskip("onnxruntime")
    run = _train("mlp", fashion, tmp_path / "run")

    def lacking(*args, **kwargs):
        raise onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented(
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Gemm(13)")

    monkeypatch.setattr(onnxruntime, "InferenceSession", lacking)
    capfd.readouterr()
    assert main(["export", str(run), "--onnx"]) == 2
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and "onnxruntime cannot load its exported graph" in err and "Gemm(13)" in err
    assert not (run / "model.onnx").exists() and not list(run.glob(".model.onnx*"))
