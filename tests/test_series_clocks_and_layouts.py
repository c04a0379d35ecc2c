"""CSV files as researchers' own exports write them: a Datum column beside decimal-comma values
with a missing mark, non-breaking-space thousands, zone abbreviations, a title block, local clock
times across summer time, a jittered logger, and options that add nothing."""

import re

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.models import series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig


def excel(path, rows, header="Datum;Umsatz;Temperatur"):
    path.write_text(header + "\n" + "".join(";".join(r) + "\n" for r in rows), encoding="utf-8-sig")
    return path


def comma(x: float) -> str:
    return f"{x:.2f}".replace(".", ",")


def test_a_datum_column_wins_over_decimal_comma_values_with_a_missing_mark(tmp_path):
    """pandas reads 3,3 as 0001-03-03: the Temperatur column with one '-' was taken as the dates."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2021-01-01", periods=120, freq="D")
    temps = [comma(x) for x in rng.normal(3, 4, 120)]
    temps[59] = "-"
    path = excel(tmp_path / "dash.csv", [(f"{d:%d.%m.%Y}", comma(1000 + 50 * rng.normal()), t)
                                         for d, t in zip(days, temps)])
    s = load_series(path, target="umsatz")
    assert s.date_column == "Datum" and (s.report.start, s.report.end) == ("2021-01-01", "2021-04-30")


@pytest.mark.parametrize("space", ["\u00a0", "\u202f"])
def test_thousands_grouped_by_a_non_breaking_space_read_as_by_a_space(tmp_path, space):
    days = pd.date_range("2021-01-01", periods=60, freq="D")
    path = excel(tmp_path / "nbsp.csv", [(f"{d:%d.%m.%Y}", f"12{space}{i:03d},74", f"{i % 7},5")
                                         for i, d in enumerate(days)])
    s = load_series(path, target="umsatz")
    assert s.frame["Umsatz"].iloc[:2].tolist() == [12000.74, 12001.74]


def test_zone_abbreviations_read_as_their_offsets_and_doubtful_ones_refused(tmp_path):
    times = pd.date_range("2023-10-28 20:00", periods=12, freq="h", tz="Europe/Berlin")
    path = tmp_path / "abbrev.csv"
    path.write_text("time,kw\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S} {t.tzname()},{i}\n" for i, t in enumerate(times)))
    assert "CEST" in path.read_text() and "CET" in path.read_text()
    s = load_series(path)
    assert (s.times == times.tz_convert("UTC")).all() and s.report.frequency == "h"
    path.write_text(path.read_text().replace("CEST", "EDT").replace("CET", "EST"))
    with pytest.raises(NeuralabError, match=r"line 2: .*'EDT', whose offset is in doubt.*UTC offsets") as e:
        load_series(path)
    assert "date_format" not in str(e.value)


def test_a_title_block_above_the_table_is_named_by_the_line_the_table_starts(tmp_path):
    rows = [(f"{d:%d.%m.%Y}", comma(1000 + i), comma(i % 9)) for i, d in
            enumerate(pd.date_range("2021-01-01", periods=40, freq="D"))]
    path = excel(tmp_path / "preamble.csv", rows,
                 header="Export Wetterstation Nord\nErstellt am 05.03.2024\n\nDatum;Umsatz;Temperatur")
    for sep in (None, ";"):
        with pytest.raises(NeuralabError, match=r"table seems to start at line 4 \('Datum;Umsatz;Temperatur'\).*"
                                                r"delete the 3 lines above it") as e:
            load_series(path, sep=sep)
        assert "`sep`" not in str(e.value)


def local_clock_file(path):
    """Europe/Berlin hours as a logger's wall clock writes them: 26.03 02:00 absent, 29.10 02:00 twice."""
    times = pd.date_range("2023-03-20", "2023-11-05 23:00", freq="h", tz="Europe/Berlin").tz_localize(None)
    path.write_text("Zeitstempel;Last\n" + "".join(f"{t:%d.%m.%Y %H:%M};{comma(500 + i % 24)}\n"
                                                  for i, t in enumerate(times)))
    return path


