"""neuralab.training.RunLogger: Keras's own fit of the workshop's LeNet-5 on real Fashion-MNIST
writes a neuralab run that the tools list, whose metrics are Keras's and whose weights are
the fitted model's."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

from helpers import idx_subset  # noqa: E402

from neuralab import run_list, runs  # noqa: E402
from neuralab.cli import main  # noqa: E402
from neuralab.data.idx import read_idx  # noqa: E402
from neuralab.errors import NeuralabError, ParameterError  # noqa: E402
from neuralab.keras import build  # noqa: E402
from neuralab.training import RunLogger  # noqa: E402
from neuralab.training.checkpoint import load_weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "keras"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def lenet5():
    spec = importlib.util.spec_from_file_location("keras_example_lenet5_fit", EXAMPLES / "lenet5.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model


def images(folder: Path, split: str):
    """Fashion-MNIST as the LeNet-5 listing takes it: 28x28 padded to 32x32 (as LeCun padded
    MNIST), channels last, scaled to [0, 1]; and the labels."""
    x = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(folder / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32) / 255
    return x, y


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, fashion_mnist):
    """LeNet-5 fitted by Keras for one epoch on 2,000 real Fashion-MNIST images, with RunLogger."""
    tmp = tmp_path_factory.mktemp("runlogger")
    folder = idx_subset(fashion_mnist, tmp / "fashion", 2000, 500)
    (x, y), (xt, yt) = images(folder, "train"), images(folder, "t10k")
    keras.utils.set_random_seed(0)
    model = lenet5()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out = tmp / "runs" / "lenet5-keras"
    logger = RunLogger(out=out, classes=CLASSES, test=(xt, yt), data="fashion-mnist (2,000)", seed=0)
    history = model.fit(x, y, epochs=1, batch_size=64, validation_split=0.1, verbose=0, callbacks=[logger])
    return model, history.history, out, xt, yt


def test_the_run_is_listed_as_finished(fitted, capsys):
    model, history, out, _, _ = fitted
    assert main(["runs", str(out.parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [r for r in rows if r["id"] == out.name]
    assert row["kind"] == "image-classifier" and row["status"] == "finished" and row["epochs"] == 1
    assert row["model"] == "keras:" + model.name and row["data"] == "fashion-mnist (2,000)"
    assert 0.5 < row["metric"]["value"] <= 1 and row["metric"]["name"] == "test accuracy"  # 10 classes: chance is 0.1
    assert not (out / runs.LOCK).exists()


def test_metrics_are_keras_s_history_under_neuralab_s_names(fitted):
    _, history, out, _, _ = fitted
    (record,) = runs.Run(out).metrics()
    assert record["epoch"] == 1 and record["seconds"] > 0 and record["lr"] == pytest.approx(1e-3)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert record[key] == history[key][0], key  # the same float: JSON keeps all its digits


def test_config_records_seed_versions_device_and_compile(fitted):
    _, _, out, _, _ = fitted
    record = runs.Run(out).record
    assert record["kind"] == "image-classifier" and record["seed"] == 0
    env = record["environment"]
    assert env["keras"] == keras.__version__ and env["keras_backend"] == "torch" and env["device"] == "cpu"
    assert env["torch"] == torch.__version__
    compiled = record["config"]["compile"]
    assert compiled["loss"] == "sparse_categorical_crossentropy" and compiled["metrics"] == ["accuracy"]
    assert compiled["optimizer"]["config"]["learning_rate"] == pytest.approx(1e-3)
    assert record["config"]["fit"]["epochs"] == 1 and record["data"]["classes"] == CLASSES
    summary = (out / runs.SUMMARY).read_text()
    assert "(None, 28, 28, 6)" in summary and "Total params: 61,706" in summary


def test_weights_rebuilt_from_the_run_reproduce_keras_s_predict(fitted):
    model, _, out, xt, _ = fitted
    meta = json.loads((out / runs.MODEL).read_text())
    assert meta["architecture"] == "keras:" + model.name and meta["source"]["type"] == "keras"
    assert meta["input_shape"] == [1, 32, 32] and meta["classes"] == CLASSES and meta["parameters"] == 61_706
    # uint8 pixels / 255 - mean) / std must be what the model was fitted on: pixels * (1/255)
    assert meta["preprocess"] == {"mean": [0.0], "std": [1.0]}
    net = build(meta["source"]["spec"], logits=meta["source"]["logits"])
    load_weights(out / runs.WEIGHTS, net)
    with torch.inference_mode():
        got = torch.softmax(net.eval()(torch.from_numpy(xt.transpose(0, 3, 1, 2).copy())), dim=1).numpy()
    want = model.predict(xt, verbose=0)
    assert np.abs(got - want).max() <= 1e-5


def test_results_and_report_hold_the_test_figures(fitted):
    model, _, out, xt, yt = fitted
    results = runs.Run(out).results()
    want = model.evaluate(xt, yt, verbose=0, return_dict=True)
    assert results["test_accuracy"] == pytest.approx(want["accuracy"], abs=1 / len(yt))
    assert results["test_loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert np.sum(results["confusion_matrix"]) == len(yt) and results["epochs_run"] == 1
    report = (out / runs.REPORT).read_text()
    assert "Confusion matrix" in report and f"{results['test_accuracy'] * 100:.2f}%" in report


def test_without_a_test_set_the_run_still_finishes(tmp_path, fashion_mnist):
    folder = idx_subset(fashion_mnist, tmp_path / "fashion", 300, 10)
    x, y = images(folder, "train")
    model = lenet5()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    seen = []

    class Probe(keras.callbacks.Callback):  # what `neuralab runs` sees while Keras is still fitting
        def on_epoch_end(self, epoch, logs=None):
            row = run_list.describe(runs.Run(tmp_path / "run"))
            seen.append((row.status, row.epochs, row.metric["name"]))

    model.fit(x, y, epochs=2, batch_size=100, verbose=0, callbacks=[RunLogger(out=tmp_path / "run"), Probe()])
    assert seen == [("running", 1, "train accuracy"), ("running", 2, "train accuracy")]  # live, epoch by epoch
    run = runs.Run(tmp_path / "run")
    assert run.status() is runs.Status.FINISHED
    assert [r["epoch"] for r in run.metrics()] == [1, 2] and "accuracy" in run.metrics()[0]
    assert "no test set given" in (tmp_path / "run" / runs.REPORT).read_text()
    assert run.read(runs.MODEL)["classes"] == [str(i) for i in range(10)]


def test_a_model_neuralab_cannot_record_is_refused_before_any_file(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.zeros((8, 4, 4, 1), np.float32)
    with pytest.raises(NeuralabError, match="RunLogger records image classifiers"):
        model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    with pytest.raises(ParameterError, match="classes"):
        lenet = lenet5()
        lenet.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        lenet.fit(np.zeros((4, 32, 32, 1), np.float32), np.zeros(4), epochs=1, verbose=0,
                  callbacks=[RunLogger(out=tmp_path / "run", classes=["a", "b"])])
    with pytest.raises(ParameterError, match="scale"):
        RunLogger(scale=0)


def test_keras_s_mnist_mlp_on_flattened_images_is_told_how_to_take_images(tmp_path):
    """Keras's MNIST MLP, Dense(512, input_shape=(784,)) on x.reshape(-1, 784), was refused with
    its shapes and no way on; as `neuralab import` of the same model, it is told the input to give it."""
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    with pytest.raises(NeuralabError, match=r"keras.Input\(\(28, 28, 1\)\) and Flatten\(\) before its first Dense"):
        model.fit(x, np.arange(8) % 10, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_dense_forecaster_on_windows_as_vectors_is_told_to_take_sequences_not_images(tmp_path):
    """A Dense forecaster on 32-day windows of Seattle's temperatures, keras.Input((32,)) and mse,
    was told to start with keras.Input((8, 8, 1)) as if it were images flattened by hand; a model
    giving no class scores is told the sequence input, and the model so changed is recorded."""
    from neuralab.data.series import load_series

    series = load_series("seattle-weather", target="temp_max")
    temps = series.frame[series.target].to_numpy(np.float32)[:200]
    temps = (temps - temps.mean()) / temps.std()
    x, y = np.stack([temps[i:i + 32] for i in range(160)]), temps[32:192, None]
    keras.utils.set_random_seed(0)
    dense = [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    model = keras.Sequential([keras.Input((32,)), *dense])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    with pytest.raises(NeuralabError, match=r"sequence model \(T, F\), start it with keras.Input\(\(32, 1\)\) and "
                                            r"Flatten\(\) before its first Dense") as refused:
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run")])
    assert "images" not in str(refused.value).split("; ", 1)[1] and not (tmp_path / "run").exists()
    model = keras.Sequential([keras.Input((32, 1)), keras.layers.Flatten(), *dense])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x[..., None], y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "run")])
    assert runs.Run(tmp_path / "run").kind is runs.Kind.FORECASTER

def test_the_stacked_lstm_fitted_on_seattle_weather_writes_a_forecaster_run(tmp_path, capsys):
    """A sequence model becomes a forecaster run: the training, the summary in Keras's count and
    the converted model; results.json says what a forecaster run made by Keras lacks."""
    from neuralab.data.series import load_series

    spec = importlib.util.spec_from_file_location("keras_example_lstm_fit", EXAMPLES / "stacked_lstm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.model
    series = load_series("seattle-weather", target="temp_max")
    temps = series.frame[series.target].to_numpy(np.float32)[:400]
    temps = (temps - temps.mean()) / temps.std()
    x = np.stack([temps[i:i + 60] for i in range(300)])[..., None]
    y = temps[60:360, None]
    model.compile(optimizer="adam", loss="mse", metrics=["mean_absolute_error"])
    history = model.fit(x, y, epochs=1, batch_size=50, verbose=0,
                        callbacks=[RunLogger(out=tmp_path / "lstm", data="seattle-weather temp_max")]).history
    run = runs.Run(tmp_path / "lstm")
    assert run.kind is runs.Kind.FORECASTER and run.status() is runs.Status.FINISHED
    (record,) = run.metrics()
    assert record["loss"] == history["loss"][0] and record["mae"] == history["mean_absolute_error"][0]
    assert "series, target, scaling and window" in run.results()["missing"]
    assert "Total params: 116,033" in (run / runs.SUMMARY).read_text()
    meta = run.read(runs.MODEL)
    net = build(meta["source"]["spec"])
    load_weights(run / runs.WEIGHTS, net)
    with torch.inference_mode():
        got = net.eval()(torch.from_numpy(x[:16])).numpy()
    assert np.abs(got - model.predict(x[:16], verbose=0)).max() <= 1e-5
    # what it lacks is said in one line wherever it is asked for, never called damaged
    csv = tmp_path / "recent.csv"
    series.frame.head(100).to_csv(csv)
    for argv in (["forecast", "predict", str(run.path), "--csv", str(csv)], ["report", str(run.path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Keras's fit wrote this run" in err and "damaged" not in err, err
    assert main(["evaluate", str(run.path)]) == 2  # pointed to what shows it, not to `forecast predict`
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Keras's fit wrote (RunLogger)" in err and "forecast predict" not in err, err


def test_the_run_is_evaluated_again_on_the_dataset_it_names(fitted, tmp_path, fashion_mnist, capsys):
    """RunLogger's `data` naming a dataset lets `neuralab evaluate` read it again (here to find
    that the listing's LeNet-5 takes the 32x32 images Keras was given, padded by hand); a run
    fitted on arrays it cannot name says so in one line."""
    import shutil

    _, _, out, _, _ = fitted
    named = tmp_path / "named"
    shutil.copytree(out, named)
    record = json.loads((named / "config.json").read_text())
    record["config"]["data"] = "fashion-mnist"
    (named / "config.json").write_text(json.dumps(record))
    assert main(["evaluate", str(named), "--data-dir", str(fashion_mnist)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fashion-mnist: images of 1x28x28" in err and "takes 1x32x32" in err, err
    assert main(["evaluate", str(out)]) == 2  # "fashion-mnist (2,000)": arrays given to fit
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is neither a dataset's name" in err and "damaged" not in err, err
    record["config"]["data"] = None  # RunLogger given no data: not the current folder
    (named / "config.json").write_text(json.dumps(record))
    assert main(["evaluate", str(named)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without naming its data" in err, err
    assert main(["train", "--resume", str(out)]) == 2
    assert "continue the training in Keras" in capsys.readouterr().err


def test_the_report_of_a_run_given_no_data_is_written_again_from_its_test_figures(fitted, tmp_path, capsys):
    """Route (a) names no `data`: `neuralab report` refused the run, pointing to a dataset the
    32x32 model cannot take; it writes the report from results.json, saying why no mistakes are
    shown, and evaluate's refusal points to what does test the model."""
    import shutil

    from neuralab.training import load_classifier

    _, _, out, xt, yt = fitted
    run = tmp_path / "no-data"
    shutil.copytree(out, run)
    record = json.loads((run / "config.json").read_text())
    record["config"]["data"] = None
    (run / "config.json").write_text(json.dumps(record))
    (run / runs.REPORT).unlink()
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    results = json.loads((run / runs.RESULTS).read_text())
    report = (run / runs.REPORT).read_text()
    assert f"{results['test_accuracy'] * 100:.2f}%</b> on {len(yt)} test images" in report
    assert "Confusion matrix" in report and "Not shown: the run does not keep the test pictures" in report
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.json keeps" in err and "load_classifier(run).predict_proba" in err, err
    pictures = np.rint(xt * 255).astype(np.uint8).transpose(0, 3, 1, 2)  # the advice, followed
    accuracy = (load_classifier(run).predict_proba(pictures).argmax(1) == yt).mean()
    assert accuracy == pytest.approx(results["test_accuracy"])


