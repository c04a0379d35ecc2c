"""More users' own PyTorch modules, written as researchers write them (layers in a Python list,
a builder function, (logits, features) outputs, a final softmax, LazyLinear, frozen layers,
functional convolutions), each through the paths neuralab offers: a mistake is one line before
any run is made, and what trains reloads from its run. Real images: scikit-learn's bundled
handwritten digits as a picture folder (tests/helpers)."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings

import pytest
import torch
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training import ClassifierConfig, TrainConfig, evaluate_run, train_classifier
from neuralab.training.checkpoint import load_tensors


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 300)


def _file(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def _imported(folder, name: str):
    """The user's file imported as they import it in a notebook or a script."""
    sys.path.insert(0, str(folder))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(folder))


def _train(model, digits, out, **options):
    config = ClassifierConfig(model=model, data=str(digits), train=TrainConfig(epochs=1, batch_size=64, seed=0),
                              **options)
    return train_classifier(config, out=out, verbose=False)


def _refused(capsys, *argv) -> str:
    code = main(list(map(str, argv)))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


PLAIN_LIST = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, sizes=(64, 32, 10)):
            super().__init__()
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]

        def forward(self, x):
            x = x.flatten(1)
            for layer in self.layers[:-1]:
                x = torch.relu(layer(x))
            return self.layers[-1](x)
"""

HEADS_IN_A_DICT = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
            self.heads = {"digits": nn.Linear(32, 10)}

        def forward(self, x):
            return self.heads["digits"](self.body(x))
"""

TEMPERATURE = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)
            self.temperature = torch.ones(1, requires_grad=True)

        def forward(self, x):
            return self.fc(x.flatten(1)) / self.temperature
"""


@pytest.mark.parametrize("text, where", [(PLAIN_LIST, "layers (use nn.ModuleList)"),
                                         (HEADS_IN_A_DICT, "heads (use nn.ModuleDict)"),
                                         (TEMPERATURE, "temperature (use nn.Parameter)")])
def test_weights_pytorch_does_not_register_are_refused_before_a_run_is_made(text, where, digits, tmp_path, capsys):
    """A plain list crashed the optimizer with a traceback and left a half-made run; a dict of
    heads or a bare tensor trained silently without them, and the run reloaded other weights."""
    net = _file(tmp_path, "net", text)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert f"does not register them: {where}" in err and "neither trained nor saved" in err, err
    assert not (tmp_path / "run").exists()
    assert main(["summary", str(net), "--input", "8x8x1"]) == 0
    assert f"Not registered with PyTorch, so not counted above, trained or saved: {where}" in capsys.readouterr().out


def test_a_module_with_every_layer_frozen_is_refused_in_its_own_words(digits, tmp_path, capsys):
    net = _file(tmp_path, "frozen", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(64, 10).requires_grad_(False)

            def forward(self, x):
                return self.fc(x.flatten(1))
    """)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "has nothing to train (every parameter has requires_grad=False)" in err, err


def test_frozen_layers_stay_as_they_were_and_count_as_non_trainable(digits, tmp_path, capsys):
    """A pretrained feature extractor with requires_grad=False: trained around, saved, reloaded."""
    folder = tmp_path / "code"
    folder.mkdir()
    _file(folder, "partly_frozen", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
                self.features.requires_grad_(False)
                self.classifier = nn.Linear(8 * 4 * 4, 10)

            def forward(self, x):
                return self.classifier(self.features(x))
    """)
    model = _imported(folder, "partly_frozen").Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _train(model, digits, tmp_path / "run")
    after, _ = load_tensors(result.run_dir / "model.safetensors")
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("features."))
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert evaluate_run(result.run_dir, trust_code=True)["test_accuracy"] == pytest.approx(result.test["accuracy"])
    assert main(["summary", str(folder / "partly_frozen.py"), "--input", "8x8x1"]) == 0
    assert "Non-trainable params: 80" in capsys.readouterr().out


def test_a_lazy_module_given_as_an_object_is_rebuilt_from_its_file(digits, tmp_path, capsys):
    """nn.LazyLinear takes its shape in the first pass: the class built again has no shapes
    to compare until it sees the data, and the run recorded it as one it cannot rebuild."""
    folder = tmp_path / "code"
    folder.mkdir()
    _file(folder, "lazy_net", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 8, 3)
                self.fc = nn.LazyLinear(10)

            def forward(self, x):
                return self.fc(self.conv(x).relu().flatten(1))
    """)
    result = _train(_imported(folder, "lazy_net").Net(), digits, tmp_path / "run")
    source = json.loads((result.run_dir / "model.json").read_text())["source"]
    assert source["file"] == "model.py" and source["name"] == "Net"
    assert main(["evaluate", str(result.run_dir), "--trust-code"]) == 0
    assert f"{result.test['accuracy']:.2%}" in capsys.readouterr().out


SOFTMAX = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10), nn.{last}(dim=1))

        def forward(self, x):
            return self.net(x)
