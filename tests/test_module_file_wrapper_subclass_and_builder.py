"""A file of several classes trains one of them unasked only where its structure says which is
the network: the one buildable without arguments among blocks that need some. A deployment
wrapper around the network, a subclass beside its base, and a torchvision-style network built
by a function are refused, listing the classes (and the function)."""

from __future__ import annotations

import textwrap

import pytest
from helpers import digits_folder

from neuralab.cli import main

NET = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            return self.f(x)
"""

WRAPPER = NET + """

    class WithSoftmax(nn.Module):
        \"\"\"for deployment: probabilities out\"\"\"
        def __init__(self, net: Net = None):
            super().__init__()
            self.net = net or Net()

        def forward(self, x):
            return torch.softmax(self.net(x), -1)
"""

SUBCLASS = """
    import torch
    from torch import nn


    class Base(nn.Module):
        def __init__(self, hidden=32):
            super().__init__()
            self.a = nn.Linear(64, hidden)
            self.b = nn.Linear(hidden, 10)

        def forward(self, x):
            return self.b(torch.relu(self.a(x.flatten(1))))


    class Big(Base):
        def __init__(self):
            super().__init__(hidden=256)
"""

TORCHVISION = """
    from typing import List, Type, Union

    import torch
    from torch import nn


    class BasicBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return torch.relu(x + self.c(x))


    class Bottleneck(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = nn.Conv2d(c, c, 1)

        def forward(self, x):
            return torch.relu(x + self.c(x))


    class ResNet(nn.Module):
        def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: List[int], num_classes=10):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.b = nn.Sequential(*[block(8) for _ in range(layers[0])])
            self.head = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.head(self.b(self.stem(x)).mean((2, 3)))


    def resnet18():
        return ResNet(BasicBlock, [2, 2, 2, 2])
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 100)


def _in_m(tmp_path, monkeypatch, text: str) -> str:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "net.py").write_text(textwrap.dedent(text))
    monkeypatch.chdir(tmp_path)
    return "m/net.py"


def _train(digits, model: str, *more) -> int:
    return main(["train", "--model", model, "--data", str(digits), "--epochs", "1", "--threads", "1", "--out", "run",
                 "--quiet", *more])


@pytest.mark.parametrize("text, classes", [(WRAPPER, "Net, WithSoftmax"), (SUBCLASS, "Base, Big")],
                         ids=["softmax-wrapper", "subclass"])
def test_a_wrapper_or_a_subclass_beside_the_network_is_refused_listing_both(text, classes, digits, tmp_path,
                                                                            monkeypatch, capsys):
    """It trained WithSoftmax (probabilities for logits) and Big, "the one no other class uses"."""
    model = _in_m(tmp_path, monkeypatch, text)
    assert _train(digits, model) == 2
    err = capsys.readouterr().err
    assert err == f"neuralab: error: m/net.py: defines several models ({classes}); name one: m/net.py:NAME\n"
    assert not (tmp_path / "run").exists()
    # and the advice works as written
    assert _train(digits, f"{model}:{classes.split(', ')[0]}") == 0, capsys.readouterr().err


def test_a_torchvision_style_file_is_refused_naming_its_builder_function(digits, tmp_path, monkeypatch, capsys):
    """It picked ResNet, which failed for want of block and layers, after the warning that it would train it."""
    model = _in_m(tmp_path, monkeypatch, TORCHVISION)
    assert _train(digits, model) == 2
    err = capsys.readouterr().err
    assert err == ("neuralab: error: m/net.py: defines several models (BasicBlock, Bottleneck, ResNet); name one: "
                   "m/net.py:NAME, or a function that builds one: m/net.py:resnet18\n"), err
    assert _train(digits, f"{model}:resnet18") == 0, capsys.readouterr().err
