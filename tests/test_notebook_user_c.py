"""What a notebook user meets: training leaves their random generators as they were, refusals
come as one line naming the parameter, help() says what fields mean, reprs are short."""

from __future__ import annotations

import random
import traceback

import numpy as np
import pytest
import torch

from helpers import digits_folder
from neuralab import (ClassifierConfig, ForecastConfig, TrainConfig, Trainer, load_classifier, resume_classifier,
                      run_forecast, train_classifier)
from neuralab.errors import ParameterError
from neuralab.forecasting.config import ModelConfig, WindowConfig, series_train_config
from neuralab.runs import Interrupted

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("nb") / "digits", 100)


def caller_draws() -> tuple:
    """The next draw of each generator a notebook uses, without consuming them."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    draws = random.random(), float(np.random.rand()), float(torch.rand(1))
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])
    return draws


def seed_caller(seed: int) -> tuple:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return caller_draws()


def classifier(digits, **train) -> ClassifierConfig:
    return ClassifierConfig(model="mlp", data=str(digits), train=TrainConfig(**{"epochs": 1, "seed": 0, **train}))


# --- 1. the caller's generators ------------------------------------------------------------

def test_training_puts_the_callers_generators_back_and_repeats_from_its_seed(digits, tmp_path):
    expected = seed_caller(123)
    first = train_classifier(classifier(digits), out=tmp_path / "a", verbose=False)
    assert caller_draws() == expected
    seed_caller(7)  # other draws of the caller's change nothing in the run
    second = train_classifier(classifier(digits), out=tmp_path / "b", verbose=False)
    assert [r["loss"] for r in first.history] == [r["loss"] for r in second.history]
    assert first.test == second.test


def test_a_resume_puts_the_callers_generators_back(digits, tmp_path, cut_in_epoch_2):
    whole_again = cut_in_epoch_2()
    with pytest.raises(Interrupted):
        train_classifier(classifier(digits, epochs=2), out=tmp_path / "cut", verbose=False)
    whole_again()
    expected = seed_caller(5)
    resume_classifier(tmp_path / "cut", verbose=False)
    assert caller_draws() == expected


def test_a_training_that_raises_puts_the_callers_generators_back(digits, tmp_path):
    train_classifier(classifier(digits), out=tmp_path / "run", verbose=False)
    expected = seed_caller(9)
    with pytest.raises(ParameterError, match="already holds a run"):  # refused after the run seeded them
        train_classifier(classifier(digits), out=tmp_path / "run", verbose=False)
    assert caller_draws() == expected


def forecast() -> ForecastConfig:
    return ForecastConfig(data="seattle-weather", target="temp_max",
                          windows=WindowConfig(lookback=14, horizon=1, transform="none"),
                          model=ModelConfig("lstm", hidden=[8]),
                          train=series_train_config(epochs=1, device="cpu", seed=0),
                          baselines=["persistence"], backtest_folds=1)


def test_a_forecast_puts_the_callers_generators_back_and_repeats_from_its_seed(tmp_path):
    expected = seed_caller(123)
    first = run_forecast(forecast(), out=tmp_path / "a", verbose=False)
    assert caller_draws() == expected
    seed_caller(7)
    second = run_forecast(forecast(), out=tmp_path / "b", verbose=False)
    assert [r["loss"] for r in first.history] == [r["loss"] for r in second.history]
    assert first.test == second.test


def test_the_trainers_fit_still_draws_from_the_callers_generators():
    """Trainer.fit neither seeds nor puts back: it trains as PyTorch code does, from where the
    caller's torch generator stands (dropout), so two fits from one seed repeat."""
    def fit() -> list:
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8, dtype=torch.float32), torch.nn.Dropout(0.5),
                                    torch.nn.Linear(8, 3))
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
        trainer = Trainer(model, TrainConfig(epochs=2, batch_size=16, device="cpu"), verbose=False)
        history = trainer.fit(x, y)
        return [h["loss"] for h in history], float(torch.rand(1))

    assert fit() == fit()
    losses, after = fit()
    torch.manual_seed(1)
    assert after != float(torch.rand(1))  # the caller's generator moved on: fit drew from it


# --- 2. Trainer's refusals come alone ------------------------------------------------------

@pytest.mark.parametrize("x, words", [
    (torch.zeros(10, 4, dtype=torch.float64), "x='float64': the model's weights are float32: give x.float()"),
    (torch.zeros(10, 4, dtype=torch.uint8), "x='uint8': the model takes normalised floats, not pixels 0-255"),
])
def test_the_trainers_refusal_of_an_input_comes_without_torchs_error_in_front(x, words):
    trainer = Trainer(torch.nn.Linear(4, 3), TrainConfig(epochs=1, device="cpu"), verbose=False)
    with pytest.raises(ParameterError) as e:
        trainer.fit(x, torch.zeros(10, dtype=torch.long))
    assert str(e.value).startswith(words), str(e.value)
    shown = "".join(traceback.format_exception(e.value))
    assert "During handling of the above exception" not in shown and "RuntimeError" not in shown, shown


def test_the_refusal_of_a_wrong_image_shape_comes_without_torchs_error_in_front():
    from neuralab.models import build_model

    trainer = Trainer(build_model("lenet5", (1, 28, 28), 10), TrainConfig(epochs=1, device="cpu"), verbose=False)
    with pytest.raises(ParameterError, match=r"^x=\(4, 3, 28, 28\): ") as e:
        trainer.evaluate(torch.zeros(4, 3, 28, 28), torch.zeros(4, dtype=torch.long))
    assert "During handling" not in "".join(traceback.format_exception(e.value))


# --- 3. wrong types name the parameter -----------------------------------------------------