def test_neuralab_serve_lists_the_run_and_serves_its_report(fitted):
    """Route (a)'s last step: `neuralab serve` on the folder shows the run, its summary and report."""
    from starlette.testclient import TestClient

    from neuralab.web.app import create_app

    model, _, out, _, _ = fitted
    with TestClient(create_app(out.parent), base_url="http://127.0.0.1") as client:
        listed = client.get("/api/runs").json()["runs"]
        (row,) = [r for r in listed if r["id"] == out.name]
        assert row["finished"] and row["model"] == "keras:" + model.name
        details = client.get("/api/run", params={"run": out.name}).json()
        assert "Total params: 61,706" in details["summary"] and details["classes"] == CLASSES
        report = client.get("/api/run/file", params={"run": out.name, "name": "report.html"})
        assert report.status_code == 200 and "Confusion matrix" in report.text


def test_runlogger_brings_keras_up_on_pytorch_whatever_keras_json_says(tmp_path):
    """Keras's own default backend is TensorFlow (and a keras.json may name it): importing
    RunLogger without KERAS_BACKEND set still gives Keras on PyTorch and never imports TensorFlow."""
    import subprocess
    import sys

    (tmp_path / "keras.json").write_text(json.dumps({"backend": "tensorflow", "floatx": "float32",
                                                     "epsilon": 1e-07, "image_data_format": "channels_last"}))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"KERAS_HOME": str(tmp_path)}
    code = ("import sys; from neuralab.training import RunLogger; import keras; "
            "print(keras.backend.backend(), 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["torch", "False"]


# --- a run continued, and the data it records ---------------------------------------------------

def small_classifier():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def picture_folder(root: Path, per_class: int = 20) -> Path:
    """Two classes of 8x8 grey PNGs ("cat" dark, "dog" light): an image folder neuralab reads."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, (name, base) in enumerate((("cat", 40), ("dog", 200))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(base + rng.integers(-30, 30, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")
    return root


def test_a_second_fit_appends_its_epochs_to_the_same_run(tmp_path):
    """As Keras's CSVLogger(append=True): fit again with the same RunLogger, or with a new one on
    the same out when fit continues from initial_epoch, and the run goes on."""
    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32), np.arange(32) % 2
    model, out = small_classifier(), tmp_path / "run"
    logger = RunLogger(out=out, classes=["cat", "dog"], seed=0)
    first = model.fit(x, y, epochs=1, verbose=0, callbacks=[logger]).history
    second = model.fit(x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[logger]).history
    assert runs.Run(out).record["config"]["data"] is None
    folder = tmp_path / "pictures"  # named only now, as `neuralab evaluate` asks of a run without data
    folder.mkdir()
    third = model.fit(x, y, initial_epoch=2, epochs=4, verbose=0,
                      callbacks=[RunLogger(out=out, data=folder)]).history
    run = runs.Run(out)
    assert run.record["config"]["data"] == str(folder) and run.record["data"]["name"] == str(folder)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and run.status() is runs.Status.FINISHED
    assert [r["loss"] for r in rows] == first["loss"] + second["loss"] + third["loss"]
    assert rows[3]["elapsed"] > rows[0]["elapsed"]  # the run's training time goes on across the fits
    results = run.results()
    assert results["epochs_run"] == 4 and results["best_epoch"] == 4
    assert run.read(runs.MODEL)["classes"] == ["cat", "dog"]  # the new logger kept the run's classes
    assert run.record["config"]["fit"]["epochs"] == 4
    meta = run.read(runs.MODEL)
    net = build(meta["source"]["spec"])
    load_weights(out / runs.WEIGHTS, net)
    with torch.inference_mode():
        got = net.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(got - model.predict(x, verbose=0)).max() <= 1e-5  # the weights are the last epoch's


def test_a_fit_that_does_not_follow_the_run_is_refused_and_leaves_it_as_it_was(tmp_path):
    x, y = np.zeros((8, 8, 8, 1), np.float32), np.arange(8) % 2
    model, out = small_classifier(), tmp_path / "run"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[RunLogger(out=out)])
    before = (out / runs.METRICS).read_bytes()
    with pytest.raises(ParameterError, match=r"already holds a run of Keras's fit \(2 epochs\).*initial_epoch=2"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=out)])
    with pytest.raises(NeuralabError, match="holds epochs 1 to 2, and this fit starts at epoch 4"):
        model.fit(x, y, initial_epoch=3, epochs=4, verbose=0, callbacks=[RunLogger(out=out)])
    with pytest.raises(ParameterError, match="classes"):
        model.fit(x, y, initial_epoch=2, epochs=3, verbose=0, callbacks=[RunLogger(out=out, classes=["a", "b"])])
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4),
                              keras.layers.Dense(2, activation="softmax")])
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ParameterError, match="another model"):
        other.fit(x, y, initial_epoch=2, epochs=3, verbose=0, callbacks=[RunLogger(out=out)])
    run = runs.Run(out)
    assert (out / runs.METRICS).read_bytes() == before and run.status() is runs.Status.FINISHED
    assert run.owner() is None  # no refusal leaves the run locked


def test_an_image_folder_is_recorded_whole_and_no_data_as_null(tmp_path, monkeypatch, capsys):
    """`data` naming a folder relative to the working directory is recorded as its absolute path,
    so that `neuralab evaluate` reads it from anywhere; no data is null, a dataset's name stays."""
    picture_folder(tmp_path / "work" / "pets")
    x, y = np.zeros((4, 8, 8, 1), np.float32), np.arange(4) % 2
    monkeypatch.chdir(tmp_path / "work")
    model = small_classifier()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "pets-run", classes=["cat", "dog"],
                                                              data="pets")])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "none")])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "named", data="fashion-mnist")])
    record = runs.Run(tmp_path / "pets-run").record
    assert record["config"]["data"] == record["data"]["name"] == str((tmp_path / "work" / "pets").resolve())
    none = runs.Run(tmp_path / "none").record
    assert none["config"]["data"] is None and none["data"]["name"] is None
    assert runs.Run(tmp_path / "named").record["config"]["data"] == "fashion-mnist"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "pets-run")]) == 0, capsys.readouterr().err
    assert "accuracy" in capsys.readouterr().out


