"""A run's log and its TensorBoard events stay whole across stops and resumes, as metrics.jsonl
does: a kill between an epoch's checkpoint (its commit point) and its events leaves the resume
to write them; SIGTERM there waits for the epoch's own writes; the log names the run from its
first line and says where a resume goes on and why training stopped early; a user's model that
fails in the middle of training is said in one line, its run kept only where an epoch is.

Real handwritten digits (scikit-learn's) and a daily series with a weekly cycle; the kills
are NEURALAB_CRASH_AT's (neuralab.files), in a child process, as in tests/test_runs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import digits_folder

from neuralab import runs
from neuralab.cli import main
from neuralab.runs import Run, Status

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"))


def command(*args, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("NEURALAB_CRASH_AT", None)
    if crash_at:
        env["NEURALAB_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "neuralab", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


def train_args(digits: Path, out: Path, *extra) -> list:
    """A small CNN (its first convolution gives TensorBoard its pictures) on the digits."""
    return ["train", "--model", "cnn", "--data", digits, "--epochs", "3", "--batch-size", "64", "--lr", "0.01",
            "--seed", "3", "--threads", "1", "--tensorboard", "--out", out, *extra]


def forecast_args(csv: Path, out: Path, *extra) -> list:
    return ["forecast", "--data", csv, "--target", "load", "--date-column", "day", "--lookback", "7", "--horizon",
            "2", "--model", "rnn", "--hidden", "4", "--epochs", "3", "--patience", "0", "--backtest-folds", "1",
            "--seed", "1", "--threads", "1", "--tensorboard", "--out", out, *extra]


def events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]


def assert_every_epoch_once(run: Path, epochs: int, pictures: bool) -> None:
    """Each epoch's scalars in TensorBoard once, equal to metrics.jsonl's (and its pictures)."""
    lines = metrics(run)
    assert [m["epoch"] for m in lines] == list(range(1, epochs + 1))
    train, val = events(run / "tensorboard" / "train"), events(run / "tensorboard" / "validation")
    for acc, key in ((train, "loss"), (val, "val_loss")):
        shown = [(e.step, e.value) for e in acc.Scalars("epoch_loss")]
        assert [step for step, _ in shown] == list(range(1, epochs + 1)), (key, shown)
        assert [value for _, value in shown] == pytest.approx([m[key] for m in lines], rel=1e-6), key
    assert len(train.Tensors("summary/text_summary")) == 1
    if pictures:
        for tag in ("first_conv/filters", "first_conv/feature_maps"):
            assert [i.step for i in train.Images(tag)] == list(range(1, epochs + 1)), tag


# --- a kill between the checkpoint and the events: the resume writes them -------------------

def test_a_classifier_killed_after_its_checkpoint_shows_every_epoch_once_in_tensorboard(digits, tmp_path):
    run = tmp_path / "run"
    killed = command(*train_args(digits, run), crash_at=f"{runs.METRICS}:2")  # epoch 2 committed, nothing after
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # the log names the run before any epoch, so a job killed outright says which run to resume
    header = next(line for line in killed.stdout.splitlines() if line.startswith("cnn on "))
    assert header.endswith(f", seed 3, run {run}")
    resumed = command("train", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from epoch 2 of 3, its last checkpoint: training goes on at epoch 3\n" in resumed.stdout
    assert_every_epoch_once(run, 3, pictures=True)


def test_a_forecast_killed_after_its_checkpoint_shows_every_epoch_once_in_tensorboard(series_csv, tmp_path):
    run = tmp_path / "run"
    killed = command(*forecast_args(series_csv, run), crash_at=f"{runs.METRICS}:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert f"seed 1, run {run}\n" in killed.stdout
    resumed = command("forecast", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from epoch 2 of 3, its last checkpoint: training goes on at epoch 3\n" in resumed.stdout
    assert_every_epoch_once(run, 3, pictures=False)


def test_a_run_killed_in_its_first_epoch_says_its_resume_starts_again(digits, tmp_path):
    run = tmp_path / "run"
    assert command(*train_args(digits, run), crash_at=f"{runs.LAST}:1").returncode == -signal.SIGKILL
    resumed = command("train", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert (f"resuming {run}: it stopped before its first epoch finished, so training starts again from epoch 1 "
            "of 3\n") in resumed.stdout
    assert_every_epoch_once(run, 3, pictures=True)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1])  # SLURM's --signal=TERM@T, --signal=USR1@T
def test_sigterm_right_after_the_checkpoint_waits_for_the_epochs_line_and_events(digits, tmp_path, monkeypatch,
                                                                                 capsys, stop):
    """The signal a scheduler sends, landing between the checkpoint and the epoch's other writes:
    the command still ends with the signal's status (143, 138) and the resume line, and the
    epoch's line and events are there."""
    from neuralab.training.trainer import Trainer

    original = Trainer.save_epoch

    def saved_then_terminated(self, epoch):
        original(self, epoch)
        if epoch == 1:
            os.kill(os.getpid(), stop)  # acted on at once, unless the trainer holds it

    def not_taken(signum, frame):  # a signal the command left at its default would end pytest too
        raise AssertionError(f"{signal.Signals(signum).name} was not taken as a stop")

    monkeypatch.setattr(Trainer, "save_epoch", saved_then_terminated)
    previous = signal.signal(stop, not_taken)
    run = tmp_path / "run"
    try:
        assert main([str(a) for a in train_args(digits, run)]) == 128 + stop
    finally:
        signal.signal(stop, previous)
    out, err = capsys.readouterr()
    assert "\nepoch 1/3  " in out and "epoch 2/3" not in out
    assert f"`neuralab train --resume {run}` continues it" in err and err.count("\n") == 1
    assert [m["epoch"] for m in metrics(run)] == [1]
    assert [e.step for e in events(run / "tensorboard" / "train").Scalars("epoch_loss")] == [1]
    assert Run(run).status() is Status.INTERRUPTED


