"""What the docs' readers ran into, taken or refused in one line: the ONNX snippet on a CSV
whose UTC offsets change with summer time (its dates read as the run read them), add_calendar
given what is no frame or no list, an nn.LSTM without batch_first behind out[:, -1] (the right
shape, the batch read as time), a canvas JPEG larger than any canvas, a module given as
ForecastConfig's model, and a folder's too large JPEG named by its own size."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neuralab.data.series import add_calendar, load_series
from neuralab.errors import NeuralabError, ParameterError
from tests.helpers import digits_folder

DOCS = Path(__file__).resolve().parents[1] / "docs"

# the reviewer's module: nn.LSTM(28, 32) reads (time, batch, features), and forward's out[:, -1]
# gives (batch, 10) all the same
LSTM_SEQ_FIRST = """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 32{batch_first})
        self.fc = nn.Linear(32, 10)
    def forward(self, x):
        out, _ = self.lstm(x.squeeze(1))
        return self.fc(out[:, -1])
"""


# --- the ONNX snippet on dates with changing UTC offsets ----------------------------------------

@pytest.fixture(scope="module")
def berlin(tmp_path_factory):
    """Two years of a daily series at Europe/Berlin midnights, as pandas writes them (+01:00 in
    winter, +02:00 in summer): pandas reads such a column back as text."""
    folder = tmp_path_factory.mktemp("berlin")
    days = pd.date_range("2021-01-01", periods=730, freq="D", tz="Europe/Berlin")
    t = np.arange(len(days))
    value = 10 + 5 * np.sin(2 * np.pi * t / 365.25) + np.random.default_rng(0).normal(0, 0.5, len(t))
    pd.DataFrame({"date": days, "value": value}).to_csv(folder / "recent.csv", index=False)
    assert "+01:00" in (folder / "recent.csv").read_text() and "+02:00" in (folder / "recent.csv").read_text()
    return folder


def test_the_docs_onnx_snippet_gives_predicts_forecast_on_a_csv_with_summer_time_offsets(berlin, monkeypatch):
    pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.finished import predict_run
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.windows import WindowConfig

    monkeypatch.chdir(berlin)
    config = ForecastConfig(data="recent.csv", calendar=["dayofyear", "dayofweek"],
                            windows=WindowConfig(lookback=14, horizon=1), model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu"), baselines=["persistence"],
                            backtest_folds=1)
    run_forecast(config, out="runs/w", verbose=False)
    section = (DOCS / "forecasting.md").read_text().split("### Without neuralab: ONNX", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)[1]
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):  # was: add_calendar refused the dates pandas left as text
        exec(compile(snippet, "docs/forecasting.md", "exec"), {"__name__": "__main__"})
    onnx = float(re.findall(r"-?\d+\.\d+", shown.getvalue().splitlines()[-1])[0])
    assert onnx == pytest.approx(float(predict_run("runs/w", "recent.csv")["value"].iloc[0]), abs=1e-4)


def test_load_series_reads_offsets_by_the_rule_given(berlin):
    local = load_series(berlin / "recent.csv", offsets="local-dates").times
    old = load_series(berlin / "recent.csv", offsets="as-written").times  # runs made before: in UTC
    assert str(local[0]) == "2021-01-01 00:00:00" and str(old[0]) == "2020-12-31 23:00:00+00:00"


def test_add_calendar_sends_date_text_with_changing_offsets_to_load_series(berlin):
    frame = pd.read_csv(berlin / "recent.csv", parse_dates=["date"], index_col="date")  # text: pandas 2 and 3
    with pytest.raises(NeuralabError, match=r"^frame is indexed by dates with changing UTC offsets "
                                            r"\('2021-01-01 00:00:00\+01:00', \.\.\.\), which pandas leaves as text; "
                                            r"read the file as the run read it: neuralab\.data\.series\.load_series"
                                            r"\(FILE, TARGET, FEATURES, offsets=its model\.json's series\.offsets\)"):
        add_calendar(frame, ["dayofweek"])
    # date text without offsets: pandas reads it as dates when asked, as the refusal says
    plain = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["2021-01-01", "2021-01-02"], name="date"))
    with pytest.raises(NeuralabError, match=r"parse_dates=\[DATE\], index_col=DATE\)$"):
        add_calendar(plain, ["dayofweek"])


def test_add_calendar_refuses_an_array_and_no_names_in_one_line_naming_the_parameter(berlin):
    frame = load_series(berlin / "recent.csv").frame
    with pytest.raises(NeuralabError, match=r"^frame is a numpy ndarray, not a DataFrame; give a pandas DataFrame "
                                            r"indexed by its dates"):  # was AttributeError: ... no attribute 'index'
        add_calendar(frame.to_numpy(), ["dayofweek"])
    with pytest.raises(ParameterError, match=r"^names=None: give a list of names"):  # was TypeError
        add_calendar(frame, None)


# --- a module whose outputs mix the samples of a batch -------------------------------------------

def _module(tmp_path: Path, batch_first: bool):
    path = tmp_path / f"lstm_{batch_first}.py"
    path.write_text(LSTM_SEQ_FIRST.format(batch_first=", batch_first=True" if batch_first else ""))
    return path


def test_an_lstm_without_batch_first_behind_out_last_step_is_refused_before_the_run(tmp_path):
    from neuralab.training.classify import train_classifier
    from neuralab.training.config import ClassifierConfig, TrainConfig

    folder = digits_folder(tmp_path / "digits", n=200)
    config = ClassifierConfig(model=str(_module(tmp_path, batch_first=False)), data=str(folder), image_size=(28, 28),
                              train=TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(NeuralabError, match=r"the output of a sample depends on the other samples of the batch .*"
                                            r"nn\.LSTM takes \(time, batch, features\) unless built with "
                                            r"batch_first=True, and lstm is not: build it with batch_first=True$"):
        train_classifier(config, out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()
    config.model = str(_module(tmp_path, batch_first=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor warned about
        train_classifier(config, out=tmp_path / "run", verbose=False)
    assert (tmp_path / "run" / "results.json").is_file()


class _Centred(torch.nn.Module):
    """Takes the batch's mean off each sample: it mixes them, as batch-wise normalisation may mean to."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x - x.mean(0))


