"""A researcher's own PyTorch modules (review rP): a fixed tensor kept as a plain attribute,
`neuralab summary` of a module whose forward raises or that takes sequences, a constructor
too big for memory, outputs of the wrong shape, RunLogger given a module, and a model file
that changes torch's process-wide defaults. Each is one line saying what to change, and the
caller's session is left as it was. Real images: scikit-learn's bundled digits (8x8) as a
picture folder; a real series: the bundled seattle-weather."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.models import summary
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier
from neuralab.training.checkpoint import load_tensors
from test_user_modules_more import _file, _refused


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


@pytest.fixture(autouse=True)
def torch_defaults():
    """Each test starts and ends with torch's defaults: a failing one must not leave float64 behind."""
    yield
    torch.set_default_dtype(torch.float32)
    torch.set_default_device(None)
    torch.set_grad_enabled(True)


# --- rP 1: a tensor attribute PyTorch does not register --------------------------------------

RANDOM_PROJECTION = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.randn(64, 32) / 8      # a fixed random projection, kept as a plain attribute
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(torch.relu(x.flatten(1) @ self.proj))
"""


def test_a_plain_tensor_attribute_is_refused_naming_register_buffer(digits, tmp_path, capsys):
    """It trained, and every reload of the run drew another projection: other accuracies, silently."""
    net = _file(tmp_path, "randproj", RANDOM_PROJECTION)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert ('does not register them: proj (use self.register_buffer("proj", ...)); proj is drawn at random as the '
            'module is built') in err, err
    assert not (tmp_path / "run").exists()
    assert main(["summary", str(net), "--input", "8x8x1"]) == 0
    assert ("Plain tensors, not registered with PyTorch, so not saved or moved to a device: proj; one the network "
            "computes with belongs in a buffer (self.register_buffer(NAME, ...))") in capsys.readouterr().out


def test_tensors_a_module_keeps_for_later_or_derives_from_its_weights_are_not_refused(digits, tmp_path):
    """What forward stores (attention maps, the last activations), a registered buffer, and
    torch's own weight_norm and spectral_norm (which keep `weight` as a plain attribute) are no
    unregistered weights."""
    _file(tmp_path, "keeps", """
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("proj", torch.randn(64, 32) / 8)
                self.fc = nn.utils.spectral_norm(nn.Linear(32, 16))
                self.head = nn.utils.weight_norm(nn.Linear(16, 10))

            def forward(self, x):
                self.features = torch.relu(self.fc(x.flatten(1) @ self.proj))
                return self.head(self.features)
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # weight_norm's deprecation
        result = train_classifier(ClassifierConfig(model=str(tmp_path / "keeps.py"), data=str(digits),
                                                   train=TrainConfig(epochs=1, batch_size=64, seed=0)),
                                  out=tmp_path / "run", verbose=False)
    assert (result.run_dir / "model.safetensors").is_file()


# --- rP 3: summary of a module whose forward raises, and of a sequence module --------------------

def test_summary_of_a_module_whose_forward_raises_valueerror_is_one_line(tmp_path, capsys):
    net = _file(tmp_path, "valerr", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(32 * 32, 10)

            def forward(self, x):
                if x.shape[-1] != 32:
                    raise ValueError(f"expected 32x32 images, got {tuple(x.shape)}")
                return self.fc(x.flatten(1))
    """)
    err = _refused(capsys, "summary", net, "--input", "28x28x1")
    assert "--input 28x28x1: Net fails at the model: ValueError: expected 32x32 images" in err, err
    assert main(["summary", str(net), "--input", "32x32x1"]) == 0


LSTM_FORECASTER = """
    from torch import nn


    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 16, batch_first=True, num_layers=2)
            self.head = nn.Linear(16, 1)

        def forward(self, x):  # (batch, steps, features)
            out, _ = self.lstm(x)
            return self.head(out[:, -1])