def test_a_dict_for_the_config_is_refused_naming_config(tmp_path):
    with pytest.raises(ParameterError, match=r"^config=\{'model': 'mlp', 'data': 'mnist'\}: give a ClassifierConfig: neuralab.ClassifierConfig"
                                             r"\(\.\.\.\), or ClassifierConfig.from_dict\(d\) from a dict of its fields$"):
        train_classifier({"model": "mlp", "data": "mnist"}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_series_name_for_the_config_is_refused_naming_config(tmp_path):
    with pytest.raises(ParameterError, match=r"^config='seattle-weather': give a ForecastConfig: "
                                             r"neuralab.ForecastConfig\(data='seattle-weather'\)$"):
        run_forecast("seattle-weather", out=tmp_path / "run")


def test_a_number_for_out_is_refused_naming_out(digits):
    with pytest.raises(ParameterError, match=r"^out=123: give a folder's path, a str or pathlib.Path"):
        train_classifier(classifier(digits), out=123, verbose=False)
    with pytest.raises(ParameterError, match=r"^out=123: give a folder's path"):
        run_forecast(forecast(), out=123, verbose=False)


def test_none_for_a_run_dir_is_refused_naming_run_dir():
    with pytest.raises(ParameterError, match=r"^run_dir=None: give a folder's path, a str or pathlib.Path"):
        load_classifier(None)


def test_a_comparison_names_its_base_and_out():
    from neuralab.training.compare import compare

    with pytest.raises(ParameterError, match=r"^base=\{'data': 'mnist'\}: give a ClassifierConfig"):
        compare(["mlp"], {"data": "mnist"}, seeds=1, out="runs/x")
    with pytest.raises(ParameterError, match=r"^out=None: give a folder's path"):
        compare(["mlp"], ClassifierConfig(), seeds=1, out=None)


# --- 4. help() ----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [TrainConfig, ClassifierConfig, ForecastConfig])
def test_help_on_a_config_lists_every_field(cls):
    from dataclasses import fields

    listed = (cls.__doc__ or "").partition("Fields:")[2]  # a dataclass without one shows its signature
    missing = [f.name for f in fields(cls) if f"{f.name}:" not in listed and f"{f.name}," not in listed]
    assert not missing, missing


@pytest.mark.parametrize("function, parameters", [
    (train_classifier, ["config", "out", "overwrite", "verbose", "callbacks", "optimizer"]),
    (run_forecast, ["config", "out", "overwrite", "verbose", "callbacks", "model"]),
    (resume_classifier, ["run_dir", "checkpoint", "options", "trust_code", "model"]),
])
def test_help_on_a_training_function_says_each_parameter_in_the_users_words(function, parameters):
    doc = function.__doc__
    assert all(f"{p}:" in doc or f"{p}," in doc for p in parameters), doc
    assert "given_fields" not in doc and "session_threads" not in doc and "given_module" not in doc
    assert "are yours again afterwards" in " ".join(doc.split())


# --- 5, 6, 7 --------------------------------------------------------------------------------

def test_the_output_size_formula_takes_padding_as_the_formula_writes_it():
    from neuralab.mechanics import axis_size
    from neuralab.errors import NeuralabError

    assert axis_size(32, 5, 2, 0) == (14, "floor((32 - 5 + 2*0) / 2) + 1 = 14")
    assert axis_size(32, 5, 2, 1)[0] == axis_size(32, 5, 2, (1, 1))[0] == 15
    assert axis_size(8, 3, 2, (0, 1))[0] == 4
    with pytest.raises(NeuralabError, match="^pads .x.: give one whole number or a pair"):
        axis_size(32, 5, 2, "x")


def test_the_summary_names_the_shape_as_python_gave_it_and_the_command_line_as_typed():
    from neuralab.cli._args import flag_for
    from neuralab.models import build_model, summary
    from neuralab.models.summary import InputShapeError

    with pytest.raises(InputShapeError) as e:
        summary(build_model("lenet5", (1, 28, 28), 10), (3, 28, 28))
    assert str(e.value).startswith("input_shape=(3, 28, 28): LeNet5 fails at features.1 (Conv2d)"), str(e.value)
    assert e.value.render(flag_for).startswith("--input 28x28x3: LeNet5 fails at features.1")
    with pytest.raises(InputShapeError) as e:
        build_model("googlenet", (1, 2, 2), 10)
    assert str(e.value).startswith("input_shape=(1, 2, 2): too small for googlenet")
    assert str(e.value).endswith("the smallest input that works is (1, 4, 4)"), str(e.value)
    assert e.value.render(flag_for).endswith("the smallest input that works is 4x4x1")


def test_a_series_shows_as_one_line():
    from neuralab.data.series import load_series

    weather = load_series("seattle-weather", features=["temp_min"])
    assert repr(weather) == ("Series('seattle-weather', target='temp_max', 1,461 rows, 2012-01-01 .. 2015-12-31, "
                             "frequency D, inputs: temp_min)")


def test_a_comparison_row_shows_its_mean_and_spread():
    from neuralab.training.compare import Row

    assert repr(Row("mlp", 101_770, 1.5, [0.8, 0.82])) == \
        "Row(mlp: test accuracy 81.00% ± 1.41% over 2 seeds, 101,770 parameters, 1.5 s per epoch)"


def test_a_loaded_forecaster_shows_its_target_lookback_and_horizon(tmp_path):
    from neuralab.forecasting import load_forecaster

    run_forecast(forecast(), out=tmp_path / "run", verbose=False)
    shown = repr(load_forecaster(tmp_path / "run"))
    assert shown.startswith("NetworkForecaster('lstm', target='temp_max', lookback=14, horizon=1, "), shown
    assert "TrainConfig" not in shown
