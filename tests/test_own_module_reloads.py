"""A researcher's own PyTorch module loads again as it trained, or says why not as it trains
(review rP 1 and 3): a buffer kept out of the state dict (register_buffer(..., persistent=False))
drawn at random as the module is built, a helper file named model.py, a package beside the
module's file. Real images: scikit-learn's bundled handwritten digits (8x8) as a picture folder;
a real series: the bundled seattle-weather."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, load_classifier, train_classifier
from neuralab.training.module_check import unsaved_buffers
from test_user_modules_more import _refused


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


def _file(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _source(run) -> dict:
    return json.loads((run / "model.json").read_text())["source"]


def _edit_source(run, change) -> None:
    meta = json.loads((run / "model.json").read_text())
    change(meta["source"])
    (run / "model.json").write_text(json.dumps(meta))


def _train(capsys, model, digits, out, *more) -> str:
    code = main(["train", "--model", str(model), "--data", str(digits), "--epochs", "1", "--threads", "1",
                 "--out", str(out), "--quiet", *map(str, more)])
    err = capsys.readouterr().err
    assert code == 0, err
    return err



def _evaluates_as_trained(run, capsys) -> None:
    """`neuralab evaluate RUN --trust-code` rebuilds the run's model and gives its recorded test accuracy."""
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert main(["evaluate", str(run), "--trust-code"]) == 0
    assert f"test accuracy {accuracy * 100:.2f}%" in capsys.readouterr().out


def _trains_keeping_its_code(capsys, net, digits, run) -> None:
    """``net`` trains into ``run`` with no warning of a helper imported otherwise, and the run
    keeps its code (model.py)."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _train(capsys, net, digits, run)
    assert not [str(w.message) for w in said if "import statement" in str(w.message)]
    assert _source(run)["file"] == "model.py"


def _warned_of_a_helper(capsys, net, digits, run) -> str:
    """``net`` trains into ``run`` warning once of a helper imported otherwise, that warning, and
    the run keeps no code."""
    with pytest.warns(UserWarning) as said:
        _train(capsys, net, digits, run)
    said = [str(w.message) for w in said if "import statement" in str(w.message)]
    assert len(said) == 1, said
    assert _source(run)["file"] is None
    return said[0]


# --- rP 1: a buffer no run saves --------------------------------------------------------------------

RANDOM_BUFFER = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # a fixed random projection, kept out of the state dict
            self.register_buffer("proj", torch.randn(64, 32) / 8, persistent=False)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(torch.relu(x.flatten(1) @ self.proj))
"""


def test_a_buffer_drawn_at_random_as_the_module_is_built_is_the_same_in_every_reload(digits, tmp_path, capsys):
    """It trained, and every reload drew another projection: other accuracies, silently. The run
    now builds it again under the seed it was built under, and the caller's draws are left alone."""
    net = _file(tmp_path, "randproj.py", RANDOM_BUFFER)
    run = tmp_path / "run"
    _train(capsys, net, digits, run, "--seed", 3)
    results = json.loads((run / "results.json").read_text())
    torch.manual_seed(99)  # a session that has drawn since (the trainer leaves its generator as it was seeded)
    for _ in range(2):
        scores = evaluate_run(run, trust_code=True)
        assert scores["test_loss"] == pytest.approx(results["test_loss"], rel=1e-5)
        assert scores["test_accuracy"] == results["test_accuracy"]
    torch.manual_seed(7)
    drawn = torch.rand(3)
    torch.manual_seed(7)
    model = load_classifier(run, trust_code=True).model
    assert torch.equal(torch.rand(3), drawn)  # the load drew nothing from the caller's generator
    source = _source(run)
    assert source["seed"] == 3 and unsaved_buffers(model) == source["buffers"]


