"""The forecast page's data, read from the files a forecasting run leaves behind
(``neuralab.forecasting.pipeline``): results.json for the verdict and the scores,
forecast.csv for every test-span forecast next to the actual value."""

from __future__ import annotations

from pathlib import Path

from neuralab import runs
from neuralab.errors import NeuralabError
from neuralab.web.runs import NotFound, resolve_run

MAX_ROWS = 200_000


def forecast_view(root: Path, run_id: str) -> dict:
    """Verdict, test scores per forecaster (best first) and the test-span curves by horizon step."""
    from neuralab.forecasting.pipeline import read_forecast_csv  # torch-heavy: only when a forecast is shown

    run = runs.Run(resolve_run(root, run_id))
    if run.kind is not runs.Kind.FORECASTER:
        raise NotFound("not a forecast run")
    results = run.results()
    if results is None or not (run / runs.FORECAST).is_file():
        raise NeuralabError(f"run {run_id}: still training (no results.json or forecast.csv yet)")
    run = run.path
    head = results.get("headline", {})
    persistence = head.get("persistence_mae")
    test = results.get("test", {})
    metric = head.get("metric", "mae")
    baseline_scores = [m.get(metric) for n, m in test.items() if n != head.get("network") and m.get(metric)]
    best_baseline = min(baseline_scores, default=None)
    scores = []
    for name, m in test.items():
        vs = None if not persistence else (persistence - m["mae"]) / persistence * 100
        ratio = m[metric] / best_baseline if best_baseline and m.get(metric) is not None else None
        scores.append({"name": name, **m, "vs_persistence": vs, "vs_best_baseline": ratio,
                       "network": name == head.get("network"), "fitted": results.get("forecasters", {}).get(name, "")})
    scores.sort(key=lambda r: r["mae"])
    steps, future, names = read_forecast_csv(run / runs.FORECAST, MAX_ROWS)
    names_all = set(next(iter(steps.values()), {}))
    intervals = results.get("intervals") or {}
    return {
        "id": run_id,
        "target": results.get("target", ""),
        "headline": head,
        "scores": scores,
        "spans": results.get("spans", {}),
        "forecasters": names,
        "steps": steps,
        "future": future,
        # the network's prediction intervals: their columns ride in steps/future (lower_80, upper_80, ...)
        "intervals": {"forecaster": intervals.get("forecaster", head.get("network")),
                      "levels": [k for k in intervals.get("coverage", {})
                                 if f"lower_{k}" in names_all and f"upper_{k}" in names_all],
                      "coverage": {k: v.get("coverage") for k, v in intervals.get("coverage", {}).items()},
                      "method": intervals.get("method", "")},
        "plots": [p for p in ("series", "forecast", "error_by_step", "learning_curves")
                  if (run / "plots" / f"{p}.png").is_file()],
    }
