"""Forecast errors in the units of the data. ``actual`` and ``pred`` are (N, H) or (N,).

MAPE and sMAPE are in percent. MAPE skips actual values of 0, where it is undefined (it
is misleading for any series that crosses zero, such as temperatures in degrees C), and
``evaluate`` leaves it undefined where more than ``MAPE_MAX_ZEROS`` of the actuals are 0.
MASE divides the MAE by the in-sample MAE of the one-step naive forecast on the training
span (Hyndman and Koehler, 2006): below 1 beats that naive forecast on average; a constant
training span has no such scale, and MASE is then None.

``paired_gain`` judges two forecasters window by window on the same span: the one owner of
"is this difference more than noise", for the verdict, the backtest and the network's
validation.
"""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "mape", "smape", "mase")
MAPE_MAX_ZEROS = 0.1  # more actual zeros than this share: MAPE over the rest describes another series
# A difference counts only beyond this many standard errors of the paired per-window gain
# (about 95% for a normal mean): one test span of a few hundred windows decides little.
SIGNIFICANCE = 2.0
# Student's t 97.5% quantiles for 1 to 30 degrees of freedom: a standard error estimated from
# few windows is itself uncertain, so fewer windows need more of them (12.7 from 2 windows);
# beyond 30, Cornish-Fisher's expansion (within 1e-3), and never fewer than SIGNIFICANCE
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# Kiefer and Vogelsang (2005, Econometric Theory 21): the two-sided 5% critical value of a mean
# over its Bartlett (Newey-West) standard error, as a cubic in b = bandwidth / windows. With
# overlapping windows, that standard error rests on few independent spans and is biased low, so
# the normal's 1.96 said "clear" 11% of the time at horizon 7 over 114 windows, and 91% at
# horizon 100 over 21; the fixed-b value takes both into account
FIXED_B = (1.9600, 2.9694, 0.4160, -0.5324)
# Bartlett's weights shrink the very autocovariances that windows sharing targets have: a
# bandwidth of just those windows leaves out about a third of the variance (random-walk gains at
# horizon 7 over 114 windows: 9% "clear" with fixed-b), three times as many about a ninth, and
# fixed-b's larger critical value covers the rest (5-8% at horizons 2 to 30, strides 1 to 6)
NEWEY_WEST_SPANS = 3
# Fewer independent test windows than this judge nothing: two windows whose gains happen to be
# equal have a standard error of 0, and any difference would count; and overlapping windows
# that span few horizons leave the Newey-West standard error nothing to estimate it from
MIN_WINDOWS = 10
# Scores closer than this, relative, are the same forecast up to float rounding (a network
# that kept its linear start differs from that baseline by ~1e-8 in MAE).
RTOL = 1e-6


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


def mase(actual, pred, scale: float | None) -> float | None:
    return mae(actual, pred) / scale if scale else None


# Values closer than this, relative to the series' magnitude, differ by float rounding alone
# (0.3 next to 0.30000000000000004 from a sum of 0.1 and 0.2): the same value.
CONSTANT_RTOL = 1e-9


def constant(levels) -> bool:
    """Whether ``levels`` (a training span) is constant up to float rounding: the one owner of
    "nothing to learn and no naive error to scale MASE by"."""
    y = np.asarray(levels, dtype=np.float64)
    return len(y) < 2 or float(np.ptp(y)) <= CONSTANT_RTOL * float(np.max(np.abs(y)))