def _imported(path, name: str):
    """The user's file imported as their session imports it, under ``name`` (unique among tests)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # its own imports, from beside it
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_a_module_class_given_from_python_reloads_with_its_buffer(digits, tmp_path):
    module = _imported(_file(tmp_path / "code", "randproj_class.py", RANDOM_BUFFER), "randproj_class")
    result = train_classifier(ClassifierConfig(model=module.Net, data=str(digits),
                                               train=TrainConfig(epochs=1, batch_size=64, seed=0)),
                              out=tmp_path / "run", verbose=False)
    torch.manual_seed(99)
    assert evaluate_run(result.run_dir, trust_code=True)["test_loss"] == pytest.approx(result.test["loss"], rel=1e-5)
    model = load_classifier(result.run_dir, trust_code=True).model
    assert unsaved_buffers(model) == _source(result.run_dir)["buffers"]  # the projection it trained with


def test_a_run_of_it_interrupted_before_its_first_checkpoint_resumes_and_reloads(digits, tmp_path, monkeypatch):
    """Such a resume starts again from the module built again from the run's code, which the run
    records anew: it keeps the buffer's record and seed, and ends as the uninterrupted run."""
    from neuralab.training import resume_classifier
    from neuralab.training import trainer as trainer_module
    from neuralab.training.checkpoint import load_tensors

    net = _file(tmp_path, "randproj.py", RANDOM_BUFFER)

    def trained(out):
        return train_classifier(ClassifierConfig(model=str(net), data=str(digits),
                                                 train=TrainConfig(epochs=2, batch_size=64, seed=0, threads=1)),
                                out=out, verbose=False)
    whole = trained(tmp_path / "whole")
    epoch = trainer_module.Trainer._train_epoch

    def cut(self, *args):  # Ctrl-C in epoch 1
        if args[-2] == 1:
            raise KeyboardInterrupt
        return epoch(self, *args)
    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", cut)
    with pytest.raises(KeyboardInterrupt):
        trained(tmp_path / "cut")
    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", epoch)
    resumed = resume_classifier(tmp_path / "cut", verbose=False, trust_code=True)
    a, _ = load_tensors(whole.run_dir / "model.safetensors")
    b, _ = load_tensors(resumed.run_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed.test == whole.test
    torch.manual_seed(99)
    assert evaluate_run(tmp_path / "cut", trust_code=True)["test_loss"] == pytest.approx(whole.test["loss"], rel=1e-5)
    assert _source(tmp_path / "cut")["buffers"] == _source(whole.run_dir)["buffers"]


def test_a_buffer_no_seed_makes_again_is_refused_before_training(digits, tmp_path, capsys):
    """NumPy's default_rng() draws from the operating system: no seed repeats it, so no run of
    the module could compute again what it trained; torch.empty's memory is the same story."""
    net = _file(tmp_path, "entropy.py", """
        import numpy as np
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                proj = np.random.default_rng().standard_normal((64, 32), dtype=np.float32) / 8
                self.register_buffer("proj", torch.from_numpy(proj), persistent=False)
                self.register_buffer("mask", torch.ones(10), persistent=False)
                self.fc = nn.Linear(32, 10)

            def forward(self, x):
                return self.fc(torch.relu(x.flatten(1) @ self.proj)) * self.mask
    """)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "torch:entropy.py:Net: Net builds its buffer proj (registered with persistent=False" in err, err
    assert "mask" not in err and "register it persistent (register_buffer's default)" in err
    assert not (tmp_path / "run").exists()


def test_a_run_whose_buffer_comes_out_otherwise_when_rebuilt_is_refused(digits, tmp_path, capsys):
    """As on a machine whose code computes the buffer otherwise: here, another seed."""
    run = tmp_path / "run"
    _train(capsys, _file(tmp_path, "randproj.py", RANDOM_BUFFER), digits, run)
    _edit_source(run, lambda source: source.update(seed=source["seed"] + 1))
    err = _refused(capsys, "evaluate", run, "--trust-code")
    assert f"{run / 'model.py'}: Net builds its buffer proj (registered with persistent=False, which no run saves) " \
           "with other values than it was trained with" in err and "; then train again" in err, err
    with pytest.raises(NeuralabError, match="buffer proj"):
        load_classifier(run, trust_code=True)


TABLES = """
    import math

    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # a sinusoidal table and a mask of -inf: computed, not drawn, so kept out of the state dict
            angle = torch.arange(64.0)[:, None] * torch.exp(torch.arange(16.0) * (-math.log(100.0) / 16))
            self.register_buffer("table", torch.cat([angle.sin(), angle.cos()], 1), persistent=False)
            self.register_buffer("mask", torch.tensor([0.0] * 10 + [float("-inf")]), persistent=False)
            self.register_buffer("keep", torch.arange(10) < 10, persistent=False)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(torch.tanh(x.flatten(1) @ self.table)).masked_fill(~self.keep, -1e9) + self.mask[:10]
"""


def test_computed_buffers_reload_within_another_machines_rounding(digits, tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, _file(tmp_path, "tables.py", TABLES), digits, run)
    recorded = _source(run)["buffers"]
    assert sorted(recorded) == ["keep", "mask", "table"] and "sums" not in recorded["keep"]
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert evaluate_run(run, trust_code=True)["test_accuracy"] == accuracy

    def rounded(source, by):  # the table's bytes as another machine rounds sin and exp: other bits, the same sums
        table = source["buffers"]["table"]
        table["sha256"] = "0" * 64
        table["sums"] = [table["sums"][0] + by * table["sums"][1], *table["sums"][1:]]
    _edit_source(run, lambda source: rounded(source, 1e-7))
    assert evaluate_run(run, trust_code=True)["test_accuracy"] == accuracy
    _edit_source(run, lambda source: rounded(source, 1e-3))  # a value drawn again moves the sums this much
    with pytest.raises(NeuralabError, match="buffer table .* other values than it was trained with"):
        evaluate_run(run, trust_code=True)


def test_a_run_made_before_buffers_were_recorded_loads_as_before(digits, tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, _file(tmp_path, "tables.py", TABLES), digits, run)
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    _edit_source(run, lambda source: [source.pop(k) for k in ("buffers", "seed")])
    assert evaluate_run(run, trust_code=True)["test_accuracy"] == accuracy


def test_bad_buffer_records_are_named(digits, tmp_path, capsys):
    run = tmp_path / "run"
    _train(capsys, _file(tmp_path, "randproj.py", RANDOM_BUFFER), digits, run)
    _edit_source(run, lambda source: source.update(seed=-1))
    assert "field 'source.seed' must be a whole number" in _refused(capsys, "evaluate", run, "--trust-code")
    _edit_source(run, lambda source: source.update(seed=0, buffers={"proj": {"sha256": 5}}))
    assert "field 'source.buffers' must map buffer names" in _refused(capsys, "evaluate", run, "--trust-code")


def test_a_forecaster_with_a_random_buffer_reloads_it(tmp_path, capsys):
    from neuralab import load_forecaster

    net = _file(tmp_path, "mixed.py", """
        import torch
        from torch import nn


        class Forecaster(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mix", torch.randn(1, 4), persistent=False)
                self.gru = nn.GRU(4, 8, batch_first=True)
                self.head = nn.Linear(8, 1)

            def forward(self, x):
                return self.head(self.gru(x @ self.mix)[0][:, -1])
    """)
    run = tmp_path / "run"
    code = main(["forecast", "--model", str(net), "--data", "seattle-weather", "--target", "temp_max", "--lookback",
                 "14", "--epochs", "1", "--backtest-folds", "1", "--out", str(run), "--quiet"])
    assert code == 0, capsys.readouterr().err
    recorded = _source(run)["buffers"]["mix"]
    assert unsaved_buffers(load_forecaster(run, trust_code=True).network.net)["mix"] == recorded


# --- rP 3: a helper named model.py, a package beside the file ---------------------------------------

BACKBONE = """
    from torch import nn


    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())

        def forward(self, x):
            return self.f(x)
"""

NET = """
    from torch import nn

    from {module} import Backbone


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = Backbone()
            self.h = nn.Linear(32, 10)

        def forward(self, x):
            return self.h(self.b(x))
"""


def test_a_helper_named_model_py_is_kept_and_the_run_rebuilds(digits, tmp_path, capsys):
    """model.py is the run's name for its copy of the user's file: the helper keeps it, as its
    import asks, and the user's file keeps its own name."""
    mine = tmp_path / "mine"
    _file(mine, "model.py", BACKBONE)
    net = _file(mine, "net.py", NET.format(module="model"))
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the run keeps the code
        _train(capsys, net, digits, run)
    source = _source(run)
    assert source["file"] == "net.py" and list(source["imports"]) == ["model.py"]
    assert (run / "net.py").read_bytes() == net.read_bytes()
    assert (run / "model.py").read_bytes() == (mine / "model.py").read_bytes()
    shutil.rmtree(mine)  # the run alone rebuilds it
    _evaluates_as_trained(run, capsys)
    picture = next(digits.glob("3/*.png"))
    assert main(["predict", str(run), str(picture), "--trust-code"]) == 0 and "%" in capsys.readouterr().out

    assert "the run's model is PyTorch code (Net and model.py)" in _refused(capsys, "evaluate", run)
    (run / "net.py").write_text((run / "net.py").read_text() + "\n# changed\n")
    assert f"{run / 'net.py'}: changed since the run was made" in _refused(capsys, "evaluate", run, "--trust-code")
    _edit_source(run, lambda source: source.update(file="../net.py"))
    assert "field 'source' of a PyTorch model needs file" in _refused(capsys, "evaluate", run, "--trust-code")


def test_a_package_beside_the_file_is_said_as_it_trains_and_named_when_the_run_is_used(digits, tmp_path, capsys):
    _file(tmp_path / "layers", "__init__.py", "")
    _file(tmp_path / "layers", "backbone.py", BACKBONE)
    net = _file(tmp_path, "net.py", NET.format(module="layers.backbone"))
    run = tmp_path / "run"
    with pytest.warns(UserWarning) as said:
        _train(capsys, net, digits, run)
    said = [str(w.message) for w in said if "package" in str(w.message)]
    assert len(said) == 1 and "\n" not in said[0] and said[0].startswith(
        "net.py imports layers, a package (a folder) beside it, which a run does not keep: the run will not rebuild "
        "the model from its code"), said
    assert _source(run)["file"] is None and not list(run.glob("*.py"))
    for argv in (["evaluate", run, "--trust-code"], ["predict", run, next(digits.glob("3/*.png")), "--trust-code"]):
        err = _refused(capsys, *argv)
        assert "the run cannot rebuild: net.py imports layers, a package (a folder) beside it" in err, err
        assert "Net(hidden=32)" not in err and "notebook" not in err
    with pytest.raises(NeuralabError, match="net.py imports layers, a package"):
        load_classifier(run)
    # from Python, the module given again loads the run
    user = _imported(net, "net_with_a_package")
    assert load_classifier(run, model=user.Net()).predict(np.zeros((2, 1, 8, 8), np.uint8)).shape == (2,)


def test_a_model_given_as_a_packages_init_is_said_as_it_trains_and_loads_from_python(digits, tmp_path, capsys):
    """Its relative imports take the package's other files, which a run does not keep: a copy of
    __init__.py alone could never run again."""
    package = tmp_path / "mypkg"
    _file(package, "backbone.py", BACKBONE)
    _file(package, "net.py", NET.format(module=".backbone"))
    init = _file(package, "__init__.py", "from .net import Net\n")
    run = tmp_path / "run"
    with pytest.warns(UserWarning) as said:
        _train(capsys, f"{init}:Net", digits, run)
    said = [str(w.message) for w in said if "__init__" in str(w.message)]
    assert len(said) == 1 and "\n" not in said[0] and said[0].startswith(
        f"{init} is a package's __init__.py, and a run does not keep the package: the run will not rebuild the "
        "model from its code"), said
    assert _source(run)["file"] is None and not list(run.glob("*.py"))
    err = _refused(capsys, "evaluate", run, "--trust-code")
    assert f"the run cannot rebuild: {init} is a package's __init__.py" in err, err
    user = _imported(init, "init_given_as_the_model")
    assert load_classifier(run, model=user.Net()).predict(np.zeros((2, 1, 8, 8), np.uint8)).shape == (2,)


def test_a_packages_init_without_relative_imports_given_as_the_model_is_kept_and_the_run_rebuilds(digits, tmp_path,
                                                                                                 capsys):
    """One that defines the model itself runs alone as any file does: a run keeps it."""
    init = _file(tmp_path / "code" / "mypkg", "__init__.py", BLOCK_OF_A_LIBRARY.replace("Block", "Net"))
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the run keeps the code
        _train(capsys, f"{init}:Net", digits, run)
    assert _source(run)["file"] == "model.py"
    shutil.rmtree(tmp_path / "code")  # the run alone rebuilds it
    _evaluates_as_trained(run, capsys)


BLOCKS_IMPORTING_BACK = """
    from torch import nn

    from net import WIDTH


    def block():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))
"""

NET_OF_BLOCKS = """
    from torch import nn

    WIDTH = 32
    from blocks import block  # noqa: E402  after WIDTH, which blocks.py imports back


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = block()

        def forward(self, x):
            return self.b(x)
"""


def test_a_helper_importing_the_model_file_back_is_kept_and_the_run_rebuilds(digits, tmp_path, capsys):
    """The model's file keeps its own name in the run, which the helper's import asks for."""
    code = tmp_path / "code"
    _file(code, "blocks.py", BLOCKS_IMPORTING_BACK)
    net = _file(code, "net.py", NET_OF_BLOCKS)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: the run keeps the code
        _train(capsys, net, digits, run)
    source = _source(run)
    assert source["file"] == "net.py" and list(source["imports"]) == ["blocks.py"]
    shutil.rmtree(code)  # the run alone rebuilds it
    _evaluates_as_trained(run, capsys)


IMPORTS_BY_A_CALL = """
    import importlib

    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            width = {call}.WIDTH
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

        def forward(self, x):
            return self.f(x)
"""


@pytest.mark.parametrize("call", ['importlib.import_module("width")', '__import__("width")'])
def test_a_helper_imported_by_a_call_is_said_as_it_trains_and_the_run_loads_from_python(call, digits, tmp_path,
                                                                                        capsys):
    """As in plain Python, the constructor imports it from the model's folder; the run does not
    keep it, and says so."""
    code = tmp_path / "code"
    _file(code, "width.py", "WIDTH = 16\n")
    net = _file(code, "net.py", IMPORTS_BY_A_CALL.format(call=call))
    run = tmp_path / "run"
    try:
        with pytest.warns(UserWarning) as said:
            _train(capsys, net, digits, run)
        said = [str(w.message) for w in said if "width" in str(w.message)]
        assert len(said) == 1 and "\n" not in said[0] and said[0].startswith(
            "net.py imports width from beside it other than by an import statement (importlib.import_module, "
            "__import__), which a run does not keep: the run will not rebuild the model from its code"), said
        assert _source(run)["file"] is None and not list(run.glob("*.py"))
        err = _refused(capsys, "predict", run, next(digits.glob("3/*.png")), "--trust-code")
        assert "the run cannot rebuild: net.py imports width from beside it other than by an import statement" in err
        # the module given again, as its session has it, loads the run
        sys.path.insert(0, str(code))
        user = _imported(net, f"net_importing_by_{call[:8]}")
        assert load_classifier(run, model=user.Net()).predict(np.zeros((2, 1, 8, 8), np.uint8)).shape == (2,)
    finally:
        sys.modules.pop("width", None)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(code))


