"""A user's own CSV as spreadsheets and websites write it: summary rows, currency signs,
thousands points, and the advice each refusal gives."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError


def excel_de(tmp_path, rows: int = 800, tail: str = "", name: str = "verbrauch.csv"):
    """Excel-DE's CSV: a byte-order mark, ';', dates 01.01.2021 (day first), decimal commas."""
    days = pd.date_range("2021-01-01", periods=rows)
    kwh = 1500 + np.arange(rows) * 0.08 + 5 * np.sin(np.arange(rows) / 7)
    body = "".join(f"{d:%d.%m.%Y};{f'{v:,.2f}'.translate(str.maketrans(',.', '.,'))};{10 + i % 9},3\n"
                   for i, (d, v) in enumerate(zip(days, kwh)))
    path = tmp_path / name
    path.write_text("\ufeffDatum;Verbrauch kWh;Temperatur °C\n" + body + tail, encoding="utf-8")
    return path


def test_a_summary_row_at_the_end_is_named_by_its_line_not_a_good_date_before_it(tmp_path):
    path = excel_de(tmp_path, tail="Total;123.456,00;\n")
    assert len(load_series(excel_de(tmp_path, name="clean.csv"), "Verbrauch kWh")) == 800
    message = re.escape("line 802 ('Total') in column 'Datum' is not a date: a summary row at the end of the file; "
                        "delete it")
    with pytest.raises(NeuralabError, match=message):
        load_series(path, "Verbrauch kWh")  # was: line 14: '13.01.2021' ... give date_format
    with pytest.raises(NeuralabError, match=message):
        load_series(path, "Verbrauch kWh", date_format="%d.%m.%Y")  # was: no advice at all
    two = excel_de(tmp_path, tail="Summe;123.456,00;\nMittelwert;1.234,00;\n", name="two.csv")
    with pytest.raises(NeuralabError, match=r"two.csv: lines 802-803 \('Summe', 'Mittelwert'\) in column 'Datum' are "
                                            r"not dates: summary rows at the end of the file; delete them$"):
        load_series(two, "Verbrauch kWh")


@pytest.mark.parametrize("style, quote", [("%Y-%m-%d", ""), ("%m/%d/%Y", '"')])
def test_a_total_row_under_iso_or_us_dates_gets_no_date_format_advice(tmp_path, style, quote):
    days = pd.date_range("2022-01-01", periods=400)
    body = "".join(f"{d.strftime(style)},{quote}{900 + i % 50}.25{quote}\n" for i, d in enumerate(days))
    path = tmp_path / "sales.csv"
    total = '"123,456.00"' if quote else "123456.00"
    path.write_text(f"date,sales\n{body}Total,{total}\n")
    with pytest.raises(NeuralabError) as caught:
        load_series(path)
    assert str(caught.value) == ("sales.csv: line 402 ('Total') in column 'date' is not a date: a summary row at the "
                                 "end of the file; delete it")


def test_a_word_among_the_dates_is_named_with_what_to_do_and_real_format_problems_keep_their_advice(tmp_path):
    days = [f"{d:%d.%m.%Y}" for d in pd.date_range("2021-01-01", periods=40)]
    days[20] = "Zwischensumme"
    path = tmp_path / "mid.csv"
    path.write_text("Datum;Wert\n" + "".join(f"{d};{i}\n" for i, d in enumerate(days)))
    with pytest.raises(NeuralabError, match=r"line 22: 'Zwischensumme' in column 'Datum' is not a date, which no "
                                            r"date_format reads; give the row its date or delete it$"):
        load_series(path)
    days[20] = "31.02.2021"  # a date that is none: the format advice stays
    path.write_text("Datum;Wert\n" + "".join(f"{d};{i}\n" for i, d in enumerate(days)) + "Total;1\n")
    with pytest.raises(NeuralabError, match=r"line 22: '31.02.2021' in column 'Datum' is not a date; give "
                                            r"date_format, e.g. %d.%m.%Y \(day first\)"):
        load_series(path)


