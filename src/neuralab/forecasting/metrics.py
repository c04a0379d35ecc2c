"""Forecast errors in the units of the data. ``actual`` and ``pred`` are (N, H) or (N,).

MAPE and sMAPE are in percent. MAPE skips actual values of 0, where it is undefined (it
is misleading for any series that crosses zero, such as temperatures in degrees C).
MASE divides the MAE by the in-sample MAE of the one-step naive forecast on the training
span (Hyndman and Koehler, 2006): below 1 beats that naive forecast on average.
"""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "mape", "smape", "mase")


def mae(actual, pred) -> float:
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(pred))))


def rmse(actual, pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(pred)) ** 2)))


def mape(actual, pred) -> float:
    actual, pred = np.asarray(actual, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    keep = actual != 0
    if not keep.any():
        return float("nan")
    return float(100 * np.mean(np.abs((actual[keep] - pred[keep]) / actual[keep])))


def smape(actual, pred) -> float:
    """Symmetric MAPE, 0 to 200%: 2|a - p| / (|a| + |p|), with 0/0 counted as 0."""
    actual, pred = np.asarray(actual, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    denom = np.abs(actual) + np.abs(pred)
    ratio = np.divide(2 * np.abs(actual - pred), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.mean(ratio))


def mase(actual, pred, scale: float) -> float:
    return mae(actual, pred) / scale


def naive_scale(train_levels, period: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast with ``period`` on the training values."""
    y = np.asarray(train_levels, dtype=np.float64)
    return float(np.mean(np.abs(y[period:] - y[:-period])))


def evaluate(actual, pred, scale: float) -> dict[str, float]:
    """All five metrics; ``scale`` is the MASE denominator (``naive_scale`` of the training span)."""
    return {"mae": mae(actual, pred), "rmse": rmse(actual, pred), "mape": mape(actual, pred),
            "smape": smape(actual, pred), "mase": mase(actual, pred, scale)}


def by_step(actual, pred, metric=mae) -> list[float]:
    """The error at each horizon step: (N, H) -> H numbers."""
    actual, pred = np.asarray(actual), np.asarray(pred)
    return [metric(actual[:, k], pred[:, k]) for k in range(actual.shape[1])]


def percent_better(error: float, reference: float) -> float:
    """How much lower ``error`` is than ``reference``, in percent (negative: worse)."""
    return 100.0 * (reference - error) / reference if reference > 0 else 0.0