"""


def test_summary_of_an_lstm_module_takes_steps_x_features(tmp_path, capsys):
    net = _file(tmp_path, "lstm_fc", LSTM_FORECASTER)
    assert main(["summary", str(net), "--input", "30x1"]) == 0
    out = capsys.readouterr().out
    assert 'input (B, 30, 1)' in out and "lstm (LSTM)" in out and "(B, 30, 16)" in out and "Total params: 3,409" in out
    # the advice once it has failed, and before anything has run, in one wording (rQ 8)
    takes = "its first layer, lstm (LSTM), takes sequences (batch, steps, features): give --input as steps x features"
    err = _refused(capsys, "summary", net, "--input", "30x1x1")
    assert err.startswith("neuralab: error: --input 30x1x1: Forecaster fails at lstm (LSTM): ") and \
        err.endswith(f"; {takes}, e.g. 30x1\n"), err
    err = _refused(capsys, "summary", net)
    assert f"a PyTorch module does not say what it takes; {takes}, e.g. 30x1" in err, err


def test_summary_of_a_sequence_module_without_a_recurrent_first_layer(tmp_path, capsys):
    """A Conv1d over (batch, steps, features), as `neuralab forecast --model` gives windows:
    30x2 fails as a 30x2 picture and works as 30 steps of 2 features."""
    net = _file(tmp_path, "tcn", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(2, 8, 3)
                self.head = nn.Linear(8 * 28, 1)

            def forward(self, x):
                return self.head(self.conv(x.transpose(1, 2)).flatten(1))
    """)
    assert main(["summary", str(net), "--input", "30x2"]) == 0
    out = capsys.readouterr().out
    assert "input (B, 30, 2)" in out and "conv (Conv1d)" in out and "(B, 8, 28)" in out, out


def test_the_library_summary_says_a_sequence_module_takes_steps_and_features():
    net = nn.Sequential(nn.GRU(3, 8, batch_first=True))
    with pytest.raises(NeuralabError, match=r"^input_shape=\(3, 12, 1\): Sequential fails at 0 \(GRU\): .*; its first layer, "
                                            r"0 \(GRU\), takes sequences \(batch, steps, features\): give input_shape "
                                            r"as \(steps, features\), e\.g\. \(12, 3\)$"):
        summary(net, (3, 12, 1))
    assert summary(net, (12, 3)).rows[0].output_shape[0] == (12, 8)


CRNN = """
    from torch import nn


    class CRNN(nn.Module):
        \"\"\"the recurrent part defined first; forward runs the convolutions first, on images\"\"\"

        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(8 * 8, 32, batch_first=True)
            self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(32, 10)

        def forward(self, x):                        # (B, 1, H, W)
            f = self.cnn(x)                          # (B, 8, H, W)
            seq = f.permute(0, 3, 1, 2).flatten(2)   # (B, W, 8 * H): a column a step
            y, _ = self.rnn(seq)
            return self.head(y[:, -1])
"""


def test_summary_of_an_image_model_that_defines_its_recurrent_layer_first(tmp_path, capsys):
    """A CRNN's first layer defined is its GRU, its first layer called a convolution: its images
    were refused as if it took sequences (rQ 3), and the advice given failed too."""
    net = _file(tmp_path, "crnn", CRNN)
    for size in ("8x8x1", "8x8"):
        assert main(["summary", f"{net}:CRNN", "--input", size]) == 0
        out = capsys.readouterr().out
        assert "input (B, 1, 8, 8)" in out and "rnn (GRU)" in out and "Total params: 9,818" in out, out
    err = _refused(capsys, "summary", f"{net}:CRNN", "--input", "8x8x3")
    assert "--input 8x8x3: CRNN fails at cnn.0 (Conv2d): " in err and "takes sequences" not in err, err
    from neuralab.training.source import resolve

    assert summary(resolve(f"{net}:CRNN").module, (1, 8, 8)).total_params == 9818


# --- rP 6: a constructor that fails ----------------------------------------------------------------

