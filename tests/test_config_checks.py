"""Each range and type rule of a setting lives in the library's config check, once: Python
hears of the parameter, the command line of its flag (the CLI's argument types only parse),
and both refuse before data is read or a run's folder is made. Real data: scikit-learn's
handwritten digits as a folder, a daily load with a weekly cycle."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import digits_folder

from neuralab.cli import main
from neuralab.errors import ParameterError
from neuralab.forecasting.config import INITS, GradientConfig, ModelConfig
from neuralab.forecasting.topologies import train_toy
from neuralab.training.config import ClassifierConfig, TrainConfig


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("checks") / "digits", 100)


def refused(config, parameter: str, words: str) -> None:
    with pytest.raises(ParameterError) as e:
        config.check()
    assert e.value.parameter == parameter and words in str(e.value), str(e.value)


# --- Python: each config names its parameter ------------------------------------------------

@pytest.mark.parametrize("field, value, words", [
    ("eval_batch_size", 0, "eval_batch_size=0: must be at least 1"),  # range(0, n, 0) in the evaluation
    ("eval_batch_size", -5, "eval_batch_size=-5: must be at least 1"),
    ("patience", -1, "patience=-1: must be 0 (off) or more"),  # early stopping silently off
])
def test_trainconfig_refuses_an_evaluation_batch_or_patience_out_of_range(field, value, words):
    refused(TrainConfig(**{field: value}), field, words)


def test_an_evaluation_batch_of_0_is_refused_before_the_run_folder_is_made(digits, tmp_path):
    from neuralab.training import train_classifier

    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1, eval_batch_size=0))
    with pytest.raises(ParameterError, match="eval_batch_size=0: must be at least 1"):
        train_classifier(config, out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("changes, parameter, words", [
    ({"val_fraction": "0.2"}, "val_fraction", "val_fraction='0.2': must be a number, not str"),
    ({"val_fraction": True}, "val_fraction", "val_fraction=True: must be a number, not bool"),
    ({"val_fraction": 1.0}, "val_fraction", "val_fraction=1.0: must be in [0, 1)"),
    ({"val_fraction": float("nan")}, "val_fraction", "must be in [0, 1)"),
    ({"test_fraction": -0.1}, "test_fraction", "test_fraction=-0.1: must be in (0, 1)"),
    ({"model_options": [("dropout", 0.5)]}, "model_options", "give a dict of the zoo model's options"),
])
def test_classifierconfig_checks_its_own_fields(changes, parameter, words):
    refused(ClassifierConfig(**changes), parameter, words)


@pytest.mark.parametrize("changes, parameter", [({"val_fraction": "x"}, "val_fraction"),
                                                ({"model_options": [1]}, "model_options")])
def test_train_classifier_and_compare_check_the_classifierconfig_before_any_folder(digits, tmp_path, changes,
                                                                                    parameter):
    from neuralab.training import compare, train_classifier

    config = ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(epochs=1), **changes)
    with pytest.raises(ParameterError) as e:
        train_classifier(config, out=tmp_path / "run", verbose=False)
    assert e.value.parameter == parameter and not (tmp_path / "run").exists()
    with pytest.raises(ParameterError) as e:
        compare(["mlp"], config, seeds=1, out=tmp_path / "compare", verbose=False)
    assert e.value.parameter == parameter and not (tmp_path / "compare").exists()


def test_classifierconfig_takes_no_model_options_as_none(digits, tmp_path):
    # runs saved by earlier releases hold "model_options": null, and the zoo reads None as none
    from neuralab.training import train_classifier

    config = ClassifierConfig(model="mlp", data=str(digits), model_options=None, train=TrainConfig(epochs=1))
    config.check()
    assert config.model_options == {}
    assert train_classifier(config, out=tmp_path / "run", verbose=False).test["accuracy"] > 0


def test_classifierconfig_takes_numpy_numbers_as_pythons():
    config = ClassifierConfig(val_fraction=np.float32(0.25), test_fraction=np.float64(0.1),
                              model_options={"dropout": 0.5})
    config.check()
    assert (type(config.val_fraction), type(config.test_fraction), config.val_fraction) == (float, float, 0.25)


@pytest.mark.parametrize("changes, parameter, words", [
    ({"lr": "0.01"}, "lr", "lr='0.01': must be a number, not str"),
    ({"lr": True}, "lr", "lr=True: must be a number, not bool"),  # True would train at a rate of 1
    ({"clip": None}, "clip", "clip=None: must be a number, not NoneType"),
    ({"probe": 2.5}, "probe", "probe=2.5: must be an int, not float"),
    ({"seed": True}, "seed", "seed=True: must be an int, not bool"),
])
def test_gradientconfig_refuses_a_value_of_the_wrong_type_by_name(changes, parameter, words):
    refused(GradientConfig(**changes), parameter, words)


def test_modelconfig_checks_types_as_the_other_configs_do():
    config = ModelConfig(dropout=np.float32(0.25))  # np.linspace's, as a sweep over dropouts gives them
    config.check()
    assert type(config.dropout) is float and config.dropout == 0.25
    refused(ModelConfig(dropout=True), "dropout", "dropout=True: must be a number, not bool")


@pytest.mark.parametrize("check, parameter", [
    (lambda v: TrainConfig(lr=v).check(), "lr"),
    (lambda v: GradientConfig(lr=v).check(), "lr"),
    (lambda v: GradientConfig(clip=v).check(), "clip"),
    (lambda v: train_toy("one-to-one", lr=v), "lr"),
])
@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), float("nan")])
def test_a_rate_or_a_norm_is_refused_in_one_wording_everywhere(check, parameter, value):
    with pytest.raises(ParameterError) as e:
        check(value)
    assert e.value.parameter == parameter and e.value.reason == "must be a finite number greater than 0"


def test_train_toy_refuses_a_rate_that_is_no_number_by_name():
    with pytest.raises(ParameterError) as e:
        train_toy("one-to-one", lr="0.01")
    assert e.value.parameter == "lr"


@pytest.mark.parametrize("config", [ModelConfig(init="glorot"), GradientConfig(init="glorot")])
def test_both_configs_offer_the_same_initialisations(config):
    with pytest.raises(ParameterError) as e:
        config.check()
    assert e.value.parameter == "init" and all(name in e.value.reason for name in INITS)


# --- the command line: the same rules, named by their flags -----------------------------------

def one_line(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture
def nothing_read(monkeypatch):
    """Fail a test whose command reads its data or measures: a refusal comes before either."""
    import neuralab.data
    import neuralab.forecasting.gradients
    import neuralab.forecasting.pipeline

    def read(*args, **kwargs):
        raise AssertionError("the data was read before the refusal")
    monkeypatch.setattr(neuralab.data, "load_image_data", read)
    monkeypatch.setattr(neuralab.forecasting.pipeline, "load", read)
    monkeypatch.setattr(neuralab.forecasting.gradients, "measure", read)


@pytest.mark.parametrize("command", ["train", "compare"])
def test_train_and_compare_say_the_test_fraction_they_take(capsys, command):
    """--test-fraction's help said nothing of its range, and 0, which the check refuses, read as "none held out"."""
    from neuralab.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "held out for the test set, above 0 and below 1" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, said", [
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--lr", "0"], "--lr 0.0: must be a finite number greater than 0"),
    (["--lr", "nan"], "--lr nan: must be a finite number greater than 0"),
    (["--grad-clip", "-1"], "--grad-clip -1.0: must be 0 (off) or a positive gradient norm"),
    (["--focus", "0"], "--focus 0.0: must be above 0 and at most 1"),
    (["--val-fraction", "1"], "--val-fraction 1.0: must be in [0, 1)"),
    (["--test-fraction", "1"], "--test-fraction 1.0: must be in (0, 1)"),
    # refused once every picture was decoded, advising "a larger --test-fraction" of a share not given
    (["--test-fraction", "0"], "--test-fraction 0.0: must be in (0, 1): the trained model is scored on the "
                               "pictures held out; give a share such as 0.1 (the default)"),
    (["--patience", "-1"], "--patience -1: must be 0 (off) or more"),
    (["--threads", "-1"], "--threads -1: must be 1 or more (0 = torch's choice)"),
    (["--optimizer", "sgd", "--momentum", "1"], "--momentum 1.0: must be at least 0 and below 1"),
])
@pytest.mark.parametrize("command", ["train", "compare"])
def test_train_and_compare_refuse_by_flag_before_reading_the_data(digits, tmp_path, capsys, nothing_read, command,
                                                                  argv, said):
    models = ["--models", "mlp"] if command == "compare" else ["--model", "mlp"]
    err = one_line(capsys, [command, *models, "--data", digits, *argv, "--out", tmp_path / "run"])
    assert err.startswith(f"neuralab: error: {said}"), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, said", [
    (["--optimizer", "sgd", "--momentum", "1.5"], "--momentum 1.5: must be at least 0 and below 1"),
    (["--momentum", "1.5"], "--momentum 1.5: must be at least 0 and below 1"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum 0.5: applies to --optimizer sgd or rmsprop"),
])
def test_a_typed_momentum_is_refused_before_the_model_file_runs(digits, tmp_path, capsys, argv, said):
    # compile()'s SGD may be what a momentum typed alone is for: its range is checked first, and
    # one typed with its optimizer is checked against it at once
    ran = tmp_path / "ran"
    (tmp_path / "net.py").write_text(f"from pathlib import Path\nPath({str(ran)!r}).touch()\n"
                                     "from torch import nn\nmodel = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))\n")
    err = one_line(capsys, ["train", "--model", tmp_path / "net.py", "--data", digits, *argv, "--out", tmp_path / "run"])
    assert err.startswith(f"neuralab: error: {said}"), err
    assert not ran.exists() and not (tmp_path / "run").exists()