def test_two_fits_in_the_same_second_without_out_get_a_run_each(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURALAB_RUNS", str(tmp_path))
    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20261206-010820")  # a notebook's two cells at once
    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32), np.arange(32) % 2
    model = small_classifier()
    loggers = [RunLogger(classes=["cat", "dog"], seed=0), RunLogger(classes=["cat", "dog"], seed=0)]
    for logger in loggers:
        model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
    first, second = (tmp_path / f"keras-{model.name}-20261206-010820{n}" for n in ("", "-2"))
    assert [logger.run.path for logger in loggers] == [first, second]
    assert runs.Run(first).status() is runs.Status.FINISHED and runs.Run(second).status() is runs.Status.FINISHED


def test_a_named_dataset_gives_its_class_names(tmp_path, fashion_mnist):
    """RunLogger(data="fashion-mnist") without `classes` labelled the clothes "0".."9", so the
    web app's classifier showed digits for them; the dataset's names are taken where it has
    the model's number of classes."""
    folder = idx_subset(fashion_mnist, tmp_path / "fashion", 200, 10)
    x, y = images(folder, "train")
    model = lenet5()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=100, verbose=0,
              callbacks=[RunLogger(out=tmp_path / "run", data="fashion-mnist")])
    classes = runs.Run(tmp_path / "run").read(runs.MODEL)["classes"]
    assert classes[:2] == ["T-shirt/top", "Trouser"] and len(classes) == 10


