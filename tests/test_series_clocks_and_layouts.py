"""CSV files as researchers' own exports write them: a Datum column beside decimal-comma values
with a missing mark, non-breaking-space thousands, zone abbreviations, a title block, local clock
times across summer time, a jittered logger, and options that add nothing."""

import re

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError, ParameterError


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
                                            r"summer time ends.*offsets.*duplicates mean if merging") as e:
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


def test_a_calendar_encoding_constant_for_the_frequency_and_a_feature_that_is_the_target_are_refused(tmp_path):
    months = pd.date_range("1990-01-01", periods=120, freq="MS")
    path = tmp_path / "monthly.csv"
    path.write_text("month,passengers,adj close\n" + "".join(f"{t:%Y-%m},{100 + i},{100 + i}\n"
                                                            for i, t in enumerate(months)))
    with pytest.raises(ParameterError, match=r"same hour .* frequency MS.*constant") as e:
        load_series(path, target="passengers", calendar=["hour"])
    assert e.value.parameter == "calendar"
    assert load_series(path, target="passengers", calendar=["month"]).calendar == ["month_sin", "month_cos"]
    with pytest.raises(ParameterError, match="is the target") as e:
        load_series(path, target="adj close", features=["Adj Close"])
    assert e.value.parameter == "features"
