"""The simple forecasts a network has to beat, as forecasters like any other.

Persistence ("tomorrow = today") is the bar on prices, which move close to a random
walk; the seasonal naive repeats the last season; drift extends the line from the first
to the last value of the input window; the moving average repeats a recent mean; and the
linear autoregressive model is a least-squares fit on exactly the windows the network
sees (d2l's "concise" linear model before the recurrent one).
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import ParameterError
from neuralab.forecasting import metrics
from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.windows import Windows


class Persistence(Forecaster):
    """The last observed value, for every step of the horizon."""
    name = "persistence"

    def _predict(self, windows: Windows) -> np.ndarray:
        return np.repeat(windows.past[:, -1:], windows.horizon, axis=1)  # (N, H)


REFERENCE = Persistence.name  # every forecaster is judged against "tomorrow = today"


class SeasonalNaive(Forecaster):
    """The value one season earlier: y[t+k] = y[t+k-m] (m = ``period``, or detected in fit)."""
    name = "seasonal-naive"

    def __init__(self, period: int | None = None):
        self.period = period
        self.period_ = period

    def _fit(self, train: Windows, val: Windows | None) -> None:
        self.period_ = self.period or detect_period(training_values(train), max_period=train.lookback)
        if self.period_ > train.lookback:
            raise ParameterError("season", self.period_, f"longer than `lookback` ({train.lookback}); "
                                 "a window must hold one full season")
        return self

    def _predict(self, windows: Windows) -> np.ndarray:
        m, l = self.period_ or 1, windows.lookback
        cols = l - m + np.arange(windows.horizon) % m  # step k repeats step k - m of the last season
        return windows.past[:, cols]

    def params(self) -> dict:
        return {"period": self.period}

    def describe(self) -> str:
        how = "set" if self.period else ("detected" if (self.period_ or 1) > 1 else "none detected: persistence")
        return f"{self.name} (period {self.period_ or 1}, {how})"


class Drift(Forecaster):
    """The last value plus k times the mean change over the input window."""
    name = "drift"

    def _predict(self, windows: Windows) -> np.ndarray:
        past = windows.past
        slope = (past[:, -1] - past[:, 0]) / max(1, windows.lookback - 1)            # (N,)
        return past[:, -1:] + slope[:, None] * np.arange(1, windows.horizon + 1)     # (N, H)


class MovingAverage(Forecaster):
    """The mean of the last ``window`` values; fit picks the window with the lowest training MAE."""
    name = "moving-average"
    CANDIDATES = (2, 3, 5, 7, 10, 14, 20, 30, 60)

    def __init__(self, window: int | None = None):
        self.window = window
        self.window_ = window

    def _fit(self, train: Windows, val: Windows | None) -> None:
        if self.window is not None:
            if self.window > train.lookback:
                raise ParameterError("window", self.window, f"longer than `lookback` {train.lookback}")
            self.window_ = self.window
            return
        sizes = [w for w in self.CANDIDATES if w <= train.lookback] or [train.lookback]
        errors = [metrics.mae(train.future, self._mean(train, w)) for w in sizes]
        self.window_ = sizes[int(np.argmin(errors))]

    def _mean(self, windows: Windows, w: int) -> np.ndarray:
        return np.repeat(windows.past[:, -w:].mean(1, keepdims=True), windows.horizon, axis=1)

    def _predict(self, windows: Windows) -> np.ndarray:
        return self._mean(windows, min(self.window_ or windows.lookback, windows.lookback))

    def params(self) -> dict:
        return {"window": self.window}

    def describe(self) -> str:
        return f"{self.name} (last {self.window_} values)"


class LinearAR(Forecaster):
    """Linear autoregression: least squares (ridge ``alpha``) from the flattened scaled
    window to the scaled horizon, on the same inputs, transform and scaling as the network.

    It is fitted on departures from "no change" (the window's last value, or a change of
    0), as the network's linear start is, so the ridge shrinks towards persistence: shrunk
    towards the training mean instead, a near-unit-root fit (minute or hourly data) turns
    into a mean-reverting forecast that loses to persistence."""
    name = "linear-ar"

    def __init__(self, alpha: float = 1e-3):
        self.alpha = alpha
        self.coef_: np.ndarray | None = None

    def _fit(self, train: Windows, val: Windows | None) -> None:
        level, zero = no_change(train.codec)
        # The normal equations summed batch by batch: never the whole (N, L*C) design at once.
        gram, moment = 0.0, 0.0
        for batch in train.batches():
            g, m = departure_terms(batch, level, zero)
            gram, moment = gram + g, moment + m
        coef = ridge_solve(gram, moment, self.alpha * len(train))        # (L*C + 1, H): the departures
        # The anchor put back as a weight, so that coef_ maps the window to the horizon itself.
        if level:
            coef[last_target(train)] += 1.0
        else:
            coef[-1] += zero
        self.coef_ = coef

    def _predict(self, windows: Windows) -> np.ndarray:
        scaled = [_design(batch) @ self.coef_ for batch in windows.batches()]
        return windows.decode(np.concatenate(scaled) if scaled else np.empty((0, windows.horizon)))

    def params(self) -> dict:
        return {"alpha": self.alpha}

    def describe(self) -> str:
        n = 0 if self.coef_ is None else self.coef_.shape[0]
        return f"{self.name} ({n} coefficients per step, least squares)"


BASELINES = {"persistence": Persistence, "seasonal-naive": SeasonalNaive, "drift": Drift,
             "moving-average": MovingAverage, "linear-ar": LinearAR}


def ridge_solve(gram: np.ndarray, moment: np.ndarray, penalty: float) -> np.ndarray:
    """Least squares from the normal equations, every coefficient but the last (the
    intercept) shrunk by ``penalty``; a singular system falls back to the pseudo-inverse."""
    ridge = penalty * np.eye(len(gram))
    ridge[-1, -1] = 0.0
    try:
        return np.linalg.solve(gram + ridge, moment)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(gram + ridge) @ moment


def no_change(codec) -> tuple[bool, float]:
    """How "no change" reads in model space: ``(level, zero)``. A level target's no change
    is its window's last value (level True); a differenced one's (diff, log-return) is a
    change of 0, which scaling moves to ``zero``. Windows pooled from several series carry
    no codec and count as levels."""
    level = codec is None or codec.transform == "none"
    zero = 0.0 if level else float(codec.scaler.transform(np.zeros((1, len(codec.scaler.center))))[0, 0])
    return level, zero


def _design(windows: Windows) -> np.ndarray:
    x = windows.x.reshape(len(windows), -1).astype(np.float64)       # (B, L*C): one batch's copy
    return np.column_stack([x, np.ones(len(x))])                     # (B, L*C + 1)


def departure_terms(batch: Windows, level: bool, zero: float) -> tuple[np.ndarray, np.ndarray]:
    """One batch's share of the normal equations of the linear-ar least squares: the flattened
    scaled window and an intercept against the horizon's departure from no change."""
    a = _design(batch)                                               # (B, L*C + 1)
    anchor = a[:, last_target(batch), None] if level else zero       # (B, 1): the last scaled value
    return a.T @ a, a.T @ (batch.y.astype(np.float64) - anchor)      # (L*C + 1, H)


