"""A researcher's own PyTorch modules (review rP, fourth round): an output whose first size is
not the batch's, lazy layers on the trainer, a module built for larger pictures, outputs the
loss cannot take, a forecaster taking another number of inputs a step, a network given to
ForecastConfig, and parameters a module holds itself in `summary`. Real data: scikit-learn's
bundled digits (8x8) as a picture folder, the bundled seattle-weather series."""

from __future__ import annotations

import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting import ForecastConfig, run_forecast
from neuralab.models import summary
from neuralab.training import TrainConfig, Trainer
from test_user_modules_more import _file, _refused


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"), 200)


@pytest.fixture(scope="module")
def pictures():
    """The digits as the trainer takes them: (N, 1, 8, 8) floats and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images[:256, None] / 16, dtype=torch.float32), torch.tensor(d.target[:256])


FORECAST = ["--data", "seattle-weather", "--target", "temp_max", "--lookback", "6", "--epochs", "1",
            "--baselines", "persistence", "--backtest-folds", "1", "--quiet"]


# --- 1: an output whose first size is not the batch's ------------------------------------------

NO_BATCH_FIRST = """
    from torch import nn


    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 8)          # no batch_first=True: reads (batch, time, 1) as (time, batch, 1)
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return self.head(h[-1])             # (6, 1) for any batch of windows (N, 6, 1)
"""


def test_an_lstm_without_batch_first_is_refused_before_the_run_is_made(tmp_path, capsys):
    """It passed the check (2 dims, 1 output) and crashed in training with a traceback, leaving
    a run listed as interrupted."""
    net = _file(tmp_path, "nobf", NO_BATCH_FIRST)
    err = _refused(capsys, "forecast", "--model", net, *FORECAST, "--out", tmp_path / "run")
    assert "gives (6, 1) for a batch of 2" in err and "the first size of its output is not the batch's" in err
    assert "lstm is not: build it with batch_first=True" in err
    assert not (tmp_path / "run").exists()


BAD_VIEW = """
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 2 * 2 // 2, 10)

        def forward(self, x):
            x = F.max_pool2d(self.conv(x).relu(), 4)    # (N, 8, 2, 2)
            return self.fc(x.view(-1, 16))               # two rows of each picture
"""


def test_a_view_that_makes_rows_of_a_picture_is_refused_with_the_fix(digits, tmp_path, capsys):
    """It was refused as 'Expected input batch_size (256) to match target batch_size (128)'
    after the run was made, sending the user to forward's training mode."""
    net = _file(tmp_path, "badview", BAD_VIEW)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "on inputs (N, 1, 8, 8) the model gives (4, 10) for a batch of 2" in err
    assert "x.flatten(1) or x.view(x.size(0), -1)" in err
    assert not (tmp_path / "run").exists()


ONE_BATCH_SIZE = """
    import torch
    from torch import nn


    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 8, batch_first=True)
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            h0 = torch.zeros(1, 2, 8)              # a batch of 2, written in the code
            out, _ = self.lstm(x, (h0, h0))
            return self.head(out[:, -1])
"""


def test_a_forecaster_hard_wired_to_one_batch_size_is_refused(tmp_path, capsys):
    net = _file(tmp_path, "onebatch", ONE_BATCH_SIZE)
    err = _refused(capsys, "forecast", "--model", net, *FORECAST, "--out", tmp_path / "run")
    assert "works on a batch of 2 and fails on one of 3" in err and "x.view(x.size(0), -1)" in err
    assert not (tmp_path / "run").exists()


# --- 2: lazy layers on the trainer -----------------------------------------------------------

class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.LazyConv2d(4, 3)
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(self.conv(x).relu().flatten(1))


def test_the_trainer_takes_a_module_of_lazy_layers(pictures):
    """Trainer(...) raised torch's 'Attempted to use an uninitialized parameter' counting them."""
    x, y = pictures
    torch.manual_seed(0)
    trainer = Trainer(Lazy(), TrainConfig(epochs=2, batch_size=32, seed=0, threads=1), verbose=False)
    trainer.fit(x[:200], y[:200])
    assert trainer.evaluate(x[200:], y[200:])["accuracy"] > 0.3  # ten classes: chance is 0.1