def naive_scale(train_levels, period: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast with ``period`` on the training values."""
    y = np.asarray(train_levels, dtype=np.float64)
    return float(np.mean(np.abs(y[period:] - y[:-period])))


def zeros(actual) -> int:
    """How many actual values are 0: the ones MAPE leaves out."""
    return int(np.count_nonzero(np.asarray(actual) == 0))


def evaluate(actual, pred, scale: float | None) -> dict[str, float]:
    """All five metrics; ``scale`` is the MASE denominator (``naive_scale`` of the training span,
    None when it is 0). MAPE is NaN where more than ``MAPE_MAX_ZEROS`` of the actuals are 0."""
    many_zeros = zeros(actual) > MAPE_MAX_ZEROS * np.size(actual)
    return {"mae": mae(actual, pred), "rmse": rmse(actual, pred),
            "mape": float("nan") if many_zeros else mape(actual, pred),
            "smape": smape(actual, pred), "mase": mase(actual, pred, scale)}


def window_errors(actual, pred, scale: float | None = 1.0) -> np.ndarray:
    """(N, H) -> (N,): each window's mean absolute error, divided by ``scale`` (MASE's, to
    pool series in different units); NaN without a scale."""
    err = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(pred, dtype=np.float64))
    err = err.reshape(len(err), -1).mean(1)
    return err / scale if scale else np.full(len(err), np.nan)


def shared_target_lag(horizon: int, stride: int) -> int:
    """How many windows apart two windows can be and still share a target: horizon - 1 with
    stride 1, fewer with a longer stride (``paired_gain``'s ``lag``). One window further apart,
    they share none: the earlier one's targets are all known when the later one is made
    (``intervals.rolling``)."""
    return -(-horizon // stride) - 1


def paired_gain(reference, errors, lag: int = 0) -> dict:
    """How much lower ``errors`` are than ``reference``'s, window by window (N,): the mean
    gain and its standard error. Windows ``lag`` or fewer apart share targets (horizon - 1
    with stride 1), so their gains are correlated: the variance then adds their
    autocovariances with Bartlett weights (Newey-West) over ``bandwidth(lag)`` windows, as the
    Diebold-Mariano test does; ``critical`` then takes that bandwidth into account."""
    d = np.asarray(reference, dtype=np.float64) - np.asarray(errors, dtype=np.float64)
    n = len(d)
    gain = float(d.mean()) if n else 0.0
    if n > 1:
        c = d - gain
        m = bandwidth(lag)
        variance = c @ c + 2 * sum((1 - k / m) * (c[k:] @ c[:-k]) for k in range(1, min(m - 1, n - 1) + 1))
        se = float(np.sqrt(max(variance, 0.0) / (n - 1) / n))
    else:
        se = float("inf")
    base = float(np.mean(reference)) if n else 0.0
    pct = (lambda v: 100 * v / base if base > 0 and np.isfinite(v) else None)
    return {"gain": gain, "standard_error": se, "percent": pct(gain), "standard_error_percent": pct(se),
            "windows": n, "lag": lag}


def bandwidth(lag: int) -> int:
    """The Bartlett bandwidth of ``paired_gain``'s Newey-West variance: ``NEWEY_WEST_SPANS`` times
    the windows that share targets (``lag`` + 1); 1, no autocovariance, where none do."""
    return NEWEY_WEST_SPANS * (lag + 1) if lag > 0 else 1


def critical(windows: int, lag: int = 0) -> float:
    """How many standard errors a mean gain over ``windows`` must lie beyond to count, at least
    ``SIGNIFICANCE``. Independent windows (``lag`` 0): Student's t 97.5% quantile with
    ``windows`` - 1 degrees of freedom. Windows sharing targets: the fixed-b critical value of
    ``paired_gain``'s Newey-West standard error (``FIXED_B``), b = ``bandwidth(lag)`` / ``windows``."""
    df = windows - 1
    if df < 1:
        return float("inf")
    if lag > 0:
        b = min(bandwidth(lag) / windows, 1.0)
        return max(SIGNIFICANCE, sum(a * b**k for k, a in enumerate(FIXED_B)))
    if df <= len(T_975):
        return max(SIGNIFICANCE, T_975[df - 1])
    z = 1.959964
    t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2) \
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    return max(SIGNIFICANCE, t)


def independent_windows(gain: dict) -> float:
    """How many windows of ``paired_gain`` share no target with one another: its windows over
    (``lag`` + 1), the test span counted in whole horizons."""
    return gain["windows"] / (gain.get("lag", 0) + 1)


def too_few(gain: dict) -> bool:
    """Whether ``paired_gain`` rests on fewer than ``MIN_WINDOWS`` independent windows
    (``independent_windows``), too few to judge by."""
    return independent_windows(gain) < MIN_WINDOWS


def difference(gain: dict) -> int:
    """+1: clearly lower errors, -1: clearly higher, 0: within ``critical`` standard errors, over
    too few windows to judge (``too_few``), or within float rounding of ``paired_gain``'s reference."""
    g, se, pct = gain["gain"], gain["standard_error"], gain.get("percent")
    if not np.isfinite(g) or too_few(gain) or abs(g) <= critical(gain["windows"], gain.get("lag", 0)) * se \
            or (pct is not None and abs(pct) <= 100 * RTOL):
        return 0
    return 1 if g > 0 else -1


def margin_words(gain: dict, unit: str = "") -> str:
    """"+0.12 ± 0.08 (2 SE)": the mean gain and the margin it must lie beyond to count."""
    t = critical(gain["windows"], gain.get("lag", 0))
    return f"{gain['gain']:+.3g} ± {t * gain['standard_error']:.2g}{unit} ({t:.3g} SE)"


def gain_words(gain: dict, unit: str = "") -> str:
    """"gain +0.12 ± 0.08 (2 SE) over 219 windows": what a verdict rests on."""
    return f"gain per window {margin_words(gain, unit)} over {gain['windows']:,} windows"


def tied(a: float, b: float) -> bool:
    """The same score up to float rounding."""
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


def by_step(actual, pred, metric=mae) -> list[float]:
    """The error at each horizon step: (N, H) -> H numbers."""
    actual, pred = np.asarray(actual), np.asarray(pred)
    return [metric(actual[:, k], pred[:, k]) for k in range(actual.shape[1])]


def percent_better(error: float, reference: float) -> float:
    """How much lower ``error`` is than ``reference``, in percent (negative: worse)."""
    return 100.0 * (reference - error) / reference if reference > 0 else 0.0