# --- early stopping says so -----------------------------------------------------------------

def test_early_stopping_says_where_and_why_in_one_line(capsys):
    """Random labels: the validation loss stops improving within a few epochs."""
    from neuralab.training.trainer import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 8, generator=g), torch.randint(0, 3, (256,), generator=g)
    val = (torch.randn(128, 8, generator=g), torch.randint(0, 3, (128,), generator=g))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    trainer = Trainer(model, TrainConfig(epochs=40, batch_size=32, lr=0.05, patience=2, threads=1))
    history = trainer.fit(x, y, val=val)
    out = capsys.readouterr().out
    stopped = len(history)
    assert stopped < 40
    assert out.splitlines()[-1] == (f"stopped early at epoch {stopped} of 40: val_loss has not improved on epoch "
                                    f"{trainer.best_epoch()}'s for 2 epochs (patience 2); the model goes back to its "
                                    "best epoch's weights")
    assert out.count("stopped early") == 1


def test_a_forecast_stopped_early_says_so(series_csv, tmp_path, capsys):
    args = forecast_args(series_csv, tmp_path / "run")
    args[args.index("--patience") + 1], args[args.index("--epochs") + 1] = "1", "60"
    assert main([str(a) for a in args if a != "--tensorboard"]) == 0
    out = capsys.readouterr().out
    stopped = len(metrics(tmp_path / "run"))
    assert stopped < 60
    assert f"\nstopped early at epoch {stopped} of 60: val_loss has not improved on epoch {stopped - 1}'s for 1 " \
           "epoch (patience 1); the model goes back to its best epoch's weights\n" in out


# --- a user's model that fails in the middle of training --------------------------------------

FAILS_LATER = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.steps = 0

    def forward(self, x):
        if self.training:  # the pre-check's steps, then the epochs' (8 to an epoch)
            self.steps += 1
            if self.steps > FAIL_AFTER:
                raise ValueError(f"fails on training step {self.steps}")
        return self.fc(x)
"""


def user_model(folder: Path, fail_after: int) -> Path:
    path = folder / "net_late.py"
    path.write_text(FAILS_LATER.replace("FAIL_AFTER", str(fail_after)))
    return path


def user_train(digits: Path, model: Path, out: Path) -> list[str]:
    return ["train", "--model", str(model), "--data", str(digits), "--epochs", "3", "--batch-size", "64",
            "--threads", "1", "--quiet", "--out", str(out)]


def test_a_user_model_failing_in_its_first_epoch_is_one_line_and_leaves_no_run(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(user_train(digits, user_model(tmp_path, 4), run)) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralab: error: torch:net_late.py:Net: the model failed in training at epoch 1, batch ")
    assert "(ValueError: fails on training step 5); no epoch had finished, so the run is not kept" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not run.exists()


def test_a_user_model_failing_later_keeps_its_finished_epochs_and_names_the_resume(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(user_train(digits, user_model(tmp_path, 14), run)) == 2  # 1-2 checks, 8 steps an epoch
    err = capsys.readouterr().err
    assert "torch:net_late.py:Net: the model failed in training at epoch 2, batch " in err
    assert "(ValueError: fails on training step 15); the run keeps epoch 1 and is interrupted" in err
    assert f"go on from epoch 2 with --resume {run} and --trust-code" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert Run(run).status() is Status.INTERRUPTED and [m["epoch"] for m in metrics(run)] == [1]
    assert main(["runs", str(tmp_path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["status"], row["epochs"]) == ("interrupted", 1)


def test_in_python_the_failure_keeps_the_models_own_exception_as_its_cause(digits, tmp_path):
    import neuralab
    from neuralab.training.inputs_check import ModelFailed

    config = neuralab.ClassifierConfig(model=str(user_model(tmp_path, 4)), data=str(digits), train=neuralab.TrainConfig(
        epochs=2, batch_size=64, threads=1))
    with pytest.raises(ModelFailed) as failed:
        neuralab.train_classifier(config, out=tmp_path / "run", verbose=False)
    assert isinstance(failed.value.__cause__, ValueError) and failed.value.epoch == 1
    assert not (tmp_path / "run").exists()


def test_a_failure_in_neuralabs_own_architecture_stays_a_traceback(digits, tmp_path, monkeypatch):
    """What neuralab's own code raises is a bug of neuralab's, shown whole, not blamed on a model."""
    from neuralab.models.fast import accelerate
    from neuralab.training import trainer as trainer_module

    calls = []

    def broken(model):
        model = accelerate(model)
        forward = model.forward

        def failing(x):
            calls.append(1)
            if len(calls) > 3:
                raise RuntimeError("a bug in neuralab")
            return forward(x)

        model.forward = failing
        return model

    monkeypatch.setattr(trainer_module, "accelerate", broken)
    with pytest.raises(RuntimeError, match="a bug in neuralab"):
        main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "2", "--batch-size", "64", "--threads",
              "1", "--quiet", "--out", str(tmp_path / "run")])


TORCH_FORECASTER = """
import torch.nn as nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 4, batch_first=True)
        self.head = nn.Linear(4, 2)
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps > 1:  # the first epoch's second step (the trainer checks no step of it first)
                raise IndexError("window out of range")
        return self.head(self.gru(x)[0][:, -1])