def test_a_module_mixing_samples_without_a_seq_first_rnn_is_warned_about_and_the_seeded_draws_are_untouched():
    from neuralab.training.module_check import checked_module

    torch.manual_seed(0)
    module = _Centred()
    state = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match=r"^Centred: outputs of a sample depend on the rest of the batch in eval "
                                         r"mode"):
        assert checked_module(module, "Centred", (1, 8, 8), 10, torch.rand(2, 1, 8, 8), training=True) is module
    torch.random.set_rng_state(state)  # the sample's draw above aside, checked_module drew nothing of the seed's
    torch.rand(2, 1, 8, 8)
    after = torch.rand(1)
    torch.random.set_rng_state(state)
    torch.rand(2, 1, 8, 8)
    assert torch.equal(after, torch.rand(1))
    assert module.training  # left as it was given


# --- pictures -----------------------------------------------------------------------------------

def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 40).save(buffer, "JPEG", quality=50)  # baseline: one sequential scan
    return buffer.getvalue()


def test_a_canvas_jpeg_larger_than_any_canvas_is_refused_by_its_declared_size():
    from neuralab.web.classify import model_input

    clf = SimpleNamespace(preprocess=SimpleNamespace(input_shape=(1, 28, 28), expects_light_on_dark=lambda: True))
    with pytest.raises(NeuralabError, match=r"^canvas: 6000x4000 pixels has a side longer than the 1,024 allowed"):
        model_input(clf, _jpeg(6000, 4000), "canvas")  # was read at 750x500 and classified
    with pytest.raises(NeuralabError, match=r"^canvas: 2000x300 pixels has a side longer than the 1,024 allowed"):
        model_input(clf, _jpeg(2000, 300), "canvas")
    assert model_input(clf, _jpeg(280, 280), "canvas").shape == (1, 1, 28, 28)


@pytest.mark.parametrize("width, height", [(8000, 6000), (2400, 1600)])
def test_a_folders_too_large_picture_is_named_by_the_files_own_size_width_by_height(tmp_path, width, height):
    """8000x6000 is decoded at half its size (was named 3000x4000); 2400x1600 at full size (was
    named 1600x2400, height by width)."""
    from neuralab.data.folders import load_image_folder

    folder = digits_folder(tmp_path / "digits", n=40)
    (folder / "7" / "big.jpg").write_bytes(_jpeg(width, height))
    with pytest.raises(NeuralabError, match=rf"big\.jpg: {width}x{height} pixels, more than the 1024 a side"):
        load_image_folder(folder)


# --- a module given as ForecastConfig's model ---------------------------------------------------

def test_a_module_given_as_forecastconfigs_model_is_refused_in_one_line_naming_its_class():
    from neuralab.forecasting.pipeline import ForecastConfig

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 1)

    with pytest.raises(ParameterError) as e:
        ForecastConfig(data="seattle-weather", model=Net()).check()
    assert str(e.value).startswith("model=<Net>: ForecastConfig's model is a ModelConfig") and "\n" not in str(e.value)
    for given, shown in ((torch.nn.LSTM(1, 4), "model=LSTM(1, 4): "), (42, "model=42: ")):  # as given, not a type's name
        with pytest.raises(ParameterError) as e:
            ForecastConfig(data="seattle-weather", model=given).check()
        assert str(e.value).startswith(shown), str(e.value)


def test_an_unknown_offsets_rule_is_named(tmp_path):
    """A typo in `offsets` read the dates by the other rule without a word."""
    import pytest as _pytest

    from neuralab.data.series import load_series
    from neuralab.errors import ParameterError

    csv = tmp_path / "s.csv"
    csv.write_text("date,v\n" + "".join(f"2021-01-{d:02d}T00:00:00+01:00,{d}\n" for d in range(1, 29)))
    with _pytest.raises(ParameterError, match=r"offsets='local_dates'.*choose one of local-dates, as-written"):
        load_series(csv, "v", offsets="local_dates")
    assert len(load_series(csv, "v", offsets="as-written")) == 28