def test_a_named_dataset_is_recorded_with_its_digest_so_other_images_there_are_refused(tmp_path, fashion_mnist,
                                                                                       capsys):
    """RunLogger(data="fashion-mnist") recorded the name alone, so `neuralab evaluate` scored the
    run on whatever files lay there later; the run records the dataset's digest, as a trained or
    imported run does, and other images of the same counts are refused in one line."""
    from neuralab.data.idx import write_idx
    from neuralab.data.sources import cache_dir, file_in

    cached = idx_subset(fashion_mnist, cache_dir() / "fashion-mnist", 300, 100)  # where evaluate finds it
    x = read_idx(cached / "train-images-idx3-ubyte.gz")[..., None].astype(np.float32) / 255
    y = read_idx(cached / "train-labels-idx1-ubyte.gz").astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1), name="digest_in"), keras.layers.Flatten(name="digest_flat"),
                              keras.layers.Dense(10, activation="softmax", name="digest_out")], name="digest")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    run = tmp_path / "run"
    model.fit(x, y, epochs=1, batch_size=100, verbose=0, callbacks=[RunLogger(out=run, data="fashion-mnist")])
    recorded = runs.Run(run).record["data"]
    assert set(recorded["sha256"]) == {"train", "val", "test"}, recorded
    assert main(["evaluate", str(run)]) == 0, capsys.readouterr().err
    capsys.readouterr()

    later = read_idx(file_in(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[100:200]  # other clothes, as many
    write_idx(cached / "t10k-images-idx3-ubyte.gz", np.ascontiguousarray(later))
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the images the run was trained on" in err and "other test images" in err, err


def test_the_report_of_an_unfinished_keras_fit_run_says_to_go_on_in_keras_not_to_resume(fitted, tmp_path, capsys):
    """`neuralab report` told such a run to "resume it instead", which `train --resume` refuses."""
    import shutil

    _, _, out, _, _ = fitted
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    (cut / runs.RESULTS).unlink()  # stopped before its test pass
    assert main(["report", str(cut)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "continue the training in Keras" in err and "resume" not in err, err


def test_the_report_written_again_of_a_run_fitted_without_a_test_set_is_of_the_one_it_reads_again(
        tmp_path, fashion_mnist, capsys):
    """`neuralab report` of a run that Keras's fit gave no test set stopped on a KeyError: its
    figures are of the test set the run's `data` names; a run given `test=` keeps fit's."""
    from neuralab.data.sources import cache_dir
    from neuralab.training.evaluate import evaluate_run

    cached = idx_subset(fashion_mnist, cache_dir() / "fashion-mnist", 300, 60)
    x = read_idx(cached / "train-images-idx3-ubyte.gz")[..., None].astype(np.float32) / 255
    y = read_idx(cached / "train-labels-idx1-ubyte.gz").astype(np.int64)
    keras.utils.set_random_seed(0)
    for name, test in (("none", None), ("few", (x[:20], y[:20]))):
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        run = tmp_path / name
        model.fit(x, y, epochs=1, batch_size=100, verbose=0,
                  callbacks=[RunLogger(out=run, data="fashion-mnist", test=test)])
        (run / runs.REPORT).unlink()
        assert main(["report", str(run)]) == 0, capsys.readouterr().err
        report = (run / runs.REPORT).read_text()
        if test is None:
            figures = evaluate_run(run)
            n = int(np.sum(figures["confusion_matrix"]))
            assert n != 20 and f"{figures['test_accuracy'] * 100:.2f}%</b> on {n} test images" in report, name
        else:  # as results.json, the runs list and the web app say
            kept = json.loads((run / "results.json").read_text())
            assert f"{kept['test_accuracy'] * 100:.2f}%</b> on 20 test images" in report, name


def test_a_fit_continued_without_a_test_set_leaves_no_figures_of_the_weights_before(tmp_path):
    """The confusion matrix and mistakes of the first fit's weights stayed beside results.json
    without test figures after a fit continued the run given no test set, and the web app listed
    them as the run's."""
    x, y = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32), np.arange(32) % 2
    model, out = small_classifier(), tmp_path / "run"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=out, test=(x[:16], y[:16]))])
    figures = [out / runs.CLASSIFIER_FIGURES[name] for name in ("confusion_matrix", "mistakes")]
    assert figures[0].is_file()
    model.fit(x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[RunLogger(out=out)])
    assert "test_accuracy" not in runs.Run(out).results()
    assert not any(f.exists() for f in figures) and (out / runs.CLASSIFIER_FIGURES["learning_curves"]).is_file()
    assert "no test set given" in (out / runs.REPORT).read_text()


