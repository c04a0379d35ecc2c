"""Training: the trainer, checkpoints, devices and distributed runs, run directories.

The names below are imported on first use (neuralab._lazy), so that the configs can be read
without torch.
"""

from neuralab._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    **dict.fromkeys(["AMP", "ClassifierConfig", "DEVICES", "RECIPES", "SCHEDULES", "TrainConfig"],
                    "neuralab.training.config"),
    **dict.fromkeys(["CLASSIFICATION", "REGRESSION", "Task", "Trainer", "seed_everything"],
                    "neuralab.training.trainer"),
    **dict.fromkeys(["Classifier", "Preprocess", "RunResult", "confusion_matrix",
                     "evaluate_run", "load_classifier", "resume_classifier", "train_classifier"],
                    "neuralab.training.classify"),
})

__all__ = [
    "AMP", "CLASSIFICATION", "Classifier", "ClassifierConfig", "DEVICES", "Preprocess", "RECIPES", "REGRESSION",
    "RunResult", "SCHEDULES", "Task", "TrainConfig", "Trainer", "confusion_matrix", "evaluate_run", "load_classifier",
    "resume_classifier", "seed_everything", "train_classifier",
]
