"""progress.json (runs.PROGRESS): where a training's epoch stands, for other processes to watch.
Written at an epoch's start, at most every WRITE_EVERY seconds and at its last step, always
whole; removed when training stops; written by classifier and forecasting runs alike."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers import idx_subset
from neuralab import runs
from neuralab.training import progress as progress_module
from neuralab.training.progress import WRITE_EVERY, Progress

FIELDS = {"epoch", "epochs", "step", "steps", "samples_per_s", "eta_s", "updated"}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_file_is_rewritten_at_most_twice_a_second_and_at_the_epochs_end(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    path = tmp_path / runs.PROGRESS
    bar = Progress(3, 320, enabled=False, run_dir=tmp_path)
    bar.start_epoch(2, 10)
    first = json.loads(path.read_text())
    assert set(first) == FIELDS and (first["epoch"], first["epochs"], first["step"], first["steps"]) == (2, 3, 0, 10)
    assert first["samples_per_s"] is None and first["eta_s"] is None
    for _ in range(3):  # 0.3 s of steps: no rewrite yet
        clock.now += 0.1
        bar.step(None, 32, 32)
    assert json.loads(path.read_text())["step"] == 0
    clock.now += WRITE_EVERY
    bar.step(None, 32, 32)
    state = json.loads(path.read_text())
    took = 0.3 + WRITE_EVERY
    assert state["step"] == 4 and state["samples_per_s"] == pytest.approx(4 * 32 / took)
    assert state["eta_s"] == pytest.approx(took / 4 * 6)
    for _ in range(6):  # the last step is written at once, however soon
        clock.now += 0.01
        bar.step(None, 32, 32)
    assert json.loads(path.read_text())["step"] == 10
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    bar.close()
    assert not path.exists()


def test_without_a_run_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bar = Progress(1, 10, enabled=False)
    bar.start_epoch(1, 2)
    bar.step(None, 5, 5)
    bar.close()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def writes(monkeypatch):
    """Every progress.json a training writes, read back right after it was written."""
    seen = []
    original = Progress._write

    def spy(self, now):
        original(self, now)
        seen.append(json.loads(self.file.read_text()))
    monkeypatch.setattr(Progress, "_write", spy)
    return seen


def check_epochs(seen: list[dict], epochs: int, steps: int) -> None:
    assert seen and all(set(s) == FIELDS for s in seen)
    assert [s["epoch"] for s in seen] == sorted(s["epoch"] for s in seen)
    assert {s["epoch"] for s in seen} == set(range(1, epochs + 1)) and {s["epochs"] for s in seen} == {epochs}
    for epoch in range(1, epochs + 1):
        mine = [s for s in seen if s["epoch"] == epoch]
        assert mine[0]["step"] == 0 and mine[-1]["step"] == mine[-1]["steps"] == steps
        assert [s["step"] for s in mine] == sorted(s["step"] for s in mine)
        assert mine[-1]["samples_per_s"] > 0 and mine[-1]["eta_s"] == 0


def test_a_classifier_run_writes_its_progress_while_it_trains(fashion_mnist, tmp_path, writes):
    from neuralab.training import ClassifierConfig, TrainConfig, train_classifier

    data = idx_subset(fashion_mnist, tmp_path / "fashion", 1000, 100)
    config = ClassifierConfig(model="mlp", data="fashion-mnist", data_dir=str(data),
                              train=TrainConfig(epochs=2, batch_size=100, threads=1))
    result = train_classifier(config, out=tmp_path / "run", verbose=False)
    check_epochs(writes, 2, 9)  # 900 training images (10% held out), batches of 100
    assert not (result.run_dir / runs.PROGRESS).exists()


def test_a_forecast_run_writes_its_progress_while_it_trains(tmp_path, writes):
    pipeline = pytest.importorskip("neuralab.forecasting.pipeline")
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.windows import WindowConfig

    csv = tmp_path / "sine.csv"
    days = np.arange(240)
    values = 10 + 5 * np.sin(days / 7) + np.random.default_rng(0).normal(0, 0.3, len(days))
    csv.write_text("date,value\n" + "".join(
        f"{np.datetime64('2020-01-01') + d},{v:.3f}\n" for d, v in zip(days, values)))
    config = pipeline.ForecastConfig(data=str(csv), windows=WindowConfig(lookback=14, horizon=2),
                                     model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=2),
                                     backtest_folds=1)
    result = pipeline.run_forecast(config, out=tmp_path / "run", verbose=False)
    steps = writes[-1]["steps"]
    assert steps >= 1
    check_epochs(writes, 2, steps)
    assert not (result.run_dir / runs.PROGRESS).exists()


NOTEBOOK_CELL = """
import time
import torch
from neuralab.training import TrainConfig, Trainer, progress