@pytest.mark.parametrize("call", ["importlib.import_module(NAME)", "__import__(f'wid{NAME[3:]}')", 'im("width")',
                                  'getattr(importlib, "import_module")("width")'])
def test_a_helper_imported_by_a_call_on_a_name_the_code_computes_or_by_another_name_is_said_as_it_trains(
        call, digits, tmp_path, capsys):
    """No reading of the call names the module (a name the code computes, import_module under
    another name): the run kept the model's file without the helper it imports, and failed to
    load elsewhere; it names the helper, as for a string, and keeps no code."""
    code = tmp_path / "code"
    _file(code, "width.py", "WIDTH = 16\n")
    net = _file(code, "net.py", IMPORTS_BY_A_CALL.format(call=call).replace(
        "from torch", 'from importlib import import_module as im\n    NAME = "width"\n    from torch'))
    run = tmp_path / "run"
    try:
        said = _warned_of_a_helper(capsys, net, digits, run)
        assert said.startswith(
            "net.py imports width from beside it other than by an import statement (importlib.import_module, "
            "__import__), which a run does not keep: the run will not rebuild"), said
        assert not list(run.glob("*.py"))
    finally:
        sys.modules.pop("width", None)


@pytest.mark.parametrize("call, means", [
    ("runpy.run_path(str(Path(__file__).with_name('width.py')))", "runpy.run_path"),
    ("runpy.run_module('width')", "runpy.run_module"),
    ("exec(open(Path(__file__).with_name('width.py')).read(), ns := {})", "exec")])