def test_a_momentum_that_is_no_number_is_told_so_before_the_model_file_runs(digits, tmp_path):
    from neuralab.training import train_classifier

    (tmp_path / "net.py").write_text("from torch import nn\nmodel = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))\n")
    config = ClassifierConfig(model=str(tmp_path / "net.py"), data=str(digits), train=TrainConfig(momentum="0.9"))
    with pytest.raises(ParameterError, match=r"^momentum='0\.9': must be a number, not str$"):
        train_classifier(config, out=tmp_path / "run", verbose=False)


def test_compare_refuses_no_seeds_by_flag(digits, tmp_path, capsys, nothing_read):
    err = one_line(capsys, ["compare", "--models", "mlp", "--data", digits, "--seeds", "0", "--out", tmp_path / "c"])
    assert err.startswith("neuralab: error: --seeds 0: give how many seeds"), err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("argv, said", [
    (["--lookback", "0"], "--lookback 0: must be at least 1"),
    (["--horizon", "0"], "--horizon 0: must be at least 1"),
    (["--stride", "0"], "--stride 0: must be at least 1"),
    (["--val-fraction", "1"], "--val-fraction 1.0 and --test-fraction 0.15: need"),
    (["--season", "0"], "--season 0: must be between 1 and --lookback (7)"),
    (["--hidden", "8,0"], "--hidden 8,0: give a list of ints, each at least 1"),  # echoed as typed
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--lr", "inf"], "--lr inf: must be a finite number greater than 0"),
    (["--grad-clip", "nan"], "--grad-clip nan: must be 0 (off) or a positive gradient norm"),
    (["--patience", "-1"], "--patience -1: must be 0 (off) or more"),
    (["--threads", "-1"], "--threads -1: must be 1 or more (0 = torch's choice)"),
    (["--backtest-folds", "0"], "--backtest-folds 0: must be at least 1"),
    (["--optimizer", "sgd", "--momentum", "1"], "--momentum 1.0: must be at least 0 and below 1"),
])
def test_forecast_refuses_by_flag_before_reading_the_series(series_csv, tmp_path, capsys, nothing_read, argv, said):
    err = one_line(capsys, ["forecast", "--data", series_csv, "--lookback", "7", *argv, "--out", tmp_path / "run"])
    assert err.startswith(f"neuralab: error: {said}"), err
    assert not (tmp_path / "run").exists()


