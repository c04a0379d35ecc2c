"""Forecasting: windows and splits, the forecasting network, baselines, metrics, backtests,
intervals, the verdict, the end-to-end pipeline and its report; plus the RNN topologies and
the vanishing-gradient measurement. Every forecaster, network or baseline, keeps one
contract (``fit``, ``predict``, ``score``)."""

from neuralab.forecasting.base import Forecaster
from neuralab.forecasting.baselines import BASELINES, Drift, LinearAR, MovingAverage, Persistence, SeasonalNaive
from neuralab.forecasting.models import ARCHITECTURES, ForecastNetwork, ModelConfig, NetworkForecaster
from neuralab.forecasting.pipeline import ForecastConfig, load_forecaster, predict_run, run_forecast
from neuralab.forecasting.windows import WindowConfig, Windows, prepare

__all__ = [
    "ARCHITECTURES", "BASELINES", "Drift", "ForecastConfig", "ForecastNetwork", "Forecaster", "LinearAR",
    "ModelConfig", "MovingAverage", "NetworkForecaster", "Persistence", "SeasonalNaive", "WindowConfig",
    "Windows", "load_forecaster", "predict_run", "prepare", "run_forecast",
]
