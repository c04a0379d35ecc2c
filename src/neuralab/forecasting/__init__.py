"""Forecasting: windows and splits, recurrent networks, baselines, metrics, backtests,
the end-to-end pipeline and its report; plus the RNN topologies and the vanishing-gradient
measurement. Networks and baselines share one interface (``fit``, ``predict``, ``score``)."""

from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.baselines import BASELINES, Drift, LinearAR, MovingAverage, Persistence, SeasonalNaive
from neuralab.forecasting.models import ARCHITECTURES, ModelConfig, NetworkForecaster, RecurrentForecaster
from neuralab.forecasting.pipeline import ForecastConfig, load_forecaster, predict_run, run_forecast
from neuralab.forecasting.windows import WindowConfig, Windows, prepare

__all__ = [
    "ARCHITECTURES", "BASELINES", "Drift", "ForecastConfig", "Forecaster", "LinearAR", "ModelConfig",
    "MovingAverage", "NetworkForecaster", "Persistence", "RecurrentForecaster", "SeasonalNaive", "WindowConfig",
    "Windows", "load_forecaster", "predict_run", "prepare", "run_forecast",
]
