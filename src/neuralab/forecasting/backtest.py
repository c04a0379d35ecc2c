"""Rolling-origin backtesting: one test span judged as several consecutive folds.

The test windows are cut into ``folds`` blocks in time order; each block's first target
is a forecast origin. Without ``refit`` every forecaster keeps what it learned on the
training span (a network trained once is judged on each fold). With ``refit`` each
forecaster is cloned and fitted again, for every fold, on all windows whose targets
precede that fold's first target (an expanding window), so nothing from the fold leaks.
A spread over folds says how much one test figure can be trusted; without ``refit`` it is
the variation across sub-spans of the test span, not of a model fitted again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.baselines import REFERENCE
from neuralab.forecasting.metrics import difference, evaluate, paired_gain, shared_target_lag, too_few, window_errors
from neuralab.forecasting.windows import Prepared


def rolling_origin(prepared: Prepared, forecasters: list[Forecaster], folds: int = 4,
                   refit: bool = False, val_fraction: float = 0.15) -> list[dict]:
    """One record per fold: its span, window count, each forecaster's metrics and, under
    "versus", its paired gain over persistence (``metrics.paired_gain``) where that ran."""
    test = np.flatnonzero(prepared.split == "test")
    lag = shared_target_lag(prepared.config.horizon, prepared.config.stride)
    records = []
    for k, block in enumerate(b for b in np.array_split(test, min(folds, len(test))) if len(b)):
        windows = prepared.all.take(block)
        first_row = int(windows.rows[:, 0].min())
        fitted = forecasters
        if refit:
            train, val = _history(prepared, first_row, val_fraction)
            fitted = [f.clone().fit(train, val) for f in forecasters]
        predictions = {f.name: f.predict(windows) for f in fitted}
        errors = {n: window_errors(windows.future, p) for n, p in predictions.items()}
        records.append({
            "series": prepared.name,
            "fold": k + 1,
            "start": str(pd.Timestamp(windows.times.min()).date()),
            "end": str(pd.Timestamp(windows.times.max()).date()),
            "windows": len(windows),
            "refit": refit,
            "metrics": {n: evaluate(windows.future, p, prepared.mase_scale) for n, p in predictions.items()},
            "versus": {n: paired_gain(errors[REFERENCE], e, lag) for n, e in errors.items()} if REFERENCE in errors
            else {},
        })
    return records


def _history(prepared: Prepared, first_row: int, val_fraction: float):
    """Windows whose targets all precede ``first_row``, split in time into fit / validation."""
    last = prepared.all.rows[:, -1]
    before = np.flatnonzero(last < first_row)
    cut = int(np.quantile(prepared.all.rows[before, 0], 1 - val_fraction)) if val_fraction > 0 else first_row
    fit = before[last[before] < cut]
    val = before[prepared.all.rows[before, 0] >= cut]
    return prepared.all.take(fit), prepared.all.take(val) if len(val) else None


def summarize(records: list[dict], metric: str = "mae") -> dict[str, dict]:
    """Per forecaster: the mean of the fold scores weighted by their windows and their spread
    (``mae_mean``, ``mae_std``, or ``mase_...`` by ``metric``: MASE where series in different
    units are pooled), and the folds where it beats persistence beyond the noise of its
    paired per-window gain (``metrics.difference``; float rounding is a tie), ties with it, or
    holds too few windows to judge (``metrics.too_few``: neither won nor tied). Folds without a
    score (MASE of a series constant over its training span) are left out of the mean, their
    series named under ``left_out``; with none scored, the mean and spread are None."""
    names = list(records[0]["metrics"]) if records else []
    weights = np.array([r["windows"] for r in records], dtype=np.float64)
    out = {}
    for name in names:
        scores = [r["metrics"][name][metric] for r in records]
        scored = np.array([s is not None for s in scores])
        values = np.array([s for s in scores if s is not None], dtype=np.float64)
        w = weights[scored]
        mean = float(np.average(values, weights=w)) if w.sum() else None
        spread = float(np.sqrt(np.average((values - mean) ** 2, weights=w))) if w.sum() else None
        gains = [r["versus"][name] for r in records if name in r.get("versus", {})]
        verdicts = [None if too_few(g) else difference(g) for g in gains]
        out[name] = {f"{metric}_mean": mean, f"{metric}_std": spread, "metric": metric, "folds": len(records),
                     "folds_beating_" + REFERENCE: sum(v == 1 for v in verdicts),
                     "folds_tied_with_" + REFERENCE: sum(v == 0 for v in verdicts),
                     "folds_too_short": sum(v is None for v in verdicts),
                     "refit": bool(records and records[0]["refit"])}
        left_out = [r.get("series", f"fold {r['fold']}") for r, ok in zip(records, scored) if not ok]
        if left_out:
            out[name]["left_out"] = list(dict.fromkeys(left_out))
    return out