def test_raw_pixels_are_told_from_the_test_set_and_a_scale_they_contradict_is_refused(tmp_path):
    """A model fitted on raw 0-255 pixels was recorded as taking pixels / 255 (the default
    `scale`), so neuralab fed it images 255 times too dark; the test set's pixels tell the scale,
    and a `scale` given against them is refused before any file."""
    from neuralab.training.trained_classifier import load_classifier

    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.integers(0, 120, (16, 8, 8, 1)), rng.integers(136, 256, (16, 8, 8, 1))])
    x, y = pixels.astype(np.float32), np.repeat([0, 1], 16)
    keras.utils.set_random_seed(0)
    model = small_classifier()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "raw", test=(x, y))])
    assert runs.Run(tmp_path / "raw").record["config"]["scale"] == 1
    got = load_classifier(tmp_path / "raw").predict_proba(pixels.astype(np.uint8).transpose(0, 3, 1, 2))
    assert np.abs(got - model.predict(x, verbose=0)).max() <= 1e-4
    model.fit(x / 255, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "scaled", test=(x / 255, y))])
    assert runs.Run(tmp_path / "scaled").record["config"]["scale"] == pytest.approx(1 / 255)
    for scale, test, told in (("1/255", x, "scale=1,"), (1, x / 255, "scale=1/255")):
        with pytest.raises(ParameterError, match=f"^scale=.*those of test reach.*give {told}"):
            model.fit(x, y, epochs=1, verbose=0,
                      callbacks=[RunLogger(out=tmp_path / "run", scale=scale, test=(test, y))])
        assert not (tmp_path / "run").exists()


