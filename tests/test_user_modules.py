"""Users' own PyTorch modules, given as objects, classes, functions or files that import their
neighbours: a run records what rebuilds the network, rebuilds it only when that gives the
same network, and otherwise says that it cannot, rather than loading the weights into another
model. Real images: scikit-learn's bundled handwritten digits as a picture folder."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, load_classifier, train_classifier

NET = """
import torch
from torch import nn

from blocks import head


class Net(nn.Module):
    def __init__(self, invert=False, hidden=16):
        super().__init__()
        self.invert = invert
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.head = head(hidden)

    def forward(self, x):
        return self.head(self.body(-x if self.invert else x))


def small():
    return Net(hidden=8)
"""

BLOCKS = """
from torch import nn


def head(width):
    return nn.Linear(width, 10)
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 300)


@pytest.fixture(scope="module")
def code(tmp_path_factory):
    """The user's folder: net.py, which imports blocks.py beside it, imported as a user does."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "net.py").write_text(NET)
    (folder / "blocks.py").write_text(BLOCKS)
    sys.path.insert(0, str(folder))
    try:
        import net
    finally:
        sys.path.remove(str(folder))
    return folder, net


def _train(model, digits: Path, out: Path):
    config = ClassifierConfig(model=model, data=str(digits), train=TrainConfig(epochs=2, batch_size=32, seed=0))
    return train_classifier(config, out=out, verbose=False)


def _source(run: Path) -> dict:
    return json.loads((run / "model.json").read_text())["source"]


def test_a_module_built_with_arguments_is_not_rebuilt_as_another_network(code, digits, tmp_path):
    _, net = code
    for made in (net.Net(invert=True), net.Net(hidden=32)):
        result = _train(made, digits, tmp_path / f"{made.invert}-{made.body[1].out_features}")
        assert _source(result.run_dir)["file"] is None and not (result.run_dir / "model.py").exists()
        with pytest.raises(NeuralabError, match="PyTorch code the run cannot rebuild"):
            evaluate_run(result.run_dir, trust_code=True)


def test_a_module_its_class_rebuilds_reloads_with_the_same_results(code, digits, tmp_path):
    _, net = code
    result = _train(net.Net(), digits, tmp_path / "net")
    assert _source(result.run_dir)["file"] == "model.py" and _source(result.run_dir)["name"] == "Net"
    assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(result.test["accuracy"])


@pytest.mark.parametrize("given, name", [("class", "Net"), ("function", "small")])
def test_a_class_or_a_function_giving_a_module_trains_and_reloads(given, name, code, digits, tmp_path):
    _, net = code
    result = _train(getattr(net, name), digits, tmp_path / given)
    assert _source(result.run_dir)["name"] == name and _source(result.run_dir)["file"] == "model.py"
    assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(result.test["accuracy"])


def test_library_and_notebook_modules_record_no_file(digits, tmp_path):
    class Inline(nn.Module):  # as a notebook cell defines it: in __main__, in no file
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.net(x)

    Inline.__module__ = "__main__"
    for model, name in ((nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "Sequential"), (Inline(), "Inline"),
                        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "Sequential")):
        run = _train(model, digits, tmp_path / f"{name}-{id(model)}").run_dir
        assert _source(run) == {"type": "torch", "file": None, "name": name, "sha256": None}
        assert sorted(p.name for p in run.glob("*.py")) == []  # not torch's container.py


def test_a_file_importing_its_neighbours_keeps_them_and_reloads_from_the_run_alone(code, digits, tmp_path, capsys):
    folder, _ = code
    mine = tmp_path / "mine"
    shutil.copytree(folder, mine, ignore=shutil.ignore_patterns("__pycache__"))
    run = tmp_path / "run"
    assert main(["train", "--model", f"{mine / 'net.py'}:Net", "--data", str(digits), "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    source = _source(run)
    assert sorted(source["imports"]) == ["blocks.py"] and (run / "blocks.py").read_text() == BLOCKS
    shutil.rmtree(mine)  # the run alone rebuilds it
    picture = next(digits.glob("3/*.png"))
    code_, out, err = main(["predict", str(run), str(picture), "--trust-code"]), *capsys.readouterr()
    assert code_ == 0 and "%" in out and "Traceback" not in err, err
    assert load_classifier(run, trust_code=True).predict(np.zeros((2, 1, 8, 8), np.uint8)).shape == (2,)

    (run / "blocks.py").write_text(BLOCKS + "\n# changed\n")
    with pytest.raises(NeuralabError, match="blocks.py: changed since the run was made"):
        load_classifier(run, trust_code=True)
    (run / "blocks.py").unlink()
    assert main(["evaluate", str(run), "--trust-code"]) == 2
    assert "blocks.py: missing" in capsys.readouterr().err


def test_code_importing_a_package_beside_it_trains_and_its_run_says_it_cannot_rebuild_it(digits, tmp_path, capsys):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "__init__.py").write_text(BLOCKS)
    (tmp_path / "net.py").write_text(NET.replace("from blocks import head", "from parts import head"))
    run = tmp_path / "run"
    assert main(["train", "--model", f"{tmp_path / 'net.py'}:Net", "--data", str(digits), "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert _source(run)["file"] is None and not list(run.glob("*.py"))
    assert main(["evaluate", str(run), "--trust-code"]) == 2
    assert "importing a package beside it" in capsys.readouterr().err


def test_a_constructor_argument_that_only_the_outputs_show_is_caught(tmp_path, digits):
    (tmp_path / "actnet.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self, act=torch.relu):
                super().__init__()
                self.act = act
                self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 10)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x.flatten(1))))
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        import actnet
    finally:
        sys.path.remove(str(tmp_path))
    import torch

    assert _source(_train(actnet.Net(act=torch.tanh), digits, tmp_path / "tanh").run_dir)["file"] is None
    assert _source(_train(actnet.Net(), digits, tmp_path / "relu").run_dir)["file"] == "model.py"


def test_a_run_whose_folder_holds_code_its_record_does_not_name_is_refused(code, digits, tmp_path):
    _, net = code
    run = _train(net.Net(), digits, tmp_path / "run").run_dir
    meta = json.loads((run / "model.json").read_text())
    del meta["source"]["imports"]  # blocks.py still beside model.py, run with no hash checked
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(NeuralabError, match="imports blocks.py from the run's folder, which model.json does not"):
        load_classifier(run, trust_code=True)


@pytest.mark.parametrize("text, message", [
    ("model = 42\n", "net.py: model is an int, not a Keras model or torch.nn.Module"),
    ("import torch\n\nmodel = None  # set below\n\n\nclass Net(torch.nn.Module):\n    pass\n",
     "torch:net.py:Net: the model fails on the data"),  # Net was taken, not "model is a NoneType"
    ("from tensorflow.keras.models import Sequential\n",  # as the workshop's listings import it
     "net.py:1: ModuleNotFoundError: No module named 'tensorflow'; neuralab runs Keras 3 on PyTorch, without "
     "TensorFlow: import from keras"),
    (textwrap.dedent("""
        from torch import nn


        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
        """), "net.py:5: Net() failed: TypeError"),
])
def test_files_that_give_no_model_say_why_with_the_line(text, message, digits, tmp_path, capsys):
    (tmp_path / "net.py").write_text(text)
    code = main(["train", "--model", str(tmp_path / "net.py"), "--data", str(digits), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_summary_of_a_module_in_a_file(code, tmp_path, capsys):
    """`neuralab summary net.py:Net --input 8x8x1`: the user's module in the table every zoo model gets."""
    folder, _ = code
    assert main(["summary", f"{folder / 'net.py'}:Net", "--input", "8x8x1"]) == 0
    out = capsys.readouterr().out
    assert "body.1 (Linear)" in out and "(B, 16)" in out and "head (Linear)" in out and "Total params: 1,210" in out
    assert main(["summary", f"{folder / 'net.py'}:Net"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --input, e.g. 28x28x1" in err, err
