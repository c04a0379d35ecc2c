"""What a run says of itself where it is thin: stopped before its first epoch finished (Ctrl-C,
SIGTERM), it keeps no epoch and must not say it does; trained on a folder some of whose
pictures could not be read (`--on-error skip`), it records how many and which, and its report
and `neuralab runs RUN` say so (real handwritten digits, real broken files)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from helpers import digits_folder

import neuralab
from neuralab import runs
from neuralab.cli import main
from neuralab.errors import ParameterError
from neuralab.runs import Interrupted, Run, Status
from neuralab.training import trainer as trainer_module


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), n=300)


def stopped_in_epoch_1(monkeypatch, stop=None):
    """``stop`` (Ctrl-C by default) in the middle of epoch 1; calling what it returns lets
    training run whole again."""
    original = trainer_module.Trainer._train_epoch

    def pressed(self, *args):
        if args[-2] == 1:
            (stop or _ctrl_c)()
        return original(self, *args)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", pressed)
    return lambda: monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", original)


def _ctrl_c():
    raise KeyboardInterrupt


def classifier(digits, epochs: int = 2) -> neuralab.ClassifierConfig:
    return neuralab.ClassifierConfig(model="mlp", data=str(digits), train=neuralab.TrainConfig(
        epochs=epochs, batch_size=64, lr=0.01, seed=3, device="cpu"))


def test_python_is_told_that_no_epoch_is_kept_and_the_resume_starts_the_run_again(digits, tmp_path, monkeypatch):
    run = tmp_path / "run"
    whole_again = stopped_in_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as cut:
        neuralab.train_classifier(classifier(digits), out=run, verbose=False)
    said = str(cut.value)
    assert isinstance(cut.value, Interrupted), said
    assert "last finished epoch" not in said and "before its first epoch finished; no epoch is kept" in said, said
    assert (f"`neuralab.resume_classifier({str(run)!r})` starts it again from epoch 1 with the same config"
            in said), said
    assert Run(run).status() is Status.INTERRUPTED and not (run / runs.METRICS).exists()
    whole_again()

    # the same cell again is refused, without the finished epochs it would lose: there are none
    with pytest.raises(ParameterError) as again:
        neuralab.train_classifier(classifier(digits), out=run, verbose=False)
    said = str(again.value)
    assert "stopped before its first epoch finished" in said and "epochs are lost" not in said, said
    assert f"neuralab.resume_classifier({str(run)!r})` starts it again from epoch 1" in said, said

    result = neuralab.resume_classifier(run, verbose=False)  # the call as it was said
    assert [r["epoch"] for r in result.history] == [1, 2] and Run(run).status() is Status.FINISHED


def test_sigterm_in_the_first_epoch_names_the_command_that_starts_the_run_again(digits, tmp_path, monkeypatch,
                                                                                 capsys):
    run = tmp_path / "run"
    args = ["train", "--model", "mlp", "--data", str(digits), "--epochs", "2", "--batch-size", "64", "--seed", "3",
            "--threads", "1", "--quiet", "--out", str(run)]
    whole_again = stopped_in_epoch_1(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err == (f"neuralab: {run}: interrupted before its first epoch finished; no epoch is kept, only the run's "
                   f"config; `neuralab train --resume {run}` starts it again from epoch 1 with the same config\n")
    whole_again()

    assert main(["runs", str(run)]) == 0  # the listing claims no epoch either
    listed = capsys.readouterr().out
    assert "interrupted" in listed and "stopped before its first epoch" in listed, listed

    assert main(args) == 2  # the same command again: the refusal says what the resume does
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"`neuralab train --resume {run}` starts it again from epoch 1" in err, err
    assert "epochs are lost" not in err and "resume_classifier" not in err, err

    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # what the line said works
    assert Run(run).status() is Status.FINISHED and len(Run(run).metrics()) == 2


def test_ctrl_c_in_a_later_epoch_still_says_the_last_finished_epoch_is_kept(digits, tmp_path, monkeypatch):
    run = tmp_path / "run"
    original = trainer_module.Trainer._train_epoch

    def pressed(self, *args):
        if args[-2] == 2:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", pressed)
    with pytest.raises(KeyboardInterrupt) as cut:
        neuralab.train_classifier(classifier(digits, epochs=3), out=run, verbose=False)
    said = str(cut.value)
    assert "the files of the last finished epoch are kept" in said and "continues it" in said, said
    assert "first epoch" not in said, said


def test_a_forecast_stopped_in_its_first_epoch_says_no_epoch_is_kept(tmp_path, monkeypatch):
    from neuralab.forecasting import pipeline
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.windows import WindowConfig

    config = pipeline.ForecastConfig(data="seattle-weather", target="temp_max",
                                     windows=WindowConfig(lookback=14, horizon=2),
                                     model=ModelConfig("lstm", hidden=[8]),
                                     train=series_train_config(epochs=2, device="cpu", seed=3), backtest_folds=1)
    run = tmp_path / "run"
    whole_again = stopped_in_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as cut:
        pipeline.run_forecast(config, out=run, verbose=False)
    said = str(cut.value)
    assert "last finished epoch" not in said and "before its first epoch finished" in said, said
    assert f"`neuralab.resume_forecast({str(run)!r})` starts it again from epoch 1 with the same config" in said
    whole_again()
    result = neuralab.resume_forecast(run, verbose=False)
    assert [r["epoch"] for r in result.history] == [1, 2] and Run(run).status() is Status.FINISHED


def _broken(digits, tmp_path):
    """A copy of the digits folder with 25 pictures that cannot be read: a PNG cut short, an
    empty JPEG, and text files named .png."""
    import shutil

    folder = tmp_path / "pictures"
    shutil.copytree(digits, folder)
    whole = (folder / "3" / os.listdir(folder / "3")[0]).read_bytes()
    (folder / "3" / "cut.png").write_bytes(whole[:60])
    (folder / "5" / "empty.jpg").write_bytes(b"")
    for i in range(23):
        (folder / "7" / f"note{i:02d}.png").write_bytes(b"not a picture")
    return folder


def test_pictures_left_out_are_recorded_in_the_run_and_said_by_its_report_and_listing(digits, tmp_path, capsys):
    folder, run = _broken(digits, tmp_path), tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped 25 of 325 images"):
        assert main(["train", "--model", "mlp", "--data", str(folder), "--on-error", "skip", "--epochs", "1",
                     "--threads", "1", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()

    skipped = json.loads((run / runs.CONFIG).read_text())["data"]["skipped"]
    assert skipped["count"] == 25 and len(skipped["pictures"]) == 20  # bounded: the count says how many in all
    first = {p["path"]: p["reason"] for p in skipped["pictures"][:2]}
    assert list(first) == ["3/cut.png", "5/empty.jpg"], skipped  # in the folder, not where it was on this machine
    assert "truncated" in first["3/cut.png"] and first["5/empty.jpg"].startswith("file is empty"), first
    assert all(p["path"].startswith("7/note") for p in skipped["pictures"][2:])

    line = ("25 pictures of the folder were left out: 3/cut.png (not a readable image (image "
            "file is truncated)), 5/empty.jpg (file is empty), 7/note00.png (not a readable image), 7/note01.png "
            "(not a readable image), 7/note02.png (not a readable image) and 20 more")
    assert line + "." in (run / runs.REPORT).read_text()

    assert main(["runs", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == line


def test_a_folder_read_whole_records_none_left_out_and_says_nothing(digits, tmp_path, capsys):
    run = tmp_path / "run"
    neuralab.train_classifier(classifier(digits, epochs=1), out=run, verbose=False)
    assert json.loads((run / runs.CONFIG).read_text())["data"]["skipped"] == {"count": 0, "pictures": []}
    assert "could not be read" not in (run / runs.REPORT).read_text()
    assert main(["runs", str(run)]) == 0
    assert "could not be read" not in capsys.readouterr().out
