"""A run whose PyTorch module the run cannot rebuild (model.json's source has file null: a
module object built with arguments, or a file importing a package beside it) is told, by the
command line too, the Python call that goes on with it, with the module given again and named by
its class: no flag passes a module, so `neuralab train --resume RUN --trust-code` (after Ctrl-C,
or for an `--out` holding such a run) and `neuralab report RUN` (after a report cut short) only
led to a second refusal; `neuralab evaluate` ended "... as `model`" and `train --resume` named
`Net(...)` whatever the class. Following each message works.

Also: a folder's path given as bytes is refused showing those bytes, not the word 'bytes'; and
the report's way on of a run whose config.json says no kind names that, not a module object."""

from __future__ import annotations

import errno
import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import digits_folder

from neuralab import ClassifierConfig, TrainConfig, run_forecast, train_classifier
from neuralab.cli import main
from neuralab.errors import ParameterError
from neuralab.reports.html import ReportNotWritten, kept_if_unwritable
from neuralab.runs import Status, Run
from neuralab.training.tensorboard import TensorBoard
from test_own_module_runs_ways_on import CtrlC, LSTMForecaster, config, followed

BLOCK = """
    from torch import nn


    class Stem(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())

        def forward(self, x):  # (B, 1, 8, 8) -> (B, width)
            return self.f(x)
"""

NET = """
    from torch import nn

    from digitblocks.stem import Stem


    class DigitNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = Stem(24)
            self.head = nn.Linear(24, 10)

        def forward(self, x):
            return self.head(self.stem(x))
"""


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """net.py, importing the package digitblocks beside it (which a run does not keep), and the
    user's session's import of it, for following the messages."""
    folder = tmp_path_factory.mktemp("mine")
    _file(folder / "digitblocks" / "__init__.py", "")
    _file(folder / "digitblocks" / "stem.py", BLOCK)
    path = _file(folder / "net.py", NET)
    spec = importlib.util.spec_from_file_location("net_of_a_module_object_run", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return path, module


@pytest.fixture(scope="module")
def load_csv(tmp_path_factory) -> Path:
    """Four months of a daily electricity load with a weekly cycle and a trend."""
    path = tmp_path_factory.mktemp("load") / "load.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    t = np.arange(len(days))
    load = 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t + np.random.default_rng(0).normal(0, 1, len(t))
    path.write_text("day,load\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(days, load)))
    return path


def _train_argv(net_path: Path, digits: Path, out: Path) -> list[str]:
    return ["train", "--model", f"{net_path}:DigitNet", "--data", str(digits), "--epochs", "3", "--threads", "1",
            "--out", str(out), "--quiet"]


def _stopped_in_epoch(n: int, monkeypatch):
    """Ctrl-C in the ``n``th epoch, as Python raises it: no message."""
    from neuralab.training import trainer as trainer_module

    original, seen = trainer_module.Trainer._train_epoch, []

    def epoch(*args, **kwargs):
        seen.append(1)
        if len(seen) == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", epoch)


def test_ctrl_c_and_out_of_a_classifier_the_command_line_cannot_resume_name_the_python_resume(net, digits, tmp_path,
                                                                                             capsys, monkeypatch):
    net_path, user = net
    run = tmp_path / "run"
    _stopped_in_epoch(2, monkeypatch)
    with pytest.warns(UserWarning, match="digitblocks, a package"):
        assert main(_train_argv(net_path, digits, run)) == 130
    monkeypatch.undo()
    said = capsys.readouterr().err.strip()
    assert json.loads((run / "model.json").read_text())["source"]["file"] is None
    call = f"neuralab.resume_classifier({str(run)!r}, model=DigitNet())"
    # it said `neuralab train --resume RUN --trust-code`, which then said it can only be resumed from Python
    assert said == f"neuralab: {run}: interrupted; the files of the last finished epoch are kept; `{call}` continues it"

    # the same command again, into the folder that holds it: refused before the model is built
    assert main(_train_argv(net_path, digits, run)) == 2
    said = capsys.readouterr().err.strip()
    assert f"holds an interrupted run, which `{call}` continues;" in said and "--trust-code" not in said, said

    # `train --resume` names the run's class, not Net
    assert main(["train", "--resume", str(run)]) == 2
    said = capsys.readouterr().err.strip()
    assert said.endswith(f"it can only be resumed from Python, with the module given again: {call} (docs/runs.md)"), said

    result = followed(said, DigitNet=user.DigitNet())
    assert result.run_dir == run and Run(run).status() is Status.FINISHED and len(result.history) == 3


def test_evaluate_names_the_python_call_with_the_runs_class_and_following_it_evaluates(net, digits, tmp_path, capsys):
    net_path, user = net
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="digitblocks, a package"):
        assert main(_train_argv(net_path, digits, run)) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    said = capsys.readouterr().err.strip()
    assert said.count("\n") == 0 and " as `model`" not in said, said  # it ended "..., as `model`"
    assert said.endswith("it can only be evaluated from Python, with the module given again: "
                         f"neuralab.evaluate_run({str(run)!r}, model=DigitNet()) (docs/runs.md)"), said
    figures = followed(said, DigitNet=user.DigitNet())
    assert figures["test_accuracy"] == pytest.approx(json.loads((run / "results.json").read_text())["test_accuracy"])


def test_the_web_apps_classifier_names_the_python_call_with_the_runs_class(net, digits, tmp_path, capsys):
    """It said "... built the same way (Net(hidden=32), say), as model", where the command line names the call."""
    from starlette.testclient import TestClient

    from neuralab.web import create_app

    net_path, _ = net
    with pytest.warns(UserWarning, match="digitblocks, a package"):
        assert main(_train_argv(net_path, digits, tmp_path / "runs" / "mine")) == 0
    picture = next((digits / "3").iterdir()).read_bytes()
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify", params={"run": "mine", "source": "upload"}, content=picture,
                   headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400
    assert r.json()["error"].endswith("it can only be used from Python, with the module given again: "
                                      "neuralab.load_classifier('mine', model=DigitNet()) (docs/runs.md)"), r.text


def test_a_report_cut_short_names_the_python_call_that_writes_it(net, digits, tmp_path, capsys, monkeypatch):
    from neuralab.reports import plots

    net_path, user = net
    run = tmp_path / "run"

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "save", cut)
    with pytest.warns(UserWarning, match="digitblocks, a package"):
        assert main(_train_argv(net_path, digits, run)) == 130
    monkeypatch.undo()
    said = capsys.readouterr().err.strip()
    call = f"neuralab.training.evaluate.write_report({str(run)!r}, model=DigitNet())"
    assert said.endswith(f"`{call}` writes the report again"), said  # it named `neuralab report RUN`
    assert not (run / "report.html").exists()
    assert followed(said, DigitNet=user.DigitNet()) == run / "report.html" and (run / "report.html").is_file()