def test_a_helper_file_run_other_than_by_an_import_is_said_as_it_trains(call, means, digits, tmp_path, capsys):
    """runpy.run_path, runpy.run_module and exec(open(...).read()) run a file beside the model that
    the run does not keep: it failed to load with the file missing from the run's folder; it says
    so instead, naming the call it found."""
    code = tmp_path / "code"
    _file(code, "width.py", "WIDTH = 16\n")
    read = f"{call}['WIDTH']" if call.startswith("runpy") else f"({call}, ns)[1]['WIDTH']"
    net = _file(code, "net.py", IMPORTS_BY_A_CALL.format(call=read).replace(".WIDTH", "").replace(
        "from torch", "import runpy\n    from pathlib import Path\n    from torch"))
    run = tmp_path / "run"
    said = _warned_of_a_helper(capsys, net, digits, run)
    assert said.startswith(f"net.py imports the file that {call[:50]}") and \
        f"runs other than by an import statement ({means}), which a run does not keep" in said, said
    assert not list(run.glob("*.py"))


def test_a_library_module_run_by_runpy_keeps_the_run(digits, tmp_path, capsys):
    """runpy.run_module of the standard library's or a package's module (an environment report, in
    a function the build never calls) runs no file of the model's folder: the run kept no code for
    it; it keeps it and loads again."""
    code = tmp_path / "code"
    _file(code, "width.py", "WIDTH = 16\n")  # a file beside it that the call does not name
    net = _file(code, "net.py", MAIN_ONLY.replace("import importlib", "import runpy").replace(
        '    if __name__ == "__main__":\n        importlib.import_module("plot_utils").show(Net())',
        '    def env_report():\n        runpy.run_module("torch.utils.collect_env", run_name="__main__")'))
    assert "run_module" in net.read_text()
    run = tmp_path / "run"
    _trains_keeping_its_code(capsys, net, digits, run)
    _evaluates_as_trained(run, capsys)


