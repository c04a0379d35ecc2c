"""A review of own modules and moved folders: a resume before the first checkpoint given other
pictures, the summary's unused layer defined first, a reshape to the training batch that the
probe's two pictures divide, warnings said once a run (not once a module object), a moved
folder's new place kept for the commands after the resume, and the web app's Resume for it.
Real pictures: scikit-learn's digits as a folder, MNIST and Fashion-MNIST's files, and CIFAR-sized
colour pictures made from the digits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from helpers import cut_in_epoch, digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.training import ClassifierConfig, TrainConfig, resume_classifier, train_classifier


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def interrupted(run, monkeypatch, epoch: int, data: str, data_dir: str | None = None, model="mlp"):
    whole_again = cut_in_epoch(monkeypatch, epoch)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifierConfig(model=model, data=data, data_dir=data_dir,
                                          train=TrainConfig(epochs=2, batch_size=64, seed=3, lr=0.01)),
                         out=run, verbose=False)
    whole_again()
    return run


# --- 1. a run stopped before its first checkpoint, given other pictures --------------------------

def test_an_mnist_run_stopped_before_its_first_checkpoint_refuses_fashion_mnists_files(
        tmp_path, monkeypatch, capsys, mnist, fashion_mnist):
    """It trained on Fashion-MNIST (the same IDX file names) and config.json said
    {'data': 'mnist', 'data_dir': '.../fashion-mnist'}: a run called mnist on other pictures."""
    run = interrupted(tmp_path / "run", monkeypatch, 1, "mnist", str(mnist))
    assert not (run / "last.safetensors").exists()
    before = {name: (run / name).read_bytes() for name in ("config.json", "model.json")}
    code, err = cli(capsys, "train", "--resume", run, "--data-dir", fashion_mnist, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "give the data the run was trained on" in err or "not the images the run was trained on" in err, err
    assert {name: (run / name).read_bytes() for name in before} == before


# --- 5. the new place kept for the commands after the resume ------------------------------------

def test_a_moved_folder_given_once_is_where_evaluate_and_the_next_resume_find_it(tmp_path, monkeypatch, capsys):
    """config.json kept the old folder: evaluate, report and a second resume asked for --data-dir again."""
    digits = digits_folder(tmp_path / "digits", 300)
    run = interrupted(tmp_path / "run", monkeypatch, 2, str(digits))
    moved = digits.rename(tmp_path / "moved")
    code, err = cli(capsys, "train", "--resume", run, "--data-dir", moved, "--quiet")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["data"], config["data_dir"]) == (str(moved), None)
    code, err = cli(capsys, "evaluate", run)
    assert code == 0, err


def test_the_web_app_says_why_a_run_whose_folder_moved_cannot_resume_from_it(tmp_path, monkeypatch):
    """Resume was offered, and its job could only fail asking for --data-dir, which the app cannot give."""
    from neuralab.web.jobs import JobRefused, Jobs

    root = tmp_path / "runs"
    digits = digits_folder(tmp_path / "digits", 300)
    interrupted(root / "r1", monkeypatch, 2, str(digits))
    jobs = Jobs(root)
    assert jobs.why_not_resume("r1") == ""
    digits.rename(tmp_path / "moved")
    refused = jobs.why_not_resume("r1")
    assert refused.startswith("run r1: its image folder is not there any more"), refused
    assert "neuralab train --resume RUN --data-dir NEW_PLACE" in refused
    with pytest.raises(JobRefused):
        jobs.resume("r1")
    # the app asks on every look at the run's page: files alone, no torch loaded for it (a second, 180 MB)
    code = ("import sys\nfrom neuralab.web.jobs import Jobs\n"
            f"said = Jobs({str(root)!r}).why_not_resume('r1')\n"
            "print(said.startswith('run r1: its image folder'), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr


# --- 2. the summary: an unused layer defined first -----------------------------------------------

class FirstUnused(nn.Module):
    def __init__(self, read_dtype: bool = False):
        super().__init__()
        self.spare = nn.Linear(10, 10)
        self.body = nn.Linear(64, 3)
        self.read_dtype = read_dtype

    def forward(self, x):
        x = x.flatten(1)
        return self.body(x.to(self.spare.weight.dtype) if self.read_dtype else x)


@pytest.mark.parametrize("read_dtype", [False, True])
def test_an_unused_layer_defined_first_is_still_reported(read_dtype):
    """The device taken from the first weight, and any .dtype read, counted as its weights used."""
    from neuralab.models.summary import render_summary, summary

    text = render_summary(summary(FirstUnused(read_dtype), (1, 8, 8), name="first"), rich=False)
    assert "Not run at inference (params counted above): spare (110)" in text, text


# --- 3. a reshape to the training batch that the probe's pictures divide -------------------------

FIXED_BATCH = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return self.fc(x.view(128, -1))
"""


