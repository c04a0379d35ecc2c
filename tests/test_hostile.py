"""What a hostile user tried (issue #14) and what neuralab must answer: one line naming the
file, field or option and what to do, exit status 2, no traceback, nothing half-written.

Data files are real Fashion-MNIST subsets or scikit-learn's digits, each spoilt one way;
read-only folders are really read-only (permissions, or a read-only mount for root)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralab.cli import main
from neuralab.data.idx import read_idx, write_idx
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier
from helpers import digits_folder, idx_subset, read_only
from test_runs import three_classes


def refused(capsys, argv: list[str], *words: str) -> str:
    """Run ``argv``: exit 2 and one line holding every one of ``words``, no traceback."""
    with warnings.catch_warnings():
        # a warning printed before the error is a second line: neuralab's are UserWarnings. Not
        # those Python drops by default: a ResourceWarning of a file that some earlier test left
        # open, freed whenever the garbage collector runs, would fail the test it happens to land in
        warnings.simplefilter("error", UserWarning)
        try:
            code = main(argv)
        except SystemExit as e:  # argparse refused it
            code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("neuralab") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    return err


# --- IDX datasets spoilt one way each: refused before anything is trained or written -----

@pytest.fixture(scope="module")
def small_idx(fashion_mnist, tmp_path_factory) -> Path:
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion"), 300, 100)


def spoil_labels(y):
    y = y.astype(np.int8)
    y[5] = -1
    return y


def spoil_fraction(y):
    y = y.astype(np.float32)
    y[7] = 2.5
    return y


SPOILT = {  # file -> how it is spoilt, and the words the refusal must hold
    "negative label": ("train-labels-idx1-ubyte.gz", spoil_labels, ["label -1 (at index 5) is negative"]),
    "float32 images": ("train-images-idx3-ubyte.gz", lambda x: x.astype(np.float32) / 255,
                       ["images are stored as float32", "uint8"]),
    "fractional label": ("train-labels-idx1-ubyte.gz", spoil_fraction, ["label 2.5 (at index 7) is not a whole number"]),
    # as int64, 1e30 is -2**63: it passed every check and indexed backwards
    "huge float label": ("train-labels-idx1-ubyte.gz", lambda y: np.where(np.arange(len(y)) == 4, 1e30, y),
                         ["label 1e+30 (at index 4) is no class index a dataset has"]),
    "label beyond the classes": ("t10k-labels-idx1-ubyte.gz", lambda y: np.where(np.arange(len(y)) == 3, 10, y),
                                 ["label 10 out of range for 10 classes"]),
    "one class": ("train-labels-idx1-ubyte.gz", lambda y: np.full_like(y, 3), ["every training image has the same label"]),
    "empty training set": ("train-images-idx3-ubyte.gz", lambda x: x[:0], ["0 labels for"]),
    "empty training set, both files": ("train-*", None, ["the training set is empty"]),
    "test images of another size": ("t10k-images-idx3-ubyte.gz", lambda x: np.ascontiguousarray(x[:, ::2, ::2]),
                                    ["test images are 1x14x14 but training images are 1x28x28"]),
}


@pytest.mark.parametrize("case", SPOILT)
def test_spoilt_idx_datasets_are_refused_before_training(case, small_idx, tmp_path, capsys):
    name, spoil, words = SPOILT[case]
    folder = shutil.copytree(small_idx, tmp_path / "data")
    if name == "train-*":
        for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
            write_idx(folder / f, read_idx(folder / f)[:0])
    else:
        write_idx(folder / name, spoil(read_idx(folder / name)))
    if "train-" in name and case.startswith(("negative", "float32", "fractional")):
        words = [str(folder / name), *words]  # the file is named
    refused(capsys, ["train", "--data", "fashion-mnist", "--data-dir", str(folder), "--epochs", "1",
                     "--out", str(tmp_path / "run")], *words)
    assert not (tmp_path / "run").exists()


def test_whole_labels_stored_as_floats_or_wide_ints_still_train(small_idx, tmp_path):
    folder = shutil.copytree(small_idx, tmp_path / "data")
    y = read_idx(folder / "train-labels-idx1-ubyte.gz")
    write_idx(folder / "train-labels-idx1-ubyte.gz", y.astype(np.float32))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int32))
    assert main(["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(folder), "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_accuracy"] > 0.3


# --- model.json spoilt one way each: refused before anything is built ---------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    digits = digits_folder(tmp_path_factory.mktemp("digits"), n=300)
    config = ClassifierConfig(model="cnn", data=str(digits), train=TrainConfig(epochs=1, batch_size=64))
    return train_classifier(config, out=tmp_path_factory.mktemp("runs") / "run", verbose=False).run_dir


def picture(tmp_path: Path) -> str:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "p.png")
    return str(tmp_path / "p.png")


def edit(meta: dict, **fields):
    return {**meta, **fields}


MODEL_JSON = {  # how model.json is spoilt -> words the refusal holds
    "std 0": (lambda m: edit(m, preprocess={**m["preprocess"], "std": [0.0]}), "'preprocess.std' is [0.0]"),
    "no architecture": (lambda m: {k: v for k, v in m.items() if k != "architecture"}, "'architecture' is missing"),
    "a list": (lambda m: [m], "expected a JSON object, found list"),
    "input_shape as text": (lambda m: edit(m, input_shape="28x28"), "'input_shape' is '28x28'"),
    "input_shape 1000x1000": (lambda m: edit(m, input_shape=[1, 1000, 1000]), "do not belong together"),
    "input_shape huge": (lambda m: edit(m, input_shape=[1, 10**6, 10**6]), "sides of 1 to 1024 pixels"),
    "unknown preprocess key": (lambda m: edit(m, preprocess={**m["preprocess"], "scale": 2}), "exactly 'mean' and 'std'"),
    "fewer class names": (lambda m: edit(m, classes=m["classes"][:-1]), "must list 10 class names"),
    "num_classes 1e9": (lambda m: edit(m, num_classes=10**9), "'num_classes' is 1000000000"),
    "num_classes as a float": (lambda m: edit(m, num_classes=10.0), "'num_classes' is 10.0"),
    "channels 1e6 x 1e6": (lambda m: edit(m, options={"channels": [10**6, 10**6]}), "do not belong together"),
    "an option the model has not": (lambda m: edit(m, options={"hidden": [10**6]}), "unknown model option 'hidden'"),
    "options as a list": (lambda m: edit(m, options=[1]), "'options' must be an object"),
    "mean NaN": (lambda m: edit(m, preprocess={**m["preprocess"], "mean": [float("nan")]}), "'preprocess.mean' must be 1 finite"),
    "unknown architecture": (lambda m: edit(m, architecture="os.system"), "'architecture' is 'os.system'"),
}


@pytest.mark.parametrize("case", MODEL_JSON)
def test_a_spoilt_model_json_is_refused_before_anything_is_built(case, run, tmp_path, capsys):
    spoil, words = MODEL_JSON[case]
    copy = shutil.copytree(run, tmp_path / "run")
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps(spoil(meta)))
    for argv in (["predict", str(copy), picture(tmp_path)], ["export", str(copy), "--onnx"],
                 ["inspect", str(copy), picture(tmp_path), "--out", str(tmp_path / "maps")]):
        refused(capsys, argv, str(copy / "model.json") if "belong" not in words else "model.safetensors", words)
    assert not (copy / "model.onnx").exists() and not (tmp_path / "maps").exists()


# --- read-only folders: one line naming the path, nothing written elsewhere ---------------

def test_read_only_output_folders_get_one_line(run, tmp_path, capsys):
    digits = digits_folder(tmp_path / "digits", n=200)
    csv = tmp_path / "series.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    csv.write_text("day,load\n" + "".join(f"{d},{50 + 10 * np.sin(i / 3):.3f}\n" for i, d in enumerate(days)))
    locked = tmp_path / "ro"
    with read_only(locked):
        refused(capsys, ["train", "--model", "mlp", "--data", str(digits), "--epochs", "1",
                         "--out", str(locked / "run")], str(locked / "run"), "Read-only file system")
        refused(capsys, ["forecast", "--data", str(csv), "--target", "load", "--date-column", "day", "--lookback", "7",
                         "--model", "rnn", "--epochs", "1", "--quiet", "--out", str(locked / "f")],
                str(locked / "f"), "Read-only file system")
        refused(capsys, ["inspect", str(run), picture(tmp_path), "--out", str(locked / "maps")],
                str(locked / "maps"), "Read-only file system")
        refused(capsys, ["export", str(run), "--onnx", "--out", str(locked / "m.onnx")],
                str(locked / "m.onnx"), "Read-only file system")
    assert not any(locked.iterdir())
    copy = shutil.copytree(run, tmp_path / "runcopy")
    (copy / "results.json").unlink()  # an interrupted run, in a folder that became read-only
    with read_only(copy):
        refused(capsys, ["train", "--resume", str(copy), "--quiet"], str(copy), "Read-only file system")
        refused(capsys, ["export", str(copy), "--onnx"], "model.onnx", "Read-only file system")


def test_fetch_into_a_read_only_cache_gets_one_line(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NEURALAB_DATA", str(cache))
    with read_only(cache):
        refused(capsys, ["data", "fetch", "mnist"], str(cache), "Read-only file system")


# --- values a type check let through: each trained (or crashed) before ----------------------

@pytest.mark.parametrize("argv, words", [
    (["--lr", "inf"], "--lr inf: must be a finite number greater than 0"),
    (["--weight-decay", "-1"], "--weight-decay -1.0: must be 0 (off) or more, and finite"),
    (["--weight-decay", "nan"], "--weight-decay nan: must be 0 (off) or more"),
    (["--weight-decay", "inf"], "--weight-decay inf: must be 0 (off) or more"),
])
def test_non_finite_and_negative_training_values_are_refused(argv, words, tmp_path, capsys):
    digits = digits_folder(tmp_path / "digits", n=100)
    refused(capsys, ["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", *argv,
                     "--out", str(tmp_path / "run")], words)
    assert not (tmp_path / "run").exists()


def test_a_separator_that_is_no_single_character_is_refused(tmp_path, capsys):
    csv = tmp_path / "load.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-03-01"))
    csv.write_text("day,load\n" + "".join(f"{d},{i % 7}\n" for i, d in enumerate(days)))
    for sep in ("", ";;", "\n"):
        refused(capsys, ["forecast", "--data", str(csv), "--target", "load", "--date-column", "day", "--sep", sep,
                         "--out", str(tmp_path / "run")], "--sep", "give one character")
    assert not (tmp_path / "run").exists()


# --- a run's files turned into folders, its folder turned read-only mid-training ------------

@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """An interrupted run: trained, then its results.json removed (what a kill before it leaves)."""
    pictures = three_classes(tmp_path_factory.mktemp("pictures") / "three")
    config = ClassifierConfig(model="mlp", data=str(pictures), train=TrainConfig(epochs=2, batch_size=8))
    run = train_classifier(config, out=tmp_path_factory.mktemp("runs") / "run", verbose=False).run_dir
    (run / "results.json").unlink()
    return run


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoints/last.safetensors", "checkpoints/best.safetensors",
                                  "progress.json", "metrics.jsonl"])
def test_a_folder_where_a_run_keeps_a_file_is_named_on_resume(name, stopped, tmp_path, capsys):
    copy = shutil.copytree(stopped, tmp_path / "run")
    if (copy / name).exists():
        (copy / name).unlink()
    (copy / name).mkdir()
    refused(capsys, ["train", "--resume", str(copy), "--quiet"], f"{copy / name}: is a folder", "remove it")


def test_predict_calls_a_folder_of_weights_a_folder(run, tmp_path, capsys):
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors").mkdir()
    refused(capsys, ["predict", str(copy), picture(tmp_path)], f"{copy / 'model.safetensors'}: is a folder")


def test_a_run_folder_turned_read_only_mid_training_is_what_the_error_says(tmp_path, capsys, monkeypatch):
    """The folder freezes as the second epoch's metrics.jsonl is renamed into place: that epoch's
    failure is the one line, not the tidy-up after it (the temporary file, progress.json, run.lock)."""
    import contextlib
    import os

    pictures = three_classes(tmp_path / "pictures")
    run, replace, renamed = tmp_path / "run", os.replace, []
    with contextlib.ExitStack() as frozen:
        def replace_then_freeze(src, dst, *args, **kwargs):
            if str(dst).endswith("metrics.jsonl"):
                renamed.append(dst)
                if len(renamed) == 2:
                    frozen.enter_context(read_only(run))
            return replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace_then_freeze)
        refused(capsys, ["train", "--model", "mlp", "--data", str(pictures), "--epochs", "3", "--batch-size", "8",
                         "--quiet", "--out", str(run)], f"{run / 'metrics.jsonl'}: cannot save epoch 2", "--resume")
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # from epoch 1, which was saved whole
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3
    assert not list(run.rglob(".*.tmp"))


# --- seeds NumPy and PyTorch cannot take: refused before anything is made ----------------

@pytest.mark.parametrize("seed", ["-5", "99999999999999999999"])
def test_a_seed_out_of_range_is_one_line_for_training_and_forecasting(capsys, small_idx, tmp_path, seed):
    refused(capsys, ["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(small_idx),
                     "--epochs", "1", "--seed", seed, "--out", str(tmp_path / "run")], f"--seed {seed}", "4294967295")
    refused(capsys, ["forecast", "--data", "seattle-weather", "--target", "temp_max", "--epochs", "1",
                     "--seed", seed, "--out", str(tmp_path / "forecast")], f"--seed {seed}", "4294967295")
    assert not (tmp_path / "run").exists() and not (tmp_path / "forecast").exists()


def test_the_library_names_a_seed_out_of_range_as_its_parameter(small_idx, tmp_path):
    from neuralab import NeuralabError
    from neuralab.forecasting.gradients import GradientConfig

    config = ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(small_idx), train=TrainConfig(seed=-1))
    with pytest.raises(NeuralabError, match=r"^`?seed`?=-1: give a whole number from 0 to 4294967295$"):
        train_classifier(config, out=tmp_path / "run", verbose=False)
    with pytest.raises(NeuralabError, match="seed"):
        GradientConfig(seed=2**40).check()
    assert not (tmp_path / "run").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pytest shows those it records; this one is made here
def test_refused_fails_on_a_warning_neuralab_prints_but_not_on_one_python_drops(capsys, monkeypatch):
    """``refused`` is what most tests here stand on. Warnings that Python drops by default, which
    the command never prints, must not fail the test they land in: a ResourceWarning (a file some
    earlier test left open, freed whenever the garbage collector runs) or a library's
    DeprecationWarning (given once, to whichever test first imports it). A warning neuralab gives
    before its error is a second line the user sees: it must."""
    import sys

    def warns(category):
        def command(argv):
            warnings.warn("left out 3 picture(s) beside the class folders", category)
            print("neuralab: error: --data-dir: no such folder; give a folder of pictures", file=sys.stderr)
            return 2
        return command

    for dropped in (ResourceWarning, DeprecationWarning):
        monkeypatch.setattr(sys.modules[__name__], "main", warns(dropped))
        refused(capsys, ["train"], "--data-dir")
    monkeypatch.setattr(sys.modules[__name__], "main", warns(UserWarning))
    with pytest.raises(UserWarning, match="left out 3 picture"):
        refused(capsys, ["train"], "--data-dir")
