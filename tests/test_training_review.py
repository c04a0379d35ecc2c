"""Faults a user of `neuralab train` and of the training loop runs into, on a real Fashion-MNIST
subset and the S&P 500's closes: a learning rate that diverges, settings of the wrong type from
Python, and two forecast pages' wording."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from starlette.testclient import TestClient

from helpers import TORCHRUN, digits_folder, idx_subset
from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.errors import ParameterError
from neuralab.training import Callback, ClassifierConfig, TrainConfig, Trainer, train_classifier
from neuralab.training.config import Diverged

DIVERGED = "training diverged at epoch 1 (its training loss is not a finite number); lower it"


@pytest.fixture(scope="module")
def tiny_fashion(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("tiny"), 600, 100)


def config(data_dir, **train) -> ClassifierConfig:
    return ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(data_dir),
                            train=TrainConfig(**{"epochs": 1, "batch_size": 64, **train}))


class Seen(Callback):
    """What the trainer showed a user's callback."""

    def __init__(self):
        self.steps, self.epochs, self.ended = 0, [], 0

    def on_step_end(self, trainer, step, steps):
        self.steps += 1

    def on_epoch_end(self, trainer, record):
        self.epochs.append(record["epoch"])

    def on_train_end(self, trainer):
        self.ended += 1


# --- a learning rate that diverges --------------------------------------------------------------

