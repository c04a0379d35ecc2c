"""Users' own PyTorch modules, given as objects, classes, functions or files that import their
neighbours: a run records what rebuilds the network, rebuilds it only when that gives the
same network, and otherwise says that it cannot, rather than loading the weights into another
model. Real images: scikit-learn's bundled handwritten digits as a picture folder."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import (ClassifierConfig, TrainConfig, evaluate_run, load_classifier, resume_classifier,
                                train_classifier)
from neuralab.training.checkpoint import load_tensors
from neuralab.training.evaluate import write_report

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


class Cell(nn.Module):
    """A notebook cell's module, built with arguments: no file holds its class (set below)."""

    def __init__(self, hidden=16, classes=10):
        super().__init__()
        self.classes = classes
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.head(self.body(x))[:, :self.classes]


Cell.__module__ = "__main__"


def _train(model, digits: Path, out: Path, epochs: int = 2):
    config = ClassifierConfig(model=model, data=str(digits), train=TrainConfig(epochs=epochs, batch_size=32, seed=0))
    return train_classifier(config, out=out, verbose=False)


def _files(run: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != "run.lock"}


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
    # the run's own code, not a module with the same shapes, says what its network computes
    with pytest.raises(NeuralabError, match="rebuilds its model from its copy of the code, model.py .*leave out model"):
        load_classifier(result.run_dir, model=net.Net())


def test_a_notebook_module_given_again_resumes_bit_for_bit_and_loads(digits, tmp_path, cut_in_epoch_2, capsys):
    """Ctrl-C in epoch 2 of a run whose module the run cannot rebuild; resumed from Python with
    the module built again (other first weights: the checkpoint's count), it ends with the
    uninterrupted run's weights, as a zoo run does (test_training)."""
    def made():
        torch.manual_seed(1)
        return Cell(hidden=32)

    whole = _train(made(), digits, tmp_path / "whole", epochs=3)
    whole_again = cut_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        _train(made(), digits, tmp_path / "cut", epochs=3)
    whole_again()
    cut = tmp_path / "cut"
    assert _source(cut)["file"] is None
    assert main(["train", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "can only be resumed from Python" in err and "model=" in err, err
    with pytest.raises(NeuralabError, match="passing the module it was trained with, .* as model$"):
        resume_classifier(cut, verbose=False)
    resumed = resume_classifier(cut, verbose=False, model=Cell(hidden=32))
    a, _ = load_tensors(whole.run_dir / "checkpoints" / "last.safetensors")
    b, _ = load_tensors(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k]) and not k.startswith("rng.")] == []
    assert resumed.test["accuracy"] == whole.test["accuracy"]
    assert [r["samples"] for r in resumed.history] == [r["samples"] for r in whole.history]

    with pytest.raises(NeuralabError, match="use the run from Python, passing the module"):
        load_classifier(cut)
    mine = Cell(hidden=32)
    assert evaluate_run(cut, model=mine)["test_accuracy"] == pytest.approx(whole.test["accuracy"])
    weights, _ = load_tensors(cut / "model.safetensors")
    assert all(torch.equal(v, weights[k]) for k, v in mine.state_dict().items())  # loaded in place, as Keras's
    (cut / "report.html").unlink()
    assert write_report(cut, model=Cell(hidden=32)) == cut / "report.html" and (cut / "report.html").exists()
    from neuralab.training.export import export_onnx

    onnx, diff = export_onnx(cut, model=Cell(hidden=32))
    assert onnx == cut / "model.onnx" and onnx.stat().st_size > 0 and diff < 1e-4


