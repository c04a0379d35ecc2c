"""A user's module holding TorchScript (a scripted layer, or scripted whole), one whose weights
were made float64 in __init__, and what `summary` is given: a --input typed in PyTorch's order,
a zoo model's name from Python."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.models import build_model, summary


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 300)


def _file(folder, name: str, text: str):
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def _refused(capsys, *argv) -> str:
    code = main(list(map(str, argv)))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# a fused activation and a scripted convolution, as custom cells are written
SCRIPTED_LAYER = """
    import torch
    from torch import nn


    @torch.jit.script
    def swish(x):
        return x * torch.sigmoid(x)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.jit.script(nn.Conv2d(1, 8, 3, padding=1))
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(swish(self.conv(x)), 2)
            return self.fc(x.flatten(1))
"""

SCRIPTED_WHOLE = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(x.flatten(1))


    model = torch.jit.script(Net())
"""


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + x


class _WithScriptedBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = torch.jit.script(_Block())
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).flatten(1))


def test_a_scripted_block_is_one_row_holding_all_its_parameters():
    """register_forward_pre_hook is refused on a ScriptModule: summary raised PyTorch's RuntimeError."""
    model = _WithScriptedBlock()
    s = summary(model, (1, 8, 8))
    rows = {r.name: r for r in s.rows}
    assert list(rows) == ["stem", "block", "head"]
    assert rows["block"].kind == "_Block" and rows["block"].output_shape == (4, 8, 8)
    assert rows["block"].params == 4 * 4 * 9 + 4 + 4 + 4 and not rows["block"].block
    assert s.total_params == sum(p.numel() for p in model.parameters()) == sum(r.params for r in s.rows)
    assert s.scripted == ["block"] and not s.held and not s.unused
    assert "Scripted with torch.jit" in str(s) and "block" in str(s)
    # the stand-in that took the hooks is gone again: the model is as it was given
    assert isinstance(model.block, torch.jit.ScriptModule)
    assert [n for n, _ in model.named_children()] == ["stem", "block", "head"]


def test_a_scripted_layer_that_refuses_the_input_says_torchs_own_error():
    model = _WithScriptedBlock()
    model.stem = nn.Conv2d(1, 3, 3, padding=1)  # the block takes 4 channels
    with pytest.raises(NeuralabError, match=r"fails at block \(_Block\): Given groups=1, weight of size") as e:
        summary(model, (1, 8, 8))
    assert "TorchScript interpreter" not in str(e.value)
    assert isinstance(model.block, torch.jit.ScriptModule)


