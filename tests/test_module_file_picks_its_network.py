"""A model file holding several classes: the refusal keeps the path as typed, and a block class
beside the network built from it leaves the network, built from the others, to train."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import digits_folder

from neuralab.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_own_module_resume_and_names import RESNET  # noqa: E402

TWO = textwrap.dedent("""\
    from torch import nn

    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.fc(x)

    class B(nn.Module):
        pass
    """)


def test_a_file_of_several_unrelated_classes_is_refused_naming_the_path_as_typed(tmp_path, monkeypatch, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "two.py").write_text(TWO)
    monkeypatch.chdir(tmp_path)
    code = main(["summary", "m/two.py", "--input", "8x8x1"])
    err = capsys.readouterr().err
    assert code == 2 and err.endswith("defines several models (A, B); name one: m/two.py:NAME\n"), err
    # a name with a space is quoted, so that the advice pastes back whole
    (tmp_path / "m" / "two cls.py").write_text(TWO)
    assert main(["summary", "m/two cls.py", "--input", "8x8x1"]) == 2
    assert capsys.readouterr().err.endswith("name one: 'm/two cls.py:NAME'\n")
    (tmp_path / "m" / "no model.py").write_text("WIDTH = 16\n")
    assert main(["summary", "m/no model.py", "--input", "8x8x1"]) == 2
    assert capsys.readouterr().err.endswith("chosen with 'm/no model.py:NAME')\n")


def test_a_block_class_beside_the_network_leaves_the_network_to_train(tmp_path, monkeypatch, capsys):
    digits = digits_folder(tmp_path / "digits", 100)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "resnet.py").write_text(RESNET)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"m/resnet.py: defines several models \(Block, ResNet\); training ResNet, "
                                         r"the one built from the others: name another as m/resnet.py:NAME"):
        code = main(["train", "--model", "m/resnet.py", "--data", str(digits), "--epochs", "1", "--threads", "1",
                     "--out", "run", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "model.json").read_text())["source"]["name"] == "ResNet"