class Bare(nn.Module):
    """A notebook cell's module whose class is built without arguments."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


Bare.__module__ = "__main__"


@pytest.mark.parametrize("given", [Bare, Bare(), Cell(hidden=32)], ids=["class", "object", "object with arguments"])
def test_the_resume_printed_for_a_notebook_module_runs_as_pasted(given, digits, tmp_path, cut_in_epoch_2):
    """Ctrl-C names the call that goes on: `model=Bare()` runs as pasted; a module built with
    arguments keeps `model=Cell(...)`, which only the caller can fill in."""
    import re

    import neuralab

    whole_again = cut_in_epoch_2()
    with pytest.raises(KeyboardInterrupt) as stopped:
        _train(given, digits, tmp_path / "cut")
    whole_again()
    call = re.search(r"`(neuralab\.resume_classifier\([^`]*\))` continues it", str(stopped.value)).group(1)
    if given is Bare or isinstance(given, Bare):
        assert call == f"neuralab.resume_classifier({str(tmp_path / 'cut')!r}, model=Bare())"
        assert len(eval(call, {"neuralab": neuralab, "Bare": Bare}).history) == 2  # noqa: S307  the call printed
        assert (tmp_path / "cut" / "results.json").is_file()
    else:
        assert call == f"neuralab.resume_classifier({str(tmp_path / 'cut')!r}, model=Cell(...))"


@pytest.mark.parametrize("given", [Bare(), Cell(hidden=32)], ids=["object", "object with arguments"])
def test_the_python_refusal_of_a_notebook_module_s_run_names_the_call_the_command_line_does(given, digits, tmp_path):
    """It said "built the same way (Net(hidden=32), say)" where the command line says Bare()."""
    from neuralab.runs import resume_needs

    run = _train(given, digits, tmp_path / "run", epochs=1).run_dir
    call = resume_needs(run)[1]
    assert call == ("Bare()" if isinstance(given, Bare) else "Cell(...)")
    with pytest.raises(NeuralabError) as refused:
        evaluate_run(run)
    assert f"passing the module it was trained with, built the same way ({call}), as model" in str(refused.value)
    with pytest.raises(NeuralabError, match=rf"model is a str; .* built the same way \({re.escape(call)}\)"):
        evaluate_run(run, model="Bare")


@pytest.mark.parametrize("checkpoint", ["last", "best"])
def test_a_module_unlike_the_runs_is_refused_before_anything_changes(checkpoint, digits, tmp_path, cut_in_epoch_2):
    cut_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        _train(Cell(hidden=32), digits, tmp_path / "cut")
    run = tmp_path / "cut"
    before = _files(run)
    for model, message in [
            (Cell(hidden=16), (r"\.safetensors: tensor 'body\.1\.bias' is \(32,\) in the weights but \(16,\) in the "
                               "model given; give the module the run was trained with, built the same way")),
            (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), r"tensor '1\.bias' is missing in the weights but \(10,\) in the model given"),
            (Cell(hidden=32, classes=5), r"the model gives \(N, 5\), the data needs \(N, 10\)"),
            (Cell, "model is a type; give the torch.nn.Module object"),
            (None, "use the run from Python, passing the module it was trained with")]:
        kept = {k: v.clone() for k, v in model.state_dict().items()} if isinstance(model, nn.Module) else {}
        with pytest.raises(NeuralabError, match=message) as e:
            resume_classifier(run, verbose=False, checkpoint=checkpoint, model=model)
        assert "\n" not in str(e.value)
        assert _files(run) == before
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())


def test_a_run_stopped_before_its_first_checkpoint_starts_again_from_the_module_given(digits, tmp_path, monkeypatch):
    from neuralab.training import trainer as trainer_module

    original = trainer_module.Trainer._train_epoch
    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _train(Cell(hidden=32), digits, tmp_path / "run", epochs=1)
    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", original)
    run = tmp_path / "run"
    assert not (run / "checkpoints" / "last.safetensors").exists()
    with pytest.raises(NeuralabError, match="passing the module it was trained with"):
        resume_classifier(run, verbose=False)
    with pytest.raises(NeuralabError, match=r"the run's model has 2410 parameters, the model given 1210"):
        resume_classifier(run, verbose=False, model=Cell(hidden=16))
    result = resume_classifier(run, verbose=False, model=Cell(hidden=32))
    assert (run / "results.json").exists() and _source(run)["file"] is None and len(result.history) == 1


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
        # Inline() is what its class builds without arguments: the calls printed for the run say so
        bare = {"no_arguments": True} if name == "Inline" else {}
        assert _source(run) == {"type": "torch", "file": None, "name": name, "sha256": None, **bare}
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
    with pytest.warns(UserWarning, match="net.py imports parts, a package .*: the run will not rebuild the model"):
        assert main(["train", "--model", f"{tmp_path / 'net.py'}:Net", "--data", str(digits), "--epochs", "1",
                     "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert _source(run)["file"] is None and not list(run.glob("*.py"))
    assert main(["evaluate", str(run), "--trust-code"]) == 2
    assert "cannot rebuild: net.py imports parts, a package (a folder) beside it" in capsys.readouterr().err


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


EDITED = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.body(x))
"""