"""


def test_a_users_forecasting_network_failing_mid_training_is_one_line(series_csv, tmp_path, capsys):
    (tmp_path / "small.py").write_text(TORCH_FORECASTER)
    assert main(["forecast", "--data", str(series_csv), "--target", "load", "--date-column", "day", "--lookback", "7",
                 "--horizon", "2", "--model", f"{tmp_path / 'small.py'}:Small", "--epochs", "3", "--backtest-folds",
                 "1", "--threads", "1", "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralab: error: torch:small.py:Small: the model failed in training at epoch 1, batch 2 of 2 ")
    assert "(IndexError: window out of range); no epoch had finished" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_fault_of_neuralabs_kernels_in_a_model_of_pytorchs_layers_stays_a_traceback(monkeypatch):
    """A Sequential of PyTorch's layers runs no code of the user's: accelerate gives its Linear
    neuralab's kernel, whose faults are neuralab's to mend, shown whole."""
    from torch import nn

    import neuralab.models.fast as fast
    from neuralab.training.config import TrainConfig
    from neuralab.training.inputs_check import ModelFailed
    from neuralab.training.trainer import CLASSIFICATION, Trainer

    # a fault of the fast kernel met at a later batch, raised from code that is neuralab's own
    # file (as a bug there would be), not this test's
    space = {"forward": fast.Linear.forward, "calls": []}
    exec(compile("def buggy(self, x):\n"
                 "    calls.append(1)\n"
                 "    if len(calls) > 4:\n"
                 "        raise RuntimeError(\"a bug in neuralab's kernel\")\n"
                 "    return forward(self, x)\n", fast.__file__, "exec"), space)
    monkeypatch.setattr(fast.Linear, "forward", space["buggy"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=8, threads=1), CLASSIFICATION, verbose=False)
    with pytest.raises(RuntimeError, match="a bug in neuralab's kernel") as e:
        trainer.fit(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    assert not isinstance(e.value, ModelFailed)


@pytest.mark.parametrize("fault", ["a shape its forward gets wrong, met in neuralab's kernel",
                                   "an in-place change of a tensor its backward needs"])
def test_a_users_fault_is_the_models_wherever_it_surfaces(fault):
    from torch import nn

    from neuralab.training.config import TrainConfig
    from neuralab.training.inputs_check import ModelFailed
    from neuralab.training.trainer import CLASSIFICATION, Trainer

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(4, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls < 4:  # the steps check_model tries, and the first batches
                return self.dense(x)
            if fault.startswith("a shape"):
                return self.dense(x.reshape(4, -1))  # a batch size written into the model
            out = torch.sigmoid(self.dense(x))
            out += 1  # sigmoid's backward needs its output as it was
            return out

    trainer = Trainer(Net(), TrainConfig(epochs=1, batch_size=8, threads=1), CLASSIFICATION, verbose=False)
    with pytest.raises(ModelFailed, match=r"^Net: the model failed in training at epoch 1, batch \d+ of 8"):
        trainer.fit(torch.randn(64, 4), torch.randint(0, 3, (64,)))


def test_a_stop_sent_twice_at_once_waits_for_the_epochs_writes_and_one_insisted_on_does_not(monkeypatch):
    """SLURM signals every process of a torchrun job, and torchrun passes its own on: the same
    stop twice within milliseconds. A second one later is the user insisting (a write that hangs)."""
    import time

    from neuralab import files

    acted = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: acted.append(time.monotonic()))
    try:
        with files.signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # the same stop, forwarded
            assert acted == []  # the epoch's writes go on
        assert len(acted) == 1  # acted on once they are done
        acted.clear()
        monkeypatch.setattr(files, "INSISTS", 0.05)
        with files.signals_held():
            signal.raise_signal(signal.SIGTERM)
            time.sleep(0.1)
            signal.raise_signal(signal.SIGTERM)  # asked again: acts at once, inside the block
            assert len(acted) == 1
    finally:
        signal.signal(signal.SIGTERM, previous)