def test_standardised_pixels_are_warned_of_and_a_dark_test_set_tells_a_rescaling_model_nothing(tmp_path):
    """Pixels standardised as tutorials do, (x / 255 - 0.1307) / 0.3081 (up to 2.8), were taken for
    raw 0-255 ones and recorded as scale 1, and a scale of 1/255 given with them was refused; a
    Rescaling(1/255) model given a dark test set was recorded as taking pixels / 255, and its
    scale=1 refused. Only clear pixels tell the scale; a normalisation no scale describes is warned of."""
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.integers(0, 120, (16, 8, 8, 1)), rng.integers(136, 256, (16, 8, 8, 1))])
    x, y = pixels.astype(np.float32), np.repeat([0, 1], 16)
    standardised = (x / 255 - 0.1307) / 0.3081
    keras.utils.set_random_seed(0)
    model = small_classifier()
    for name, given in (("standardised", {}), ("standardised-given", {"scale": "1/255"})):
        with pytest.warns(UserWarning, match=r"^`scale`: .*keras.layers.Rescaling\(1/127.5, offset=-1\)"):
            model.fit(standardised, y, epochs=1, verbose=0,
                      callbacks=[RunLogger(out=tmp_path / name, test=(standardised, y), **given)])
        assert runs.Run(tmp_path / name).record["config"]["scale"] == pytest.approx(1 / 255), name
    rescaling = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
    rescaling.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for name, test, given in (("raw", x, {}), ("dark", np.zeros_like(x[:8]), {}),
                              ("dark-given", np.minimum(x[:8], 1), {"scale": 1})):
        rescaling.fit(x, y, epochs=1, verbose=0,
                      callbacks=[RunLogger(out=tmp_path / name, test=(test, y[:len(test)]), **given)])
        assert runs.Run(tmp_path / name).record["config"]["scale"] == 1, name
    # a Rescaling that maps [0, 1] to [-1, 1] takes pixels / 255, not raw ones
    unit = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(2.0, offset=-1.0), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])
    unit.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    unit.fit(x / 255, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "unit", test=(x / 255, y))])
    assert runs.Run(tmp_path / "unit").record["config"]["scale"] == pytest.approx(1 / 255)