def last_target(windows: Windows) -> int:
    """The column of the flattened (L*C) window that holds the target's last value."""
    return (windows.lookback - 1) * windows.source.scaled.shape[1]


def build_baselines(names=tuple(BASELINES), season: int | None = None) -> list[Forecaster]:
    """The baselines by name; persistence always comes first, since every report leads with it."""
    if isinstance(names, str):  # each letter would be taken for a name
        raise ParameterError("baselines", names, f"give a list of names, e.g. [{names!r}]")
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ParameterError("baselines", unknown[0], f"choose from {', '.join(BASELINES)}")
    names = [REFERENCE, *(n for n in names if n != REFERENCE)]
    return [SeasonalNaive(season) if n == "seasonal-naive" else BASELINES[n]() for n in dict.fromkeys(names)]


def training_values(train: Windows) -> np.ndarray:
    """The target in original units over the rows the training windows span, in order."""
    starts = np.asarray(train.starts)
    return train.source.levels[starts.min():starts.max() + train.lookback + train.horizon]


def detect_period(values, max_period: int, z: float = 3.0, prominence: float = 0.1) -> int:
    """The smallest significant seasonal period up to ``max_period``, or 1 when none.

    A season shows as a peak in the autocorrelation of the linearly detrended values. A
    peak counts when it exceeds ``z`` standard errors (Bartlett's formula; z = 3 keeps
    noise out over dozens of lags) and rises at least ``prominence`` above the lowest
    autocorrelation before it, so that the wiggles on the smooth decay of a slow cycle (a
    year seen through a 60-day window) or of a random walk are not taken for a season.
    """
    y = np.asarray(values, dtype=np.float64)
    n = len(y)
    max_lag = min(max_period, n // 3)
    if max_lag < 3:
        return 1
    t = np.arange(n)
    # one lag further than any period tested: a peak at max_lag is told by the lag after it
    acf = _acf(y - np.polyval(np.polyfit(t, y, 1), t), max_lag + 1)
    for k in range(2, max_lag + 1):
        if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] - acf[1:k].min() >= prominence:
            if acf[k] > z * np.sqrt((1 + 2 * np.sum(acf[1:k] ** 2)) / n):
                return k
    return 1


def _acf(y: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation at lags 0..max_lag (all zeros for a constant series)."""
    y = y - y.mean()
    denom = float(y @ y)
    if denom == 0:
        return np.zeros(max_lag + 1)
    return np.array([1.0] + [float(y[:-k] @ y[k:]) / denom for k in range(1, max_lag + 1)])
