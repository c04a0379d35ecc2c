"""What a forecaster's user has in hand, taken or refused by name: the date encodings an ONNX
file needs (add_calendar and the docs' snippet), a series too short among several (left out by
an explicit, recorded `where`), and a series asked of a run on one (Seattle's real weather)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import add_calendar, load_series, load_series_list
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import predict_run
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig, minimum_rows

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "forecasting.md"


def tiny(data, **settings) -> ForecastConfig:
    return ForecastConfig(data=str(data), windows=WindowConfig(lookback=6, horizon=1),
                          model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                          baselines=["persistence"], backtest_folds=1, **settings)


@pytest.fixture(scope="module")
def recent(tmp_path_factory):
    """The last 90 days of Seattle's weather, written as docs/forecasting.md writes recent.csv."""
    folder = tmp_path_factory.mktemp("recent")
    load_series("seattle-weather", target="temp_max", features=["temp_min"]).frame.tail(90).to_csv(folder / "recent.csv")
    return folder


# --- add_calendar ----------------------------------------------------------------------------

@pytest.mark.parametrize("read, names, message", [
    # straight from pd.read_csv: a RangeIndex (was AttributeError: 'RangeIndex' object has no attribute 'day_of_year')
    (dict(), ["dayofyear"], r"^frame is indexed by RangeIndex \(0, \.\.\.\), not by dates; give its dates as the "
                            r"index: pd\.read_csv\(FILE, parse_dates=\[DATE\], index_col=DATE\)$"),
    # the date column as the index, but read as text
    (dict(index_col="date"), ["dayofyear"], r"^frame is indexed by Index \('2015-10-03', \.\.\.\), not by dates"),
    # the ONNX metadata's calendar as it comes, JSON text (was KeyError: '[')
    (dict(parse_dates=["date"], index_col="date"), '["dayofyear"]',
     r"""^names='\["dayofyear"\]': give a list of names, e\.g\. \['dayofyear'\] \(an ONNX file's calendar metadata """
     r"is JSON text: json\.loads it\)$"),
    # a name of another library (was KeyError: 'weekday')
    (dict(parse_dates=["date"], index_col="date"), ["weekday"],
     r"^names='weekday': choose one of dayofyear, dayofweek, month, hour$"),
])
def test_add_calendar_refuses_what_users_have_in_hand_in_one_line_naming_the_parameter(recent, read, names, message):
    frame = pd.read_csv(recent / "recent.csv", **read)
    with pytest.raises(NeuralabError, match=message):
        add_calendar(frame, names)


def test_add_calendar_on_the_csv_read_with_its_dates_gives_the_encodings_the_run_has(recent):
    frame = pd.read_csv(recent / "recent.csv", parse_dates=["date"], index_col="date")
    frame, added = add_calendar(frame, json.loads('["dayofyear", "dayofweek"]'))
    loaded = load_series("seattle-weather", target="temp_max", features=["temp_min"],
                         calendar=["dayofyear", "dayofweek"]).frame.tail(90)
    assert added == ["dayofyear_sin", "dayofyear_cos", "dayofweek_sin", "dayofweek_cos"]
    np.testing.assert_array_equal(frame[added].to_numpy(), loaded[added].to_numpy())
    assert add_calendar(pd.read_csv(recent / "recent.csv"), [])[1] == []  # no encodings: no dates needed


def test_the_docs_onnx_snippet_runs_verbatim_on_a_run_with_date_encodings(recent, monkeypatch):
    pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")
    monkeypatch.chdir(recent)
    config = tiny("seattle-weather", target="temp_max", features=["temp_min"], calendar=["dayofyear", "dayofweek"])
    run_forecast(config, out="runs/w", verbose=False)
    section = DOCS.read_text().split("### Without neuralab: ONNX", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)[1]
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        exec(compile(snippet, "docs/forecasting.md", "exec"), {"__name__": "__main__"})
    onnx = float(re.findall(r"-?\d+\.\d+", shown.getvalue().splitlines()[-1])[0])
    assert onnx == pytest.approx(float(predict_run("runs/w", "recent.csv")["temp_max"].iloc[0]), abs=1e-4)


# --- a series too short among several --------------------------------------------------------