@pytest.mark.parametrize("out", ["run", "new/week1/run"])
def test_a_diverging_training_is_refused_naming_lr_and_leaves_no_run(tiny_fashion, tmp_path, capsys, out):
    """Nor the folders made on the way to it (they stayed, empty)."""
    (tmp_path / "kept").mkdir()
    code = main(["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion),
                 "--epochs", "2", "--lr", "1e9", "--quiet", "--out", str(tmp_path / out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.err == f"neuralab: error: --lr 1000000000.0: {DIVERGED}\n"
    assert "test accuracy" not in captured.out and sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_a_diverging_training_stops_after_its_first_epoch_and_empties_a_folder_that_was_there(tiny_fashion,
                                                                                              tmp_path):
    (tmp_path / "mine").mkdir()
    seen = Seen()
    with pytest.raises(Diverged) as e:
        train_classifier(config(tiny_fashion, epochs=3, lr=1e9), out=tmp_path / "mine", verbose=False,
                         callbacks=[seen])
    assert (e.value.parameter, e.value.epoch) == ("lr", 1) and str(e.value) == f"lr=1000000000.0: {DIVERGED}"
    # one epoch's steps (540 training images in batches of 64), no epoch handed on, the end said once
    assert (seen.steps, seen.epochs, seen.ended) == (9, [], 1)
    assert list((tmp_path / "mine").iterdir()) == []


def test_the_trainer_itself_stops_at_the_first_epoch_whose_loss_is_not_finite(tiny_fashion):
    from neuralab.data import load_image_data
    from neuralab.models import build_model
    from neuralab.training import Preprocess, seed_everything

    data = load_image_data("fashion-mnist", str(tiny_fashion), val_fraction=0.0)
    x, y = Preprocess.fit(data.train.x)(data.train.x), torch.from_numpy(data.train.y)
    seed_everything(0)
    seen = Seen()
    # plain SGD at lr 1.2 overshoots more each epoch: the loss is finite in epoch 1, not after
    trainer = Trainer(build_model("mlp", (1, 28, 28), 10), TrainConfig(epochs=6, batch_size=64, lr=1.2,
                      optimizer="sgd", schedule="constant", device="cpu"), verbose=False, callbacks=[seen])
    with pytest.raises(Diverged) as e:
        trainer.fit(x, y)
    assert trainer.history and all(np.isfinite(r["loss"]) for r in trainer.history)
    assert e.value.epoch == len(trainer.history) + 1 and str(e.value).startswith(
        f"lr=1.2: training diverged at epoch {e.value.epoch} ")
    assert seen.epochs == [r["epoch"] for r in trainer.history] and seen.ended == 1


@pytest.mark.parametrize("epochs", ["1", "2"])
def test_weights_that_go_to_nan_in_an_epochs_last_steps_are_refused_by_the_validation_loss(tmp_path, capsys, epochs):
    """Plain SGD at lr 1e9 on the digits: the weights go to numbers whose outputs no float holds,
    seen by the validation loss of the epoch they do or the training loss of the next, the last
    epoch's too. Before, the run finished, naming as its best an epoch whose validation loss was NaN."""
    data = digits_folder(tmp_path / "digits", 300)
    code = main(["train", "--model", "mlp", "--data", str(data), "--epochs", epochs, "--lr", "1e9", "--optimizer", "sgd",
                 "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and re.fullmatch(r"neuralab: error: --lr 1000000000\.0: training diverged at epoch \d \(its "
                                      r"(training|validation) loss is not a finite number\); lower it\n", err), err
    assert not (tmp_path / "run").exists()


def test_an_epoch_whose_validation_loss_is_not_a_number_is_never_the_best(tiny_fashion):
    """A run's history from before such epochs were refused: the best epoch named is the one whose
    weights were kept (NaN compared false, so argmin named it, and after a first NaN nothing improved)."""
    from neuralab.models import build_model

    trainer = Trainer(build_model("mlp", (1, 28, 28), 10), TrainConfig(epochs=3, device="cpu"), verbose=False)
    nan = float("nan")
    for losses, kept in (([0.9, nan], [True, False]), ([nan, 0.9], [True, True]), ([0.9, nan, 0.8], [True, False, True])):
        trainer.history, improved = [], []
        for epoch, loss in enumerate(losses, 1):
            trainer.history.append({"epoch": epoch, "loss": 1.0, "val_loss": loss})
            improved.append(trainer._improved())
        best = max(e for e, i in enumerate(improved, 1) if i)
        assert (improved, trainer.best_epoch()) == (kept, best)


def test_a_validation_target_whose_error_overflows_is_no_divergence_and_early_stopping_ranks_alike():
    """Finite weights whose validation loss is not finite (one target of 1e20, a unit slip: its
    square overflows float32) train on, never naming that epoch the best: no divergence to
    lower lr for, which would not help, nor a removed run. EarlyStopping ranks such an epoch
    last as the trainer does, so both name the same best epoch."""
    from neuralab.training.callbacks import EarlyStopping

    torch.manual_seed(0)
    x, xv = torch.randn(200, 4), torch.randn(20, 4)
    yv = xv.sum(1, keepdim=True)
    yv[0] = 1e20
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    trainer = Trainer(model, TrainConfig(epochs=3, device="cpu", loss="mse", lr=1e-3), verbose=False)
    with pytest.warns(UserWarning, match="the validation loss is not a finite number, though the model's outputs "
                                         "and the targets are") as said:
        history = trainer.fit(x, x.sum(1, keepdim=True), val=(xv, yv))
    assert len(history) == 3 and all(math.isinf(r["val_loss"]) for r in history)
    assert len([w for w in said if "validation loss" in str(w.message)]) == 1
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    nan = float("nan")
    trainer.history = [{"epoch": 1, "val_loss": nan}, {"epoch": 2, "val_loss": 0.5}, {"epoch": 3, "val_loss": 0.6}]
    assert trainer.best_epoch() == EarlyStopping(patience=2)._best(trainer) == 2


def test_two_processes_stop_together_when_training_diverges(tiny_fashion, tmp_path):
    """Each process sees the loss summed over both shares: both stop at epoch 1, none waits for the other."""
    args = ["train", "--model", "mlp", "--data", "fashion-mnist", "--data-dir", str(tiny_fashion), "--epochs", "3",
            "--lr", "1e9", "--batch-size", "50", "--quiet", "--out", str(tmp_path / "ddp")]
    ddp = subprocess.run([*TORCHRUN, "-m", "neuralab",
                          *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=300)
    said = {line for line in ddp.stderr.splitlines() if line.startswith("neuralab:")}
    assert ddp.returncode != 0 and said == {f"neuralab: error: --lr 1000000000.0: {DIVERGED}"}, ddp.stderr[-2000:]
    assert "test accuracy" not in ddp.stdout and not (tmp_path / "ddp").exists()


# --- settings of the wrong type from Python -----------------------------------------------------

@pytest.mark.parametrize("field, value", [("epochs", "3"), ("batch_size", 2.5), ("lr", "0.1"), ("epochs", True),
                                          ("momentum", None), ("channels_last", "no")])
def test_a_setting_of_the_wrong_type_is_refused_by_name(field, value):
    with pytest.raises(ParameterError) as e:
        TrainConfig(**{field: value}).check()
    assert e.value.parameter == field and str(e.value).startswith(f"{field}={value!r}: must be ")


def test_numpy_numbers_are_taken_as_pythons_and_stored_in_config_json(tiny_fashion, tmp_path):
    # what a sweep over np.arange or np.linspace hands over
    train = {"epochs": np.int64(1), "batch_size": np.int32(64), "lr": np.float32(0.5) / 100, "seed": np.uint8(3)}
    run = train_classifier(config(tiny_fashion, **train), out=tmp_path / "run", verbose=False).run_dir
    stored = json.loads((run / "config.json").read_text())["config"]["train"]
    assert {k: stored[k] for k in train} == {"epochs": 1, "batch_size": 64, "lr": pytest.approx(0.005), "seed": 3}
    assert [type(stored[k]) for k in train] == [int, int, float, int]


# --- the forecast pages ---------------------------------------------------------------------------

def test_a_backtest_of_one_fold_is_said_so(tmp_path):
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.windows import WindowConfig

    s = load_series("sp500", "Close")
    csv = tmp_path / "closes.csv"
    pd.DataFrame({"Date": s.times[:150].strftime("%Y-%m-%d"), "Close": s.values[:150, 0]}).to_csv(csv, index=False)
    cfg = ForecastConfig(data=str(csv), windows=WindowConfig(lookback=5, transform="none"),
                         model=ModelConfig("lstm", hidden=[4]), backtest_folds=1,
                         train=series_train_config(epochs=1, device="cpu"))
    page = (run_forecast(cfg, out=tmp_path / "run", verbose=False).run_dir / "report.html").read_text()
    assert "Rolling-origin backtest (1 fold: " in page and "1 folds" not in page


def test_the_forecast_page_of_a_classifier_run_names_the_run_and_what_to_give(tiny_fashion, tmp_path):
    from neuralab.web import create_app

    train_classifier(config(tiny_fashion), out=tmp_path / "runs" / "mlp", verbose=False)
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as client:
        r = client.get("/api/forecast", params={"run": "mlp"})
    assert r.status_code == 404
    assert r.json()["error"] == "run='mlp': not a forecast run; give a run that /api/runs lists with kind forecaster"


@pytest.mark.parametrize("warmup", [-0.5, 1.5, float("nan")])
def test_a_warm_up_that_is_no_fraction_of_the_steps_is_refused_by_name(warmup):
    with pytest.raises(ParameterError, match="warmup") as e:
        TrainConfig(warmup=warmup).check()
    assert e.value.parameter == "warmup"


def cgroup_tree(root, membership: str, files: dict[str, str]):
    """A /proc/self/cgroup and a cgroup tree as the kernel writes them, under ``root``."""
    (root / "cgroup").write_text(membership)
    for name, text in files.items():
        (root / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "fs" / name).write_text(text)
    return root / "cgroup", root / "fs"


@pytest.mark.parametrize("membership, files, cpus", [
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),                                     # v2, no limit
    ("0::/\n", {"cpu.max": "150000 100000\n"}, 2),                                     # docker run --cpus 1.5
    ("0::/kubepods/pod1/c1\n", {"cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "50000 100000\n",
                                "kubepods/pod1/c1/cpu.max": "max 100000\n"}, 1),       # the pod's limit, above
    ("12:cpu,cpuacct:/job_7\n1:name=systemd:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                                                   "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                                                   "cpu,cpuacct/job_7/cpu.cfs_quota_us": "400000\n",
                                                   "cpu,cpuacct/job_7/cpu.cfs_period_us": "100000\n"}, 4),  # v1
    ("1:cpu:/\n0::/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
])
def test_a_cpu_quota_is_read_from_the_cgroup_files(tmp_path, membership, files, cpus):
    from neuralab.training.device import _quota_cpus

    assert _quota_cpus(*cgroup_tree(tmp_path, membership, files)) == cpus


def test_training_under_a_cpu_quota_computes_with_that_many_threads(tmp_path, monkeypatch):
    """torch counts the cores it may run on; a quota of one CPU's time on more cores runs one
    thread, and the run records it."""
    from neuralab.training import device

    monkeypatch.setattr(device, "quota_cpus", lambda: 1)
    seen = []

    class Threads(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append(torch.get_num_threads())

    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 2, (64,))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with device.cpu_threads(2):  # restored after: every later test in this process would compute on 2
        trainer = Trainer(model, TrainConfig(epochs=1, batch_size=32, device="cpu"), callbacks=[Threads()],
                          verbose=False)
        trainer.fit(x, y)
        assert seen == [1] and trainer.environment["threads"] == 1 and torch.get_num_threads() == 2
        trainer = Trainer(model, TrainConfig(epochs=1, batch_size=32, device="cpu", threads=2),
                          callbacks=[Threads()], verbose=False)
        trainer.fit(x, y)  # threads given: the user's choice stands
    assert seen == [1, 2]


def test_a_resumed_run_that_diverges_keeps_its_run_and_says_a_new_run_must_lower_lr(tiny_fashion, tmp_path,
                                                                                     cut_in_epoch_2):
    """A resume keeps the run's settings, so "lower it" alone would ask for what `--resume` refuses."""
    from neuralab.runs import Interrupted, Run, Status
    from neuralab.training import resume_classifier

    restore = cut_in_epoch_2()
    # plain SGD at lr 1.2 overshoots more each epoch (above): epoch 1 is finite, a later one is not
    settings = dict(epochs=10, lr=1.2, optimizer="sgd", schedule="constant")
    with pytest.raises(Interrupted):
        train_classifier(config(tiny_fashion, **settings), out=tmp_path / "run", verbose=False)
    restore()
    with pytest.raises(Diverged) as e:
        resume_classifier(tmp_path / "run", verbose=False)
    assert e.value.parameter == "lr" and e.value.epoch >= 2
    assert str(e.value).endswith(f"the run keeps its last finite epoch ({tmp_path / 'run'}); start a new run with "
                                 "a lower one")
    assert Run(tmp_path / "run").status() is Status.INTERRUPTED
