"""neuralab: hands-on deep learning with CNNs and LSTMs, on PyTorch.

The package mirrors the workshop: ``mechanics`` (the arithmetic by hand, NumPy),
``data`` (images and series), ``models`` (one file per architecture), ``training``
(the trainer, checkpoints, devices), ``forecasting``, ``reports``, ``cli`` and ``web``.
What a user needs most is also here, at the top (docs/api.md shows each with an example):

    from neuralab import ClassifierConfig, TrainConfig, train_classifier, load_classifier
    result = train_classifier(ClassifierConfig(model="lenet5", data="mnist", train=TrainConfig(epochs=2)))
    clf = load_classifier(result.run_dir)
    probabilities = clf.predict_proba(clf.load_images(["seven.png"]))

These names are imported on first use, so ``import neuralab`` itself loads no torch.
"""

__version__ = "0.1.0"

from neuralab._lazy import exports
from neuralab.errors import NeuralabError, ParameterError

__getattr__, __dir__ = exports(__name__, {
    **dict.fromkeys(["ARCHITECTURES", "build_model", "count_parameters", "parameters_at"], "neuralab.models.zoo"),
    **dict.fromkeys(["print_summary", "summary"], "neuralab.models.summary"),
    **dict.fromkeys(["load_image_data"], "neuralab.data"),
    **dict.fromkeys(["load_series"], "neuralab.data.series"),
    **dict.fromkeys(["Diverged", "TrainConfig"], "neuralab.training.config"),
    **dict.fromkeys(["Trainer"], "neuralab.training.trainer"),
    **dict.fromkeys(["Callback", "EarlyStopping"], "neuralab.training.callbacks"),
    **dict.fromkeys(["ClassifierConfig", "RECIPES", "RunResult", "resume_classifier", "train_classifier"],
                    "neuralab.training.classify"),
    **dict.fromkeys(["Preprocess"], "neuralab.training.preprocess"),
    **dict.fromkeys(["Classifier", "load_classifier"], "neuralab.training.trained_classifier"),
    **dict.fromkeys(["confusion_matrix", "evaluate_run"], "neuralab.training.evaluate"),
    **dict.fromkeys(["compare"], "neuralab.training.compare"),
    **dict.fromkeys(["ForecastConfig", "ForecastResult", "resume_forecast", "run_forecast"],
                    "neuralab.forecasting.pipeline"),
    **dict.fromkeys(["load_forecaster", "predict_run"], "neuralab.forecasting.finished"),
    **dict.fromkeys(["ModelConfig"], "neuralab.forecasting.models"),
    **dict.fromkeys(["WindowConfig"], "neuralab.forecasting.windows"),
})

__all__ = [
    "ARCHITECTURES", "Callback", "Classifier", "ClassifierConfig", "Diverged", "ForecastConfig", "ForecastResult", "ModelConfig",
    "EarlyStopping", "NeuralabError", "ParameterError", "Preprocess", "RECIPES", "RunResult", "TrainConfig", "Trainer",
    "WindowConfig", "__version__", "build_model", "compare", "confusion_matrix", "count_parameters", "evaluate_run", "load_classifier",
    "load_forecaster", "load_image_data", "load_series", "parameters_at", "predict_run", "print_summary",
    "resume_classifier", "resume_forecast", "run_forecast", "summary", "train_classifier",
]
