"""The names a series is loaded with: its policies, date encodings and built-in datasets.

Apart from data/series.py so that `neuralab forecast --help` can offer them without
importing pandas; ``neuralab.data.series`` still exports each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

MISSING = ("error", "drop", "ffill", "interpolate")
DUPLICATES = ("error", "first", "last", "mean")
GAPS = ("keep", "fill")
CALENDAR = {"dayofyear": ("day_of_year", 365.25), "dayofweek": ("day_of_week", 7),  # (attribute, cycle)
            "month": ("month", 12), "hour": ("hour", 24)}


@dataclass(frozen=True)
class BuiltinSeries:
    file: str             # inside neuralab/data/builtin/
    date_column: str
    target: str           # the default target column
    title: str
    source: str


BUILTIN: dict[str, BuiltinSeries] = {
    "sp500": BuiltinSeries("sp500.csv.gz", "Date", "Close", "S&P 500 index, daily OHLCV 1999-2018",
                           "arch package (arch.data.sp500), from Yahoo! Finance"),
    "nasdaq": BuiltinSeries("nasdaq.csv.gz", "Date", "Close", "NASDAQ Composite, daily OHLCV 1999-2018",
                            "arch package (arch.data.nasdaq), from Yahoo! Finance"),
    "seattle-weather": BuiltinSeries("seattle-weather.csv.gz", "date", "temp_max",
                                     "Seattle daily weather 2012-2015 (temperatures in degrees C)",
                                     "vega_datasets package (seattle_weather), from NOAA GHCN"),
}