progress.DRAW_EVERY = 0.0  # a redraw at every step, so that a short training shows them
x, y = torch.randn(512, 1, 8, 8), torch.randint(0, 2, (512,))
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
trainer = Trainer(model, TrainConfig(epochs=2, batch_size=64, device="cpu"))
trainer.fit(x, y)
print("done")
"""


def test_in_a_notebook_each_epoch_is_one_output_redrawn_as_a_bar_that_ends_as_its_line(tmp_path):
    """As Keras's fit in Jupyter (and Colab): a bar per epoch, redrawn in place while it trains,
    then its line; not one line per epoch only at its end, nor each line twice."""
    nbformat = pytest.importorskip("nbformat", reason="pip install -e .[test] brings nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CELL)])
    redraws = []

    class Client(NotebookClient):
        def process_message(self, msg, cell, cell_index):  # every message the kernel sends the notebook
            if msg["msg_type"] == "update_display_data":
                redraws.append(msg["content"]["data"]["text/plain"])
            return super().process_message(msg, cell, cell_index)

    Client(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[0].outputs
    shown = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    printed = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    lines = [line for line in printed.splitlines() if line.startswith("epoch")]
    assert shown == ["", ""]  # each epoch's bar, blanked once its line is printed under it
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss" in line and "lr" in line for line in lines) and printed.strip().endswith("done")
    bars = [r for r in redraws if "━" in r]
    assert any(r.startswith("epoch 1/2") and "/8" in r for r in bars) and any(r.startswith("epoch 2/2") for r in bars)


def _drawn_in_a_terminal(monkeypatch, **env) -> str:
    """What a terminal (a pseudo-terminal, ``env`` its TERM and COLUMNS) receives over one epoch of
    20 steps of 60 ms, the bar's redraws and the epoch's line."""
    import os
    import select
    import time

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as terminal:
        shown = Progress(epochs=2, samples=100, stream=terminal)
        shown.start_epoch(1, 20)
        for _ in range(20):
            time.sleep(0.06)
            shown.step(loss_sum=0.5, share=1, batch=5)
        shown.end_epoch({"epoch": 1, "loss": 0.5, "lr": 1e-3, "samples": 100, "seconds": 1.2})
        received = b""
        while select.select([master], [], [], 0.2)[0]:
            received += os.read(master, 1 << 16)
    os.close(master)
    return received.decode()


def test_a_dumb_terminal_gets_the_logs_lines_and_a_narrow_one_the_time_left(monkeypatch):
    """A dumb terminal (Emacs's shell) got a bar it never drew and a blank line before each epoch's;
    a 40-column one had the time left cut to 0:00:… on every redraw."""
    dumb = _drawn_in_a_terminal(monkeypatch, TERM="dumb", COLUMNS="80")
    assert dumb == "epoch 1/2  loss 0.5000  lr 1.00e-03  1.2s\r\n"
    narrow = _drawn_in_a_terminal(monkeypatch, TERM="xterm", COLUMNS="40")
    assert "…" not in narrow and "━" not in narrow and "20/20" in narrow and "0:00:0" in narrow
    narrower = _drawn_in_a_terminal(monkeypatch, TERM="xterm", COLUMNS="30")
    assert "0:00:0" in narrower and "0:00:…" not in narrower
    wide = _drawn_in_a_terminal(monkeypatch, TERM="xterm", COLUMNS="100")
    assert "━" in wide and "…" not in wide
    for shown in (narrow, wide):
        assert shown.endswith("epoch 1/2  loss 0.5000  lr 1.00e-03  1.2s\r\n")


def test_a_pipe_whose_reader_went_away_stops_the_lines_not_the_training(tmp_path):
    """A training printed to a pipe (`python train.py | head -3`) whose reader then left: the
    epoch's line, and every line after it, go nowhere instead of ending the training."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as stream:
        bar = Progress(2, 320, stream=stream, run_dir=tmp_path)
        bar.start_epoch(1, 10)
        for _ in range(10):
            bar.step(None, 32, 32)
        bar.end_epoch({"epoch": 1, "loss": 0.5, "accuracy": 0.8, "lr": 1e-3, "seconds": 1.0, "samples": 320})
        bar.print("test accuracy 80.00%")
        bar.close()
        print("report: run/report.html", file=stream, flush=True)  # the caller's own lines too
        assert os.path.samestat(os.fstat(stream.fileno()), os.stat(os.devnull))