def test_local_clock_times_across_summer_time_are_named_not_only_merged(tmp_path):
    path = local_clock_file(tmp_path / "local.csv")
    with pytest.raises(NeuralabError, match=r"all in the hour from 2023-10-29T02:00:00 .*local clocks repeat as "
                                            r"summer time ends \(in Europe/Berlin, for one\).*offsets.*duplicates "
                                            r"mean if merging") as e:
        load_series(path)
    assert "first, last or mean" not in str(e.value)
    s = load_series(path, duplicates="mean")
    assert "the missing hour from 2023-03-26T02:00:00 is the one local clocks skip" in s.report.dates
    assert "merged by `duplicates` mean" in s.report.dates


def test_a_jittered_logger_says_its_long_steps_in_words_with_examples(tmp_path):
    rng = np.random.default_rng(1)
    times = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(3000) * 600 + rng.integers(0, 15, 3000), "s")
    keep = rng.random(3000) > 0.05
    path = tmp_path / "irregular.csv"
    pd.DataFrame({"timestamp": times[keep].strftime("%Y-%m-%d %H:%M:%S"),
                  "value": rng.normal(size=int(keep.sum()))}).to_csv(path, index=False)
    s = load_series(path)
    line = s.report.lines()[-1]
    assert s.report.frequency == "irregular" and "0 days" not in line and "e.g. )" not in line
    assert re.search(r"median step \(10 min( \d+ s)?; the largest 30 min( \d+ s)?\), after 2023-01-01T", line)


def test_an_hourly_grid_gap_is_said_in_hours(tmp_path):
    times = pd.date_range("2023-01-01", periods=200, freq="h").delete(50)
    path = tmp_path / "h.csv"
    path.write_text("time,v\n" + "".join(f"{t:%Y-%m-%d %H:%M},{i}\n" for i, t in enumerate(times)))
    assert "largest gap 2 h, e.g. 2023-01-03T02:00:00" in load_series(path).report.lines()[-1]


def test_a_new_run_refuses_a_calendar_encoding_constant_for_the_frequency_and_the_target_as_a_feature(tmp_path):
    """Refused where a run is made (run_forecast), not by load_series, which reads a stored run's
    data again to predict, report or resume with settings no one can change."""
    months = pd.date_range("1990-01-01", periods=120, freq="MS")
    path = tmp_path / "monthly.csv"
    path.write_text("month,passengers,adj close\n" + "".join(f"{t:%Y-%m},{100 + i},{100 + i}\n"
                                                            for i, t in enumerate(months)))

    def run(**settings):
        config = ForecastConfig(data=str(path), windows=WindowConfig(lookback=12, horizon=3),
                                train=series_train_config(epochs=1, device="cpu", seed=0), **settings)
        run_forecast(config, out=tmp_path / "run", verbose=False)

    with pytest.raises(ParameterError, match=r"same hour .* frequency MS.*constant") as e:
        run(target="passengers", calendar=["hour"])
    assert e.value.parameter == "calendar"
    with pytest.raises(ParameterError, match="is the target") as e:
        run(target="adj close", features=["Adj Close"])
    assert e.value.parameter == "features" and not (tmp_path / "run").exists()
    assert load_series(path, target="passengers", calendar=["hour"]).calendar == ["hour_sin", "hour_cos"]
    assert load_series(path, target="adj close", features=["Adj Close"]).features == []


