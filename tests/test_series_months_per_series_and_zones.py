"""Months on a fixed day, as a review of them found them: stores reporting on different days in
one run, months at 08:00 UTC, a run's report made again, and a header that names its dates
above rows with one more number (no R row names)."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import calendar_holes, load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.finished import predict_run, write_report
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig, future_times

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def months(first: str, count: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(first) + pd.DateOffset(months=k) for k in range(count)]


def sales(i: int) -> str:
    return f"{100 + 10 * np.sin(i / 2) + i / 5:.2f}"


def train(data, out, **options):
    config = ForecastConfig(data=str(data), windows=WindowConfig(lookback=6, horizon=2),
                            model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=1, **options)
    return run_forecast(config, out=out, verbose=False).run_dir


def test_a_run_on_stores_reporting_on_different_days_predicts_its_own_file(tmp_path):
    """model.json kept the first store's "monthly on day 15" alone: predicting the training file
    refused store B (on the 20th), and B's rows one day off dated its future on the 15th."""
    path = tmp_path / "stores.csv"
    path.write_text("store,date,sales\n" + "".join(f"{store},{t:%Y-%m-%d},{sales(i)}\n" for store, first in
                                                   (("A", "2015-01-15"), ("B", "2015-01-20"))
                                                   for i, t in enumerate(months(first, 72))))
    run = train(path, tmp_path / "run", series_column="store")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no gap to warn of either
        forecast = predict_run(run, path)
    assert {s: [str(t)[:10] for t in f["time"]] for s, f in forecast.groupby("series")} == \
        {"A": ["2021-01-15", "2021-02-15"], "B": ["2021-01-20", "2021-02-20"]}
    meta = json.loads((run / "model.json").read_text())
    assert meta["frequencies"] == {"A": "monthly on day 15", "B": "monthly on day 20"}
    # B's rows with one a day off its day read as irregular: its future is still on its own 20th
    table = pd.read_csv(path)
    table.loc[(table["store"] == "B") & (table["date"] == "2018-03-20"), "date"] = "2018-03-21"
    table.to_csv(tmp_path / "b_off.csv", index=False)
    forecast = predict_run(run, tmp_path / "b_off.csv")
    assert [str(t)[:10] for t in forecast.query("series == 'B'")["time"]] == ["2021-01-20", "2021-02-20"]


def test_months_at_eight_utc_are_monthly_on_their_day_in_utc(tmp_path):
    """The grid was laid through pandas' Periods, which drop the zone (and warn so): no UTC month
    matched it, the series stayed irregular, and its future dates lost their zone."""
    path = tmp_path / "m15_utc.csv"
    path.write_text("date,v\n" + "".join(f"{t:%Y-%m-%d}T08:00:00Z,{sales(i)}\n"
                                         for i, t in enumerate(months("2010-01-15", 24))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Converting to Period representation will drop timezone information"
        s = load_series(path)
        assert str(s.times.tz) == "UTC" and s.report.frequency == "monthly on day 15" and s.report.gaps == 0
        future = pd.DatetimeIndex(future_times(s.times, 2, s.report.frequency))
        holes = calendar_holes(s.times.delete([5, 6]), s.report.frequency)
    assert list(future) == [pd.Timestamp("2012-01-15 08:00", tz="UTC"), pd.Timestamp("2012-02-15 08:00", tz="UTC")]
    assert holes.gaps == 2 and holes.gap_examples == ["2010-06-15T08:00:00+00:00", "2010-07-15T08:00:00+00:00"]


def test_a_report_made_again_names_the_frequency_the_run_recorded(tmp_path):
    """A run made before months on the 15th had a grid recorded "irregular"; its report made again
    read the file anew and named "monthly on day 15" beside that run's config.json."""
    path = tmp_path / "m15.csv"
    path.write_text("date,sales\n" + "".join(f"{t:%Y-%m-%d},{sales(i)}\n" for i, t in enumerate(months("2000-01-15",
                                                                                                   60))))
    run = train(path, tmp_path / "run")
    record = json.loads((run / "config.json").read_text())
    assert record["data"]["series"]["frequency"] == "monthly on day 15"
    record["data"]["series"].update(frequency="irregular", step="30 days")  # as such a run recorded its series
    (run / "config.json").write_text(json.dumps(record))
    write_report(run)
    page = (run / "report.html").read_text()
    assert re.search(r"60 rows, 2000-01-15 \.\. 2004-12-15, frequency irregular", page)
    assert "monthly on day 15" not in page


def test_a_header_that_names_its_dates_is_no_r_row_names(tmp_path):
    """`date,sales` above rows with a third number (a spreadsheet column without a heading) was
    blamed on R's row names, and the advised header `date,date,sales` then trained on that column."""
    for header, sep, rows in (("date,sales", ",", [f"{d:%Y-%m-%d},{sales(i)},{i}" for i, d in
                                                   enumerate(pd.date_range("2022-01-01", periods=60))]),
                              ("Datum;Umsatz", ";", [f"{d:%d.%m.%Y};{sales(i)};{i}" for i, d in
                                                     enumerate(pd.date_range("2022-01-01", periods=60))])):
        path = tmp_path / "last_unnamed.csv"
        path.write_text(header + "\n" + "\n".join(rows) + "\n")
        with pytest.raises(NeuralabError) as e:
            load_series(path)
        assert str(e.value) == (f"{path}: the rows hold 3 fields and the header (line 1) names 2: name every column "
                                "in the header, in the rows' order")
    # R's frame with a column of its own named date (yyyymmdd numbers): the name advised for its row names is another
    path = tmp_path / "r.csv"
    path.write_text('"sales","date"\n' + "".join(f'"{d:%Y-%m-%d}",{sales(i)},{d:%Y%m%d}\n'
                                                 for i, d in enumerate(pd.date_range("2022-01-01", periods=60))))
    with pytest.raises(NeuralabError, match=re.escape("start the header with one ('datetime,\"sales\",\"date\"')")):
        load_series(path, "sales")
    path.write_text(path.read_text().replace('"sales"', 'datetime,"sales"', 1))  # as the message says
    s = load_series(path, "sales")
    assert s.date_column == "datetime" and s.values[1, 0] == pytest.approx(float(sales(1)))