def colour_folder(folder, digits):
    """The digits as 3x32x32 colour pictures, CIFAR's size."""
    from PIL import Image

    for label_dir in sorted(p for p in digits.iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for picture in sorted(label_dir.iterdir())[:6]:
            Image.open(picture).convert("RGB").resize((32, 32)).save(folder / label_dir.name / picture.name)
    return folder


def test_a_reshape_to_the_training_batch_gets_the_batch_advice_where_the_pictures_divide_it(tmp_path, capsys):
    """2 x 3072 divides by 128: the view worked as (128, 48), and the advice was "make it nn.Linear(48, ...)",
    a model that fails on the first real batch."""
    pictures = colour_folder(tmp_path / "pics", digits_folder(tmp_path / "digits", 100))
    net = tmp_path / "net.py"
    net.write_text(textwrap.dedent(FIXED_BATCH))
    code, err = cli(capsys, "train", "--model", net, "--data", pictures, "--epochs", 1, "--batch-size", 128,
                    "--out", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "at fc (Linear), which is given (128, 48) inputs: forward reshapes to a first size of 128 whatever the batch" \
        in err, err
    assert "x.view(x.size(0), -1) or x.flatten(1), not a batch size written in the code" in err
    assert "make it nn.Linear" not in err and not (tmp_path / "run").exists()


def test_a_view_making_rows_of_each_picture_before_a_linear_gets_the_batch_first_advice(tmp_path, capsys):
    """x.view(-1, 48) also gives 128 rows for 2 pictures, but grows with the batch: no size written in the code."""
    pictures = colour_folder(tmp_path / "pics", digits_folder(tmp_path / "digits", 100))
    net = tmp_path / "net.py"
    net.write_text(textwrap.dedent(FIXED_BATCH.replace("x.view(128, -1)", "x.view(-1, 48)")))
    code, err = cli(capsys, "train", "--model", net, "--data", pictures, "--epochs", 1, "--out", tmp_path / "run")
    assert code == 2, err
    assert ("at fc (Linear), which is given (128, 48) inputs: keep the batch first where forward reshapes: "
            "x.flatten(1) or x.view(x.size(0), -1), not x.view(-1, features)") in err, err


# --- 4. warned once a run, not once a module object ----------------------------------------------

class Soft(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return torch.softmax(self.fc(x.flatten(1)), 1)


SOFTMAX = "its outputs are probabilities"


def test_a_module_checked_again_after_its_warning_was_an_error_is_warned_again():
    from neuralab.training.module_check import checked_module

    module, x = Soft(), torch.randn(8, 1, 8, 8)
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UserWarning, match=SOFTMAX):
                checked_module(module, "net", (1, 8, 8), 10, sample=x, training=True)


def test_a_module_whose_first_check_was_silenced_is_warned_about_when_checked_again():
    """The first check under simplefilter("ignore") (or pytest.warns) silenced every later one of the object."""
    from neuralab.training.module_check import checked_module

    module, x = Soft(), torch.randn(8, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked_module(module, "net", (1, 8, 8), 10, sample=x, training=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checked_module(module, "net", (1, 8, 8), 10, sample=x, training=True)
    assert len([w for w in caught if SOFTMAX in str(w.message)]) == 1, [str(w.message) for w in caught]


class BatchCentred(nn.Module):  # subtracts the batch's mean in eval mode too: warned, not refused
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x - x.mean(0, keepdim=True))


def test_a_resume_before_the_first_checkpoint_warns_once_and_the_next_again(tmp_path, monkeypatch):
    """A resume before the first checkpoint checks the module it rebuilds from the run's code, then
    as the run builds: one warning; the next resume warns again."""
    digits = digits_folder(tmp_path / "digits", 100)
    module = BatchCentred()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = interrupted(tmp_path / "run", monkeypatch, 1, str(digits), model=module)
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(KeyboardInterrupt):
                whole_again = cut_in_epoch(monkeypatch, 1)
                try:
                    resume_classifier(run, verbose=False, trust_code=True)
                finally:
                    whole_again()
        mixing = [w for w in caught if "rest of the batch" in str(w.message)]
        assert len(mixing) == 1, [str(w.message) for w in caught]


# --- 6. the batch advice, one text each -----------------------------------------------------------

def test_predict_and_the_check_give_the_same_squeeze_advice():
    from neuralab.training import module_check
    from neuralab.training.trained_classifier import _batch_lost

    assert str(_batch_lost("net", 1, (10,))).endswith(module_check.SQUEEZE)
    assert str(_batch_lost("net", 4, (8, 10))).endswith(module_check.BATCH_FIRST)