@pytest.mark.parametrize("call", ['importlib.import_module("json")', "importlib.import_module(NAME)"])
def test_a_call_importing_a_library_module_by_its_name_keeps_the_run(call, digits, tmp_path, capsys):
    """A module that is no file beside the model's, named in a string or computed: the run keeps
    the code and loads again, with no warning."""
    net = _file(tmp_path / "code", "net.py", IMPORTS_BY_A_CALL.format(call=call).replace(
        '.WIDTH', '.dumps([0] * 6).count("0") + 10').replace("from torch", 'NAME = "json"\n    from torch'))
    run = tmp_path / "run"
    _trains_keeping_its_code(capsys, net, digits, run)
    _evaluates_as_trained(run, capsys)


COMPUTED_IN_FORWARD = """
    import importlib

    from torch import nn

    NAME = "json"


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

        def forward(self, x):
            return self.f(x) * importlib.import_module(NAME).loads("1")
"""


@pytest.mark.parametrize("where, beside, kept", [("__init__", ("train.py", "test_net.py"), True),
                                                 ("forward", (), True), ("forward", ("train.py",), False)])
def test_a_computed_call_of_a_library_module_beside_scripts_data_and_runs_keeps_the_run(where, beside, kept, digits,
                                                                                       tmp_path, capsys):
    """A project's folder holds data/, neuralab's own runs/ and scripts (train.py, test_net.py)
    that the model does not import: the run kept its code on the first train and lost it on the
    next, once runs/ was there, and lost it at once beside a script. A folder without __init__.py
    is no module a call imports, and a call in the constructor ran as the model was built,
    importing nothing of the folder; only one that runs later (forward) beside a .py file is said."""
    code = tmp_path / "code"
    for name in beside:
        _file(code, name, "from net import Net\n\nprint(Net())\n")
    (code / "data").mkdir(parents=True)
    net = _file(code, "net.py", COMPUTED_IN_FORWARD if where == "forward" else IMPORTS_BY_A_CALL.format(
        call="importlib.import_module(NAME)").replace('.WIDTH', '.dumps([0] * 6).count("0") + 10').replace(
        "from torch", 'NAME = "json"\n    from torch'))
    for run in (code / "runs" / "first", code / "runs" / "second"):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            _train(capsys, net, digits, run)
        said = [str(w.message) for w in said if "import statement" in str(w.message)]
        if kept:
            assert not said and _source(run)["file"] == "model.py", said
        else:
            assert len(said) == 1 and said[0].startswith(
                "net.py imports the module that importlib.import_module(NAME) names as it runs"), said
            assert _source(run)["file"] is None
    if kept:
        _evaluates_as_trained(run, capsys)


