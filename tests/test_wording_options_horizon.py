"""Refusals that say what to change: the longer of horizon and lookback, the options a model takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.windows import WindowConfig, minimum_rows, prepare
from neuralab.models import build_model
from neuralab.models.zoo import ARCHITECTURES


def series(n: int):
    index = pd.date_range("2013-01-01", periods=n, freq="D", name="date")
    return load_series(pd.DataFrame({"y": np.sin(np.arange(n) / 7.0)}, index=index), "y", [])


def test_a_series_too_short_for_the_horizon_says_shorten_the_horizon_first():
    config = WindowConfig(lookback=60, horizon=500)
    with pytest.raises(NeuralabError) as e:
        prepare(series(365), config)
    assert str(e.value).endswith(f": 365 rows is fewer than lookback 60 + horizon 500; use a shorter horizon (500) or "
                                 f"lookback (60), or a longer series (at least {minimum_rows(config)} rows, with train, "
                                 "val and test windows)")
    with pytest.raises(NeuralabError, match=r"use a shorter lookback \(400\) or horizon \(1\),"):
        prepare(series(365), WindowConfig(lookback=400))


def test_an_unknown_model_option_lists_the_options_and_the_closest():
    with pytest.raises(NeuralabError) as e:
        build_model("cnn", (1, 28, 28), 10, dropuot=0.3)
    assert str(e.value) == ("cnn: unknown model option 'dropuot'; did you mean 'dropout'? it takes channels, "
                            "kernel_size, block_dropout, dense, dropout")
    with pytest.raises(NeuralabError) as e:  # vgg16 sets its layer list itself: no option
        build_model("vgg16", (3, 32, 32), 10, widths=(8,))
    assert str(e.value) == "vgg16: unknown model option 'widths'; it takes batch_norm, dropout, hidden, small"
    with pytest.raises(NeuralabError, match="^lenet5: unknown model option 'dropout'; it takes none$"):
        build_model("lenet5", (1, 32, 32), 10, dropout=0.3)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_says_its_options(name):
    with pytest.raises(NeuralabError) as e:
        build_model(name, (3, 32, 32), 10, no_such_option=1)
    listed = str(e.value).split("; it takes ")[1].split(", ")
    assert listed == ["none"] if name == "lenet5" else "dropout" in listed and "config" not in listed