def test_a_constructor_too_big_for_memory_says_how_big_and_to_make_it_smaller(digits, tmp_path, capsys):
    net = _file(tmp_path, "huge", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(64, 1_000_000)
                self.fc2 = nn.Linear(1_000_000, 1_000_000)    # 4 TB of float32
                self.fc3 = nn.Linear(1_000_000, 10)

            def forward(self, x):
                return self.fc3(self.fc2(self.fc1(x.flatten(1))))
    """)
    for argv in (["train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run"],
                 ["summary", net, "--input", "8x8x1"]):
        err = _refused(capsys, *argv)
        assert "huge.py:9: Net() failed: not enough memory: the model needs at least 3725.3 GiB to build" in err, err
        assert "make it smaller" in err and "without arguments" not in err, err
    assert not (tmp_path / "run").exists()


def test_without_arguments_is_said_only_where_arguments_were_missing(digits, tmp_path, capsys):
    net = _file(tmp_path, "typo", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, hidden=32):
                super().__init__()
                self.fc = nn.Linear(64, str(hidden))

            def forward(self, x):
                return self.fc(x.flatten(1))
    """)
    err = _refused(capsys, "summary", net, "--input", "8x8x1")
    assert "typo.py:8: Net() failed: TypeError: " in err and "without arguments" not in err, err
    # a call inside the constructor that lacks an argument is the constructor's own mistake (rQ 5)
    inner = _file(tmp_path, "inner", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, hidden=32):
                super().__init__()
                self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden))

            def forward(self, x):
                return self.f(x)
    """)
    for argv in (["summary", inner, "--input", "8x8x1"],
                 ["train", "--model", inner, "--data", digits, "--epochs", 1, "--out", tmp_path / "run"]):
        err = _refused(capsys, *argv)
        assert err == ("neuralab: error: " + str(inner) + ":8: Net() failed: TypeError: Linear.__init__() missing 1 "
                       "required positional argument: 'out_features'\n"), err
    needs = _file(tmp_path, "needs", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, hidden):
                super().__init__()
                self.fc = nn.Linear(64, hidden)
    """)
    err = _refused(capsys, "summary", needs, "--input", "8x8x1")
    assert "missing 1 required positional argument: 'hidden'; neuralab calls it without arguments" in err, err


# --- rP 7: outputs of the wrong shape ----------------------------------------------------------------

def test_a_classifier_of_the_wrong_size_says_n_and_what_to_change(digits, tmp_path, capsys):
    net = _file(tmp_path, "wrong_out", """
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(64, 7)

            def forward(self, x):
                return self.fc(x.flatten(1))
    """)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert ("on inputs (N, 1, 8, 8) the model gives (N, 7), the data needs (N, 10) (10 classes); make its last "
            "layer output 10 (nn.Linear(..., 10))") in err, err


FORECASTERS = """
    from torch import nn


    class Squeezed(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, 4, batch_first=True)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.gru(x)[0][:, -1]).squeeze(-1)


    class OneStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, 4, batch_first=True)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.gru(x)[0][:, -1])
"""


@pytest.mark.parametrize("name, horizon, message", [
    ("Squeezed", 3, "the model gives (N,), the data needs (N, 3) (3 steps); "),
    ("OneStep", 3, "the model gives (N, 1), the data needs (N, 3) (3 steps); make its last layer output 3 "
                   "(nn.Linear(..., 3)) or give --horizon 1"),
])
def test_a_forecaster_of_the_wrong_shape_says_what_to_change(name, horizon, message, tmp_path, capsys):
    nets = _file(tmp_path, "nets", FORECASTERS)
    err = _refused(capsys, "forecast", "--model", f"{nets}:{name}", "--data", "seattle-weather", "--target", "temp_max",
                   "--lookback", 6, "--horizon", horizon, "--epochs", 1, "--out", tmp_path / "run")
    assert f"on inputs (N, 6, 1) {message}" in err, err
    assert not (tmp_path / "run").exists()


def test_in_python_the_forecasters_refusal_names_the_parameter(tmp_path):
    from neuralab.forecasting import ForecastConfig, WindowConfig, run_forecast

    nets = _file(tmp_path, "nets", FORECASTERS)
    config = ForecastConfig(data="seattle-weather", target="temp_max", windows=WindowConfig(lookback=6, horizon=3))
    with pytest.raises(NeuralabError, match=r"\(3 steps\); make its last layer output 3 \(nn\.Linear\(\.\.\., 3\)\) "
                                            r"or give horizon 1$"):
        run_forecast(config, out=tmp_path / "run", verbose=False, model=f"{nets}:OneStep")


# --- rP 9: RunLogger given a torch.nn.Module ----------------------------------------------------------

