"""Prediction intervals by adaptive conformal prediction, rolled forward in time.

Each forecast gets, at each horizon step, the interval forecast plus or minus a quantile of
the network's recent absolute errors: those of the windows whose targets were all known
when the forecast was made (the validation span at first, then the test span as it
unfolds, the last ``window`` of them). The level of that quantile adapts (Gibbs and
Candès 2021, "Adaptive conformal inference under distribution shift", arXiv:2106.00170):
after every miss it rises by ``gamma`` (1 - level), after every hit it falls by ``gamma``
times the miss rate allowed, so that over a span the misses come out at the nominal rate
even when the errors drift with the seasons. Nothing from the future is used: a test
forecast's interval depends only on errors that could have been measured before it.

Measured on hourly and daily temperatures with a linear AR (the test span a season after
the validation span): a fixed quantile of the validation errors covered 89-99% for a
nominal 80-95% on one series, 68-95% on another; rolled forward and adapted with
gamma 0.02, 81-83% and 96-97% on all three (docs/forecasting.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuralab.forecasting.metrics import shared_target_lag

LEVELS = (0.8, 0.95)
GAMMA = 0.02      # the adaptation step: measured on hourly and daily weather (module docstring)
WINDOW = 1000     # the most recent errors a quantile is taken over (fewer: all the validation span's)
METHOD = ("adaptive conformal (Gibbs and Candès 2021): at each step, a quantile of the absolute errors of the "
          "windows already known when the forecast was made (the validation span, then the test span as it "
          "unfolds), its level adapted after every hit or miss")


def label(level: float) -> str:
    """0.8 -> "80": the name of a level in results and column names."""
    return f"{100 * level:g}"


@dataclass
class Intervals:
    """The intervals of one series' test forecasts, and those past the end of the data."""
    levels: tuple[float, ...]
    test: dict[float, tuple[np.ndarray, np.ndarray]]    # level -> (lower, upper), each (N, H)
    future: dict[float, np.ndarray] = field(default_factory=dict)  # level -> (H,) half-width after the test span
    hits: dict[float, np.ndarray] = field(default_factory=dict)    # level -> (N, H) target inside its interval


def rolling(val_errors: np.ndarray, actual: np.ndarray, pred: np.ndarray, levels=LEVELS, gamma: float = GAMMA,
            window: int = WINDOW, stride: int = 1) -> Intervals:
    """Intervals for ``pred`` (N, H) of ``actual`` (N, H), test windows in time order ``stride``
    steps apart, calibrated first on ``val_errors`` (M, H), the absolute errors of the validation span."""
    n, h = pred.shape
    lag = shared_target_lag(h, stride) + 1  # a window's targets are all known this many windows later
    errors = np.concatenate([np.abs(val_errors), np.abs(actual - pred)])   # (M + N, H) in time order
    m = len(val_errors)
    keep = min(window, max(m, 1))
    out = Intervals(tuple(levels), {})
    for level in levels:
        alpha = np.full(h, 1 - level)                                      # the miss rate aimed at, per step
        half = np.empty((n, h))
        hits = np.zeros((n, h), bool)
        for i in range(n + 1):
            known = m + max(0, i - lag + 1)  # window i - lag's targets are all known when window i is made
            recent = errors[max(0, known - keep):known]
            half_now = _quantiles(recent, alpha)
            if i == n:
                out.future[level] = half_now
                break
            half[i] = half_now
            hits[i] = np.abs(actual[i] - pred[i]) <= half_now
            j = i - lag + 1                                                # the window resolved next
            if j >= 0:
                alpha = np.clip(alpha + gamma * ((1 - level) - ~hits[j]), 0.0, 1.0)
        out.test[level] = (pred - half, pred + half)
        out.hits[level] = hits
    return out


def _quantiles(errors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The ceil((n + 1)(1 - alpha)) / n quantile of each column (the finite-sample correction)."""
    n = len(errors)
    if n == 0:
        return np.full(len(alpha), np.inf)
    ranks = np.clip(np.ceil((n + 1) * (1 - alpha)).astype(int), 1, n) - 1   # (H,) order statistic
    ordered = np.sort(errors, axis=0)
    return ordered[ranks, np.arange(errors.shape[1])]


def coverage(all_intervals: list[Intervals]) -> dict[str, dict]:
    """The fraction of test targets inside each interval, over every series, overall and by step."""
    out = {}
    for level in all_intervals[0].levels if all_intervals else ():
        hits = np.concatenate([iv.hits[level] for iv in all_intervals if len(iv.hits[level])])
        out[label(level)] = {"nominal": level, "coverage": float(hits.mean()), "by_step": hits.mean(0).tolist(),
                             "targets": int(hits.size)}  # a coverage of 6 targets says little: say how many
    return out
