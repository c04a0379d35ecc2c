"""Rolling-origin backtesting: one test span judged as several consecutive folds.

The test windows are cut into ``folds`` blocks in time order; each block's first target
is a forecast origin. Without ``refit`` every forecaster keeps what it learned on the
training span (a network trained once is judged on each fold). With ``refit`` each
forecaster is cloned and fitted again, for every fold, on all windows whose targets
precede that fold's first target (an expanding window), so nothing from the fold leaks.
A spread over folds says how much one test figure can be trusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.metrics import evaluate
from neuralab.forecasting.windows import Prepared


def rolling_origin(prepared: Prepared, forecasters: list[Forecaster], folds: int = 4,
                   refit: bool = False, val_fraction: float = 0.15) -> list[dict]:
    """One record per fold: its span, window count and each forecaster's metrics."""
    test = np.flatnonzero(prepared.split == "test")
    records = []
    for k, block in enumerate(b for b in np.array_split(test, min(folds, len(test))) if len(b)):
        windows = prepared.all.take(block)
        first_row = int(windows.rows[:, 0].min())
        fitted = forecasters
        if refit:
            train, val = _history(prepared, first_row, val_fraction)
            fitted = [f.clone().fit(train, val) for f in forecasters]
        records.append({
            "fold": k + 1,
            "start": str(pd.Timestamp(windows.times.min()).date()),
            "end": str(pd.Timestamp(windows.times.max()).date()),
            "windows": len(windows),
            "refit": refit,
            "metrics": {f.name: evaluate(windows.future, f.predict(windows), prepared.mase_scale) for f in fitted},
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


def summarize(records: list[dict], reference: str = "persistence") -> dict[str, dict]:
    """Per forecaster: mean and spread of the fold MAEs, and the folds where it beats ``reference``."""
    names = list(records[0]["metrics"]) if records else []
    out = {}
    for name in names:
        maes = np.array([r["metrics"][name]["mae"] for r in records])
        ref = np.array([r["metrics"][reference]["mae"] for r in records]) if reference in names else maes
        out[name] = {"mae_mean": float(maes.mean()), "mae_std": float(maes.std()),
                     "folds_beating_" + reference: int((maes < ref).sum()), "folds": len(records)}
    return out
