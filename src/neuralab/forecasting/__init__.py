"""Forecasting: windows and splits, recurrent networks, baselines, metrics, backtests,
the end-to-end pipeline and its report; plus the RNN topologies and the vanishing-gradient
measurement. Networks and baselines share one interface (``fit``, ``predict``, ``score``).

The names below are imported on first use (neuralab._lazy): pandas and torch load only
when forecasting is used.
"""

from neuralab._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "Forecaster": "neuralab.forecasting.base",
    **dict.fromkeys(["BASELINES", "Drift", "LinearAR", "MovingAverage", "Persistence", "SeasonalNaive"],
                    "neuralab.forecasting.baselines"),
    **dict.fromkeys(["ARCHITECTURES", "ModelConfig", "NetworkForecaster", "RecurrentForecaster"],
                    "neuralab.forecasting.models"),
    **dict.fromkeys(["ForecastConfig", "ForecastResult", "load_forecaster", "predict_run", "run_forecast"],
                    "neuralab.forecasting.pipeline"),
    **dict.fromkeys(["WindowConfig", "Windows", "prepare"], "neuralab.forecasting.windows"),
})

__all__ = [
    "ARCHITECTURES", "BASELINES", "Drift", "ForecastConfig", "ForecastResult", "Forecaster", "LinearAR",
    "ModelConfig", "MovingAverage", "NetworkForecaster", "Persistence", "RecurrentForecaster", "SeasonalNaive",
    "WindowConfig", "Windows", "load_forecaster", "predict_run", "prepare", "run_forecast",
]