def test_a_yearly_series_of_three_centuries_is_refused_a_month_encoding_and_not_offered_one(tmp_path):
    """Sunspots by year from 1700: the span overflowed a Timedelta where the encoding was checked, and
    the advice offered date encodings, every one constant or aliased at a yearly step."""
    rng = np.random.default_rng(0)
    years = pd.date_range("1700-01-01", periods=309, freq="YS")
    spots = 80 + 60 * np.sin(2 * np.pi * np.arange(309) / 11) + rng.normal(0, 10, 309)
    path = tmp_path / "sunspots_yearly.csv"
    pd.DataFrame({"date": years.strftime("%Y-%m-%d"), "SUNACTIVITY": spots.round(1)}).to_csv(path, index=False)

    def config(**settings):
        return ForecastConfig(data=str(path), windows=WindowConfig(lookback=6, horizon=1),
                              train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=1, **settings)

    with pytest.raises(ParameterError, match=r"same month \(1\) .* frequency YS-JAN.*constant") as e:
        run_forecast(config(calendar=["month"]), out=tmp_path / "run", verbose=False)
    assert e.value.parameter == "calendar" and not (tmp_path / "run").exists()
    advice = run_forecast(config(), out=tmp_path / "run", verbose=False).headline["advice"]
    assert "`features`" in advice and "calendar" not in advice


def test_a_number_column_named_data_is_no_epoch_date_and_text_dates_outrank_an_epoch_guess(tmp_path):
    """Bytes of traffic near 2e9 under "data" (English) read as epoch seconds and blamed the month column."""
    months = pd.date_range("2010-01-01", periods=120, freq="MS")
    traffic = tmp_path / "traffic.csv"
    traffic.write_text("month,data\n" + "".join(f"{t:%Y-%m},{1_900_000_000 + 1000 * i}\n"
                                                 for i, t in enumerate(months)))
    s = load_series(traffic)
    assert (s.date_column, s.target, s.report.frequency) == ("month", "data", "MS")
    hours = pd.date_range("2023-01-01", periods=200, freq="h")
    logger = tmp_path / "logger.csv"
    logger.write_text("Zeit;Uptime Time;Last\n" + "".join(f"{t:%d.%m.%Y %H:%M};{150_000_000 + 3600 * i};{comma(i)}\n"
                                                         for i, t in enumerate(hours)))
    s = load_series(logger, target="last")
    assert s.date_column == "Zeit" and s.report.start == "2023-01-01T00:00:00"


def test_only_a_word_after_a_clock_time_is_a_zone_and_a_z_format_keeps_its_space(tmp_path):
    months = pd.date_range("2000-01-01", periods=60, freq="MS")
    sas = tmp_path / "mon_word.csv"
    sas.write_text("month,sales\n" + "".join(f"{t:%Y} {t:%b}".upper() + f",{100 + i}\n" for i, t in enumerate(months)))
    assert load_series(sas).report.frequency == "MS"  # 2000 JAN, as SAS writes months
    station = tmp_path / "station.csv"
    station.write_text("date,kw\n" + "".join(f"{t:%Y-%m-%d} AB,{i}\n" for i, t in enumerate(months)))
    with pytest.raises(NeuralabError, match=r"line 2: '2000-01-01 AB' in column 'date' is not a date") as e:
        load_series(station)
    assert "zone" not in str(e.value)
    hours = pd.date_range("2023-01-02", periods=48, freq="h")
    utc = tmp_path / "utc_word.csv"
    utc.write_text("time,load\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S} UTC,{i}\n" for i, t in enumerate(hours)))
    s = load_series(utc, date_format="%Y-%m-%d %H:%M:%S %Z")
    assert str(s.times.tz) == "UTC" and s.times[0] == pd.Timestamp("2023-01-02", tz="UTC")
    utc.write_text(utc.read_text().replace("2023-01-02 05:00:00 UTC", "2023-01-02 5h UTC"))
    with pytest.raises(NeuralabError, match=r"line 7: '2023-01-02 5h UTC' in column 'time' is not a date"):
        load_series(utc, date_format="%Y-%m-%d %H:%M:%S %Z")  # the file's cell, not the rewritten one