def _imported(folder: Path, name: str, code: str = EDITED):
    """``code`` written as ``name``.py in ``folder`` and imported, as a notebook's cell imports it."""
    (folder / f"{name}.py").write_text(code)
    sys.path.insert(0, str(folder))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(folder))


@pytest.mark.parametrize("given", ["class", "object", "object made before a reload"])
@pytest.mark.parametrize("edit", [("self.head(self.body(x))", "self.head(-self.body(x))"),  # forward only: the data tells
                                  ("nn.Linear(64, 16)", "nn.Linear(64, 16, bias=False)")])  # the layout tells
def test_a_class_whose_file_changed_since_it_was_imported_records_no_code(given, edit, digits, tmp_path):
    """A notebook imports Net from its file, then edits the file without reloading it: the run
    trains the class in memory, so keeping the file as it is now would rebuild another network."""
    name = f"edited_{tmp_path.name}".replace("-", "_")
    module = _imported(tmp_path, name)
    made = module.Net()
    path = tmp_path / f"{name}.py"
    path.write_text(EDITED.replace(*edit))
    if given == "object made before a reload":
        import importlib

        sys.path.insert(0, str(tmp_path))
        try:
            importlib.reload(module)
        finally:
            sys.path.remove(str(tmp_path))
    with pytest.warns(UserWarning, match=rf"{name}.py changed since Net was imported from it: .* importlib.reload"):
        result = _train(module.Net if given == "class" else made, digits, tmp_path / "run", epochs=1)
    run = result.run_dir
    assert _source(run)["file"] is None and not list(run.glob("*.py"))
    assert "changed since Net was imported" in _source(run)["cannot_rebuild"]
    with pytest.raises(NeuralabError, match=rf"cannot rebuild: {name}.py changed since Net was imported"):
        evaluate_run(run, trust_code=True)
    if given != "class":  # the class trained is the one in memory, which the module given again is of
        again = type(made)()
        assert evaluate_run(run, model=again)["test_accuracy"] == pytest.approx(result.test["accuracy"])