# --- 3: a module built for larger pictures ----------------------------------------------------

FOR_12 = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class LeNet(nn.Module):                          # the PyTorch tutorial's, for 12x12 pictures
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.fc1 = nn.Linear(6 * 4 * 4, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc2(F.relu(self.fc1(x)))
"""


def test_a_module_built_for_larger_pictures_is_told_the_layer_and_the_size(digits, tmp_path, capsys):
    """It was refused with PyTorch's bare 'mat1 and mat2 shapes cannot be multiplied'."""
    net = _file(tmp_path, "lenet12", FOR_12)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "at fc1 (Linear), nn.Linear(96, ...), which gets 24 features from pictures of 8x8" in err
    assert "make it nn.Linear(24, ...)" in err
    assert "it works on 12x12 pictures" in err and "x = F.pad(x, (2, 2, 2, 2))" in err
    assert "--image-size 12x12" in err
    # the way it names: the pictures at that size train
    assert main(["train", "--model", str(net), "--data", str(digits), "--image-size", "12x12", "--epochs", "1",
                 "--out", str(tmp_path / "run12"), "--quiet"]) == 0, capsys.readouterr().err


# --- 4: outputs the loss cannot take, on the trainer ------------------------------------------

def test_the_trainer_refuses_a_4d_output_as_the_command_does(pictures):
    """Trainer.fit said 'make its forward work when training', where forward worked."""
    x, y = pictures
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 10, 1))
    trainer = Trainer(net, TrainConfig(epochs=1, batch_size=32, threads=1), verbose=False)
    with pytest.raises(NeuralabError) as e:
        trainer.fit(x, y)
    assert str(e.value) == ("Sequential: on inputs (N, 1, 8, 8) the model gives (N, 10, 1, 1), the data needs (N, 10) "
                            "(10 classes); return (batch, 10) from forward: flatten it (.flatten(1))")


# --- 5: a forecaster taking another number of inputs a step ------------------------------------

ONE_INPUT = """
    from torch import nn


    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 8, batch_first=True)
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])
"""


def test_a_forecaster_taking_one_input_a_step_given_two_says_both(tmp_path, capsys):
    """It was refused with PyTorch's 'input.size(-1) must be equal to input_size. Expected 1, got 2'."""
    net = _file(tmp_path, "lstm", ONE_INPUT)
    err = _refused(capsys, "forecast", "--model", net, *FORECAST, "--features", "temp_min", "--out", tmp_path / "run")
    assert ("the model takes 1 input per step (its first layer, lstm, is nn.LSTM(1, ...)), the windows give 2 "
            "(the target, then each of --features, and 2 for each of --calendar)") in err
    assert "make that layer nn.LSTM(2, ...)" in err and "input_size" not in err


# --- 6: a network of one's own given to ForecastConfig ----------------------------------------

def test_a_file_given_as_forecast_config_model_says_where_it_goes(tmp_path):
    net = _file(tmp_path, "lstm", ONE_INPUT)
    with pytest.raises(ParameterError) as e:
        run_forecast(ForecastConfig(data="seattle-weather", target="temp_max", model=str(net)), verbose=False)
    assert e.value.parameter == "model" and "run_forecast(config, model=...)" in str(e.value)
    assert not (tmp_path / "runs").exists()


# --- 7: parameters a module holds itself --------------------------------------------------------

class Raw(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 1, 3, 3) * 0.1)
        self.b = nn.Parameter(torch.zeros(8))
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(nn.functional.conv2d(x, self.w, self.b).relu().flatten(1))


