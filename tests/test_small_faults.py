"""Small faults from earlier reviews, each on real data: a report that a full disk or Ctrl-C
stopped names the way to write it again in each interface's own words; the library's exceptions
survive pickling (multiprocessing raises them again in the parent); and Trainer.predict of no
rows gives no rows of the model's output shape, as PyTorch does."""

from __future__ import annotations

import concurrent.futures
import errno
import multiprocessing
import os
import pickle
from pathlib import Path

import pytest
import torch
from helpers import digits_folder
from test_reports import full_disk_at
from torch import nn

import neuralab
from neuralab.cli import main
from neuralab.errors import NeuralabError, NotAClassifier, ParameterError
from neuralab.files import WriteError
from neuralab.forecasting import finished, pipeline
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.windows import WindowConfig
from neuralab.models.geometry import MapVanishes, geometry
from neuralab.reports import html as report_html
from neuralab.reports.html import ReportInterrupted, ReportNotWritten
from neuralab.runs import Interrupted, InterruptedInTheWay, Kind, Run, RunLocked, Status
from neuralab.training.config import Diverged
from neuralab.training.source import CodeNotTrusted, ModelNeeded
from neuralab.training.trainer import REGRESSION, Trainer


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"))


def classifier(digits) -> neuralab.ClassifierConfig:
    return neuralab.ClassifierConfig(model="mlp", data=str(digits), train=neuralab.TrainConfig(
        epochs=1, batch_size=64, seed=3, device="cpu"))


def forecast_config() -> pipeline.ForecastConfig:
    return pipeline.ForecastConfig(data="seattle-weather", target="temp_max",
                                   windows=WindowConfig(lookback=14, horizon=2), model=ModelConfig("lstm", hidden=[8]),
                                   train=series_train_config(epochs=1, device="cpu", seed=3), backtest_folds=2)


def pressed(*args, **kwargs):
    raise KeyboardInterrupt


# --- a report stopped: each interface names its own way to write it again -------------------------

def test_a_full_disk_in_python_names_the_call_that_writes_the_report_again(digits, tmp_path, monkeypatch):
    """The library said `neuralab report RUN`, a command, to a notebook; it names its own call,
    and that call writes the report."""
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(report_html, "atomic_write", full_disk_at("report.html"))
        with pytest.raises(ReportNotWritten) as cut:
            neuralab.train_classifier(classifier(digits), out=run, verbose=False)
    said = str(cut.value)
    call = f"neuralab.training.evaluate.write_report({str(run)!r})"
    assert f"`{call}` writes the report again" in said and "No space left on device" in said, said
    assert "neuralab report" not in said and "\n" not in said
    assert Run(run).status() is Status.FINISHED and not (run / "report.html").exists()

    from neuralab.training.evaluate import write_report  # the call as the message names it

    assert write_report(run) == run / "report.html" and (run / "report.html").is_file()


def test_ctrl_c_in_a_forecasts_report_names_the_forecasts_call(tmp_path, monkeypatch):
    from neuralab.forecasting import report

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(report, "report_run", pressed)  # results.json is written: the run is finished
        with pytest.raises(KeyboardInterrupt) as cut:
            pipeline.run_forecast(forecast_config(), out=run, verbose=False)
    said = str(cut.value)
    assert isinstance(cut.value, ReportInterrupted) and not isinstance(cut.value, Interrupted)
    assert "interrupted; the run is finished" in said and "neuralab report" not in said, said
    assert f"`neuralab.forecasting.finished.write_report({str(run)!r})` writes the report again" in said, said
    assert finished.write_report(run) == run / "report.html" and (run / "report.html").is_file()


NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.layers(x)
"""


def test_the_command_line_names_neuralab_report_with_trust_code_for_a_run_of_code(digits, tmp_path, monkeypatch,
                                                                                  capsys):
    """main() says the command, never the Python call; a run of PyTorch code is reported again
    only with --trust-code, which the command then carries."""
    (tmp_path / "net.py").write_text(NET)
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(report_html, "atomic_write", full_disk_at("report.html"))
        code = main(["train", "--model", str(tmp_path / "net.py"), "--data", str(digits), "--epochs", "1",
                     "--device", "cpu", "--out", str(run), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"`neuralab report {run} --trust-code` writes the report again" in err[0], err
    assert "write_report" not in err[0]
    assert main(["report", str(run), "--trust-code"]) == 0 and (run / "report.html").is_file()


# --- exceptions pickle with their fields ------------------------------------------------------------

def _errors(run: Path) -> list[BaseException]:
    """One of each of the library's exceptions whose __init__ takes other arguments than a message."""
    return [
        ParameterError("epochs", 0, "must be at least 1"),
        Diverged(0.5, epoch=3),
        Interrupted(run, Kind.CLASSIFIER),
        InterruptedInTheWay(run, Kind.FORECASTER, out=run.parent),
        CodeNotTrusted("the run's model is PyTorch code; pass `trust_code` to run it"),
        ModelNeeded(run),
        WriteError(run / "config.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))),
        MapVanishes("features.0", "Conv2d", (4, 4), geometry(nn.Conv2d(1, 6, 5), 4, 4)),
        ReportInterrupted(run),
        ReportNotWritten(run, os.strerror(errno.ENOSPC)),
        RunLocked(f"{run}: in use"),
        NotAClassifier("lstm: a forecaster"),
    ]


def test_every_exception_pickles_with_its_message_and_fields(tmp_path):
    for error in _errors(tmp_path / "run"):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.args == error.args, error
        assert vars(back) == vars(error), type(error).__name__
    said = pickle.loads(pickle.dumps(ParameterError("epochs", 0, "must be at least 1")))
    assert said.render(lambda p: "--" + p) == "--epochs 0: must be at least 1"  # the fields, not only the text


def _raise(index: int, run: str):
    raise _errors(Path(run))[index]


def test_a_worker_process_s_interrupt_is_raised_again_in_the_parent(tmp_path):
    """A user's multiprocessing code re-raises what a worker raised: the pool pickles it back."""
    run = str(tmp_path / "run")
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        with pytest.raises(Interrupted) as cut:
            pool.submit(_raise, 2, run).result()
        with pytest.raises(Diverged) as diverged:
            pool.submit(_raise, 1, run).result()
    assert cut.value.path == Path(run) and cut.value.kind is Kind.CLASSIFIER
    assert str(cut.value) == str(Interrupted(run, Kind.CLASSIFIER))
    assert diverged.value.epoch == 3 and diverged.value.parameter == "lr" and diverged.value.value == 0.5


# --- Trainer.predict of no rows ---------------------------------------------------------------------

class Flattened(nn.Module):
    """A user's model as tutorials write it: x.view(N, -1), which PyTorch cannot do on 0 rows."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.out(x.view(x.size(0), -1))


def test_predict_of_no_rows_gives_no_rows_of_the_models_output_shape():
    lenet = Trainer(neuralab.build_model("lenet5", input_shape=(1, 28, 28), num_classes=10),
                    neuralab.TrainConfig(device="cpu"), verbose=False)
    for trainer in (lenet, Trainer(Flattened(), neuralab.TrainConfig(device="cpu"), verbose=False)):
        out = trainer.predict(torch.empty(0, 1, 28, 28))
        assert out.shape == (0, 10) and out.dtype == torch.float32, out.shape
    forecaster = Trainer(nn.Sequential(nn.Flatten(), nn.Linear(14, 2)), neuralab.TrainConfig(device="cpu"),
                         REGRESSION, verbose=False)
    assert forecaster.predict(torch.empty(0, 14, 1)).shape == (0, 2)
    with pytest.raises(ParameterError) as cut:  # no rows of a shape the model cannot take: said as for rows
        lenet.predict(torch.empty(0, 3, 5))
    assert cut.value.parameter == "x" and cut.value.value == (0, 3, 5)


def test_evaluate_and_a_validation_set_of_no_rows_are_refused_by_name(digits):
    data = neuralab.load_image_data(str(digits))
    x, y = torch.from_numpy(data.train.x).float() / 255, torch.from_numpy(data.train.y)
    trainer = Trainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), neuralab.TrainConfig(epochs=1, device="cpu"),
                      verbose=False)
    with pytest.raises(ParameterError) as cut:  # a mean over no rows read 0.0 as if it were a loss
        trainer.evaluate(x[:0], y[:0])
    assert cut.value.parameter == "x" and "at least one row" in str(cut.value)
    with pytest.raises(ParameterError) as cut:
        trainer.fit(x, y, val=(x[:0], y[:0]))
    assert cut.value.parameter == "val" and not trainer.history
    assert isinstance(cut.value, NeuralabError)


def test_a_tie_on_the_monitored_metric_keeps_the_first_best_epoch_as_the_history_names_it(tmp_path):
    from neuralab.training.checkpoint import load_tensors
    from neuralab.training.config import TrainConfig
    from neuralab.training.trainer import Trainer

    torch.manual_seed(0)
    x = torch.cat([torch.randn(64, 2) - 3, torch.randn(64, 2) + 3])  # two clusters far apart: accuracy 1.0 at once
    y = torch.cat([torch.zeros(64), torch.ones(64)]).long()
    trainer = Trainer(nn.Sequential(nn.Linear(2, 2)), TrainConfig(epochs=4, batch_size=32, lr=0.1, schedule="constant",
                                                                   monitor="val_accuracy", threads=1),
                      run_dir=tmp_path / "run", verbose=False)
    history = trainer.fit(x, y, val=(x, y))
    assert [r["val_accuracy"] for r in history] == [1.0] * 4  # a tie at every epoch, as Keras's checkpoint sees it
    tensors, meta = load_tensors(tmp_path / "run" / "model.safetensors")
    assert trainer.best_epoch() == meta["epoch"] == 1
    last, _ = load_tensors(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert not torch.equal(tensors["0.weight"], last["model.0.weight"])  # later epochs did change the weights


def test_a_run_saved_when_a_tie_kept_the_later_epoch_still_resumes(tmp_path):
    from dataclasses import replace

    from neuralab.training.config import TrainConfig
    from neuralab.training.trainer import Trainer

    torch.manual_seed(0)
    x = torch.cat([torch.randn(64, 2) - 3, torch.randn(64, 2) + 3])
    y = torch.cat([torch.zeros(64), torch.ones(64)]).long()
    config = TrainConfig(epochs=3, batch_size=32, lr=0.1, schedule="constant", monitor="val_accuracy", threads=1)
    Trainer(nn.Sequential(nn.Linear(2, 2)), config, run_dir=tmp_path / "run", verbose=False).fit(x, y, val=(x, y))
    checkpoints = tmp_path / "run" / "checkpoints"
    # what a tie left before it stopped counting as an improvement: the later epoch as the best
    (checkpoints / "best.safetensors").write_bytes((checkpoints / "last.safetensors").read_bytes())
    resumed = Trainer(nn.Sequential(nn.Linear(2, 2)), replace(config, epochs=4), run_dir=tmp_path / "run",
                      verbose=False)
    history = resumed.fit(x, y, val=(x, y), resume=True)  # not refused as damaged
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