def test_a_wrong_date_format_on_dotted_day_first_dates_suggests_the_day_first_format(tmp_path):
    path = excel_de(tmp_path, rows=40)
    with pytest.raises(NeuralabError, match=r"line 2: '01.01.2021' in column 'Datum' is not a date \(date_format "
                                            r"is '%Y-%m-%d'; values like this one take %d.%m.%Y\)"):
        load_series(path, "Verbrauch kWh", date_format="%Y-%m-%d")  # was: %m.%d.%Y, which fails at 13.01.2021
    us = tmp_path / "us.csv"
    us.write_text("date,v\n" + "".join(f"{d:%m/%d/%Y},{i}\n" for i, d in enumerate(pd.date_range("2021-01-01",
                                                                                                   periods=40))))
    with pytest.raises(NeuralabError, match=r"values like this one take %m/%d/%Y\)"):
        load_series(us, "v", date_format="%d/%m/%Y")  # 01/13/2021: the month comes first


def nasdaq_com(tmp_path, sign: str = "$"):
    """nasdaq.com's "historical data" download: newest first, prices with a dollar sign."""
    days = pd.bdate_range("2015-01-02", periods=1500)[::-1]
    close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, len(days)))
    rows = "".join(f"{d:%m/%d/%Y},{sign}{c:.2f},{2_800_000 + i * 7},{sign}{c - 0.1:.2f},{sign}{c + 1:.2f},"
                   f"{sign}{c - 1:.2f}\n" for i, (d, c) in enumerate(zip(days, close)))
    path = tmp_path / f"nasdaq{sign and '_signed'}.csv"
    path.write_text("Date,Close/Last,Volume,Open,High,Low\n" + rows)
    return path


def test_prices_with_a_currency_sign_are_named_rather_than_volume_forecast_unsaid(tmp_path):
    with pytest.raises(NeuralabError, match=r"^nasdaq_signed.csv: columns 'Close/Last', 'Open', 'High', 'Low' carry "
                                            r"a currency sign \('\$\d+\.\d\d' on line 2\), so they are not numeric, "
                                            r"and the only numeric column is 'Volume'; write the numbers without the "
                                            r"sign, or give 'Volume' as target to forecast it$"):
        load_series(nasdaq_com(tmp_path))  # was: Volume, without a word
    assert load_series(nasdaq_com(tmp_path), "Volume").target == "Volume"  # asked for: no refusal
    assert load_series(nasdaq_com(tmp_path, sign="")).target == "Close/Last"  # the sign stripped: the closing price
    with pytest.raises(NeuralabError, match=r"is not a number \(a currency sign or accounting brackets: write the "
                                            r"number alone\) \(1,500 such cells\)"):
        load_series(nasdaq_com(tmp_path), "close/last")


def test_a_price_column_that_is_not_numeric_is_named_whatever_keeps_it_from_numbers(tmp_path):
    days = pd.date_range("2020-01-01", periods=50)
    path = tmp_path / "shop.csv"
    path.write_text("date,Price,Units\n" + "".join(f"{d:%Y-%m-%d},{12 + i % 3}.5 EUR,{40 + i}\n"
                                                   for i, d in enumerate(days)))
    with pytest.raises(NeuralabError, match=r"shop.csv: column 'Price' is not numeric \('12.5 EUR' in 'Price' on line "
                                            r"2 is not a number\), and the only numeric column is 'Units'; write the "
                                            r"prices as plain numbers, or give 'Units' as target to forecast it"):
        load_series(path)
    plain = tmp_path / "plain.csv"
    plain.write_text("date,note,Units\n" + "".join(f"{d:%Y-%m-%d},sale,{40 + i}\n" for i, d in enumerate(days)))
    assert load_series(plain).target == "Units"  # a column of words that no name calls a price: left out as before


def german_counts(tmp_path, cells: list[str], sep: str = ";", dates: str = "%d.%m.%Y", name: str = "stueck.csv"):
    days = pd.date_range("2022-01-01", periods=len(cells))
    path = tmp_path / name
    path.write_text(f"Datum{sep}Stueck\n" + "".join(f"{d.strftime(dates)}{sep}{c}\n" for d, c in zip(days, cells)))
    return path