def test_a_computed_call_that_may_take_a_module_beside_the_model_imported_before_is_said(digits, tmp_path, capsys):
    """The session imported the helper before (a notebook beside the model): the call takes it
    from sys.modules, and no run of the code tells which module it took; the run says so and
    keeps no code."""
    code = tmp_path / "code"
    _file(code, "width.py", "WIDTH = 16\n")
    net = _file(code, "net.py", IMPORTS_BY_A_CALL.format(call="importlib.import_module(NAME)").replace(
        "from torch", 'NAME = "width"\n    from torch'))
    run = tmp_path / "run"
    sys.path.insert(0, str(code))
    try:
        importlib.import_module("width")
        said = _warned_of_a_helper(capsys, net, digits, run)
        assert said.startswith("net.py imports the module that importlib.import_module(NAME) names as it runs other "
                               "than by an import statement"), said
    finally:
        sys.modules.pop("width", None)
        sys.path.remove(str(code))


MAIN_ONLY = """
    import importlib

    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

        def forward(self, x):
            return self.f(x)


    if __name__ == "__main__":
        importlib.import_module("plot_utils").show(Net())
"""


def test_a_call_only_python_file_py_runs_keeps_the_run(digits, tmp_path, capsys):
    """The call under if __name__ == "__main__":, which neuralab does not run, imports nothing the
    model needs: the run was refused a rebuild for it; it keeps the code and loads again."""
    code = tmp_path / "code"
    _file(code, "plot_utils.py", "def show(model):\n    print(model)\n")
    net = _file(code, "net.py", MAIN_ONLY)
    run = tmp_path / "run"
    _trains_keeping_its_code(capsys, net, digits, run)
    shutil.rmtree(code)
    _evaluates_as_trained(run, capsys)


# --- rQ2 1 and 4: buffers whose values do not change the network; a class whose file seeds ---------

UNREAD = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(64, 10)
            # fairseq's SinusoidalPositionalEmbedding keeps one, only for its device and dtype
            self.register_buffer("_float_tensor", torch.FloatTensor(1), persistent=False)
            # preallocated work buffers, which forward overwrites before it reads them: torch.empty's
            # memory may come out alike in two builds (zeros, as here), and otherwise in a reload
            self.register_buffer("work", torch.empty(4096, 64), persistent=False)
            self.register_buffer("zeroed", torch.zeros(4096, 64), persistent=False)
            self.register_buffer("scale", torch.full((10,), 0.5), persistent=False)

        def forward(self, x):
            w, z = self.work[:x.shape[0]], self.zeroed[:x.shape[0]]
            w.copy_(x.flatten(1).to(self._float_tensor))
            z.copy_(w.tanh())
            return self.f(z) * self.scale
