"""The device a resumed run computes on is the session's, as its threads are: a job that a
scheduler starts again may land on a node without the GPU it started on. `--device` given
with a resume is taken, recorded in config.json's `sessions` and warned of where it differs
from the first session's; config.json's own `train.device` stays the run's. (Real
Fashion-MNIST subsets and Seattle weather; a run "started on a GPU" is an interrupted CPU
run whose config.json is edited to say cuda, as a copy moved from a GPU node would.)"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from helpers import cut_in_epoch, idx_subset

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, resume_forecast, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import EnvironmentChangedWarning, Interrupted
from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier

# the runs below are told they were started on a GPU: here, none may be, for the resume to need another device
needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: the run's cuda would work")

TRAIN = ("--model", "mlp", "--epochs", "2", "--batch-size", "64", "--seed", "3", "--data", "fashion-mnist")


def interrupted_classifier(fashion_mnist, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A CPU run of an MLP on 600 Fashion-MNIST images, stopped as its second epoch starts."""
    data = idx_subset(fashion_mnist, tmp_path / "data", 600, 200)
    run = tmp_path / "run"
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(data),
                                          train=TrainConfig(epochs=2, batch_size=64, seed=3, device="cpu")),
                         out=run, verbose=False)
    whole_again()
    return run, data


def started_on_gpu(run: Path, environment: bool = False) -> None:
    """config.json as a run started with `device` cuda writes it (and, with ``environment``, as
    it records the GPU it computed on)."""
    path = run / "config.json"
    record = json.loads(path.read_text())
    record["config"]["train"]["device"] = "cuda"
    if environment:
        record["environment"].update(device="cuda:0", gpu="NVIDIA H100 80GB HBM3", cuda="12.4")
    path.write_text(json.dumps(record))