def test_a_continued_run_whose_scale_the_test_set_contradicts_is_told_to_choose_another_out(tmp_path):
    """A run first fitted on raw pixels without a test set records 1/255; continued with raw test
    images and no `scale`, it was refused as if `scale` had been given, advising scale=1, which
    was refused in turn as not the run's. The refusal names the run's scale and `out`."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 120, (16, 8, 8, 1)), rng.integers(136, 256, (16, 8, 8, 1))]).astype(np.float32)
    y = np.repeat([0, 1], 16)
    model, out = small_classifier(), tmp_path / "run"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=out)])
    with pytest.raises(ParameterError, match=r"out.*: the run there records scale=1/255 \(its first fit had no test "
                                             r"set\), which .*contradict; a continued run keeps it: choose another "
                                             r"`?out`?$") as refused:
        model.fit(x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[RunLogger(out=out, test=(x, y))])
    assert refused.value.parameter == "out" and "\n" not in str(refused.value)
    run = runs.Run(out)
    assert run.status() is runs.Status.FINISHED and [r["epoch"] for r in run.metrics()] == [1]


def test_a_continued_run_whose_scale_the_test_set_contradicts_is_refused_by_out_whatever_scale_is_given(tmp_path):
    """Given the run's own scale, the check against `test` ran before the run was known, advising
    scale=1, which the continued run refused as not its own, advising to leave `scale` out, which
    the run's scale refused in turn: each of the three now names `out` at once."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 120, (16, 8, 8, 1)), rng.integers(136, 256, (16, 8, 8, 1))]).astype(np.float32)
    y = np.repeat([0, 1], 16)
    model, out = small_classifier(), tmp_path / "run"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=out)])
    for given in ({"scale": "1/255"}, {"scale": 1}, {}):
        with pytest.raises(ParameterError, match=r"the run there records scale=1/255 .*choose another `?out`?$") as no:
            model.fit(x, y, initial_epoch=1, epochs=2, verbose=0, callbacks=[RunLogger(out=out, test=(x, y), **given)])
        assert no.value.parameter == "out", given
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "new", test=(x, y), scale=1)])
    assert runs.Run(out).status() is runs.Status.FINISHED and runs.Run(tmp_path / "new").record["config"]["scale"] == 1