def test_runlogger_given_a_pytorch_module_says_what_to_use_instead(tmp_path):
    pytest.importorskip("keras")
    from neuralab.training import RunLogger

    logger = RunLogger(out=tmp_path / "run")
    with pytest.raises(NeuralabError) as e:
        logger.set_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    said = str(e.value)
    assert said.startswith("RunLogger watches Keras's fit, and got a torch.nn.Module (Sequential): ") and \
        "neuralab.Trainer" in said and "train_classifier(ClassifierConfig(model=module, ...))" in said and \
        "docs/api.md, 'Your own model on the trainer' and 'Your own module: model='" in said, said
    assert "convert()" not in said and not (tmp_path / "run").exists()


# --- rP 10: torch's process-wide defaults ----------------------------------------------------------------

def test_a_model_file_setting_float64_leaves_the_session_in_float32(digits, tmp_path):
    net = _file(tmp_path, "double", """
        import torch
        from torch import nn

        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

            def forward(self, x):
                return self.body(x.to(self.body[1].weight.dtype))

        model = Net()
    """)
    with pytest.warns(UserWarning, match=r"double\.py: sets torch's default dtype to float64 \(torch\.set_default_dtype"
                                         r"\), which neuralab puts back to float32 once the model is built, so that it "
                                         r"does not outlast the file in your session; the model's float64 weights are "
                                         r"cast to float32"):
        result = train_classifier(ClassifierConfig(model=str(net), data=str(digits),
                                                   train=TrainConfig(epochs=1, batch_size=64, seed=0)),
                                  out=tmp_path / "run", verbose=False)
    assert torch.get_default_dtype() == torch.float32 and torch.zeros(1).dtype == torch.float32
    assert torch.is_grad_enabled()
    weights, _ = load_tensors(result.run_dir / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert len(result.history) == 1 and result.history[0]["loss"] < 2.5


def test_a_constructor_setting_the_default_dtype_is_undone_too(tmp_path):
    from neuralab.training.source import resolve

    _file(tmp_path, "ctor", """
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                torch.set_default_dtype(torch.float64)
                self.fc = nn.Linear(64, 10)
    """)
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        cls = __import__("ctor").Net
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.warns(UserWarning, match=r"^Net\(\): sets torch's default dtype to float64 .* the model's float64 "
                                         r"weights are cast to float32$"):
        source = resolve(cls)
    assert torch.get_default_dtype() == torch.float32
    assert {p.dtype for p in source.module.parameters()} == {torch.float32}


PACKAGE_MODEL = """
    from torch import nn

    from .layers import Block


    class PkgNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = Block(1, 8)
            self.fc = nn.Linear(8 * 16, 10)

        def forward(self, x):
            return self.fc(self.b(x).flatten(1))
"""

PACKAGE_LAYERS = """
    from torch import nn


    class Block(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.c, self.p = nn.Conv2d(i, o, 3, padding=1), nn.AdaptiveAvgPool2d(4)

        def forward(self, x):
            return self.p(self.c(x).relu())
"""


def test_a_model_file_of_a_package_importing_with_dots_is_told_what_works(tmp_path, capsys):
    package = tmp_path / "mypkg"
    _file(package, "__init__", "")
    _file(package, "layers", PACKAGE_LAYERS)
    model = _file(package, "model", PACKAGE_MODEL)
    err = _refused(capsys, "summary", f"{model}:PkgNet", "--input", "28x28x1")
    assert f"{model}:4: ImportError: attempted relative import with no known parent package; neuralab runs the " \
           "model's file alone, not as a module of its package: import its helpers without dots" in err, err
    assert "(from mypkg.model import ...)" in err
    # both ways it names work
    beside = _file(tmp_path, "usepkg", "from mypkg.model import PkgNet\n")
    try:
        assert main(["summary", f"{beside}:PkgNet", "--input", "28x28x1"]) == 0
    finally:  # imported as Python imports a package, into sys.modules
        for name in ("mypkg", "mypkg.model", "mypkg.layers"):
            sys.modules.pop(name, None)
    model.write_text(model.read_text().replace("from .layers", "from layers"))
    assert main(["summary", f"{model}:PkgNet", "--input", "28x28x1"]) == 0


def test_a_model_file_of_a_package_importing_a_helper_without_dots_too_is_told_to_import_the_model(tmp_path,
                                                                                                   capsys):
    """Its helper imported without dots runs as the model's own (the run keeps it): the import
    with dots then fails in neuralab's import of that helper, and the hint still names the model."""
    package = tmp_path / "mypkg"
    _file(package, "__init__", "")
    _file(package, "layers", PACKAGE_LAYERS)
    _file(package, "util", "SIZE = 8\n")
    model = _file(package, "model", PACKAGE_MODEL.replace("from .layers", "import util  # noqa: F401\n    from .layers"))
    err = _refused(capsys, "summary", f"{model}:PkgNet", "--input", "28x28x1")
    assert f"{model}:5: ImportError: attempted relative import with no known parent package" in err, err
    assert "give a file beside the package that imports the model (from mypkg.model import ...)" in err, err


def test_a_forward_importing_a_helper_by_a_call_is_told_how_to_import_it_not_blamed_on_the_inputs(tmp_path, capsys):
    """Plain Python finds width.py from the script's folder all along; neuralab takes the model's
    folder off sys.path once the model is built."""
    _file(tmp_path / "code", "width", "SCALE = 2\n")
    net = _file(tmp_path / "code", "net", """
        import importlib

        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

            def forward(self, x):
                return self.f(x) * importlib.import_module("width").SCALE
    """)
    digits = digits_folder(tmp_path / "digits", 20)
    err = _refused(capsys, "train", "--model", f"{net}:Net", "--data", digits, "--epochs", "1", "--out",
                   tmp_path / "run")
    assert "torch:net.py:Net: the model's forward fails to import (ModuleNotFoundError: No module named 'width'), " \
           "which no input causes: a helper beside the model's file is found by an import statement" in err, err
    assert "inputs" not in err.partition("which no input")[0]


# --- rK 8: a model file saved as UTF-16 or UTF-32 ---------------------------------------------------

WIDE_NET = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.f(x)
"""


@pytest.mark.parametrize("encoding, said", [
    ("UTF-16", "text in UTF-16, which Python does not read"), ("UTF-32", "text in UTF-32, which Python does not read"),
    ("UTF-16-LE", "holds NUL bytes, which no Python file does (text in UTF-16 or UTF-32 without its mark?)")])
def test_a_model_file_in_utf16_or_utf32_is_told_to_be_saved_as_utf8(encoding, said, digits, tmp_path, capsys):
    """What PowerShell's > and Notepad's "Unicode" write: Python's parser saw NUL bytes, and the
    refusal gave "None" for a line and no word of the encoding; without its mark (UTF-16-LE), the
    NULs say it."""
    net = tmp_path / "net.py"
    net.write_bytes(WIDE_NET.encode(encoding.lower()))
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert err == f"neuralab: error: {net}: {said}; save it as UTF-8\n", err
    assert not (tmp_path / "run").exists()


def test_a_model_file_in_utf8_with_its_mark_trains(digits, tmp_path, capsys):
    """Notepad's "UTF-8 with BOM": Python reads it, and so does neuralab, which keeps its code."""
    import codecs
    import json

    net = tmp_path / "net.py"
    net.write_bytes(codecs.BOM_UTF8 + WIDE_NET.encode())
    run = tmp_path / "run"
    assert main(["train", "--model", str(net), "--data", str(digits), "--epochs", "1", "--threads", "1",
                 "--out", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((run / "model.json").read_text())["source"]["file"] == "model.py"
    assert (run / "model.py").read_bytes() == net.read_bytes()


def test_a_helper_in_utf16_is_named_with_the_line_importing_it(digits, tmp_path, capsys):
    code = tmp_path / "code"
    _file(code, "net", WIDE_NET.replace("import torch.nn as nn", "import torch.nn as nn\nfrom blocks import Block"))
    (code / "blocks.py").write_bytes("from torch import nn\n\nBlock = nn.Identity\n".encode("utf-16"))
    err = _refused(capsys, "train", "--model", code / "net.py", "--data", digits, "--epochs", 1, "--out",
                   tmp_path / "run")
    assert err == (f"neuralab: error: {code / 'blocks.py'}: text in UTF-16, which Python does not read; save it as "
                   f"UTF-8 (imported by {code / 'net.py'}:2)\n"), err
