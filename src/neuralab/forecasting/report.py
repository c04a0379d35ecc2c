"""A forecast run's report: the pipeline's objects turned into the plain data that
``neuralab.reports.forecast`` draws (``write_forecast_report``). ``pipeline.write_report``
gathers the same objects again from a finished run's files.

The judgement lives here, not in the drawing: which forecaster is the reference, which
forecasts are drawn, when the verdict is good news.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from neuralab.forecasting.metrics import percent_better
from neuralab.reports import forecast as page

REFERENCE = "persistence"  # every forecaster is judged against "tomorrow = today"


def write_forecast_report(run_dir: Path, *, config, series, prepared, results: dict,
                          predictions: dict[str, np.ndarray], history: list[dict], summary_text: str) -> Path:
    """report.html and plots/*.png for a forecasting run: ``config`` a ForecastConfig, ``series``
    the loaded Series, ``prepared`` its windows, ``predictions`` forecaster -> (N, H) on the test
    windows, ``history`` one record per epoch."""
    head = results["headline"]
    network = head["network"]
    shown = list(dict.fromkeys([network, REFERENCE, head["best"]]))  # the network, the reference, the winner
    reference = results["test"][REFERENCE]["mae"]
    report = page.ForecastReport(
        name=series.name, target=series.target, horizon=config.windows.horizon, transform=config.windows.transform,
        verdict=head["sentence"], verdict_good=bool(head["beats_persistence"] and head["percent_better"] >= 1),
        reference=REFERENCE, network=network, results=results,
        versus={n: percent_better(m["mae"], reference) for n, m in results["test"].items()},
        times=prepared.times, values=prepared.levels, spans=prepared.spans(),
        test_times=prepared.test.times[:, 0], actual=prepared.test.future[:, 0],
        forecasts={n: predictions[n][:, 0] for n in shown},
        data_lines=series.report.lines(), history=history, summary_text=summary_text,
        config=asdict(config), backtest_refit=config.backtest_refit)
    return page.write_forecast_report(run_dir, report)