def test_pixels_a_given_scale_describes_are_not_warned_of_as_normalised(tmp_path):
    """Pixels / 127.5 (0 to 2) under scale=1/127.5 are what the scale says: they were warned of as
    normalised beyond a scale, where the recorded scale feeds evaluate exactly what fit saw."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 120, (16, 8, 8, 1)), rng.integers(136, 256, (16, 8, 8, 1))]).astype(np.float32)
    y, model = np.repeat([0, 1], 16), small_classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x / 127.5, y, epochs=1, verbose=0,
                  callbacks=[RunLogger(out=tmp_path / "run", test=(x / 127.5, y), scale=1 / 127.5)])
    assert runs.Run(tmp_path / "run").record["config"]["scale"] == pytest.approx(1 / 127.5)
    # given no `data`, the report's first line names none (it said "on None")
    assert f"<b>keras:{model.name}</b>: test accuracy" in (tmp_path / "run" / runs.REPORT).read_text()
    for other in ("1/255", 1):  # a scale that stops short of them, or one whose white they are far from, still is
        with pytest.warns(UserWarning, match="normalised beyond a scale"):
            model.fit(x / 127.5, y, epochs=1, verbose=0,
                      callbacks=[RunLogger(out=tmp_path / f"other-{other}".replace("/", "_"), test=(x / 127.5, y),
                                           scale=other)])


def test_data_naming_a_dataset_of_pictures_the_model_does_not_take_is_warned_of(tmp_path, fashion_mnist, capsys,
                                                                                   monkeypatch):
    """LeNet-5 fitted on Fashion-MNIST padded to 32x32, logged with data="fashion-mnist": the run was
    taken without a word, and `neuralab evaluate` then refused it naming no way on."""
    folder = idx_subset(fashion_mnist, tmp_path / "fashion", 200, 50)
    x, y = images(folder, "train")
    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path))
    model, out = lenet5(), tmp_path / "padded"
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.warns(UserWarning, match=r"^`data`: the pictures of fashion-mnist are 28x28x1 and the model takes "
                                         r"32x32x1, so evaluate and report cannot test the run on them; pass `test=` "
                                         r"to record fit's test figures; a model saved with model.save\(\) and imported "
                                         r"for fashion-mnist .* \(data=\"fashion-mnist, at 32x32\"\)$"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=out, data="fashion-mnist", classes=CLASSES)])
    assert main(["evaluate", str(out), "--data-dir", str(folder)]) == 2
    assert "the run's model takes 1x32x32; test it on pictures as its training took them (resized or padded), " \
           "with load_classifier(run).predict_proba, or, a Keras model, import its saved file" in capsys.readouterr().err
    # its report, lost, is written again from its files: neither fit nor the dataset gives test figures
    (out / runs.REPORT).unlink()
    assert main(["report", str(out), "--data-dir", str(folder)]) == 0, capsys.readouterr().err
    assert "no test set given" in (out / runs.REPORT).read_text()
