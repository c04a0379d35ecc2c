"""What a run on several series says of them in words: the terminal header describes every
series (not the first one's figures as the file's), and `neuralab runs` says why a run whose
verdict ranks nothing has no figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series_list
from neuralab.forecasting.pipeline import HEADER_SERIES, _data_lines
from neuralab.run_list import describe
from neuralab.runs import Run

TINY = ["--target", "value", "--series-column", "id", "--lookback", "7", "--hidden", "8", "--epochs", "1",
        "--backtest-folds", "2", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def station(name: str, start: str, days: int, gaps: int, seed: int) -> pd.DataFrame:
    """A random walk of business days with ``gaps`` of them missing (never two in a row)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=days)
    missing = 10 + 3 * rng.choice(np.arange((days - 20) // 3), gaps, replace=False)
    kept = np.delete(np.arange(days), missing)
    return pd.DataFrame({"date": dates[kept].strftime("%Y-%m-%d"), "id": name,
                         "value": 100 + np.cumsum(rng.normal(size=len(kept)))})


def stations(path, *specs) -> str:
    pd.concat([station(*spec, seed=k) for k, spec in enumerate(specs)]).to_csv(path, index=False)
    return str(path)


def flat_then_ramp(level: float, n: int = 200, flat: int = 150) -> np.ndarray:
    """Constant over the training span, then rising."""
    return np.r_[np.full(flat, level), level + 0.5 * np.arange(n - flat)]


def test_the_header_of_several_series_describes_each_one(tmp_path, capsys):
    specs = (("north", "2020-01-06", 160, 4), ("south", "2021-03-01", 120, 17), ("west", "2020-06-01", 140, 0))
    data = stations(tmp_path / "stations.csv", *specs)
    assert main(["forecast", "--data", data, *TINY, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    header = out[:out.index("  windows:")]
    assert f"  3 series, {sum(days - gaps for _, _, days, gaps in specs):,} rows\n" in header
    for name, start, days, gaps in specs:
        end = pd.bdate_range(start, periods=days)[-1].strftime("%Y-%m-%d")
        line = f"  {name}: {days - gaps} rows, {start} .. {end}, frequency B"
        assert line + (f"; {gaps} missing timestamps on the business-day grid" if gaps else "\n") in header
    # every figure printed is one config.json holds for that series
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    for name, report in config["data"]["series"].items():
        assert f"  {name}: {report['rows']:,} rows, {report['start']} .. {report['end']}" in header


def test_series_past_the_header_limit_are_summed_up_not_dropped(tmp_path):
    specs = [(f"s{k:02d}", "2020-01-06", 60, k % 3) for k in range(HEADER_SERIES + 3)]
    many = load_series_list(stations(tmp_path / "many.csv", *specs), "value", series_column="id")
    lines = _data_lines(many)
    assert lines[0] == f"{len(many)} series, {sum(s.report.rows for s in many):,} rows"
    assert [line.split(":")[0] for line in lines[1:-1]] == [s.name for s in many[:HEADER_SERIES]]
    rest = many[HEADER_SERIES:]
    assert lines[-1].startswith(f"and 3 more series: {sum(s.report.rows for s in rest):,} rows, "
                                f"{sum(s.report.gaps for s in rest):,} missing timestamps")


def test_runs_says_why_a_run_of_constant_series_has_no_figure(tmp_path, capsys):
    dates = pd.date_range("2020-01-01", periods=200).strftime("%Y-%m-%d")
    flat = tmp_path / "flat.csv"
    pd.concat([pd.DataFrame({"date": dates, "id": k, "value": flat_then_ramp(v)})
               for k, v in (("a", 3.0), ("b", 49.0))]).to_csv(flat, index=False)
    one = tmp_path / "one.csv"
    pd.DataFrame({"date": dates, "value": flat_then_ramp(3.0)}).to_csv(one, index=False)
    root = tmp_path / "runs"
    assert main(["forecast", "--data", str(flat), *TINY, "--quiet", "--out", str(root / "flat")]) == 0
    single = [a for a in TINY if a not in ("--series-column", "id")]
    assert main(["forecast", "--data", str(one), *single, "--quiet", "--out", str(root / "one")]) == 0
    capsys.readouterr()

    head = json.loads((root / "flat" / "results.json").read_text())["headline"]
    assert head["ranked"] is False and head["outcome"] == "constant"  # the case this test is about
    row = describe(Run(root / "flat"))
    assert row.metric["value"] is None
    assert row.metric["note"] == "not ranked: every series constant over its training span"
    # a single constant target is ranked, but its verdict is that there is nothing to learn
    assert json.loads((root / "one" / "results.json").read_text())["headline"]["outcome"] == "constant"
    constant = describe(Run(root / "one")).metric
    assert constant["note"] == "nothing to learn: the target is constant over its training span"

    assert main(["runs", str(root), "--json"]) == 0
    listed = {r["id"]: r["metric"]["note"] for r in json.loads(capsys.readouterr().out)}
    assert listed == {"flat": row.metric["note"], "one": constant["note"]}
    assert main(["runs", str(root)]) == 0  # the table says it where the figure would be
    table = capsys.readouterr().out
    assert "not ranked: every series constant over its training span" in table, table
