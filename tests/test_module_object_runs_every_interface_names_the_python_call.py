"""A run of a module object (model.json's source has file null: no command can rebuild its
network) is told the Python call that goes on with it, named with the run's class, by every
interface: the web app's Resume refusal and forecast page (they said `resume_classifier(RUN,
model=Net(...))` and `neuralab forecast --resume RUN`, which refuses the run), `neuralab inspect`
(it printed the library's "... as model"), and a run given to the other kind's command (it listed
`neuralab evaluate`, `predict`, ..., which all refuse it). Following the web app's call resumes.
Real pictures (scikit-learn's digits as a folder) and a daily load series with a weekly cycle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import digits_folder
from starlette.testclient import TestClient
from torch import nn

from neuralab import ClassifierConfig, TrainConfig, run_forecast, train_classifier
from neuralab.cli import main
from neuralab.web import create_app
from test_own_module_runs_ways_on import CtrlC, LSTMForecaster, config, followed, load_csv  # noqa: F401 (fixture)


class DigitNet(nn.Module):
    def __init__(self, width: int = 24):
        super().__init__()
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):  # (B, 1, 8, 8) -> (B, 10)
        return self.f(x)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


@pytest.fixture(scope="module")
def root(digits, load_csv, tmp_path_factory) -> Path:  # noqa: F811
    """runs/ holding a classifier and a forecast of module objects, each finished and cut by Ctrl-C
    as its first epoch ended; built with other arguments than their defaults, which their classes
    alone would not build again."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    for name, stop in (("cls-cut", [CtrlC()]), ("cls-done", [])):
        try:
            train_classifier(ClassifierConfig(data=str(digits), train=TrainConfig(epochs=2, threads=1)),
                             out=root / name, verbose=False, model=DigitNet(16), callbacks=stop)
        except KeyboardInterrupt:
            pass
    for name, stop in (("fc-cut", [CtrlC()]), ("fc-done", [])):
        try:
            run_forecast(config(load_csv, 2), out=root / name, verbose=False, model=LSTMForecaster(hidden=6),
                         callbacks=stop)
        except KeyboardInterrupt:
            pass
    return root


def refusal(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    said = capsys.readouterr().err.strip()
    assert said.count("\n") == 0, said
    return said


def test_the_web_app_names_the_python_resume_with_the_runs_class(root, monkeypatch):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        classifier = client.post("/api/jobs/resume", json={"run": "cls-cut"})
        forecast = client.post("/api/jobs/resume", json={"run": "fc-cut"})
        page = client.get("/api/forecast", params={"run": "fc-cut"})
    assert classifier.status_code == forecast.status_code == 409
    # the app names runs within the runs folder (runs.without_root), where the calls are to be typed
    assert classifier.json()["error"].endswith(
        "resume it in Python with the module given again, from the runs folder: "
        "neuralab.resume_classifier('cls-cut', model=DigitNet(...))")  # was resume_classifier(RUN, model=Net(...))
    call = "neuralab.resume_forecast('fc-cut', model=LSTMForecaster(...))"
    assert forecast.json()["error"].endswith(
        f"a forecast run resumes in Python with the module given again, from the runs folder: {call}")
    assert page.status_code == 400
    assert page.json()["error"].endswith(f"go on in Python with the module given again, from the runs folder: {call}")
    assert "--resume" not in forecast.text + page.text  # `neuralab forecast --resume` refuses such a run
    monkeypatch.chdir(root)
    result = followed(forecast.json()["error"], LSTMForecaster=LSTMForecaster(hidden=6))
    assert (root / "fc-cut" / "results.json").is_file() and len(result.history) == 2


def test_inspect_names_the_python_load_with_the_runs_class(root, digits, capsys):
    said = refusal(capsys, ["inspect", str(root / "cls-done"), str(digits / "0" / "0.png")])
    assert said.endswith(f"it can only be used from Python, with the module given again: "
                         f"neuralab.load_classifier({str(root / 'cls-done')!r}, model=DigitNet(...)) (docs/runs.md)")
    assert "as model" not in said and "Net(hidden=32)" not in said  # the library's words, for a Python caller
    # predict, whose own wrapping main()'s now replaces, says the same
    assert refusal(capsys, ["predict", str(root / "cls-done"), str(digits / "0" / "0.png")]) == said


def test_a_run_given_to_the_other_kinds_command_names_the_python_functions_that_take_it(root, capsys):
    classifier = refusal(capsys, ["forecast", "--resume", str(root / "cls-cut")])
    assert classifier == (f"neuralab: error: {root / 'cls-cut'}: an image-classifier run (made by "
                          "neuralab.train_classifier), not a forecaster run; resume it with "
                          f"`neuralab.resume_classifier({str(root / 'cls-cut')!r}, model=DigitNet(...))`, or use "
                          "it with neuralab.load_classifier or neuralab.evaluate_run")
    forecast = refusal(capsys, ["train", "--resume", str(root / "fc-done")])
    assert "use it with neuralab.load_forecaster or neuralab.predict_run" in forecast
    assert "`neuralab " not in classifier + forecast  # no command: every one refuses such a run