@pytest.fixture(scope="module")
def stations(tmp_path_factory):
    """Three stations with two years of Seattle's days (shifted as sites differ) and NEW, opened
    8 days ago; OLD, 5 days, for two short ones."""
    folder = tmp_path_factory.mktemp("stations")
    seattle = load_series("seattle-weather", target="temp_max").frame["temp_max"].iloc[:730]
    parts = [pd.DataFrame({"date": seattle.index.strftime("%Y-%m-%d"), "station": name, "temp": seattle.to_numpy() + shift})
             for name, shift in (("NORTH", -1.5), ("SOUTH", 2.0), ("WEST", 0.5))]
    new = parts[0].tail(8).assign(station="NEW", temp=lambda f: f["temp"] + 1.0)
    old = parts[0].tail(5).assign(station="OLD")
    pd.concat([*parts, new]).to_csv(folder / "stations.csv", index=False)
    pd.concat([*parts, new, old]).to_csv(folder / "two_short.csv", index=False)
    pd.concat(parts).to_csv(folder / "without_new.csv", index=False)
    return folder


def test_a_short_series_among_several_is_named_with_the_where_that_leaves_it_out(stations, capsys):
    need = minimum_rows(WindowConfig(lookback=6, horizon=1))
    with pytest.raises(NeuralabError) as e:
        run_forecast(tiny(stations / "stations.csv", series_column="station"), out=stations / "no", verbose=False)
    assert str(e.value) == (f"stations.csv, station = 'NEW': 8 rows is fewer than lookback 6 + horizon 1 need for "
                            f"train, val and test windows ({need} rows); leave it out with where 'station!=NEW' to "
                            "forecast the other 3 series, or use a shorter lookback")
    assert not (stations / "no").exists()
    argv = ["forecast", "--data", str(stations / "two_short.csv"), "--series-column", "station", "--lookback", "6",
            "--epochs", "1", "--out", str(stations / "no")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"neuralab: error: two_short.csv, station = 'NEW': 8 rows is fewer than --lookback 6 + --horizon 1 need for "
        f"train, val and test windows ({need} rows), and so is 'OLD' (5 rows); leave them out with --where "
        "'station!=NEW,OLD' to forecast the other 3 series, or use a shorter lookback\n")


def test_where_leaves_the_short_series_out_and_the_run_records_it_for_predict(stations):
    result = run_forecast(tiny(stations / "stations.csv", series_column="station", where="station!=NEW"),
                          out=stations / "run", verbose=False)
    saved = json.loads((result.run_dir / "config.json").read_text())["config"]
    assert saved["where"] == "station!=NEW"
    assert sorted(json.loads((result.run_dir / "results.json").read_text())["series"]) == ["NORTH", "SOUTH", "WEST"]
    # predict leaves out what the run did, whether the new rows still hold NEW or not
    for csv in ("stations.csv", "without_new.csv"):
        forecast = predict_run(result.run_dir, stations / csv)
        assert forecast["series"].tolist() == ["NORTH", "SOUTH", "WEST"]


@pytest.mark.parametrize("where, message", [
    ("station!=NWE", r"^where='station!=NWE': no row has station = 'NWE'; its values include NORTH, SOUTH, WEST, NEW$"),
    ("station!=NEW,OLD", r"^where='station!=NEW,OLD': no row has station = 'OLD'"),
    ("station!=NORTH,SOUTH,WEST,NEW", r"leaves out every row"),
    ("station!=", r"write it as COLUMN=VALUE to keep one series, or COLUMN!=VALUE"),
])
def test_a_where_that_leaves_out_nothing_it_names_or_everything_is_refused(stations, where, message):
    with pytest.raises(ParameterError, match=message):
        load_series_list(stations / "stations.csv", "temp", series_column="station", where=where)


def test_where_still_keeps_one_series_and_leaves_out_several(stations):
    one = load_series_list(stations / "two_short.csv", "temp", series_column="station", where="station=NEW")
    assert [(s.name, len(s)) for s in one] == [("NEW", 8)]
    rest = load_series_list(stations / "two_short.csv", "temp", series_column="station", where=" station != NEW,OLD")
    assert [(s.name, len(s)) for s in rest] == [("NORTH", 730), ("SOUTH", 730), ("WEST", 730)]


# --- the web app's series of a run on one ----------------------------------------------------

