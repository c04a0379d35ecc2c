"""Export the bench's real series to CSV files, run with a separate environment that has
the packages shipping them offline (bench_forecast.py --prepare makes it): neuralab itself
depends on none of them. Usage: python forecast_data.py OUT_DIR"""

import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

from vega_datasets import local_data  # noqa: E402  BSD-3; data from NOAA

seattle = local_data.seattle_temps().rename(columns={"temp": "temp_f"})   # hourly 2010, degrees F
sf = local_data.sf_temps().rename(columns={"temp": "temp_f"})
seattle[["date", "temp_f"]].to_csv(out / "seattle-temps.csv", index=False)
sf[["date", "temp_f"]].to_csv(out / "sf-temps.csv", index=False)

import pmdarima.datasets as pm  # noqa: E402  MIT

msft = pm.load_msft()                                               # daily 1986-2017, Kaggle's US stocks (CC0)
msft[["Date", "Open", "High", "Low", "Close", "Volume"]].to_csv(out / "msft.csv", index=False)
taylor = pm.load_taylor()                                           # half-hourly MW, England and Wales, 2000
pd.DataFrame({"time": pd.date_range("2000-06-05", periods=len(taylor), freq="30min"), "load_mw": taylor}) \
    .to_csv(out / "taylor-load.csv", index=False)
sunspots = pm.load_sunspots(as_series=True)                         # monthly 1749-1983
pd.DataFrame({"month": pd.date_range("1749-01-01", periods=len(sunspots), freq="MS"), "sunspots": sunspots.values}) \
    .to_csv(out / "sunspots.csv", index=False)

import statsmodels.api as sm  # noqa: E402  BSD-3; both series public domain

co2 = sm.datasets.co2.load_pandas().data                            # weekly ppm, Mauna Loa 1958-2001
co2 = co2.interpolate(limit_area="inside")                          # 59 missing weeks, filled linearly here
co2.rename_axis("week").reset_index().to_csv(out / "co2.csv", index=False)
elnino = sm.datasets.elnino.load_pandas().data                      # monthly sea surface temperature, 1950-2010
long = elnino.melt(id_vars="YEAR", var_name="month", value_name="sst")
months = {m: i for i, m in enumerate(elnino.columns[1:], start=1)}
long["date"] = pd.to_datetime({"year": long["YEAR"].astype(int), "month": long["month"].map(months), "day": 1})
long.sort_values("date")[["date", "sst"]].to_csv(out / "elnino.csv", index=False)

# Three weather stations in one file, one row per station and hour (as a download from a
# weather service looks): Seattle and San Francisco (2010, vega_datasets) and Greensboro,
# NC (a typical meteorological year of hourly observations shipped with pvlib, BSD-3;
# its year set to 2010). Temperatures in degrees F.
stations = [seattle.assign(station="SEATTLE"), sf.assign(station="SAN FRANCISCO")]
try:
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    tmy, _ = pvlib.iotools.read_tmy3(path, coerce_year=2010, map_variables=True)
    tmy = tmy.tz_localize(None) if tmy.index.tz is not None else tmy
    greensboro = pd.DataFrame({"date": tmy.index - pd.Timedelta(hours=1), "temp_f": tmy["temp_air"] * 9 / 5 + 32})
    stations.append(greensboro.assign(station="GREENSBORO"))
except ImportError:
    pass
three = pd.concat(stations, ignore_index=True)
three = three[three["date"].dt.year == 2010]
three[["station", "date", "temp_f"]].sort_values(["date", "station"]).to_csv(out / "three-stations.csv", index=False)
print(f"wrote {len(list(out.glob('*.csv')))} files to {out}")
