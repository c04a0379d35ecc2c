"""Users' own PyTorch modules that the check before training let through or misjudged: a
forward ending in .squeeze() (a batch of one loses its axis), a forecaster's LSTM without
batch_first at two steps, a float64 forward, a reshape to the training batch; and a
MultiheadAttention's output projection in the summary. Real images: scikit-learn's digits as
a picture folder; a real monthly series (Seattle's weather, by month)."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.training.preprocess import Preprocess
from neuralab.training.trained_classifier import Classifier


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


SQUEEZE = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)).squeeze()
"""


def test_a_forward_ending_in_squeeze_is_refused_before_training(digits, tmp_path, capsys):
    """It passed batches of 2 and 3, trained, then `predict RUN one.png` blamed the class names."""
    net = _file(tmp_path, "squeeze", SQUEEZE)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "the model gives (N, 10) for a batch of 2 but (10,) for a batch of 1" in err, err
    assert "drop the .squeeze() at the end of forward, or squeeze only the axis you mean (.squeeze(-1))" in err
    assert not (tmp_path / "run").exists()


class Squeezed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)).squeeze()


def test_predicting_one_picture_with_a_squeezing_model_blames_the_model_not_the_classes(digits):
    """A run trained before the check refused such a module: its one-picture prediction said
    "`classes` names 10 classes, but the model gives outputs of () per image"."""
    from PIL import Image

    picture = np.asarray(Image.open(next((digits / "3").iterdir())))[None, None]
    clf = Classifier(Squeezed(), [str(k) for k in range(10)], Preprocess((1, 8, 8), mean=[0.3], std=[0.4]), "net.py:Net")
    assert clf.predict_proba(np.concatenate([picture, picture])).shape == (2, 10)  # several work
    with pytest.raises(NeuralabError, match=r"^net\.py:Net: the model gives outputs of \(10,\) for 1 image, not one row "
                                            r"per image; its output lost the batch axis: drop the \.squeeze\(\)") as e:
        clf.predict_proba(picture)
    assert "classes" not in str(e.value)


FLOAT64 = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1).double())
"""

FIXED_BATCH = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.view(96, -1))
"""


def test_a_float64_forward_is_told_by_its_dtype_not_a_size_it_already_has(digits, tmp_path, capsys):
    net = _file(tmp_path, "double", FLOAT64)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--out", tmp_path / "run")
    assert "at fc (Linear), which is given float64 inputs, and its weights are float32: give it float32 inputs" in err
    assert "make it nn.Linear" not in err and "another input shape" not in err, err


def test_a_forward_reshaping_to_the_training_batch_gets_the_batch_size_advice(digits, tmp_path, capsys):
    net = _file(tmp_path, "fixed", FIXED_BATCH)
    err = _refused(capsys, "train", "--model", net, "--data", digits, "--epochs", 1, "--batch-size", 96,
                   "--out", tmp_path / "run")
    assert "shape '[96, -1]' is invalid" in err
    assert "forward reshapes to a first size of 96 whatever the batch" in err
    assert "x.view(x.size(0), -1) or x.flatten(1), not a batch size written in the code" in err


class TimeMajorLSTM(nn.Module):  # an nn.LSTM built without batch_first, given (batch, steps, inputs)
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(1, 8)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class BatchMean(nn.Module):  # subtracts the batch's mean in eval mode too: warned, not refused
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x):
        x = x[..., 0]
        return self.fc(x - x.mean(0, keepdim=True))


@pytest.mark.parametrize("lookback", [2, 3])
def test_an_lstm_without_batch_first_is_refused_at_any_lookback(lookback, tmp_path):
    """At --lookback 2 the probe batch of 2 was as long as the windows: only warned, and trained."""
    from neuralab.forecasting import ForecastConfig, WindowConfig, run_forecast

    config = ForecastConfig(data="seattle-weather", target="temp_max",
                            windows=WindowConfig(lookback=lookback, horizon=1))
    with pytest.raises(NeuralabError, match=r"nn\.LSTM takes \(time, batch, features\) unless built with "
                                            r"batch_first=True, and rnn is not: build it with batch_first=True$"):
        run_forecast(config, out=tmp_path / "run", verbose=False, model=TimeMajorLSTM())
    assert not (tmp_path / "run").exists()


def test_a_module_mixing_its_batch_is_warned_about_once_from_python(tmp_path):
    from neuralab.forecasting import ForecastConfig, WindowConfig, run_forecast
    from neuralab.training import TrainConfig

    config = ForecastConfig(data="seattle-weather", target="temp_max", windows=WindowConfig(lookback=2, horizon=1),
                            train=TrainConfig(epochs=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_forecast(config, out=tmp_path / "run", verbose=False, model=BatchMean())
    mixing = [w for w in caught if "outputs of a sample depend on the rest of the batch" in str(w.message)]
    assert len(mixing) == 1, [str(w.message) for w in caught]


def test_a_multihead_attentions_output_projection_counts_as_run():
    """F.multi_head_attention_forward reads out_proj's weights without calling it: the summary
    said "Not run at inference: att (812)"."""
    from neuralab.models.summary import render_summary, summary

    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(28, 4, batch_first=True)
            self.fc = nn.Linear(28, 10)

        def forward(self, x):
            rows = x[:, 0]  # (N, 28, 28): each row of pixels a token
            out, _ = self.att(rows, rows, rows)
            return self.fc(out.mean(1))

    text = render_summary(summary(Attend(), (1, 28, 28), name="attend"), rich=False)
    assert "Not run" not in text, text
    assert f"{sum(p.numel() for p in Attend().parameters()):,}" in text
    assert torch.is_grad_enabled()


# --- a user's own picture folder too small to test on ---------------------------------------------

def test_a_folder_of_one_picture_a_class_says_each_needs_two(digits, tmp_path, capsys):
    """It advised "a larger --test-fraction", which no fraction could help (each class keeps one
    picture for training), and named the folder by its last part alone."""
    import shutil

    few = tmp_path / "few"
    for label in ("3", "7"):
        (few / label).mkdir(parents=True)
        shutil.copyfile(next((digits / label).iterdir()), few / label / "one.png")
    err = _refused(capsys, "train", "--model", "mlp", "--data", few, "--epochs", 1, "--test-fraction", 0.9,
                   "--val-fraction", 0, "--out", tmp_path / "run")
    assert (f"error: {few}: the test set is empty (2 images in all): each class keeps one picture for training, and "
            "3, 7 have only one; give each class at least 2 pictures") in err, err
    assert "--test-fraction" not in err and not (tmp_path / "run").exists()


def test_a_folder_whose_test_share_rounds_to_none_still_says_the_fraction(digits, tmp_path, capsys):
    import shutil

    few = tmp_path / "few"
    for label, n in (("3", 1), ("7", 2)):
        (few / label).mkdir(parents=True)
        for p in sorted((digits / label).iterdir())[:n]:
            shutil.copyfile(p, few / label / p.name)
    err = _refused(capsys, "train", "--model", "mlp", "--data", few, "--epochs", 1, "--test-fraction", 0.1,
                   "--val-fraction", 0, "--out", tmp_path / "run")
    assert f"{few}: the test set is empty (3 images in all); give more images per class, or a larger --test-fraction" \
        in err, err
