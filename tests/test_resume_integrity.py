"""A resume goes on with the data, the run and the record it started with: other data of the
same classes and sizes is refused, a run another resume finished meanwhile is not trained
again, and each session records what it computed on (real Fashion-MNIST subsets,
scikit-learn's handwritten digits as picture files, Seattle weather)."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import IDX_FILES, cut_in_epoch, digits_folder, idx_subset

import neuralab
from neuralab.cli import main
from neuralab.data.idx import read_idx, write_idx
from neuralab.data.sources import file_in
from neuralab.errors import NeuralabError
from neuralab.forecasting import pipeline
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, resume_forecast, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import EnvironmentChangedWarning, Interrupted
from neuralab.training import (
    ClassifierConfig,
    TrainConfig,
    classify,
    resume_classifier,
    train_classifier,
)
from neuralab.training.device import compute_threads, cpu_threads


def fashion(fashion_mnist, folder, start: int = 0, n_train: int = 600, n_test: int = 200):
    """Real Fashion-MNIST images ``start`` on, ``n_train`` for training and ``n_test`` for testing, as IDX files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        n = n_train if name.startswith("train") else n_test
        write_idx(folder / name, np.ascontiguousarray(read_idx(file_in(fashion_mnist, name))[start:start + n]))
    return folder


def config(data, data_dir=None, **train) -> ClassifierConfig:
    return ClassifierConfig(model="mlp", data=str(data), data_dir=data_dir and str(data_dir),
                            train=TrainConfig(**{"epochs": 2, "batch_size": 64, "seed": 3, **train}))


def files(run) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


# --- the data a run was trained on ---------------------------------------------------------------

def test_another_datasets_files_in_the_data_folder_are_not_resumed(fashion_mnist, tmp_path, monkeypatch, capsys):
    """Other Fashion-MNIST images in the run's `data_dir` (the same classes and counts) resumed
    silently and were tested on; now the resume is refused in one line, and the run of an
    earlier version (no digest in config.json) still resumes."""
    data = fashion(fashion_mnist, tmp_path / "data")
    kept = shutil.copytree(data, tmp_path / "kept")
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config("fashion-mnist", data), out=run, verbose=False)
    whole_again()
    fashion(fashion_mnist, data, start=600)
    before = files(run)
    code, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"fashion-mnist in {data}: not the images the run was trained on" in err
    assert "other train, val, test images or labels" in err and "give the files the run was trained on" in err
    assert files(run) == before

    shutil.rmtree(data)
    shutil.copytree(kept, data)
    record = json.loads((run / "config.json").read_text())
    assert set(record["data"]["sha256"]) == {"train", "val", "test"}
    del record["data"]["sha256"]  # as the run of an earlier version records it
    (run / "config.json").write_text(json.dumps(record))
    assert resume_classifier(run, verbose=False).test["accuracy"] > 0.5


def test_a_picture_folder_with_pictures_replaced_is_not_resumed(tmp_path, monkeypatch):
    """Class 3's pictures replaced by other real 3s under the same names: the same classes and
    counts, which resumed silently; the resume goes on once the folder is put back."""
    digits = digits_folder(tmp_path / "digits", 300)
    kept = shutil.copytree(digits, tmp_path / "kept")
    more = digits_folder(tmp_path / "more", 900)
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config(digits, lr=0.01), out=run, verbose=False)
    whole_again()
    threes = sorted((digits / "3").iterdir())
    others = sorted((p for p in (more / "3").iterdir() if int(p.stem) >= 300), key=lambda p: int(p.stem))
    for mine, theirs in zip(threes, others):
        shutil.copyfile(theirs, mine)
    before = files(run)
    with pytest.raises(NeuralabError, match=rf"^{digits}: not the pictures the run was trained on: .* put the "
                                            "folder back as it was, or start a new run$"):
        resume_classifier(run, verbose=False)
    assert files(run) == before

    shutil.rmtree(digits)
    shutil.copytree(kept, digits)
    assert resume_classifier(run, verbose=False).test["accuracy"] > 0.5


# --- what each session ran on ------------------------------------------------------------------

def test_a_resume_on_another_setup_is_recorded_and_said(fashion_mnist, tmp_path, monkeypatch):
    """config.json kept only the first session's versions and threads (worked out again each
    session); a resume now adds its own to `sessions` and warns where they differ."""
    data = fashion(fashion_mnist, tmp_path / "data")
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with cpu_threads(1), pytest.raises(KeyboardInterrupt):
        train_classifier(config("fashion-mnist", data), out=run, verbose=False)
    whole_again()
    first = json.loads((run / "config.json").read_text())["environment"]
    assert first["threads"] == 1
    monkeypatch.setattr(neuralab, "__version__", "9.9.9")  # neuralab upgraded between the sessions
    with cpu_threads(2):
        threads = compute_threads(0)
        with pytest.warns(EnvironmentChangedWarning, match=rf"^{run}: this session computes with .*neuralab 9\.9\.9, "
                                                           rf"the run's first with .*neuralab {first['neuralab']};"):
            resume_classifier(run, verbose=False)
    record = json.loads((run / "config.json").read_text())
    assert record["environment"] == first
    [session] = record["sessions"]
    assert session["environment"]["neuralab"] == "9.9.9" and session["environment"]["threads"] == threads
    assert session["environment"]["device"] == "cpu" and session["started"]


