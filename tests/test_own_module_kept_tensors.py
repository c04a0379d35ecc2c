"""Tensors a researcher's module keeps as plain attributes (review rQ 1, 2): what forward keeps
for later (the last output, an attention map) and a constant the code builds alike every time
train, as they did before such tensors were refused; a tensor drawn at random as the module is
built, which a reloaded run would draw afresh, is still refused. Real images: scikit-learn's
bundled digits (8x8) as a picture folder."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings

import pytest
import torch
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, load_classifier, train_classifier
from test_user_modules_more import _file


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


def _imported(path, monkeypatch):
    """The user's file imported as their notebook imports it (its classes then have a file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, path.stem, module)
    spec.loader.exec_module(module)
    return module


def _config(model, digits) -> ClassifierConfig:
    return ClassifierConfig(model=model, data=str(digits), train=TrainConfig(epochs=1, batch_size=64, seed=0))


KEEPS_FOR_LATER = """
    import torch
    from torch import nn


    class Cache(nn.Module):
        \"\"\"keeps its last output and its attention, for plotting after training\"\"\"

        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
            self.last = None
            self.attention = torch.zeros(0)          # a placeholder until forward has run

        def forward(self, x):
            y = self.f(x)
            self.last = y.detach()
            self.attention = torch.softmax(y, 1).detach()
            return y
"""


def test_a_module_that_has_already_run_trains_with_what_forward_kept(digits, tmp_path, monkeypatch):
    """A notebook's shape check, then training, then training the same object again: refused
    once forward had kept its output (rQ 1), though the run needs none of it."""
    cache = _imported(_file(tmp_path / "code", "cache_rq1", KEEPS_FOR_LATER), monkeypatch).Cache()
    assert cache(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # the shape check
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        for i in (1, 2):
            result = train_classifier(_config(cache, digits), out=tmp_path / f"run{i}", verbose=False)
            assert (result.run_dir / "model.safetensors").is_file() and len(result.history) == 1
    assert not [w for w in said if "plain tensor" in str(w.message)], [str(w.message) for w in said]
    assert cache.last.shape[1] == 10
    # and the run rebuilds it from its code: the cache tells no constructor argument
    assert json.loads((tmp_path / "run2" / "model.json").read_text())["source"]["file"] == "model.py"
    assert load_classifier(tmp_path / "run2", trust_code=True).model.f[1].weight.shape == (10, 64)


CONSTANTS = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = torch.tensor([0.5])                          # a normalising constant
            self.example_input_array = torch.zeros(1, 1, 8, 8)       # as Lightning's documentation has it
            self.scale = torch.tensor(64.0).sqrt()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc((x - self.mean).flatten(1) / self.scale)
"""


def test_constants_kept_as_plain_tensors_train_and_reload_with_advice_for_devices(digits, tmp_path, capsys):
    """They trained before and were refused (rQ 2) as if a reload computed with others: the
    code builds them alike, so it does not. They do stay on the CPU when the model moves."""
    net = _file(tmp_path, "constants", CONSTANTS)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        code = main(["train", "--model", str(net), "--data", str(digits), "--epochs", "1", "--batch-size", "64",
                     "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert ["torch:constants.py:Net: keeps mean, example_input_array, scale as plain tensors, which PyTorch does not "
            "register: built alike every time, the run loaded again computes with the same values, but a model moved "
            "to a device (.to(device)) leaves them behind; register them with self.register_buffer(\"mean\", ..., "
            "persistent=False), self.register_buffer(\"example_input_array\", ..., persistent=False), "
            "self.register_buffer(\"scale\", ..., persistent=False)"] == \
        [str(w.message) for w in said if "plain tensor" in str(w.message)]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert evaluate_run(tmp_path / "run", trust_code=True)["test_loss"] == pytest.approx(results["test_loss"], rel=1e-5)
    assert torch.equal(load_classifier(tmp_path / "run", trust_code=True).model.mean, torch.tensor([0.5]))


RANDOM_PROJECTION = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width=32):
            super().__init__()
            self.proj = torch.randn(64, width) / 8      # a fixed random projection, kept as a plain attribute
            self.fc = nn.Linear(width, 10)

        def forward(self, x):
            return self.fc(torch.relu(x.flatten(1) @ self.proj))
"""


def test_a_projection_drawn_as_the_module_is_built_is_refused_saying_so(digits, tmp_path, monkeypatch):
    """A reload draws another projection: the refusal says that, not what a constant would."""
    net = _imported(_file(tmp_path / "code", "randproj_rq2", RANDOM_PROJECTION), monkeypatch).Net()
    with pytest.raises(NeuralabError, match=r'does not register them: proj \(use self\.register_buffer\("proj", '
                                            r'\.\.\.\)\); proj is drawn at random as the module is built, and no '
                                            r"state_dict\(\) holds it, so the run loaded again would draw another "
                                            r"and compute another network$"):
        train_classifier(_config(net, digits), out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


def test_a_module_built_with_arguments_keeping_a_plain_tensor_is_refused(digits, tmp_path, monkeypatch):
    """Net(width=16) is not the class built without arguments: whether its tensor is drawn
    cannot be told, and a reload could compute with another, so it is refused, as a tensor
    requiring grad is."""
    module = _imported(_file(tmp_path / "code", "randproj_args", RANDOM_PROJECTION), monkeypatch)
    with pytest.raises(NeuralabError, match=r"proj \(use self\.register_buffer.*no state_dict\(\) holds proj, and "
                                            r"Net\(\) cannot be built again as it is \(it takes arguments"):
        train_classifier(_config(module.Net(width=16), digits), out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()
    weighted = module.Net(width=16)
    weighted.proj.requires_grad_()
    with pytest.raises(NeuralabError, match=r"proj \(use nn\.Parameter\); no parameters\(\) or state_dict\(\) holds "
                                            r"proj, so it would be neither trained nor saved$"):
        train_classifier(_config(weighted, digits), out=tmp_path / "run2", verbose=False)