def test_summary_of_a_file_holding_a_scripted_layer(tmp_path, capsys):
    net = _file(tmp_path, "jitnet", SCRIPTED_LAYER)
    assert main(["summary", str(net), "--input", "8x8x1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["kind"], r["params"]) for r in out["rows"]] == [("conv", "Conv2d", 80), ("fc", "Linear", 1290)]
    assert out["scripted"] == ["conv"] and out["total_params"] == 1370
    assert main(["summary", str(net), "--input", "8x8x1", "--layout", "keras"]) == 0
    assert "Scripted with torch.jit, so run as compiled code whose layers no hook sees, each one row with all its " \
           "parameters: conv;" in " ".join(capsys.readouterr().out.split())  # as wrapped to the terminal


def test_summary_of_a_scripted_whole_model(tmp_path, capsys):
    net = _file(tmp_path, "jitwhole", SCRIPTED_WHOLE)
    assert main(["summary", str(net), "--input", "8x8x1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["kind"], r["output_shape"], r["params"]) for r in out["rows"]] == [("net", "Net", [10], 1370)]
    assert out["scripted"] == ["net"] and out["total_params"] == 1370


@pytest.mark.parametrize("text", [SCRIPTED_LAYER, SCRIPTED_WHOLE], ids=["layer", "whole"])
def test_a_module_holding_torchscript_trains_and_predicts(text, digits, tmp_path, capsys):
    net = _file(tmp_path, "jit", text)
    run = tmp_path / "run"
    assert main(["train", "--model", str(net), "--data", str(digits), "--epochs", "1", "--batch-size", "64",
                 "--out", str(run)]) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["test_loss"] < 10
    assert "Scripted with torch.jit" in (run / "summary.txt").read_text()
    picture = next((digits / "3").iterdir())
    capsys.readouterr()
    assert main(["predict", str(run), str(picture), "--trust-code"]) == 0
    assert picture.name in capsys.readouterr().out
    # the exporter's trace could not enter a scripted layer: the model is exported scripted whole
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 0, capsys.readouterr().err
    assert (run / "model.onnx").stat().st_size > 0


def test_train_classifier_takes_a_class_holding_a_scripted_layer(digits, tmp_path):
    """From Python it raised PyTorch's bare RuntimeError."""
    from neuralab import ClassifierConfig, TrainConfig, train_classifier

    result = train_classifier(ClassifierConfig(model=_WithScriptedBlock, data=str(digits),
                                               train=TrainConfig(epochs=1, batch_size=64)),
                              out=tmp_path / "run", verbose=False)
    assert 0.0 <= result.test["accuracy"] <= 1.0 and (tmp_path / "run" / "model.safetensors").exists()


def test_export_of_a_model_that_cannot_be_scripted_whole_names_the_scripted_part(digits, tmp_path, capsys):
    """The exporter's own words were "Tried to trace <__torch__...> but it is not part of the active trace"."""
    net = _file(tmp_path, "unscriptable", SCRIPTED_LAYER.replace("def forward(self, x):", "def forward(self, x, *rest):"))
    run = tmp_path / "run"
    assert main(["train", "--model", str(net), "--data", str(digits), "--epochs", "1", "--out", str(run)]) == 0
    err = _refused(capsys, "export", run, "--onnx", "--trust-code")
    assert err.startswith(f"neuralab: error: {run}: its model holds a part scripted with torch.jit.script (conv), "
                          "which ONNX's exporter cannot trace into, and the whole model cannot be scripted ("), err
    assert err.endswith("build that part without torch.jit.script, then export\n") and not (run / "model.onnx").exists()


# --- weights made float64 in __init__ ------------------------------------------------------------

ALL_DOUBLE = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(64, 32)
            self.b = nn.Linear(32, 10)
            self.double()

        def forward(self, x):
            return self.b(torch.relu(self.a(x.flatten(1))))
"""


def test_a_model_made_float64_is_told_to_keep_its_weights_float32(digits, tmp_path, capsys):
    """It was told to "give it float64 inputs (no .double() ... in forward)", which a user cannot do."""
    net = _file(tmp_path, "alldouble", ALL_DOUBLE)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert ("at a (Linear), which is given float32 inputs, and its weights are float64, as are all the model's: "
            "keep them float32, the type of the data the trainer gives: drop the .double() or .half() in __init__, "
            "or call .float() on the model") in err, err
    assert "give it float64 inputs" not in err and not (tmp_path / "run").exists()


def test_one_float64_layer_is_named(digits, tmp_path, capsys):
    net = _file(tmp_path, "mixed", ALL_DOUBLE.replace("self.double()", "self.b.double()"))
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert ("at b (Linear), which is given float32 inputs, and its weights are float64: keep them float32, the type "
            "of the data the trainer gives: drop the .double() or .half() on b in __init__, or call .float() on it"
            ) in err, err


# --- what summary is given ------------------------------------------------------------------------

@pytest.mark.parametrize("typed, meant, channels", [("3x224x224", "224x224x3", 224), ("1x28x28", "28x28x1", 28),
                                                    ("3x32x32", "32x32x3", 32)])
def test_an_input_typed_channels_first_is_refused(typed, meant, channels, capsys):
    """The header prints (B, 3, 224, 224); typed back, it built a VGG16 of 224-channel pictures 3 high."""
    model = {"224": "vgg16", "28": "lenet5", "32": "cnn"}[meant.split("x")[0]]
    err = _refused(capsys, "summary", model, "--input", typed)
    assert err == (f"neuralab: error: --input {typed}: reads as {channels} channels of {typed.rsplit('x', 1)[0]} "
                   f"pixels; it is height x width x channels, channels last: give {meant}\n")


def test_an_input_typed_channels_first_is_refused_for_a_module_file_too(tmp_path, capsys):
    net = _file(tmp_path, "jitnet", SCRIPTED_LAYER)
    err = _refused(capsys, "summary", net, "--input", "1x8x8")
    assert "--input 1x8x8: reads as 8 channels of 1x8 pixels" in err and "give 8x8x1" in err


@pytest.mark.parametrize("typed", ["224x224x3", "28x28x1", "28x28", "3x3x1", "32x32x32"])
def test_inputs_in_the_order_taken_still_pass(typed, capsys):
    assert main(["summary", "cnn", "--input", typed]) == 0, capsys.readouterr().err


def test_summary_of_a_zoo_name_points_to_build_model():
    """It said model='str', the type's name as if it were the value."""
    with pytest.raises(ParameterError) as e:
        summary("cnn", (1, 28, 28))
    assert str(e.value) == ("model='cnn': give a torch.nn.Module; for a zoo model, build it first with its number "
                            "of classes: summary(build_model('cnn', (1, 28, 28), 10), (1, 28, 28))")
    # and the advice works as written
    assert summary(build_model("cnn", (1, 28, 28), 10), (1, 28, 28)).total_params == 421_834


def test_summary_of_another_object_names_it_not_its_type():
    with pytest.raises(ParameterError) as e:
        summary(3, (1, 28, 28))
    assert str(e.value).startswith("model=3: give a torch.nn.Module")