def test_a_resume_in_another_number_of_processes_says_dropout_and_batch_norm_change_the_epochs(tmp_path, monkeypatch,
                                                                                              capsys):
    """Each process draws its own dropout masks (and normalises its share alone on CPUs): a run started
    under torchrun with 2 processes and resumed in one goes on with other masks, not only other rounding."""
    digits = digits_folder(tmp_path / "digits", 300)
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with cpu_threads(1):
        assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "2", "--batch-size", "64",
                     "--threads", "1", "--quiet", "--out", str(run)]) == 130
    whole_again()
    record = json.loads((run / "config.json").read_text())
    record["environment"]["world_size"] = 2  # as torchrun --nproc_per_node 2 records it
    (run / "config.json").write_text(json.dumps(record))
    with cpu_threads(1), pytest.warns(EnvironmentChangedWarning) as said:
        assert main(["train", "--resume", str(run), "--threads", "1", "--quiet"]) == 0
    [warning] = [str(w.message) for w in said if issubclass(w.category, EnvironmentChangedWarning)]
    assert "world_size 1, the run's first with world_size 2" in warning
    assert "differ from those of a run trained in one session where the model has dropout" in warning, warning
    assert "may differ in their last bits" not in warning


def forecast_config() -> ForecastConfig:
    return ForecastConfig(data="seattle-weather", target="temp_max",
                          windows=WindowConfig(lookback=14, horizon=2, transform="auto"),
                          model=ModelConfig("lstm", hidden=[8]),
                          train=series_train_config(epochs=3, device="cpu", seed=3, threads=1), backtest_folds=1)


def interrupted_forecast(run: Path, monkeypatch) -> Path:
    """A forecast run stopped in its second epoch, at ``run``."""
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        run_forecast(forecast_config(), out=run, verbose=False)
    whole_again()
    return run


def test_a_forecast_resumed_on_the_same_setup_records_its_session_without_a_warning(tmp_path, monkeypatch):
    run = interrupted_forecast(tmp_path / "run", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnvironmentChangedWarning)
        resume_forecast(run, verbose=False)
    record = json.loads((run / "config.json").read_text())
    [session] = record["sessions"]
    assert session["environment"] == record["environment"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras 3 on NumPy 2
def test_a_model_from_keras_code_records_the_keras_it_ran_with(fashion_mnist, tmp_path, capsys):
    data = idx_subset(fashion_mnist, tmp_path / "data", 300, 100)
    file = tmp_path / "dense.py"
    file.write_text("import keras\n"
                    "model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),\n"
                    "                          keras.layers.Dense(10, activation='softmax')])\n"
                    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n")
    run = tmp_path / "run"
    code, err = cli(capsys, "train", "--model", file, "--data", "fashion-mnist", "--data-dir", data, "--epochs", "1",
                    "--quiet", "--out", run)
    assert code == 0, err
    keras = sys.modules["keras"]  # loaded by the model's code
    environment = json.loads((run / "config.json").read_text())["environment"]
    assert environment["keras"] == keras.__version__ and environment["keras_backend"] == keras.backend.backend()


# --- a run finished by another resume meanwhile ------------------------------------------------

def finished_meanwhile(monkeypatch, module, name: str, resume):
    """Patch ``module.name``, which a resume calls between its check that the run is not
    finished and taking its lock, so that the first call first lets ``resume`` (another
    process) finish the run; returns the run's files as that left them."""
    original, left = getattr(module, name), {}

    def hook(*args, **kwargs):
        if not left:
            left["run"] = None  # the other resume's own calls go straight through
            left["run"] = resume()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, hook)
    return left


def test_a_resume_does_not_train_again_a_run_another_resume_finished(fashion_mnist, tmp_path, monkeypatch):
    data = fashion(fashion_mnist, tmp_path / "data")
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config("fashion-mnist", data), out=run, verbose=False)
    whole_again()
    left = finished_meanwhile(monkeypatch, classify, "check_same_data",
                              lambda: (resume_classifier(run, verbose=False), files(run))[1])
    with pytest.raises(NeuralabError, match="the run is finished .*nothing to resume"):
        resume_classifier(run, verbose=False)
    assert files(run) == left["run"]


def test_a_run_stopped_before_its_first_checkpoint_finished_meanwhile_is_not_emptied(fashion_mnist, tmp_path,
                                                                                    monkeypatch):
    """The resume of a run without a checkpoint starts it again in place, overwriting it: a run
    that another resume finished meanwhile was emptied and trained again."""
    data = fashion(fashion_mnist, tmp_path / "data")
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config("fashion-mnist", data), out=run, verbose=False)
    whole_again()
    assert not (run / "checkpoints" / "last.safetensors").exists()
    left = finished_meanwhile(monkeypatch, classify, "check_data",
                              lambda: (resume_classifier(run, verbose=False), files(run))[1])
    with pytest.raises(NeuralabError, match="the run is finished .*nothing to resume"):
        resume_classifier(run, verbose=False)
    assert "results.json" in left["run"] and files(run) == left["run"]


def test_a_forecast_resume_does_not_train_again_a_run_another_resume_finished(tmp_path, monkeypatch):
    run = interrupted_forecast(tmp_path / "run", monkeypatch)
    left = finished_meanwhile(monkeypatch, pipeline, "stored_config",
                              lambda: (resume_forecast(run, verbose=False), files(run))[1])
    with pytest.raises(NeuralabError, match="the run is finished .*nothing to resume"):
        resume_forecast(run, verbose=False)
    assert "results.json" in left["run"] and files(run) == left["run"]