class Token(nn.Module):
    """A ViT's class token: held by a block, which its layers do not count."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 16))
        self.proj = nn.Linear(16, 16)

    def forward(self, x):
        return self.proj(torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1))


def test_summary_rows_and_the_held_parameters_add_up_to_the_total():
    s = summary(Raw(), (1, 8, 8))
    assert sum(r.params for r in s.rows if not r.block) == 2890 and s.total_params == 2970
    assert s.held == [("Raw", [("w", (8, 1, 3, 3)), ("b", (8,))], 80)]
    assert "Parameters Raw holds itself, outside its layers' rows: w (8, 1, 3, 3), b (8,): 80" in str(s)

    vit = summary(nn.Sequential(Token(), nn.Flatten(), nn.Linear(5 * 16, 10)), (4, 16))
    counted = sum(r.params for r in vit.rows if not r.block) + sum(n for *_, n in vit.held)
    assert counted == vit.total_params == 16 + 272 + 810
    assert "Parameters 0 (Token) holds itself, outside its layers' rows: cls_token (1, 1, 16): 16" in str(vit)



def test_the_parameters_of_a_parameter_list_read_in_forward_are_said_and_counted():
    """An nn.ParameterList is never called, only indexed: its parameters were taken for a layer
    that did not run, then neither counted in a row nor said as held (rows 9,802 of 9,804)."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)
            self.scales = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(2)])

        def forward(self, x):
            return self.fc(x.flatten(1) * self.scales[0]) * self.scales[1]

    s = summary(Scaled(), (1, 8, 8))
    assert s.unused == []
    assert s.held == [("scales (ParameterList)", [("0", (1,)), ("1", (1,))], 2)]
    assert sum(r.params for r in s.rows if not r.block) + sum(n for *_, n in s.held) == s.total_params == 652
    assert "Parameters scales (ParameterList) holds itself, outside its layers' rows: 0 (1,), 1 (1,): 2" in str(s)

def test_a_module_of_lazy_batch_norm_failing_on_the_data_is_one_line():
    """A LazyBatchNorm after the layer that failed has no values: keeping the buffers across the
    probes for the failing layer raised torch's ValueError in place of the refusal."""
    from neuralab.training.module_check import checked_module

    net = nn.Sequential(nn.Flatten(), nn.Linear(100, 10), nn.LazyBatchNorm1d())
    with pytest.raises(NeuralabError, match=r"Net: the model fails on the data's inputs \(N, 1, 8, 8\)"):
        checked_module(net, "Net", (1, 8, 8), 10)


def test_checking_a_module_draws_no_more_random_numbers_than_one_forward():
    """The second batch the check runs drew from torch's generator: a module that samples in
    forward (a VAE's layer) trained from other draws than before with the same seed."""
    from neuralab.training.module_check import checked_module

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1) + 0.1 * torch.randn_like(x.flatten(1)))

    import warnings

    torch.manual_seed(0)
    with warnings.catch_warnings():  # sampling is no mixing of samples: no warning that it is
        warnings.simplefilter("error")
        checked_module(Noisy(), "Noisy", (1, 8, 8), 10)
    after_check = torch.rand(3)
    torch.manual_seed(0)
    net = Noisy()
    with torch.no_grad():
        net(torch.zeros(2, 1, 8, 8))
    assert torch.equal(after_check, torch.rand(3))


def test_a_block_rows_own_parameters_are_said_outside_its_layers():
    """MultiheadAttention's row counts its in_proj; the line said 'in no row above'."""
    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x)[0]

    text = str(summary(Attend(), (5, 16)))
    assert "in no row above" not in text
    assert "Parameters mha (MultiheadAttention) holds itself, outside its layers' rows: in_proj_weight (48, 16)" in text


def test_a_time_major_lstm_used_rightly_beside_batch_statistics_is_warned_about_not_refused():
    """The LSTM is given (time, batch, features), as it takes them; the batch norm after it mixes
    samples in eval mode. The check refused it and advised batch_first=True, which breaks it."""
    from neuralab.training.module_check import checked_module

    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.r = nn.LSTM(8, 16)
            self.bn = nn.BatchNorm1d(16, track_running_stats=False)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            out, _ = self.r(x.squeeze(1).permute(1, 0, 2))  # (rows, batch, columns)
            return self.fc(self.bn(out[-1]))

    with pytest.warns(UserWarning, match="outputs of a sample depend on the rest of the batch") as seen:
        checked_module(SeqFirst(), "SeqFirst", (1, 8, 8), 10, training=True)
    assert not any("batch_first" in str(w.message) for w in seen)

    class BatchAsTime(SeqFirst):
        def forward(self, x):
            out, _ = self.r(x.squeeze(1))  # (batch, rows, columns) read as (time, batch, features)
            return self.fc(out[:, -1])

    with pytest.raises(NeuralabError, match="build it with batch_first=True"):
        checked_module(BatchAsTime(), "BatchAsTime", (1, 8, 8), 10, training=True)
