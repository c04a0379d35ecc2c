"""The one interface every forecaster shares, network or baseline (as in Darts):
``fit(train, val)`` then ``predict(windows)`` in the original units of the series, so that a
backtest, a report or a test treats an LSTM and "tomorrow = today" the same way."""

from __future__ import annotations

import numpy as np

from neuralab.forecasting import metrics
from neuralab.forecasting.windows import Windows


class Forecaster:
    name = "forecaster"

    def fit(self, train: Windows, val: Windows | None = None) -> "Forecaster":
        """Learn from the training windows (``val`` only for early stopping); returns self."""
        return self

    def predict(self, windows: Windows) -> np.ndarray:
        """(N, H) forecasts of ``windows.future`` in original units."""
        raise NotImplementedError

    def score(self, windows: Windows, metric: str = "mae") -> float:
        """The error of ``predict`` on ``windows`` (lower is better; MASE needs ``metrics.mase``)."""
        if metric not in ("mae", "rmse", "mape", "smape"):
            raise ValueError(f"metric {metric!r}: choose mae, rmse, mape or smape")
        return getattr(metrics, metric)(windows.future, self.predict(windows))

    def params(self) -> dict:
        """The constructor arguments: ``type(f)(**f.params())`` is an unfitted copy."""
        return {}

    def clone(self) -> "Forecaster":
        return type(self)(**self.params())

    def describe(self) -> str:
        """One line for reports: the name and what was fitted."""
        return self.name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