def test_a_class_whose_file_is_unchanged_keeps_its_code_without_a_warning(digits, tmp_path):
    module = _imported(tmp_path, "unchanged_net")
    import warnings

    for given in (module.Net, module.Net()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = _train(given, digits, tmp_path / f"run-{isinstance(given, nn.Module)}", epochs=1)
        assert _source(result.run_dir)["file"] == "model.py"
        assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(result.test["accuracy"])


def test_a_file_whose_top_level_cannot_run_twice_keeps_its_code_and_is_not_run_again(digits, tmp_path):
    """A custom op's namespace or a registry at the file's top level raises when the file runs a
    second time in the process: the file is as imported, so its run keeps it, and running it
    again to tell (which would also repeat its side effects) is not how neuralab tells."""
    import warnings

    counter = tmp_path / "top_level_runs.txt"
    name = f"registered_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(f"from pathlib import Path\n\n"
                                         f"RUNS = Path({str(counter)!r})\n"
                                         "if RUNS.exists():\n"
                                         "    raise KeyError('Net is already registered')\n"
                                         "RUNS.write_text('ran')\n" + EDITED)
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(name)
    finally:
        sys.path.remove(str(tmp_path))
    for given in (module.Net, module.Net()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = _train(given, digits, tmp_path / f"run-{isinstance(given, nn.Module)}", epochs=1)
        assert _source(result.run_dir)["file"] == "model.py"
        assert counter.read_text() == "ran"  # once: the import's
    counter.unlink()  # a fresh process, as far as the registry knows
    assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(result.test["accuracy"])


def test_a_helper_edited_since_the_model_was_imported_is_the_file_named(digits, tmp_path):
    name = f"whole_{tmp_path.name}".replace("-", "_")
    part = f"part_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{part}.py").write_text("from torch import nn\n\n\ndef head():\n    return nn.Linear(16, 10)\n")
    module = _imported(tmp_path, name, EDITED.replace("from torch import nn", f"from torch import nn\n\nfrom {part} "
                                                      "import head").replace("nn.Linear(16, 10)", "head()"))
    made = module.Net()
    (tmp_path / f"{part}.py").write_text("from torch import nn\n\n\ndef head():\n"
                                         "    return nn.Linear(16, 10, bias=False)\n")
    with pytest.warns(UserWarning, match=rf"{part}.py, which {name}.py imports, changed since Net was imported: .* "
                                         rf"restart the kernel \(or run `import importlib, sys; "
                                         rf"importlib.reload\(sys.modules\['{part}'\]\); "
                                         rf"importlib.reload\(sys.modules\['{name}'\]\); from {name} import Net`\)"):
        result = _train(made, digits, tmp_path / "run", epochs=1)
    assert _source(result.run_dir)["file"] is None


@pytest.mark.parametrize("how", ["set since", "edited"])
def test_a_constant_its_class_reads_that_differs_from_its_file_records_no_code(how, digits, tmp_path):
    """Code objects alike, the value the class was built with is not what its file now gives."""
    name = f"hidden_{how.replace(' ', '_')}_{tmp_path.name}".replace("-", "_")
    widths = EDITED.replace("class Net", "HIDDEN = 16\n\n\nclass Net").replace("nn.Linear(64, 16)",
                                                                            "nn.Linear(64, HIDDEN)")
    module = _imported(tmp_path, name, widths.replace("nn.Linear(16, 10)", "nn.Linear(HIDDEN, 10)"))
    if how == "set since":
        module.HIDDEN = 32
    else:
        path = tmp_path / f"{name}.py"
        path.write_text(path.read_text().replace("HIDDEN = 16", "HIDDEN = 32"))
    with pytest.warns(UserWarning, match=rf"{name}.py sets HIDDEN to {16 if how == 'set since' else 32} where the "
                                         rf"module in memory has {32 if how == 'set since' else 16}: {name}.py changed "
                                         "since Net was imported from it, or HIDDEN was set since"):
        result = _train(module.Net(), digits, tmp_path / "run", epochs=1)
    assert _source(result.run_dir)["file"] is None


