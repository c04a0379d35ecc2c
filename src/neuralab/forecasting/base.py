"""The one contract every forecaster keeps, network or baseline (as in Darts and
scikit-learn): ``fit(train, val)`` returns the fitted forecaster, ``predict(windows)`` gives
(N, H) forecasts of ``windows.future`` in the original units of the series, ``score`` is the
error of ``predict``. A backtest, a report or a test treats an LSTM and "tomorrow = today"
the same way.

The checks live here once: ``fit`` refuses an empty training set and remembers the
horizon, ``predict`` refuses an unfitted forecaster or a different horizon. A forecaster
implements ``_fit`` (learning, if any) and ``_predict``.
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting import metrics
from neuralab.forecasting.windows import Windows

# What ``score`` measures: every metric but MASE, whose scale comes from a training span the
# windows do not carry
SCORES = tuple(m for m in metrics.METRICS if m != "mase")


class Forecaster:
    name = "forecaster"
    horizon_: int | None = None   # set by fit: the steps this forecaster was fitted to predict

    def fit(self, train: Windows, val: Windows | None = None) -> "Forecaster":
        """Learn from the training windows (``val`` for early stopping or choices); returns self."""
        if len(train) == 0:
            raise NeuralabError(f"{self.name}: no training windows to fit on")
        self._fit(train, val if val is not None and len(val) else None)
        self.horizon_ = train.horizon
        return self

    def predict(self, windows: Windows) -> np.ndarray:
        """(N, H) forecasts of ``windows.future`` in original units."""
        if self.horizon_ is None:
            raise NeuralabError(f"{self.name}: call fit before predict")
        if not isinstance(windows, Windows):
            raise ParameterError("windows", type(windows).__name__, "give Windows, as the run's data makes them; for "
                                 "the next horizon after a DataFrame or CSV of new rows, use predict_run(run, data)")
        if windows.horizon != self.horizon_:
            raise NeuralabError(f"{self.name}: fitted for `horizon` {self.horizon_}, asked for {windows.horizon}")
        return self._predict(windows)

    def score(self, windows: Windows, metric: str = "mae") -> float:
        """The error of ``predict`` on ``windows`` (lower is better; MASE needs ``metrics.mase``)."""
        if metric not in SCORES:
            raise ParameterError("metric", metric, f"choose from {', '.join(SCORES)}; MASE needs the training "
                                 "span's scale: metrics.mase(actual, pred, Prepared.mase_scale)")
        return getattr(metrics, metric)(windows.future, self.predict(windows))

    def _fit(self, train: Windows, val: Windows | None) -> None:
        """Learn what the forecaster needs; the naive forecasts learn nothing."""

    def _predict(self, windows: Windows) -> np.ndarray:
        raise NotImplementedError

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
