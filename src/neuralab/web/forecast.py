"""The forecast page's data, read from the files a forecasting run leaves behind
(``neuralab.forecasting.pipeline``): results.json for the verdict and the scores,
forecast.csv for every test-span forecast next to the actual value."""

from __future__ import annotations

from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError
from neuralab.web.inputs import Shown
from neuralab.web.runs import NotFound, resolve_run

MAX_ROWS = 200_000


def number(value) -> float | None:
    """A figure read from results.json, or None where the file holds no number there."""
    return float(value) if type(value) in (int, float) else None


def forecast_view(root: Path, run_id: str, series: str = "") -> dict:
    """Verdict, test scores per forecaster (best first by the verdict's metric) and the test-span
    curves by horizon step, of ``series`` for a run on several (default the first, named)."""
    from neuralab.forecasting.metrics import percent_better
    from neuralab.forecasting.pipeline import read_forecast_csv  # torch-heavy: only when a forecast is shown

    run = runs.Run(resolve_run(root, run_id))
    if run.kind is not runs.Kind.FORECASTER:
        raise NotFound(f"run={Shown(run_id)!r}: not a forecast run; give a run that /api/runs lists with kind "
                       f"{runs.Kind.FORECASTER.value}")
    results = run.results()
    table = run.file(runs.FORECAST)  # a folder, or a link out of the run, is named and not read
    if results is None or not table.is_file():
        raise NeuralabError(_no_forecast(run, run_id, results is None))
    run = run.path
    head = runs.json_object(results.get("headline"))
    persistence = number(head.get("persistence_mae"))
    metric = str(head.get("metric") or "mae")  # an edited file's list or number is no metric: no 500
    # every forecaster's test scores; an entry edited into something else is left out
    test = {name: m for name, m in runs.json_object(results.get("test")).items()
            if isinstance(m, dict) and number(m.get("mae")) is not None}
    baseline_scores = [number(m.get(metric)) for n, m in test.items() if n != head.get("network")]
    best_baseline = min((v for v in baseline_scores if v), default=None)
    fitted = runs.json_object(results.get("forecasters"))
    scores = []
    for name, m in test.items():
        vs = percent_better(m["mae"], persistence) if persistence else None
        ratio = number(m.get(metric)) / best_baseline if best_baseline and number(m.get(metric)) is not None else None
        scores.append({"name": name, **m, "vs_persistence": vs, "vs_best_baseline": ratio,
                       "network": name == head.get("network"), "fitted": fitted.get(name, "")})
    scores.sort(key=lambda r: (number(r.get(metric)) is None, number(r.get(metric)) or 0.0))
    steps, future, names, all_series = read_forecast_csv(table, MAX_ROWS, series or None)
    names_all = set(next(iter(steps.values()), {}))
    intervals = runs.json_object(results.get("intervals"))
    coverage = {k: v for k, v in runs.json_object(intervals.get("coverage")).items() if isinstance(v, dict)}
    return {
        "id": run_id,
        "target": results.get("target", ""),
        "series": series or next(iter(all_series), ""),  # the series shown; "" for a run on one
        "all_series": all_series,
        "headline": head,
        "scores": scores,
        "spans": runs.json_object(results.get("spans")),
        "forecasters": names,
        "steps": steps,
        "future": future,
        # the network's prediction intervals: their columns ride in steps/future (lower_80, upper_80, ...)
        "intervals": {"forecaster": intervals.get("forecaster", head.get("network")),
                      "levels": [k for k in coverage if f"lower_{k}" in names_all and f"upper_{k}" in names_all],
                      "coverage": {k: v.get("coverage") for k, v in coverage.items()},
                      "method": intervals.get("method", "")},
        "plots": [p for p in ("series", "forecast", "error_by_step", "learning_curves")
                  if (run / "plots" / f"{p}.png").is_file()],
    }


def _no_forecast(run: runs.Run, run_id: str, no_results: bool) -> str:
    """Why the forecast run ``run`` has nothing to show, and what to do, by its status."""
    if run.by_keras_fit:
        return (f"run {run_id}: Keras's fit wrote this run, which holds no series to show forecasts of; its page "
                "shows the training")
    status = run.status()
    if status is runs.Status.RUNNING:
        return f"run {run_id}: still training (no results.json or forecast.csv yet)"
    if status is runs.Status.INTERRUPTED:
        return (f"run {run_id}: interrupted before it forecast; go on with `neuralab forecast --resume {run_id}` "
                "in a terminal, from the runs folder")
    missing = runs.RESULTS if no_results else runs.FORECAST
    return f"run {run_id}: {status.value}, but its {missing} is missing; run the forecast again to write it"
