"""A TensorBoard callback's `log_dir` that its event writers cannot make (a file, a path through a
file, /proc, not a str path) is refused in one line naming `log_dir`, before the run is made.

Such a folder failed only once training began, in Python's words (NotADirectoryError,
FileNotFoundError, TypeError), leaving a run folder with config.json, model.json and
summary.txt listed as interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab import ClassifierConfig, TrainConfig, Trainer, train_classifier
from neuralab.errors import ParameterError
from neuralab.training.tensorboard import TensorBoard


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("digits"), n=200)


def _unmakeable(tmp_path: Path) -> dict:
    (tmp_path / "notes.txt").write_text("epoch 1: loss 2.3\n")
    cases = {"a file": (str(tmp_path / "notes.txt"), "is a file, not a folder"),
             "under a file": (str(tmp_path / "notes.txt" / "tb"), "a part of the path is a file, not a folder"),
             "bytes": (os.fsencode(tmp_path / "tb"), "give a folder's path, a str or pathlib.Path")}
    if os.path.isdir("/proc/self"):  # Linux: /proc takes no new folders, even from root
        cases["/proc"] = ("/proc/neuralab-tb", "the file system there takes no new files")
    return cases


@pytest.mark.parametrize("case", ["a file", "under a file", "bytes", "/proc"])
def test_a_log_dir_that_cannot_be_made_is_refused_before_the_run_is_made(digits, tmp_path, case):
    cases = _unmakeable(tmp_path)
    if case not in cases:
        pytest.skip("no /proc on this system")
    log_dir, reason = cases[case]
    out = tmp_path / "run"
    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, threads=1))
    with pytest.raises(ParameterError) as e:
        train_classifier(config, out=out, verbose=False, callbacks=[TensorBoard(log_dir)])
    assert e.value.parameter == "log_dir"
    assert reason in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # the check left nothing behind


def test_a_trainer_without_a_run_refuses_the_log_dir_before_training(tmp_path):
    (tmp_path / "notes.txt").write_text("epoch 1: loss 2.3\n")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ParameterError, match="log_dir.*is a file, not a folder"):
        trainer = Trainer(model, TrainConfig(epochs=1, threads=1), verbose=False,
                          callbacks=[TensorBoard(tmp_path / "notes.txt")])
        trainer.fit(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_log_dir_to_be_made_under_folders_still_trains(digits, tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'neuralab[tensorboard]' to test TensorBoard")
    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, threads=1))
    train_classifier(config, out=tmp_path / "run", verbose=False,
                     callbacks=[TensorBoard(tmp_path / "logs" / "mlp", images=False)])
    assert any((tmp_path / "logs" / "mlp" / "train").iterdir())
