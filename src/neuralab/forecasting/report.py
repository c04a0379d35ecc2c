"""A forecast run's report: the pipeline's objects turned into the plain data that
``neuralab.reports.forecast`` draws (``write_forecast_report``). ``finished.write_report``
gathers the same objects again from a finished run's files.

The judgement lives here, not in the drawing: which forecasts are drawn (the network, the
reference, ``baselines.REFERENCE``, and the winner), when the verdict is good news (the
network is the best forecaster), and the table under the verdict: the network, the best
baseline and persistence, with the network's interval coverage.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from neuralab.forecasting.baselines import REFERENCE
from neuralab.forecasting.metrics import MIN_WINDOWS, margin_words, percent_better
from neuralab.forecasting.config import SPLITS
from neuralab.reports import forecast as page


def report_run(run_dir: Path, *, config, series, prepared, results: dict,
               predictions: dict[str, np.ndarray], history: list[dict], summary_text: str,
               bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """report.html and plots/*.png for a forecasting run: ``config`` a ForecastConfig, ``series``
    the loaded Series, ``prepared`` its windows, ``predictions`` forecaster -> (N, H) on the test
    windows, ``history`` one record per epoch, ``bands`` level ("80") -> the network's (lower,
    upper) interval, each (N, H)."""
    head = results["headline"]
    network = head["network"]
    shown = list(dict.fromkeys([network, REFERENCE, head["best"]]))  # the network, the reference, the winner
    metric = head.get("metric", "mae")  # MASE where series in different units are pooled
    reference = results["test"][REFERENCE][metric]
    notes = [n for n in (head.get("advice"),) if n]
    if results.get("series"):
        notes.append(f"The figures of the series and of its test-span forecasts, its target spans and the data's "
                     f"description are of the first series, {series.name}, of {len(results['series'])} (the error "
                     f"by horizon step is over every series); the table 'Series by series' judges each."
                     + _spans_words(results["series"]))
    report = page.ForecastReport(
        name=series.name, target=series.target, horizon=config.windows.horizon, transform=config.windows.transform,
        verdict=head["sentence"], verdict_good=None if head.get("outcome") == "too-short" else head.get("outcome") == "network",
        verdict_table=verdict_rows(results), notes=notes,
        intervals={level: (lower[:, 0], upper[:, 0]) for level, (lower, upper) in (bands or {}).items()},
        reference=REFERENCE, network=network, results=results,
        versus={n: percent_better(m[metric], reference) if m.get(metric) is not None and reference else None
                for n, m in results["test"].items()},
        times=prepared.times, values=prepared.levels, spans=prepared.spans(),
        test_times=prepared.test.times[:, 0], actual=prepared.test.future[:, 0],
        forecasts={n: predictions[n][:, 0] for n in shown},
        data_lines=series.report.lines(), history=history, summary_text=summary_text,
        config=asdict(config), backtest_refit=config.backtest_refit, min_windows=MIN_WINDOWS)
    return page.write_forecast_report(run_dir, report)


SPANS_LISTED = 10  # series whose differing spans the report lists; results.json holds every one's


def _spans_words(series: dict) -> str:
    """Whether the first series' target spans are every series' ("" for a run recorded without
    each series' spans)."""
    own = {name: one["spans"] for name, one in series.items() if isinstance(one.get("spans"), dict)}
    if len(own) < len(series):
        return ""
    first = next(iter(own.values()))
    if all(s == first for s in own.values()):
        return " Every series has these target spans."
    listed = "; ".join(f"{name}: " + ", ".join(f"{k} {s[k][0]} .. {s[k][1]}" for k in SPLITS if k in s)
                       for name, s in list(own.items())[:SPANS_LISTED])
    more = f"; and {len(own) - SPANS_LISTED} more" if len(own) > SPANS_LISTED else ""
    return f" The series' target spans differ ({listed}{more}); results.json holds each under series."


def verdict_rows(results: dict) -> tuple[list[str], list[list]]:
    """The table under the verdict: the network, the best baseline and persistence on the test
    span (with the rank, the ratio to the best baseline and the paired gain over it that the
    verdict rests on), then the interval coverage and how many targets it counts."""
    head, test = results["headline"], results["test"]
    metric = head.get("metric", "mae")
    names = list(dict.fromkeys([head["network"], head["best_baseline"], REFERENCE]))
    ranks = head.get("ranks") or {n: i + 1 for i, n in enumerate(head.get("ranking", []))}
    gains = head.get("gains_over_best_baseline") or {}
    rows = [[n, ranks.get(n, ""), test[n].get(metric),
             (test[n][metric] / head["best_baseline_score"]) if head.get("best_baseline_score") else None,
             _gain(gains.get(n)) if n != head["best_baseline"] else "reference"]
            for n in names if n in test]
    coverage = (results.get("intervals") or {}).get("coverage", {})
    for level, c in coverage.items():
        of = f"the {c['targets']:,} test targets" if "targets" in c else "the test targets"
        rows.append([f"{head['network']}: {level}% interval", "", f"covered {100 * c['coverage']:.1f}% of {of}", "",
                     ""])
    return ["forecaster", "rank", f"test {metric.upper()}", "vs best baseline",
            "gain per window ± its margin (windows)"], rows


def _gain(gain: dict | None) -> str:
    if not gain or gain.get("gain") is None or gain.get("standard_error") is None:
        return ""
    return f"{margin_words(gain)} ({gain['windows']})"