"""


@pytest.mark.parametrize("last, warned", [("Softmax", True), ("LogSoftmax", False)])
def test_a_model_giving_probabilities_is_warned_about_and_log_probabilities_are_not(last, warned, digits, tmp_path):
    net = _file(tmp_path, "probs", SOFTMAX.format(last=last))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(str(net), digits, tmp_path / "run")
    said = [str(w.message) for w in caught if "probabilities" in str(w.message)]
    assert len(said) == warned, said
    assert not said or "its outputs are probabilities (each row sums to 1: a final softmax)" in said[0]


@pytest.mark.parametrize("name, text, message", [
    ("pair", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
                self.head = nn.Linear(32, 10)

            def forward(self, x):
                f = self.body(x)
                return self.head(f), f
    """, "the model returns a tuple of (N, 10), (N, 32); the data needs one tensor (N, 10) (10 classes): return "
         "that alone from forward"),
    ("named", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(64, 10)

            def forward(self, x):
                return {"logits": self.fc(x.flatten(1))}
    """, "the model returns a dict of {'logits': (N, 10)}; the data needs one tensor (N, 10)"),
    ("nhwc", """
        from torch import nn


        class Net(nn.Module):  # written for Keras's channels-last images
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 8, 3, padding=1)
                self.fc = nn.Linear(8 * 8 * 8, 10)

            def forward(self, x):
                return self.fc(self.conv(x.permute(0, 3, 1, 2)).relu().flatten(1))
    """, "fails on the data's inputs (N, 1, 8, 8), images as (batch, channels, height, width): RuntimeError"),
    ("factory", """
        from torch import nn


        def conv_block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


        def make_model(width=32):
            return nn.Sequential(conv_block(1, 8), nn.Flatten(), nn.Linear(8 * 4 * 4, width), nn.ReLU(),
                                 nn.Linear(width, 10))
    """, "factory.py: defines no model object or class, only functions; name the one that returns the model: "
         "factory.py:conv_block or factory.py:make_model"),
])
def test_modules_that_do_not_fit_say_how_in_one_line(name, text, message, digits, tmp_path, capsys):
    net = _file(tmp_path, name, text)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    said = err.replace(f"{tmp_path}/", "")  # the advice names the file as it was typed, here in tmp_path
    assert message in said and not (tmp_path / "run").exists(), err


class _Pair(torch.nn.Module):
    """(logits, features) in eval mode too, as research code returns them."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU())
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        f = self.body(x)
        return self.head(f), f


class _Named(_Pair):
    def forward(self, x):
        return {"logits": self.head(self.body(x))}


@pytest.mark.parametrize("module, parts", [(_Pair, "a tuple of (N, 10), (N, 32)"),
                                           (_Named, "a dict of {'logits': (N, 10)}")])
def test_a_module_returning_several_outputs_is_refused_alike_by_evaluate_predict_and_a_classifier(
        module, parts, digits):
    """fit refused it in one line; Trainer.evaluate, Trainer.predict and Classifier.predict_proba
    gave AttributeError tracebacks ('tuple' object has no attribute 'float')."""
    from neuralab.data import load_image_data
    from neuralab.training import Classifier, Preprocess, Trainer

    data = load_image_data(str(digits))
    pre = Preprocess.fit(data.train.x)
    x, y = pre.normalise(torch.as_tensor(data.val.x)), torch.from_numpy(data.val.y)
    trainer = Trainer(module(), TrainConfig(epochs=1, batch_size=32, threads=1), verbose=False)
    refusal = f"{module.__name__}: on inputs (N, 1, 8, 8) the model returns {parts}; the data needs one tensor"
    for use in (lambda: trainer.evaluate(x, y), lambda: trainer.predict(x[:3]),
                lambda: Classifier(module(), data.classes, pre, module.__name__).predict_proba(data.test.x[:3])):
        with pytest.raises(NeuralabError) as e:
            use()
        said = str(e.value)
        assert said.startswith(refusal) and said.endswith("return that alone from forward"), said
        assert "\n" not in said


def test_a_class_needing_arguments_given_from_python_says_to_give_it_built(digits, tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    _file(folder, "needs", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, num_classes, hidden):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(64, hidden), nn.Linear(hidden, num_classes)

            def forward(self, x):
                return self.fc2(self.fc1(x.flatten(1)).relu())
    """)
    net = _imported(folder, "needs").Net
    with pytest.raises(NeuralabError, match=r"missing 2 required positional arguments: 'num_classes' and 'hidden'; "
                                            r"neuralab calls it without arguments \(give the module built with them, "
                                            r"Net\(\.\.\.\), or give them defaults\)"):
        _train(net, digits, tmp_path / "run")
    assert (_train(net(10, 16), digits, tmp_path / "built").run_dir / "model.safetensors").is_file()


def test_inspect_of_a_functional_convolution_says_where_its_filters_are(tmp_path):
    from neuralab.models.inspect import first_layer_filters

    folder = tmp_path / "code"
    folder.mkdir()
    _file(folder, "functional_net", """
        import torch
        import torch.nn.functional as F
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w1 = nn.Parameter(torch.randn(8, 1, 3, 3) * 0.3)
                self.w2 = nn.Parameter(torch.randn(10, 8 * 4 * 4) * 0.05)

            def forward(self, x):
                return F.linear(F.max_pool2d(F.conv2d(x, self.w1, padding=1).relu(), 2).flatten(1), self.w2)
    """)
    with pytest.raises(NeuralabError, match=r"its 4-D weights \(w1\) convolve through torch.nn.functional"):
        first_layer_filters(_imported(folder, "functional_net").Net())


@pytest.mark.parametrize("blocks, message", [
    ("from torch import nn\n\n\ndef head(n):\n    return nn.Linear(n, 10\n",
     "blocks.py:5: SyntaxError: '(' was never closed (from {net}:4)"),
    ("from torch import nn\n\nWIDTH = 32\nHEAD = nn.Linear(WIDTH)\n",
     "blocks.py:4: TypeError: Linear.__init__() missing 1 required positional argument: 'out_features' (from {net}:4)"),
])
def test_an_error_in_a_file_the_model_imports_names_that_files_line(blocks, message, digits, tmp_path, capsys):
    """It named only the model file's import line, which holds no mistake."""
    (tmp_path / "blocks.py").write_text(blocks)
    net = _file(tmp_path, "net", """
        from torch import nn

        from blocks import head


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = head(64)

            def forward(self, x):
                return self.fc(x.flatten(1))
    """)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert f"{tmp_path / 'blocks.py'}:" in err and message.format(net=net) in err, err