"""


def test_buffers_whose_values_change_no_output_train_and_reload_unchecked(digits, tmp_path, capsys):
    """Refused as "another network" (their memory differs from one build to the next) though both
    builds compute the same; or, where two builds met the same memory, recorded, so that a reload
    whose torch.empty met other memory was refused. The run records the buffer that counts alone,
    which a reload checks."""
    run = tmp_path / "run"
    _train(capsys, _file(tmp_path, "unread.py", UNREAD), digits, run)
    assert list(_source(run)["buffers"]) == ["scale"]
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert evaluate_run(run, trust_code=True)["test_accuracy"] == accuracy


def test_a_buffer_that_changes_the_outputs_is_named_alone_among_those_that_differ(digits, tmp_path, capsys):
    net = _file(tmp_path, "entropy2.py", """
        import numpy as np
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                proj = np.random.default_rng().standard_normal((64, 32), dtype=np.float32) / 8
                self.register_buffer("proj", torch.from_numpy(proj), persistent=False)
                self.register_buffer("_float_tensor", torch.FloatTensor(1), persistent=False)
                self.fc = nn.Linear(32, 10)

            def forward(self, x):
                return self.fc(x.flatten(1).to(self._float_tensor) @ self.proj)
    """)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "torch:entropy2.py:Net: Net builds its buffer proj (registered with persistent=False, which no run " \
           "saves) with other values each time its code builds it, and those change its outputs" in err, err
    assert "_float_tensor" not in err and not (tmp_path / "run").exists()


SEEDED = """
    import torch
    from torch import nn

    import drawn_at_import

    torch.manual_seed(1234)  # as scripts do, for repeatable runs


    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(64, 10)
            self.register_buffer("p", torch.randn(64, 64) / 8, persistent=False)
            self.register_buffer("q", drawn_at_import.Q.clone(), persistent=False)

        def forward(self, x):
            return self.f(x.flatten(1) @ self.p @ self.q)