def record(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


# --- classifier runs -----------------------------------------------------------------------------

def test_a_cpu_run_resumes_with_device_auto(fashion_mnist, tmp_path, monkeypatch, capsys):
    """`--device auto` on a run started with `--device cpu` was refused as a changed setting."""
    run, data = interrupted_classifier(fashion_mnist, tmp_path, monkeypatch)
    code, err = cli(capsys, "train", "--resume", run, "--device", "auto", "--quiet")
    assert code == 0, err
    assert (run / "results.json").is_file()
    assert record(run)["config"]["train"]["device"] == "cpu"
    [session] = record(run)["sessions"]
    assert session["environment"]["device"] == str(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


@needs_no_gpu
def test_a_gpu_run_resumed_without_a_gpu_says_which_device_to_give_and_then_goes_on(fashion_mnist, tmp_path,
                                                                                      monkeypatch, capsys):
    """The circle: the run's cuda was refused for want of a GPU, and `--device cpu` (the advice)
    as contradicting the run. Now the first says to resume with --device cpu or auto, which works."""
    run, data = interrupted_classifier(fashion_mnist, tmp_path, monkeypatch)
    started_on_gpu(run)
    code, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 2
    assert err.strip() == (f"neuralab: error: {run}: the run was started with --device 'cuda': no CUDA GPU is visible "
                           "to PyTorch; the device is the session's, not the run's: resume with --device cpu or auto "
                           "to go on here")
    assert "sessions" not in record(run) and not (run / "run.lock").exists()
    code, err = cli(capsys, "train", "--resume", run, "--device", "cpu", "--quiet")
    assert code == 0, err
    kept = record(run)
    assert kept["config"]["train"]["device"] == "cuda"  # the run's, as it was started
    [session] = kept["sessions"]
    assert session["environment"]["device"] == "cpu"
    assert json.loads((run / "results.json").read_text())["test_accuracy"] > 0.5


@needs_no_gpu
def test_a_gpu_run_resumed_on_the_cpu_warns_once_that_its_device_changed(fashion_mnist, tmp_path, monkeypatch):
    run, data = interrupted_classifier(fashion_mnist, tmp_path, monkeypatch)
    started_on_gpu(run, environment=True)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        resume_classifier(run, verbose=False, options={"device": "cpu"})
    changed = [w for w in said if issubclass(w.category, EnvironmentChangedWarning)]
    assert len(changed) == 1
    assert str(changed[0].message).startswith(f"{run}: this session computes with device cpu")
    assert "the run's first with device cuda:0" in str(changed[0].message)
    kept = record(run)
    assert kept["config"]["train"]["device"] == "cuda" and kept["environment"]["device"] == "cuda:0"
    assert kept["sessions"][0]["environment"]["device"] == "cpu"


@needs_no_gpu
def test_a_requeued_gpu_run_goes_on_with_device_auto(fashion_mnist, tmp_path, monkeypatch, capsys):
    """A job's one command line, `--resume-if-interrupted --device auto`, started again on a node
    without a GPU, finishes the run; the same line once more finds it finished."""
    run, data = interrupted_classifier(fashion_mnist, tmp_path, monkeypatch)
    started_on_gpu(run)
    job = ("train", *TRAIN, "--data-dir", data, "--out", run, "--resume-if-interrupted", "--device", "auto", "--quiet")
    code, err = cli(capsys, *job)
    assert code == 0, err
    assert (run / "results.json").is_file()
    assert record(run)["config"]["train"]["device"] == "cuda"
    assert [s["environment"]["device"] for s in record(run)["sessions"]] == ["cpu"]
    code, err = cli(capsys, *job)
    assert code == 0, err


def test_a_device_no_machine_has_is_refused_on_resume(fashion_mnist, tmp_path, monkeypatch):
    run, data = interrupted_classifier(fashion_mnist, tmp_path, monkeypatch)
    with pytest.raises(NeuralabError, match=r"^device='gpu': choose one of auto, cpu, cuda, mps$"):
        resume_classifier(run, verbose=False, options={"device": "gpu"})
    assert "sessions" not in record(run)


# --- forecasting runs ----------------------------------------------------------------------------

# the run's command line; its transform left out, as a job's would be: "auto" typed is refused once chosen
FORECAST = ("forecast", "--data", "seattle-weather", "--target", "temp_max", "--lookback", "14", "--horizon", "2",
            "--model", "lstm", "--hidden", "8", "--epochs", "3", "--seed", "3", "--threads", "1",
            "--backtest-folds", "1")


def interrupted_forecast(run: Path, monkeypatch) -> Path:
    """A forecasting run on the CPU stopped in its second epoch, at ``run``."""
    config = ForecastConfig(data="seattle-weather", target="temp_max",
                            windows=WindowConfig(lookback=14, horizon=2, transform="auto"),
                            model=ModelConfig("lstm", hidden=[8]),
                            train=series_train_config(epochs=3, device="cpu", seed=3, threads=1), backtest_folds=1)
    whole_again = cut_in_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        run_forecast(config, out=run, verbose=False)
    whole_again()
    return run


def test_a_forecast_on_the_cpu_resumes_with_device_auto(tmp_path, monkeypatch, capsys):
    """`forecast --resume RUN --device auto` was refused as a changed setting."""
    run = interrupted_forecast(tmp_path / "run", monkeypatch)
    code, err = cli(capsys, "forecast", "--resume", run, "--device", "auto", "--quiet")
    assert code == 0, err
    assert record(run)["config"]["train"]["device"] == "cpu"
    assert len(record(run)["sessions"]) == 1


@needs_no_gpu
def test_a_gpu_forecast_resumed_without_a_gpu_says_which_device_to_give_and_then_goes_on(tmp_path, monkeypatch):
    run = interrupted_forecast(tmp_path / "run", monkeypatch)
    started_on_gpu(run, environment=True)
    with pytest.raises(NeuralabError, match=r"the run was started with device 'cuda': no CUDA GPU is visible to "
                                            r"PyTorch; .* resume with device cpu or auto"):
        resume_forecast(run, verbose=False)
    assert "sessions" not in record(run)
    with pytest.warns(EnvironmentChangedWarning, match=r"this session computes with device cpu.*"
                                                       r"the run's first with device cuda:0"):
        resume_forecast(run, verbose=False, device="cpu")
    kept = record(run)
    assert kept["config"]["train"]["device"] == "cuda"
    assert kept["sessions"][0]["environment"]["device"] == "cpu"
    assert (run / "results.json").is_file()


@needs_no_gpu
def test_a_requeued_gpu_forecast_goes_on_with_device_auto(tmp_path, monkeypatch, capsys):
    run = interrupted_forecast(tmp_path / "run", monkeypatch)
    started_on_gpu(run)
    code, err = cli(capsys, *FORECAST, "--out", run, "--resume-if-interrupted", "--device", "auto", "--quiet")
    assert code == 0, err
    assert record(run)["config"]["train"]["device"] == "cuda"
    assert [s["environment"]["device"] for s in record(run)["sessions"]] == ["cpu"]