def test_a_missing_or_doubled_hour_on_no_clock_change_keeps_the_plain_duplicates_advice(tmp_path):
    hours = pd.date_range("2023-06-01", "2023-06-30 23:00", freq="h")
    outage = tmp_path / "outage.csv"
    outage.write_text("time,load\n" + "".join(f"{t:%Y-%m-%d %H:%M},{i % 24}\n" for i, t in enumerate(hours)
                                              if t != pd.Timestamp("2023-06-14 13:00")))
    s = load_series(outage)
    assert s.report.gaps == 1 and "summer time" not in s.report.dates
    quarters = pd.date_range("2023-06-01", "2023-06-10 23:45", freq="15min")
    resent = quarters.append(pd.date_range("2023-06-07 10:00", periods=4, freq="15min")).sort_values()
    path = tmp_path / "resent.csv"
    path.write_text("time,load\n" + "".join(f"{t:%Y-%m-%d %H:%M},{i % 96}\n" for i, t in enumerate(resent)))
    with pytest.raises(NeuralabError, match=r"4 duplicate timestamps, first 2023-06-07T10:00:00 .*pass `?duplicates`? "
                                            r"first, last or mean; if the file holds several series") as e:
        load_series(path)
    assert "summer time" not in str(e.value)


def test_a_header_one_name_short_says_the_row_names_have_no_name(tmp_path):
    """R's write.table(sep=",") and pandas' to_csv(index_label=False): deleting line 1 would delete the header."""
    days = pd.date_range("2021-01-01", periods=40, freq="D")
    path = tmp_path / "r.csv"
    path.write_text('"date","value"\n' + "".join(f'"{i + 1}","{t:%Y-%m-%d}",{100 + i * 0.5}\n'
                                                  for i, t in enumerate(days)))
    with pytest.raises(NeuralabError, match=r"header \(line 1\) names 2 columns and the rows hold 3: .*row names.*"
                                            r"has no name; add one to the header") as e:
        load_series(path)
    assert "delete" not in str(e.value)


def test_postgres_offsets_without_minutes_keep_the_local_dates(tmp_path):
    """PostgreSQL writes timestamptz as 2021-01-01 00:00:00+01: a Berlin day is not the day before at 23:00."""
    days = pd.date_range("2021-01-01", periods=400, freq="D", tz="Europe/Berlin")
    path = tmp_path / "pg.csv"
    path.write_text("date,value\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S}{t:%z}"[:-2] + f",{i}\n"
                                            for i, t in enumerate(days)))
    assert "00:00:00+02," in path.read_text()
    s = load_series(path, calendar=["dayofweek"])
    assert s.report.frequency == "D" and s.report.start == "2021-01-01" and s.times.tz is None


def test_a_header_one_name_short_over_rows_with_a_last_unnamed_field_blames_no_row_names(tmp_path):
    """A logger's note after the value, left unnamed: a name put first, as for R's row names, would
    shift every column's name one place and the values would load as 'date'."""
    days = pd.date_range("2021-01-01", periods=40, freq="D")
    note = tmp_path / "note.csv"
    note.write_text("date,value\n" + "".join(f"{t:%Y-%m-%d},{100 + i * 0.5},ok\n" for i, t in enumerate(days)))
    with pytest.raises(NeuralabError) as e:
        load_series(note)
    assert str(e.value) == (f"{note}: the rows hold 3 fields and the header (line 1) names 2: name every column in "
                            "the header, in the rows' order")
    named = tmp_path / "named.csv"  # pandas' to_csv(index_label=False): the index 0, 1, 2... has no name
    named.write_text("date,value\n" + "".join(f"{i},{t:%Y-%m-%d},{100 + i * 0.5}\n" for i, t in enumerate(days)))
    with pytest.raises(NeuralabError, match=r"their first column, row names as R's write.table .* has no name"):
        load_series(named)
    kept = [i for i in range(len(days)) if i % 3]  # rows filtered before writing: 1, 2, 4, 5...
    filtered = tmp_path / "filtered.csv"
    filtered.write_text("date,value\n" + "".join(f"{i},{days[i]:%Y-%m-%d},{100 + i * 0.5}\n" for i in kept))
    with pytest.raises(NeuralabError, match=r"their first column, row names as R's write.table .* has no name"):
        load_series(filtered)