"""


def test_a_class_whose_file_seeds_and_imports_a_drawing_helper_trains_from_python_as_from_its_file(
        digits, tmp_path, capsys):
    """Its file ran in the caller's session, not under the run's seed, and the class built there
    was refused as drawing "other values each time" (every draw is seeded). It trains, and
    reloads, as the same file given as FILE.py:NAME does."""
    code = tmp_path / "code"
    _file(code, "drawn_at_import.py", "import torch\n\nQ = torch.randn(64, 64) / 8\n")
    path = _file(code, "seeded_proj.py", SEEDED)
    with torch.random.fork_rng(devices=[]):  # the file seeds torch as it runs
        module = _imported(path, "seeded_proj")
    sys.modules.pop("drawn_at_import", None)
    config = ClassifierConfig(model=module.Proj, data=str(digits), train=TrainConfig(epochs=1, batch_size=64, seed=0))
    result = train_classifier(config, out=tmp_path / "run", verbose=False)
    torch.manual_seed(99)
    assert evaluate_run(result.run_dir, trust_code=True)["test_loss"] == pytest.approx(result.test["loss"], rel=1e-5)
    recorded = _source(result.run_dir)["buffers"]
    assert sorted(recorded) == ["p", "q"]
    assert unsaved_buffers(load_classifier(result.run_dir, trust_code=True).model) == recorded
    _train(capsys, f"{path}:Proj", digits, tmp_path / "from_file", "--seed", 0)
    assert _source(tmp_path / "from_file")["buffers"] == recorded


# --- the bytes that ran; the same code loaded twice in one process ----------------------------------

EDITS_ITSELF = """
    from pathlib import Path

    from torch import nn

    # stands for the user's editor saving the file while neuralab runs it (a slow import)
    Path(__file__).write_text(Path(__file__).read_text().replace("SCALE = 1.0", "SCALE = -1.0  # edited"))
    SCALE = 1.0


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)) * SCALE
"""


def test_the_run_keeps_the_bytes_that_ran_not_the_file_as_edited_after(digits, tmp_path, capsys):
    path = _file(tmp_path / "code", "net.py", EDITS_ITSELF)
    ran = path.read_bytes()
    run = tmp_path / "run"
    _train(capsys, path, digits, run)
    assert b"# edited" in path.read_bytes()
    assert (run / "model.py").read_bytes() == ran
    _evaluates_as_trained(run, capsys)


# --- crD 1: only a helper of the model's own folder, imported by a call naming it, makes a run it cannot keep --

BLOCK_OF_A_LIBRARY = """
    from torch import nn


    class Block(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""

NET_OF_A_LIBRARY = """
    import importlib

    from torch import nn

    from mylib import Block


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            act = getattr(importlib.import_module("torch.nn"), "Identity")  # a call, of a library's module
            self.b = nn.Sequential(Block(), act())

        def forward(self, x):
            return self.b(x.data)
"""


def test_helpers_found_through_pythonpath_below_the_folder_or_imported_before_keep_the_run(digits, tmp_path,
                                                                                           capsys):
    """A project's own library in a subfolder on PYTHONPATH (lib/mylib.py importing lib/mylib2.py),
    and a helper beside the model that the session imported before (data.py, a name the model's
    code has in it), are no import by a call of the model's folder: the run keeps the code."""
    code = tmp_path / "code"
    _file(code / "lib", "mylib.py", "from mylib2 import Block  # noqa: F401\n")
    _file(code / "lib", "mylib2.py", BLOCK_OF_A_LIBRARY)
    _file(code, "data.py", "ROOT = 'pictures'\n")
    net = _file(code, "net.py", NET_OF_A_LIBRARY)
    run = tmp_path / "run"
    sys.path[:0] = [str(code / "lib"), str(code)]
    try:
        importlib.import_module("data")  # the notebook's own helper
        _trains_keeping_its_code(capsys, net, digits, run)
        _evaluates_as_trained(run, capsys)
    finally:
        for name in ("data", "mylib", "mylib2"):
            sys.modules.pop(name, None)
        del sys.path[:2]


def test_a_script_beside_the_model_that_reads_it_before_torch_is_imported_keeps_the_run(tmp_path):
    """A script in the model's folder reads the model (resolve) before anything imported torch:
    torch's import of multiprocessing names the script's __main__ __mp_main__ as well, a module
    of the folder new in sys.modules, which was said as a helper imported by a call; the model
    imports its helper by a statement, and the run keeps its code."""
    import subprocess

    code = tmp_path / "code"
    _file(code, "blocks.py", "WIDTH = 16\n")
    _file(code, "net.py", IMPORTS_BY_A_CALL.format(call="blocks").replace("import importlib", "import blocks"))
    _file(code, "read.py", """
        import warnings

        from neuralab.training.source import resolve

        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            source = resolve("net.py")
        print(source.not_kept, sorted(source.imports), [str(w.message) for w in said if "statement" in str(w.message)])
    """)
    imported = subprocess.run([sys.executable, "-c", "import sys, neuralab.training.source; print(*sys.modules)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert "torch" not in imported and "multiprocessing" not in imported  # else no __mp_main__ is new as it builds
    done = subprocess.run([sys.executable, "read.py"], cwd=code, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "None ['blocks.py'] []", done.stdout


# --- crD 3: a run loaded again and again keeps no copy of its code once its model is gone ---------------


def test_a_second_model_importing_by_a_call_a_helper_of_the_name_of_anothers_is_said(digits, tmp_path, capsys):
    """Two models trained in one process, each with its own width.py imported by a call: the second
    gets the first one's, as Python's import gives a name once; its run says so, and keeps no
    code that a new process could not rebuild."""
    nets = {}
    for project, width in (("a", 16), ("b", 32)):
        _file(tmp_path / project, "width.py", f"WIDTH = {width}\n")
        nets[project] = _file(tmp_path / project, "net.py",
                              IMPORTS_BY_A_CALL.format(call='importlib.import_module("width")'))
    try:
        with pytest.warns(UserWarning, match="imports width from beside it"):
            _train(capsys, nets["a"], digits, tmp_path / "run_a")
        with pytest.warns(UserWarning) as said:
            _train(capsys, nets["b"], digits, tmp_path / "run_b")
        said = [str(w.message) for w in said if "width" in str(w.message)]
        assert len(said) == 1 and said[0].startswith(
            f"net.py imports width ({tmp_path / 'a' / 'width.py'}, imported before from another folder, which it "
            "gets in place of its own) other than by an import statement"), said
        assert _source(tmp_path / "run_b")["file"] is None
    finally:
        sys.modules.pop("width", None)


BLOCKS_AND_NET_HALF_SAVED = """
    from pathlib import Path

    from torch import nn

    # stands for the user's editor saving a half-written change while neuralab runs the file
    Path(__file__).write_text(Path(__file__).read_text() + "\\nclass Unfinished(")


    class Block(nn.Sequential):
        def __init__(self, cin, cout):
            super().__init__(nn.Linear(cin, cout), nn.ReLU())


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), Block(64, 32), nn.Linear(32, 10))

        def forward(self, x):
            return self.f(x)
"""


def test_the_model_built_from_the_others_is_found_in_the_bytes_that_ran(digits, tmp_path, capsys):
    path = _file(tmp_path / "code", "net.py", BLOCKS_AND_NET_HALF_SAVED)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"defines several models \(Block, Net\); training Net"):
        _train(capsys, path, digits, run)
    assert _source(run)["name"] == "Net"


def test_whether_a_model_file_names_keras_is_read_from_the_bytes_that_run(tmp_path):
    from neuralab.training.keras_script import _names_keras

    path = _file(tmp_path / "code", "net.py", "import torch\n")  # as on disk once edited
    assert _names_keras(path, {}, code=b"import keras\n") and not _names_keras(path, {}, code=path.read_bytes())