def test_whole_numbers_with_a_thousands_point_in_a_day_first_semicolon_file_are_refused_as_ambiguous(tmp_path):
    counts = [f"{4000 + (i * 37) % 2000:,}".replace(",", ".") for i in range(300)]  # 5.008 pieces, as Excel-DE writes
    counts[0] = "5.008"
    with pytest.raises(NeuralabError, match=r"stueck.csv: line 2: '5.008' in column 'Stueck' reads as 5008 \(a "
                                            r"thousands separator\) or as 5.008 \(a decimal point\), and no number in the "
                                            r"column tells which \(in a semicolon-separated file with dates such as "
                                            r"01.01.2022, a point groups thousands as often\); write the numbers without"):
        load_series(german_counts(tmp_path, counts))  # was: read as 5.008, every figure 1000 times too small
    whole = german_counts(tmp_path, [c.replace(".", "") for c in counts], name="whole.csv")
    assert load_series(whole).frame["Stueck"].iloc[0] == 5008
    told = german_counts(tmp_path, ["5.01", *counts[1:]], name="told.csv")  # one number that only a decimal mark reads
    assert load_series(told).frame["Stueck"].iloc[1] == pytest.approx(float(counts[1]))
    # a logger's three decimals under ISO dates, or in a comma file, are still read as decimals
    assert load_series(german_counts(tmp_path, counts, dates="%Y-%m-%d", name="iso.csv")).frame["Stueck"].iloc[0] == 5.008
    comma = german_counts(tmp_path, counts, sep=",", name="comma.csv")
    assert load_series(comma).frame["Stueck"].iloc[0] == 5.008


def test_a_separator_found_in_no_line_is_named_with_the_one_the_file_is_split_by(tmp_path, capsys):
    from neuralab.cli import main

    weather = load_series("seattle-weather", features=["precipitation"]).frame.iloc[:200]
    weather.to_csv(tmp_path / "weather.csv")
    with pytest.raises(NeuralabError) as e:  # read with ';', one column, blamed for having no dates
        load_series(tmp_path / "weather.csv", "temp_max", sep=";")
    assert e.value.parameter == "sep" and "which looks comma-separated" in str(e.value), e.value
    assert str(e.value).endswith("leave sep out")
    assert main(["forecast", "--data", str(tmp_path / "weather.csv"), "--sep", ";", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralab: error: --sep ';': does not separate the columns of"), err
    assert err.endswith("leave --sep out\n") and not (tmp_path / "run").exists()


def test_a_separator_that_splits_some_lines_unevenly_is_not_blamed(tmp_path):
    """A German export (semicolons, decimal commas, a header name holding a comma, each row ending in
    ';') given --sep ';' is read as it is: commas split its lines more evenly, and are not its separator."""
    days = pd.date_range("2020-01-01", periods=120, freq="D")
    values = np.round(10 + np.sin(np.arange(120) / 5) * 3 + np.arange(120) * 0.01, 2)
    lines = ["Datum;Temperatur, °C"] + [f"{d:%d.%m.%Y};{str(v).replace('.', ',')};" for d, v in zip(days, values)]
    (tmp_path / "de.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    series = load_series(tmp_path / "de.csv", sep=";")
    assert list(series.frame.columns) == ["Temperatur, °C"]
    np.testing.assert_allclose(series.frame["Temperatur, °C"].to_numpy(), values)


def test_a_tab_typed_as_backslash_t_separates_as_a_tab(tmp_path):
    weather = load_series("seattle-weather", features=["precipitation"]).frame.iloc[:200]
    weather.to_csv(tmp_path / "weather.tsv", sep="\t")
    typed = load_series(tmp_path / "weather.tsv", "temp_max", ["precipitation"], sep="\\t")
    pd.testing.assert_frame_equal(typed.frame, load_series(tmp_path / "weather.tsv", "temp_max",
                                                           ["precipitation"]).frame)
    assert typed.report.read_as.startswith("tab-separated")
