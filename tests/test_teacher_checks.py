"""A workshop teacher's findings: values that start with a minus sign (the edge kernels start
with -1), `rnn topologies` options checked without --train, "1 step back", and a softmax of
scores 1e308 apart without an overflow warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import correlate2d

from neuralab.cli import main
from neuralab.mechanics import dense


def usage_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def gray(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (21, 30), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "gray.png")
    return tmp_path / "gray.png", pixels


@pytest.mark.parametrize("kernel", ["-1,0,1;-2,0,2;-1,0,1", "-1,-1;-1,-1", "-.5,1;1,-.5"])
def test_a_kernel_typed_as_the_workshop_shows_it_with_a_leading_minus_is_applied(capsys, gray, tmp_path, kernel):
    path, pixels = gray
    out = tmp_path / "edges.npy"
    assert main(["conv", "apply", str(path), "--kernel", kernel, "--out", str(out), "--no-figure"]) == 0
    weights = [[float(v) for v in row.split(",")] for row in kernel.split(";")]
    np.testing.assert_allclose(np.load(out), correlate2d(pixels.astype(float), weights, mode="valid"))


def test_a_shape_or_size_with_a_leading_minus_is_refused_by_its_own_check(capsys):
    assert "'-3x3x1': every size must be at least 1" in usage_error(
        capsys, "conv", "shape", "--input", "-3x3x1", "--kernel", "1")
    assert "argument --kernel: '-3': give N or NxM, each at least 1" in usage_error(
        capsys, "conv", "shape", "--input", "5x5x1", "--kernel", "-3")


def test_options_and_their_typos_after_a_value_option_are_still_options(capsys, gray):
    path, _ = gray
    assert "argument --kernel: expected one argument" in usage_error(capsys, "conv", "apply", str(path), "--kernel", "-h")
    assert "--kernal: no such option of neuralab conv apply; did you mean --kernel?" in usage_error(
        capsys, "conv", "apply", str(path), "--kernal", "-1,0,1")


@pytest.mark.parametrize("argv, said", [(["--steps", "-5"], "--steps -5: give a whole number, at least 1"),
                                        (["--seed", "-1"], "--seed -1: give a whole number from 0")])
def test_rnn_topologies_refuses_bad_steps_and_seed_without_train(capsys, argv, said):
    assert main(["rnn", "topologies", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and said in err


@pytest.mark.parametrize("argv", [["--steps", "5"], ["--seed", "3"], ["--steps", "300"]])
def test_rnn_topologies_refuses_a_training_option_without_train(capsys, argv):
    """The shapes alone train nothing: --steps and --seed, their defaults too, are refused, not ignored."""
    assert main(["rnn", "topologies", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert f"{argv[0]} applies only with --train" in err


def test_rnn_gradients_says_one_step_back_in_the_singular(capsys, tmp_path):
    assert main(["rnn", "gradients", "--steps", "2", "--train-steps", "0", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "(the target is the first input, 1 step back):" in out


def test_softmax_of_scores_1e308_apart_is_exact_and_warns_of_nothing():
    z = np.array([[1e308, -1e308, 0.0], [1.0, 2.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow of -1e308 - 1e308 to -inf is harmless
        probabilities, logs = dense.softmax(z), dense.log_softmax(z)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(z), -1).numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(logs, torch.log_softmax(torch.from_numpy(z), -1).numpy(), rtol=1e-15, atol=0)
    assert probabilities[0].tolist() == [1.0, 0.0, 0.0] and logs[0, 1] == -np.inf
