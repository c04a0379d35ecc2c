"""Training: the trainer, checkpoints, devices and distributed runs, run directories."""

from neuralab.training.classify import (
    ClassifierConfig,
    evaluate_run,
    load_classifier,
    resume_classifier,
    train_classifier,
)
from neuralab.training.trainer import CLASSIFICATION, REGRESSION, Task, TrainConfig, Trainer, seed_everything

__all__ = [
    "CLASSIFICATION", "REGRESSION", "ClassifierConfig", "Task", "TrainConfig", "Trainer",
    "evaluate_run", "load_classifier", "resume_classifier", "seed_everything", "train_classifier",
]
