"""neuralab in a Jupyter notebook, as a learner uses it: a training cell interrupted from the
notebook's toolbar (the kernel gets SIGINT mid-epoch), the run resumed in the next cell, and
the result and classifier shown as a cell's last expression. The notebook runs on a real
kernel through nbclient, as tests/test_progress.py runs its own."""

from __future__ import annotations

import threading

import pytest

from helpers import idx_subset

nbformat = pytest.importorskip("nbformat", reason="pip install -e .[test] brings nbformat")

SETUP = """
import time
from neuralab import Callback, ClassifierConfig, TrainConfig, load_classifier, resume_classifier, train_classifier
from neuralab.training import progress

progress.DRAW_EVERY = 0.0  # a redraw at every step: the bar is live when the interrupt comes


class Slow(Callback):  # a full dataset's pace on a small one in epoch 2: the interrupt lands mid-epoch
    def on_step_end(self, trainer, step, steps):
        if trainer.history:  # epoch 1 done: about 10 s for the interrupt to come, should this client fall behind
            time.sleep(0.3)


config = ClassifierConfig(model="mlp", data="fashion-mnist", data_dir={data!r},
                          train=TrainConfig(epochs=2, batch_size=16, threads=1))
"""
CELLS = ['result = train_classifier(config, out="run", callbacks=[Slow()])',  # interrupted in epoch 2
         'result = resume_classifier("run")',
         "result",
         'load_classifier("run")']


@pytest.fixture(scope="module")
def notebook(fashion_mnist, tmp_path_factory):
    """The notebook after it ran: the training cell interrupted by the kernel manager while the
    bar of epoch 2 is drawn, as the stop button does, then the cells after it."""
    from jupyter_client.utils import run_sync
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("notebook")
    data = idx_subset(fashion_mnist, folder / "fashion", 600, 100)  # 540 to train on: 34 steps of 16
    cells = [SETUP.format(data=str(data)), *CELLS]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])

    class Client(NotebookClient):
        interrupted = False

        def process_message(self, msg, cell, cell_index):
            if (cell_index == 1 and not self.interrupted and msg["msg_type"] == "update_display_data"
                    and msg["content"]["data"]["text/plain"].startswith("epoch 2/2  ━")):
                self.interrupted = True  # from a thread: this loop is the one that reads the kernel's replies
                threading.Thread(target=run_sync(self.km.interrupt_kernel)).start()
            return super().process_message(msg, cell, cell_index)

    client = Client(nb, timeout=300, kernel_name="python3", allow_errors=True,
                    resources={"metadata": {"path": str(folder)}})
    client.execute()
    assert client.interrupted
    return nb.cells


def shown(cell) -> list[str]:
    """The progress lines ``cell`` printed (each epoch's bar is blanked when its line is)."""
    return [line for o in cell.outputs if o["output_type"] == "stream"
            for line in o["text"].splitlines() if line.startswith("epoch ")]


def test_an_interrupted_epoch_ends_marked_as_stopped_not_as_a_bar_still_on_its_way(notebook):
    training = notebook[1]
    errors = [o for o in training.outputs if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["Interrupted"]
    first, second = shown(training)
    assert first.startswith("epoch 1/2  loss")  # the finished epoch, as its line
    assert second.startswith("epoch 2/2  ━") and second.endswith("stopped here: this epoch is not kept")
    assert "s left" not in second


def test_the_next_cell_resumes_at_the_interrupted_epoch(notebook):
    resumed = notebook[2]
    assert not [o for o in resumed.outputs if o["output_type"] == "error"]
    assert [line.split("  ")[0] for line in shown(resumed)] == ["epoch 2/2"]
    printed = "".join(o.get("text", "") for o in resumed.outputs if o["output_type"] == "stream")
    assert "test accuracy" in printed


def test_no_cell_prints_warnings(notebook):
    """Reading the live loss for the bar once warned about a tensor that requires grad."""
    stderr = [o["text"] for cell in notebook for o in cell.outputs
              if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert stderr == []


def test_a_result_shows_its_figures_and_epochs_not_a_dump_of_floats(notebook):
    (out,) = notebook[3].outputs
    text, page = out["data"]["text/plain"], out["data"]["text/html"]
    lines = text.splitlines()
    assert lines[0].startswith("RunResult run: test_loss ") and "best epoch 2 of 2" in lines[0]
    assert [line.split("  ")[1] for line in lines[1:3]] == ["epoch 1", "epoch 2"]
    assert "history=[{" not in text and len(lines) == 4
    assert page.count('<img alt="learning curves" src="data:image/png;base64,') == 1
    assert page.count('<img alt="confusion matrix" src="data:image/png;base64,') == 1


def test_a_classifier_shows_what_it_takes_and_gives_not_its_module_tree(notebook):
    (out,) = notebook[4].outputs
    text = out["data"]["text/plain"]
    assert text.startswith("Classifier('mlp': uint8 images (1, 28, 28) -> classes ['T-shirt/top', ")
    assert "(10 in all)" in text and "Linear(" not in text and len(text.splitlines()) == 1
