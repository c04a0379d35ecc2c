"""What a notebook user sees: the epoch lines in every Jupyter front end (a notebook, which
redraws a display in place, and jupyter console / qtconsole / Spyder, which show a display
only as first drawn) and in a redirected stdout; figures whose axes read cleanly; tutorial
cells that print no stray values. The training cells run on a real kernel through nbclient,
as tests/test_progress.py runs its own."""

from __future__ import annotations

import ast
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from helpers import idx_subset

nbformat = pytest.importorskip("nbformat", reason="pip install -e .[test] brings nbformat")

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"

SETUP = """
import contextlib, io
import torch
from neuralab import Preprocess, load_image_data
from neuralab.training import TrainConfig, Trainer, progress
from neuralab.models import build_model

progress.DRAW_EVERY = 0.0  # a redraw at every step, so that a short training shows them
data = load_image_data("fashion-mnist", data_dir={data!r})
pre = Preprocess.fit(data.train.x)
x, y = pre(data.train.x), torch.from_numpy(data.train.y)


def fit():
    model = build_model("mlp", data.input_shape, len(data.classes))
    return Trainer(model, TrainConfig(epochs=2, batch_size=64, device="cpu", threads=1)).fit(x, y)
"""
TRAIN = 'fit()\nprint("done")'
REDIRECTED = """
log = io.StringIO()
with contextlib.redirect_stdout(log):
    fit()
print(repr(log.getvalue()))
"""


@pytest.fixture(scope="module")
def kernel(fashion_mnist, tmp_path_factory):
    """(cells as the notebook kept them, every message each cell sent in order): a training
    cell, then one whose stdout is redirected, on real Fashion-MNIST images."""
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("notebook")
    data = idx_subset(fashion_mnist, folder / "fashion", 500, 10)  # 450 to train on: 8 steps of 64
    cells = [SETUP.format(data=str(data)), TRAIN, REDIRECTED]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    sent = {i: [] for i in range(len(cells))}

    class Client(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            sent[cell_index].append(msg)
            return super().process_message(msg, cell, cell_index)

    Client(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return notebook.cells, sent


def epoch_lines(text: str) -> list[str]:
    return re.findall(r"^epoch \d/2  loss .*$", text, flags=re.MULTILINE)


def test_a_console_that_ignores_redraws_still_shows_each_epochs_line(kernel):
    """jupyter console shows a display as first drawn and a stream as it comes, never an
    update: it once showed only each epoch's empty bar ("epoch 1/2  0/8")."""
    _, sent = kernel
    console = "\n".join(m["content"]["text"] if m["msg_type"] == "stream" else m["content"]["data"]["text/plain"]
                        for m in sent[1] if m["msg_type"] in ("stream", "display_data", "execute_result"))
    assert [line.split("  ")[0] for line in epoch_lines(console)] == ["epoch 1/2", "epoch 2/2"]


def test_a_notebook_shows_each_epochs_line_once_and_no_bar_left(kernel):
    cells, sent = kernel
    outputs = cells[1].outputs
    printed = "".join(o["text"] for o in outputs if o["output_type"] == "stream")
    shown = "\n".join(o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data")
    assert [line.split("  ")[0] for line in epoch_lines(printed + "\n" + shown)] == ["epoch 1/2", "epoch 2/2"]
    assert "━" not in printed + shown and printed.strip().endswith("done")
    redraws = [m["content"]["data"]["text/plain"] for m in sent[1] if m["msg_type"] == "update_display_data"]
    assert any(r.startswith("epoch 1/2  ━") for r in redraws)  # the bar was live while the epoch ran


def test_a_redirected_stdout_gets_the_epoch_lines_as_a_log_does(kernel):
    cells, _ = kernel
    outputs = cells[2].outputs
    assert not [o for o in outputs if o["output_type"] == "display_data"]
    (log,) = [ast.literal_eval(o["text"]) for o in outputs if o["output_type"] == "stream"]
    assert [line.split("  ")[0] for line in epoch_lines(log)] == ["epoch 1/2", "epoch 2/2"]
    assert "\r" not in log and "━" not in log


def drawn_labels(fig, axis: str = "x") -> list:
    """The tick labels of each of ``fig``'s axes that show text, after drawing."""
    fig.canvas.draw()
    return [[t for t in getattr(ax, f"get_{axis}ticklabels")() if t.get_text()] for ax in fig.axes]


@pytest.mark.parametrize("days, unit", [(120, "D"), (240, "h")])
def test_a_forecasts_date_labels_never_run_into_each_other(days, unit):
    """120 days once read "2015-09-012015-09-15"; ten days of hours overlapped outright."""
    from neuralab.reports.forecast import forecasts

    times = np.datetime64("2015-06-01T00") + np.arange(days).astype(f"timedelta64[{unit}]")
    actual = 20 + 5 * np.sin(np.arange(days) / 7) + np.random.default_rng(0).normal(0, 0.5, days)
    fig = forecasts(times, actual, {"lstm": actual + 0.3, "naive": np.roll(actual, 1)}, ylabel="temperature")
    (labels,) = drawn_labels(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    space = min(b.width for b in boxes) / 4  # at least a character's width between two labels
    assert len(boxes) >= 4 and all(right.x0 - left.x1 >= space for left, right in pairwise(boxes))


def histories(epochs: int) -> dict[str, list[dict]]:
    """Two real trainings of ``epochs`` epochs each on a small separable problem."""
    import torch

    from neuralab.training import TrainConfig, Trainer

    torch.manual_seed(0)
    x = torch.randn(256, 1, 4, 4)
    y = (x.mean((1, 2, 3)) > 0).long()
    val = (x[:64] + 0.1 * torch.randn(64, 1, 4, 4), y[:64])
    config = TrainConfig(epochs=epochs, batch_size=64, device="cpu", threads=1)
    return {name: Trainer(model, config, verbose=False).fit(x, y, val=val) for name, model in
            (("linear", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))),
             ("mlp", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                         torch.nn.Linear(8, 2))))}


def test_epochs_compared_across_runs_are_ticked_whole():
    """Tutorial 04's validation loss over 2 epochs once ticked 1.2, 1.4, ... between them."""
    from neuralab.reports import plots

    runs = histories(2)
    fig = plots.per_epoch({"peak learning rate 0.003": runs, "peak learning rate 0.03": runs}, "val_loss",
                          "validation loss", sharey=True)
    for ax, labels in zip(fig.axes, drawn_labels(fig)):
        assert ax.get_xlabel() == "epoch"
        assert [t.get_text() for t in labels if t.get_position()[0] in (1, 2)] == ["1", "2"]
        assert all(float(t.get_position()[0]).is_integer() for t in labels)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["linear", "mlp"]


def last_values(script: Path) -> list[str]:
    """Each code cell of ``script`` that ends in an expression other than a call that returns
    nothing: a notebook prints its value as the cell's Out."""
    jupytext = pytest.importorskip("jupytext")
    silent = {"print", "show", "save_results"}
    found = []
    for cell in jupytext.read(script).cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        last = ast.parse(cell.source).body[-1]
        if isinstance(last, ast.Expr) and not (isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Name)
                                               and last.value.func.id in silent):
            found.append(ast.unparse(last))
    return found


