"""The guesses at an axis order refuse only what reads wrong, and never where the order is known
(the command line parsed HxWxC itself); sizes are whole numbers as operator.index takes them; a
model's options are read, not built; a tensor is read, never written."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.keras import read
from neuralab.mechanics import kernels, shapes
from neuralab.mechanics.norm import dropout_forward
from neuralab.models.zoo import build_model, count_parameters


def torch_out(in_chw, filters, kernel, padding=0):
    return tuple(torch.nn.Conv2d(in_chw[0], filters, kernel, padding=padding)(torch.zeros(1, *in_chw)).shape[1:])


# --- 1. conv_shape: the command line never guesses; Python keeps a meant shape -----------------

@pytest.mark.parametrize("typed, kernel, printed", [("64x3x64", "3x1", "62x3x8"), ("32x1x32", "3x1", "30x1x8"),
                                                    ("16x1x16", "1", "16x1x8")])
def test_conv_shape_on_the_command_line_takes_hxwxc_as_typed(capsys, typed, kernel, printed):
    assert main(["conv", "shape", "--input", typed, "--kernel", kernel, "--filters", "8"]) == 0
    out = capsys.readouterr().out
    assert f"output shape: {printed}" in out and f"input  {typed} (H x W x depth)" in out


def test_a_kernel_too_large_on_the_command_line_speaks_of_flags_not_python(capsys):
    assert main(["conv", "shape", "--input", "640x3x480", "--kernel", "5"]) == 2
    err = capsys.readouterr().err
    assert err == ("neuralab: error: --kernel 5x5 is larger than the padded input 640x3; allowed: 1 to 640 high and 1 "
                   "to 3 wide, or more --padding\n")


def test_conv_shape_takes_a_1d_convolution_and_a_meant_shape_as_torch_does():
    # 16 channels of a 16-step signal 1 wide, and a 1x1 convolution: what torch computes
    assert shapes.conv_shape((16, 16, 1), 8, (3, 1)).out_chw == torch_out((16, 16, 1), 8, (3, 1)) == (8, 14, 1)
    assert shapes.conv_shape((64, 64, 1), 8, 1).out_chw == torch_out((64, 64, 1), 8, 1) == (8, 64, 1)
    with pytest.raises(ParameterError, match=r"if you mean 64 channels of 64x3, pass guess_order=False$"):
        shapes.conv_shape((64, 64, 3), 8, 3)
    assert shapes.conv_shape((64, 64, 3), 8, 3, guess_order=False).out_chw == torch_out((64, 64, 3), 8, 3)
    with pytest.raises(ParameterError, match=r"^in_chw=\(28, 28, 1\): reads as 28 channels of 28x1"):
        shapes.conv_shape((28, 28, 1), 8, 3, padding="same")  # MNIST in Keras's order: "same" computes on it


# --- 2. one owner of the guess; an MLP takes any order -----------------------------------------

def test_an_mlp_takes_any_order_and_a_conv_net_refuses_kerass(capsys):
    assert main(["summary", "mlp", "--input", "64x1x64"]) == 0
    assert "input (B, 64, 64, 1)" in capsys.readouterr().out
    assert count_parameters(build_model("mlp", (28, 28, 1), 10)) == count_parameters(build_model("mlp", (1, 28, 28), 10))
    with pytest.raises(ParameterError) as from_zoo:
        build_model("cnn", (28, 28, 1), 10)
    with pytest.raises(ParameterError) as from_mechanics:
        shapes.conv_shape((28, 28, 1), 8, 3)
    assert str(from_zoo.value).split(": ", 1)[1] == str(from_mechanics.value).split(": ", 1)[1]
    assert from_zoo.value.parameter == "input_shape"
    with torch.device("meta"):
        assert build_model("cnn", (28, 28, 1), 10, guess_order=False).features[0].in_channels == 28


# --- 3. a model's options are read from its signatures ----------------------------------------

def test_an_unknown_option_on_an_input_too_small_still_lists_the_options():
    with pytest.raises(NeuralabError) as e:  # every trial build on (3, 2, 2) vanished: "it takes none"
        build_model("googlenet", (3, 2, 2), 10, dropuot=0.5)
    assert str(e.value) == ("googlenet: unknown model option 'dropuot'; did you mean 'dropout'? it takes aux_logits, "
                            "dropout, small")


def test_an_unknown_option_builds_nothing_more():
    code = """