def test_an_out_holding_an_interrupted_forecast_of_a_module_object_names_the_python_resume(load_csv, tmp_path,
                                                                                          capsys):
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_forecast(config(load_csv, 2), out=run, verbose=False, model=LSTMForecaster(hidden=6), callbacks=[CtrlC()])
    assert main(["forecast", "--data", str(load_csv), "--target", "load", "--lookback", "14", "--epochs", "2",
                 "--out", str(run)]) == 2
    said = capsys.readouterr().err.strip()
    call = f"neuralab.resume_forecast({str(run)!r}, model=LSTMForecaster(...))"
    # it said `neuralab forecast --resume RUN --trust-code`
    assert f"holds an interrupted run, which `{call}` continues;" in said and "--resume" not in said, said
    assert followed(said, LSTMForecaster=LSTMForecaster(hidden=6)).run_dir == run
    assert Run(run).status() is Status.FINISHED


def test_a_folder_given_as_bytes_is_refused_showing_the_bytes(digits, tmp_path, load_csv):
    log_dir = bytes(tmp_path / "tb")
    config_ = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, threads=1))
    with pytest.raises(ParameterError) as refused:
        train_classifier(config_, out=tmp_path / "run", verbose=False, callbacks=[TensorBoard(log_dir)])
    # it said log_dir='bytes', as though the word had been given
    assert str(refused.value).startswith(f"log_dir={log_dir!r}: give a folder's path"), str(refused.value)
    with pytest.raises(ParameterError) as refused:
        run_forecast(config(load_csv, 1), out=bytes(tmp_path / "forecast"), verbose=False)
    assert str(refused.value).startswith(f"out={bytes(tmp_path / 'forecast')!r}: give a folder's path")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_reports_way_on_where_config_json_says_no_kind_says_that(digits, tmp_path):
    run = tmp_path / "run"
    train_classifier(ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, threads=1)),
                     out=run, verbose=False)
    record = json.loads((run / "config.json").read_text())
    record["kind"] = "image-classifer"  # edited by hand, misspelt
    (run / "config.json").write_text(json.dumps(record))
    with pytest.raises(ReportNotWritten) as stopped:
        with kept_if_unwritable(run):
            raise OSError(errno.ENOSPC, "No space left on device")
    said = str(stopped.value)
    assert "module object" not in said, said  # it blamed a module object the run does not have
    assert said.endswith(f"no call draws the report again until {run / 'config.json'} names the run's kind "
                         "('image-classifier' or 'forecaster'); results.json holds its figures"), said
    assert re.match(rf"{re.escape(str(run / 'report.html'))}: not written \(No space left on device\)", said)
