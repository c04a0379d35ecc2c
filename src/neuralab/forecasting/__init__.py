"""Forecasting: windows and splits, recurrent networks, baselines, metrics, backtests,
the end-to-end pipeline and its report; plus the RNN topologies and the vanishing-gradient
measurement. Every forecaster, network or baseline, keeps one contract (``fit``, ``predict``,
``score``); the verdict and the intervals judge them on the same spans.

The names below are imported on first use (neuralab._lazy): pandas and torch load only
when forecasting is used.
"""

from neuralab._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "Forecaster": "neuralab.forecasting.base",
    **dict.fromkeys(["BASELINES", "Drift", "LinearAR", "MovingAverage", "Persistence", "SeasonalNaive"],
                    "neuralab.forecasting.baselines"),
    **dict.fromkeys(["ARCHITECTURES", "ForecastNetwork", "ModelConfig", "NetworkForecaster"],
                    "neuralab.forecasting.models"),
    **dict.fromkeys(["ForecastConfig", "ForecastResult", "resume_forecast", "run_forecast"],
                    "neuralab.forecasting.pipeline"),
    **dict.fromkeys(["load_forecaster", "predict_run"], "neuralab.forecasting.finished"),
    **dict.fromkeys(["WindowConfig", "Windows", "prepare"], "neuralab.forecasting.windows"),
    "export_onnx": "neuralab.forecasting.onnx",
})

__all__ = [
    "ARCHITECTURES", "BASELINES", "Drift", "ForecastConfig", "ForecastResult", "Forecaster", "LinearAR",
    "ForecastNetwork", "ModelConfig", "MovingAverage", "NetworkForecaster", "Persistence", "SeasonalNaive",
    "WindowConfig", "Windows", "export_onnx", "load_forecaster", "predict_run", "prepare", "resume_forecast", "run_forecast",
]