import sys
from neuralab.models.zoo import build_model
build_model("cnn", (1, 28, 28), 10)
try:
    build_model("cnn", (1, 28, 28), 10, dropuot=0.5)
except Exception as e:
    print(e)
print(*(m for m in ("torch._dynamo", "sympy") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines() == ["cnn: unknown model option 'dropuot'; did you mean 'dropout'? it takes channels, "
                                "kernel_size, block_dropout, dense, dropout", ""]


# --- 4. whole numbers as operator.index takes them ----------------------------------------------

def test_a_0d_integer_array_or_tensor_is_a_whole_number():
    assert shapes.pair((np.array(2), 1), "stride") == (2, 1)
    assert shapes.pair((torch.tensor(2), 1), "stride") == (2, 1)
    assert shapes.pair(np.array(3), "kernel") == (3, 3)
    assert type(shapes.pair((np.array(2), np.int64(1)))[0]) is int
    for value in ((torch.tensor(True), 1), np.array(2.0), torch.tensor([3]), (np.bool_(True), 1)):
        with pytest.raises(NeuralabError, match="give one whole number or a pair"):
            shapes.pair(value, "stride")
    with pytest.raises(NeuralabError) as e:
        shapes.pair(2.0, "stride")
    assert str(e.value) == "stride 2.0: give one whole number or a pair of whole numbers, ints such as 2 or (2, 1)"


# --- 5. a small feature map of many channels is a picture ----------------------------------------

@pytest.mark.parametrize("shape", [(4, 4, 16), (3, 3, 8)])
def test_apply_kernel_takes_a_small_feature_map_of_many_channels(shape):
    rng = np.random.default_rng(0)
    x, box = rng.random(shape), np.ones((3, 3)) / 9
    out = kernels.apply_kernel(x, box, depth="per-channel", padding="same")
    assert out.shape == shape
    expected = torch.nn.functional.conv2d(torch.from_numpy(np.moveaxis(x, -1, 0))[:, None], torch.from_numpy(box)[None, None],
                                          padding=1)[:, 0]
    np.testing.assert_allclose(out, np.moveaxis(expected.numpy(), 0, -1), atol=1e-12)


# --- 6. the archive's refusal says what is true ------------------------------------------------

def test_an_entry_outside_the_archive_is_refused_as_a_file_keras_never_writes(tmp_path):
    path = tmp_path / "slip.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("assets/../../pwned.txt", b"outside")
    with pytest.raises(NeuralabError) as e:
        read(path, weights=False)
    assert str(e.value) == (f"{path}: the archive holds the entry 'assets/../../pwned.txt', a file Keras's model.save() "
                            "never writes (a path outside the archive's folder); save the model again")


# --- 7. a tensor is read, never written -------------------------------------------------------

def test_a_tensor_is_read_through_a_read_only_view():
    torch.manual_seed(0)
    weight = torch.nn.Linear(3, 2).weight
    kept = weight.detach().clone()
    a = shapes.as_array(weight, "w", "(a, b)")
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 123.0
    out, _ = dropout_forward(weight, 0.5, training=False)  # prediction passes x through
    with pytest.raises(ValueError, match="read-only"):
        out *= 2
    assert torch.equal(weight.detach(), kept)
    assert shapes.as_array(np.ones((2, 2)), "w", "(a, b)").flags.writeable  # NumPy's own arrays stay as given
