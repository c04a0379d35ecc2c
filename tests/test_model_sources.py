"""The models people write, in neuralab: Keras files and Keras code, PyTorch modules, model
objects (neuralab.training.source), trained, imported, rebuilt from the run directory alone,
and refused in one line when they cannot be used. Real images: a Fashion-MNIST subset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import idx_subset

from neuralab.cli import main
from neuralab.data.idx import read_idx
from neuralab.data.sources import file_in, sha256
from neuralab.errors import NeuralabError, NotAClassifier
from neuralab.training import (
    ClassifierConfig,
    TrainConfig,
    evaluate_run,
    load_classifier,
    train_classifier,
)
from neuralab.training.config import with_compile
from neuralab.training.keras_model import compile_settings
from neuralab.training.source import CodeNotTrusted, resolve

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")  # the test extra installs Keras 3 (on PyTorch)

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "examples" / "keras" / "lenet5.py"
KERAS_DATA = ROOT / "tests" / "data" / "keras"
ONE_EPOCH = TrainConfig(epochs=1, batch_size=64)

TORCH_NET = """
import pathlib
import torch
from torch import nn

pathlib.Path(__file__).with_name("ran.txt").write_text("executed")  # shows when this file runs


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 14 * 14, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.max_pool2d(torch.relu(self.conv(x)), 2), 1))
"""


@pytest.fixture(scope="module")
def fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion-mnist"), 640, 200)


def _config(model, data: Path, **train) -> ClassifierConfig:
    return ClassifierConfig(model=model, data="fashion-mnist", data_dir=str(data),
                            train=TrainConfig(**{"epochs": 1, "batch_size": 64, **train}))


def _test_images(data: Path, n: int = 200) -> np.ndarray:
    return read_idx(file_in(data, "t10k-images-idx3-ubyte.gz"))[:n, None]


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- Keras code: the workshop's listing ---------------------------------------------------------

@pytest.fixture(scope="module")
def keras_run(fashion, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "keras-lenet"
    result = train_classifier(_config(str(LENET), fashion), out=out, verbose=False)
    return out, result


def test_keras_code_trains_and_is_stored_as_a_spec_not_code(keras_run):
    run, result = keras_run
    meta = json.loads((run / "model.json").read_text())
    assert re.fullmatch(r"keras:sequential(_\d+)?", meta["architecture"]) and meta["source"]["type"] == "keras"
    assert meta["source"]["logits"] is True and meta["input_shape"] == [1, 28, 28]  # padded to 32x32 in the net
    assert [e["class"] for e in meta["source"]["spec"]["layers"]][1:3] == ["Conv2D", "AveragePooling2D"]
    assert meta["parameters"] == 61_706  # the slide's LeNet-5: the softmax is left out, not a weight
    assert not (run / "model.py").exists()
    assert result.test["accuracy"] > 0.4  # one epoch on 576 images: far above chance (0.1)


def test_summary_of_keras_code_is_kerass_table(capsys):
    assert main(["summary", str(LENET)]) == 0
    out = capsys.readouterr().out
    assert "Output Shape" in out and "(None, 28, 28, 6)" in out and "Total params: 61,706" in out


def test_keras_run_rebuilds_without_keras_and_without_code(keras_run):
    """Rebuilt in a fresh Python where importing Keras fails: the spec is data."""
    run, result = keras_run
    script = (f"import sys; sys.modules['keras'] = None\n"
              f"from neuralab.training import evaluate_run\n"
              f"print(evaluate_run({str(run)!r})['test_accuracy'])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(result.test["accuracy"], abs=1e-9)


def test_keras_run_predicts_inspects_and_exports(keras_run, fashion, tmp_path, capsys):
    from PIL import Image

    run, _ = keras_run
    picture = tmp_path / "item.png"
    Image.fromarray(_test_images(fashion, 1)[0, 0]).save(picture)
    code, out, _ = _cli(capsys, "predict", run, picture, "--json")
    assert code == 0 and len(json.loads(out)[0]["top"]) == 3
    code, out, _ = _cli(capsys, "inspect", run, picture, "--out", tmp_path / "maps")
    assert code == 0 and "conv2d" in out and (tmp_path / "maps").is_dir()
    code, out, _ = _cli(capsys, "export", run, "--onnx", "--out", tmp_path / "m.onnx")
    assert code == 0 and (tmp_path / "m.onnx").stat().st_size > 200_000  # 61,706 float32 weights


# --- PyTorch code ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_run(fashion, tmp_path_factory):
    folder = tmp_path_factory.mktemp("code")
    (folder / "net.py").write_text(TORCH_NET)
    out = tmp_path_factory.mktemp("runs") / "torch-net"
    result = train_classifier(_config(f"{folder / 'net.py'}:Net", fashion), out=out, verbose=False)
    (out / "ran.txt").unlink(missing_ok=True)
    return out, result


def test_torch_code_is_copied_with_its_hash(torch_run):
    run, result = torch_run
    meta = json.loads((run / "model.json").read_text())
    assert meta["architecture"] == "torch:net.py:Net"
    assert meta["source"] == {"type": "torch", "file": "model.py", "name": "Net", "sha256": sha256(run / "model.py")}
    assert (run / "model.py").read_text() == TORCH_NET
    assert result.test["accuracy"] > 0.4


def test_torch_run_refuses_without_trust_and_runs_nothing(torch_run, capsys):
    run, _ = torch_run
    with pytest.raises(CodeNotTrusted, match="then pass trust_code"):
        load_classifier(run)
    for argv in (["evaluate", run], ["export", run, "--onnx"]):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "pass --trust-code" in err and "model.py" in err
    assert not (run / "ran.txt").exists()  # the copy never ran


def test_resuming_a_run_that_names_code_in_its_config_runs_it_only_with_trust(torch_run, tmp_path, capsys):
    """A run stopped before its first checkpoint trains again from config.json; a run from
    elsewhere (downloaded, or in the web app's runs folder) could name any Python file there."""
    import shutil

    run, _ = torch_run
    copy = tmp_path / "from-elsewhere"
    copy.mkdir()
    shutil.copy(run / "config.json", copy / "config.json")
    payload = tmp_path / "code" / "payload.py"
    payload.parent.mkdir()
    payload.write_text(TORCH_NET)
    record = json.loads((copy / "config.json").read_text())
    record["config"]["model"] = f"{payload}:Net"
    (copy / "config.json").write_text(json.dumps(record))
    code, _, err = _cli(capsys, "train", "--resume", copy)
    assert code == 2 and err.count("\n") == 1 and "payload.py" in err and "pass --trust-code" in err, err
    assert not (payload.parent / "ran.txt").exists()
    code, out, err = _cli(capsys, "train", "--resume", copy, "--trust-code", "--quiet")
    assert code == 0 and "test accuracy" in out, err
    assert (payload.parent / "ran.txt").read_text() == "executed" and (copy / "model.safetensors").is_file()


def test_torch_run_works_with_trust(torch_run, fashion, tmp_path, capsys):
    from PIL import Image

    run, result = torch_run
    code, out, _ = _cli(capsys, "evaluate", run, "--trust-code")
    assert code == 0 and f"{result.test['accuracy'] * 100:.2f}%" in out
    picture = tmp_path / "item.png"
    Image.fromarray(_test_images(fashion, 1)[0, 0]).save(picture)
    assert _cli(capsys, "predict", run, picture, "--trust-code")[0] == 0
    code, out, _ = _cli(capsys, "inspect", run, picture, "--trust-code", "--out", tmp_path / "maps")
    assert code == 0 and "conv (Conv2d)" in out


def test_web_app_loads_torch_runs_only_with_trust(torch_run):
    from neuralab.web.classify import Models

    run, _ = torch_run
    with pytest.raises(NeuralabError, match="start the app with `neuralab serve --trust-code`"):
        Models().get(run)  # the app's user starts a server: Python's `trust_code` is not theirs to pass
    clf = Models(trust_code=True).get(run)
    assert clf.name == "torch:net.py:Net" and clf.predict_proba(np.zeros((1, 1, 28, 28), np.uint8)).shape == (1, 10)


def test_served_torch_runs_classify_only_with_trust(torch_run, fashion):
    """`neuralab serve` (with and without --trust-code): the classifier page's API."""
    import io

    from PIL import Image
    from starlette.testclient import TestClient

    from neuralab.web.app import create_app

    run, _ = torch_run
    picture = io.BytesIO()
    Image.fromarray(_test_images(fashion, 1)[0, 0]).save(picture, format="PNG")
    for trust, status in ((False, 400), (True, 200)):
        with TestClient(create_app(run.parent, trust_code=trust), base_url="http://127.0.0.1") as client:
            r = client.post("/api/classify", params={"run": run.name, "source": "upload"}, content=picture.getvalue(),
                            headers={"content-type": "application/octet-stream"})
        assert r.status_code == status and (trust or "neuralab serve --trust-code" in r.json()["error"]), r.text
    assert r.json()["model"] == "torch:net.py:Net" and len(r.json()["top"]) == 5


def test_a_changed_copy_is_refused_even_with_trust(torch_run, tmp_path):
    import shutil

    run, _ = torch_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "model.py").write_text(TORCH_NET + "\nprint('changed')\n")
    with pytest.raises(NeuralabError, match="changed since the run was made"):
        load_classifier(copy, trust_code=True)


