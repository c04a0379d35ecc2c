"""`neuralab zoo` and `neuralab summary`, through the CLI's main()."""

from __future__ import annotations

import json

import pytest

from neuralab.cli import main
from neuralab.models import ARCHITECTURES, parameters_at


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_zoo_lists_every_architecture_with_paper_year_and_counts(capsys):
    code, out, err = run(capsys, "zoo")
    assert code == 0 and err == ""
    for name, a in ARCHITECTURES.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert str(a.year) in line and a.paper[:20] in line
    for count in ("61,706", "61,100,840", "60,965,224", "138,357,544", "6,624,904"):
        assert count in out
    assert "\x1b[" not in out  # not a terminal: plain text


def test_zoo_counts_are_the_built_models(capsys):
    """`neuralab zoo` prints counts written down in the zoo (so that it needs no torch): each is a built model's."""
    code, out, _ = run(capsys, "zoo", "--json")
    rows = {r["model"]: r for r in json.loads(out)}
    assert code == 0 and list(rows) == list(ARCHITECTURES)
    for name, a in ARCHITECTURES.items():
        assert rows[name]["params_paper"] == parameters_at(name, a.paper_input, a.paper_classes), name
        assert rows[name]["params_28x28x1"] == parameters_at(name, (1, 28, 28), 10), name
        assert rows[name]["params_32x32x3"] == parameters_at(name, (3, 32, 32), 10), name
    assert rows["vgg16"]["params_paper"] == 138_357_544 and rows["vgg16"]["paper_input"] == "224x224x3"


def test_summary_lenet_at_28x28x1(capsys):
    code, out, err = run(capsys, "summary", "lenet5", "--input", "28x28x1")
    assert code == 0 and err == ""
    assert "features.0 (ZeroPad2d)" in out and "28 + 2 + 2 = 32" in out
    assert "floor((32 - 5 + 2*0) / 1) + 1 = 28" in out and "floor((28 - 2 + 2*0) / 2) + 1 = 14" in out
    assert "Total params: 61,706" in out


def test_summary_defaults_to_the_paper_size(capsys):
    code, out, _ = run(capsys, "summary", "vgg16", "--depth", "1")
    assert code == 0 and 'input (B, 3, 224, 224)' in out and "Total params: 138,357,544" in out
    code, out, _ = run(capsys, "summary", "alexnet", "--input", "32x32x3")
    assert code == 0 and f"Total params: {parameters_at('alexnet', (3, 32, 32), 10):,}" in out  # 10 classes
    code, out, _ = run(capsys, "summary", "cnn", "--input", "32x32x3", "--classes", "100", "--json")
    d = json.loads(out)
    assert d["output_shape"] == [100] and d["input_shape"] == [3, 32, 32]


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnet50"], "neuralab summary: error: argument MODEL: 'resnet50': neither a zoo model (mlp, "),
    (["summary", "missing.keras"], "neuralab: error: missing.keras: file not found"),
    (["summary", "cnn", "--input", "28x28"], None),  # HxW alone means one channel: valid
    (["summary", "cnn", "--input", "28by28"],
     "neuralab summary: error: argument --input: '28by28': expected HxWxC, e.g. 28x28x1 or 32x32x3"),
    (["summary", "cnn", "--input", "0x28x1"], "neuralab summary: error: argument --input: '0x28x1': every size must be at least 1"),
    (["summary", "googlenet", "--input", "3x3x1"], "neuralab: error: --input 3x3x1: too small for googlenet: features.maxpool3"),
    (["summary", "cnn", "--classes", "1"], "neuralab summary: error: argument --classes: 1 must be at least 2"),
    (["summary", "cnn", "--classes", "ten"], "neuralab summary: error: argument --classes: 'ten' is not a whole number"),
    (["summary", "cnn", "--depth", "0"], "neuralab summary: error: argument --depth: 0 must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as e:  # refused while parsing
        code = e.code
    out, err = capsys.readouterr()
    if message is None:
        assert code == 0
        return
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_too_small_suggests_a_size_that_works(capsys):
    code, _, err = run(capsys, "summary", "googlenet", "--input", "3x3x1")
    assert code == 2 and err.rstrip().endswith("the smallest input that works is 4x4x1")
    assert run(capsys, "summary", "googlenet", "--input", "4x4x1")[0] == 0
