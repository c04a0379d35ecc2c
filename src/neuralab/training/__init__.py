"""Training: the trainer, checkpoints, devices and distributed runs, run directories.

The names below are imported on first use (neuralab._lazy), so that the configs can be read
without torch.
"""

from neuralab._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    **dict.fromkeys(["AMP", "ClassifierConfig", "DEVICES", "Diverged", "LOSSES", "OPTIMIZERS", "RECIPES",
                     "SCHEDULES", "TrainConfig"], "neuralab.training.config"),
    **dict.fromkeys(["Callback", "Checkpoint", "EarlyStopping"], "neuralab.training.callbacks"),
    **dict.fromkeys(["TensorBoard"], "neuralab.training.tensorboard"),
    "compare": "neuralab.training.compare",  # the workshop's MLP against CNN: models, one budget, seeds
    "RunLogger": "neuralab.training.runlogger",  # Keras's own fit writing a neuralab run (imports Keras)
    **dict.fromkeys(["CLASSIFICATION", "REGRESSION", "Task", "Trainer"], "neuralab.training.trainer"),
    "seed_everything": "neuralab.training.seeds",
    **dict.fromkeys(["RunResult", "resume_classifier", "train_classifier"], "neuralab.training.classify"),
    **dict.fromkeys(["Preprocess"], "neuralab.training.preprocess"),
    **dict.fromkeys(["Classifier", "load_classifier"], "neuralab.training.trained_classifier"),
    **dict.fromkeys(["confusion_matrix", "evaluate_run"], "neuralab.training.evaluate"),
})

__all__ = [
    "AMP", "CLASSIFICATION", "Callback", "Checkpoint", "Classifier", "ClassifierConfig", "DEVICES", "Diverged",
    "EarlyStopping",
    "LOSSES", "OPTIMIZERS", "Preprocess", "RECIPES", "REGRESSION", "RunLogger", "RunResult", "SCHEDULES", "Task", "TensorBoard",
    "TrainConfig", "Trainer", "compare", "confusion_matrix", "evaluate_run", "load_classifier", "resume_classifier",
    "seed_everything", "train_classifier",
]