def test_a_series_asked_of_a_run_on_one_is_told_plainly(recent):
    from starlette.testclient import TestClient

    from neuralab.web import create_app

    run_forecast(tiny("seattle-weather", target="temp_max"), out=recent / "web" / "one", verbose=False)
    with TestClient(create_app(recent / "web"), base_url="http://127.0.0.1") as client:
        r = client.get("/api/forecast", params={"run": "one", "series": "X"})
        assert r.status_code == 400 and "series='X': the run forecast one series, so there is none to choose by " \
                                        "name; give no series" in r.text, r.text
        assert "choose one of" not in r.text
        assert client.get("/api/forecast", params={"run": "one"}).status_code == 200


# --- series whose names hold commas, and a run's left-out series given to predict -------------

@pytest.fixture(scope="module")
def cities(tmp_path_factory):
    """Two long series and two too short for a lookback of 6, named as a city and its state are."""
    folder = tmp_path_factory.mktemp("cities")
    seattle = load_series("seattle-weather", target="temp_max").frame["temp_max"].iloc[:400]
    parts = [pd.DataFrame({"city": name, "date": seattle.index[:n].strftime("%Y-%m-%d"),
                           "temp": seattle.to_numpy()[:n] + shift})
             for name, n, shift in (("Seattle, WA", 400, 0.0), ("Portland, OR", 9, 1.0), ("Salem, OR", 8, 1.5),
                                    ("Boise", 400, -2.0))]
    pd.concat(parts).to_csv(folder / "cities.csv", index=False)
    parts[2].to_csv(folder / "salem.csv", index=False)
    return folder


def test_the_where_the_short_series_refusal_gives_works_typed_into_a_shell_with_commas_in_names(cities, capsys):
    argv = ["forecast", "--data", str(cities / "cities.csv"), "--series-column", "city", "--lookback", "6",
            "--epochs", "1", "--out", str(cities / "no")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "leave them out with --where 'city!=Portland, OR,Salem, OR' to forecast the other 2 series" in err, err
    typed = shlex.split(re.search(r"--where ('[^']*')", err).group(1))  # as a shell hands it over
    assert typed == ["city!=Portland, OR,Salem, OR"]
    rest = load_series_list(cities / "cities.csv", "temp", series_column="city", where=typed[0])
    assert [(s.name, len(s)) for s in rest] == [("Boise", 400), ("Seattle, WA", 400)]
    one = load_series_list(cities / "cities.csv", "temp", series_column="city", where="city!=Salem, OR , Portland, OR")
    assert [s.name for s in one] == ["Boise", "Seattle, WA"]
    with pytest.raises(ParameterError, match=r"no row has city = 'Eugene'"):
        load_series_list(cities / "cities.csv", "temp", series_column="city", where="city!=Portland, OR,Eugene, OR")


def test_predict_on_rows_of_only_a_series_the_run_left_out_names_those_it_forecasts(cities):
    result = run_forecast(tiny(cities / "cities.csv", series_column="city", where="city!=Portland, OR,Salem, OR"),
                          out=cities / "run", verbose=False)
    assert sorted(json.loads((result.run_dir / "results.json").read_text())["series"]) == ["Boise", "Seattle, WA"]
    assert predict_run(result.run_dir, cities / "cities.csv")["series"].unique().tolist() == ["Boise", "Seattle, WA"]
    with pytest.raises(NeuralabError) as e:
        predict_run(result.run_dir, cities / "salem.csv")
    assert str(e.value) == (f"{cities / 'salem.csv'}: holds only city 'Salem, OR', which the run left out (its where "
                            "'city!=Portland, OR,Salem, OR'); give rows of the series it forecasts: 'Boise', "
                            "'Seattle, WA'")


def test_a_where_that_would_name_another_series_is_not_suggested():
    """Short series 'A' and 'B' beside a long one named 'A,B': 'city!=A,B' reads as 'A,B' and
    would leave out the long series and keep both short ones."""
    import numpy as np
    import pandas as pd

    from neuralab.data.series import load_series_list
    from neuralab.errors import NeuralabError
    from neuralab.forecasting.windows import WindowConfig, refuse_short_series

    days = pd.date_range("2021-01-01", periods=400, freq="D")
    frame = pd.concat([pd.DataFrame({"date": days[:n], "city": name, "v": np.arange(n, dtype=float)})
                       for name, n in (("A", 20), ("B", 20), ("A,B", 400), ("C", 400))])
    many = load_series_list(frame, "v", series_column="city")
    with pytest.raises(NeuralabError) as e:
        refuse_short_series(many, WindowConfig(), "city", None)
    assert "where" not in str(e.value) and str(e.value).endswith("use a shorter lookback, or a file without the series")