# --- model objects -------------------------------------------------------------------------------

def test_train_classifier_takes_a_torch_module_and_a_keras_model(fashion, tmp_path):
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "mynet.py").write_text(TORCH_NET)
        from mynet import Net  # the user's module, imported as a user does
    finally:
        sys.path.remove(str(tmp_path))
    r = train_classifier(_config(Net(), fashion), out=tmp_path / "obj", verbose=False)
    meta = json.loads((r.run_dir / "model.json").read_text())
    assert meta["architecture"] == "torch:mynet.py:Net" and (r.run_dir / "model.py").read_text() == TORCH_NET
    assert load_classifier(r.run_dir, trust_code=True).predict(_test_images(fashion, 5)).shape == (5,)

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")], name="small")
    r = train_classifier(_config(model, fashion), out=tmp_path / "k", verbose=False)
    meta = json.loads((r.run_dir / "model.json").read_text())
    assert meta["architecture"] == "keras:small" and meta["source"]["type"] == "keras"
    assert evaluate_run(r.run_dir)["test_accuracy"] == pytest.approx(r.test["accuracy"], abs=1e-9)


def test_compile_settings_become_train_config_fields(fashion, tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")], name="linear")
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    settings = compile_settings(model.get_compile_config())
    # Keras's SGD steps at 0.05 throughout: a constant schedule, not neuralab's onecycle around it
    assert settings == {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "loss": "cross_entropy", "schedule": "constant"}
    assert with_compile(TrainConfig(), settings).lr == 0.05          # left at the default: compile()'s
    assert with_compile(TrainConfig(lr=0.01), settings).lr == 0.01   # given: the caller's
    assert with_compile(TrainConfig(schedule="onecycle"), settings).schedule == "onecycle"
    r = train_classifier(_config(model, fashion), out=tmp_path / "sgd", verbose=False)
    record = json.loads((r.run_dir / "config.json").read_text())
    assert (record["config"]["train"]["lr"], record["config"]["train"]["schedule"]) == (0.05, "constant")
    assert [e["lr"] for e in r.history] == [0.05]  # the epoch ends at compile()'s rate, as Keras's would
    assert resolve(model).compile == settings
    for name in ("linear.keras", "linear.h5"):  # read from the file: compile_config, or a legacy training_config
        model.save(tmp_path / name)
        assert resolve(str(tmp_path / name)).compile == settings, name
    with pytest.raises(NeuralabError, match="Adagrad"):
        compile_settings({"optimizer": "Adagrad"})


# --- neuralab import -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_lenet(fashion, tmp_path_factory):
    """The workshop's LeNet-5 fitted briefly by Keras itself on the padded images, saved."""
    import runpy

    keras.utils.set_random_seed(0)
    model = runpy.run_path(str(LENET))["model"]
    x = read_idx(file_in(fashion, "train-images-idx3-ubyte.gz"))
    y = read_idx(file_in(fashion, "train-labels-idx1-ubyte.gz"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None] / np.float32(255), y, epochs=1, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("keras") / "lenet5.keras"
    model.save(path)
    return path, model


def test_import_gives_kerass_probabilities(saved_lenet, fashion, tmp_path, capsys):
    path, model = saved_lenet
    code, out, _ = _cli(capsys, "import", path, "--out", tmp_path / "run", "--data", "fashion-mnist",
                        "--data-dir", fashion, "--scale", "1/255")
    assert code == 0 and "test accuracy" in out
    run = tmp_path / "run"
    record = json.loads((run / "config.json").read_text())
    assert record["imported"]["sha256"] == sha256(path)
    assert record["imported"]["conversion_check"]["checked"] is True
    assert record["imported"]["conversion_check"]["max_abs_difference"] < 1e-5
    assert {"model.json", "model.safetensors", "summary.txt", "results.json"} <= {p.name for p in run.iterdir()}
    assert "Keras's layout" in (run / "summary.txt").read_text()
    images = _test_images(fashion)
    ours = load_classifier(run).predict_proba(images)
    theirs = model.predict(np.pad(images[:, 0], ((0, 0), (2, 2), (2, 2)))[..., None] / np.float32(255), verbose=0)
    assert np.abs(ours - theirs).max() <= 1e-5
    assert evaluate_run(run)["test_accuracy"] == pytest.approx(float((theirs.argmax(1) == read_idx(
        file_in(fashion, "t10k-labels-idx1-ubyte.gz"))[:200]).mean()), abs=1e-9)


def test_fine_tuning_a_keras_file_keeps_the_inputs_it_was_trained_on(saved_lenet, fashion, tmp_path):
    """Its weights were fitted on pixels / 255: training it on neuralab's own normalisation
    would start from another function. At a learning rate too small to move the weights, the
    run predicts what Keras does."""
    path, model = saved_lenet
    run = train_classifier(_config(str(path), fashion, lr=1e-12), out=tmp_path / "tuned", verbose=False).run_dir
    meta = json.loads((run / "model.json").read_text())
    assert meta["preprocess"]["mean"] == [0.0] and meta["preprocess"]["std"] == [pytest.approx(1.0)]
    images = _test_images(fashion, 50)
    theirs = model.predict(np.pad(images[:, 0], ((0, 0), (2, 2), (2, 2)))[..., None] / np.float32(255), verbose=0)
    assert np.abs(load_classifier(run).predict_proba(images) - theirs).max() <= 1e-4


def test_import_of_tf_keras_files_matches_tensorflows_outputs(tmp_path, capsys):
    """A functional graph (BatchNormalization, global pooling) saved by TF-Keras 2, against the
    outputs TensorFlow computed (tests/data/keras/make_references.py)."""
    code, out, _ = _cli(capsys, "import", KERAS_DATA / "graph_tfk2.keras", "--out", tmp_path / "g",
                        "--classes", "no,yes")
    assert code == 0, out
    clf = load_classifier(tmp_path / "g")
    ref = np.load(KERAS_DATA / "references.npz")
    with torch.inference_mode():  # the model ends in a plain Dense: its outputs are the classes' scores
        y = clf.model(torch.from_numpy(ref["graph_tfk2__x"]).permute(0, 3, 1, 2)).numpy()
    assert clf.classes == ["no", "yes"] and np.abs(y - ref["graph_tfk2__y"]).max() < 1e-5


@pytest.mark.parametrize("source, message", [
    (KERAS_DATA / "weights_only_tfk2.h5", "the architecture is missing"),
    (KERAS_DATA / "recurrent_tfk2.h5", "neuralab forecast --model"),
])
def test_import_refuses_in_one_line(source, message, tmp_path, capsys):
    code, _, err = _cli(capsys, "import", source, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_a_sequence_model_is_refused_in_the_librarys_words_and_the_cli_adds_the_command(tmp_path, capsys):
    """The library says what the model is (a forecaster) without naming a command or a flag;
    the command line adds the command that trains it."""
    from neuralab.training.keras_import import import_keras

    with pytest.raises(NotAClassifier) as refused:
        import_keras(KERAS_DATA / "recurrent_tfk2.h5", tmp_path / "run")
    assert "forecaster" in str(refused.value) and "neuralab " not in str(refused.value) and "--" not in str(refused.value)
    code, _, err = _cli(capsys, "import", KERAS_DATA / "recurrent_tfk2.h5", "--out", tmp_path / "run")
    assert code == 2 and err.endswith("; train it with `neuralab forecast --model`\n")


def test_import_refuses_damaged_files_and_lambdas(saved_lenet, tmp_path, capsys):
    path, _ = saved_lenet
    data = path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    code, _, err = _cli(capsys, "import", tmp_path / "cut.keras", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "damaged or truncated" in err
    h5 = (KERAS_DATA / "same_cnn_8_tfk2.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(h5[: len(h5) // 2])
    code, _, err = _cli(capsys, "import", tmp_path / "cut.h5", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "cut.h5" in err and not (tmp_path / "run").exists()
    marker = tmp_path / "lambda-ran.txt"
    where = str(marker)  # Keras stores the function's closure: a string it can serialise
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Lambda(lambda x: (open(where, "w").close(), x)[1]),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # Keras ran the function while building the model; importing must not
    code, _, err = _cli(capsys, "import", tmp_path / "lambda.keras", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "Lambda" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


# --- bad model files ------------------------------------------------------------------------------

BAD_FILES = {
    "syntax": ("import torch\n\nclass Net(torch.nn.Module)\n    pass\n", "", "syntax.py:3: syntax error"),
    "empty": ("import torch\nWIDTH = 3\n", "", "defines no model"),
    "missing": (TORCH_NET, ":Nett", "no 'Nett' in the file (it defines: Net)"),
    "unsupported": ("import keras\nmodel = keras.Sequential([keras.Input((28, 28, 1)),"
                    " keras.layers.Conv2DTranspose(4, 3), keras.layers.Flatten(), keras.layers.Dense(10)])\n", "",
                    "(Conv2DTranspose): it is not a layer neuralab converts; supported layers: "),
    "lambda": ("import keras\nmodel = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x),"
               " keras.layers.Flatten(), keras.layers.Dense(10)])\n", "", "Lambda"),
    "keras_size": ("import keras\nmodel = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(),"
                   " keras.layers.Dense(10, activation='softmax')])\n", "",
                   "takes images of 64x64x1 (height x width x channels), the data has 28x28x1"),
    "torch_size": ("import torch\nmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))\n", "",
                   "fails on the data's inputs (N, 1, 28, 28)"),
    "torch_classes": ("import torch\nmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))\n",
                      "", "gives (N, 3), the data needs (N, 10) (10 classes); make its last layer output 10 "
                          "(nn.Linear(..., 10))"),
    "error": ("import torch\n\n\nraise RuntimeError('no GPU here')\n", "", "error.py:4: RuntimeError: no GPU here"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_model_files_are_one_line_and_write_nothing(case, fashion, tmp_path, capsys):
    code_text, suffix, message = BAD_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(textwrap.dedent(code_text))
    code, _, err = _cli(capsys, "train", "--model", f"{path}{suffix}", "--data", "fashion-mnist", "--data-dir",
                        fashion, "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_weights_only_keras_file_as_a_model(fashion, tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "--model", KERAS_DATA / "weights_only_tfk2.h5", "--data", "fashion-mnist",
                        "--data-dir", fashion, "--out", tmp_path / "run")
    assert code == 2 and "the architecture is missing" in err and "model.save('model.keras')" in err


# --- forecasting -----------------------------------------------------------------------------------

TORCH_FORECASTER = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])
"""


def test_forecast_with_a_torch_module_and_trust(tmp_path, capsys):
    (tmp_path / "small.py").write_text(TORCH_FORECASTER)
    code, out, err = _cli(capsys, "forecast", "--model", f"{tmp_path / 'small.py'}:Small", "--data", "seattle-weather",
                          "--target", "temp_max", "--lookback", "14", "--epochs", "1", "--backtest-folds", "1",
                          "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["source"]["type"] == "torch" and (tmp_path / "run" / "model.py").read_text() == TORCH_FORECASTER
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "torch:small.py:Small" in results["test"]
    csv = tmp_path / "series.csv"
    from neuralab.data.series import load_series

    s = load_series("seattle-weather")
    csv.write_text("date,temp_max\n" + "\n".join(f"{t},{v}" for t, v in zip(s.times[-40:], s.values[-40:, 0])))
    code, _, err = _cli(capsys, "forecast", "predict", tmp_path / "run", "--csv", csv)
    assert code == 2 and "--trust-code" in err
    code, out, _ = _cli(capsys, "forecast", "predict", tmp_path / "run", "--csv", csv, "--trust-code")
    assert code == 0 and "temp_max" in out


def test_forecast_with_keras_code_checks_the_window_shape(tmp_path, capsys):
    (tmp_path / "lstm.py").write_text("import keras\nmodel = keras.Sequential([keras.Input((14, 1)), "
                                      "keras.layers.LSTM(4), keras.layers.Dense(1)])\n")
    base = ["forecast", "--model", tmp_path / "lstm.py", "--data", "seattle-weather", "--target", "temp_max",
            "--epochs", "1", "--backtest-folds", "1", "--quiet"]
    code, _, err = _cli(capsys, *base, "--lookback", "20", "--out", tmp_path / "wrong")
    assert code == 2 and "(None, 14, 1)" in err and "(None, 20, 1)" in err and not (tmp_path / "wrong").exists()
    code, _, err = _cli(capsys, *base, "--lookback", "14", "--out", tmp_path / "run")
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["source"]["type"] == "keras" and not (tmp_path / "run" / "model.py").exists()
    from neuralab.forecasting import load_forecaster

    assert load_forecaster(tmp_path / "run").network.net[0].rnn.hidden_size == 4  # rebuilt from the spec


# --- plain PyTorch modules on neuralab's trainer: tied weights, (N, C, H, W) input, training mode ----

def _shapes_folder(root: Path, color: str = "L", per_class: int = 40) -> Path:
    """Three classes of 16x16 pictures (a square, a left half, stripes over noise), written with Pillow."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["square", "half", "stripes"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
            a[[(slice(4, 12), slice(4, 12)), (slice(None), slice(0, 8)), (slice(None, None, 3), slice(None))][c]] += 150
            Image.fromarray(a).convert(color).save(root / name / f"{i}.png")
    return root


TIED_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(256, 32)
        self.mid = nn.Linear(32, 32)
        self.enc = nn.Linear(32, 32)
        self.enc.weight = self.mid.weight  # tied
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        h = torch.relu(self.mid(torch.relu(self.a(x.flatten(1)))))
        return self.out(torch.relu(self.enc(h)))
"""


def test_tied_weights_are_stored_once_and_tied_again_when_loaded(tmp_path, capsys):
    from safetensors import safe_open

    data = _shapes_folder(tmp_path / "pictures")
    (tmp_path / "tied.py").write_text(TIED_NET)
    code, _, err = _cli(capsys, "train", "--model", tmp_path / "tied.py", "--data", data, "--epochs", "1",
                        "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    for name in ("model.safetensors", "checkpoints/last.safetensors"):
        with safe_open(str(tmp_path / "run" / name), framework="pt") as f:
            stored = set(f.keys())
        assert not {"enc.weight", "model.enc.weight"} & stored and {"mid.weight", "model.mid.weight"} & stored
    model = load_classifier(tmp_path / "run", trust_code=True).model
    assert model.enc.weight is model.mid.weight
    from neuralab.training.checkpoint import load_tensors

    weights, _ = load_tensors(tmp_path / "run" / "model.safetensors")
    assert weights["enc.weight"] is weights["mid.weight"] and torch.equal(model.mid.weight, weights["mid.weight"])


@pytest.mark.parametrize("color", ["L", "RGB"])
def test_a_view_after_a_convolution_trains_and_predicts_on_neuralabs_images(color, tmp_path, capsys):
    """Plain PyTorch code flattens with x.view, which needs (N, C, H, W) strides: neuralab's
    images are read as (N, H, W, C), and the zoo trains channels-last, but a user's module
    gets the layout PyTorch gives."""
    data = _shapes_folder(tmp_path / "pictures", color)
    channels = 1 if color == "L" else 3
    (tmp_path / "viewnet.py").write_text(textwrap.dedent(f"""
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d({channels}, 4, 3, padding=1)
                self.fc = nn.Linear(4 * 16 * 16, 3)

            def forward(self, x):
                x = self.conv(x)
                return self.fc(x.view(x.size(0), -1))  # the idiom of the PyTorch examples
    """))
    code, _, err = _cli(capsys, "train", "--model", tmp_path / "viewnet.py", "--data", data, "--epochs", "2",
                        "--color", "grayscale" if color == "L" else "rgb", "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    code, out, err = _cli(capsys, "evaluate", tmp_path / "run", "--trust-code")
    assert code == 0 and "test accuracy" in out, err


def test_a_model_that_fails_only_when_training_is_refused_in_one_line_and_leaves_no_run(tmp_path, capsys):
    data = _shapes_folder(tmp_path / "pictures")
    (tmp_path / "aux.py").write_text(textwrap.dedent("""
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 3)
                self.aux = nn.Linear(256, 3)

            def forward(self, x):
                f = x.flatten(1)
                return (self.fc(f), self.aux(f)) if self.training else self.fc(f)
    """))
    code, _, err = _cli(capsys, "train", "--model", tmp_path / "aux.py", "--data", data, "--epochs", "1",
                        "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "torch:aux.py:Net" in err and "in training mode" in err and "returns a tuple" in err
    assert "a tuple of (N, 3), (N, 3); the data needs one tensor (N, 3) (3 classes): return that alone from " \
           "forward when training too" in err, err
    assert not (tmp_path / "run").exists()


def test_the_interrupted_hint_of_a_run_of_pytorch_code_resumes_it_with_trust(tmp_path, capsys, cut_in_epoch_2):
    data = _shapes_folder(tmp_path / "pictures")
    (tmp_path / "net.py").write_text("import torch\n\n"
                                     "model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))\n")
    whole_again = cut_in_epoch_2()
    code, _, err = _cli(capsys, "train", "--model", tmp_path / "net.py", "--data", data, "--epochs", "2",
                        "--out", tmp_path / "run", "--quiet")
    whole_again()
    hint = f"`neuralab train --resume {tmp_path / 'run'} --trust-code` continues it"
    assert code == 130 and hint in err, err
    code, out, err = _cli(capsys, *hint.split("`")[1].split()[1:], "--quiet")
    assert code == 0 and "test accuracy" in out, err
