"""The forecast page's data, read from the files a forecasting run leaves behind
(``neuralab.forecasting.pipeline``): results.json for the verdict and the scores,
forecast.csv for every test-span forecast next to the actual value."""

from __future__ import annotations

from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError, Shown
from neuralab.web.runs import NotFound, resolve_run

MAX_ROWS = 200_000


def number(value) -> float | None:
    """A figure read from results.json, or None where the file holds no number there."""
    return float(value) if type(value) in (int, float) else None


def forecast_view(root: Path, run_id: str, series: str = "") -> dict:
    """Verdict, test scores per forecaster (best first by the verdict's metric) and the test-span
    curves by horizon step, of ``series`` for a run on several (default the first, named)."""
    from neuralab.forecasting.forecast_csv import read_forecast_csv  # pandas: only when a forecast is shown

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
    metric = str(head.get("metric") or "mae")  # an edited file's list or number is no metric: no 500
    fitted = runs.json_object(results.get("forecasters"))
    scores = _scores(results.get("test"), metric, head.get("network"), fitted)
    steps, future, names, all_series = read_forecast_csv(table, MAX_ROWS, series or None)
    shown = series or next(iter(all_series), "")
    spans = runs.json_object(results.get("spans"))
    plots = {name: file for name, file in runs.FORECAST_FIGURES.items() if (run / file).is_file()}
    mine = {}
    intervals = runs.json_object(results.get("intervals"))
    coverage = runs.json_object(intervals.get("coverage"))
    coverage_pooled = bool(all_series)  # results.json's top-level coverage counts every series' targets
    if all_series:
        one = runs.json_object(runs.json_object(results.get("series")).get(shown))
        # pipeline._per_series judges each series alone by MAE, in its own units
        own = _scores(one.get("test"), str(one.get("metric") or "mae"), head.get("network"),
                      {**fitted, **runs.json_object(one.get("forecasters"))})
        if own:  # an older or edited results.json without the series' own figures keeps the pooled table
            pooled = {r["name"]: r for r in scores}
            scores = [{**r, "pooled": {"metric": metric, "score": number(p.get(metric)),
                                       "vs_persistence": p.get("vs_persistence"),
                                       "vs_best_baseline": p.get("vs_best_baseline")}}
                      for r in own for p in [pooled.get(r["name"], {})]]
        own_spans = runs.json_object(one.get("spans"))
        if own_spans:
            spans = own_spans
        elif shown != all_series[0]:
            # a run recorded before each series' spans were: its top-level spans are the first
            # series'; of the others only the test span is known, from their rows in forecast.csv
            times = [t for step in steps.values() for t in step["time"]]
            spans = {"test": [min(times)[:10], max(times)[:10]]} if times else {}
        own_coverage = runs.json_object(runs.json_object(one.get("intervals")).get("coverage"))
        if own_coverage:
            coverage, coverage_pooled = own_coverage, False
        if shown != all_series[0]:  # the pipeline draws the series plots of the first series
            plots = [p for p in plots if p not in ("series", "forecast")]
        mine = {"scores_of": shown if own else "",  # "": the table is pooled over every series
                "series_verdict": {k: one.get(k) for k in ("sentence", "outcome", "best", "network_rank",
                                                           "versus_persistence")}}
    names_all = set(next(iter(steps.values()), {}))
    coverage = {k: v for k, v in coverage.items() if isinstance(v, dict)}
    return {
        "id": run_id,
        "target": results.get("target", ""),
        "series": shown,  # "" for a run on one
        "all_series": all_series,
        "headline": head,
        "scores": scores,
        "spans": spans,
        "forecasters": names,
        "steps": steps,
        "future": future,
        # the network's prediction intervals: their columns ride in steps/future (lower_80, upper_80, ...)
        "intervals": {"forecaster": intervals.get("forecaster", head.get("network")),
                      "levels": [k for k in coverage if f"lower_{k}" in names_all and f"upper_{k}" in names_all],
                      "coverage": {k: v.get("coverage") for k, v in coverage.items()},
                      "pooled": coverage_pooled and bool(coverage),  # over every series, not the shown one's
                      "method": intervals.get("method", "")},
        "plots": plots,
        **mine,
    }


def _scores(test, metric: str, network, fitted: dict) -> list[dict]:
    """Each forecaster's test scores, best first by ``metric``, the measure its verdict ranks by,
    against persistence and the best baseline by that same measure; an entry edited into
    something else is left out."""
    from neuralab.forecasting.metrics import percent_better

    test = {name: m for name, m in runs.json_object(test).items()
            if isinstance(m, dict) and number(m.get("mae")) is not None}
    persistence = number(test.get("persistence", {}).get(metric))
    best_baseline = min((v for n, m in test.items() if n != network and (v := number(m.get(metric)))), default=None)
    rows = []
    for name, m in test.items():
        score = number(m.get(metric))
        rows.append({"name": name, **m,
                     "vs_persistence": percent_better(score, persistence) if persistence and score is not None
                     else None,
                     "vs_best_baseline": score / best_baseline if best_baseline and score is not None else None,
                     "network": name == network, "fitted": fitted.get(name, "")})
    rows.sort(key=lambda r: (number(r.get(metric)) is None, number(r.get(metric)) or 0.0))
    return rows


def _no_forecast(run: runs.Run, run_id: str, no_results: bool) -> str:
    """Why the forecast run ``run`` has nothing to show, and what to do, by its status."""
    if run.by_keras_fit:
        return (f"run {run_id}: Keras's fit wrote this run, which holds no series to show forecasts of; its page "
                "shows the training")
    status = run.status()
    if status is runs.Status.RUNNING:
        return f"run {run_id}: still training (no results.json or forecast.csv yet)"
    if status is runs.Status.INTERRUPTED:
        if runs.resume_needs(run.path)[0] == "model":  # a module object's: `--resume` would refuse it
            return (f"run {run_id}: interrupted before it forecast; go on in Python with the module given again, "
                    f"from the runs folder: {runs.Interrupted.resume_call(run.path, runs.Kind.FORECASTER)}")
        return (f"run {run_id}: interrupted before it forecast; go on with `neuralab forecast --resume {runs.shell_word(run_id)}` "
                "in a terminal, from the runs folder")
    missing = runs.RESULTS if no_results else runs.FORECAST
    return f"run {run_id}: {status.value}, but its {missing} is missing; run the forecast again to write it"