@pytest.mark.parametrize("script", sorted(TUTORIALS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_no_tutorial_cell_prints_a_stray_value(script):
    """Tutorial 04 ended a cell in ``path.write_text(...)``: the notebook showed "Out[..]: 702"."""
    assert last_values(script) == []


def test_the_series_spans_dates_never_run_into_each_other_and_horizon_steps_are_whole():
    """Ten days of hours overlapped in the spans figure; a horizon of 2 ticked 0.8, 1.0, 1.2 ..."""
    from neuralab.reports.forecast import error_by_step, series_spans

    times = np.datetime64("2015-06-01T00") + np.arange(240).astype("timedelta64[h]")
    values = 20 + 5 * np.sin(np.arange(240) / 7)
    fig = series_spans(times, values, {"train": (times[0], times[150]), "test": (times[200], times[-1])})
    (labels,) = drawn_labels(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert len(boxes) >= 4 and all(right.x0 - left.x1 >= min(b.width for b in boxes) / 4
                                   for left, right in pairwise(boxes))
    fig = error_by_step({"lstm": [0.4, 0.6], "persistence": [0.5, 0.7]})
    (steps,) = drawn_labels(fig)
    low, high = fig.axes[0].get_xlim()
    assert [t.get_text() for t in steps if low <= t.get_position()[0] <= high] == ["1", "2"]


def test_a_run_of_one_epoch_is_ticked_at_its_epoch():
    """One epoch's learning curves were ticked 0.945, 0.960 ... 1.050."""
    from neuralab.reports import plots

    fig = plots.learning_curves([{"epoch": 1, "loss": 0.5, "val_loss": 0.6}])
    (labels,) = drawn_labels(fig)
    low, high = fig.axes[0].get_xlim()
    assert [t.get_text() for t in labels if low <= t.get_position()[0] <= high] == ["1"]
