"""A run's folder refused, as no run or as a run of another kind, names each interface's own
ways: Python's functions (neuralab.load_forecaster, train_classifier...) to a Python caller, the
commands (`neuralab forecast predict`, `neuralab train`...) on the command line, never the other's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import neuralab
from helpers import digits_folder
from neuralab import runs
from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig
from neuralab.forecasting.windows import WindowConfig

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

USED_BY = {  # what each kind's refusal names, in Python and on the command line
    "forecaster": ("neuralab.load_forecaster or neuralab.predict_run",
                   "`neuralab forecast predict`, `neuralab report`, `neuralab export` or `neuralab serve`"),
    "classifier": ("neuralab.load_classifier or neuralab.evaluate_run",
                   "`neuralab evaluate`, `neuralab predict`, `neuralab inspect`, `neuralab report`, `neuralab export` "
                   "or `neuralab serve`"),
}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A finished MLP run on 300 pictures of digits."""
    digits = digits_folder(tmp_path_factory.mktemp("digits"), n=300)
    config = neuralab.ClassifierConfig(model="mlp", data=str(digits),
                                       train=neuralab.TrainConfig(epochs=1, batch_size=64, seed=0))
    return neuralab.train_classifier(config, out=tmp_path_factory.mktemp("classifier") / "run", verbose=False).run_dir


@pytest.fixture(scope="module")
def forecaster(series_csv, tmp_path_factory) -> Path:
    """A finished RNN forecast of a daily load with a weekly cycle."""
    config = ForecastConfig(data=str(series_csv), target="load", windows=WindowConfig(lookback=7),
                            model=ModelConfig("rnn", hidden=[4]), backtest_folds=1,
                            train=series_train_config(epochs=1, device="cpu", seed=1))
    return neuralab.run_forecast(config, out=tmp_path_factory.mktemp("forecaster") / "run", verbose=False).run_dir


def copied(run: Path, tmp_path: Path, interrupted: bool) -> Path:
    """A copy of ``run``; ``interrupted``: as a kill after its last epoch's checkpoint leaves it, before
    results.json and the report."""
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    if interrupted:
        for name in (runs.RESULTS, runs.REPORT):
            (copy / name).unlink()
        assert runs.Run(copy).status() is runs.Status.INTERRUPTED
    return copy


def said_in_python(call, *args) -> str:
    with pytest.raises(NeuralabError) as refused:
        call(*args)
    return str(refused.value)


def said_on_the_command_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.removeprefix("neuralab: error: ").removesuffix("\n")


@pytest.mark.parametrize("interrupted", [False, True], ids=["finished", "interrupted"])
def test_a_forecaster_given_for_a_classifier_names_pythons_functions_or_the_commands(forecaster, tmp_path, capsys,
                                                                                    interrupted):
    """`load_classifier(a forecaster run)` named `neuralab forecast` and `neuralab forecast predict`,
    which a Python caller has no use for."""
    run = copied(forecaster, tmp_path, interrupted)
    python, commands = USED_BY["forecaster"]
    resume = f"resume it with `neuralab.resume_forecast({str(run)!r})`, or " if interrupted else ""
    expected = f"{run}: a forecaster run (made by neuralab.run_forecast), not an image-classifier run; " \
               f"{resume}use it with {python}"
    assert said_in_python(neuralab.load_classifier, run) == expected
    assert said_in_python(neuralab.evaluate_run, run) == expected
    assert said_in_python(neuralab.resume_classifier, run) == expected  # not resumed
    resume = f"resume it with `neuralab forecast --resume {run}`, or " if interrupted else ""
    expected = f"{run}: a forecaster run (made by `neuralab forecast`), not an image-classifier run; {resume}use it " \
               f"with {commands}"
    assert said_on_the_command_line(capsys, ["evaluate", str(run)]) == expected
    assert said_on_the_command_line(capsys, ["train", "--resume", str(run)]) == expected
    assert runs.Run(run).status() is (runs.Status.INTERRUPTED if interrupted else runs.Status.FINISHED)


@pytest.mark.parametrize("interrupted", [False, True], ids=["finished", "interrupted"])
def test_a_classifier_given_for_a_forecaster_names_pythons_functions_or_the_commands(classifier, series_csv,
                                                                                    tmp_path, capsys, interrupted):
    run = copied(classifier, tmp_path, interrupted)
    python, commands = USED_BY["classifier"]
    resume = f"resume it with `neuralab.resume_classifier({str(run)!r})`, or " if interrupted else ""
    expected = f"{run}: an image-classifier run (made by neuralab.train_classifier), not a forecaster run; " \
               f"{resume}use it with {python}"
    assert said_in_python(neuralab.load_forecaster, run) == expected
    assert said_in_python(neuralab.predict_run, run, series_csv) == expected
    resume = f"resume it with `neuralab train --resume {run}`, or " if interrupted else ""
    expected = f"{run}: an image-classifier run (made by `neuralab train`), not a forecaster run; {resume}use it " \
               f"with {commands}"
    assert said_on_the_command_line(capsys, ["forecast", "predict", str(run), "--csv", str(series_csv)]) == expected
    assert said_on_the_command_line(capsys, ["forecast", "--resume", str(run)]) == expected


def test_a_forecaster_that_keras_fit_wrote_points_to_its_training_in_each_interfaces_words(tmp_path, capsys):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
    from neuralab.training import RunLogger

    model = keras.Sequential([keras.Input((6, 1), name="window"), keras.layers.LSTM(2, name="lstm"),
                              keras.layers.Dense(1, name="next")], name="tiny")
    model.compile(optimizer="adam", loss="mse")
    x = np.sin(np.arange(38, dtype=np.float32) / 3)[np.arange(32)[:, None] + np.arange(6)][..., None]
    run = tmp_path / "lstm"
    model.fit(x, x[:, -1], epochs=1, verbose=0, callbacks=[RunLogger(out=run)])
    said = f"{run}: a forecaster run that Keras's fit wrote (RunLogger), not an image-classifier run; it shows its " \
        "training in"
    assert said_in_python(neuralab.load_classifier, run) == \
        f"{said} neuralab.runs.Run({str(run)!r}).metrics() and TensorBoard"
    assert said_on_the_command_line(capsys, ["evaluate", str(run)]) == \
        f"{said} `neuralab runs`, `neuralab serve` and TensorBoard"


def test_a_folder_that_holds_no_run_names_what_makes_one_in_each_interfaces_words(classifier, tmp_path, capsys):
    """`load_classifier('none')` said "give a folder made by `neuralab train` or `neuralab forecast`"."""
    missing, file, empty = tmp_path / "none", classifier / runs.CONFIG, tmp_path / "empty"
    empty.mkdir()
    for folder, what in ((missing, "not found"), (file, "is a file, not a run's folder"),
                         (empty, "not a run directory (no config.json)")):
        with pytest.raises(ParameterError) as refused:
            neuralab.load_classifier(folder)
        assert refused.value.parameter == "run_dir" and refused.value.value == str(folder)
        assert str(refused.value) == f"run_dir={str(folder)!r}: {what}; give a folder made by " \
                                     "neuralab.train_classifier or neuralab.run_forecast"
        assert said_in_python(neuralab.load_forecaster, folder) == str(refused.value)
        assert said_on_the_command_line(capsys, ["evaluate", str(folder)]) == \
            f"{folder}: {what}; give a folder made by `neuralab train` or `neuralab forecast`"
        assert said_on_the_command_line(capsys, ["train", "--resume", str(folder)]) == \
            f"--resume {folder}: {what}; give a folder made by `neuralab train` or `neuralab forecast`"