def test_a_class_counting_its_instances_keeps_its_code(digits, tmp_path):
    """Net.built += 1 in its constructor: the class attribute differed from the file's 0 and the
    run lost its code, with advice (reload) that could not help."""
    name = f"counting_{tmp_path.name}".replace("-", "_")
    module = _imported(tmp_path, name, EDITED.replace("class Net(nn.Module):\n", "class Net(nn.Module):\n    built = 0\n")
                       .replace("super().__init__()", "super().__init__()\n        Net.built += 1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of a file changed
        result = _train(module.Net, digits, tmp_path / "run", epochs=1)
    assert module.Net.built >= 1 and _source(result.run_dir)["file"] == "model.py"


# A file whose values the model reads several ways: all as its import left them
VALUES = '''
import dataclasses
import enum
import typing

import numpy as np
import torch
from torch import nn

SIZES = [64, 16, 10]
HID = 8 * 2
ACT = nn.ReLU
DTYPE = torch.float32
SCALE = np.float32
SQUASH = torch.nn.functional.relu


@dataclasses.dataclass(frozen=True)
class Cfg:
    drop: float = 0.0


@dataclasses.dataclass(slots=True)
class Slotted:
    width: int = 16


class Kind(enum.Enum):
    A = 1


class Pair(typing.NamedTuple):
    x: int = 1


class Net(nn.Module):
    gain = 1.0
    act = nn.ReLU

    def __init__(self, scale=1.0, cfg=Cfg()):
        super().__init__()
        assert HID == SIZES[1] == Slotted().width and Kind.A.value == Pair().x and DTYPE is torch.float32
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(SIZES[0], SIZES[1]), self.act(), nn.Dropout(cfg.drop))
        self.head = nn.Linear(SIZES[1], SIZES[2])
        self.scale = scale * self.gain * float(SCALE(1))

    def forward(self, x):
        return SQUASH(ACT()(self.head(self.body(x)))) * self.scale
'''


def _resolved(module):
    from neuralab.training.source import resolve

    return resolve(module.Net())


def test_a_file_as_it_was_imported_is_kept_whatever_values_it_reads(tmp_path):
    """Lists, arithmetic, attributes of torch and NumPy, dataclasses (slots too), enums and
    NamedTuples as imported: nothing to tell it from its file, so the run keeps it."""
    module = _imported(tmp_path, f"values_{tmp_path.name}".replace("-", "_"), VALUES)
    source = _resolved(module)
    assert source.not_kept is None and source.file == (tmp_path / f"{module.__name__}.py").resolve()


@pytest.mark.parametrize("edit, said", [
    (("scale=1.0", "scale=2.0"), "gives Net.__init__'s scale the default 2.0 where the function in memory has 1.0"),
    (("SIZES = [64, 16, 10]", "SIZES = [64, 16, 5]"), "sets SIZES to [64, 16, 5] where the module in memory has "
                                                      "[64, 16, 10]"),
    (("act = nn.ReLU", "act = nn.Tanh"), "sets act to nn.Tanh where Net in memory has <class "),
    (("drop: float = 0.0", "drop: float = 0.5"), "sets drop to 0.5 where Cfg in memory has 0.0"),
    (("HID = 8 * 2", "HID = 8 * 4"), "sets HID to 32 where the module in memory has 16"),
    (("ACT = nn.ReLU", "ACT = nn.Tanh"), "sets ACT to nn.Tanh where the module in memory has <class "),
])
def test_an_edit_of_a_value_the_model_reads_is_told_from_its_file(edit, said, tmp_path):
    """Code objects alike: the file now gives a default, a list, a class attribute, a dataclass
    field, a computed constant or an attribute chain another value than the module was built with."""
    name = f"edited_values_{tmp_path.name}".replace("-", "_")
    module = _imported(tmp_path, name, VALUES)
    path = tmp_path / f"{name}.py"
    path.write_text(path.read_text().replace(*edit))
    source = _resolved(module)
    assert source.file is None and source.not_kept.startswith(f"{name}.py {said}"), source.not_kept
    assert source.not_kept.endswith(f"{name}.py changed since Net was imported from it" +
                                    ("" if "default" in said else f", or {said.split()[1]} was set since"))


OVERRIDES = {
    "import": ("HIDDEN = 16\ntry:\n    from {settings} import HIDDEN  # this machine's own\nexcept ImportError:\n"
               "    pass\n", "HIDDEN = 8\n"),
    "globals": ("HIDDEN = 16\nglobals().update(json.loads(Path(__file__).with_name('{settings}.json')"
                ".read_text()))\n", '{"HIDDEN": 8}'),
    "setattr": ("HIDDEN = 16\nsetattr(sys.modules[__name__], 'HIDDEN', 8)\n", None),
    "loop": ("HIDDEN = 16\nfor HIDDEN in (4, 8):\n    pass\n", None),
    "augmented": ("HIDDEN = 16\nHIDDEN //= 2\n", None),
    "list changed in place": ("HIDDEN = 8\nSIZES = [16]\n\n\ndef grown():\n    SIZES.append(HIDDEN)\n"
                              "    return SIZES\n\n\ngrown()\n", None),
}


@pytest.mark.parametrize("how", OVERRIDES)
def test_a_constant_its_file_sets_again_is_not_taken_for_an_edit(how, digits, tmp_path):
    """HIDDEN = 16, then set again as the file runs (a settings file's override, say): the class
    in memory is what the file gives; comparing the literal alone warned, and lost every run."""
    name = f"override_{how.replace(' ', '_')}_{tmp_path.name}".replace("-", "_")
    settings = f"settings_{name}"
    top, other = OVERRIDES[how]
    if other is not None:
        (tmp_path / f"{settings}{'.json' if how == 'globals' else '.py'}").write_text(other)
    code = EDITED.replace("from torch import nn", "import json\nimport sys\nfrom pathlib import Path\n\n"
                          "from torch import nn\n\n" + top.format(settings=settings)).replace(
        "nn.Linear(64, 16), nn.ReLU()", "nn.Linear(64, HIDDEN), nn.ReLU()").replace(
        "nn.Linear(16, 10)", "nn.Linear(HIDDEN, 10)")
    if how == "list changed in place":
        code = code.replace("nn.Linear(64, HIDDEN)", "nn.Linear(64, SIZES[-1])")
    sys.path.insert(0, str(tmp_path))  # the settings import again as the run's copy of the file runs
    try:
        module = _imported(tmp_path, name, code)
        assert module.Net().head.in_features == 8
        assert _resolved(module).not_kept is None
        if how == "import":  # the run keeps the file and its settings, and rebuilds the network trained
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result = _train(module.Net(), digits, tmp_path / "run", epochs=1)
            assert _source(result.run_dir)["file"] == "model.py"
            assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(
                result.test["accuracy"])
    finally:
        sys.path.remove(str(tmp_path))


def test_values_of_a_reloaded_helper_and_of_a_dataclass_subclass_are_not_taken_for_an_edit(tmp_path):
    """A value taken from a helper of the user's (HIDDEN = config.HIDDEN, block = blocks.Block) is
    made anew when the notebook reloads that helper, unchanged: an equal number, another class
    object; and a subclass of a dataclass that sets a field's name again holds its own value."""
    name = f"uses_{tmp_path.name}".replace("-", "_")
    config, blocks = f"config_{name}", f"blocks_{name}"
    (tmp_path / f"{config}.py").write_text("HIDDEN = 512\nRATE = 0.25\n")
    (tmp_path / f"{blocks}.py").write_text("from torch import nn\n\n\nclass Block(nn.Linear):\n    pass\n")
    code = (f"from dataclasses import dataclass\n\nfrom torch import nn\n\nimport {config}\nimport {blocks}\n\n"
            f"HIDDEN = {config}.HIDDEN\nRATE = {config}.RATE\n\n\n@dataclass\nclass Base:\n    width: int = 16\n\n\n"
            "class Wide(Base):\n    width = 32\n\n\nclass Net(nn.Module):\n"
            f"    block = {blocks}.Block\n\n    def __init__(self):\n        super().__init__()\n"
            "        self.body = nn.Sequential(nn.Flatten(), self.block(64, Wide.width), nn.Dropout(RATE))\n"
            "        self.head = nn.Linear(Wide.width, HIDDEN)\n\n    def forward(self, x):\n"
            "        return self.head(self.body(x))\n")
    module = _imported(tmp_path, name, code)
    made = module.Net()
    sys.path.insert(0, str(tmp_path))
    try:
        for helper in (config, blocks):
            importlib.reload(sys.modules[helper])
    finally:
        sys.path.remove(str(tmp_path))
    from neuralab.training.source import resolve

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(made).not_kept is None
    (tmp_path / f"{name}.py").write_text(code.replace("    width = 32", "    width = 48"))
    assert "sets width to 48 where Wide in memory has 32" in resolve(made).not_kept


def test_the_advice_for_a_file_edited_since_imported_works_as_pasted_after_from_import(tmp_path):
    """After `from net import Net`, importlib.reload(net) alone was a NameError, and a reload
    leaves the name Net bound to the old class: the advice reloads and imports the class again."""
    name = f"advised_{tmp_path.name}".replace("-", "_")
    _imported(tmp_path, name)
    session = {}
    exec(f"from {name} import Net; {name} = Net()", session)  # a notebook's cells, its model named as the file
    path = tmp_path / f"{name}.py"
    path.write_text(path.read_text().replace("nn.Linear(16, 10)", "nn.Linear(16, 10, bias=False)"))
    from neuralab.training.source import resolve

    source = resolve(session["Net"]())
    with pytest.warns(UserWarning, match="restart the kernel") as caught:
        source.copy_code(tmp_path)
    line = re.search(r"\(or run `(.*)`\)", str(caught[0].message)).group(1)
    assert line == f"import importlib, sys; importlib.reload(sys.modules['{name}']); from {name} import Net"
    sys.path.insert(0, str(tmp_path))
    try:
        exec(line, session)
    finally:
        sys.path.remove(str(tmp_path))
    assert session["Net"]().head.bias is None and resolve(session["Net"]()).not_kept is None
    assert isinstance(session[name], torch.nn.Module)  # the notebook's model, not the module of its name


def test_a_model_loaded_from_a_run_and_trained_again_keeps_its_code(digits, tmp_path):
    """A fine-tune of a run's own module whose forward holds an annotated function: neuralab's
    loader compiled the file under its own postponed annotations, the check without them, and
    the second run lost its code as 'changed since imported'."""
    from neuralab.training import load_classifier

    net = tmp_path / "code" / "ann.py"
    net.parent.mkdir()
    net.write_text(EDITED.replace("from torch import nn", "import torch\nfrom torch import nn").replace(
        "        return self.head(self.body(x))",
        "        def flat(t: torch.Tensor) -> torch.Tensor:\n            return t\n\n"
        "        return self.head(self.body(flat(x)))"))
    first = _train(f"{net}:Net", digits, tmp_path / "run1", epochs=1).run_dir
    model = load_classifier(first, trust_code=True).model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _train(model, digits, tmp_path / "run2", epochs=1).run_dir
    assert _source(again)["file"] == "model.py"


def test_a_module_built_with_arguments_has_its_class_built_again_once(digits, tmp_path):
    """Its class called without arguments tells the run to keep no code, and that the module is
    not Net(): one call tells both (a pretrained backbone's weights are loaded once more, not twice)."""
    name = f"counted_{tmp_path.name}".replace("-", "_")
    counted = EDITED.replace("class Net", "BUILT = []\n\n\nclass Net").replace(
        "def __init__(self):\n        super().__init__()",
        "def __init__(self, width=16):\n        super().__init__()\n        BUILT.append(width)")
    module = _imported(tmp_path, name, counted.replace("nn.Linear(64, 16)", "nn.Linear(64, width)").replace(
        "nn.Linear(16, 10)", "nn.Linear(width, 10)"))
    made = module.Net(width=32)
    run = _train(made, digits, tmp_path / "run", epochs=1).run_dir
    assert _source(run)["file"] is None and "no_arguments" not in _source(run)
    assert module.BUILT == [32, 16]


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
    assert err.count("\n") == 1 and "give --input: HxWxC for images, e.g. 28x28x1, or STEPSxFEATURES" in err, err
