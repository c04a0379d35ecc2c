"""Own CSV files as people export them: a '-' for a missing sale (it made the run forecast the
customers instead, unsaid), a logger's local times without offsets given to a run whose data
had them, R's write.csv and write.table defaults, a German export's thousands points, and a
misspelt file name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.finished import predict_run
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def write(folder, name: str, lines: list[str], encoding: str = "utf-8"):
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def sales(n: int = 120) -> np.ndarray:
    return np.round(1000 + 80 * np.sin(np.arange(n) / 7) + np.arange(n), 2)


@pytest.mark.parametrize("mark", ["-", "\u2013", "NA"])
def test_a_missing_mark_in_the_sales_leaves_them_a_target_and_is_a_missing_value(tmp_path, mark):
    days = pd.date_range("2022-01-01", periods=120)
    values = sales()
    rows = [f"{d:%Y-%m-%d},{mark if i == 40 else v},{90 + i % 30}" for i, (d, v) in enumerate(zip(days, values))]
    path = write(tmp_path, "shop.csv", ["date,sales,customers", *rows])
    with pytest.raises(NeuralabError, match=r"^shop.csv has 2 numeric columns; choose one: sales, customers"):
        load_series(path)  # was: the customers forecast, with no word of the sales
    with pytest.raises(NeuralabError, match=r"1 missing values \(column 'sales' has 1, first at 2022-02-10; empty "
                                            r"cells and marks such as NA or '-' count as missing, and where '-' "
                                            r"means zero, write 0\); pass missing drop, ffill or interpolate"):
        load_series(path, "sales")  # as an empty cell or NA is (the docs' missing-value policy)
    series = load_series(path, "sales", missing="interpolate")
    assert series.report.missing == {"sales": 1} and series.report.filled == 1 and len(series) == 120
    assert series.values[40, 0] == pytest.approx((values[39] + values[41]) / 2)


def test_a_german_export_with_a_dash_names_both_columns_and_reads_the_sales(tmp_path):
    days = pd.date_range("2021-01-01", periods=120)
    cells = [f"{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") for v in sales() * 2]  # 2.025,89
    rows = [f"{d:%d.%m.%Y};{'-' if i == 60 else c};{100 + i % 40}" for i, (d, c) in enumerate(zip(days, cells))]
    path = write(tmp_path, "umsatz.csv", ["Datum;Umsatz;Kunden", *rows], encoding="utf-8-sig")
    with pytest.raises(NeuralabError, match=r"^umsatz.csv has 2 numeric columns; choose one: Umsatz, Kunden"):
        load_series(path)
    series = load_series(path, "umsatz", missing="interpolate")
    assert series.target == "Umsatz" and series.values[0, 0] == pytest.approx(sales()[0] * 2)
    assert series.report.missing == {"Umsatz": 1}
    # the note says how 2.025,89 was read (was "read as semicolon-separated")
    assert series.report.read_as == "semicolon-separated with decimal commas and thousands points"


def test_a_column_of_only_missing_marks_is_still_named_as_no_numbers(tmp_path):
    rows = [f"2021-01-{d:02d},{'-' if d % 2 else ''}" for d in range(1, 9)]
    with pytest.raises(NeuralabError, match=r"no column holds numbers to forecast; line 2: '-' in column 'price' "
                                            r"is not a number \(a mark for a missing value, and the column holds no"):
        load_series(write(tmp_path, "s.csv", ["date,price", *rows]))


def test_r_write_csv_row_numbers_are_no_target(tmp_path):
    days = pd.date_range("2015-01-01", periods=60)
    rows = [f'"{i + 1}","{d:%Y-%m-%d}",{v:.4f}' for i, (d, v) in enumerate(zip(days, np.sin(np.arange(60))))]
    series = load_series(write(tmp_path, "r_csv.csv", ['"","date","y"', *rows]))  # was: choose Unnamed: 0 or y
    assert series.target == "y" and series.features == [] and len(series) == 60


@pytest.mark.parametrize("header, rows", [
    ('"date" "y"', lambda i, d, v: f'"{i + 1}" "{d:%Y-%m-%d}" {v:.4f}'),   # write.table's default
    ('"y" "z"', lambda i, d, v: f'"{d:%Y-%m-%d}" {v:.4f} {-v:.4f}'),       # a frame's dates as row names
    ('"date" "y"', lambda i, d, v: f'"{d:%Y-%m-%d}" {v:.4f}'),             # row.names=FALSE
])
def test_r_write_table_space_separated_is_told_to_give_sep(tmp_path, header, rows):
    days = pd.date_range("2015-01-01", periods=40)
    lines = [header] + [rows(i, d, v) for i, (d, v) in enumerate(zip(days, np.sin(np.arange(40))))]
    with pytest.raises(NeuralabError, match=r"/r.txt: no comma, semicolon, tab or bar separates its columns, and "
                                            r"spaces seem to .* give sep ' ' \(a space\)"):
        load_series(write(tmp_path, "r.txt", lines))  # was: no column holds dates / numbers


def test_a_misspelt_file_name_suggests_the_file_beside_it(tmp_path, monkeypatch):
    write(tmp_path, "stations_grids.csv", ["date,v", "2021-01-01,1", "2021-01-02,2"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=r"no such file and not a built-in series; did you mean "
                                             r"'stations_grids.csv'\? the built-in ones"):
        load_series("stations_grid.csv")
    with pytest.raises(ParameterError, match=rf"did you mean '{tmp_path / 'stations_grids.csv'}'\?"):
        load_series(str(tmp_path / "stations_grid.csv"))
    with pytest.raises(ParameterError) as e:
        load_series("weather.csv")
    assert "did you mean" not in str(e.value)


@pytest.fixture(scope="module")
def berlin_run(tmp_path_factory):
    """A run on hourly load written with Berlin's UTC offsets, across the October change, with
    hour encodings (learned in UTC), and its last rows in three writings."""
    folder = tmp_path_factory.mktemp("berlin")
    times = pd.date_range("2023-10-20", periods=24 * 16, freq="h", tz="Europe/Berlin")
    load = 50 + 8 * np.sin(2 * np.pi * times.hour / 24) + np.random.default_rng(0).normal(0, 0.3, len(times))
    write(folder, "load.csv", ["timestamp,load_mw"] + [f"{t.isoformat()},{v:.2f}" for t, v in zip(times, load)])
    config = ForecastConfig(data=str(folder / "load.csv"), windows=WindowConfig(lookback=24, horizon=6),
                            model=ModelConfig("lstm", hidden=[4]), calendar=["hour"],
                            train=series_train_config(epochs=1, device="cpu"), baselines=["persistence"],
                            backtest_folds=1)
    run_forecast(config, out=folder / "run", verbose=False)
    last = list(zip(times[-48:], load[-48:]))
    write(folder, "offsets.csv", ["timestamp,load_mw"] + [f"{t.isoformat()},{v:.2f}" for t, v in last])
    write(folder, "local.csv", ["timestamp,load_mw"] + [f"{t:%Y-%m-%d %H:%M},{v:.2f}" for t, v in last])
    write(folder, "utc.csv", ["timestamp,load_mw"] + [f"{t.tz_convert('UTC'):%Y-%m-%dT%H:%MZ},{v:.2f}"
                                                       for t, v in last])
    return folder


def test_predict_refuses_times_without_offsets_where_the_run_had_them(berlin_run):
    with pytest.raises(ParameterError, match=r"^csv=.*local.csv': its times in column 'timestamp' have no UTC "
                                             r"offsets, and the run's data had them: its hour encodings were "
                                             r"learned in UTC; write these times with their offsets"):
        predict_run(berlin_run / "run", berlin_run / "local.csv")  # was: read as UTC, hours an hour off
    with_offsets = predict_run(berlin_run / "run", berlin_run / "offsets.csv")
    in_utc = predict_run(berlin_run / "run", berlin_run / "utc.csv")
    assert np.array_equal(with_offsets["load_mw"], in_utc["load_mw"])


def test_predict_takes_the_same_instants_with_offsets_from_a_run_on_utc_times(tmp_path):
    """A run on times written in UTC with Z, ending at midnight (its stored start is a bare date):
    new rows of the same instants with Berlin's offsets were refused as "the run's data had none"."""
    times = pd.date_range("2023-03-01", periods=241, freq="h", tz="UTC")
    load = 50 + 8 * np.sin(2 * np.pi * times.hour / 24)
    write(tmp_path, "utc.csv", ["time,load"] + [f"{t:%Y-%m-%dT%H:%MZ},{v:.2f}" for t, v in zip(times, load)])
    config = ForecastConfig(data=str(tmp_path / "utc.csv"), windows=WindowConfig(lookback=12, horizon=3),
                            model=ModelConfig("lstm", hidden=[4]), calendar=["hour"],
                            train=series_train_config(epochs=1, device="cpu"), baselines=["persistence"],
                            backtest_folds=1)
    run_forecast(config, out=tmp_path / "run", verbose=False)
    berlin = times[-30:].tz_convert("Europe/Berlin")
    write(tmp_path, "new.csv", ["time,load"] + [f"{t.isoformat()},{v:.2f}" for t, v in zip(berlin, load[-30:])])
    write(tmp_path, "new_utc.csv", ["time,load"] + [f"{t:%Y-%m-%dT%H:%MZ},{v:.2f}"
                                                    for t, v in zip(times[-30:], load[-30:])])
    with_offsets = predict_run(tmp_path / "run", tmp_path / "new.csv")
    in_utc = predict_run(tmp_path / "run", tmp_path / "new_utc.csv")
    assert np.allclose(with_offsets["load"], in_utc["load"])
