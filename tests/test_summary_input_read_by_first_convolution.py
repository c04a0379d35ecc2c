"""Three sizes typed in PyTorch's order are refused unless the module says it takes them so: a
first convolution taking that many channels (MNIST's 28 rows read as a sequence of 28 features),
or a lazy one whose kernel is 1 high on an input 1 high. And a scripted whole model's table is
headed by the class its row names."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from neuralab.cli import main
from neuralab.models import summary

# MNIST as 28 steps of 28 features: the rows are the channels, a 1-D convolution along each row
ROW_READER = """
    import torch
    from torch import nn


    class RowNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = {conv}
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            return self.head(torch.relu(self.c(x)).mean((2, 3)))
"""


def _file(folder, conv: str):
    path = folder / "rows.py"
    path.write_text(textwrap.dedent(ROW_READER.format(conv=conv)))
    return str(path)


def _table(capsys, *argv) -> dict:
    code = main(["summary", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("conv", ["nn.Conv2d(28, 32, kernel_size=(1, 3), padding=(0, 1))",
                                  "torch.jit.script(nn.Conv2d(28, 32, kernel_size=(1, 3), padding=(0, 1)))",
                                  "nn.Conv2d(28, 32, kernel_size=3, padding=1)",
                                  "nn.LazyConv2d(32, kernel_size=(1, 3), padding=(0, 1))"],
                         ids=["conv", "scripted", "square-kernel", "lazy"])
def test_a_module_whose_first_convolution_takes_the_typed_channels_is_summarised(conv, tmp_path, capsys):
    """It said "reads as 28 channels of 1x28 pixels ... give 28x28x1", on which the module then failed."""
    out = _table(capsys, _file(tmp_path, conv), "--input", "1x28x28")
    assert out["input_shape"] == [28, 1, 28]
    assert [(r["name"], r["output_shape"]) for r in out["rows"]] == [("c", [32, 1, 28]), ("head", [10])]


def test_the_typed_order_is_still_refused_where_the_first_convolution_takes_one_channel(tmp_path, capsys):
    """A kernel 1 high does not vouch for 28 channels where the layer says it takes 1."""
    net = _file(tmp_path, "nn.Conv2d(1, 32, kernel_size=(1, 3), padding=(0, 1))")
    assert main(["summary", net, "--input", "1x28x28"]) == 2
    assert capsys.readouterr().err == ("neuralab: error: --input 1x28x28: reads as 28 channels of 1x28 pixels; it is "
                                       "height x width x channels, channels last: give 28x28x1\n")
    assert _table(capsys, net, "--input", "28x28x1")["rows"][0]["output_shape"] == [32, 28, 28]


def test_a_scripted_whole_model_is_headed_by_its_class():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 28 * 28, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    s = summary(torch.jit.script(Net()), (1, 28, 28))
    assert s.model == "Net" and [(r.name, r.kind) for r in s.rows] == [("net", "Net")]
    assert str(s).startswith('Model: "Net"')