def test_a_list_flag_is_refused_as_typed_with_no_python_list_to_paste(series_csv, tmp_path, capsys, nothing_read):
    """The sizes are echoed as --hidden takes them, and the reason gives no Python list, which the
    command line refuses ("[128, 64]" pasted after --hidden); Python still sees its own list."""
    from neuralab.errors import ParameterError
    from neuralab.forecasting.config import ModelConfig

    err = one_line(capsys, ["forecast", "--data", series_csv, "--hidden", "8,0", "--out", tmp_path / "run"])
    assert err.startswith("neuralab: error: --hidden 8,0: give a list of ints, each at least 1"), err
    assert "[" not in err and not (tmp_path / "run").exists()
    with pytest.raises(ParameterError) as e:
        ModelConfig(hidden=[8, 0]).check()
    assert str(e.value).startswith("hidden=[8, 0]: give a list of ints")
    # any list a flag names reads back as typed: items joined by commas
    assert e.value.render(lambda p: "--" + p).startswith("--hidden 8,0: ")
    assert ParameterError("models", ("mlp", "my net"), "unknown").render(lambda p: "--" + p) == \
        "--models 'mlp,my net': unknown"


@pytest.mark.parametrize("argv, said", [
    (["--steps", "1"], "--steps 1: must be at least 2"),
    (["--hidden", "1"], "--hidden 1: must be at least 2"),
    (["--batch", "0"], "--batch 0: must be at least 2"),
    (["--train-steps", "-1"], "--train-steps -1: must be 0 or more"),
    (["--lr", "0"], "--lr 0.0: must be a finite number greater than 0"),
    (["--clip", "inf"], "--clip inf: must be a finite number greater than 0"),
])
def test_rnn_gradients_refuses_by_flag_before_measuring(tmp_path, capsys, nothing_read, argv, said):
    err = one_line(capsys, ["rnn", "gradients", *argv, "--out", tmp_path / "g"])
    assert err == f"neuralab: error: {said}", err
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("argv, said", [
    (["--steps", "0"], "--steps 0: give a whole number, at least 1"),
    (["--seed", "-1"], "--seed -1: give a whole number from 0 to"),
])
def test_rnn_topologies_refuses_a_training_setting_before_printing_the_shapes(capsys, argv, said):
    assert main(["rnn", "topologies", "--train", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"neuralab: error: {said}"), captured


def test_forecast_checks_the_threads_a_resume_computes_with_before_reading_the_run(tmp_path, capsys):
    """A resume takes --threads as the session's, which no config of the run checks: the
    command checks them with TrainConfig's own rule before it opens the run."""
    err = one_line(capsys, ["forecast", "--resume", tmp_path / "nope", "--threads", "-1"])
    assert err == "neuralab: error: --threads -1: must be 1 or more (0 = torch's choice)", err
